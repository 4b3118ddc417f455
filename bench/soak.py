#!/usr/bin/env python
"""soak -- editors come, type and go for minutes; afterwards the server is back where it was.

N editors over D documents, for S seconds: each connects, types a few characters a second
for a random 3-15 s, leaves (half of them by dropping the socket, half with a close),
waits a moment and comes back as a new page load. Before and after (once everyone left
and the rooms' idle timeout passed) the server reports, on SIGUSR2, its open rooms,
asyncio tasks, live Python objects (gc) and RSS; they must come back to baseline. Every
loop is bounded by S and explicit timeouts; only loopback servers.

  .venv/bin/python bench/soak.py                     # 30 editors, 3 documents, 180 s
  .venv/bin/python bench/soak.py -n 6 -d 2 -s 10     # what tests/test_soak.py runs
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import os
import random
import runpy
import signal
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import TandemServer, proc_status
from bench.tandem_load import Client, create_document, get_document

ROOM_IDLE_SECONDS = 2.0  # the server's TANDEM_ROOM_IDLE_SECONDS during a soak


def serve() -> None:
    """Inside the server process: write what is open to SOAK_REPORT on SIGUSR2, then run
    manage.py. The handler runs on the main thread, between two steps of the event loop."""
    out = Path(os.environ["SOAK_REPORT"])

    def report(signum: int, frame: object) -> None:
        from collab.host import get_host

        loop = asyncio.get_event_loop()
        gc.collect()
        objects = gc.get_objects()
        state = {
            "rooms": len(get_host().rooms()),
            "tasks": len(asyncio.all_tasks(loop)),
            "objects": len(objects),
            "types": dict(collections.Counter(type(o).__qualname__ for o in objects)),
        }
        del objects
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(out)

    signal.signal(signal.SIGUSR2, report)
    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    sys.argv = [str(repo / "manage.py"), *sys.argv[2:]]
    runpy.run_path(str(repo / "manage.py"), run_name="__main__")


def server_state(pid: int, report: Path) -> dict[str, Any]:
    report.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 30
    while not report.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the server wrote no report")
        time.sleep(0.1)
    state: dict[str, Any] = json.loads(report.read_text())
    state["rss_mb"] = proc_status(pid).get("VmRSS", 0) // 1024
    return state


async def editor(base_url: str, doc_id: str, index: int, until: float, rng: random.Random) -> int:
    """One person's sessions until `until`; returns how many it had."""
    ws = "ws" + base_url[len("http") :]
    sessions = 0
    while time.monotonic() < until - 1:
        sessions += 1
        text, version = await asyncio.to_thread(get_document, base_url, doc_id)
        client = Client(
            f"{ws}/ws/d/{doc_id}/",
            f"soak-{index:03d}-{sessions:04d}",
            f"Soak {index}",
            text,
            version,
        )
        try:
            await client.open(30)
            await asyncio.wait_for(client.synced.wait(), 30)
            stay = min(rng.uniform(3, 15), until - time.monotonic())
            end = time.monotonic() + stay
            while time.monotonic() < end:
                client.type_text("s")
                await client.send_sync()
                await asyncio.sleep(rng.uniform(0.2, 0.6))
        finally:
            if rng.random() < 0.5 and client.ws is not None:
                client.closing = True
                client.ws.transport.abort()  # gone without a goodbye (a closed laptop)
            await client.close()
        await asyncio.sleep(rng.uniform(0.2, 2.0))
    return sessions


async def drive(base_url: str, editors: int, docs: int, seconds: float) -> int:
    doc_ids = [
        await asyncio.to_thread(create_document, base_url, f"soak {d}", "# soak\n\n")
        for d in range(docs)
    ]
    until = time.monotonic() + seconds
    rng = random.Random(13)
    counts = await asyncio.wait_for(
        asyncio.gather(
            *(
                editor(base_url, doc_ids[i % docs], i, until, random.Random(rng.random()))
                for i in range(editors)
            )
        ),
        seconds + 120,
    )
    return sum(counts)


def run(server: TandemServer, editors: int, docs: int, seconds: float) -> dict[str, Any]:
    report = server.tmp / "soak.json"
    # Warm up (imports, first room, caches) so the baseline is a server that has worked,
    # with as many editors and documents as the soak: worker threads are started as the
    # load needs them, and each keeps a Markdown parser (about 150 objects, 5 % of the
    # baseline), which a smaller warm-up left to the soak to start (a CI failure).
    asyncio.run(drive(server.base_url, editors, docs, min(seconds, 3.0)))
    time.sleep(ROOM_IDLE_SECONDS + 3)
    before = server_state(server.pid, report)
    sessions = asyncio.run(drive(server.base_url, editors, docs, seconds))
    during_peak = proc_status(server.pid).get("VmHWM", 0) // 1024
    after: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # rooms unload ROOM_IDLE_SECONDS after the last left
        time.sleep(1.0)
        after = server_state(server.pid, report)
        if after["rooms"] <= before["rooms"] and after["tasks"] <= before["tasks"]:
            break
    grown = {
        name: count - before["types"].get(name, 0)
        for name, count in after.pop("types", {}).items()
        if count - before["types"].get(name, 0) > 0
    }
    before.pop("types", None)
    return {
        "grown_types": dict(sorted(grown.items(), key=lambda kv: -kv[1])[:12]),
        "editors": editors,
        "documents": docs,
        "seconds": seconds,
        "sessions": sessions,
        "before": before,
        "after": after,
        "rss_peak_mb": during_peak,
    }


def soak_server() -> TandemServer:
    server = TandemServer(manage=[str(Path(__file__).resolve()), "--serve"])
    server.extra_env["SOAK_REPORT"] = str(server.tmp / "soak.json")
    server.extra_env["TANDEM_ROOM_IDLE_SECONDS"] = str(ROOM_IDLE_SECONDS)
    return server


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("-n", "--editors", type=int, default=30)
    parser.add_argument("-d", "--documents", type=int, default=3)
    parser.add_argument("-s", "--seconds", type=float, default=180.0)
    args = parser.parse_args()
    server = soak_server()
    try:
        server.start(timeout=120)
        result = run(server, args.editors, args.documents, args.seconds)
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
