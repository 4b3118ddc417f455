#!/usr/bin/env python
"""slow_readers -- server memory while N WebSockets never read what they are sent.

A document with one long paragraph (60 KB by default: every change re-renders it, so each
editor is sent the whole block again), N raw sockets that open a WebSocket on it and then
read nothing (a small receive buffer, so the kernel holds little for them), and the text
replaced over HTTP R times a second for S seconds. Reported: the server's RSS before the
sockets, its peak while the text changes, and after; how many silent sockets the server
closed (TCP state, not by reading them). Every loop is bounded in count and time; only
loopback servers.

  .venv/bin/python bench/slow_readers.py                        # this checkout
  .venv/bin/python bench/slow_readers.py --repo /work/main      # another checkout (before)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import TandemServer, proc_status
from bench.tandem_load import check_loopback, create_document, http_request

TCP_ESTABLISHED = 1


def silent_socket(
    base_url: str, doc_id: str, rcvbuf: int = 4096, events: bool = False
) -> socket.socket:
    """A WebSocket on the document (or with `events`, its live view's event stream) that,
    after the response's head, never reads again."""
    url = urlparse(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((host, port))
    if events:
        request = f"GET /d/{doc_id}/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
        expected = b"HTTP/1.1 200"
    else:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws/d/{doc_id}/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Origin: http://{host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        expected = b"HTTP/1.1 101"
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: leave everything after the head unread
        if not chunk:
            raise RuntimeError("the server closed the connection")
        head += chunk
    if not head.startswith(expected):
        raise RuntimeError(f"not what was asked for: {head[:200]!r}")
    return sock


def tcp_open(sock: socket.socket) -> bool:
    """Whether the connection is still established (the server has neither closed nor
    reset it), without reading anything: Linux's TCP_INFO starts with the state."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return bool(struct.unpack("B", info[:1])[0] == TCP_ESTABLISHED)


def replace_text(base_url: str, doc_id: str, text: str) -> None:
    request = urllib.request.Request(
        f"{base_url}/api/documents/{doc_id}/text",
        data=text.encode(),
        method="PUT",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def run(
    base_url: str,
    pid: int | None,
    sockets: int,
    paragraph_kb: int,
    seconds: float,
    rate: float,
) -> dict[str, Any]:
    check_loopback(base_url)
    paragraph = ("lorem ipsum " * (paragraph_kb * 1024 // 12 + 1))[: paragraph_kb * 1024]
    doc_id = create_document(base_url, "slow readers", paragraph)
    rss = (lambda: proc_status(pid).get("VmRSS", 0) // 1024) if pid else (lambda: 0)
    before = rss()
    silent = [silent_socket(base_url, doc_id) for _ in range(sockets)]
    time.sleep(1.0)
    start, peak, changes, closed_at = time.monotonic(), before, 0, None
    while time.monotonic() - start < seconds:
        changes += 1
        replace_text(base_url, doc_id, paragraph + " word" * changes)
        peak = max(peak, rss())
        if closed_at is None and not any(tcp_open(s) for s in silent):
            closed_at = time.monotonic() - start
        time.sleep(max(0.0, start + changes / rate - time.monotonic()))
    time.sleep(2.0)  # the close handshake's timeout, then the buffers are freed
    still_open = sum(tcp_open(s) for s in silent)
    after = rss()
    for s in silent:
        s.close()
    status, _ = http_request("GET", f"{base_url}/api/documents/{doc_id}/")
    return {
        "sockets": sockets,
        "paragraph_kb": paragraph_kb,
        "seconds": seconds,
        "changes": changes,
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "rss_after_mb": after,
        "growth_peak_mb": peak - before,
        "silent_still_open": still_open,
        "all_closed_after_s": None if closed_at is None else round(closed_at, 1),
        "server_answers": status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--base-url", help="a running server (default: start one)")
    parser.add_argument("--pid", type=int, help="its process id, for RSS")
    parser.add_argument("--repo", type=Path, help="start the server from this checkout")
    parser.add_argument("-n", "--sockets", type=int, default=20)
    parser.add_argument("--paragraph-kb", type=int, default=60)
    parser.add_argument("-s", "--seconds", type=float, default=8.0)
    parser.add_argument("-r", "--rate", type=float, default=10.0, help="changes per second")
    args = parser.parse_args()
    if args.base_url:
        result = run(
            args.base_url, args.pid, args.sockets, args.paragraph_kb, args.seconds, args.rate
        )
    else:
        with TandemServer(repo=args.repo) as server:
            result = run(
                server.base_url,
                server.pid,
                args.sockets,
                args.paragraph_kb,
                args.seconds,
                args.rate,
            )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
