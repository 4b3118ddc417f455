"""Hostile frames on /ws/d/<id>/: each gets the documented error (docs/protocol.md) or
close code, the stored document is untouched, and the connection and every other editor
carry on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from collab import protocol as P
from tests.test_consumer_sync import Editor, new_document, stored

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

TEXT = "ab😀c\n"  # 6 UTF-16 units: the emoji is a surrogate pair at 2-3
CID = "tab-hostile-01"


def sync(**fields: Any) -> str:
    message: dict[str, Any] = {"type": "sync", "cid": CID, "rid": 1, "base": 1, "ops": []}
    message.update(fields)
    return json.dumps(message)


async def hostile_and_other(doc_id: str) -> tuple[Editor, Editor]:
    """The editor sending hostile frames, and another one on the same document, both
    connected."""
    hostile, other = Editor(doc_id, CID), Editor(doc_id, "tab-other-001")
    await hostile.connect()
    await other.connect()
    return hostile, other


BAD_REQUEST = [
    # not a message
    "not json",
    " ",
    "[1, 2]",
    "null",
    '"sync"',
    "{",
    "[" * 100_000,
    '{"type": "sync", "rid": NaN}',
    # unknown or missing type
    '{"type": "nope"}',
    '{"type": 5}',
    "{}",
    '{"type": "ack", "rid": 1, "version": 1, "delta": []}',  # a server message sent back
    # cid
    sync(cid="short"),
    sync(cid=5),
    sync(cid="x" * 65),
    sync(cid="tab hostile 01"),
    sync(cid=None),
    # rid and base: integers in range, never floats, bools or strings
    sync(rid=0),
    sync(rid=-1),
    sync(rid=1.0),
    sync(rid=True),
    sync(rid="1"),
    sync(rid=2**53),
    sync(rid=10**400),
    sync(base=-1),
    sync(base=1.5),
    sync(base=False),
    sync(base=None),
    sync(base=2**64),
    # ops of every wrong shape
    sync(ops={"insert": "x"}),
    sync(ops="x"),
    sync(ops=[{"retain": 0}]),
    sync(ops=[{"retain": -1}]),
    sync(ops=[{"retain": 1.0}]),
    sync(ops=[{"delete": True}]),
    sync(ops=[{"insert": ""}]),
    sync(ops=[{"insert": 5}]),
    sync(ops=[{"insert": ["x"]}]),
    sync(ops=[{"retain": 1, "insert": "x"}]),
    sync(ops=[{"bogus": 1}]),
    sync(ops=[{}]),
    sync(ops=[5]),
    sync(ops=[None]),
    # ops that do not fit the base text
    sync(ops=[{"retain": 7}]),
    sync(ops=[{"delete": 7}]),
    sync(ops=[{"retain": 6}, {"delete": 1}]),
    sync(ops=[{"retain": 3}, {"insert": "x"}]),  # inside the surrogate pair
    sync(ops=[{"retain": 2}, {"delete": 1}]),  # half of the pair
    sync(ops=[{"retain": 3}, {"delete": 1}]),
    # surrogate halves and CR in inserts
    sync(ops=[{"insert": "\ud800"}]),  # json.dumps escapes it: the frame says \ud800
    sync(ops=[{"insert": "a\udfffb"}]),
    sync(ops=[{"insert": "a\rb"}]),
    sync(ops=[{"insert": "\r\n"}]),
    # action
    sync(action="delete"),
    sync(action=1),
    sync(action=None),
    # selections of any shape
    sync(sel="0,1"),
    sync(sel=[1]),
    sync(sel=[1, 2, 3]),
    sync(sel=[-1, 0]),
    sync(sel=[0.5, 1]),
    sync(sel=[True, 1]),
    sync(sel=[0, 2**53]),
    sync(sel={"from": 0, "to": 1}),
]


@pytest.mark.parametrize("frame", BAD_REQUEST, ids=range(len(BAD_REQUEST)))
async def test_a_malformed_frame_is_bad_request_and_nothing_changes(frame: str) -> None:
    doc_id = await new_document(TEXT)
    hostile, other = await hostile_and_other(doc_id)
    assert hostile.comm is not None
    await hostile.comm.send_to(text_data=frame)
    error = await hostile.receive()
    assert error["type"] == "error" and error["code"] == "bad_request", error
    assert error["message"]
    assert await stored(doc_id) == (TEXT, 1)
    # Both carry on: the other editor's edit lands, the hostile one can still sync.
    answer = await other.sync(1, [{"insert": "ok "}])
    assert answer["type"] == "ack" and answer["version"] == 2
    assert (await hostile.sync(2, []))["type"] == "ack"
    assert await stored(doc_id) == ("ok " + TEXT, 2)
    await hostile.close()
    await other.close()


async def test_a_binary_frame_is_bad_request() -> None:
    doc_id = await new_document(TEXT)
    hostile = Editor(doc_id, CID)
    await hostile.connect()
    assert hostile.comm is not None
    await hostile.comm.send_to(bytes_data=b'{"type": "sync"}')
    assert (await hostile.receive())["code"] == "bad_request"
    assert (await hostile.sync(1, [{"insert": "x"}]))["type"] == "ack"
    await hostile.close()


async def test_documented_refusals_of_well_formed_requests() -> None:
    """bad_base (a base from the future), stale (an older rid), a cid that changes, and a
    reused rid (a resend: answered again, its ops never applied twice)."""
    doc_id = await new_document(TEXT)
    hostile = Editor(doc_id, CID)
    await hostile.connect()
    assert hostile.comm is not None
    future = await hostile.sync(2, [{"insert": "x"}], rid=1)
    assert (future["code"], future["rid"]) == ("bad_base", 1)
    first = await hostile.sync(1, [{"insert": "x"}], rid=5)
    assert first["type"] == "ack" and first["version"] == 2
    again = await hostile.sync(1, [{"insert": "DIFFERENT"}], rid=5)  # same rid, other ops
    assert again["type"] == "ack" and again["version"] == 2
    older = await hostile.sync(2, [{"insert": "y"}], rid=4)
    assert (older["code"], older["rid"]) == ("stale", 4)
    await hostile.comm.send_to(text_data=sync(cid="tab-another-1", rid=6, base=2))
    assert (await hostile.receive())["code"] == "bad_request"
    assert await stored(doc_id) == ("x" + TEXT, 2)
    await hostile.close()


async def test_an_oversized_frame_is_refused_unparsed_with_4413() -> None:
    doc_id = await new_document(TEXT)
    hostile, other = await hostile_and_other(doc_id)
    assert hostile.comm is not None
    # Not JSON at all: refused by its length, before any parsing.
    await hostile.comm.send_to(text_data="[" * (P.MAX_FRAME_BYTES + 1))
    assert await hostile.close_code() == P.CLOSE_TOO_LARGE
    assert str(P.CLOSE_TOO_LARGE) in P.browser_constants()["closeMessages"]
    assert (await other.sync(1, [{"insert": "ok"}]))["version"] == 2
    assert await stored(doc_id) == ("ok" + TEXT, 2)
    await other.close()


HOSTILE_NAMES: list[Any] = [
    None,
    5,
    ["Ada"],
    {"name": "Ada"},
    " ",
    "   ",
    "\u0000\u0007\u200b\u202e",
    "<script>alert(1)</script>",
    "hello " * 700_000,  # 4.2 MB, just under the frame limit once in JSON
    "😀" * 100,
    "\ud800",  # a lone surrogate (JSON allows the escape)
    "a\r\nb\tc",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
async def test_a_display_name_of_any_shape_is_cleaned(name: Any) -> None:
    doc_id = await new_document(TEXT)
    hostile, other = await hostile_and_other(doc_id)
    assert hostile.comm is not None
    frame = json.dumps({"type": "hello", "name": name})
    if len(frame) > P.MAX_FRAME_BYTES:
        frame = json.dumps({"type": "hello", "name": name[: P.MAX_FRAME_BYTES // 2]})
    await hostile.comm.send_to(text_data=frame)
    answer = await hostile.sync(1, [{"insert": "x"}])  # still connected, still syncing
    assert answer["type"] == "ack"
    assert (await other.sync(2, []))["type"] == "ack"
    # What reached the others' presence list is a clean, short name.
    cleaned = P.clean_name(name)
    assert 1 <= len(cleaned) <= P.NAME_MAX
    assert all(c.isprintable() or c == " " for c in cleaned)
    assert "<script>" not in "".join(other.html)
    await hostile.close()
    await other.close()


async def test_a_selection_past_the_text_never_reaches_other_editors_unclamped() -> None:
    doc_id = await new_document(TEXT)
    hostile, other = await hostile_and_other(doc_id)
    assert (await other.sync(1, []))["type"] == "ack"
    assert hostile.comm is not None
    await hostile.comm.send_to(text_data=sync(sel=[5, 2**53 - 1]))
    assert (await hostile.receive())["type"] == "ack"
    while True:
        message = await other.receive()
        if message["type"] == "carets" and message["carets"]:
            break
    [[_id, _name, _hue, anchor, head]] = message["carets"]
    assert (anchor, head) == (5, 6)  # the end of the 6-unit text
    await hostile.close()
    await other.close()
