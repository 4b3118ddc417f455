"""Before and after, side by side in one run: the same cases against two checkouts.

    .venv/bin/python bench/ab.py --before ../tandem-old --reps 3 [--cases n10,cap200]

Each case runs alternately against each checkout's own fresh server (before, after,
before, after, ...), so a machine that gets busier during the run weighs on both alike.
Medians over the repetitions are printed as a Markdown table and written as JSON to
bench/results/ab-<time>.json. The load client is this checkout's for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import REPO, TandemServer
from bench.tandem_load import LoadConfig, run_load

# name: (docs, editors per document, inserts each, inserts/s each)
CASES: dict[str, tuple[int, int, int, float]] = {
    "n2": (1, 2, 100, 10.0),
    "n10": (1, 10, 100, 10.0),
    "n30": (1, 30, 100, 10.0),
    "burst": (1, 10, 500, 0.0),
    "cap200": (1, 200, 20, 2.0),
    "manydocs": (100, 3, 20, 2.0),
}
METRICS = ("lat_p50_ms", "lat_p95_ms", "lat_p99_ms", "server_cpu_pct", "cpu_ms_per_keystroke")


def run_case(repo: Path, name: str, rep: int) -> dict[str, Any]:
    docs, n, k, rate = CASES[name]
    server = TandemServer(repo=repo)
    try:
        server.start()
        cfg = LoadConfig(server.base_url, n, k, rate, docs=docs, label=f"{name}-r{rep}", seed=rep)
        cfg.server_pid = server.pid
        cfg.connect_timeout = 60 + 0.3 * n * docs
        res = asyncio.run(run_load(cfg, 400))
        # CPU time per keystroke hardly depends on what else the machine runs; latency does.
        if res.get("server_cpu_s") is not None:
            res["cpu_ms_per_keystroke"] = 1e3 * res["server_cpu_s"] / (docs * n * k)
        return res
    finally:
        server.stop()
        server.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the other checkout (its .venv not needed)")
    ap.add_argument("--after", default=str(REPO))
    ap.add_argument("--cases", default="n10,cap200,manydocs")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    sides = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in args.cases.split(","):
        results[name] = {side: [] for side in sides}
        for rep in range(1, args.reps + 1):
            for side, repo in sides.items():
                res = run_case(repo, name, rep)
                results[name][side].append(res)
                shown = " ".join(f"{m}={res.get(m)!s:.6}" for m in METRICS)
                print(f"{name} r{rep} {side}: conv={res.get('converged')} {shown}", flush=True)
    print("\n| case | side | converged | " + " | ".join(METRICS) + " |")
    print("|---|---|---|" + "---|" * len(METRICS))
    for name, by_side in results.items():
        for side, runs in by_side.items():
            cells = []
            for metric in METRICS:
                values = [r[metric] for r in runs if r.get(metric) is not None]
                cells.append(f"{statistics.median(values):.1f}" if values else "-")
            converged = sum(1 for r in runs if r.get("converged"))
            print(f"| {name} | {side} | {converged}/{len(runs)} | " + " | ".join(cells) + " |")
    out = REPO / "bench" / "results" / f"ab-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sides": {k: str(v) for k, v in sides.items()}, **results}))
    print(f"\n{out}")


if __name__ == "__main__":
    main()
