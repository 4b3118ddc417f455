"""A cluster whose Redis and PostgreSQL go away and come back (docs/deploy.md, "When
something fails"), seen through plain HTTP: what stays up, what fails cleanly, and
that each process recovers by itself. The editors' side is in the co-editing tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from e2e.client import HttpClient, eventually
from e2e.cluster import Cluster
from tests.services import MissingServer, PostgresServer, RedisServer, unavailable


@pytest.fixture
def own() -> Iterator[tuple[Cluster, RedisServer, PostgresServer]]:
    """Two processes on a Redis and a PostgreSQL of their own, which the test may stop."""
    try:
        redis, postgres = RedisServer(), PostgresServer()
    except MissingServer as error:
        unavailable(error)
    redis.start()
    postgres.start()
    cluster = Cluster(redis.url, postgres.create_database())
    try:
        yield cluster.start(), redis, postgres
    finally:
        cluster.stop()
        redis.close()
        postgres.close()


def status_and_text(url: str) -> tuple[int, str]:
    response = HttpClient(url).get("/")
    return response.status, response.text


def test_pages_and_reads_need_no_redis(own: tuple[Cluster, RedisServer, PostgresServer]) -> None:
    cluster, redis, _ = own
    made = HttpClient(cluster[0].url).post(
        "/api/documents/", json_body={"title": "Kept", "text": "still here"}
    )
    doc_id = made.json()["id"]
    redis.stop()
    for server in cluster:
        assert status_and_text(server.url)[0] == 200
        read = HttpClient(server.url).get(f"/api/documents/{doc_id}/")
        assert (read.status, read.json()["text"]) == (200, "still here"), cluster.logs()
    redis.restart()
    for server in cluster:
        assert server.running, cluster.logs()


def test_postgresql_down_fails_cleanly_and_each_process_recovers(
    own: tuple[Cluster, RedisServer, PostgresServer],
) -> None:
    cluster, _, postgres = own
    doc_id = HttpClient(cluster[1].url).post("/api/documents/", json_body={"title": "T"}).json()
    postgres.stop()
    for server in cluster:
        status, body = status_and_text(server.url)
        assert status == 500, status
        assert "Traceback" not in body and "OperationalError" not in body
    postgres.restart()
    for server in cluster:
        # Persistent connections that the restart broke are noticed and reopened: no
        # process needs a restart of its own.
        url = server.url
        eventually(lambda: status_and_text(url)[0] == 200, 10, f"the list on {url} again")  # noqa: B023
        read = HttpClient(server.url).get(f"/api/documents/{doc_id['id']}/")
        assert read.status == 200, read.text
        assert server.running, cluster.logs()


def test_editors_on_two_processes_converge_after_redis_restarts(
    own: tuple[Cluster, RedisServer, PostgresServer], new_page: Callable[..., Page]
) -> None:
    """What is published while a process reconnects to Redis is lost (the pub/sub layer
    keeps nothing): calls without a reply are asked again and version gaps are filled,
    so both editors still end with every keystroke, once."""
    cluster, redis, _ = own
    first, second = cluster
    doc_id = HttpClient(first.url).post("/api/documents/", json_body={"title": "R"}).json()["id"]
    pages = []
    for server in (first, second):
        page = new_page()
        page.goto(f"{server.url}/d/{doc_id}/")
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        page.locator("#editor").focus()
        pages.append(page)
    ada, bob = pages
    typed: list[str] = []
    for i in range(3):
        for page, who in ((ada, "a"), (bob, "b")):
            page.keyboard.type(f"{who}{i} ")
            typed.append(f"{who}{i} ")
    redis.restart(down_for=1.0)
    for i in range(3, 6):
        for page, who in ((ada, "a"), (bob, "b")):
            page.keyboard.type(f"{who}{i} ")
            typed.append(f"{who}{i} ")

    def settled() -> str | None:
        texts = {str(p.locator("#editor").evaluate("el => el.value")) for p in pages}
        stored = HttpClient(second.url).get(f"/api/documents/{doc_id}/").json()["text"]
        return stored if texts == {stored} else None

    text = eventually(settled, 30, "both editors and the server to agree")
    for token in typed:
        assert text.count(token) == 1, (token, text)
