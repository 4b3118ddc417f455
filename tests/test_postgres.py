"""Tandem on a real PostgreSQL (fixture `postgres_server`, tests/services.py).

Every test of tests/ that uses the database runs again in a child pytest whose settings point
TANDEM_DATABASE_URL at an empty PostgreSQL database: the same assertions, the other
backend. And processes started together migrate one database without racing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from tests.services import PostgresServer

REPO = Path(__file__).resolve().parent.parent


def _env(database_url: str, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(TANDEM_DATABASE_URL=database_url, TANDEM_DATA_DIR=data_dir)
    return env


def test_every_database_test_passes_on_postgresql(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database("store")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    # Every test of tests/ that uses the database (the store, the storage thread, the
    # rooms and consumers, the API and the views), whoever wrote it.
    command += ["-p", "no:playwright", "-W", "ignore::pytest.PytestWarning"]
    command += ["--database-tests-only", "tests"]
    result = subprocess.run(
        command,
        cwd=REPO,
        env=_env(url, str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    summary = re.search(r"(\d+) passed", output)
    assert summary and int(summary.group(1)) >= 100, output[-3000:]
    assert "skipped" not in output.splitlines()[-1], output[-3000:]


MIGRATE = (
    "import django; django.setup(); from editor.management.commands.serve import migrate; migrate()"
)


def test_processes_started_together_migrate_one_database_without_racing(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database("migrate")
    with tempfile.TemporaryDirectory(prefix="tandem-migrate-") as data_dir:
        env = {**_env(url, data_dir), "DJANGO_SETTINGS_MODULE": "editor.settings"}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n---\n".join(outputs)
    with psycopg.connect(url) as conn:
        applied = {row[0] for row in conn.execute("SELECT app FROM django_migrations")}
        tables = {
            row[0]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert {"editor", "collab"} <= applied
    assert {"editor_document", "collab_documentupdate", "collab_documentsnapshot"} <= tables


# A process on PostgreSQL, its store thread's connection broken by a database restart.
# The first statement after the restart is one that runs outside a transaction (as
# store.exists, find_request, load_updates and ownership.release do).
AFTER_RESTART = """
import asyncio, sys, time, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from collab import store
from collab.storage_thread import in_store_thread

async def main() -> int:
    doc = await in_store_thread(store.create_document, "Survives", "text")
    print("ready", flush=True)
    sys.stdin.readline()  # the database restarts meanwhile
    try:
        await in_store_thread(store.exists, doc.id)
    except Exception as error:
        print("first call after the restart failed:", error, flush=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            print("read", await in_store_thread(store.read_document, doc.id), flush=True)
            return 0
        except Exception as error:
            print("still failing:", error, flush=True)
            await asyncio.sleep(0.5)
    return 1

sys.exit(asyncio.run(main()))
"""


def test_the_store_thread_reconnects_after_postgresql_restarts(tmp_path: Path) -> None:
    server = PostgresServer().start()
    try:
        env = {
            **_env(server.create_database("restart"), str(tmp_path)),
            "DJANGO_SETTINGS_MODULE": "editor.settings",
        }
        child = subprocess.Popen(
            [sys.executable, "-c", AFTER_RESTART],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            first = child.stdout.readline()
            assert first == "ready\n", first + child.stdout.read()
            server.restart(down_for=0.5)
            output, _ = child.communicate("\n", timeout=60)
        finally:
            child.kill()
        assert child.returncode == 0, output
        assert "read ('text', 1)" in output, output
    finally:
        server.close()
