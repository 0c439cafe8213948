"""The console's sign-in, session cookie and CSRF check, over HTTP (no browser)."""

from __future__ import annotations

import requests

from tests.console.conftest import MASTER, Client, new_key
from tests.fakes.gateway import Gateway


def signed_in(gw: Gateway, key: str = MASTER) -> tuple[Client, str]:
    http = Client(gw.url)
    resp = http.post("/ui/session", json={"key": key})
    assert resp.status_code == 200, resp.text
    return http, resp.json()["csrf"]


def test_sign_in_sets_a_strict_httponly_cookie_that_holds_no_key(gateway: Gateway) -> None:
    with Client(gateway.url) as http:
        resp = http.post("/ui/session", json={"key": MASTER})
        assert resp.status_code == 200, resp.text
        cookie = resp.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/" in cookie
        assert "Secure" not in cookie  # plain http here; https (or x-forwarded-proto) adds it
        assert MASTER not in cookie
        assert MASTER not in resp.text
        assert http.get("/admin/keys").status_code == 200  # the cookie alone reads
        assert http.get("/ui/session").json()["kind"] == "master"
    proxied = requests.post(
        f"{gateway.url}/ui/session",
        json={"key": MASTER},
        headers={"x-forwarded-proto": "https"},
        timeout=10,
    )
    assert "; Secure" in proxied.headers["set-cookie"]


def test_every_change_needs_the_sessions_csrf_token(gateway: Gateway) -> None:
    http, csrf = signed_in(gateway)
    with http:
        missing = http.post("/admin/keys", json={"name": "no-token"})
        assert missing.status_code == 403, missing.text
        assert missing.json()["error"]["code"] == "csrf_failed"
        wrong = http.post("/admin/keys", json={"name": "x"}, headers={"x-csrf-token": "f" * 64})
        assert wrong.status_code == 403
        _, other_csrf = signed_in(gateway)  # another session's token is no good here
        crossed = http.post("/admin/keys", json={"name": "x"}, headers={"x-csrf-token": other_csrf})
        assert crossed.status_code == 403
        names = [k["name"] for k in http.get("/admin/keys").json()["data"]]
        assert "no-token" not in names
        assert "x" not in names
        made = http.post("/admin/keys", json={"name": "with-token"}, headers={"x-csrf-token": csrf})
        assert made.status_code == 200, made.text
        gone = http.delete("/ui/session", headers={"x-csrf-token": csrf})
        assert gone.status_code == 200
        assert "Max-Age=0" in gone.headers["set-cookie"]
        assert http.get("/admin/keys").status_code == 401  # signed out: no cookie any more


def test_a_signed_out_session_id_is_refused_even_if_replayed(gateway: Gateway) -> None:
    http, csrf = signed_in(gateway)
    session = http.cookies.get("chatgate_session")
    http.delete("/ui/session", headers={"x-csrf-token": csrf})
    replay = requests.get(
        f"{gateway.url}/admin/keys", cookies={"chatgate_session": session}, timeout=10
    )
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "session_expired"


def test_an_admin_key_signs_in_and_loses_its_session_when_revoked(gateway: Gateway) -> None:
    secret, record = new_key(gateway, name="ops", metadata={"role": "admin"})
    plain, _ = new_key(gateway, name="app")
    refused = requests.post(f"{gateway.url}/ui/session", json={"key": plain}, timeout=10)
    assert refused.status_code == 403
    assert "not an admin key" in refused.text
    assert plain not in refused.text
    wrong = requests.post(f"{gateway.url}/ui/session", json={"key": "sk-cg-nope"}, timeout=10)
    assert wrong.status_code == 401
    # the admin key works as a Bearer on the admin API too
    bearer = requests.get(
        f"{gateway.url}/admin/keys", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )
    assert bearer.status_code == 200
    http, csrf = signed_in(gateway, secret)
    with http:
        assert http.get("/ui/session").json() == {"kind": "key", "name": "ops", "csrf": csrf}
        revoked = requests.delete(
            f"{gateway.url}/admin/keys/{record['key_id']}",
            headers={"Authorization": f"Bearer {MASTER}"},
            timeout=10,
        )
        assert revoked.status_code == 200
        after = http.get("/admin/keys")
        assert after.status_code == 401
        assert after.json()["error"]["code"] == "session_expired"


def test_sign_in_takes_json_only_and_names_the_field(gateway: Gateway) -> None:
    form = requests.post(f"{gateway.url}/ui/session", data={"key": MASTER}, timeout=10)
    assert form.status_code == 415  # a cross-site form post cannot sign anyone in
    empty = requests.post(f"{gateway.url}/ui/session", json={}, timeout=10)
    assert empty.status_code == 400
    assert empty.json()["error"]["param"] == "key"


def test_the_page_and_its_files_have_a_strict_csp_and_long_cache(gateway: Gateway) -> None:
    page = requests.get(f"{gateway.url}/ui", timeout=10)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-cache"
    assert "<script>" not in page.text
    assert "style=" not in page.text
    script = page.text.split('<script type="module" src="')[1].split('"')[0]
    asset = requests.get(f"{gateway.url}{script}", timeout=10)
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith("text/javascript")
    assert "max-age=31536000" in asset.headers["cache-control"]
    assert "innerHTML" not in asset.text
    stale = requests.get(f"{gateway.url}/ui/assets/000000000000/app.js", timeout=10)
    assert stale.status_code == 404
