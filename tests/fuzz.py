"""Fuzzing the WebSocket endpoints with hostile frames while two editors work.

`run_fuzz(draw, frames)` (hypothesis draws every frame): one hostile connection sends
`frames` random and mutated-valid frames to /ws/d/<id>/ while two legitimate editors
edit the same document in lockstep; the live list socket (/ws/list/) gets random frames
and the live view (/d/<id>/events) random `Last-Event-ID` headers. At the end it checks
that every reply was a documented one, that the legitimate editors converged, that the
log in the database replays to their text, and that nothing a refused frame carried was
stored. tests/test_fuzz_ws.py runs it in the suite; a bigger run is a command:

    .venv/bin/python -m tests.fuzz --frames 20000 [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import strategies as st

from collab import delta as D

T = TypeVar("T")
Draw = Callable[[st.SearchStrategy[T]], T]

HOSTILE = "tab-hostile-fuzz"
LEGIT = ("tab-legit-aaaa", "tab-legit-bbbb")
ALPHABETS = ("AB😀\n", "xy漢 ")  # each editor's own letters (pairs and BMP alike)
# Every error code a refused request may get (docs/protocol.md).
DOCUMENTED = {"bad_request", "bad_base", "too_large", "stale", "read_only", "too_old"}
HUGE = "<a huge name>"  # made at send time (hypothesis keeps a repr of every draw)
LEGIT_EVERY = 15  # hostile frames between two rounds of legitimate edits

# ---------------------------------------------------------------- strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["sync", "hello", "\ud800", "a\rb", "😀", "\u202e", "\x00"])
)
json_values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=10,
)
weird_numbers: st.SearchStrategy[Any] = st.sampled_from(
    [-1, 0, 2**53, 2**64, 10**30, 1.5, -0.0, True, False, "7", None, [], {}, float("inf")]
)
weird_ops: st.SearchStrategy[Any] = st.sampled_from(
    [
        {"retain": 0},
        {"retain": -3},
        {"delete": 0},
        {"insert": ""},
        {"insert": "\r"},
        {"insert": "a\r\nb"},
        {"insert": "\ud800"},
        {"insert": "x\udc00"},
        {"delete": 10**9},
        {"retain": 10**9},
        {"retain": 2**53},
        {"insert": 5},
        {"insert": None},
        {"retain": 1.0},
        {"delete": True},
        {"x": 1},
        {"retain": 1, "delete": 1},
        {},
        [],
        "op",
        None,
    ]
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


@dataclass
class Shadow:
    """What a lockstep editor knows: the text at `version`; and its request counter."""

    text: str
    version: int
    rid: int = 0


# Every draw below has the same shape whatever the document holds: hypothesis runs many
# examples against one live scenario (the state carries over), and it insists that a
# prefix of choices always leads to the same kinds of draws. So a frame is drawn as a
# fixed recipe first, then made from it and the state.
edit_recipes = st.tuples(
    st.integers(0, 2**16), st.integers(0, 3), st.text(alphabet="hé😀", max_size=4)
)
mutation_recipes = st.tuples(
    st.integers(0, 7),
    st.integers(0, 2**16),
    json_values,
    weird_numbers,
    weird_ops,
    st.integers(1, 5),
    st.lists(weird_numbers | st.integers(-5, 2**53 + 5), max_size=3),
)
sync_recipes = st.fixed_dictionaries(
    {
        "edit": edit_recipes,
        "action": st.sampled_from(["", "", "", "undo", "redo"]),
        "sel": st.booleans(),
        "mutations": st.lists(mutation_recipes, max_size=3),
        "break": st.integers(0, 9),
        "cut": st.integers(0, 2**16),
        "tail": st.text(max_size=3),
    }
)
# (kind, what it is made from): which branch is drawn is itself a draw, so the draws
# depend only on earlier draws.
frame_recipes = st.one_of(
    st.tuples(st.just("text"), st.text(min_size=1, max_size=300)),
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=300)),
    st.tuples(st.just("json"), json_values),
    st.tuples(
        st.just("typed"),
        st.tuples(
            st.dictionaries(
                st.sampled_from(["cid", "rid", "base", "ops", "sel", "action", "name", "x"]),
                json_values,
                max_size=6,
            ),
            st.sampled_from(["sync", "hello", "ack", "push", "poke", "error", "carets", ""]),
        ),
    ),
    st.tuples(st.just("hello"), json_values | st.text(max_size=300) | st.just(HUGE)),
    st.tuples(st.just("mutated"), sync_recipes),
    # A valid sync but for one op or one number: nothing else refuses it first.
    st.tuples(st.just("op"), st.tuples(edit_recipes, weird_ops, st.booleans())),
    st.tuples(
        st.just("number"),
        st.tuples(edit_recipes, st.sampled_from(["rid", "base", "sel"]), weird_numbers),
    ),
)


def edit(recipe: tuple[int, int, str], text: str, alphabet: str) -> D.Delta:
    """One edit that fits `text`: a delete and/or an insert at a code point boundary."""
    where, cut, word = recipe
    at = where % (len(text) + 1)
    cut = min(cut, len(text) - at)
    word = "".join(c for c in word if c in alphabet) or ("" if cut else alphabet[0])
    ops: D.Delta = []
    if at:
        ops.append({"retain": D.utf16_len(text[:at])})
    if cut:
        ops.append({"delete": D.utf16_len(text[at : at + cut])})
    if word:
        ops.append({"insert": word})
    return D.normalize(ops)


def _sync(me: Shadow, ops: Any) -> dict[str, Any]:
    """The next valid request of `me` but for `ops`."""
    return {"type": "sync", "cid": HOSTILE, "rid": me.rid + 1, "base": me.version, "ops": ops}


def hostile_frame(recipe: tuple[str, Any], me: Shadow) -> tuple[str, str | bytes]:
    """(kind, frame) from a recipe: random junk, or a sync of `me` (valid for its text)
    with 0-3 mutations, or a hello with a name of any shape."""
    kind, r = recipe
    if kind in ("text", "bytes"):
        return kind, r
    if kind == "json":
        return kind, _json(r)
    if kind == "typed":
        return kind, _json({**r[0], "type": r[1]})
    if kind == "hello":
        name = "hello " * 100_000 if r == HUGE else r  # 600 KB
        return kind, _json({"type": "hello", "name": name})
    if kind == "op":
        edit_recipe, op, alone = r
        ops = [op] if alone else [*edit(edit_recipe, me.text, "hé😀"), op]
        return kind, _json(_sync(me, ops))
    if kind == "number":
        edit_recipe, key, number = r
        message = _sync(me, edit(edit_recipe, me.text, "hé😀"))
        message[key] = [0, number] if key == "sel" else number
        return kind, _json(message)
    message = {**_sync(me, edit(r["edit"], me.text, "hé😀")), "action": r["action"]}
    if r["sel"]:
        message["sel"] = [0, D.utf16_len(me.text)]
    size = D.utf16_len(me.text)
    for which, number, value, weird, op, ahead, sel in r["mutations"]:
        keys = sorted(message)
        if which == 0:
            message.pop(keys[number % len(keys)], None)
        elif which == 1:
            message[[*keys, "sel", "extra"][number % (len(keys) + 2)]] = value
        elif which == 2:
            message[("rid", "base")[number % 2]] = weird
        elif which == 3 and isinstance(message.get("ops"), list):
            message["ops"].insert(number % (len(message["ops"]) + 1), op)
            if number % 2:
                message["ops"] = [op]  # alone: nothing else to refuse the request for
        elif which == 4:
            message["ops"] = [{"retain": number % (size + 4)}, {"insert": "z"}]
        elif which == 5:
            message["base"] = me.version + ahead  # from the future
        elif which == 6:
            message["sel"] = sel
        else:
            message["rid"] = max(1, me.rid - number % 3)  # a reused or stale rid
    text = _json(message)
    if r["break"] == 0:  # now and then, broken as text
        text = text[: r["cut"] % (len(text) + 1)] + r["tail"]
    return kind, text or "{"


def expects_reply(frame: str | bytes) -> bool:
    """Every frame but a hello is answered with exactly one `ack` or `error`."""
    if isinstance(frame, bytes):
        return True
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        return True
    return not (isinstance(message, dict) and message.get("type") == "hello")


# ---------------------------------------------------------------- the run


@dataclass
class Report:
    frames: Counter[str] = field(default_factory=Counter)  # hostile frames by kind
    replies: Counter[str] = field(default_factory=Counter)  # "ack" or the error code
    legit_edits: int = 0
    list_frames: int = 0
    sse_requests: int = 0
    gone_at_once: int = 0  # connections closed as soon as they opened
    versions: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{sum(self.frames.values())} hostile frames ({dict(self.frames)}), replies "
            f"{dict(self.replies)}; {self.legit_edits} legitimate edits; "
            f"{self.list_frames} list frames; {self.sse_requests} live-view requests; "
            f"{self.gone_at_once} connections closed at once; "
            f"{self.versions} versions; {self.seconds:.1f} s"
        )


class Fuzz:
    """The scenario (module docstring), in steps: `start`, then `step` as often as the
    caller likes (each with its own hypothesis example), then `finish`, which checks."""

    def __init__(self) -> None:
        self.report = Report()
        self.started = time.monotonic()

    async def start(self) -> None:
        from channels.db import database_sync_to_async
        from channels.testing import WebsocketCommunicator

        from collab import store
        from editor.asgi import application
        from tests.test_consumer_sync import Editor

        doc = await database_sync_to_async(store.create_document)("Fuzz", "start 😀\n")
        self.doc_id = doc.id
        text, version = await database_sync_to_async(store.read_document)(doc.id)
        self.legit = [Editor(doc.id, cid) for cid in LEGIT]
        self.hostile = Editor(doc.id, HOSTILE)
        for editor in (*self.legit, self.hostile):
            await editor.connect()
        self.shadows = [Shadow(text, version) for _ in self.legit]
        self.me = Shadow(text, version)
        self.stored_by_me: set[int] = set()  # rids of my requests that were acknowledged
        self.sent = 0
        self.listing = WebsocketCommunicator(
            application, "/ws/list/", headers=[(b"host", b"localhost")]
        )
        assert (await self.listing.connect())[0]

    @staticmethod
    async def answer(editor: Any, rid: int | None = None) -> dict[str, Any]:
        """The next ack or error (for `rid`, if given); news and carets go by."""
        while True:
            message = await editor.receive(10)
            if message["type"] in ("ack", "error") and (rid is None or message["rid"] == rid):
                return message

    async def legit_round(self, draw: Draw[Any]) -> None:
        for editor, shadow, alphabet in zip(self.legit, self.shadows, ALPHABETS, strict=True):
            ops = edit(draw(edit_recipes), shadow.text, alphabet)
            shadow.rid += 1
            sent = D.apply(shadow.text, ops)
            await editor.send(
                {
                    "type": "sync",
                    "cid": editor.cid,
                    "rid": shadow.rid,
                    "base": shadow.version,
                    "ops": ops,
                    "action": "",
                    "sel": [0, D.utf16_len(sent)],
                }
            )
            reply = await self.answer(editor, shadow.rid)
            assert reply["type"] == "ack", f"a legitimate edit was refused: {reply}"
            shadow.text, shadow.version = D.apply(sent, reply["delta"]), reply["version"]
            self.report.legit_edits += 1

    async def step(self, draw: Draw[Any], frames: int) -> None:
        """A round of legitimate edits, then `frames` hostile frames, some junk for the
        list socket and one request of the live view."""
        from channels.db import database_sync_to_async

        from collab import store

        hostile, me, report = self.hostile, self.me, self.report
        assert hostile.comm is not None
        # Draws in the same order every step, whatever happened before (hypothesis checks).
        await self.legit_round(draw)
        for _ in range(frames):
            self.sent += 1
            kind, frame = hostile_frame(draw(frame_recipes), me)
            report.frames[kind] += 1
            if isinstance(frame, bytes):
                await hostile.comm.send_to(bytes_data=frame)
            else:
                await hostile.comm.send_to(text_data=frame)
            if not expects_reply(frame):
                continue
            reply = await self.answer(hostile)
            if reply["type"] == "error":
                assert reply["code"] in DOCUMENTED, reply
                assert isinstance(reply["message"], str) and reply["message"], reply
                report.replies[reply["code"]] += 1
                continue
            report.replies["ack"] += 1
            self.stored_by_me.add(reply["rid"])
            me.rid = max(me.rid, reply["rid"])
            # The ack is for what was sent, mutated or not: start again from the stored text.
            me.text, me.version = await database_sync_to_async(store.read_document)(self.doc_id)
        await self.list_junk(draw, 1)
        await self.live_view(draw)
        await self.gone_at_once()

    async def list_junk(self, draw: Draw[Any], frames: int) -> None:
        """The list socket ignores what it is sent (checked at the end: still told)."""
        for _ in range(frames):
            junk = draw(st.text(min_size=1, max_size=200) | st.binary(min_size=1, max_size=200))
            if isinstance(junk, bytes):
                await self.listing.send_to(bytes_data=junk)
            else:
                await self.listing.send_to(text_data=junk)
            self.report.list_frames += 1

    async def gone_at_once(self) -> None:
        """A page that closes as soon as its socket opened leaves no ghost in the
        presence list (checked at the end: the roster is empty)."""
        from channels.testing import WebsocketCommunicator

        from editor.asgi import application

        comm = WebsocketCommunicator(
            application, f"/ws/d/{self.doc_id}/", headers=[(b"host", b"localhost")]
        )
        await comm.connect()
        await comm.disconnect()
        self.report.gone_at_once += 1

    async def live_view(self, draw: Draw[Any]) -> None:
        """The live view's one input, `Last-Event-ID`: any value gets the stream."""
        from tests.test_events import Stream

        last_id = draw(st.text(max_size=40) | st.sampled_from(["1.1", "-1.-1", "9" * 400, "a.b"]))
        stream = Stream(self.doc_id, last_id.encode("utf-8", "surrogatepass").decode("latin-1"))
        start = await stream.open()
        assert start["status"] == 200, start
        first = await stream.next_event()
        assert "data" in first and "id" in first, first
        await stream.close()
        self.report.sse_requests += 1

    async def finish(self, draw: Draw[Any]) -> Report:
        from channels.db import database_sync_to_async
        from channels.layers import get_channel_layer

        from collab import store
        from collab.crdt import new_doc
        from collab.host import get_host
        from collab.protocol import LIST_GROUP, DocsChanged

        # The legitimate editors converge (a last empty sync each) on the stored text ...
        await self.legit_round(draw)
        for editor, shadow in zip(self.legit, self.shadows, strict=True):
            shadow.rid += 1
            await editor.send(
                {
                    "type": "sync",
                    "cid": editor.cid,
                    "rid": shadow.rid,
                    "base": shadow.version,
                    "ops": [],
                }
            )
            reply = await self.answer(editor, shadow.rid)
            assert reply["type"] == "ack", reply
            shadow.text, shadow.version = D.apply(shadow.text, reply["delta"]), reply["version"]
        a, b = self.shadows
        assert (a.text, a.version) == (b.text, b.version)
        final, version = await database_sync_to_async(store.read_document)(self.doc_id)
        assert (a.text, a.version) == (final, version)
        # ... the log in the database replays to exactly that text, one update a version ...
        log = await database_sync_to_async(store.load_log)(self.doc_id)
        _, replayed = new_doc([u.data for u in log.updates])
        assert str(replayed) == final
        assert [u.seq for u in log.updates] == list(range(1, version + 1))
        # ... and nothing in it came from a refused frame: each update is an acknowledged
        # request of one of the three connections, stored once.
        keys = [(u.client_key, u.request_id) for u in log.updates[1:]]
        assert len(keys) == len(set(keys)), "a request was stored twice"
        for client_key, rid in keys:
            assert client_key in (*LEGIT, HOSTILE), client_key
            if client_key == HOSTILE:
                assert rid in self.stored_by_me, f"a refused request {rid} was stored"
        room = get_host().local_room(self.doc_id)
        if room is not None:
            room.engine.verify()
        # The list socket, after all its junk, is still open and still told.
        await get_channel_layer().group_send(LIST_GROUP, DocsChanged().encode())
        while (frame := await self.listing.receive_from(5)) != '{"type": "docs"}':
            assert frame == '{"type": "docs"}', frame
        await self.listing.disconnect()
        for editor in (*self.legit, self.hostile):
            await editor.close()
        if room is not None:  # everyone left: no ghosts
            assert not room.roster.names(), room.roster.names()
        self.report.versions = version
        self.report.seconds = time.monotonic() - self.started
        return self.report


STEP_FRAMES = LEGIT_EVERY  # hostile frames per hypothesis example (within its budget)


def run(frames: int, seed: int | None = None) -> Report:
    """The whole scenario with `frames` hostile frames (Django must be set up, with a
    database), one hypothesis example per STEP_FRAMES frames, on one event loop."""
    import asyncio

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    loop = asyncio.new_event_loop()
    fuzz = Fuzz()
    try:
        loop.run_until_complete(fuzz.start())

        @settings(
            max_examples=max(1, frames // STEP_FRAMES),
            deadline=None,
            database=None,
            phases=[Phase.generate],  # no shrinking: the failing step's draws are printed
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def step(data: st.DataObject) -> None:
            if failure:
                return  # the scenario is over: report the first failure, unreplayed
            try:
                loop.run_until_complete(fuzz.step(data.draw, STEP_FRAMES))
            except Exception as error:
                # Not hypothesis's to replay: the state carries over between examples,
                # so a replay would not be the same run.
                failure.append(error)

        if seed is not None:
            step = with_seed(seed)(step)
        failure: list[Exception] = []
        step()
        if failure:
            raise failure[0]

        @settings(max_examples=1, database=None, phases=[Phase.generate])
        @given(data=st.data())
        def finish(data: st.DataObject) -> None:
            try:
                loop.run_until_complete(fuzz.finish(data.draw))
            except Exception as error:  # raised below, not replayed (as for the steps)
                failure.append(error)

        finish()
        if failure:
            raise failure[0]
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return fuzz.report


# ---------------------------------------------------------------- the command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    print(run(args.frames, args.seed).summary())


if __name__ == "__main__":
    main()
