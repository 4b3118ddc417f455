"""Same-origin check for WebSocket handshakes.

Browsers send an Origin header with every WebSocket handshake and do not apply the
same-origin policy to WebSockets themselves, so the server must: a page served from
another site must not be able to open an editing connection (cross-site WebSocket
hijacking). The check compares the Origin's host with the Host the client connected to,
which works for any address the app is shared on, without a list of allowed names.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def is_same_origin(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when the handshake's Origin names the host it was sent to.

    A client that sends no Origin at all is not a browser (browsers always send one),
    so it is allowed: benchmarks, the CLI and tests connect that way.
    """
    headers = list(headers)
    origin = _header(headers, b"origin")
    if origin is None:
        return True
    host = _header(headers, b"host")
    if not host or origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return False
    default_port = 443 if parts.scheme == "https" else 80
    origin_host = f"{parts.hostname}:{parts.port or default_port}"
    split = urlsplit(f"//{host}")
    if not split.hostname:
        return False
    host_host = f"{split.hostname}:{split.port or default_port}"
    return origin_host.lower() == host_host.lower()
