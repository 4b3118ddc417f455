"""Carets through the consumer and the room: set by each sync's `sel`, moved by every
change, sent to everyone in one coalesced frame."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from collab.carets import caret_id
from collab.fragments import MIN_HUE_APART, _hue_distance, room_hues
from tests.html import parse
from tests.test_consumer_sync import Editor, new_document
from tests.test_people import close_pair

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def sync_with_sel(
    editor: Editor, base: int, ops: list[dict[str, Any]], sel: list[int]
) -> dict[str, Any]:
    editor.rid += 1
    await editor.send(
        {"type": "sync", "cid": editor.cid, "rid": editor.rid, "base": base, "ops": ops, "sel": sel}
    )
    while True:
        message = await editor.receive()
        if message["type"] == "ack":
            return message
        editor.html.append(json.dumps(message))  # kept for carets_frames()


async def next_carets(editor: Editor, timeout: float = 3) -> dict[str, Any]:
    """The next `carets` frame (one kept while waiting for an answer counts)."""
    for kept in list(editor.html):
        if kept.startswith('{"type": "carets"'):
            editor.html.remove(kept)
            return dict(json.loads(kept))
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        message = await editor.receive(max(0.01, deadline - asyncio.get_running_loop().time()))
        if message["type"] == "carets":
            return message


def placed(frame: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
    return {c[0]: (c[1], c[3], c[4]) for c in frame["carets"]}


async def test_carets_follow_syncs_and_move_with_others_changes() -> None:
    doc_id = await new_document("abcdef")
    a, b = Editor(doc_id, "tab-a-0001"), Editor(doc_id, "tab-b-0001")
    await a.connect()
    await b.connect()
    await a.send({"type": "hello", "name": "Ada"})
    await b.send({"type": "hello", "name": "Bob"})
    assert (await sync_with_sel(a, 1, [], [0, 0]))["version"] == 1
    assert (await sync_with_sel(b, 1, [], [2, 5]))["version"] == 1
    ada, bob = caret_id(a.cid), caret_id(b.cid)
    frame = await next_carets(a)
    while bob not in placed(frame):
        frame = await next_carets(a)
    assert placed(frame)[bob] == ("Bob", 2, 5)
    # Ada types before Bob's selection: it moves with the text, in her next frame.
    answer = await sync_with_sel(a, 1, [{"insert": "XY"}], [2, 2])
    assert answer["version"] == 2
    frame = await next_carets(a)
    while placed(frame).get(ada) != ("Ada", 2, 2):
        frame = await next_carets(a)
    assert frame["version"] == 2
    assert placed(frame)[bob] == ("Bob", 4, 7)
    # Bob leaves: his caret goes with him.
    await b.close()
    frame = await next_carets(a)
    while bob in placed(frame):
        frame = await next_carets(a)
    assert placed(frame) == {ada: ("Ada", 2, 2)}
    await a.close()


async def test_no_carets_frame_while_nobody_sends_a_selection() -> None:
    doc_id = await new_document("abc")
    a, b = Editor(doc_id, "tab-a-0001"), Editor(doc_id, "tab-b-0001")
    await a.connect()
    await b.connect()
    assert (await a.sync(1, [{"insert": "x"}]))["type"] == "ack"
    assert (await b.sync(2, [{"insert": "y"}]))["type"] == "ack"
    await asyncio.sleep(0.5)
    frames = list(a.html + b.html)
    for editor in (a, b):
        assert editor.comm is not None
        while not editor.comm.output_queue.empty():
            frames.append(editor.comm.output_queue.get_nowait().get("text") or "")
    assert frames and not [f for f in frames if f.startswith('{"type": "carets"')]
    await a.close()
    await b.close()


async def test_many_caret_moves_go_out_in_few_frames() -> None:
    # Coalesced per room tick: 30 quick moves reach the other editor in a few frames.
    doc_id = await new_document("0123456789" * 5)
    a, b = Editor(doc_id, "tab-a-0001"), Editor(doc_id, "tab-b-0001")
    await a.connect()
    await b.connect()
    assert (await sync_with_sel(a, 1, [], [0, 0]))["type"] == "ack"
    for i in range(30):
        assert (await sync_with_sel(b, 1, [], [i, i]))["type"] == "ack"
    frames = []
    while True:
        frame = await next_carets(a, 1.0)
        frames.append(frame)
        if placed(frame).get(caret_id(b.cid), ("", -1, -1))[1] == 29:
            break
    assert len(frames) <= 6, len(frames)
    await a.close()
    await b.close()


async def test_a_backward_selection_keeps_its_direction() -> None:
    # Selected from right to left: [anchor, head] with head < anchor. Everyone is told
    # both ends as they are, through every change, so the caret is drawn at the head.
    doc_id = await new_document("abcdefgh")
    a, b = Editor(doc_id, "tab-a-0001"), Editor(doc_id, "tab-b-0001")
    await a.connect()
    await b.connect()
    await b.send({"type": "hello", "name": "Bob"})
    assert (await sync_with_sel(a, 1, [], [0, 0]))["type"] == "ack"
    assert (await sync_with_sel(b, 1, [], [6, 2]))["type"] == "ack"
    bob = caret_id(b.cid)
    frame = await next_carets(a)
    while bob not in placed(frame):
        frame = await next_carets(a)
    assert placed(frame)[bob] == ("Bob", 6, 2)
    # Ada types before both ends: they move, the direction stays.
    assert (await sync_with_sel(a, 1, [{"insert": "XY"}], [2, 2]))["version"] == 2
    frame = await next_carets(a)
    while frame["version"] < 2 or bob not in placed(frame):
        frame = await next_carets(a)
    assert placed(frame)[bob] == ("Bob", 8, 4)
    await a.close()
    await b.close()


async def test_two_people_with_nearly_one_colour_get_two_and_their_carets_match() -> None:
    first, second = close_pair()
    doc_id = await new_document("abcdef")
    a, b = Editor(doc_id, "tab-a-0001"), Editor(doc_id, "tab-b-0001")
    await a.connect()
    await a.send({"type": "hello", "name": first})
    assert (await sync_with_sel(a, 1, [], [0, 0]))["version"] == 1
    await b.connect()
    await b.send({"type": "hello", "name": second})
    assert (await sync_with_sel(b, 1, [], [2, 2]))["version"] == 1
    expected = room_hues([first, second])
    assert _hue_distance(expected[first], expected[second]) >= MIN_HUE_APART
    frame = await next_carets(a)
    while len(frame["carets"]) < 2:
        frame = await next_carets(a)
    assert {c[1]: c[2] for c in frame["carets"]} == expected
    # The presence list a's page gets shows the same two colours.
    deadline = asyncio.get_running_loop().time() + 3
    while True:
        lists = [h for h in a.html if 'id="presence"' in h and second in h]
        if lists or asyncio.get_running_loop().time() > deadline:
            break
        with contextlib.suppress(asyncio.TimeoutError):
            await a.receive(0.2)
    assert lists, "no presence list with both people"
    page = parse(lists[-1])
    shown = {li.attrs["data-name"]: int(li.attrs["data-hue"]) for li in page.all if li.tag == "li"}
    assert shown == expected
    await a.close()
    await b.close()
