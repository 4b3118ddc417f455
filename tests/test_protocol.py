"""collab.protocol: every wire message survives its trip, through JSON or msgpack.

Room calls, replies and group messages cross processes through channels-redis, which
packs them with msgpack (tuples come back as lists, and map keys must be strings); the
browser's messages are JSON. Each class must come back equal to what was sent.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import msgpack
import pytest

from collab import protocol as P


def through_redis(message: dict[str, Any]) -> dict[str, Any]:
    unpacked: dict[str, Any] = msgpack.unpackb(msgpack.packb(message, use_bin_type=True), raw=False)
    return unpacked


REQUEST = P.SyncRequest("page-load-1", 7, 3, [{"retain": 2}, {"insert": "😀"}], "undo", (1, 4))

CALLS: list[P.RoomCall] = [
    P.SyncCall("specific.x!abc", "Ada", REQUEST),
    P.SyncCall("specific.x!abc", "Ada", P.SyncRequest("page-load-2", 1, 0, [])),
    P.JoinCall("specific.x!abc", "Ada", "page-load-1", 12, 3),
    P.JoinCall("specific.x!abc", "Ada"),
    P.LeaveCall("specific.x!abc"),
    P.PreviewCall(),
    P.ReplaceCall("new text\n", "API"),
]
REPLIES: list[P.RoomReply] = [
    P.Synced(9, P.Answer(7, 9, [{"insert": "x"}]).encode()),
    P.PreviewReply(3, 17, "<article id='preview'></article>"),
    P.Replaced(10),
    P.Done(),
    P.Refused("bad_base", "version 99 is not between 0 and 12"),
    P.NotHere(),
]
GROUP = [
    P.DocChanged(12, [(10, '{"type": "push"}'), (11, '{"type": "push", "base": 11}')]),
    P.DocFragments(3, "<p id='statusline'></p>", "<section></section>", 4, 5),
    P.DocPresence("<ul id='presence'></ul>"),
    P.DocCarets(12, P.Carets(12, [("a1b2c3d4e5f6", "Ada", 210, 3, 5)]).encode()),
    P.DocTitle("<h1 id='title'></h1>"),
    P.DocDeleted(),
    P.AccessRevoked(),
    P.RoomOpened(4),
    P.RoomClosed(3),
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: type(c).__name__)
def test_room_calls_come_back_equal(call: P.RoomCall) -> None:
    sent = P.encode_call("doc-1", "specific.y!reply", "call-1", call)
    doc_id, reply_to, call_id, received = P.parse_call(through_redis(sent))
    assert (doc_id, reply_to, call_id) == ("doc-1", "specific.y!reply", "call-1")
    assert received == call


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_replies_come_back_equal(reply: P.RoomReply) -> None:
    assert P.parse_reply(through_redis(P.encode_reply("call-1", reply))) == ("call-1", reply)


@pytest.mark.parametrize("message", GROUP, ids=lambda m: type(m).__name__)
def test_group_messages_come_back_equal_and_name_their_handler(message: Any) -> None:
    received = type(message).parse(through_redis(message.encode()))
    if isinstance(message, P.DocChanged):
        assert received.version == message.version
        assert [tuple(p) for p in received.pushes] == message.pushes  # lists after msgpack
    else:
        assert received == message
    # Channels calls the consumer method named after the type: every consumer that joins
    # a document's group must have one, or the message ends its connection.
    from collab.consumers import DocumentConsumer
    from collab.events import EventsConsumer

    for consumer in (DocumentConsumer, EventsConsumer):
        assert hasattr(consumer, message.TYPE.replace(".", "_")), consumer


def test_a_push_is_found_by_the_version_it_starts_from() -> None:
    news = P.DocChanged.parse(through_redis(GROUP[0].encode()))
    assert isinstance(news, P.DocChanged)
    assert news.push_from(11) == '{"type": "push", "base": 11}'
    assert news.push_from(9) is None  # a gap: the consumer pokes its editor


def test_browser_frames_parse_or_say_what_is_wrong() -> None:
    assert P.parse_browser_frame(json.dumps(REQUEST.encode())) == REQUEST
    assert P.parse_browser_frame('{"type": "hello", "name": "  Ada\\n Lovelace  "}') == P.Hello(
        "Ada Lovelace"
    )
    for frame, code in [
        (None, "bad_request"),
        ("not json", "bad_request"),
        ('{"type": "nope"}', "bad_request"),
    ]:
        with pytest.raises(P.ProtocolError) as caught:
            P.parse_browser_frame(frame)
        assert caught.value.code == code
    with pytest.raises(P.FrameRefused) as refused:
        P.parse_browser_frame("x" * (P.MAX_FRAME_BYTES + 1))
    assert refused.value.code == P.CLOSE_TOO_LARGE
    with pytest.raises(P.ProtocolError) as caught:
        P.parse_browser_frame('{"type": "sync", "cid": "bad", "rid": 4, "base": 0}')
    assert caught.value.rid == 4  # the error names the request it refuses


def test_a_huge_display_name_costs_what_a_short_one_does(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_at = 0
    category = unicodedata.category

    def counting(c: str) -> str:
        nonlocal looked_at
        looked_at += 1
        return category(c)

    monkeypatch.setattr(P.unicodedata, "category", counting)
    name = P.clean_name("hello " * 1_000_000)
    assert len(name) <= P.NAME_MAX and name.startswith("hello hello")
    assert looked_at <= P.NAME_MAX * 8  # a bounded prefix, not the 6 MB
    assert P.clean_name("\u0000\u200b\n") == P.DEFAULT_NAME  # control and format characters go


def test_the_page_gets_close_codes_and_limits_from_here() -> None:
    constants = P.browser_constants()
    assert constants["closeRetry"] == P.CLOSE_RETRY
    assert 3000 <= P.CLOSE_RETRY < 4000  # Daphne can send it; htmx would not retry it
    assert set(constants["closeMessages"]) == {"4400", "4403", "4404", "4413", "4429"}
    assert json.loads(json.dumps(constants)) == constants
