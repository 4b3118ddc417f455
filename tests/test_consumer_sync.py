"""The consumer speaking the sync protocol, driven through Channels' WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from collab import broadcaster as room_module
from collab import delta as D
from collab import engine as engine_module
from collab import host as host_module
from collab import store
from collab.host import get_host
from collab.protocol import CLOSE_RETRY
from editor.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class Editor:
    """One browser tab, as the protocol sees it."""

    def __init__(self, doc_id: str, cid: str) -> None:
        self.doc_id = doc_id
        self.cid = cid
        self.rid = 0
        self.html: list[str] = []
        self.comm: WebsocketCommunicator | None = None

    async def connect(self) -> None:
        self.comm = WebsocketCommunicator(
            application, f"/ws/d/{self.doc_id}/", headers=[(b"host", b"localhost")]
        )
        connected, _ = await self.comm.connect()
        assert connected

    async def receive(self, timeout: float = 3) -> dict[str, Any]:
        """The next JSON message; HTML fragments on the way are kept in self.html."""
        assert self.comm is not None
        while True:
            frame = await self.comm.receive_from(timeout)
            if frame.startswith("{"):
                return json.loads(frame)
            self.html.append(frame)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.comm is not None
        await self.comm.send_to(text_data=json.dumps(message))

    async def sync(
        self, base: int, ops: list[dict[str, Any]], action: str = "", rid: int | None = None
    ) -> dict[str, Any]:
        if rid is None:
            self.rid += 1
            rid = self.rid
        await self.send(
            {
                "type": "sync",
                "cid": self.cid,
                "rid": rid,
                "base": base,
                "ops": ops,
                "action": action,
            }
        )
        while True:
            message = await self.receive()
            if message["type"] not in ("poke", "push"):  # news; the answer is what we wait for
                return message

    async def close_code(self, timeout: float = 3) -> int:
        """The code the server closes with; every frame before it is kept in self.html."""
        assert self.comm is not None
        while True:
            output = await self.comm.receive_output(timeout)
            if output["type"] == "websocket.close":
                return int(output["code"])
            self.html.append(output.get("text", ""))

    async def close(self) -> None:
        assert self.comm is not None
        await self.comm.disconnect()


def apply(text: str, delta: list[dict[str, Any]]) -> str:
    """Apply a delta (ASCII test texts, so UTF-16 units are characters)."""
    out, pos = [], 0
    for op in delta:
        if "retain" in op:
            out.append(text[pos : pos + op["retain"]])
            pos += op["retain"]
        elif "delete" in op:
            pos += op["delete"]
        else:
            out.append(op["insert"])
    return "".join(out) + text[pos:]


@database_sync_to_async
def new_document(text: str = "") -> str:
    return store.create_document("Test", text).id


@database_sync_to_async
def stored(doc_id: str) -> tuple[str, int]:
    return store.read_document(doc_id)


async def test_connect_sends_the_preview_and_presence() -> None:
    doc_id = await new_document("# Hi")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    assert a.comm is not None
    first = await a.comm.receive_from(3)
    assert first.startswith('<article id="preview"')
    assert "<h1" in first
    presence = await a.comm.receive_from(3)
    assert 'id="presence"' in presence
    await a.close()


async def test_an_edit_is_durable_before_its_answer() -> None:
    doc_id = await new_document("abc")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    answer = await a.sync(1, [{"retain": 3}, {"insert": "d"}])
    assert answer == {"type": "ack", "rid": 1, "version": 2, "delta": []}
    assert await stored(doc_id) == ("abcd", 2)
    await a.close()


async def writer_and_reader(text: str) -> tuple[str, Editor, Editor]:
    """A document at version 1 with two editors connected; the second has synced."""
    doc_id = await new_document(text)
    a, b = Editor(doc_id, "tab-a-0001"), Editor(doc_id, "tab-b-0001")
    await a.connect()
    await b.connect()
    await b.sync(1, [])
    return doc_id, a, b


async def test_a_change_is_pushed_to_the_others_who_build_on_it() -> None:
    doc_id, a, b = await writer_and_reader("abc")
    await a.sync(1, [{"insert": "X"}])
    push = await b.receive()
    assert push == {"type": "push", "base": 1, "version": 2, "delta": [{"insert": "X"}]}
    # B's next request starts from the pushed version.
    answer = await b.sync(2, [{"retain": 4}, {"insert": "!"}])
    assert answer == {"type": "ack", "rid": 2, "version": 3, "delta": []}
    push = await a.receive()
    assert push == {
        "type": "push",
        "base": 2,
        "version": 3,
        "delta": [{"retain": 4}, {"insert": "!"}],
    }
    assert (await stored(doc_id))[0] == "Xabc!"
    await a.close()
    await b.close()


async def test_an_editor_too_far_behind_for_a_push_is_poked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no recent history to compose a push from, the editor is poked and syncs."""
    monkeypatch.setattr(engine_module, "HISTORY_VERSIONS", 0)
    _, a, b = await writer_and_reader("abc")
    await a.sync(1, [{"insert": "X"}])
    assert await b.receive() == {"type": "poke", "version": 2}
    answer = await b.sync(1, [{"retain": 3}, {"insert": "!"}])
    assert answer["version"] == 3
    assert apply("abc!", answer["delta"]) == "Xabc!"
    await a.close()
    await b.close()


async def test_pushes_carry_only_durable_versions_and_unicode() -> None:
    """Several editors' changes in quick succession reach an idle editor as pushes that
    chain (each starts where the last ended), in UTF-16 units, ending at the stored text."""
    doc_id = await new_document("ab")
    idle = Editor(doc_id, "tab-idle-01")
    writers = [Editor(doc_id, f"tab-w{i}-0001") for i in range(3)]
    for editor in [idle, *writers]:
        await editor.connect()
    await idle.sync(1, [])
    version, text = 1, "ab"
    answers = await asyncio.gather(
        *(
            w.sync(1, [{"retain": 1}, {"insert": s}])
            for w, s in zip(writers, ["😀", "漢", "é"], strict=True)
        )
    )
    final = max(a["version"] for a in answers)
    while version < final:
        push = await idle.receive()
        assert push["type"] == "push" and push["base"] == version
        text, version = D.apply(text, push["delta"]), push["version"]
    assert (text, version) == await stored(doc_id)
    assert sorted(text) == sorted("ab😀漢é")
    for editor in [idle, *writers]:
        await editor.close()


async def test_reconnect_with_offline_edits_merges_them() -> None:
    doc_id = await new_document("hello world")
    a, b = Editor(doc_id, "tab-a-0001"), Editor(doc_id, "tab-b-0001")
    await a.connect()
    await a.sync(1, [])
    await a.close()  # A goes offline at version 1 and keeps typing
    await b.connect()
    await b.sync(1, [{"insert": ">> "}])
    await b.close()
    a2 = Editor(doc_id, "tab-a-0001")
    a2.rid = a.rid
    await a2.connect()
    answer = await a2.sync(1, [{"retain": 11}, {"insert": "!!"}])
    assert apply("hello world!!", answer["delta"]) == ">> hello world!!"
    assert await stored(doc_id) == (">> hello world!!", 3)
    await a2.close()


async def test_a_resent_request_is_not_applied_twice_even_after_a_reload() -> None:
    doc_id = await new_document("abc")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    first = await a.sync(1, [{"retain": 3}, {"insert": "d"}])
    await a.close()
    # The server restarts: rooms are gone and come back from storage.
    for room in get_host().rooms():
        room.close()
    a2 = Editor(doc_id, "tab-a-0001")
    await a2.connect()
    again = await a2.sync(1, [{"retain": 3}, {"insert": "d"}], rid=1)
    assert again["version"] == first["version"] == 2
    assert apply("abcd", again["delta"]) == "abcd"
    assert await stored(doc_id) == ("abcd", 2)
    await a2.close()


async def test_undo_takes_back_only_my_change() -> None:
    doc_id = await new_document("")
    a, b = Editor(doc_id, "tab-a-0001"), Editor(doc_id, "tab-b-0001")
    await a.connect()
    await b.connect()
    await a.sync(0, [{"insert": "mine "}])
    answer = await b.sync(0, [{"insert": "theirs"}])
    v = answer["version"]
    text_b = apply("theirs", answer["delta"])
    assert text_b in {"mine theirs", "theirsmine "}
    answer = await a.sync(1, [], action="undo")
    assert answer["version"] == v + 1
    assert (await stored(doc_id))[0] == "theirs"
    await a.close()
    await b.close()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            {"type": "sync", "cid": "tab-a-0001", "rid": 1, "base": 1, "ops": [{"retain": 99}]},
            "bad_request",
        ),
        ({"type": "sync", "cid": "tab-a-0001", "rid": 1, "base": 7, "ops": []}, "bad_base"),
        ({"type": "sync", "cid": "x", "rid": "one", "base": 1, "ops": []}, "bad_request"),
        ({"type": "shout"}, "bad_request"),
    ],
)
async def test_bad_requests_get_a_clear_error_and_change_nothing(
    message: dict[str, Any], code: str
) -> None:
    doc_id = await new_document("abc")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    await a.send(message)
    error = await a.receive()
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    assert await stored(doc_id) == ("abc", 1)
    await a.close()


async def test_text_that_is_not_json_is_refused() -> None:
    doc_id = await new_document("abc")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    assert a.comm is not None
    await a.comm.send_to(text_data="<b>hi</b>")
    error = await a.receive()
    assert error["code"] == "bad_request"
    await a.close()


async def test_preview_and_status_follow_the_text() -> None:
    doc_id = await new_document("one")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    await a.sync(1, [{"retain": 3}, {"insert": "\n\n## two"}])
    assert a.comm is not None
    html = await a.comm.receive_from(3)
    while 'id="statusline"' not in html:
        html = await a.comm.receive_from(3)
    assert "2 words" in html
    assert "<h2" in html
    await a.close()


async def test_deleting_the_document_closes_editors_with_4404() -> None:
    doc_id = await new_document("abc")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    await a.sync(1, [])

    @database_sync_to_async
    def delete() -> None:
        from editor import documents
        from editor.models import Document

        documents.delete(Document.objects.get(pk=doc_id))

    await delete()
    assert await a.close_code() == 4404


async def test_a_storage_failure_drops_the_room_and_the_resend_after_reconnect_lands_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(host_module, "MAX_TRIES", 2)  # storage stays down: give up soon
    doc_id = await new_document("abc")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    await a.sync(1, [])
    real_append = store.append

    def failing_append(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    real_exists = store.exists

    def slow_exists(doc_id: str) -> bool:
        time.sleep(0.3)  # the failed room checks this before it says "reconnect"
        return real_exists(doc_id)

    monkeypatch.setattr(store, "append", failing_append)
    monkeypatch.setattr(store, "exists", slow_exists)
    await a.send({"type": "sync", "cid": a.cid, "rid": 2, "base": 1, "ops": [{"insert": "X"}]})
    # No answer (the change was never durable); the server says "reconnect".
    assert await a.close_code() == CLOSE_RETRY
    assert not any('"ack"' in frame for frame in a.html)
    assert await stored(doc_id) == ("abc", 1)
    monkeypatch.setattr(store, "append", real_append)
    # Reconnecting at once, while the failed room is still winding down, must reach a
    # fresh room loaded from storage.
    a2 = Editor(doc_id, "tab-a-0001")
    await a2.connect()
    answer = await a2.sync(1, [{"insert": "X"}], rid=2)
    assert answer["version"] == 2
    assert apply("Xabc", answer["delta"]) == "Xabc"
    assert await stored(doc_id) == ("Xabc", 2)
    await a2.close()


async def test_a_passing_storage_failure_is_retried_and_lands_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The room that failed is dropped; the consumer asks a fresh one (loaded from
    storage) with the same request, which lands once, without the editor reconnecting."""
    doc_id = await new_document("abc")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    await a.sync(1, [])
    real_append = store.append
    failures = [OSError("disk full"), OSError("disk full")]

    def flaky_append(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        real_append(*args, **kwargs)

    monkeypatch.setattr(store, "append", flaky_append)
    answer = await a.sync(1, [{"insert": "X"}])
    assert answer["type"] == "ack" and answer["version"] == 2
    assert apply("Xabc", answer["delta"]) == "Xabc"
    assert not failures
    assert await stored(doc_id) == ("Xabc", 2)
    await a.close()


async def test_undo_still_works_after_a_reconnect() -> None:
    doc_id = await new_document("")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    await a.sync(0, [{"insert": "typed before the blip"}])
    await a.close()
    a2 = Editor(doc_id, "tab-a-0001")  # the same page load, a new connection
    a2.rid = a.rid
    await a2.connect()
    answer = await a2.sync(1, [], action="undo")
    assert apply("typed before the blip", answer["delta"]) == ""
    assert await stored(doc_id) == ("", 2)
    await a2.close()


async def test_deeply_nested_json_is_a_clear_error_not_a_crash() -> None:
    doc_id = await new_document("abc")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    assert a.comm is not None
    await a.comm.send_to(text_data="[" * 100_000)
    error = await a.receive()
    assert error["code"] == "bad_request"
    assert (await a.sync(1, []))["type"] == "ack"  # still connected and working
    await a.close()


async def test_a_document_deleted_under_a_request_closes_the_editor_with_4404(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tandem.collab")
    doc_id = await new_document("abc")
    a = Editor(doc_id, "tab-a-0001")
    await a.connect()
    await a.sync(1, [])

    @database_sync_to_async
    def delete_quietly() -> None:  # as if the delete raced with the next request
        from editor.models import Document

        Document.objects.filter(pk=doc_id).delete()

    await delete_quietly()
    await a.send({"type": "sync", "cid": a.cid, "rid": 2, "base": 1, "ops": [{"insert": "X"}]})
    assert await a.close_code() == 4404
    for _ in range(500):  # the room notes it on its own task
        if "was deleted while being edited" in caplog.text:
            break
        await asyncio.sleep(0.01)
    assert "was deleted while being edited" in caplog.text
    assert "failed; closing it" not in caplog.text


async def test_broadcast_intervals_scale_with_the_room() -> None:
    assert room_module.broadcast_interval(10, 0.0002, 0.0, 0.05) == pytest.approx(0.002)
    assert room_module.broadcast_interval(200, 0.0002, 0.0, 0.05) == pytest.approx(0.04)
    assert room_module.broadcast_interval(1000, 0.0002, 0.0, 0.05) == 0.05
    assert room_module.broadcast_interval(3, 0.001, 0.1, 1.0) == 0.1  # fragments: never under 0.1 s


async def test_changes_in_quick_succession_reach_an_idle_editor_in_fewer_pushes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The room tells its group at most every FANOUT_SECONDS_PER_EDITOR x editors: the
    first change goes out at once, the ones during the pause travel as one push."""
    monkeypatch.setattr(room_module, "FANOUT_SECONDS_PER_EDITOR", 0.1)  # 0.2 s for two
    doc_id = await new_document("")
    writer, idle = Editor(doc_id, "tab-w-00001"), Editor(doc_id, "tab-idle-01")
    await writer.connect()
    await idle.connect()
    await idle.sync(0, [])
    for i, ch in enumerate("abcde"):
        await writer.sync(i, [{"retain": i}, {"insert": ch}] if i else [{"insert": ch}])
    pushes = [await idle.receive()]
    while pushes[-1]["version"] < 5:
        pushes.append(await idle.receive())
    assert [p["base"] for p in pushes] == [0, *[p["version"] for p in pushes[:-1]]]
    assert len(pushes) < 5
    text = ""
    for push in pushes:
        text = D.apply(text, push["delta"])
    assert text == "abcde" == (await stored(doc_id))[0]
    await writer.close()
    await idle.close()
