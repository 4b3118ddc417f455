"""Real redis-server and PostgreSQL processes for the tests, on free loopback ports.

Each server is a child process of the test run, in a temporary folder of its own, and is
stopped and removed at the end; nothing is installed as a service and nothing listens
beyond 127.0.0.1. scripts/test installs Debian's `redis-server` and `postgresql` when
they are missing; `MissingServer` says so when they still are, and the fixtures in the
root conftest.py turn it into a skip, or a failure under CI=true (`unavailable`).

PostgreSQL refuses to run as root: as root, `initdb` and `postgres` run as the
unprivileged `postgres` user (which Debian's package creates), on a data folder that user
owns. `Popen(user=..., group=...)` switches user in the child itself, like
`runuser -u postgres --` but with no process between us and the server, so the signals
we send reach the server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import pytest

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PORT_ATTEMPTS = 3  # a free port may be taken by someone else before the server binds it


class MissingServer(RuntimeError):
    """A server binary (or the user to run it as) is not on this machine."""


def unavailable(error: MissingServer) -> NoReturn:
    """Skip the test that needs the server, or fail it under CI: CI must never pass by
    not running the tests that need Redis or PostgreSQL."""
    if os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
        pytest.fail(f"{error} (CI=true: a missing server fails the run)", pytrace=False)
    pytest.skip(str(error))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    """`sig`, then SIGKILL if the process has not exited within STOP_TIMEOUT."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


# -- Redis -------------------------------------------------------------------------------
class RedisServer:
    """`redis-server` in the foreground, no persistence, on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingServer(
                "redis-server is not installed (scripts/test installs Debian's "
                "redis-server package; or 'apt-get install redis-server')"
            )
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="tandem-redis-"))
        self.log_path = self.dir / "redis.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            if self._launch():
                return self
        self.stop()
        raise RuntimeError(f"redis-server did not start:\n{_tail(self.log_path)}")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, wait `down_for` seconds, start again on the same port, empty (no
        persistence): what the channel layer sees of a Redis restart."""
        self.stop()
        time.sleep(down_for)
        if not self._launch():
            raise RuntimeError(f"redis-server did not start again:\n{_tail(self.log_path)}")

    def _launch(self) -> bool:
        # fmt: off
        command = [
            self.binary,
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--dir", str(self.dir),
        ]
        # fmt: on
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        return self._wait_until_ready()

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _wait_until_ready(self) -> bool:
        """True once it answers PING; False if it exited (its port was taken)."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.ping():
                return True
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, signal.SIGTERM)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- PostgreSQL --------------------------------------------------------------------------
def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's server binaries (Debian keeps them off the PATH)."""
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    candidates.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        candidates.insert(0, Path(bindir))
    for path in reversed(candidates):
        if (path / "postgres").is_file() and (path / "initdb").is_file():
            return path
    raise MissingServer(
        "PostgreSQL's server is not installed (scripts/test installs Debian's postgresql "
        "package; or 'apt-get install postgresql')"
    )


class PostgresServer:
    """A throw-away PostgreSQL cluster: `initdb` in a temporary folder, then `postgres`
    on a free 127.0.0.1 port (and a Unix socket in the same folder), trust auth for the
    `postgres` superuser, durability off (a test never survives a power cut) unless
    `durable` (the benchmark: commits on disk, as in production)."""

    user = "postgres"

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.bin = postgres_bin_dir()
        self.run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise MissingServer(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user to "
                    "run it as (Debian's postgresql package creates it)"
                ) from None
        self.dir = Path(tempfile.mkdtemp(prefix="tandem-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._databases = 0

    def _run(self, args: list[str], **options: object) -> subprocess.Popen[bytes]:
        """Start `args` as the server's user (as ourselves when we are not root)."""
        uid = self.run_as.pw_uid if self.run_as else None
        gid = self.run_as.pw_gid if self.run_as else None
        return subprocess.Popen(
            args,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            user=uid,
            group=gid,
            extra_groups=[] if self.run_as else None,
            **options,  # type: ignore[call-overload]
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{quote(database)}"

    def start(self) -> PostgresServer:
        if self.run_as is not None:
            os.chown(self.dir, self.run_as.pw_uid, self.run_as.pw_gid)
        # fmt: off
        command = [
            str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        ]
        # fmt: on
        initdb = self._run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = initdb.communicate(timeout=120)
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{output.decode(errors='replace')}")
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            if self._launch():
                return self
        self.stop()
        raise RuntimeError(f"postgres did not start:\n{_tail(self.log_path)}")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server, wait `down_for` seconds, and start it again on the same port
        with the same data: what clients see of a database restart or failover."""
        self.stop()
        time.sleep(down_for)
        if not self._launch():
            raise RuntimeError(f"postgres did not start again:\n{_tail(self.log_path)}")

    def _launch(self) -> bool:
        # fmt: off
        command = [
            str(self.bin / "postgres"), "-D", str(self.data),
            "-p", str(self.port), "-k", str(self.dir),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "max_connections=200",
        ]
        if not self.durable:
            command += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            command += ["-c", "full_page_writes=off"]
        # fmt: on
        with self.log_path.open("ab") as log:
            self.proc = self._run(command, stdout=log, stderr=subprocess.STDOUT)
        return self._wait_until_ready()

    def _wait_until_ready(self) -> bool:
        """True once it accepts a connection; False if it exited (its port was taken)."""
        import psycopg

        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=self.port, user=self.user, dbname="postgres",
                    connect_timeout=2,
                ):  # fmt: skip
                    return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(
            f"postgres did not accept connections within {START_TIMEOUT:.0f} s:\n"
            + _tail(self.log_path)
        )

    def create_database(self, prefix: str = "tandem") -> str:
        """A new, empty database; its URL."""
        import psycopg
        from psycopg import sql

        self._databases += 1
        name = f"{prefix}_{self._databases}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        # SIGINT: "fast" shutdown, which ends the sessions still open instead of waiting.
        if self.proc is not None:
            _stop(self.proc, signal.SIGINT)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- reverse proxies (the configurations of docs/deploy.md) ---------------------------------
class _ConfiguredServer:
    """A server binary run in the foreground on a configuration we write, listening on
    127.0.0.1:`port`; ready once the port accepts connections."""

    name = ""

    def __init__(self, binary: str | None, install_hint: str, port: int) -> None:
        if binary is None:
            raise MissingServer(f"{self.name} is not installed ({install_hint})")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix=f"tandem-{self.name}-"))
        self.log_path = self.dir / f"{self.name}.log"
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> _ConfiguredServer:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.dir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.output()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"{self.name} did not listen within {START_TIMEOUT:.0f} s")

    def output(self) -> str:
        return _tail(self.log_path, 20_000)

    def close(self) -> None:
        if self.proc is not None:
            _stop(self.proc, signal.SIGTERM)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class NginxServer(_ConfiguredServer):
    """nginx with `http_block` (upstreams and servers, as in docs/deploy.md, listening on
    127.0.0.1:`port`) inside a main configuration of our own: foreground, logs and
    temporary files in its folder."""

    name = "nginx"

    def __init__(self, http_block: str, port: int) -> None:
        super().__init__(
            shutil.which("nginx") or next(iter(glob.glob("/usr/sbin/nginx")), None),
            "scripts/test installs Debian's nginx package; or 'apt-get install nginx'",
            port,
        )
        temp = self.dir / "temp"
        temp.mkdir()
        # As root, nginx's workers would switch to `nobody`, who cannot read our folder.
        user = "user root root;" if os.geteuid() == 0 else ""
        temp_paths = "\n".join(
            f"    {kind}_temp_path {temp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.config = self.dir / "nginx.conf"
        self.config.write_text(
            f"daemon off;\n{user}\nworker_processes 1;\npid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.log_path} warn;\nevents {{ worker_connections 512; }}\n"
            f"http {{\n    access_log off;\n{temp_paths}\n{http_block}\n}}\n"
        )

    def command(self) -> list[str]:
        return [self.binary, "-p", str(self.dir), "-e", str(self.log_path), "-c", str(self.config)]


class CaddyServer(_ConfiguredServer):
    """Caddy on a Caddyfile (as in docs/deploy.md, a site on 127.0.0.1:`port`) with our
    global options: no admin endpoint (it would take port 2019, shared by everyone on
    the machine), no automatic HTTPS, its state in its folder."""

    name = "caddy"

    def __init__(self, site_blocks: str, port: int) -> None:
        super().__init__(
            shutil.which("caddy"),
            "scripts/test installs Debian's caddy package; or 'apt-get install caddy'",
            port,
        )
        self.config = self.dir / "Caddyfile"
        self.config.write_text("{\n    admin off\n    auto_https off\n}\n\n" + site_blocks)

    def command(self) -> list[str]:
        return [self.binary, "run", "--config", str(self.config), "--adapter", "caddyfile"]

    def environment(self) -> dict[str, str]:
        home = str(self.dir)
        return {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}
