"""bench/lan.py, the forwarder that puts bench.browser's pages a LAN away: bytes arrive
whole and in order, each way at least `delay` late, and a closed side is passed on."""

from __future__ import annotations

import socket
import threading
import time

from bench.lan import Lan


def echo_server() -> tuple[socket.socket, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def receive(conn: socket.socket, size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = conn.recv(65536)
        assert chunk, "closed early"
        got += chunk
    return got


def test_bytes_go_through_whole_in_order_and_late_each_way() -> None:
    listener, thread = echo_server()
    delay = 0.05
    payload = bytes(range(256)) * 4096  # 1 MiB, many chunks
    with (
        listener,
        Lan(listener.getsockname()[1], delay) as lan,
        socket.create_connection(("127.0.0.1", lan.port), timeout=10) as conn,
    ):
        started = time.monotonic()
        conn.sendall(b"ping")
        assert receive(conn, 4) == b"ping"
        # the connection's trip, then there and back: three delays at least
        assert time.monotonic() - started >= 3 * delay
        sender = threading.Thread(target=conn.sendall, args=(payload,))
        sender.start()
        assert receive(conn, len(payload)) == payload
        sender.join()
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(1) == b""  # the server saw the end and closed: passed back
    thread.join(timeout=10)
    assert not thread.is_alive()
