#!/usr/bin/env python
"""flood -- other editors' latency while one client floods the server.

Two bounded runs on one fresh server: N editors type R characters a second for S seconds
into one document (bench/tandem_load.py, which measures p50/p99 from keystroke to every
other editor's screen), first alone, then while a flooder (a separate process) sends sync
requests without waiting for answers, BATCH at a time, and connects again whenever it is
closed, until the editors are done. Reported: both runs' p50/p99, the flooder's frames and
closes, the server's CPU. Only loopback servers; every loop bounded by count and time.

  .venv/bin/python bench/flood.py                          # this checkout
  .venv/bin/python bench/flood.py --repo /work/main        # another checkout (before)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websockets
from websockets.asyncio.client import connect

from bench.server import TandemServer
from bench.tandem_load import LoadConfig, check_loopback, create_document, run_load


async def flood(ws_url: str, origin: str, seconds: float, batch: int) -> dict[str, Any]:
    """Send `batch` requests without waiting, read until closed (or 2 s), again, until
    `seconds` are over. Each request inserts one character at the start of version 1."""
    sent = closes = connections = 0
    codes: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connections += 1
        try:
            async with connect(ws_url, origin=origin, max_size=None, open_timeout=10) as ws:  # type: ignore[arg-type]
                cid = f"flood-{connections:06d}"
                for rid in range(1, batch + 1):
                    request = {
                        "type": "sync",
                        "cid": cid,
                        "rid": rid,
                        "base": 1,
                        "ops": [{"insert": "f"}],
                    }
                    await ws.send(json.dumps(request))
                    sent += 1
                with_timeout = min(2.0, max(0.1, deadline - time.monotonic()))
                with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
                    async with asyncio.timeout(with_timeout):
                        async for _ in ws:
                            pass
                if ws.close_code is not None:
                    closes += 1
                    codes[str(ws.close_code)] = codes.get(str(ws.close_code), 0) + 1
        except (websockets.WebSocketException, OSError):
            closes += 1
            codes["send failed"] = codes.get("send failed", 0) + 1
    return {"sent": sent, "connections": connections, "closes": closes, "close_codes": codes}


def run(
    base_url: str, pid: int | None, editors: int, rate: float, seconds: float, batch: int
) -> dict[str, Any]:
    check_loopback(base_url)
    out: dict[str, Any] = {"editors": editors, "rate": rate, "seconds": seconds, "batch": batch}
    keep = ("lat_p50_ms", "lat_p99_ms", "lat_max_ms", "all_observed", "server_cpu_pct")
    for phase in ("alone", "flooded"):
        doc_id = create_document(base_url, f"flood {phase}", "-")
        flooder = None
        if phase == "flooded":
            ws_url = base_url.replace("http://", "ws://") + f"/ws/d/{doc_id}/"
            flooder = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "flooder",
                    ws_url,
                    base_url,
                    str(seconds + 3),
                    str(batch),
                ],
                stdout=subprocess.PIPE,
            )
            time.sleep(1.0)
        cfg = LoadConfig(
            base_url,
            editors,
            int(rate * seconds),
            rate,
            doc_ids=[doc_id],
            server_pid=pid,
            label=phase,
        )
        result = asyncio.run(run_load(cfg, hard_timeout=seconds + 120))
        out[phase] = {k: result.get(k) for k in keep}
        if flooder is not None:
            stdout, _ = flooder.communicate(timeout=seconds + 60)
            out["flooder"] = json.loads(stdout)
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "flooder":
        ws_url, origin, seconds, batch = sys.argv[2:6]
        print(json.dumps(asyncio.run(flood(ws_url, origin, float(seconds), int(batch)))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--repo", type=Path, help="start the server from this checkout")
    parser.add_argument("-n", "--editors", type=int, default=5)
    parser.add_argument("-r", "--rate", type=float, default=10.0, help="keystrokes/s per editor")
    parser.add_argument("-s", "--seconds", type=float, default=15.0)
    parser.add_argument("-b", "--batch", type=int, default=3000, help="requests per flood")
    args = parser.parse_args()
    with TandemServer(repo=args.repo) as server:
        result = run(server.base_url, server.pid, args.editors, args.rate, args.seconds, args.batch)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
