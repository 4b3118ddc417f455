"""Clients that stop reading and clients that flood, against real servers (collab/flow.py).

A silent socket on a document whose long paragraph changes ten times a second is owed
60 KB per change: the server must close it within seconds (Daphne's ping would take 25 s,
while the bytes owed pile up in memory), and an editor that reads stays connected. On one
process (in-memory layer) and on two (Redis, the silent socket on the process that does
not hold the room); and a live view's event stream (SSE) that stops reading is dropped.
Without the outbound check the silent sockets stay open: these fail.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable

import pytest
from websockets.sync.client import connect
from websockets.typing import Origin

from bench.slow_readers import replace_text, silent_socket, tcp_open
from e2e.cluster import Cluster
from e2e.conftest import CreatedDocument, create_document
from e2e.server import TandemServer

PARAGRAPH = ("lorem ipsum " * 5200)[:60_000]
DEADLINE = 12.0  # well under Daphne's ping timeout (10 + 15 s), which would close them too


class Reader(threading.Thread):
    """An editor that reads everything it is sent (and answers Daphne's pings)."""

    def __init__(self, ws_url: str, origin: str) -> None:
        super().__init__(daemon=True)
        self.url, self.origin = ws_url, origin
        self.open = threading.Event()
        self.stop = threading.Event()
        self.frames = 0
        self.closed: int | None = None

    def run(self) -> None:
        with connect(self.url, origin=Origin(self.origin), max_size=None) as ws:
            self.open.set()
            try:
                while not self.stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        ws.recv(timeout=0.2)
                        self.frames += 1
            except Exception:
                self.closed = ws.close_code if ws.close_code is not None else -1


def silent_readers_are_closed(
    write_url: str, read_url: str, doc: CreatedDocument, sockets: int = 3, events: bool = False
) -> None:
    host = read_url.removeprefix("http://")
    reader = Reader(f"ws://{host}/ws/d/{doc.id}/", read_url)
    reader.start()
    assert reader.open.wait(10)
    silent = [silent_socket(read_url, doc.id, events=events) for _ in range(sockets)]
    start, changes = time.monotonic(), 0
    while any(tcp_open(s) for s in silent) and time.monotonic() - start < DEADLINE:
        changes += 1
        replace_text(write_url, doc.id, PARAGRAPH + " word" * changes)
        time.sleep(max(0.0, start + changes / 10 - time.monotonic()))
    open_left = sum(tcp_open(s) for s in silent)
    for s in silent:
        s.close()
    assert open_left == 0, f"{open_left} silent sockets still open after {changes} changes"
    assert reader.closed is None and reader.frames > changes // 2, (reader.closed, reader.frames)
    reader.stop.set()
    reader.join(5)


def test_a_client_that_stops_reading_is_closed_and_a_reader_stays(server: TandemServer) -> None:
    doc = create_document(server, "slow readers", PARAGRAPH)
    silent_readers_are_closed(server.url, server.url, doc)


def test_a_live_view_that_stops_reading_is_dropped(server: TandemServer) -> None:
    doc = create_document(server, "slow live view", PARAGRAPH)
    silent_readers_are_closed(server.url, server.url, doc, events=True)


def test_a_client_that_stops_reading_is_closed_across_processes(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster()
    doc = create_document(cluster[0], "slow readers", PARAGRAPH)
    replace_text(cluster[0].url, doc.id, PARAGRAPH + " loaded")  # the room runs on [0]
    silent_readers_are_closed(cluster[0].url, cluster[1].url, doc)


def test_a_flood_is_closed_with_4429_and_others_carry_on(server: TandemServer) -> None:
    doc = create_document(server, "flood", "-")
    host = server.url.removeprefix("http://")
    url = f"ws://{host}/ws/d/{doc.id}/"
    with connect(url, origin=Origin(server.url), max_size=None) as flood:
        for rid in range(1, 2001):
            request = {"type": "sync", "cid": "flood-0001", "rid": rid, "base": 1, "ops": []}
            try:
                flood.send(json.dumps(request))
            except Exception:
                break  # closed under it
        deadline = time.monotonic() + 10
        with pytest.raises(Exception):  # noqa: B017 - ConnectionClosed, whichever kind
            while time.monotonic() < deadline:
                flood.recv(timeout=deadline - time.monotonic())
        assert flood.close_code == 4429
    with connect(url, origin=Origin(server.url), max_size=None) as editor:
        request = {"type": "sync", "cid": "editor-0001", "rid": 1, "base": 1, "ops": []}
        editor.send(json.dumps(request))
        while True:
            frame = editor.recv(timeout=10)
            if isinstance(frame, str) and frame.startswith("{"):
                assert json.loads(frame)["type"] in {"ack", "carets"}, frame
                if json.loads(frame)["type"] == "ack":
                    break
