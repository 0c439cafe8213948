"""The console's files as the package ships them: every module a script imports is there,
nothing is inline or fetched from elsewhere, and each file stays small."""

from __future__ import annotations

import re

from chatgate.server.console import assets

IMPORT = re.compile(r'from "\./([\w-]+\.js)"')


def test_every_import_resolves_to_a_shipped_file() -> None:
    files = assets.files()
    scripts = [name for name in files if name.endswith(".js")]
    assert {"app.js", "api.js", "chart.js", "keys.js", "logs.js", "overview.js"} <= set(scripts)
    for name in scripts:
        for target in IMPORT.findall(files[name][1].decode()):
            assert target in files, f"{name} imports {target}, which is not shipped"


def test_nothing_inline_nothing_remote_and_small_files() -> None:
    html = assets.page().decode()
    assert f"/ui/assets/{assets.version()}/app.js" in html
    assert "{{assets}}" not in html
    for name, (_, body) in assets.files().items():
        text = body.decode()
        assert "http://" not in text.replace('"http://www.w3.org/2000/svg"', "")
        assert "https://" not in text
        assert "innerHTML" not in text, name
        assert "eval(" not in text, name
        assert len(text.splitlines()) <= 150, f"{name} has grown past 150 lines: split it"
