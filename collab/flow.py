"""Flow control for every WebSocket: what one connection may queue, in either direction.

Daphne puts every frame a browser sends into an unbounded queue that the consumer empties
one message at a time, and writes every frame the consumer sends into Twisted's unbounded
write buffer. So a client that sends without waiting for answers had the server apply its
whole backlog (even after it left), and a client that stops reading had everything owed
to it kept in server memory. `FlowControl` wraps the consumer's ASGI app and bounds both:

- Inbound: a task takes frames off Daphne's queue as they arrive. At most `max_pending`
  may wait for the consumer (the protocol allows one request in flight; a rename's
  `hello` may come with it); one more and the connection is closed with CLOSE_TOO_MANY
  (final) and what it queued is dropped. A token bucket (`rate` frames/s, `burst`)
  paces what reaches the consumer, so a client that does wait for answers still cannot
  take more than its share. A disconnect jumps the queue: queued frames are dropped at
  once, not handled after the client left.
- Outbound: before each frame, the bytes the client has not taken yet (Twisted's write
  buffer and the kernel's send queue). Once a frame went out with at most `max_backlog`
  bytes before it, at most `max_backlog` more may pile up behind it (so one large frame,
  a whole preview, always goes out); beyond that the client is not reading: the
  connection is closed with CLOSE_RETRY (the browser reconnects and resyncs) and later
  frames are dropped. Autobahn aborts the socket if the close handshake does not finish
  within a second, which frees the buffer (a client that reads nothing never reads the
  close frame either).

Per frame this costs a few attribute reads and a comparison (and an ioctl at most five
times a second). The state lives with the connection, in the process that holds the
socket, so it holds for any number of processes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import functools
import logging
import struct
import termios
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from collab.protocol import CLOSE_RETRY, CLOSE_TOO_MANY

log = logging.getLogger("tandem.collab")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    max_pending: int = 8  # frames waiting for the consumer
    rate: float = 60.0  # frames per second handed to the consumer, sustained...
    burst: float = 120.0  # ...and in a burst (a browser sends at most ~25/s)
    max_backlog: int = 1024 * 1024  # unread bytes behind the last frame let through


LIMITS = Limits()
_BODIES = frozenset({"websocket.send", "http.response.body"})  # what is checked before sending
SIOCOUTQ = termios.TIOCOUTQ  # Linux: unsent + unacknowledged bytes of a TCP socket
KERNEL_QUEUE_SECONDS = 0.2


def daphne_transport(send: Send) -> Any | None:
    """The TCP transport (Twisted) of the socket behind Daphne's `send`, or None when
    `send` is not Daphne's (a test communicator, another server): no outbound check then.
    Daphne's `send` is `partial(server.handle_reply, protocol)`; a middleware that wraps
    it (editor/headers.py) keeps it as its wrapper's `__wrapped__`."""
    while not isinstance(send, functools.partial) and hasattr(send, "__wrapped__"):
        send = send.__wrapped__
    if not isinstance(send, functools.partial) or not send.args:
        return None
    transport = getattr(send.args[0], "transport", None)
    # Daphne hands the HTTP channel's transport to the WebSocket protocol; a wrapping
    # transport (policies.ProtocolWrapper) keeps the real one as its own `transport`.
    while transport is not None and not hasattr(transport, "_tempDataLen"):
        transport = getattr(transport, "transport", None)
    return transport


def write_backlog(tcp: Any) -> Callable[[], int]:
    """How many bytes sent on `tcp` the client has not taken yet.

    Twisted keeps the bytes the kernel did not take in `dataBuffer` (from `offset`) and
    `_tempDataBuffer`; the kernel holds up to net.ipv4.tcp_wmem's maximum (4 MiB) more,
    unacknowledged, which Linux tells with SIOCOUTQ. Without that part, a silent client is
    noticed only once the kernel's buffer is full (seconds later, while Python's allocator
    churns through every frame sent to it). The ioctl is asked at most every
    KERNEL_QUEUE_SECONDS.
    """
    fileno = getattr(tcp, "fileno", None)
    kernel = [0, 0.0]  # bytes in the kernel's send queue, when asked

    def backlog() -> int:
        now = time.monotonic()
        if fileno is not None and now - kernel[1] >= KERNEL_QUEUE_SECONDS:
            kernel[1] = now
            try:
                kernel[0] = struct.unpack("i", fcntl.ioctl(fileno(), SIOCOUTQ, b"\0" * 4))[0]
            except (OSError, ValueError):
                kernel[0] = 0  # closed, or not Linux: Twisted's buffer only
        return len(tcp.dataBuffer) - tcp.offset + tcp._tempDataLen + int(kernel[0])

    return backlog


class _Connection:
    """One socket's inbound queue, rate and outbound backlog."""

    def __init__(self, receive: Receive, send: Send, limits: Limits) -> None:
        self.limits = limits
        self._upstream_receive = receive
        self._upstream_send = send
        self._queue: collections.deque[Message] = collections.deque()
        self._ready = asyncio.Event()
        self._end: Message | None = None  # the disconnect, once it came
        self._closed = False  # we closed it: drop what it sends and what is sent to it
        self._tokens = limits.burst
        self._refilled = time.monotonic()
        self._transport = daphne_transport(send)
        self._backlog = write_backlog(self._transport) if self._transport is not None else None
        self._allowed = limits.max_backlog  # backlog at which the client is not reading

    # -- inbound -----------------------------------------------------------------------

    async def pump(self) -> None:
        """Take every frame off Daphne's queue as it arrives (it is never left to grow)."""
        while True:
            message = await self._upstream_receive()
            kind = message.get("type")
            if kind == "websocket.disconnect":
                self._queue.clear()  # a gone client's work is dropped, not done
                self._end = message
                self._ready.set()
                return
            if kind == "websocket.receive":
                if self._closed:
                    continue
                if len(self._queue) >= self.limits.max_pending:
                    await self._shut(CLOSE_TOO_MANY, "too many frames without waiting")
                    continue
            self._queue.append(message)
            self._ready.set()

    async def receive(self) -> Message:
        """The consumer's next message: the disconnect before anything still queued."""
        while True:
            if self._end is not None:
                return self._end
            if self._queue:
                message = self._queue[0]
                if message.get("type") == "websocket.receive" and not await self._pace():
                    continue  # disconnected (or closed) while waiting for a token
                self._queue.popleft()
                return message
            self._ready.clear()
            await self._ready.wait()

    async def _pace(self) -> bool:
        """Wait for a token of the bucket; False if the connection ended meanwhile."""
        now = time.monotonic()
        limits = self.limits
        self._tokens = min(limits.burst, self._tokens + (now - self._refilled) * limits.rate)
        self._refilled = now
        if self._tokens < 1.0:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), (1.0 - self._tokens) / limits.rate)
            return False  # look again: the queue or the connection may have changed
        self._tokens -= 1.0
        return True

    # -- outbound ----------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind in _BODIES and self._backlog is not None:
            if self._closed:
                return  # closed for not reading: nothing more piles up for it
            backlog = self._backlog()
            if backlog <= self.limits.max_backlog:
                data = message.get("text") or message.get("bytes") or message.get("body") or b""
                self._allowed = backlog + len(data) + self.limits.max_backlog
            elif backlog > self._allowed:
                if kind == "websocket.send":
                    await self._shut(CLOSE_RETRY, "not reading: reconnect and resync")
                else:  # a stream over HTTP has no close code: drop the connection
                    self._abort()
                return
        elif kind == "websocket.close":
            self._closed = True
        await self._upstream_send(message)

    def _abort(self) -> None:
        self._closed = True
        log.warning("dropping an HTTP stream: not reading")
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.abortConnection()

    async def _shut(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        log.warning("closing a WebSocket (%s): %s", code, reason)
        with contextlib.suppress(Exception):
            await self._upstream_send({"type": "websocket.close", "code": code, "reason": reason})
        if code == CLOSE_TOO_MANY and self._transport is not None:
            # Read nothing more: Autobahn would parse every frame still coming until the
            # close handshake times out (a second). The close frame still goes out.
            with contextlib.suppress(Exception):
                self._transport.pauseProducing()


class FlowControl:
    """ASGI middleware: `FlowControl(Consumer.as_asgi())` bounds each WebSocket's queues
    (and, around an HTTP stream, what its client has not read)."""

    def __init__(self, app: ASGIApp, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # A stream (the live view's events): only what the client does not read.
            stream = _Connection(receive, send, self.limits or LIMITS)
            await self.app(scope, receive, stream.send)
            return
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        connection = _Connection(receive, send, self.limits or LIMITS)
        pump = asyncio.get_running_loop().create_task(connection.pump())
        try:
            await self.app(scope, connection.receive, connection.send)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
