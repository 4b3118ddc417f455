"""End-to-end fixtures: a real `manage.py serve` process and real Chromium pages.

- `server` (session): one server for the whole run, started the way the README does, with
  a temporary data folder. Tests that kill or restart a server use `make_server` instead.
- `make_document` (function): creates a document through HTTP, as a user or a script would.
- `new_page` (function): a page in a fresh, independent browser context each call: call it
  N times for N people editing at once. `new_page(base_url=cluster[1].url)` for a page
  of another server.
- `cluster` (function): two `serve` processes on one PostgreSQL database and one Redis
  (e2e/cluster.py), started; `cluster[0].url`, `cluster.kill(0)`, `cluster.restart(0)`,
  `cluster.log(0)`. `make_cluster(size=3, lease_seconds=1.0)` for other shapes. Needs
  redis-server and PostgreSQL (root conftest.py: skipped without them, failed in CI).
  They are shared by the run: a test that stops or restarts Redis or PostgreSQL starts
  its own (`RedisServer().start()`, `PostgresServer().start()` from tests/services.py,
  both with `restart(down_for=...)`) and builds `Cluster(redis.url,
  pg.create_database(), ...)` itself, stopping all three at the end.

Every test in e2e/ is marked `e2e` (`pytest -m "not e2e"` runs the fast tests only).
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, BrowserType, Page

from bench.browser import CHROMIUM_ARGS
from e2e.client import HttpClient
from e2e.cluster import Cluster
from e2e.server import REPO, TandemServer, server_env
from editor import conf
from tests.services import PostgresServer

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


# -- servers -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def server() -> Iterator[TandemServer]:
    """The shared server. Started before any browser (a subprocess, so Playwright's event
    loop cannot get in its way). Do not kill it in a test: use `make_server`."""
    srv = TandemServer().start()
    yield srv
    try:
        if srv.running:
            srv.stop()
    finally:
        shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture
def make_server() -> Iterator[Callable[[], TandemServer]]:
    """Start servers of your own (to kill, restart, ...); all are killed afterwards."""
    started: list[TandemServer] = []

    def make() -> TandemServer:
        srv = TandemServer()
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.kill()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


REDIS_DATABASES = 16  # redis-server's default number of databases
_redis_database_numbers = itertools.count()


@pytest.fixture
def make_cluster(
    redis_url: str, postgres_server: PostgresServer
) -> Iterator[Callable[..., Cluster]]:
    """`make_cluster(size=2, lease_seconds=None, extra_env=None)`: processes on an empty
    database of their own and a Redis database of their own, started; all are stopped
    and their folders removed afterwards."""
    made: list[Cluster] = []

    def make(size: int = 2, **options: Any) -> Cluster:
        # Each cluster its own Redis database (1-15; `redis_url` itself is 0): nothing a
        # previous test's processes left in the channel layer reaches this one's.
        number = 1 + next(_redis_database_numbers) % (REDIS_DATABASES - 1)
        cluster = Cluster(
            redis_url.rsplit("/", 1)[0] + f"/{number}",
            postgres_server.create_database("cluster"),
            size,
            **options,
        )
        made.append(cluster)
        return cluster.start()

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    """Two processes behind no proxy: talk to `cluster[0].url` and `cluster[1].url`."""
    return make_cluster()


@pytest.fixture
def http(server: TandemServer) -> HttpClient:
    return HttpClient(server.url)


@dataclass(frozen=True)
class CreatedDocument:
    id: str
    title: str
    text: str
    url: str  # absolute: http://127.0.0.1:PORT/d/<id>/

    @property
    def path(self) -> str:
        return f"/d/{self.id}/"


def create_document(srv: TandemServer, title: str = "Untitled", text: str = "") -> CreatedDocument:
    """A new document on `srv`, made through HTTP.

    Without text: the list page's form (POST /d/new/), as a person does. With text: the JSON
    API (POST /api/documents/); while that API does not exist yet, the text is stored
    through the storage layer in a `manage.py shell` against the server's data folder.
    """
    client = HttpClient(srv.url)
    if text:
        response = client.post("/api/documents/", json_body={"title": title, "text": text})
        if response.status in {200, 201}:
            doc_id = response.json()["id"]
            return CreatedDocument(doc_id, title, text, f"{srv.url}/d/{doc_id}/")
        assert response.status in {404, 405}, (response.status, response.text[:500])
        return _seed_document(srv, title, text)
    response = client.post("/d/new/", form={"title": title})
    assert response.status == 200, (response.status, response.text[:500])
    path = response.url.removeprefix(srv.url)
    assert path.startswith("/d/") and path.endswith("/"), response.url
    doc_id = path.removeprefix("/d/").removesuffix("/")
    return CreatedDocument(doc_id, title, text, response.url)


def _seed_document(srv: TandemServer, title: str, text: str) -> CreatedDocument:
    code = (
        "import json, sys; from collab import store; "
        "args = json.loads(sys.stdin.read()); "
        "print(store.create_document(args['title'], args['text']).id)"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=REPO,
        env=server_env(srv.data_dir),
        input=json.dumps({"title": title, "text": text}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc_id = result.stdout.strip().splitlines()[-1]
    return CreatedDocument(doc_id, title, text, f"{srv.url}/d/{doc_id}/")


@pytest.fixture
def make_document(server: TandemServer) -> Callable[..., CreatedDocument]:
    """`make_document(title="...", text="...")` on the shared server."""

    def make(title: str = "Untitled", text: str = "") -> CreatedDocument:
        return create_document(server, title, text)

    return make


# -- browsers ----------------------------------------------------------------------------
def _bundled_chromium(browser_type: BrowserType) -> bool:
    try:
        return Path(browser_type.executable_path).exists()
    except Exception:
        return False


@pytest.fixture(scope="session")
def browser_type_launch_args(
    server: TandemServer, browser_type_launch_args: dict[str, Any], browser_type: BrowserType
) -> dict[str, Any]:
    """Playwright's own Chromium when it is installed, else the system's (Debian's
    chromium; scripts/test says which in TANDEM_CHROMIUM).

    Asks for `server` first so that the server is up before any browser starts."""
    args = {**browser_type_launch_args}
    args["args"] = [*args.get("args", []), *CHROMIUM_ARGS]
    if browser_type.name != "chromium":
        return browser_type_launch_args
    chosen = conf.CHROMIUM.get()
    if chosen and Path(chosen).exists() and chosen != browser_type.executable_path:
        args["executable_path"] = chosen
    elif not _bundled_chromium(browser_type):
        system = shutil.which("chromium") or shutil.which("chromium-browser")
        if not system:
            pytest.fail(
                "No Chromium: run scripts/test (it installs one), or "
                "'apt-get install chromium', or 'playwright install chromium'."
            )
        args["executable_path"] = system
    return args


@pytest.fixture(scope="session")
def browser_context_args(
    browser_context_args: dict[str, Any], server: TandemServer
) -> dict[str, Any]:
    """Pages resolve relative URLs against the shared server: page.goto("/")."""
    return {**browser_context_args, "base_url": server.url}


@pytest.fixture
def new_page(new_context: Callable[..., BrowserContext]) -> Callable[..., Page]:
    """`new_page(**context_options)`: a page in its own browser context (its own cookies,
    storage and WebSocket): one call per person editing at once. Contexts are closed
    after the test by pytest-playwright."""

    def make(**options: Any) -> Page:
        context = new_context(**options)
        context.set_default_timeout(10_000)
        return context.new_page()

    return make
