"""`manage.py serve`: the whole app in one process, the way the README starts it."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from e2e.client import HttpClient
from e2e.server import REPO, TandemServer


@pytest.fixture(scope="module")
def served() -> Iterator[TandemServer]:
    """One server for the read-only checks of this module."""
    srv = TandemServer().start()
    yield srv
    if srv.running:
        srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture
def own_server() -> Iterator[TandemServer]:
    """A server of the test's own, to stop and restart (not started yet)."""
    srv = TandemServer()
    yield srv
    srv.kill()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()


def ws_url(page_url: str) -> str:
    """The WebSocket address of a document page's address."""
    rest = page_url.split("://", 1)[1]
    host, path = rest.split("/", 1)
    return f"ws://{host}/ws/{path}"


def close_code_of(ws: ClientConnection, timeout: float = 5) -> int | None:
    """Read until the server closes the connection; its close code."""
    with ws, pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=timeout)
    return ws.close_code


def test_it_prints_its_address_and_serves_the_list(served: TandemServer) -> None:
    assert f"Tandem is running at http://127.0.0.1:{served.port}/" in served.output()
    status, headers, body = _get(served.url + "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"Documents" in body


def test_it_uses_the_data_folder_it_is_given(served: TandemServer) -> None:
    assert (served.data_dir / "tandem.sqlite3").is_file()
    assert (served.data_dir / "secret_key").is_file()
    assert str(served.data_dir) in served.output()


def test_it_applies_migrations_by_itself(served: TandemServer) -> None:
    # A brand-new data folder: the tables exist because `serve` migrated.
    db = sqlite3.connect(served.data_dir / "tandem.sqlite3")
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        applied = {row[0] for row in db.execute("SELECT app FROM django_migrations")}
    finally:
        db.close()
    assert {"editor_document", "collab_documentupdate"} <= tables
    assert {"editor", "collab"} <= applied
    # And documents can be made at once.
    http = HttpClient(served.url)
    response = http.post("/d/new/", form={"title": "First"})
    assert response.status == 200 and "/d/" in response.url


def test_static_files_have_hashed_names_and_are_compressed(served: TandemServer) -> None:
    _, _, body = _get(served.url + "/")
    page = body.decode()
    css = re.search(r'href="(/static/css/tandem\.[0-9a-f]{12}\.css)"', page)
    assert css, "the stylesheet is not served under a hashed name"
    scripts = re.findall(r'src="(/static/[^"]+\.js)"', page)
    htmx = [s for s in scripts if "htmx" in s]
    assert htmx, scripts
    for path in [css.group(1), *scripts]:
        status, headers, _ = _get(served.url + path)
        assert status == 200, path
        # Hashed names never change content: cached for good.
        assert "immutable" in headers.get("cache-control", "") or "max-age" in headers.get(
            "cache-control", ""
        ), (path, headers)
    # htmx is big enough to be worth compressing: whitenoise serves its .gz.
    status, headers, compressed = _get(served.url + htmx[0], {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers.get("content-encoding") == "gzip", headers
    _, _, plain = _get(served.url + htmx[0])
    assert len(compressed) < len(plain)


def test_it_speaks_websocket_at_the_document_address(served: TandemServer) -> None:
    http = HttpClient(served.url)
    doc_url = http.post("/d/new/", form={"title": "WS"}).url
    same_origin = Origin(served.url)
    with connect(ws_url(doc_url), origin=same_origin, open_timeout=5) as ws:
        with contextlib.suppress(TimeoutError):
            ws.recv(timeout=0.5)
        assert ws.close_code is None  # open, and not closed by the server
    foreign = Origin("http://evil.example")
    assert close_code_of(connect(ws_url(doc_url), origin=foreign, open_timeout=5)) == 4403
    unknown = served.url + "/d/no-such-document/"
    assert close_code_of(connect(ws_url(unknown), origin=same_origin, open_timeout=5)) == 4404


def test_unknown_address_is_a_404_page_with_debug_off(served: TandemServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(served.url + "/d/no-such-document/")
    assert error.value.code == 404
    body = error.value.read().decode()
    assert "Nothing here" in body
    assert "Traceback" not in body and "DEBUG" not in body


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_it_cleanly_and_quickly(own_server: TandemServer, sig: int) -> None:
    own_server.start()
    assert own_server.proc is not None
    started = time.monotonic()
    own_server.proc.send_signal(sig)
    code = own_server.proc.wait(timeout=10)
    elapsed = time.monotonic() - started
    output = own_server.output()
    assert code == 0, output
    assert elapsed < 5, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in output, output
    # The port is free again.
    with pytest.raises(urllib.error.URLError):
        _get(own_server.url + "/")


def test_sigterm_with_editors_connected_stops_cleanly(own_server: TandemServer) -> None:
    own_server.start()
    http = HttpClient(own_server.url)
    paths = [http.post("/d/new/", form={"title": f"Open {i}"}).url for i in range(3)]
    with contextlib.ExitStack() as sockets:
        for url in paths:
            sockets.enter_context(connect(ws_url(url), origin=Origin(own_server.url)))
        time.sleep(0.3)  # every consumer has joined its document
        own_server.stop(timeout=5)  # exit code 0: no crash at interpreter exit either
        assert "Fatal Python error" not in own_server.output()


def test_a_restart_reuses_the_secret_key_and_the_data(own_server: TandemServer) -> None:
    own_server.start()
    key_file = own_server.data_dir / "secret_key"
    key = key_file.read_text()
    assert len(key) >= 50
    assert key_file.stat().st_mode & 0o077 == 0, "the secret key is readable by others"
    http = HttpClient(own_server.url)
    doc_url = http.post("/d/new/", form={"title": "Survivor"}).url
    own_server.stop()
    own_server.start()  # same port, same data folder
    assert key_file.read_text() == key
    status, _, body = _get(doc_url)
    assert status == 200 and b"Survivor" in body
    own_server.stop()


def test_the_secret_key_and_data_folder_are_never_committed() -> None:
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    for path in ["data/secret_key", "data/tandem.sqlite3"]:
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
        assert ignored.returncode == 0, f".gitignore must cover {path}"
    tracked = subprocess.run(
        ["git", "ls-files", "data", "*secret_key*", "*.sqlite3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert tracked.stdout == ""


def test_procfile_runs_the_same_server_on_port_and_all_interfaces() -> None:
    procfile = (REPO / "Procfile").read_text().strip()
    assert procfile == "web: python manage.py serve --host 0.0.0.0 --port $PORT"


def test_serve_defaults_to_localhost_port_8000(monkeypatch: pytest.MonkeyPatch) -> None:
    from editor.management.commands.serve import Command, listen_host

    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("TANDEM_HOST", raising=False)
    options = Command().create_parser("manage.py", "serve").parse_args([])
    assert (listen_host(options.host, options.share), options.port) == ("127.0.0.1", 8000)
    assert listen_host(None, share=True) == "0.0.0.0"
    assert listen_host("192.0.2.7", share=True) == "192.0.2.7"
    monkeypatch.setenv("TANDEM_HOST", "127.0.0.2")
    assert listen_host(None, share=True) == listen_host(None, share=False) == "127.0.0.2"
    monkeypatch.setenv("PORT", "5123")  # what a Procfile runner sets
    options = Command().create_parser("manage.py", "serve").parse_args([])
    assert options.port == 5123


def test_a_browser_that_went_silent_is_disconnected_within_30_seconds(
    served: TandemServer,
) -> None:
    # A sleeping laptop or a pulled cable: the socket stays open on the server's side
    # and no frame (no pong either) comes back. Daphne's pings end it, which takes the
    # editor out of presence (its consumer leaves on disconnect).
    http = HttpClient(served.url)
    doc_url = http.post("/d/new/", form={"title": "Silent"}).url
    host, port = served.url.split("://", 1)[1].split(":")
    path = "/ws/" + doc_url.split("://", 1)[1].split("/", 1)[1]
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {served.url}\r\n\r\n".encode()
        )
        started = time.monotonic()
        assert b" 101 " in raw.recv(4096).split(b"\r\n", 1)[0]
        # Never answer: read what the server sends (pings, HTML) until it hangs up.
        raw.settimeout(35)
        with contextlib.suppress(ConnectionResetError):
            while raw.recv(65536):
                assert time.monotonic() - started < 35, "still connected"
        assert time.monotonic() - started < 30


def test_a_frame_over_the_limit_is_refused_while_it_is_read(served: TandemServer) -> None:
    """Daphne (autobahn) refuses a frame over MAX_FRAME_BYTES before buffering it whole
    (it fails the connection with 1009, which a client still sending sees as 1006); the
    consumer's own check (4413) never sees the frame. The server goes on serving."""
    from collab.protocol import MAX_FRAME_BYTES

    http = HttpClient(served.url)
    doc_url = http.post("/d/new/", form={"title": "Big frame"}).url
    same_origin = Origin(served.url)
    with connect(ws_url(doc_url), origin=same_origin, open_timeout=5) as ws:
        ws.send("x" * (MAX_FRAME_BYTES + 1))
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)
    assert ws.close_code in (1006, 1009)
    with connect(ws_url(doc_url), origin=same_origin, open_timeout=5) as again:
        again.send('{"type": "nope"}')
        while str(frame := again.recv(timeout=5)).startswith("<"):
            pass  # the preview and presence come first
        assert '"bad_request"' in str(frame)
