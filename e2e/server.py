"""A real Tandem server in a subprocess, started the way the README does.

`python manage.py serve --host 127.0.0.1 --port P` with its own data folder: the same
single process (Daphne: HTTP, WebSocket and static files) that users run. Used by the
end-to-end fixtures and by tests/test_serve.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a server process: this one's, minus the test settings."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    # faulthandler: a crash of the server prints its Python stacks into its output.
    env.update(TANDEM_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1", **extra)
    return env


class TandemServer:
    """One `manage.py serve` process. `url` stays the same across `kill()` and `start()`."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="tandem-e2e-data-"))
        self.data_dir = data_dir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"
        self._log_offset = 0
        self.extra_env: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> TandemServer:
        """Start (or restart) the server on the same port and data folder; wait until it
        answers HTTP."""
        self.launch()
        self.wait_until_ready(timeout)
        return self

    def launch(self) -> None:
        """Start the process without waiting for it (to start several at once); then
        `wait_until_ready`."""
        assert not self.running, "already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "serve",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                ],
                cwd=REPO,
                env=server_env(self.data_dir, **self.extra_env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with code {self.proc.returncode} before answering:\n"
                    + self.output()
                )
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code == 403:
                    return  # up, and treating this machine as a guest (TANDEM_TRUST_LOOPBACK=0)
                last_error = exc
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last_error = exc
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(
            f"the server did not answer on {self.url} within {timeout:.0f} s "
            f"(last error: {last_error}):\n{self.output()}"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, with nothing flushed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None, "not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the server did not stop within {timeout:.0f} s of SIGTERM:\n{self.output()}"
            ) from None
        self.proc = None
        return code

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, and a clean exit (code 0) within `timeout` seconds."""
        code = self.terminate(timeout)
        assert code == 0, f"the server exited with code {code}:\n{self.output()}"

    # -- output --------------------------------------------------------------------------
    def output(self, since_start: bool = True) -> str:
        """What the process printed (since its last start, by default)."""
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        return data[self._log_offset if since_start else 0 :].decode("utf-8", "replace")
