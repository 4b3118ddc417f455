#!/usr/bin/env python
"""Where a Tandem server's memory goes: a diagnostic, not part of the benchmark run.

  .venv/bin/python bench/memtrace.py [--editors 200] [--no-selections]
  .venv/bin/python bench/memtrace.py --rss [--editors 200]

Starts `manage.py serve` under tracemalloc (through this file, see `serve` below), connects
idle editors to one document, and prints the allocation sites that grew between one
editor and all of them, and what is still held after everyone left. The server writes a
snapshot when it gets SIGUSR1.

Each idle editor has said hello, synced once and then placed a selection of its own
(distinct anchor and head, some backwards), as a page whose person clicked somewhere
does: the room keeps everyone's caret and sends the carets frame to everyone
(--no-selections: only the caret at the end that every sync carries).

--rss: no tracemalloc (it costs memory of its own); the server's resident memory per
idle connection instead, the figure of issue 12's target (<= 100 KB), measured the way
bench/workloads.memory does (RSS settled for 3 s, smallest of the last samples).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import runpy
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def serve() -> None:
    """Inside the server process: trace allocations, snapshot on SIGUSR1, run manage.py."""
    tracemalloc.start(int(os.environ.get("MEMTRACE_FRAMES", "6")))
    out = Path(os.environ["MEMTRACE_DIR"])
    count = 0

    def dump(signum: int, frame: object) -> None:
        nonlocal count
        count += 1
        tracemalloc.take_snapshot().dump(str(out / f"snap{count}.bin"))
        (out / f"snap{count}.done").write_text("ok")

    signal.signal(signal.SIGUSR1, dump)
    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    sys.argv = [str(repo / "manage.py"), *sys.argv[2:]]
    runpy.run_path(str(repo / "manage.py"), run_name="__main__")


def snapshot(pid: int, folder: Path, n: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    done = folder / f"snap{n}.done"
    deadline = time.monotonic() + 120
    while not done.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no snapshot")
        time.sleep(0.2)
    return tracemalloc.Snapshot.load(str(folder / f"snap{n}.bin"))


def show(title: str, new: tracemalloc.Snapshot, old: tracemalloc.Snapshot, n: int) -> None:
    stats = new.compare_to(old, "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"\n== {title}: {total / 1024:.0f} KiB traced growth")
    for s in stats[:n]:
        if s.size_diff <= 0:
            continue
        print(f"{s.size_diff / 1024:10.1f} KiB {s.count_diff:+8d} blocks")
        for line in s.traceback.format()[-8:]:
            print("      " + line)


DOCUMENT = "".join(
    f"## Part {i}\n\nSome words in paragraph {i}, for carets to sit in.\n\n" for i in range(60)
)


async def open_idle(ws: str, doc: str, i: int, text: str, version: int, select: bool) -> Any:
    """An idle editor that said hello and synced; with `select`, then placed a selection
    of its own (distinct for each, every third one made backwards)."""
    from bench.tandem_load import Client

    c = Client(f"{ws}/ws/d/{doc}/", f"memtrace-{i:06d}", f"Idle {i}", text, version)
    await c.open(60)
    await asyncio.wait_for(c.synced.wait(), 60)
    if select:
        anchor = (i * 37) % len(text)
        head = min(len(text), anchor + 1 + i % 20)
        c.selection = (head, anchor) if i % 3 == 0 else (anchor, head)
        await c.send_sync()
        deadline = time.monotonic() + 60
        while c.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    return c


async def settled_rss(pid: int, seconds: float = 3.0) -> int:
    """RSS in KiB after `seconds` of quiet (the smallest of the last samples)."""
    from bench.tandem_load import proc_rss_kib

    samples: list[int] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(proc_rss_kib(pid) or 0)
        await asyncio.sleep(0.1)
    return min(samples[-5:])


async def connect(ws: str, doc: str, clients: list[Any], upto: int, select: bool) -> None:
    from bench.tandem_load import get_document

    text, version = await asyncio.to_thread(get_document, "http" + ws[2:], doc)
    while len(clients) < upto:
        batch = range(len(clients), min(len(clients) + 10, upto))
        clients += await asyncio.gather(
            *(open_idle(ws, doc, j, text, version, select) for j in batch)
        )


async def drive(base_url: str, pid: int, folder: Path | None, editors: int, select: bool) -> None:
    from bench.tandem_load import create_document

    ws = "ws" + base_url[len("http") :]
    doc = await asyncio.to_thread(create_document, base_url, "memtrace", DOCUMENT)
    clients: list[Any] = []
    await connect(ws, doc, clients, 1, select)
    await asyncio.sleep(2)
    if folder is None:  # --rss
        one = await settled_rss(pid)
        stages = sorted({max(1, editors // 4), max(1, editors // 2), editors})
        print(f"RSS with 1 idle editor: {one / 1024:.1f} MiB")
        for stage in stages:
            await connect(ws, doc, clients, stage + 1, select)
            rss = await settled_rss(pid)
            frames = sum(c.carets_frames for c in clients)
            print(
                f"RSS with {stage} more: {rss / 1024:.1f} MiB, {(rss - one) / stage:.1f} KiB "
                f"per idle connection ({frames} carets frames received in all)"
            )
        await asyncio.gather(*(c.close() for c in clients))
        return
    s1 = await asyncio.to_thread(snapshot, pid, folder, 1)
    await connect(ws, doc, clients, editors + 1, select)
    await asyncio.sleep(3)
    s2 = await asyncio.to_thread(snapshot, pid, folder, 2)
    show(f"{editors} more idle editors", s2, s1, 12)
    grown = sum(st.size_diff for st in s2.compare_to(s1, "filename"))
    print(f"\n== traced growth per idle connection: {grown / 1024 / editors:.1f} KiB")
    await asyncio.gather(*(c.close() for c in clients))
    await asyncio.sleep(5)
    s3 = await asyncio.to_thread(snapshot, pid, folder, 3)
    show("still held 5 s after everyone left", s3, s1, 8)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve()
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--editors", type=int, default=200)
    ap.add_argument("--no-selections", action="store_true", help="no selection of their own")
    ap.add_argument("--rss", action="store_true", help="resident memory, no tracemalloc")
    args = ap.parse_args()
    from bench.server import TandemServer

    if args.rss:
        server = TandemServer()
        folder = None
    else:
        server = TandemServer(manage=[str(Path(__file__).resolve()), "--serve"])
        folder = server.tmp / "memtrace"
        folder.mkdir()
        server.extra_env["MEMTRACE_DIR"] = str(folder)
    try:
        server.start(timeout=120)
        asyncio.run(
            drive(server.base_url, server.pid, folder, args.editors, not args.no_selections)
        )
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
