"""collab.engine: the sync protocol of docs/protocol.md, step by step and fault by fault."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Text

from collab import delta as D
from collab import engine as E
from collab.crdt import TEXT_KEY, new_doc, text_update
from collab.engine import Answer, DocumentEngine, ProtocolError, SyncRequest
from collab.log import DocumentLog, StoredUpdate
from tests.sim_client import Push, SimClient

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Room:
    """An engine plus what the room adapter would have persisted."""

    def __init__(self, text: str = "", clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.persisted = [StoredUpdate(1, text_update(text))] if text else []
        self.engine = self.load()

    def load(self) -> DocumentEngine:
        return DocumentEngine(DocumentLog(updates=list(self.persisted)), clock=self.clock)

    def handle(self, session: object, request: SyncRequest, author: str = "") -> Answer:
        answer, stored = self.engine.handle(session, request, author)
        if stored is not None:
            self.persisted.append(stored)
        return answer

    def client(self, cid: str) -> SimClient:
        return SimClient(cid, self.engine.text, self.engine.version)

    def sync(self, session: object, client: SimClient, action: str = "") -> Answer:
        """One full round trip of `client` over `session`."""
        request = client.request(action)
        assert request is not None
        answer = self.handle(session, request)
        client.receive(answer)
        return answer

    def rebuilt(self) -> str:
        return text_of(self.persisted)


def text_of(updates: list[StoredUpdate]) -> str:
    return str(DocumentLog(updates=list(updates)).build().get(TEXT_KEY, type=Text))


def ins(pos: int, s: str) -> D.Delta:
    return [{"retain": pos}, {"insert": s}] if pos else [{"insert": s}]


def dele(pos: int, n: int) -> D.Delta:
    return [{"retain": pos}, {"delete": n}] if pos else [{"delete": n}]


def req(cid: str, rid: int, base: int, ops: D.Delta | None = None, action: str = "") -> SyncRequest:
    return SyncRequest(cid, rid, base, ops or [], action)


def message(**fields: Any) -> dict[str, Any]:
    base = {"type": "sync", "cid": "page-load-1", "rid": 1, "base": 0, "ops": []}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


# ---------------------------------------------------------------- messages


def test_parse_a_full_message() -> None:
    request = SyncRequest.parse(
        message(
            rid=3,
            base=7,
            ops=[{"retain": 1}, {"retain": 1}, {"insert": "x"}],
            action="undo",
            sel=[1, 4],
            extra="ignored",
        )
    )
    assert request == SyncRequest(
        "page-load-1", 3, 7, [{"retain": 1}, {"retain": 1}, {"insert": "x"}], "undo", (1, 4)
    )


def test_parse_defaults() -> None:
    request = SyncRequest.parse(message(ops=...))
    assert (request.ops, request.action, request.sel) == ([], "", None)


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "hello"},
        {"type": ...},
        {"cid": "short"},
        {"cid": "x" * 65},
        {"cid": "has space!"},
        {"cid": 12345678},
        {"cid": ...},
        {"rid": 0},
        {"rid": -1},
        {"rid": True},
        {"rid": 1.0},
        {"rid": "1"},
        {"rid": 2**53},
        {"rid": ...},
        {"base": -1},
        {"base": False},
        {"base": None},
        {"ops": {"retain": 1}},
        {"ops": [{"retain": 0}]},
        {"ops": [{"insert": ""}]},
        {"ops": [{"retain": 1, "insert": "x"}]},
        {"ops": [{"content": "x"}]},
        {"ops": [{"insert": "a\r\n"}]},
        {"ops": [{"insert": "\udc00"}]},
        {"action": "again"},
        {"action": None},
        {"sel": [1]},
        {"sel": [1, -1]},
        {"sel": "1,2"},
        {"sel": [True, 2]},
    ],
)
def test_parse_rejects_malformed_messages(bad: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        SyncRequest.parse(message(**bad))
    assert info.value.code == "bad_request"
    assert info.value.message


def test_parse_rejects_non_objects() -> None:
    with pytest.raises(ProtocolError, match="bad_request"):
        SyncRequest.parse([1, 2])


def test_answer_message() -> None:
    answer = Answer(rid=4, version=9, delta=[{"retain": 1}, {"insert": "x"}])
    assert answer.to_message() == {
        "type": "ack",
        "rid": 4,
        "version": 9,
        "delta": [{"retain": 1}, {"insert": "x"}],
    }


# ---------------------------------------------------------------- the protocol step by step


def test_one_editor_step_by_step() -> None:
    room = Room("hello\n")
    engine = room.engine
    assert (engine.version, engine.text) == (1, "hello\n")
    assert not engine.has_session("s")

    answer, stored = engine.handle("s", req("editor-a", 1, 1, ins(5, " world")), "Ada")
    assert answer == Answer(1, 2, [])  # nothing else happened: nothing to add
    assert stored is not None
    assert (stored.seq, stored.client_key, stored.request_id, stored.author) == (
        2,
        "editor-a",
        1,
        "Ada",
    )
    assert engine.text == "hello world\n"
    assert engine.has_session("s")  # it changed something: it has an undo history
    assert text_of([*room.persisted, stored]) == engine.text

    # An empty sync (the answer to a poke) stores nothing.
    answer, stored = engine.handle("s", req("editor-a", 2, 2))
    assert (answer, stored) == (Answer(2, 2, []), None)
    assert engine.version == 2


def test_an_empty_document() -> None:
    room = Room()
    a = room.client("editor-a")
    a.edit(ins(0, "😀 first"))
    assert room.sync("s", a).version == 1
    assert room.engine.text == a.text == "😀 first"
    assert room.rebuilt() == "😀 first"


def test_idle_editor_catches_up_in_utf16() -> None:
    room = Room("ab")
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(1, "😀漢"))
    room.sync("sa", a)
    answer = room.sync("sb", b)
    assert answer.delta == [{"retain": 1}, {"insert": "😀漢"}]
    a.edit(ins(3, "!"))  # after the emoji: 3 UTF-16 units in
    room.sync("sa", a)
    assert room.sync("sb", b).delta == [{"retain": 3}, {"insert": "!"}]
    assert b.text == "a😀!漢b" == room.engine.text


def test_changes_bring_an_idle_editor_up_to_date_without_a_request() -> None:
    """The recorded change of every version composes into a push (docs/protocol.md):
    applied to the idle editor's shadow it gives the room's text, in UTF-16, and the
    editor's next request, from the pushed version, merges as usual."""
    room = Room("ab")
    a, b = room.client("editor-a"), room.client("editor-b")
    room.sync("sb", b)
    start = b.version
    a.edit(ins(1, "😀漢"))
    room.sync("sa", a)
    a.edit([{"retain": 3}, {"delete": 1}, {"insert": "e\u0301"}])  # 漢 -> e + combining
    room.sync("sa", a)
    change = room.engine.changes(start, room.engine.version)
    assert change is not None
    assert b.receive_push(Push(start, room.engine.version, change))
    assert b.text == b.shadow == room.engine.text == "a😀e\u0301b"
    b.edit(ins(3, "!"))  # after the emoji: 3 UTF-16 units in
    room.sync("sb", b)
    room.sync("sa", a)
    assert a.text == b.text == room.engine.text == room.rebuilt() == "a😀!e\u0301b"
    room.engine.verify()


def test_changes_of_merged_requests_and_replacements() -> None:
    """A request from an old base (merged by pycrdt) and an API replacement are recorded
    too; so is an undo."""
    clock = Clock()
    room = Room("0123456789", clock)
    a, b, idle = room.client("editor-a"), room.client("editor-b"), room.client("idle")
    room.sync("si", idle)
    start = idle.version
    a.edit(ins(5, "AAA"))
    b.edit(ins(5, "BB"))
    ra, rb = a.request(), b.request()
    assert ra is not None and rb is not None
    a.receive(room.handle("sa", ra))
    b.receive(room.handle("sb", rb))  # base behind the room: the observed path
    stored = room.engine.replace_text("»" + room.engine.text)
    assert stored is not None
    room.persisted.append(stored)
    clock.now += 1
    room.sync("sa", a, "undo")
    change = room.engine.changes(start, room.engine.version)
    assert change is not None
    assert D.apply("0123456789", change) == room.engine.text
    assert "AAA" not in room.engine.text and "BB" in room.engine.text
    room.engine.verify()


def test_changes_outside_the_history_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "HISTORY_VERSIONS", 3)
    room = Room("x")
    a = room.client("editor-a")
    assert room.engine.changes(0, 1) is None  # loaded from storage: never seen happen
    for ch in "ABCDE":
        a.edit(ins(0, ch))
        room.sync("sa", a)
    version = room.engine.version
    assert room.engine.changes(version - 2, version) == [{"insert": "ED"}]
    assert room.engine.changes(version, version) == []
    assert room.engine.changes(version - 3, version) == [{"insert": "EDC"}]
    assert room.engine.changes(version - 4, version) is None  # forgotten
    assert room.engine.changes(version, version + 1) is None  # not there yet
    # A base that fell out of the history is rebased from the log (the CRDT's text events).
    b = SimClient("editor-b", "x", 1)
    b.edit(ins(1, "!"))
    room.sync("sb", b)
    assert b.text == room.engine.text == "EDCBAx!"
    # A composition kept for a base must not outlive that base's history.
    for ch in "FGHIJ":
        a.edit(ins(0, ch))
        room.sync("sa", a)
    assert room.engine.changes(version - 3, room.engine.version) is None
    room.engine.verify()


@settings(max_examples=60, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.sampled_from(["a", "😀", "漢", "e\u0301", ""])),
        min_size=1,
        max_size=25,
    ),
    queries=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=30),
)
def test_changes_equal_the_text_difference_in_any_query_order(
    edits: list[tuple[float, str]], queries: list[tuple[int, int]]
) -> None:
    """The memoized backwards composition gives, for any (after, upto) asked in any order,
    a delta that turns the text at `after` into the text at `upto`."""
    room = Room("start")
    a = room.client("editor-a")
    texts = {room.engine.version: room.engine.text}
    for at, s in edits:
        pos = len(D.to_units(a.text[: int(at * len(a.text))]))
        a.edit(ins(pos, s) if s else dele(0, len(D.to_units(a.text[:1]))) if a.text else [])
        room.sync("sa", a)
        texts[room.engine.version] = room.engine.text
    for x, y in queries:
        after, upto = sorted((x % (room.engine.version + 1), y % (room.engine.version + 1)))
        change = room.engine.changes(after, upto)
        if after < 1:  # the text at version 0 was never seen by this engine (loaded)
            assert change is None or after == upto
            continue
        assert change is not None and D.apply(texts[after], change) == texts[upto]


@pytest.mark.parametrize("same_spot", [True, False])
def test_two_editors_concurrently(same_spot: bool) -> None:
    room = Room("0123456789\n")
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(5, "AAA"))
    b.edit(ins(5 if same_spot else 9, "BB"))
    ra, rb = a.request(), b.request()
    assert ra is not None and rb is not None
    answer_a = room.handle("sa", ra)
    answer_b = room.handle("sb", rb)  # base 1, while the room is at 2: a merge
    a.receive(answer_a)
    b.receive(answer_b)
    assert answer_b.version == 3
    assert b.text == room.engine.text
    assert "AAA" in b.text and "BB" in b.text
    room.sync("sa", a)
    assert a.text == b.text == room.engine.text == room.rebuilt()
    if not same_spot:
        assert room.engine.text == "01234AAA5678BB9\n"


def test_concurrent_overlapping_deletes_and_an_insert_inside() -> None:
    room = Room("abcdefghij")
    a, b, c = room.client("editor-a"), room.client("editor-b"), room.client("editor-c")
    a.edit(dele(2, 5))  # cdefg
    b.edit(dele(4, 5))  # efghi
    c.edit(ins(5, "X"))  # between e and f
    requests = [(s, x.request(), x) for s, x in (("sa", a), ("sb", b), ("sc", c))]
    for session, request, client in requests:
        assert request is not None
        client.receive(room.handle(session, request))
    for session, client in (("sa", a), ("sb", b), ("sc", c)):
        room.sync(session, client)
    assert room.engine.text == "abXj"
    assert a.text == b.text == c.text == room.rebuilt() == "abXj"


def test_typing_while_a_request_is_in_flight() -> None:
    room = Room("hello")
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(5, "!"))
    in_flight = a.request()
    a.edit(ins(0, ">"))  # typed after sending
    b.edit(ins(0, "B"))
    room.sync("sb", b)
    assert in_flight is not None
    a.receive(room.handle("sa", in_flight))
    assert a.shadow == "Bhello!" == room.engine.text
    assert a.text == ">Bhello!"  # my own unsent insert stays first at a tie
    room.sync("sa", a)
    assert room.engine.text == a.text


# ---------------------------------------------------------------- idempotency


def test_a_resent_request_is_not_applied_twice() -> None:
    room = Room("abc")
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(3, "X"))
    request = a.request()
    assert request is not None
    room.handle("sa", request)  # applied and stored, but the answer is lost
    b.edit(ins(0, "B"))
    room.sync("sb", b)
    room.engine.drop_session("sa")
    version = room.engine.version

    answer, stored = room.engine.handle("sa-again", request)  # resent after reconnecting
    assert stored is None
    assert room.engine.version == version
    assert room.engine.text == "BabcX"
    a.receive(answer)
    assert a.text == "BabcX"
    assert answer.delta == [{"insert": "B"}]


def test_a_resend_after_the_server_restarted() -> None:
    room = Room("abc")
    a = room.client("editor-a")
    a.edit(ins(0, "X"))
    request = a.request()
    assert request is not None
    room.handle("sa", request)  # persisted, answer lost in the crash
    room.engine = room.load()  # requests are known again from the log
    answer, stored = room.engine.handle("sa2", request)
    assert stored is None
    a.receive(answer)
    assert a.text == room.engine.text == "Xabc"


def test_a_resent_empty_request_just_catches_up() -> None:
    room = Room("abc")
    a, b = room.client("editor-a"), room.client("editor-b")
    request = a.request()
    assert request is not None
    room.handle("sa", request)
    b.edit(ins(0, "B"))
    room.sync("sb", b)
    answer, stored = room.engine.handle("sa2", request)
    assert stored is None
    a.receive(answer)
    assert a.text == "Babc"


def test_a_resent_undo_answers_from_the_text_that_was_sent() -> None:
    clock = Clock()
    room = Room("abc", clock)
    a = room.client("editor-a")
    a.edit(ins(3, "XYZ"))
    room.sync("sa", a)
    clock.now += 5
    a.edit(ins(0, "!"))
    request = a.request("undo")  # types "!" and undoes it at once
    assert request is not None
    room.handle("sa", request)  # answer lost
    answer, stored = room.engine.handle("sa2", request)
    assert stored is None
    a.receive(answer)
    assert a.text == room.engine.text == "abcXYZ"


def test_an_older_rid_is_stale() -> None:
    room = Room("abc")
    a = room.client("editor-a")
    a.edit(ins(0, "1"))
    first = a.request()
    assert first is not None
    a.receive(room.handle("sa", first))
    a.edit(ins(0, "2"))
    room.sync("sa", a)
    with pytest.raises(ProtocolError) as info:
        room.engine.handle("sa", first)
    assert info.value.code == "stale"
    assert room.engine.text == "21abc"


# ---------------------------------------------------------------- reconnects and reloads


def test_reconnect_with_offline_edits_on_an_old_base() -> None:
    room = Room("line one\nline two\n")
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(0, "# "))  # offline: A's socket is down
    for word in ("x", "y", "z"):
        b.edit(ins(len(b.text), word))
        room.sync("sb", b)
    assert room.engine.version == 4 and a.version == 1
    room.engine.drop_session("sa")
    room.sync("sa-new", a)  # base 1, a new session
    assert a.text == room.engine.text == "# line one\nline two\nxyz"
    assert room.engine.has_session("sa-new")


def test_engine_rebuilt_from_the_persisted_log_mid_session() -> None:
    room = Room("shared text\n")
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(0, "A1 "))
    room.sync("sa", a)
    b.edit(ins(11, " B1"))
    in_flight = b.request()
    room.engine = DocumentEngine(DocumentLog(updates=list(room.persisted)))  # restart
    assert room.engine.text == "A1 shared text\n"
    a.edit(ins(0, "A2 "))
    room.sync("sa", a)
    assert in_flight is not None
    b.receive(room.handle("sb", in_flight))
    room.sync("sa", a)
    assert a.text == b.text == room.engine.text == room.rebuilt()
    assert room.engine.text == "A2 A1 shared text B1\n"


def test_a_request_from_any_old_base_is_rebased() -> None:
    room = Room("v1")
    a = room.client("editor-a")
    for i in range(5):
        a.edit(ins(0, str(i)))
        room.sync("sa", a)
    for base in range(1, room.engine.version + 1):
        stale = SimClient("editor-" + str(base) * 8, text_of(room.persisted[:base]), base)
        room.sync(("old", base), stale)
        assert stale.text == room.engine.text


def test_bases_older_than_the_history_are_rebuilt_from_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past HISTORY_VERSIONS, the text at the base and the changes since are rebuilt from
    the log (a Doc's text events); requests and resends are answered the same way."""
    monkeypatch.setattr(E, "HISTORY_VERSIONS", 2)
    room = Room("base\n")
    a, b = room.client("editor-a"), room.client("editor-b")
    room.sync("sb", b)
    b.edit(ins(0, "B"))
    lost = b.request()
    assert lost is not None
    room.handle("sb", lost)  # answer lost
    for i in range(7):
        a.edit(ins(len(a.text), str(i)))
        room.sync("sa", a)
        if i == 2:
            a.edit(dele(0, 1))
    b.receive(room.handle("sb2", lost))  # resend, 7 versions behind
    assert b.text == a.text == room.engine.text == "base\n0123456"  # A deleted the B
    c = SimClient("editor-c", text_of(room.persisted[:1]), 1)
    c.edit(ins(4, "!"))
    room.sync("sc", c)  # a brand new page at version 1
    assert c.text == room.engine.text == "base!\n0123456"
    reloaded = room.load()
    b.edit(ins(0, ">"))
    request = b.request()
    assert request is not None
    answer, _ = reloaded.handle("sb3", request)
    b.receive(answer)
    assert b.text == reloaded.text == ">base!\n0123456"
    reloaded.verify()


def test_undo_after_pushes_moved_the_editor_on() -> None:
    """A base newer than the session's last answer (the editor took pushes meanwhile):
    its undo history is there, and undo removes only its own text."""
    clock = Clock()
    room = Room("x", clock)
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(1, "A"))
    room.sync("sa", a)
    for ch in "BCD":
        b.edit(ins(0, ch))
        room.sync("sb", b)
    clock.now += 1
    version = room.engine.version
    answer, _ = room.engine.handle("sa", req("editor-a", 9, version, [], "undo"))
    assert room.engine.text == "DCBx"
    assert answer.delta == [{"retain": 4}, {"delete": 1}]


def test_a_cut_log_with_a_snapshot() -> None:
    room = Room("abc")
    a = room.client("editor-a")
    for ch in "xyz":
        a.edit(ins(0, ch))
        room.sync("sa", a)
    snapshot = room.engine.encode_state()
    a.edit(ins(0, "!"))
    room.sync("sa", a)
    cut = DocumentLog(updates=room.persisted[4:], snapshot_version=4, snapshot=snapshot)
    engine = DocumentEngine(cut)
    assert (engine.text, engine.version, engine.oldest_base) == ("!zyxabc", 5, 4)
    answer, _ = engine.handle("s", req("editor-b", 1, 4, ins(6, "B")))  # "zyxabc" + "B"
    assert engine.text == "!zyxabcB"
    assert answer.delta == [{"insert": "!"}]
    with pytest.raises(ProtocolError, match="bad_base"):
        engine.handle("s2", req("editor-c", 1, 3))
    full = DocumentEngine(
        DocumentLog(updates=room.persisted, snapshot_version=4, snapshot=snapshot)
    )
    assert full.oldest_base == 0
    full.handle("s", req("editor-d", 1, 2))


def test_a_log_with_a_gap_is_refused() -> None:
    updates = [StoredUpdate(1, text_update("a")), StoredUpdate(3, text_update("b"))]
    with pytest.raises(ValueError, match="skips"):
        DocumentEngine(DocumentLog(updates=updates))
    with pytest.raises(ValueError, match="snapshot"):
        DocumentEngine(DocumentLog(updates=updates[1:]))


def test_sessions() -> None:
    room = Room("abc")
    a = room.client("editor-a")
    a.edit(ins(0, "x"))
    room.sync("sa", a)
    assert room.engine.has_session("sa")
    room.engine.drop_session("sa", cid="editor-a")
    room.engine.drop_session("never-seen")
    assert not room.engine.has_session("sa")


def test_encode_state() -> None:
    room = Room("abc")
    a = room.client("editor-a")
    a.edit(ins(1, "😀"))
    room.sync("sa", a)
    _doc, text = new_doc([room.engine.encode_state()])
    assert str(text) == room.engine.text == "a😀bc"


# ---------------------------------------------------------------- undo and redo


def test_undo_is_per_editor() -> None:
    clock = Clock()
    room = Room("start\n", clock)
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(0, "A "))
    room.sync("sa", a)
    room.sync("sb", b)
    b.edit(ins(len(b.text), "B wrote this\n"))
    room.sync("sb", b)
    clock.now += 1
    answer = room.sync("sa", a, "undo")  # A's undo: only A's "A " goes
    assert a.text == room.engine.text == "start\nB wrote this\n"
    assert answer.delta[0] == {"delete": 2}
    room.sync("sb", b, "undo")  # B's undo: only B's line goes
    room.sync("sa", a, "redo")  # A's redo brings A's text back
    room.sync("sb", b)
    assert a.text == b.text == room.engine.text == room.rebuilt() == "A start\n"


def test_undo_groups_changes_within_the_capture_timeout() -> None:
    clock = Clock()
    room = Room("", clock)
    a = room.client("editor-a")
    for word, pause in (("one ", 0.0), ("two ", 0.2), ("three ", 2.0), ("four ", 0.1)):
        clock.now += pause
        a.edit(ins(len(a.text), word))
        room.sync("sa", a)
    clock.now += 0.1
    room.sync("sa", a, "undo")
    assert a.text == "one two "  # "three four " were typed within 500 ms
    clock.now += 0.1
    room.sync("sa", a, "undo")
    assert a.text == ""
    room.sync("sa", a, "redo")
    assert a.text == room.engine.text == "one two "


def test_undo_includes_ops_sent_with_it() -> None:
    clock = Clock()
    room = Room("x", clock)
    a = room.client("editor-a")
    a.edit(ins(1, "abc"))
    answer = room.sync("sa", a, "undo")  # typed and undone in one request
    assert answer.delta == [{"retain": 1}, {"delete": 3}]
    assert a.text == room.engine.text == "x"


def test_undo_with_nothing_to_undo_changes_nothing() -> None:
    room = Room("abc")
    a = room.client("editor-a")
    version = room.engine.version
    answer = room.sync("sa", a, "undo")
    assert answer == Answer(1, version, [])
    assert room.engine.version == version


def test_undo_never_removes_anothers_text_in_the_middle() -> None:
    clock = Clock()
    room = Room("", clock)
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(0, "aaaa"))
    room.sync("sa", a)
    room.sync("sb", b)
    b.edit(ins(2, "BB"))  # inside A's word
    room.sync("sb", b)
    clock.now += 1
    room.sync("sa", a, "undo")
    room.sync("sb", b)
    assert a.text == b.text == room.engine.text == "BB"


# ---------------------------------------------------------------- replace_text


def test_replace_text_keeps_a_concurrent_editors_text() -> None:
    room = Room("# Title\n\nfirst paragraph\n\nsecond paragraph\n")
    b = room.client("editor-b")
    b.edit(ins(len("# Title\n\nfirst paragraph\n\nsecond"), " (B)"))  # not sent yet
    stored = room.engine.replace_text("# New title\n\nfirst paragraph\n\nsecond paragraph\n", "api")
    assert stored is not None
    assert (stored.seq, stored.client_key, stored.request_id, stored.author) == (2, "", None, "api")
    room.persisted.append(stored)
    room.sync("sb", b)
    assert b.text == room.engine.text == room.rebuilt()
    assert room.engine.text == "# New title\n\nfirst paragraph\n\nsecond (B) paragraph\n"


def test_replace_text_is_a_small_change() -> None:
    text = "".join(f"line {i}\n" for i in range(5000))
    room = Room(text)
    stored = room.engine.replace_text(text.replace("line 2500\n", "line 2500 edited\n"))
    assert stored is not None
    assert len(stored.data) < 200  # a delete-all/insert-all would be ~50 KB


def test_replace_text_edge_cases() -> None:
    room = Room("abc\n")
    assert room.engine.replace_text("abc\n") is None
    assert room.engine.version == 1
    stored = room.engine.replace_text("abc\r\ndef\r")
    assert stored is not None
    assert room.engine.text == "abc\ndef\n"
    with pytest.raises(ProtocolError, match="bad_request"):
        room.engine.replace_text("lone \ud800")
    assert room.engine.replace_text("") is not None
    assert room.engine.text == ""


def test_replace_text_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "MAX_DOCUMENT_BYTES", 10)
    room = Room("abc")
    with pytest.raises(ProtocolError, match="too_large"):
        room.engine.replace_text("x" * 11)
    assert (room.engine.text, room.engine.version) == ("abc", 1)


# ---------------------------------------------------------------- bad input changes nothing


def assert_unchanged(room: Room, text: str, version: int) -> None:
    assert (room.engine.text, room.engine.version) == (text, version)
    room.engine.verify()
    assert room.rebuilt() == text


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (req("editor-z", 1, 3), "bad_base"),
        (req("editor-z", 1, -1), "bad_base"),
        (req("editor-z", 1, 2, [{"retain": 9}]), "bad_request"),
        (req("editor-z", 1, 2, [{"retain": 1}, {"delete": 9}]), "bad_request"),
        (req("editor-z", 1, 2, [{"retain": 2}, {"insert": "x"}]), "bad_request"),  # splits 😀
        (req("editor-z", 1, 2, [{"insert": "\ud800"}]), "bad_request"),
        (req("editor-z", 1, 2, [{"insert": "a\rb"}]), "bad_request"),
        (req("editor-z", 1, 1, [{"retain": 5}, {"insert": "x"}]), "bad_request"),  # old base
        (req("editor-z", 1, 2, [{"insert": "x" * (4 * 1024 * 1024 + 1)}]), "too_large"),
        # A trailing retain past the end survives parsing and is refused.
        (SyncRequest.parse(message(cid="editor-z", base=2, ops=[{"retain": 99}])), "bad_request"),
    ],
)
def test_bad_requests_change_nothing(request_: SyncRequest, code: str) -> None:
    room = Room("a😀b")
    a = room.client("editor-a")
    a.edit(ins(4, "c"))
    room.sync("sa", a)
    text, version = room.engine.text, room.engine.version
    with pytest.raises(ProtocolError) as info:
        room.engine.handle("sa", request_)
    assert info.value.code == code
    assert_unchanged(room, text, version)
    a.edit(ins(0, "ok "))
    room.sync("sa", a)  # the editor carries on
    assert a.text == room.engine.text == "ok a😀bc"


def test_a_document_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "MAX_DOCUMENT_BYTES", 20)
    room = Room("0123456789")
    a, b = room.client("editor-a"), room.client("editor-b")
    a.edit(ins(0, "a" * 8))
    room.sync("sa", a)
    b.edit(ins(0, "b" * 8))  # fits alone, not together with A's text
    request = b.request()
    assert request is not None
    with pytest.raises(ProtocolError, match="too_large"):
        room.engine.handle("sb", request)
    assert_unchanged(room, "a" * 8 + "0123456789", 2)


def test_a_redo_over_the_limit_is_reverted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is checked on the result of the undo/redo. One that would make the
    document too large is reverted at once: the text does not change (the CRDT's two
    steps are still stored, so the log and the Doc stay the same)."""
    clock = Clock()
    room = Room("", clock)
    a = room.client("editor-a")
    a.edit(ins(0, "x" * 15))
    room.sync("sa", a)
    clock.now += 1
    room.sync("sa", a, "undo")
    monkeypatch.setattr(E, "MAX_DOCUMENT_BYTES", 10)
    answer = room.sync("sa", a, "redo")
    assert answer.delta == []
    assert a.text == room.engine.text == room.rebuilt() == ""
    room.engine.verify()


def test_ops_over_the_limit_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    room = Room("abc")
    a = room.client("editor-a")
    monkeypatch.setattr(E, "MAX_DOCUMENT_BYTES", 5)
    a.edit(ins(3, "def"))
    request = a.request()
    assert request is not None
    with pytest.raises(ProtocolError, match="too_large"):
        room.engine.handle("sa", request)
    assert_unchanged(room, "abc", 1)


def test_a_failure_inside_pycrdt_stops_the_engine_until_reloaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the room's Doc may have changed, a failure leaves the engine refusing every
    request: its Doc could hold what the log does not. Reloaded from the log, the same
    request goes through."""
    clock = Clock()
    room = Room("abc", clock)
    a = room.client("editor-a")
    a.edit(ins(0, "X"))
    room.sync("sa", a)
    clock.now += 1

    def broken(text: object, events: object) -> object:
        raise RuntimeError("boom")

    a.edit(ins(0, "Y"))
    request = a.request("undo")
    assert request is not None
    monkeypatch.setattr(E, "_utf16_events", broken)
    with pytest.raises(RuntimeError, match="boom"):
        room.engine.handle("sa", request)
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="reload"):
        room.engine.handle("sa", request)
    assert room.rebuilt() == "Xabc"  # nothing of it was persisted
    room.engine = room.load()
    a.receive(room.handle("sa", request))  # the same request again, now it works
    assert a.text == room.engine.text == room.rebuilt()
    assert a.text in ("Xabc", "YXabc")  # the undo history went with the old engine
    room.engine.verify()


# ---------------------------------------------------------------- purity


def test_the_engine_imports_no_django() -> None:
    code = (
        "import sys; import collab.engine, collab.offsets, collab.delta; "
        "bad = [m for m in ('django', 'channels', 'daphne') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
