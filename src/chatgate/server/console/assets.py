"""The console's files, shipped in the package (``console/assets/``) and served from memory.

The page is served fresh (``no-cache``); every script and style sheet is under
``/ui/assets/<version>/``, where the version is a hash of all the files, so they can be
cached for a year: a new release changes the path. Module imports between the scripts are
relative, so they keep the version. The CSP allows this gateway's own scripts, styles and
API only: no inline script, no other origin.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources

__all__ = ["ASSET_PREFIX", "CSP", "Asset", "asset", "files", "page", "version"]

ASSET_PREFIX = "/ui/assets/"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
Asset = tuple[str, bytes]  # (content type, bytes)


@functools.cache
def files() -> dict[str, Asset]:
    root = importlib.resources.files("chatgate.server.console").joinpath("assets")
    out: dict[str, Asset] = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = (_TYPES[suffix], entry.read_bytes())
    return out


@functools.cache
def version() -> str:
    digest = hashlib.sha256()
    for name, (_, body) in sorted(files().items()):
        digest.update(name.encode() + b"\0" + body)
    return digest.hexdigest()[:12]


def asset(path: str) -> Asset | None:
    """The file at ``/ui/assets/<version>/<name>``, or None (an old version is not kept)."""
    ver, _, name = path.removeprefix(ASSET_PREFIX).partition("/")
    if ver != version() or name == "index.html":
        return None
    return files().get(name)


@functools.cache
def page() -> bytes:
    body = files()["index.html"][1]
    return body.replace(b"{{assets}}", f"{ASSET_PREFIX}{version()}".encode())
