"""Nothing acknowledged is lost, nothing is doubled: real `serve` processes killed with
SIGKILL while protocol editors burst edits, a database that refuses writes, a disk that
fills up (docs/security.md, "Durability: kills, faults and full disks").

The editors are e2e/kill_trials.Editor: the reference client (tests/sim_client.py) on a
real WebSocket, typing unique markers, so a lost or doubled edit shows by name.
`python -m e2e.kill_trials --trials N` runs many more kill trials than these.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Page, expect

from e2e.client import HttpClient
from e2e.cluster import Cluster
from e2e.conftest import create_document
from e2e.editor_page import caret_to_end, open_editor
from e2e.kill_trials import OneProcess, Processes, Team, run_trials, until
from e2e.server import TandemServer
from tests.services import MissingServer, unavailable

KILL_TRIALS = 50
CLUSTER_KILL_TRIALS = 5
CLOSE_RETRY = 3012
T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` in a thread of its own: Playwright's sync API keeps an event loop
    running in the test thread once any browser test has run (e2e pitfalls)."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, work).result()


def _assert_clean(figures_problems: list[str], summary: str) -> None:
    assert not figures_problems, summary + "\n" + "\n".join(figures_problems)


def test_kill_trials_on_one_process(make_server: Callable[[], TandemServer]) -> None:
    """50 trials: SIGKILL at a random moment of a burst of 4 editors, restart, check.

    With a lease far longer than the trials wait for editors to be answered again: kill -9
    gives no lease back, so this also checks that the restarted process takes the
    documents back at once (serve's reclaim_leases) instead of waiting the lease out."""
    server = make_server()
    server.stop()
    server.extra_env = {"TANDEM_LEASE_SECONDS": "120"}
    server.start()
    figures = run_async(run_trials(OneProcess(server), KILL_TRIALS, editors=4))
    _assert_clean(figures.problems, figures.summary())
    assert figures.trials == KILL_TRIALS
    # The trials did what they are for: kills with requests in flight, acknowledged
    # edits checked right after restarts.
    assert figures.inflight_at_kills > KILL_TRIALS, figures.summary()
    assert figures.checked_after_kills > 10 * KILL_TRIALS, figures.summary()
    assert figures.lost == figures.doubled == 0


def test_kill_trials_on_two_processes(make_cluster: Callable[..., Cluster]) -> None:
    """The process that holds the document is killed; the other takes it over (its
    editors' calls are answered there), the killed one restarts and its editors resend."""
    cluster = make_cluster(lease_seconds=1.0)
    target = Processes(cluster.servers, cluster.database_url)
    figures = run_async(run_trials(target, CLUSTER_KILL_TRIALS, editors=4))
    _assert_clean(figures.problems, figures.summary() + "\n" + cluster.logs()[-4000:])
    assert figures.trials == CLUSTER_KILL_TRIALS and figures.inflight_at_kills > 0


# -- a database that refuses writes -------------------------------------------------------
class InjectedFault:
    """While on, every insert into the update log fails inside the server's own SQLite
    database: a trigger raises, so the error comes up through the very statement the
    group commit runs (collab/store.py), and no product code is changed for the test."""

    MESSAGE = "injected fault: the disk refused the write"

    def __init__(self, database: Path) -> None:
        self.database = database
        self._run(
            "CREATE TABLE IF NOT EXISTS test_fault (active INTEGER);"
            "CREATE TRIGGER IF NOT EXISTS test_fault_on_append BEFORE INSERT "
            "ON collab_documentupdate WHEN EXISTS (SELECT 1 FROM test_fault) "
            f"BEGIN SELECT RAISE(ABORT, '{self.MESSAGE}'); END;"
        )

    def _run(self, script: str) -> None:
        with contextlib.closing(sqlite3.connect(self.database, timeout=20)) as db:
            db.executescript(script)

    def on(self) -> None:
        self._run("INSERT INTO test_fault VALUES (1);")

    def off(self) -> None:
        self._run("DELETE FROM test_fault;")


def test_a_database_error_during_writes_loses_nothing(
    make_server: Callable[[], TandemServer],
) -> None:
    server = make_server()
    run_async(_database_error(server))


async def _database_error(server: TandemServer) -> None:
    rng = random.Random()
    team = await asyncio.to_thread(Team, OneProcess(server), 3)
    fault = InjectedFault(server.data_dir / "tandem.sqlite3")
    await team.open()
    try:
        await team.burst(0.2, rng)
        assert await team.settle() == []
        # A short fault: each failed write closes the room; the editors' requests are
        # asked again of a fresh room (loaded from storage) and wait meanwhile. Nothing
        # is acknowledged that is not stored.
        await asyncio.to_thread(fault.on)
        before = team.acked()
        await team.burst(0.3, rng)
        await asyncio.sleep(0.5)
        assert team.acked() == before, "acknowledged while no write could succeed"
        assert len(team.typed()) > len(before)
        log = server.output()
        assert f"document {team.doc_id}: could not save: a database error" in log, log[-3000:]
        assert InjectedFault.MESSAGE in log and "Traceback" not in log, log[-3000:]
        await asyncio.to_thread(fault.off)
        assert await team.settle() == [], server.output()[-3000:]
        # A long fault: once the fresh rooms failed too, the editor is told to reconnect
        # (close 3012); it reconnects, resends, and is saved once writes work again.
        await asyncio.to_thread(fault.on)
        before = team.acked()
        await team.burst(0.2, rng)
        told = await until(lambda: any(CLOSE_RETRY in e.close_codes for e in team.editors), 30)
        assert told, [e.close_codes for e in team.editors]
        notices = {n for e in team.editors for n in e.notices}
        assert any("cannot save right now (a database error)" in n for n in notices), notices
        assert team.acked() == before
        await asyncio.to_thread(fault.off)
        assert await team.settle() == [], server.output()[-3000:]
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(fault.off)
        await team.close()


def test_the_page_says_when_the_server_cannot_save(
    make_server: Callable[[], TandemServer], new_page: Callable[..., Page]
) -> None:
    """The editor is told in words (the status line), not only by reconnecting; the
    words go once its edits are saved."""
    server = make_server()
    doc = create_document(server, "Not saved", "")
    page = open_editor(new_page, doc.url, "Ada")
    fault = InjectedFault(server.data_dir / "tandem.sqlite3")
    status = page.locator("#status")
    fault.on()
    try:
        caret_to_end(page)
        page.keyboard.type("kept ")
        expect(status).to_contain_text("Not saved yet", timeout=20_000)
        expect(status).to_contain_text("cannot save right now (a database error)")
    finally:
        fault.off()
    expect(status).not_to_contain_text("Not saved", timeout=20_000)
    expect(status).to_have_attribute("data-synced", "true")
    assert HttpClient(server.url).get(f"/api/documents/{doc.id}/").json()["text"] == "kept "


# -- a full disk --------------------------------------------------------------------------
@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 24 MB tmpfs of our own, as the data folder: a disk that really fills up (root
    ignores file modes, so chmod could not stand in for it). Mounting needs root (or
    CAP_SYS_ADMIN): where it is refused, the test says so and is skipped (it fails under
    CI=true, like a missing server: CI must not pass by not running it)."""
    path = Path(tempfile.mkdtemp(prefix="tandem-disk-"))
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        refused = mounted.stderr.strip() if mounted.returncode != 0 else ""
    except OSError as error:  # no mount command at all
        refused = str(error)
    if refused:
        path.rmdir()
        unavailable(MissingServer(f"cannot mount a tmpfs here: {refused}"))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        with contextlib.suppress(OSError):
            path.rmdir()


def _fill(path: Path) -> int:
    """Write `path` until the disk is full; the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as f:
        for _ in range(10_000):  # 640 MB at most: far more than the disk
            try:
                written += f.write(chunk)
            except OSError:
                break
    for size in (4096, 512, 1):  # the last few blocks too
        with path.open("ab", buffering=0) as f:
            for _ in range(1000):
                try:
                    written += f.write(b"\0" * size)
                except OSError:
                    break
    return written


@pytest.fixture
def server_on_small_disk(small_disk: Path) -> Iterator[TandemServer]:
    """A server (not started) whose data folder is `small_disk`. Its output goes
    elsewhere: on a full or read-only disk, the log could not be written either."""
    server = TandemServer(data_dir=small_disk)
    logs = Path(tempfile.mkdtemp(prefix="tandem-disk-log-"))
    server.log_path = logs / "server.log"
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(logs, ignore_errors=True)


def test_a_full_disk_is_reported_and_nothing_is_lost(
    server_on_small_disk: TandemServer, small_disk: Path
) -> None:
    server = server_on_small_disk.start()
    run_async(_full_disk(server, small_disk / "filler"))


async def _full_disk(server: TandemServer, filler: Path) -> None:
    rng = random.Random()
    team = await asyncio.to_thread(Team, OneProcess(server), 3)
    await team.open()
    try:
        await team.burst(0.2, rng)
        assert await team.settle() == []
        assert await asyncio.to_thread(_fill, filler) > 0
        await team.burst(0.3, rng)
        told = await until(lambda: any(CLOSE_RETRY in e.close_codes for e in team.editors), 30)
        assert told, server.output()[-3000:]
        notices = {n for e in team.editors for n in e.notices}
        assert any("cannot save right now (the disk is full)" in n for n in notices), notices
        # The log says what is wrong, plainly, once in a while (not a traceback per
        # request and retry).
        log = server.output()
        assert f"document {team.doc_id}: " in log and ": the disk is full (" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        filler.unlink()  # space comes back
        assert await team.settle() == [], server.output()[-3000:]
        database = server.data_dir / "tandem.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        await team.close()


def _remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)


def test_a_read_only_data_folder_stops_serve_plainly_and_nothing_is_lost(
    server_on_small_disk: TandemServer, small_disk: Path
) -> None:
    """Linux refuses to make a filesystem read-only while a file on it is open for
    writing (the database is), so a running server never sees its folder turn read-only
    this way; a server started on a read-only folder must say so and stop."""
    server = server_on_small_disk.start()
    http = HttpClient(server.url)
    doc = http.post("/api/documents/", json_body={"title": "Kept", "text": "still here"}).json()
    server.stop()
    _remount(small_disk, "ro")
    try:
        with pytest.raises(RuntimeError) as refused:
            server.start(timeout=20)
        said = str(refused.value)
        assert f"Tandem cannot write to {small_disk}: Read-only file system" in said, said
        assert "Traceback" not in said, said
    finally:
        _remount(small_disk, "rw")
    server.start()
    kept = HttpClient(server.url).get(f"/api/documents/{doc['id']}/").json()
    assert kept["text"] == "still here"
