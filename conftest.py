"""Fixtures shared by tests/ and e2e/: real Redis and PostgreSQL servers.

- `redis_server` / `redis_url` (session): one `redis-server` for the run, on a free
  127.0.0.1 port, no persistence. Use your own key or group names: tests share it.
- `postgres_server` / `postgres_url` (session): one throw-away PostgreSQL cluster for the
  run; `postgres_url` is a database of its own made for the run. A test that needs an
  empty database calls `postgres_server.create_database()`, which returns its URL.

A server that is not installed skips the test with the reason, except under CI=true,
where it fails it: CI must never pass by not running them. scripts/test installs both.

`--database-tests-only` keeps the tests that use Django's database and deselects the rest
(tests/test_postgres.py reruns those on PostgreSQL with it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.services import MissingServer, PostgresServer, RedisServer, unavailable

DATABASE_FIXTURES = {"db", "transactional_db", "django_db_setup"}

# Property tests check behaviour, not speed: on a busy 2-core machine one example can take
# longer than Hypothesis's 200 ms deadline with nothing wrong, and fail the run at random.
hypothesis_settings.register_profile(
    "tandem", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("tandem")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that use Django's database",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--database-tests-only"):
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        uses_db = item.get_closest_marker("django_db") is not None or bool(
            DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        (keep if uses_db else drop).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer()
    except MissingServer as error:
        unavailable(error)
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """redis://127.0.0.1:PORT/0 of the run's redis-server."""
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except MissingServer as error:
        unavailable(error)
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """postgres://postgres@127.0.0.1:PORT/NAME: an empty database made for this run."""
    return postgres_server.create_database()
