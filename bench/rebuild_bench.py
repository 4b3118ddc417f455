"""What a request from a base older than the recent history costs (docs/security.md).

For logs of several lengths (one editor typing, a snapshot every store.SNAPSHOT_EVERY
updates remembered as a checkpoint, as the sequencer does), and bases just past the
history and further back: the updates a rebuild replays, its time in the rebuild thread,
the longest the event loop waited meanwhile (a coroutine that sleeps 1 ms in a loop),
and what the old way (merge the updates, apply them at once, on the loop) cost.

    .venv/bin/python -m bench.rebuild_bench
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from pycrdt import merge_updates

from collab import store
from collab.crdt import new_doc
from collab.engine import HISTORY_VERSIONS, DocumentEngine
from collab.log import DocumentLog
from collab.protocol import ProtocolError, SyncRequest


def grown(versions: int) -> DocumentEngine:
    rng = random.Random(versions)
    engine = DocumentEngine(DocumentLog([]))
    for i in range(versions):
        text = engine.text
        pos = rng.randint(0, len(text))
        ops: list[dict[str, object]] = [{"retain": pos}] if pos else []
        if len(text) > 4000 and rng.random() < 0.4:
            ops.append({"delete": min(6, len(text) - pos)} if pos < len(text) else {"insert": "."})
        else:
            ops.append({"insert": f"word{i} "})
        engine.handle("bench", SyncRequest("bench-editor", i + 1, engine.version, ops))
        if engine.version % store.SNAPSHOT_EVERY == 0:
            engine.remember_checkpoint(engine.version, engine.encode_state())
    return engine


def old_way_ms(engine: DocumentEngine, after: int) -> float:
    """The rebuild before: all updates from the start, merged, applied in one call."""
    data = [u.data for u in engine._updates]
    start = time.perf_counter()
    scratch, ytext = new_doc(data[:after])
    rest = data[after:]
    scratch.apply_update(rest[0] if len(rest) == 1 else merge_updates(*rest))
    str(ytext)
    return (time.perf_counter() - start) * 1e3


async def off_loop(engine: DocumentEngine, after: int) -> tuple[int, float, float]:
    """(updates replayed, ms in the rebuild thread, longest loop gap in ms)."""
    job = engine.rebuild_job(after, engine.version)
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0.01)
    start = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:
        await asyncio.get_running_loop().run_in_executor(pool, job.run)
    spent = time.perf_counter() - start
    done.set()
    await task
    return len(job.prefix) + len(job.updates), spent * 1e3, max(gaps) * 1e3


def main() -> None:
    print(f"history {HISTORY_VERSIONS} versions; checkpoint every {store.SNAPSHOT_EVERY}")
    print("versions  base     replayed  thread ms  max loop gap ms  old way ms (on the loop)")
    for versions in (1024, 4096, 16384):
        engine = grown(versions)
        for back in (HISTORY_VERSIONS + 88, 2048, 4000, versions - 1):
            after = versions - back
            if after < 0:
                continue
            try:
                runs = [asyncio.run(off_loop(engine, after)) for _ in range(3)]
            except ProtocolError as refused:
                print(f"{versions:8}  {after:6}  {refused.code} (nothing rebuilt)")
                continue
            replayed = runs[0][0]
            thread = statistics.median(r[1] for r in runs)
            gap = max(r[2] for r in runs)
            old = statistics.median(old_way_ms(engine, after) for _ in range(3))
            print(f"{versions:8}  {after:6}  {replayed:8}  {thread:9.1f}  {gap:15.1f}  {old:10.1f}")


if __name__ == "__main__":
    main()
