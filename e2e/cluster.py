"""Several Tandem processes sharing one PostgreSQL database and one Redis, the way
docs/deploy.md runs them: each is a `manage.py serve` (e2e/server.TandemServer) on its own
port with its own data folder, and all have the same TANDEM_SECRET_KEY and TANDEM_OWNER_KEY.

    cluster = Cluster(redis_url, database_url).start()
    a, b = cluster                # TandemServer objects: .url, .port, .output()
    cluster.kill(0)               # kill -9, nothing flushed
    cluster.restart(0)            # same port, data folder and settings
    cluster.stop()                # SIGTERM all, then remove the data folders

The processes start at the same time, as a deployment's would: `serve` migrates under a
PostgreSQL advisory lock, so they take turns instead of racing on a fresh database.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from e2e.server import START_TIMEOUT, TandemServer


class Cluster:
    def __init__(
        self,
        redis_url: str,
        database_url: str,
        size: int = 2,
        *,
        lease_seconds: float | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        assert size >= 1
        self.redis_url = redis_url
        self.database_url = database_url
        self.root = Path(tempfile.mkdtemp(prefix="tandem-cluster-"))
        self.env: dict[str, str] = {
            "TANDEM_DATABASE_URL": database_url,
            "TANDEM_REDIS_URL": redis_url,
            # One key for all: a session or CSRF cookie made by one process must be
            # accepted by the others (a proxy sends each request wherever it likes).
            "TANDEM_SECRET_KEY": secrets.token_urlsafe(50),
            # Likewise the owner key: an owner signed in on one process is the owner on all.
            "TANDEM_OWNER_KEY": secrets.token_urlsafe(32),
            # As docs/deploy.md sets it: behind a proxy that ends TLS.
            "TANDEM_BEHIND_PROXY": "1",
            **({"TANDEM_LEASE_SECONDS": str(lease_seconds)} if lease_seconds else {}),
            **(extra_env or {}),
        }
        self.servers: list[TandemServer] = []
        for i in range(size):
            server = TandemServer(data_dir=self.root / f"process-{i}")
            server.data_dir.mkdir()
            server.extra_env = dict(self.env)
            self.servers.append(server)

    # -- cluster[0], len(cluster), a, b = cluster ---------------------------------------
    def __getitem__(self, index: int) -> TandemServer:
        return self.servers[index]

    def __len__(self) -> int:
        return len(self.servers)

    def __iter__(self) -> Iterator[TandemServer]:
        return iter(self.servers)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> Cluster:
        """Start every process that is not running, all at once; wait until all answer."""
        stopped = [server for server in self.servers if not server.running]
        for server in stopped:
            server.launch()
        try:
            for server in stopped:
                server.wait_until_ready(timeout)
        except BaseException:
            self.kill_all()
            raise
        return self

    def kill(self, index: int) -> None:
        """kill -9 process `index`: a crash, with nothing flushed and no lease released."""
        self.servers[index].kill()

    def restart(self, index: int, timeout: float = START_TIMEOUT) -> TandemServer:
        """Start process `index` again (killed or stopped) on the same port."""
        server = self.servers[index]
        if server.running:
            server.stop()
        return server.start(timeout)

    def log(self, index: int, since_start: bool = True) -> str:
        """What process `index` printed (since its last start, by default)."""
        return self.servers[index].output(since_start)

    def logs(self) -> str:
        """Every process's output since its last start, labelled: for assertion messages."""
        return "\n".join(
            f"--- process {i} ({server.url}) ---\n{server.output()}"
            for i, server in enumerate(self.servers)
        )

    def kill_all(self) -> None:
        for server in self.servers:
            server.kill()

    def stop(self) -> None:
        """SIGTERM every running process (SIGKILL if one hangs), then remove the folders."""
        try:
            for server in self.servers:
                if server.running:
                    # terminate() kills a process that hangs, and says so by raising.
                    with contextlib.suppress(AssertionError):
                        server.terminate()
        finally:
            self.kill_all()
            shutil.rmtree(self.root, ignore_errors=True)
