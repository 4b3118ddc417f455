"""bench/browser.py runs: a tiny, bounded run (a subprocess, with its own server and
Chromium) whose numbers are there and whose two pages converged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from e2e.server import REPO


def test_the_browser_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "browser.json"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    args = ["--sizes", "1000", "--keys", "3", "--opens", "1", "--budget", "60", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "bench.browser", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    case = json.loads(out.read_text())["cases"]["after"]["1000"]
    assert case["converged"] is True
    assert case["remote_ms"]["n"] == 3 and case["remote_ms"]["p50"] > 0
    assert case["typist_to_frame_ms"]["n"] == 3
    assert case["open_ms"]["n"] == 1 and case["transfer_bytes"] > 0
    assert "| after | 1000 |" in result.stdout
