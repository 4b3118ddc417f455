"""`manage.py serve`: the whole app in one process, ready to use.

Applies migrations, collects static files when they changed, then runs Daphne (HTTP,
WebSocket and static files) until Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from editor import credentials, network


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _static_fingerprint() -> str:
    """A digest of every static source file's path, size and mtime."""
    from django.contrib.staticfiles.finders import get_finders

    digest = hashlib.sha256()
    for finder in get_finders():
        for path, storage in finder.list(["CVS", ".*", "*~"]):
            full = Path(storage.path(path))
            stat = full.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def collect_static_if_changed() -> None:
    stamp = Path(settings.STATIC_ROOT) / ".tandem-fingerprint"
    fingerprint = _static_fingerprint()
    if stamp.exists() and stamp.read_text() == fingerprint:
        return
    call_command("collectstatic", interactive=False, verbosity=0, clear=True)
    stamp.write_text(fingerprint)


def _finish_cancelled_tasks() -> None:
    """Let the consumers Daphne cancelled at shutdown run to their end.

    Daphne cancels every application instance when the reactor stops, but the loop stops
    before they have run their cancellation; left pending, they are garbage-collected at
    interpreter exit, which crashed the process (SIGSEGV, exit -11) whenever a WebSocket
    was open at SIGTERM or Ctrl+C.
    """
    import asyncio

    loop = asyncio.get_event_loop()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


WEBSOCKET_MAX_BYTES = 64 * 1024 * 1024


class Command(BaseCommand):
    help = "Start Tandem: HTTP, WebSocket and static files in one process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("TANDEM_HOST", "127.0.0.1"))
        parser.add_argument(
            "--share",
            action="store_true",
            help="listen on the network (0.0.0.0 unless --host names another address) and print "
            "the addresses others can use; they need a share link (docs/security.md)",
        )
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("PORT", "8000")), help="default 8000"
        )

    def handle(self, *args: Any, host: str | None, port: int, share: bool, **options: Any) -> None:
        host = host or ("0.0.0.0" if share else "127.0.0.1")
        call_command("migrate", interactive=False, verbosity=0)
        collect_static_if_changed()
        if not _is_loopback(host) and "TANDEM_ALLOWED_HOSTS" not in os.environ:
            # Shared on the network: people reach it by whatever name or address the
            # machine has there. WebSocket handshakes are still checked for same origin.
            settings.ALLOWED_HOSTS.append("*")

        # Imported here so that Daphne installs its Twisted reactor first.
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from editor.asgi import application

        network.set_listening(host, port)
        self.stdout.write(self._banner(host, port))
        self.stdout.flush()
        Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            verbosity=0,
            websocket_handshake_timeout=10,
            # Daphne's 1 MiB default applies to what the server sends as well: an answer
            # or preview of a large document would kill the connection. The client keeps
            # its own requests under 1 MiB; documents are capped at 16 MiB.
            websocket_max_message_size=WEBSOCKET_MAX_BYTES,
            websocket_max_frame_size=WEBSOCKET_MAX_BYTES,
            websocket_timeout=-1,  # editors stay connected for as long as they like
        ).run()
        _finish_cancelled_tasks()
        self.stdout.write("Tandem stopped.")

    def _banner(self, host: str, port: int) -> str:
        """Where to go; for the owner, the sign-in link; when shared, others' addresses."""
        shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
        if ":" in shown:
            shown = f"[{shown}]"
        local = f"http://{shown}:{port}/"
        lines = [f"Tandem is running at {local}  (data in {settings.DATA_DIR})"]
        if not _is_loopback(host):
            addresses = network.urls(host, port)
            lines.append(
                "Shared on your network at "
                + (", ".join(addresses) if addresses else "this machine's addresses")
                + "\n  Others need a share link: the Share button in a document makes them."
            )
        lines.append(
            f"Owner link (signs you in from another browser or behind a proxy; keep it to "
            f"yourself):\n  {local}?owner={credentials.owner_key()}"
        )
        lines.append("Press Ctrl+C to stop.")
        return "\n".join(lines)
