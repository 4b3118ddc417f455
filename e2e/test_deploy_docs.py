"""docs/deploy.md's proxy configurations, run as written in front of a two-process
cluster: the nginx block and the Caddyfile, with local ports instead of the example
names, addresses and certificates. Pages, forms and WebSockets must all get through."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

from e2e.client import HttpClient
from e2e.cluster import Cluster
from tests.services import CaddyServer, MissingServer, NginxServer, free_port, unavailable

DEPLOY = (Path(__file__).resolve().parent.parent / "docs" / "deploy.md").read_text()


def fenced(language: str) -> str:
    """The one ```language block of docs/deploy.md."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```", DEPLOY, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"expected one {language} block in docs/deploy.md"
    return str(blocks[0])


def nginx_for(cluster: Cluster, port: int) -> str:
    """The documented nginx configuration, on 127.0.0.1:`port` without TLS, in front of
    `cluster`."""
    config = fenced("nginx")
    upstream = re.search(r"upstream tandem \{\n(.*?)\n\}", config, re.DOTALL)
    assert upstream, "the nginx example has no upstream block"
    servers = re.findall(r"^\s*server \S+( [^;#]*);", upstream.group(1), re.MULTILINE)
    assert servers, "the upstream lists no server"
    ours = "\n".join(f"    server 127.0.0.1:{s.port}{servers[0]};" for s in cluster)
    body = re.sub(r"^\s*server \S+ [^\n]*\n", "", upstream.group(1), flags=re.MULTILINE)
    config = config.replace(upstream.group(1), ours + "\n" + body)
    # The HTTPS site on our port, without its certificate; the port-80 redirect goes.
    config, listens = re.subn(r"listen 443 ssl[^;]*;", f"listen 127.0.0.1:{port};", config)
    assert listens == 1, "the nginx example has no 'listen 443 ssl' server"
    config = re.sub(r"^\s*ssl_\w+ [^;]*;\n", "", config, flags=re.MULTILINE)
    config, redirects = re.subn(
        r"\nserver \{\n    listen 80;.*?\n\}\n", "\n", config, flags=re.DOTALL
    )
    assert redirects == 1, "the nginx example's http-to-https redirect has changed shape"
    return config


def caddy_for(cluster: Cluster, port: int) -> str:
    """The documented Caddyfile on http://127.0.0.1:`port`, in front of `cluster`."""
    config = fenced("caddyfile")
    config, sites = re.subn(
        r"^[\w.-]+\.[a-z]+ \{",
        f"http://127.0.0.1:{port} {{\n    bind 127.0.0.1",
        config,
        count=1,
        flags=re.MULTILINE,
    )
    assert sites == 1, "the Caddyfile example has no site address"
    ours = " ".join(f"127.0.0.1:{s.port}" for s in cluster)
    config, proxies = re.subn(r"reverse_proxy [^{\n]*\{", f"reverse_proxy {ours} {{", config)
    assert proxies == 1, "the Caddyfile example has no reverse_proxy with options"
    return config


@pytest.fixture
def proxied(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of the documented proxy (`request.param`) in front of `cluster`."""
    port = free_port()
    try:
        if request.param == "nginx":
            server: NginxServer | CaddyServer = NginxServer(nginx_for(cluster, port), port)
        else:
            server = CaddyServer(caddy_for(cluster, port), port)
    except MissingServer as error:
        unavailable(error)
    try:
        server.start()
    except RuntimeError:
        server.close()
        pytest.fail(f"{request.param} refused docs/deploy.md's configuration:\n{server.output()}")
    yield server.url
    server.close()


@pytest.mark.parametrize("proxied", ["nginx", "caddy"], indirect=True)
def test_pages_forms_and_websockets_get_through_the_documented_proxy(
    proxied: str, cluster: Cluster
) -> None:
    http = HttpClient(proxied)
    listing = http.get("/")
    assert listing.status == 200 and "Documents" in listing.text, listing.status
    # A form POST from the proxy's own page: Host reaches Tandem as the browser sent it,
    # so Django's CSRF origin check passes.
    made = http.post("/d/new/", form={"title": "Through the proxy"}, headers={"Origin": proxied})
    assert made.status == 200 and "/d/" in made.url, (made.status, made.text[:300])
    doc_path = made.url.removeprefix(proxied)
    via_api = http.post("/api/documents/", json_body={"title": "API", "text": "hello"})
    assert via_api.status == 201, via_api.text

    # Several WebSockets, as several editors would open them: whichever process each
    # lands on, each is upgraded and kept open (same origin, as the page's own script).
    ws_url = proxied.replace("http://", "ws://") + "/ws" + doc_path
    for _ in range(4):
        with connect(ws_url, origin=Origin(proxied), open_timeout=10) as ws:
            with contextlib.suppress(TimeoutError):
                ws.recv(timeout=0.5)
            assert ws.close_code is None, ws.close_code
    # Another site's page is still refused: the proxy passes the Origin through.
    with (
        connect(ws_url, origin=Origin("http://evil.example"), open_timeout=10) as ws,
        pytest.raises(ConnectionClosed),
    ):
        while True:
            ws.recv(timeout=5)
    assert ws.close_code == 4403

    # Both processes are behind it and agree on what was made through it.
    doc_id = via_api.json()["id"]
    for server in cluster:
        assert HttpClient(server.url).get(f"/api/documents/{doc_id}/").json()["text"] == "hello"
