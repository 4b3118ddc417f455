"""A TCP forwarder standing in for the reverse proxy of docs/deploy.md.

Every new connection goes to the current `target` port; switching it is what a proxy
does when a health check finds a process dead. Existing connections are not moved (a
proxy does not move them either: their browser reconnects and gets the new target).

    proxy = Proxy(target=cluster[0].port).start()
    page.goto(proxy.url + doc.path)
    proxy.target = cluster[1].port
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

from e2e.server import free_port


class Proxy:
    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stopped = threading.Event()
        self._hung = threading.Event()
        self._open: set[socket.socket] = set()  # the sockets of connections in flight
        self._thread = threading.Thread(target=self._accept, daemon=True, name="proxy")

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(5)
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        """Drop every connection in flight, as a network that fails does (new ones still
        go to `target`)."""
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def hang(self) -> None:
        """The network goes silent, as with a pulled cable or a sleeping laptop: every
        connection stays open at both ends, but nothing passes either way any more (no
        close, no reset), and new connections get nowhere."""
        self._hung.set()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._hung.is_set():
                self._open.add(client)  # held open, never answered (closed by stop)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()  # nobody there: the browser sees a dropped connection
                continue
            threading.Thread(
                target=self._pipe, args=(client, upstream), daemon=True, name="proxy pipe"
            ).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        """Copy bytes both ways until either side closes (bounded by the sockets' life)."""
        peers = {a: b, b: a}
        self._open.update(peers)
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            try:
                while not self._stopped.is_set():
                    if self._hung.is_set():
                        self._stopped.wait(0.2)  # bytes wait in the kernel, unread
                        continue
                    for key, _ in selector.select(timeout=0.2):
                        if self._hung.is_set():
                            break  # hung while waiting: what came stays unread
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(65536)
                        if not data:
                            return
                        peers[source].setblocking(True)
                        peers[source].sendall(data)
                        peers[source].setblocking(False)
            except OSError:
                return
            finally:
                for sock in peers:
                    self._open.discard(sock)
                    with contextlib.suppress(OSError):
                        sock.close()
