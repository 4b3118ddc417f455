"""A fresh Tandem server in a subprocess, and what /proc says about it.

`python manage.py serve --host 127.0.0.1 --port P` with its own temporary data folder:
the same single process (Daphne: HTTP, WebSocket and static files) that users run. Only
the standard library is used here, so the smoke test can import it on a clean machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        fields = data[data.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (KiB) and Threads from /proc/PID/status (empty when it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "Threads:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def rss_kib(pid: int) -> int | None:
    return proc_status(pid).get("VmRSS")


class TandemServer:
    """One `manage.py serve` process on 127.0.0.1 with a throw-away data folder.

    `template` (optional) is a data folder of a server that already ran once (migrated
    database, collected static files, secret key): it is copied, which makes starting a
    fresh server per benchmark case quick. `env` adds to the server's environment.
    """

    def __init__(
        self,
        *,
        template: Path | None = None,
        env: dict[str, str] | None = None,
        python: str | None = None,
        log_path: Path | None = None,
        repo: Path | None = None,
        manage: list[str] | None = None,
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="tandem-bench-"))
        self.data_dir = self.tmp / "data"
        if template is not None:
            shutil.copytree(template, self.data_dir)
        else:
            self.data_dir.mkdir()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.python = python or sys.executable
        self.repo = repo or Path(os.environ.get("TANDEM_BENCH_REPO", REPO))
        self.extra_env = env or {}
        # what runs `manage.py`'s commands (a wrapper may take its place, see memtrace.py)
        self.manage = manage or ["manage.py"]
        self.log_path = log_path or (self.tmp / "server.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s: float | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = START_TIMEOUT) -> TandemServer:
        if self.proc is not None and self.proc.poll() is None:
            return self  # already running (`with TandemServer(...).start()` starts once)
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(TANDEM_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1", **self.extra_env)
        t0 = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.python,
                    *self.manage,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=self.repo,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with code {self.proc.returncode}:\n{self.output()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(self.base_url + "/", timeout=2) as response:
                    if response.status == 200:
                        self.start_s = time.monotonic() - t0
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s:\n{self.output()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (a clean, flushed stop), SIGKILL if it takes longer than `timeout`."""
        if self.proc is None:
            return None
        code: int | None = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(timeout)
        self.proc = None
        return code

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def output(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def cpu_s(self) -> float | None:
        return proc_cpu_s(self.pid)

    def rss_kib(self) -> int | None:
        return rss_kib(self.pid)

    def __enter__(self) -> TandemServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def make_template(python: str | None = None) -> Path:
    """Start a server once and stop it: its data folder (migrated database, collected
    static files) is then copied for each fresh server."""
    server = TandemServer(python=python)
    try:
        server.start()
    finally:
        server.stop()
    return server.data_dir
