#!/usr/bin/env python
"""History benchmark: a document with 100,000 updates, a 1 MB document, and the live view.

  .venv/bin/python bench/history_bench.py [--updates 100000]

In one process, on SQLite in a throw-away folder (the test settings), through Django's
own request handling (views, JSON, templates; no network):

- the first page of the history panel (GET /api/documents/<id>/versions) and its HTML;
- the text at 20 random versions (GET /api/documents/<id>/?version=n);
- a restore of a random version (POST .../restore, the room already loaded);
- the changes view of a 1 MB document (GET /d/<id>/v/1/?against=current);
- server memory per live-view (SSE) viewer against per idle editor (tracemalloc).

The 100,000 updates are one character each, typed by two people in sessions with pauses,
written the way the sequencer writes them (a snapshot every 500 updates).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from channels.testing import ApplicationCommunicator, WebsocketCommunicator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import AsyncClient, Client  # noqa: E402

from collab import store  # noqa: E402
from collab.engine import DocumentEngine  # noqa: E402
from collab.host import get_host  # noqa: E402
from collab.log import DocumentLog  # noqa: E402
from collab.protocol import PreviewCall, SyncRequest  # noqa: E402
from editor.asgi import application  # noqa: E402


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def timed(action: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def report(name: str, times: list[float], limit: float) -> None:
    worst = max(times)
    verdict = "ok" if worst < limit else "OVER"
    print(
        f"{name:<44} median {ms(statistics.median(times)):>10}  max {ms(worst):>10}"
        f"  (limit {ms(limit)}: {verdict})"
    )


def clock(start: datetime) -> Iterator[datetime]:
    """The time of each batch of 50 characters: 0.3 s a character, and a 10-minute pause
    every 400 characters (every 8 batches)."""
    now = start
    for batch in range(10**9):
        now += timedelta(seconds=15) + (timedelta(minutes=10) if batch % 8 == 0 else timedelta())
        yield now


def build(updates: int) -> str:
    doc = store.create_document("Long history")
    engine = DocumentEngine(DocumentLog(updates=[]))
    times = clock(datetime(2026, 1, 1, tzinfo=UTC))
    rnd = random.Random(11)
    batch = []
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog\n"]
    typed = ""
    for rid in range(1, updates + 1):
        if not typed:
            typed = rnd.choice(words) + " "
        char, typed = typed[0], typed[1:]
        length = len(engine.text.encode("utf-16-le")) // 2
        at = length if rnd.random() < 0.9 else rnd.randint(0, length)
        ops = ([{"retain": at}] if at else []) + [{"insert": char}]
        who = "Ann" if (rid // 700) % 2 else "Bo"
        request = SyncRequest(f"bench-{who}", rid, engine.version, ops)
        _, update = engine.handle(who, request, who)
        assert update is not None
        batch.append(update)
        if len(batch) == 50:
            snapshot = engine.encode_state() if update.seq % store.SNAPSHOT_EVERY == 0 else None
            with mock.patch("collab.store.timezone.now", return_value=next(times)):
                store.append(doc.id, batch, snapshot)
            batch = []
    if batch:
        store.append(doc.id, batch)
    return doc.id


def one_megabyte() -> tuple[str, int]:
    line = "A line of prose with some words in it, for the changes view to read. "
    text = "\n".join(f"{i}. {line}" for i in range(14_000))
    doc = store.create_document("One megabyte", text)
    engine = DocumentEngine(store.load_log(doc.id))
    edited = text.replace("100. A line", "100. An edited line").replace("9000. A line", "9000.")
    update = engine.replace_text(edited + "\nThe end.\n", "Ann")
    assert update is not None
    store.append(doc.id, [update])
    return doc.id, len(text.encode())


async def restore_times(doc_id: str, latest: int, repeat: int) -> tuple[float, list[float]]:
    start = time.perf_counter()
    await get_host().call(doc_id, PreviewCall())  # loads the room (100,000 updates)
    loaded = time.perf_counter() - start
    client = AsyncClient()
    rnd = random.Random(5)
    times = []
    for _ in range(repeat):
        version = rnd.randint(1, latest)
        # Each restore alone: the previous one's preview is re-rendered meanwhile (in a
        # thread, a whole document's worth after a restore far back).
        await asyncio.sleep(1.5)
        start = time.perf_counter()
        response = await client.post(
            f"/api/documents/{doc_id}/restore",
            {"version": version},
            content_type="application/json",
        )
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.content
    return loaded, times


async def memory_per_connection(doc_id: str, count: int) -> tuple[float, float]:
    """Bytes held per open connection: live-view streams, then idle editors."""
    headers = [(b"host", b"localhost")]

    async def streams() -> list[ApplicationCommunicator]:
        opened = []
        for _ in range(count):
            scope = {
                "type": "http",
                "method": "GET",
                "path": f"/d/{doc_id}/events",
                "query_string": b"",
                "headers": headers,
            }
            comm = ApplicationCommunicator(application, scope)
            await comm.send_input({"type": "http.request", "body": b""})
            await comm.receive_output(5)  # headers
            await comm.receive_output(5)  # the first event
            opened.append(comm)
        return opened

    async def editors() -> list[WebsocketCommunicator]:
        opened = []
        for _ in range(count):
            comm = WebsocketCommunicator(application, f"/ws/d/{doc_id}/", headers=headers)
            connected, _ = await comm.connect()
            assert connected
            await comm.receive_from(5)  # the preview
            opened.append(comm)
        return opened

    await get_host().call(doc_id, PreviewCall())  # the room is loaded before measuring
    results = []
    # A first round of each warms what is allocated once (templates, code paths): the
    # second round measures what one more connection holds.
    for kind in (streams, editors, streams, editors):
        await asyncio.sleep(0.5)
        gc.collect()
        before = tracemalloc.take_snapshot()
        opened: list[Any] = await kind()
        await asyncio.sleep(0.5)
        gc.collect()
        after = tracemalloc.take_snapshot()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        results.append(grown / count)
        for comm in opened:
            if isinstance(comm, WebsocketCommunicator):
                await comm.disconnect()
            else:
                await comm.send_input({"type": "http.disconnect"})
                await comm.wait(5)
    return results[2], results[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # Django's test client
    start = time.perf_counter()
    doc_id = build(args.updates)
    print(f"built a document of {args.updates} updates in {time.perf_counter() - start:.1f} s")
    client = Client()
    latest = args.updates

    def first_page() -> None:
        assert client.get(f"/api/documents/{doc_id}/versions").status_code == 200

    def panel() -> None:
        assert client.get(f"/d/{doc_id}/history/").status_code == 200

    first = client.get(f"/api/documents/{doc_id}/versions").json()["versions"]
    print(f"first page: {len(first)} sessions, newest v{first[0]['version']}")
    report("history: first page (API)", timed(first_page, args.repeat), 0.2)
    report("history: first page (panel HTML)", timed(panel, args.repeat), 0.2)
    rnd = random.Random(3)

    def text_at() -> None:
        version = rnd.randint(0, latest)
        response = client.get(f"/api/documents/{doc_id}/", {"version": version})
        assert response.status_code == 200

    report("text at a random version (API)", timed(text_at, args.repeat), 0.5)

    def version_page() -> None:
        assert client.get(f"/d/{doc_id}/v/{rnd.randint(1, latest)}/").status_code == 200

    report("a random version's page (rendered)", timed(version_page, args.repeat), 0.5)
    loaded, restores = asyncio.run(restore_times(doc_id, latest, min(args.repeat, 10)))
    print(f"{f'(loading the room of {latest} updates':<44} {ms(loaded):>17})")
    report("restore a random version (API)", restores, 0.5)
    big, size = one_megabyte()

    def changes() -> None:
        response = client.get(f"/d/{big}/v/1/", {"against": "current"})
        assert response.status_code == 200 and b"<ins>" in response.content

    report(f"changes view of a {size / 1e6:.1f} MB document", timed(changes, 5), 1.0)
    tracemalloc.start()
    per_stream, per_editor = asyncio.run(
        memory_per_connection(store.create_document("Small", "# Hi\n").id, 50)
    )
    tracemalloc.stop()
    print(f"{'memory per live-view (SSE) viewer':<44} {per_stream / 1024:>8.1f} KiB")
    print(f"{'memory per idle editor (WebSocket)':<44} {per_editor / 1024:>8.1f} KiB")


if __name__ == "__main__":
    sys.exit(main())
