"""Static files answered at the ASGI layer (editor/static.py), before Django's handler.

Against a real `collectstatic` (hashed names, gzip copies), each request is made twice:
through `StaticFiles` and through Django's own handler and middleware (as before the fast
path); status, body and every header must be the same. Plus: which requests go on to
Django, streaming of big files, DEBUG's on-disk lookup, and the whole application's
security headers on a static file.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.testing import HttpCommunicator
from django.core.asgi import get_asgi_application
from django.core.management import call_command

from editor import static
from editor.headers import Receive, Scope, Send
from editor.static import StaticFiles

MANIFEST = "whitenoise.storage.CompressedManifestStaticFilesStorage"
_collected: dict[str, Path] = {}


@pytest.fixture
def collected(settings: Any) -> Iterator[Path]:
    """STATIC_ROOT filled by collectstatic with the production storage (once per run)."""
    if "root" not in _collected:
        _collected["root"] = Path(tempfile.mkdtemp(prefix="tandem-static-"))
    root = _collected["root"]
    settings.STATIC_ROOT = root
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": MANIFEST}}
    if not (root / "staticfiles.json").exists():
        call_command("collectstatic", interactive=False, verbosity=0)
    yield root


@pytest.fixture(scope="session", autouse=True)
def _remove_collected() -> Iterator[None]:
    yield
    if "root" in _collected:
        shutil.rmtree(_collected["root"], ignore_errors=True)


def hashed(root: Path, name: str) -> str:
    import json

    paths = json.loads((root / "staticfiles.json").read_text())["paths"]
    return f"/static/{paths[name]}"


class Refuse:
    """The app behind StaticFiles, which these requests must not reach."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"django"})


async def fetch(
    app: Any, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    encoded = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    communicator = HttpCommunicator(app, method, path, headers=encoded)
    await communicator.send_input({"type": "http.request", "body": b""})
    response = await communicator.receive_output(5)
    assert response["type"] == "http.response.start"
    body = b""
    while True:  # (HttpCommunicator.get_response wants a body in every message: ASGI does not)
        message = await communicator.receive_output(5)
        assert message["type"] == "http.response.body"
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await communicator.wait()
    names = [bytes(k).decode().lower() for k, _ in response["headers"]]
    assert len(names) == len(set(names)), names  # no header twice
    out = {bytes(k).decode().lower(): bytes(v).decode() for k, v in response["headers"]}
    return response["status"], out, body


def normalised(headers: dict[str, str]) -> dict[str, Any]:
    """Headers to compare: the policy's directives in any order (django-csp builds it
    from a set), Django's own date-free extras as they are."""
    out: dict[str, Any] = dict(headers)
    if "content-security-policy" in out:
        out["content-security-policy"] = sorted(out["content-security-policy"].split("; "))
    return out


CASES: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "surface", {"Accept_Encoding": "gzip, deflate, br"}),
    ("GET", "surface", {}),
    ("HEAD", "surface", {"Accept_Encoding": "gzip"}),
    ("GET", "surface", {"Range": "bytes=0-9"}),
    ("GET", "surface", {"Range": "bytes=99999999-"}),
    ("POST", "surface", {}),
    ("GET", "plain", {"Accept_Encoding": "gzip"}),
    ("GET", "favicon", {}),
    ("GET", "vendor", {"Accept_Encoding": "gzip"}),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "which", "headers"), CASES)
async def test_a_static_file_is_answered_as_django_answered_it(
    collected: Path, method: str, which: str, headers: dict[str, str]
) -> None:
    path = {
        "surface": hashed(collected, "js/surface.js"),
        "plain": "/static/js/surface.js",
        "favicon": "/static/favicon.svg",
        "vendor": hashed(collected, "vendor/codemirror/codemirror.js"),
    }[which]
    behind = Refuse()
    fast = await fetch(StaticFiles(behind), path, method, **headers)
    assert behind.calls == []
    django = await fetch(get_asgi_application(), path, method, **headers)
    assert fast[0] == django[0]
    assert fast[2] == django[2]
    # Django's handler adds no Content-Length to a 405 (its body is streamed): nothing else.
    fast_headers = normalised(fast[1])
    django_headers = normalised(django[1])
    if fast[0] == 405:
        fast_headers.pop("content-length", None)
    assert fast_headers == django_headers


@pytest.mark.asyncio
async def test_the_compressed_copy_is_chosen_by_accept_encoding(collected: Path) -> None:
    path = hashed(collected, "js/surface.js")
    original = (collected / path.removeprefix("/static/")).read_bytes()
    status, headers, body = await fetch(StaticFiles(Refuse()), path, Accept_Encoding="gzip")
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == original and len(body) < len(original)
    assert int(headers["content-length"]) == len(body)
    status, headers, body = await fetch(StaticFiles(Refuse()), path)
    assert "content-encoding" not in headers and body == original


@pytest.mark.asyncio
async def test_304_head_and_ranges(collected: Path) -> None:
    path = hashed(collected, "js/surface.js")
    app = StaticFiles(Refuse())
    _, headers, body = await fetch(app, path, Accept_Encoding="gzip")
    status, again, nothing = await fetch(app, path, If_None_Match=headers["etag"])
    assert status == 304 and nothing == b"" and again["etag"] == headers["etag"]
    status, _, nothing = await fetch(app, path, If_Modified_Since=headers["last-modified"])
    assert status == 304
    status, head, nothing = await fetch(app, path, "HEAD", Accept_Encoding="gzip")
    assert status == 200 and nothing == b""
    assert head["content-length"] == headers["content-length"] == str(len(body))
    status, part, ten = await fetch(app, path, Range="bytes=0-9")
    assert status == 206 and len(ten) == 10 and part["content-range"].startswith("bytes 0-9/")


@pytest.mark.asyncio
async def test_hashed_files_are_cached_for_ever_and_the_others_for_an_hour(
    collected: Path, settings: Any
) -> None:
    app = StaticFiles(Refuse())
    _, headers, _ = await fetch(app, hashed(collected, "css/tandem.css"))
    assert headers["cache-control"] == "max-age=315360000, public, immutable"
    _, headers, _ = await fetch(app, "/static/css/tandem.css")
    assert headers["cache-control"] == f"max-age={settings.WHITENOISE_MAX_AGE}, public"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path", ["/static/nothing.js", "/static/", "/static/js/../js/surface.js", "/", "/d/x/"]
)
async def test_what_whitenoise_does_not_know_goes_on_to_django(collected: Path, path: str) -> None:
    behind = Refuse()
    status, _, body = await fetch(StaticFiles(behind), path)
    assert (status, body, behind.calls) == (418, b"django", [path])


@pytest.mark.asyncio
async def test_a_big_file_is_sent_in_chunks(
    collected: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static, "INLINE_MAX_BYTES", 1000)
    monkeypatch.setattr(static, "CHUNK_BYTES", 4096)
    path = hashed(collected, "vendor/codemirror/codemirror.js")
    original = (collected / path.removeprefix("/static/")).read_bytes()
    assert len(original) > 3 * 4096
    status, headers, body = await fetch(StaticFiles(Refuse()), path)
    assert status == 200 and body == original and headers["content-length"] == str(len(body))
    status, _, part = await fetch(StaticFiles(Refuse()), path, Range="bytes=10-9000")
    assert status == 206 and part == original[10:9001]


@pytest.mark.asyncio
async def test_in_debug_files_are_found_on_disk_without_collectstatic(
    settings: Any, tmp_path: Path
) -> None:
    settings.DEBUG = True
    settings.STATIC_ROOT = tmp_path  # empty: the finders find the sources
    status, headers, body = await fetch(StaticFiles(Refuse()), "/static/js/surface.js")
    assert status == 200
    assert body == (Path(settings.BASE_DIR) / "static/js/surface.js").read_bytes()
    assert headers["cache-control"] == f"max-age={settings.WHITENOISE_MAX_AGE}, public"


@pytest.mark.asyncio
async def test_a_file_gone_since_start_up_goes_on_to_django(settings: Any, tmp_path: Path) -> None:
    (tmp_path / "gone.js").write_text("1;")
    settings.STATIC_ROOT = tmp_path
    app = StaticFiles(Refuse())
    assert (await fetch(app, "/static/gone.js"))[0] == 200
    (tmp_path / "gone.js").unlink()
    behind = app.app = Refuse()
    assert (await fetch(app, "/static/gone.js"))[0] == 418
    assert behind.calls == ["/static/gone.js"]


@pytest.mark.asyncio
async def test_off_when_django_would_redirect_to_https(collected: Path, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    behind = Refuse()
    status, _, _ = await fetch(StaticFiles(behind), "/static/favicon.svg")
    assert status == 418 and behind.calls == ["/static/favicon.svg"]


@pytest.mark.asyncio
async def test_the_application_serves_static_files_with_every_defence(collected: Path) -> None:
    """editor.asgi's own stack (built at import, with the test settings' STATIC_ROOT, so
    through a fresh one here): SecurityHeaders around StaticFiles."""
    from channels.routing import URLRouter
    from django.urls import re_path

    from editor.headers import BASELINE, SecurityHeaders

    django_route = re_path(r"", get_asgi_application())  # type: ignore[arg-type]
    app = SecurityHeaders(StaticFiles(URLRouter([django_route])))
    for path in (hashed(collected, "js/editor.js"), "/static/nothing.js"):
        status, headers, _ = await fetch(app, path, Host="localhost")
        assert status == (200 if "nothing" not in path else 404)
        for name, _ in BASELINE:
            assert name.decode() in headers, (path, name)
        assert "script-src 'self'" in headers["content-security-policy"]
