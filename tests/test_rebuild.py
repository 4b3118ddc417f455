"""Bases older than the recent history: rebuilt exactly, in the rebuild thread (never on
the event loop), at a bounded cost; beyond that bound the client is told `too_old` and
resyncs from the current text."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collab import delta as D
from collab import engine as engine_module
from collab.crdt import new_doc
from collab.engine import DocumentEngine, NeedsRebuild, RebuildJob
from collab.log import DocumentLog, StoredUpdate
from collab.protocol import TOO_OLD, ProtocolError, SyncRequest

# ---------------------------------------------------------------- the engine


def text_at(updates: list[StoredUpdate], version: int) -> str:
    """The text at `version`, straight from the log (no engine involved)."""
    _, ytext = new_doc([u.data for u in updates[:version]])
    return str(ytext)


def units(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def grow(engine: DocumentEngine, edits: list[tuple[int, int, str]], checkpoint_every: int) -> None:
    """Apply one request per edit (a position fraction, a delete length, an insert)."""
    for where, cut, word in edits:
        text = engine.text
        pos = where % (len(text) + 1)  # in code points, then in UTF-16 units
        cut = units(text[pos : pos + cut])
        pos = units(text[:pos])
        ops: D.Delta = [{"retain": pos}] if pos else []
        if cut:
            ops.append({"delete": cut})
        ops.append({"insert": word})
        engine.handle("s", SyncRequest("editor-grow", engine.version + 1, engine.version, ops))
        if checkpoint_every and engine.version % checkpoint_every == 0:
            engine.remember_checkpoint(engine.version, engine.encode_state())


words = st.text(alphabet="ab😀\n ", min_size=1, max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 3), words), max_size=40),
    checkpoint_every=st.sampled_from([0, 3, 7]),
    data=st.data(),
)
def test_a_rebuild_gives_the_text_at_the_base_and_the_exact_change_since(
    edits: list[tuple[int, int, str]], checkpoint_every: int, data: st.DataObject
) -> None:
    engine = DocumentEngine(DocumentLog([]))
    grow(engine, edits, checkpoint_every)
    updates = list(engine._updates)
    after = data.draw(st.integers(0, engine.version), label="after")
    upto = data.draw(st.integers(after, engine.version), label="upto")
    text, change = engine.rebuild_job(after, upto).run()
    assert text.text == text_at(updates, after)
    assert D.apply(text.text, change) == text_at(updates, upto)


def test_an_old_base_is_handed_out_as_a_job_and_answered_exactly_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "HISTORY_VERSIONS", 4)
    edits = [(i * 7, 1, w) for i, w in enumerate("abcdefghijklmnopqrst")]
    twins = DocumentEngine(DocumentLog([])), DocumentEngine(DocumentLog([]))
    for twin in twins:
        grow(twin, edits, 0)
    offloaded, inline = twins
    request = SyncRequest("editor-late", 1, 3, [{"retain": 2}, {"insert": "LATE"}])
    done: dict[tuple[int, int], Any] = {}
    with pytest.raises(NeedsRebuild) as need:
        offloaded.handle("late", request, "", done)
    assert offloaded.version == inline.version  # nothing changed yet
    job = need.value.job
    assert (job.after, job.upto) == (3, offloaded.version)
    done[job.after, job.upto] = job.run()
    grow(offloaded, [(0, 0, "x")], 0)  # the document moved on while the job ran
    grow(inline, [(0, 0, "x")], 0)
    answer, _ = offloaded.handle("late", request, "", done)
    assert answer == inline.handle("late", request)[0]
    assert offloaded.text == inline.text


def test_a_base_too_far_to_rebuild_is_too_old_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "HISTORY_VERSIONS", 4)
    monkeypatch.setattr(engine_module, "MAX_REBUILD_UPDATES", 10)
    engine = DocumentEngine(DocumentLog([]))
    grow(engine, [(0, 0, "w")] * 20, 0)
    before = (engine.version, engine.text)
    with pytest.raises(ProtocolError) as refused:
        engine.handle("late", SyncRequest("editor-late", 1, 2, [{"insert": "x"}]))
    assert refused.value.code == TOO_OLD
    assert (engine.version, engine.text) == before
    # A checkpoint near the base brings it back within reach.
    engine.remember_checkpoint(engine.version, engine.encode_state())
    grow(engine, [(0, 0, "w")] * 6, 0)
    answer, _ = engine.handle("late", SyncRequest("editor-late", 1, 20, [{"insert": "x"}]))
    assert answer.version == engine.version and engine.text == "x" + "w" * 26


# ---------------------------------------------------------------- through the consumer


async def _document_at(version: int) -> tuple[str, Any]:
    """A document moved to `version` by one editor typing "w" each time (so its text at
    version v is "w" * v), and that editor, still connected."""
    from tests.test_consumer_sync import Editor, new_document, stored

    doc_id = await new_document("")
    writer = Editor(doc_id, "tab-writer-01")
    await writer.connect()
    at = (await stored(doc_id))[1]
    assert at == 0
    while at < version:
        answer = await writer.sync(at, [{"insert": "w"}])
        at = answer["version"]
    return doc_id, writer


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_rebuild_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the rebuild runs, another coroutine keeps running (the job sleeps, so an inline
    rebuild would freeze it: its counter would not move while the job runs)."""
    from tests.test_consumer_sync import Editor, apply, stored

    monkeypatch.setattr(engine_module, "HISTORY_VERSIONS", 4)
    doc_id, writer = await _document_at(30)
    ticks = 0
    seen: list[tuple[int, int, str]] = []
    real_run = RebuildJob.run

    def slow_run(job: RebuildJob) -> Any:
        start = ticks
        time.sleep(0.3)
        seen.append((start, ticks, threading.current_thread().name))
        return real_run(job)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    monkeypatch.setattr(RebuildJob, "run", slow_run)
    counting = asyncio.get_running_loop().create_task(ticker())
    try:
        late = Editor(doc_id, "tab-late-0001")
        await late.connect()
        answer = await late.sync(3, [{"insert": "L"}])  # the text at 3 is "www"
    finally:
        counting.cancel()
    assert answer["type"] == "ack", answer
    assert apply("Lwww", answer["delta"]) == (await stored(doc_id))[0]
    assert len(seen) == 1
    start, end, thread = seen[0]
    assert end > start, "the event loop stood still while the log was rebuilt"
    assert thread.startswith("tandem-rebuild")
    await late.close()
    await writer.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_too_old_is_answered_and_the_client_resyncs_from_the_current_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.test_consumer_sync import Editor, stored

    monkeypatch.setattr(engine_module, "HISTORY_VERSIONS", 4)
    monkeypatch.setattr(engine_module, "MAX_REBUILD_UPDATES", 8)
    doc_id, writer = await _document_at(20)
    before = await stored(doc_id)
    late = Editor(doc_id, "tab-late-0001")
    await late.connect()
    shadow = "www"
    typed: D.Delta = [{"retain": 1}, {"insert": "L"}]  # the text at 3, and an edit
    refused = await late.sync(3, typed)
    assert refused["type"] == "error" and refused["code"] == TOO_OLD and refused["rid"] == 1
    assert await stored(doc_id) == before  # nothing changed
    # The recovery the browser makes (static/js/sync-client.js resync): the current text
    # and version over HTTP, the unsent edit moved past the difference, sent from there.
    text, version = before
    local = D.apply(shadow, typed)
    moved = D.transform(D.diff(shadow, text), typed, False)
    answer = await late.sync(version, moved)
    assert answer["type"] == "ack"
    final = (await stored(doc_id))[0]
    assert D.apply(D.apply(text, moved), answer["delta"]) == final
    assert final.count("L") == 1 and len(final) == len(local) + len(text) - len(shadow)
    await late.close()
    await writer.close()


@pytest.mark.asyncio
async def test_a_request_waiting_for_its_rebuild_asks_again_if_the_room_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from collab.sequencer import RoomGone, Sequencer

    monkeypatch.setattr(engine_module, "HISTORY_VERSIONS", 4)
    engine = DocumentEngine(DocumentLog([]))
    grow(engine, [(0, 0, "w")] * 20, 0)
    gate = threading.Event()
    real_run = RebuildJob.run

    def held(job: RebuildJob) -> Any:
        gate.wait(5)
        return real_run(job)

    monkeypatch.setattr(RebuildJob, "run", held)
    sequencer = Sequencer(
        "doc", engine, None, updates_since_snapshot=0, on_commit=lambda: None, on_failure=print
    )
    late = SyncRequest("editor-late", 1, 2, [{"insert": "x"}])
    waiting = asyncio.get_running_loop().create_task(sequencer.submit("late", late, ""))
    await asyncio.sleep(0.1)
    assert sequencer.busy and not waiting.done()  # (a busy room is not unloaded)
    before = (engine.version, engine.text)
    sequencer.stop()
    with pytest.raises(RoomGone):
        await asyncio.wait_for(waiting, 5)
    gate.set()
    await asyncio.sleep(0.1)  # the rebuild ends: nothing is applied by a stopped room
    assert (engine.version, engine.text) == before and not sequencer.busy
