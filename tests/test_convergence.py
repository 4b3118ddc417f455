"""Property test: simulated editors on a flaky network always converge and lose nothing.

Several `SimClient`s (the reference model of the browser client) edit one document
through a `DocumentEngine`. Hypothesis picks every step: who types what and where
(emoji, CJK, combining marks included), who sends, which request the server handles
next, which answer arrives when, dropped connections (lost requests and answers, then a
resend), a server crash before persisting, a reload of the engine from its persisted log,
and API "replace text" calls. At the end every client drains and every text must equal the
engine's, the text rebuilt from the persisted log, and exactly the characters typed minus
those deleted: every inserted character is unique (a marker), so none may be lost or
duplicated.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Text

from collab import crdt
from collab import delta as D
from collab import engine as engine_module
from collab.crdt import TEXT_KEY, text_update
from collab.engine import Answer, DocumentEngine, SyncRequest
from collab.log import DocumentLog, StoredUpdate
from tests.sim_client import Push, SimClient

EDITORS = 3
API_OWNER = EDITORS  # markers inserted through replace_text
INITIAL_OWNER = EDITORS + 1  # markers of the initial text
FILLER = ["a", "b", " ", "\n", "e\u0301", "😀", "👍🏽", "👨\u200d👩\u200d👧", "ß"]


def marker(owner: int, n: int) -> str:
    """A character used once in a whole run: BMP CJK or astral (CJK Extension B)."""
    return chr(0x4E00 + owner * 1000 + n // 2) if n % 2 else chr(0x20000 + owner * 1000 + n // 2)


def is_marker(ch: str) -> bool:
    return 0x4E00 <= ord(ch) < 0x4E00 + 10 * 1000 or 0x20000 <= ord(ch) < 0x20000 + 10 * 1000


def markers(text: str) -> list[str]:
    return [ch for ch in text if is_marker(ch)]


def rebuilt_text(updates: list[StoredUpdate]) -> str:
    return str(DocumentLog(updates=list(updates)).build().get(TEXT_KEY, type=Text))


@dataclass
class Link:
    """One client's connection: a session of the engine and messages each way."""

    session: object | None = None
    up: SyncRequest | None = None  # request on its way to the server
    down: list[Answer | Push] = field(default_factory=list)  # on the way to the client, in order
    known: int = -1  # the version the server believes this client holds (the consumer's)


@dataclass
class World:
    engine: DocumentEngine
    persisted: list[StoredUpdate]
    clients: list[SimClient]
    links: list[Link]
    now: float = 0.0
    auto_push: bool = False  # push to every other client after each change, as rooms do
    sessions: int = 0
    counters: list[int] = field(default_factory=lambda: [0] * (EDITORS + 2))
    inserted: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, parts: list[str]) -> World:
        """A document made of `parts`, where each "M" becomes a marker."""
        world = cls(DocumentEngine(DocumentLog(updates=[])), [], [], [])
        initial = "".join(world.fresh(INITIAL_OWNER, 1) if p == "M" else p for p in parts)
        world.persisted = [StoredUpdate(1, text_update(initial))] if initial else []
        world.engine = world.load()
        for i in range(EDITORS):
            world.clients.append(SimClient(f"client-{i}", world.engine.text, world.engine.version))
            world.links.append(Link())
        return world

    def load(self) -> DocumentEngine:
        return DocumentEngine(DocumentLog(updates=list(self.persisted)), clock=lambda: self.now)

    # -------------------------------------------------------- network and server

    def connect(self, i: int) -> None:
        link = self.links[i]
        if link.session is None:
            self.sessions += 1
            link.session = ("conn", i, self.sessions)
            link.up = self.clients[i].inflight  # resend what was in flight, unchanged

    def drop(self, i: int) -> None:
        link = self.links[i]
        if link.session is not None:
            self.engine.drop_session(link.session)
        self.links[i] = Link()

    def restart(self) -> None:
        """The server process dies: everything in memory and on the wire is gone."""
        for i in range(EDITORS):
            self.links[i] = Link()
        self.engine = self.load()

    def send(self, i: int, action: str = "") -> None:
        link = self.links[i]
        if link.session is not None and link.up is None:
            request = self.clients[i].request(action)
            if request is not None:
                link.up = request

    def serve(self, i: int, crash: bool = False) -> None:
        link = self.links[i]
        if link.up is None:
            return
        answer, stored = self.engine.handle(link.session, link.up, author=f"ed{i}")
        link.up = None
        if crash and stored is not None:
            self.restart()  # handled but never persisted nor answered
            return
        if stored is not None:
            self.persisted.append(stored)  # persisted before the answer is sent
        link.down.append(answer)
        link.known = answer.version
        if self.auto_push and stored is not None:
            for j in range(EDITORS):
                if j != i:
                    self.push(j)

    def push(self, i: int) -> None:
        """The consumer brings an idle client up to date, as collab/consumers.py does: from
        the version it last told that client about, whether or not a request of the client
        is already on its way (the server has not seen it yet)."""
        link = self.links[i]
        if link.session is None or link.known < 0:
            return
        change = self.engine.changes(link.known, self.engine.version)
        if change is not None and self.engine.version > link.known:
            link.down.append(Push(link.known, self.engine.version, change))
            link.known = self.engine.version

    def deliver(self, i: int) -> None:
        link = self.links[i]
        if link.down:
            message = link.down.pop(0)
            if isinstance(message, Push):
                self.clients[i].receive_push(message)
            else:
                self.clients[i].receive(message)

    # -------------------------------------------------------- editing

    def fresh(self, owner: int, count: int) -> str:
        out = []
        for _ in range(count):
            out.append(marker(owner, self.counters[owner]))
            self.counters[owner] += 1
        self.inserted.update(out)
        return "".join(out)

    def type_into(self, i: int, at: float, length: int, filler: list[str]) -> None:
        client = self.clients[i]
        pos = int(at * len(client.text))
        text = self.fresh(i, max(1, length)) + "".join(filler)
        client.edit(_insert_at(client.text, pos, text))

    def delete_from(self, i: int, at: float, length: int) -> None:
        client = self.clients[i]
        pos = int(at * len(client.text))
        gone = client.text[pos : pos + length]
        if gone:
            self.deleted.update(markers(gone))
            client.edit(_delete_at(client.text, pos, gone))

    def replace(self, at: float) -> None:
        """The HTTP API replaces the text with one small insertion (a single change)."""
        text = self.engine.text
        pos = int(at * len(text))
        new = text[:pos] + self.fresh(API_OWNER, 2) + text[pos:]
        stored = self.engine.replace_text(new, author="api")
        assert stored is not None
        self.persisted.append(stored)

    # -------------------------------------------------------- the end

    def drain(self) -> None:
        for i in range(EDITORS):
            self.connect(i)
        for _ in range(20):
            for i in range(EDITORS):
                while self.links[i].down:
                    self.deliver(i)
                self.send(i)
                self.serve(i)
                while self.links[i].down:
                    self.deliver(i)
            if all(c.idle and c.version == self.engine.version for c in self.clients):
                return
        raise AssertionError("clients did not settle")

    def check(self) -> None:
        self.engine.verify()
        text = self.engine.text
        for client in self.clients:
            assert client.text == client.shadow == text
        assert rebuilt_text(self.persisted) == text
        assert self.engine.version == len(self.persisted)
        found = markers(text)
        assert len(found) == len(set(found)), "a character was duplicated"
        assert set(found) == self.inserted - self.deleted, "a character was lost or revived"


def _insert_at(text: str, pos: int, s: str) -> D.Delta:
    return [{"retain": D.utf16_len(text[:pos])}, {"insert": s}] if pos else [{"insert": s}]


def _delete_at(text: str, pos: int, gone: str) -> D.Delta:
    ops: D.Delta = [{"retain": D.utf16_len(text[:pos])}] if pos else []
    return [*ops, {"delete": D.utf16_len(gone)}]


STEP = st.sampled_from(
    ["type"] * 8
    + ["delete"] * 3
    + ["send"] * 6
    + ["serve"] * 6
    + ["deliver"] * 6
    + ["connect"] * 3
    + ["push"] * 8
    + ["drop", "tick", "crash", "reload", "replace"]
)


def run(data: st.DataObject, initial: list[str], steps: int, undo: bool) -> World:
    # Writer ids decide the order of concurrent inserts: make them repeatable, so that a
    # failing example replays exactly.
    ids = itertools.count(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crdt, "new_client_id", lambda: next(ids))
        return _run(data, initial, steps, undo)


def _run(data: st.DataObject, initial: list[str], steps: int, undo: bool) -> World:
    world = World.start(initial)
    world.auto_push = data.draw(st.booleans())
    for i in range(EDITORS):
        world.connect(i)
    for _ in range(steps):
        kind = data.draw(STEP)
        i = data.draw(st.integers(0, EDITORS - 1))
        if kind == "type":
            at = data.draw(st.floats(0, 1))
            length = data.draw(st.integers(1, 3))
            world.type_into(i, at, length, data.draw(st.lists(st.sampled_from(FILLER), max_size=2)))
        elif kind == "delete":
            world.delete_from(i, data.draw(st.floats(0, 1)), data.draw(st.integers(1, 6)))
        elif kind == "send":
            action = data.draw(st.sampled_from(["", "", "undo", "redo"])) if undo else ""
            world.send(i, action)
        elif kind == "serve":
            world.serve(i)
        elif kind == "deliver":
            world.deliver(i)
        elif kind == "push":
            world.push(i)
        elif kind == "drop":
            world.drop(i)
        elif kind == "connect":
            world.connect(i)
        elif kind == "tick":
            world.now += data.draw(st.sampled_from([0.1, 0.6, 2.0]))
        elif kind == "crash":
            world.serve(i, crash=True)
        elif kind == "reload":
            world.restart()
        elif kind == "replace" and not undo:
            world.replace(data.draw(st.floats(0, 1)))
    world.drain()
    return world


INITIAL = st.lists(st.sampled_from([*FILLER, "M", "M"]), max_size=12)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), initial=INITIAL, steps=st.integers(20, 160))
def test_editors_converge_and_lose_nothing(
    data: st.DataObject, initial: list[str], steps: int
) -> None:
    run(data, initial, steps, undo=False).check()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), initial=INITIAL, steps=st.integers(20, 100))
def test_editors_with_undo_converge(data: st.DataObject, initial: list[str], steps: int) -> None:
    """Undo/redo re-inserts text (two editors may both revive one deleted character), so
    only convergence and the log are checked here, not the exact set of characters.
    A tiny history makes requests, resends and pushes take the paths for versions the
    engine no longer remembers (rebuilt from the log)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_module, "HISTORY_VERSIONS", 3)
        world = run(data, initial, steps, undo=True)
    world.engine.verify()
    text = world.engine.text
    assert all(c.text == c.shadow == text for c in world.clients)
    assert rebuilt_text(world.persisted) == text
    assert set(markers(text)) <= world.inserted
