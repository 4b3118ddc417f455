"""Two Tandem processes on PostgreSQL and Redis, beside one process, in one run.

    .venv/bin/python bench/cluster_bench.py [--reps 2] [--cases n10,manydocs,capacity]
        [--capacity-steps 100,200,300,400]

Three shapes, each on fresh servers per case:
- `one`:    one process, SQLite and the in-memory layer (the default);
- `one-pg`: one process on PostgreSQL and Redis (what the database and the layer cost);
- `two`:    two processes on PostgreSQL and Redis, every document's editors dealt
            round-robin over both (half of them reach the room across processes).

PostgreSQL runs durable here (fsync on, synchronous commits), as in production; both
servers (redis-server, postgres) are child processes on loopback (tests/services.py).
Cases: `n10` (10 editors x 100 @ 10/s, one document), `manydocs` (100 documents x 3
editors x 20 @ 2/s), `capacity` (N editors x 20 @ 2/s in one document, N growing until
p95 >= 100 ms). Prints a Markdown table; JSON to bench/results/cluster-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import REPO, TandemServer
from bench.tandem_load import LoadConfig, run_load
from tests.services import PostgresServer, RedisServer

CASES: dict[str, tuple[int, int, int, float]] = {  # docs, editors each, inserts, rate
    "n10": (1, 10, 100, 10.0),
    "manydocs": (100, 3, 20, 2.0),
}
CAPACITY = (20, 2.0)
P95_LIMIT_MS = 100.0
SHAPES = ("one", "one-pg", "two")


class Services:
    def __init__(self) -> None:
        self.redis = RedisServer().start()
        self.postgres = PostgresServer(durable=True).start()
        self._redis_db = 0

    def env(self) -> dict[str, str]:
        """A fresh database and Redis database for one case."""
        self._redis_db = self._redis_db % 15 + 1
        return {
            "TANDEM_DATABASE_URL": self.postgres.create_database("bench"),
            "TANDEM_REDIS_URL": self.redis.url.rsplit("/", 1)[0] + f"/{self._redis_db}",
            "TANDEM_SECRET_KEY": secrets.token_urlsafe(40),
        }

    def close(self) -> None:
        self.redis.close()
        self.postgres.close()


@contextmanager
def servers(shape: str, services: Services) -> Iterator[list[TandemServer]]:
    env = services.env() if shape != "one" else {}
    started: list[TandemServer] = []
    try:
        for _ in range(2 if shape == "two" else 1):
            server = TandemServer(env=env)
            started.append(server)
            server.start(timeout=60)
        yield started
    finally:
        for server in started:
            server.stop()
            server.cleanup()


def run(shape: str, services: Services, docs: int, n: int, k: int, rate: float) -> dict[str, Any]:
    with servers(shape, services) as procs:
        first, *others = procs
        cfg = LoadConfig(first.base_url, n, k, rate, docs=docs, label=f"{shape}-{docs}x{n}")
        cfg.server_pid = first.pid
        cfg.other_urls = [p.base_url for p in others]
        cfg.other_pids = [p.pid for p in others]
        cfg.connect_timeout = 60 + 0.3 * n * docs
        res = asyncio.run(run_load(cfg, 600))
    per_process = res.get("server_cpu_s_per_process") or []
    keystrokes = docs * n * k
    res["shape"] = shape
    res["cpu_ms_per_keystroke"] = 1e3 * sum(per_process) / keystrokes if per_process else None
    active = res.get("active_window_s") or 1.0
    res["cpu_pct_per_process"] = [100.0 * c / active for c in per_process]
    return res


def row(name: str, shape: str, runs: list[dict[str, Any]]) -> str:
    def med(key: str) -> str:
        values = [r[key] for r in runs if r.get(key) is not None]
        return f"{statistics.median(values):.1f}" if values else "-"

    def med_cpu() -> str:
        per = [r["cpu_pct_per_process"] for r in runs if r.get("cpu_pct_per_process")]
        if not per:
            return "-"
        return " + ".join(f"{statistics.median(p[i] for p in per):.0f}" for i in range(len(per[0])))

    ms_per_key = [r["cpu_ms_per_keystroke"] for r in runs if r.get("cpu_ms_per_keystroke")]
    per_key = f"{statistics.median(ms_per_key):.2f}" if ms_per_key else "-"
    converged = sum(bool(r.get("converged")) for r in runs)
    return (
        f"| {name} | {shape} | {converged}/{len(runs)} | {med('lat_p50_ms')} | "
        f"{med('lat_p95_ms')} | {med('lat_p99_ms')} | {med_cpu()} | {per_key} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="n10,manydocs,capacity")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--capacity-steps", default="100,200,300,400")
    args = ap.parse_args()
    shapes = args.shapes.split(",")
    services = Services()
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    lines: list[str] = []
    try:
        for case in args.cases.split(","):
            if case == "capacity":
                k, rate = CAPACITY
                for shape in shapes:
                    best = None
                    for n in (int(x) for x in args.capacity_steps.split(",")):
                        res = run(shape, services, 1, n, k, rate)
                        results[f"capacity-{shape}-{n}"] = res
                        lines.append(row(f"capacity {n}", shape, [res]))
                        print(lines[-1], flush=True)
                        p95 = res.get("lat_p95_ms")
                        if not res.get("converged") or p95 is None or p95 >= P95_LIMIT_MS:
                            break
                        best = n
                    results[f"capacity-{shape}"] = best
                    print(f"capacity {shape}: largest N at p95 < 100 ms: {best}", flush=True)
                continue
            docs, n, k, rate = CASES[case]
            for shape in shapes:
                runs = [run(shape, services, docs, n, k, rate) for _ in range(args.reps)]
                results[f"{case}-{shape}"] = runs
                lines.append(row(case, shape, runs))
                print(lines[-1], flush=True)
    finally:
        services.close()
    header = (
        "| case | shape | converged | p50 ms | p95 ms | p99 ms | server CPU % (per process) "
        "| server CPU ms per keystroke |\n|---|---|---|---|---|---|---|---|"
    )
    print("\n" + header + "\n" + "\n".join(lines))
    out = REPO / "bench" / "results" / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, default=str))
    print(out)


if __name__ == "__main__":
    main()
