"""tests/services.py: what a test that needs Redis or PostgreSQL gets when one is missing,
and that the servers it starts are real, private and cleaned up."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from tests import services
from tests.services import MissingServer, PostgresServer, RedisServer


def test_a_missing_redis_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingServer, match="apt-get install redis-server"):
        RedisServer()


def test_a_missing_postgres_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.glob, "glob", lambda pattern: [])

    def no_pg_config(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("pg_config")

    monkeypatch.setattr(services.subprocess, "run", no_pg_config)
    with pytest.raises(MissingServer, match="apt-get install postgresql"):
        PostgresServer()


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_a_missing_server_fails(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        services.unavailable(MissingServer("redis-server is not installed"))


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_elsewhere_a_missing_server_skips(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        services.unavailable(MissingServer("redis-server is not installed"))


def _listening(port: int, host: str) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_redis_listens_on_loopback_only_restarts_and_is_gone_after_close(
    redis_server: RedisServer,
) -> None:
    assert redis_server.ping()
    own = RedisServer().start()
    try:
        assert own.port != redis_server.port and own.ping()
        addresses = subprocess.run(
            ["redis-cli", "-p", str(own.port), "CONFIG", "GET", "bind"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.split()
        if addresses:  # redis-cli is there (Debian's redis-tools comes with the server)
            assert addresses[-1] == "127.0.0.1"
        own.restart()
        assert own.ping()
        own.stop()
        assert not own.ping()
    finally:
        own.close()
    assert not _listening(own.port, "127.0.0.1")
    assert not own.dir.exists()


def test_postgres_gives_each_caller_an_empty_database(postgres_server: PostgresServer) -> None:
    import psycopg

    first, second = postgres_server.create_database(), postgres_server.create_database()
    assert first != second
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE mine (x int)")
        conn.commit()
    with psycopg.connect(second) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)
        addresses = conn.execute("SHOW listen_addresses").fetchone()
        assert addresses == ("127.0.0.1",)


def test_postgres_restarts_on_its_port_with_its_data() -> None:
    import psycopg

    own = PostgresServer().start()  # not the shared one: others may be connected to it
    try:
        url = own.create_database()
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.commit()
        own.restart(down_for=0.2)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
    finally:
        own.close()
    assert not _listening(own.port, "127.0.0.1")
    assert not own.dir.exists()
