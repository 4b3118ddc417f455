"""A TCP forwarder on 127.0.0.1 that holds every chunk for a while each way: a server
that is a LAN away instead of on loopback, for bench/browser.py's --delay-ms.

Each connection's bytes keep their order and arrive `delay` seconds after they were
sent, in both directions, and a new connection waits `delay` before it reaches the
server (the handshake's trip). Bandwidth is not limited: on a LAN the round trip is what
a page open feels, not the bytes.

    with Lan(target_port=8000, delay=0.005) as lan:   # 10 ms round trip
        page.goto(f"http://127.0.0.1:{lan.port}/")
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import TracebackType


class Lan:
    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="lan")
        self._server: asyncio.Server | None = None
        self.port = 0

    def __enter__(self) -> Lan:
        self._thread.start()
        listener = socket.create_server(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        future = asyncio.run_coroutine_threadsafe(self._listen(listener), self.loop)
        self._server = future.result(timeout=10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    async def _listen(self, listener: socket.socket) -> asyncio.Server:
        return await asyncio.start_server(self._connection, sock=listener)

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        await asyncio.sleep(self.delay)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        # Both ways are done once the last delayed chunk and end are out: close.
        await asyncio.sleep(self.delay + 0.01)
        for writer in (client_w, server_w):
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(65536):
                loop.call_later(self.delay, self._deliver, writer, data)
        except OSError:
            pass
        finally:
            # After the last chunk: call_later keeps the order of equal delays.
            loop.call_later(self.delay, self._finish, writer)

    @staticmethod
    def _deliver(writer: asyncio.StreamWriter, data: bytes) -> None:
        if not writer.is_closing():
            writer.write(data)

    @staticmethod
    def _finish(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()  # a half close, as TCP does; the other way may go on
            else:
                writer.close()
