#!/usr/bin/env python
"""Where a Tandem server's memory goes: a diagnostic, not part of the benchmark run.

  .venv/bin/python bench/memtrace.py [--editors 200]

Starts `manage.py serve` under tracemalloc (through this file, see `serve` below), connects
idle editors to one small document, and prints the allocation sites that grew between one
editor and all of them, and what is still held after everyone left. The server writes a
snapshot when it gets SIGUSR1.
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


async def drive(base_url: str, pid: int, folder: Path, editors: int) -> None:
    from bench.tandem_load import Client, create_document, get_document

    ws = "ws" + base_url[len("http") :]
    doc = await asyncio.to_thread(create_document, base_url, "memtrace", "# hello\n\nworld\n")
    text, version = await asyncio.to_thread(get_document, base_url, doc)

    async def open_one(i: int) -> Client:
        c = Client(f"{ws}/ws/d/{doc}/", f"memtrace-{i:06d}", f"Idle {i}", text, version)
        await c.open(60)
        await asyncio.wait_for(c.synced.wait(), 60)
        return c

    clients = [await open_one(0)]
    await asyncio.sleep(2)
    s1 = await asyncio.to_thread(snapshot, pid, folder, 1)
    for i in range(1, editors + 1, 10):
        clients += await asyncio.gather(*(open_one(j) for j in range(i, min(i + 10, editors + 1))))
    await asyncio.sleep(3)
    s2 = await asyncio.to_thread(snapshot, pid, folder, 2)
    show(f"{editors} more idle editors", s2, s1, 12)
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
    args = ap.parse_args()
    from bench.server import TandemServer

    server = TandemServer(manage=[str(Path(__file__).resolve()), "--serve"])
    folder = server.tmp / "memtrace"
    folder.mkdir()
    server.extra_env["MEMTRACE_DIR"] = str(folder)
    try:
        server.start(timeout=120)
        asyncio.run(drive(server.base_url, server.pid, folder, args.editors))
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
