"""What the WebSocket consumer does when an editor connects (Channels' communicator).

Only connect-time behaviour: the sync protocol itself has its own tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from collab import store
from editor.asgi import application
from editor.credentials import owner_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@database_sync_to_async
def new_document(text: str = "") -> str:
    return store.create_document("Connect test", text).id


def communicator(doc_id: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/d/{doc_id}/", headers=headers)


async def close_code(comm: WebsocketCommunicator, timeout: float = 3) -> int | None:
    """The code the server closes with; frames sent before the close are skipped."""
    while True:
        message: dict[str, Any] = await comm.receive_output(timeout)
        if message["type"] == "websocket.close":
            return message.get("code")


async def stays_open(comm: WebsocketCommunicator, wait: float = 0.3) -> bool:
    """True when the server has not closed the socket after `wait` seconds."""
    await asyncio.sleep(wait)
    messages = []
    while not comm.output_queue.empty():
        messages.append(comm.output_queue.get_nowait())
    return not any(m["type"] == "websocket.close" for m in messages)


def group_members(doc_id: str) -> set[str]:
    layer: Any = get_channel_layer()
    return set(layer.groups.get(f"doc.{doc_id}", {}))


async def members_once_settled(doc_id: str, expected: int, timeout: float = 3) -> set[str]:
    """The group's members once it has `expected` of them (a consumer joins the group
    after accepting, so `connect()` can return first), or as they are at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(group_members(doc_id)) != expected:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    return group_members(doc_id)


LOCAL = [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000")]


async def test_same_origin_editor_is_accepted_and_joins_the_document_group() -> None:
    doc_id = await new_document("# Hi")
    comm = communicator(doc_id, LOCAL)
    connected, _ = await comm.connect()
    assert connected
    assert len(await members_once_settled(doc_id, 1)) == 1
    # The socket stays open: nothing closes it of its own accord.
    assert await stays_open(comm)
    await comm.disconnect()
    assert group_members(doc_id) == set()


async def test_two_editors_share_the_group_and_a_group_message_reaches_them() -> None:
    doc_id = await new_document()
    a, b = communicator(doc_id, LOCAL), communicator(doc_id, LOCAL)
    assert (await a.connect())[0] and (await b.connect())[0]
    assert len(await members_once_settled(doc_id, 2)) == 2
    # Another document's group is another set of channels.
    other = await new_document()
    c = communicator(other, LOCAL)
    assert (await c.connect())[0]
    assert len(await members_once_settled(other, 1)) == 1
    assert not group_members(doc_id) & group_members(other)
    for comm in (a, b, c):
        await comm.disconnect()


async def test_a_client_without_origin_is_accepted() -> None:
    # Not a browser (browsers always send Origin): scripts, benchmarks, tests.
    doc_id = await new_document()
    comm = communicator(doc_id, [(b"host", b"127.0.0.1:8000")])
    connected, _ = await comm.connect()
    assert connected
    assert len(await members_once_settled(doc_id, 1)) == 1
    await comm.disconnect()


@pytest.mark.parametrize(
    "host, origin",
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("192.168.1.20:8000", "http://192.168.1.20:8000"),
        ("tandem.local", "http://tandem.local"),
        ("[::1]:9000", "http://[::1]:9000"),
    ],
)
async def test_same_origin_on_any_address_is_accepted(
    host: str, origin: str, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["*"]  # what `serve --host 0.0.0.0` allows
    doc_id = await new_document()
    # From the network, only the owner (here by the owner key) or a link's guest gets in.
    owner = f"Bearer {owner_key()}".encode()
    headers = [(b"host", host.encode()), (b"origin", origin.encode()), (b"authorization", owner)]
    comm = communicator(doc_id, headers)
    connected, _ = await comm.connect()
    assert connected
    assert len(await members_once_settled(doc_id, 1)) == 1
    await comm.disconnect()


async def test_a_host_django_does_not_serve_is_refused_even_if_same_origin() -> None:
    # A DNS-rebinding page has Origin and Host of its own name: same origin, wrong host.
    doc_id = await new_document()
    host = b"evil.example:8000"
    comm = communicator(doc_id, [(b"host", host), (b"origin", b"http://" + host)])
    connected, _ = await comm.connect()
    assert connected
    assert await close_code(comm) == 4403
    assert await members_once_settled(doc_id, 0) == set()


async def test_unknown_document_is_accepted_then_closed_with_4404() -> None:
    # Accept, then close with 4xxx: a refused handshake reaches the browser as 1006,
    # which htmx's extension would retry for ever.
    comm = communicator("no-such-document", LOCAL)
    connected, _ = await comm.connect()
    assert connected
    assert await close_code(comm) == 4404
    assert group_members("no-such-document") == set()


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://localhost:9999",  # another port is another origin
        "http://localhost.evil.example:8000",
        "null",
        "file://",
    ],
)
async def test_foreign_origin_is_closed_with_4403(origin: str) -> None:
    doc_id = await new_document()
    comm = communicator(doc_id, [(b"host", b"localhost:8000"), (b"origin", origin.encode())])
    connected, _ = await comm.connect()
    assert connected
    assert await close_code(comm) == 4403
    assert group_members(doc_id) == set()


async def test_foreign_origin_is_refused_before_telling_whether_a_document_exists() -> None:
    comm = communicator(
        "no-such-document", [(b"host", b"localhost:8000"), (b"origin", b"http://evil.example")]
    )
    await comm.connect()
    assert await close_code(comm) == 4403
