"""`manage.py serve`: the whole app in one process, ready to use.

Applies migrations, collects static files when they changed, then runs Daphne (HTTP,
WebSocket and static files) until Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import gc
import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from collab.protocol import MAX_FRAME_BYTES
from editor import conf, credentials, network


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


# Any fixed number: the key of the PostgreSQL advisory lock that `serve` holds while it
# migrates, shared by every Tandem process on one database.
MIGRATION_LOCK_KEY = 0x54414E44454D  # "TANDEM"


@contextmanager
def migration_lock() -> Iterator[None]:
    """Held while migrating: processes started together against one PostgreSQL migrate
    one after another (the later ones find nothing to do) instead of racing to create the
    same tables. SQLite needs nothing: its migrations take the database's write lock."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
    try:
        yield
    finally:
        # A session lock: the connection outlives this (CONN_MAX_AGE None).
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])


def writable_folders() -> list[Path]:
    """Where Tandem writes: its data folder, and the SQLite database's folder."""
    folders = [Path(settings.DATA_DIR)]
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        folder = Path(database["NAME"]).parent
        if folder not in folders:
            folders.append(folder)
    return folders


def check_writable(folder: Path) -> None:
    """Stop at start, saying why, when `folder` cannot be written (a read-only or full
    disk): SQLite would otherwise fail with "unable to open database file" deep in a
    traceback. Writes and syncs one block, as a commit would."""
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise CommandError(
            f"Tandem cannot write to {folder}: {error.strerror or error}. It keeps its "
            "database there: make the folder writable (or free some space), or choose "
            "another with TANDEM_DATA_DIR."
        ) from None


def reclaim_leases() -> None:
    """On the in-memory channel layer this is the only process (no other could reach it),
    so every lease in the database is one a dead process left (kill -9 gives none back):
    expire them, or a restart after a crash would keep editors waiting out the dead
    process's lease (TANDEM_LEASE_SECONDS) before the document opens again."""
    from collab import ownership
    from collab.layers import InMemoryChannelLayer

    backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    if backend == f"{InMemoryChannelLayer.__module__}.{InMemoryChannelLayer.__name__}":
        ownership.expire_all()


def migrate() -> None:
    with migration_lock():
        call_command("migrate", interactive=False, verbosity=0)


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


# Python's cyclic garbage collector, tuned for a server: a collection of the youngest
# objects every 50,000 allocations instead of 700, and of everything far more rarely.
# Reference counting frees almost everything at once anyway; what the default thresholds
# added was pauses in the tail: at 200 editors in one document, p95 131 -> 103 ms and p99
# 185 -> 138 ms (bench/ab.py cap200, docs/benchmarks.md "Garbage collection").
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what start-up made (modules, settings, templates: never garbage, never
    scanned again) and collect the rest less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def listen_host(host: str | None, share: bool) -> str:
    """--host if given; else TANDEM_HOST if set; else every interface with --share, and
    this computer only without."""
    if host is not None:
        return host
    return "0.0.0.0" if share and not conf.HOST.is_set() else conf.HOST.get()


def _release_leases() -> None:
    """Give back the documents this process ran, so that another process (or this one,
    restarted) takes them over at once instead of waiting for the leases to expire."""
    from collab.host import all_hosts

    for host in all_hosts():
        host.release_all()


WEBSOCKET_MAX_BYTES = 64 * 1024 * 1024
# No ghosts in presence: a ping after TANDEM_PING_SECONDS of quiet, unanswered for 1.5
# times that, ends a connection (by default within 10 + 15 + 2 s of Daphne's checker).
PING_TIMEOUT_FACTOR = 1.5


class Command(BaseCommand):
    help = "Start Tandem: HTTP, WebSocket and static files in one process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None, help=f"default {conf.HOST.default}")
        parser.add_argument(
            "--share",
            action="store_true",
            help="listen on the network (0.0.0.0 unless --host names another address) and print "
            "the addresses others can use; they need a share link (docs/security.md)",
        )
        parser.add_argument(
            "--port", type=int, default=conf.PORT.get(), help=f"default {conf.PORT.default}"
        )

    def handle(self, *args: Any, host: str | None, port: int, share: bool, **options: Any) -> None:
        host = listen_host(host, share)
        ping_seconds = conf.PING_SECONDS.get()
        for folder in writable_folders():
            check_writable(folder)
        migrate()
        reclaim_leases()
        collect_static_if_changed()
        if not _is_loopback(host) and not conf.ALLOWED_HOSTS.is_set():
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
        tune_gc()
        Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            verbosity=0,
            websocket_handshake_timeout=10,
            # Daphne's 1 MiB default message limit applies to what the server sends as
            # well: an answer or preview of a large document would kill the connection
            # (documents are capped at 16 MiB). The frame limit applies only to what is
            # received: a frame over MAX_FRAME_BYTES is refused while it is read (1009).
            websocket_max_message_size=WEBSOCKET_MAX_BYTES,
            websocket_max_frame_size=MAX_FRAME_BYTES,
            websocket_timeout=-1,  # editors stay connected for as long as they like
            # A browser that went away without closing (a sleeping laptop, a pulled cable)
            # answers no ping: its socket closes, and it leaves the roster, within
            # 2.5 x TANDEM_PING_SECONDS (+2 s of Daphne's checker) of its last frame.
            ping_interval=ping_seconds,
            ping_timeout=ping_seconds * PING_TIMEOUT_FACTOR,
        ).run()
        _finish_cancelled_tasks()
        _release_leases()
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
