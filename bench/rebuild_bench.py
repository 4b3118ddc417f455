"""What a request from a base older than the recent history costs (docs/security.md).

For logs of several lengths (one editor typing, a snapshot every SNAPSHOT_EVERY updates
remembered as a checkpoint, as the sequencer does), and bases just past the history and
further back: the updates a rebuild replays, its CPU time in the rebuild thread, the
longest single call into pycrdt (which holds the GIL, so the most the event loop can be
held up by it), and the CPU time of the old way (merge the updates, apply them at once,
on the event loop). CPU times (time.thread_time), so a busy machine does not inflate
them. The first lines: how long the event loop of this process waits between 1 ms
sleeps with nothing else to do (the machine's own noise).

    .venv/bin/python -m bench.rebuild_bench
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from pycrdt import merge_updates

from collab.crdt import new_doc
from collab.engine import HISTORY_VERSIONS, DocumentEngine, RebuildJob, _capture, _utf16_events
from collab.log import DocumentLog
from collab.offsets import TrackedText
from collab.protocol import ProtocolError, SyncRequest

T = TypeVar("T")
SNAPSHOT_EVERY = 500  # collab/store.py's (importing it needs Django set up)


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
        if engine.version % SNAPSHOT_EVERY == 0:
            engine.remember_checkpoint(engine.version, engine.encode_state())
    return engine


def old_way_ms(engine: DocumentEngine, after: int) -> float:
    """The rebuild before (CPU ms): all updates from the start, merged, applied in one
    call with a text observer, on the event loop."""
    data = [u.data for u in engine._updates]
    start = time.thread_time()
    scratch, ytext = new_doc(data[:after])
    before = TrackedText.of(str(ytext))
    rest = data[after:]
    with _capture(scratch, ytext) as (_, events):
        scratch.apply_update(rest[0] if len(rest) == 1 else merge_updates(*rest))
    _utf16_events(before, events)
    return (time.thread_time() - start) * 1e3


def measured(job: RebuildJob) -> tuple[float, float]:
    """(CPU ms, longest pycrdt call in ms) of `job`'s steps, made as RebuildJob.run makes
    them (checked against it)."""
    longest = 0.0
    start = time.thread_time()

    def timed(call: Callable[[], T]) -> T:
        nonlocal longest
        began = time.thread_time()
        result = call()
        longest = max(longest, time.thread_time() - began)
        return result

    scratch, ytext = new_doc()
    for update in job.prefix:
        timed(partial(scratch.apply_update, update))
    before = TrackedText.of(timed(lambda: str(ytext)))
    with _capture(scratch, ytext) as (_, events):
        transaction = scratch.transaction()
        transaction.__enter__()
        for update in job.updates:
            timed(partial(scratch.apply_update, update))
        timed(lambda: transaction.__exit__(None, None, None))
    change = _utf16_events(before, events)[1]
    spent = time.thread_time() - start
    assert (before, change) == job.run() or (before.text, change) == (
        job.run()[0].text,
        job.run()[1],
    )
    return spent * 1e3, longest * 1e3


async def loop_noise(seconds: float = 1.0) -> tuple[float, float]:
    """(p99, max) ms between 1 ms sleeps of an idle event loop."""
    gaps: list[float] = []
    last = time.perf_counter()
    end = last + seconds
    while last < end:
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    gaps.sort()
    return gaps[int(len(gaps) * 0.99)] * 1e3, gaps[-1] * 1e3


def main() -> None:
    p99, worst = asyncio.run(loop_noise())
    print(f"idle event loop: p99 {p99:.1f} ms, max {worst:.1f} ms between 1 ms sleeps")
    print(f"history {HISTORY_VERSIONS} versions; checkpoint every {SNAPSHOT_EVERY}")
    print(
        "versions  base    replayed  thread CPU ms  longest call ms  old way CPU ms (on the loop)"
    )
    for versions in (1024, 4096, 16384):
        engine = grown(versions)
        for back in (HISTORY_VERSIONS + 88, 2048, 4000, versions - 1):
            after = versions - back
            if after < 0:
                continue
            try:
                job = engine.rebuild_job(after, engine.version)
            except ProtocolError as refused:
                print(f"{versions:8}  {after:6}  {refused.code} (refused at once, nothing rebuilt)")
                continue
            runs = [measured(job) for _ in range(3)]
            thread = statistics.median(r[0] for r in runs)
            longest = max(r[1] for r in runs)
            old = statistics.median(old_way_ms(engine, after) for _ in range(3))
            replayed = len(job.prefix) + len(job.updates)
            print(
                f"{versions:8}  {after:6}  {replayed:8}  {thread:13.1f}  {longest:15.1f}"
                f"  {old:10.1f}"
            )


if __name__ == "__main__":
    main()
