#!/usr/bin/env python
"""Tandem's benchmark: a fresh server per case, protocol-level load, the peers beside it.

Cases (--only takes a comma-separated list of these):
  matrix     the peers' matrix: 2, 10, 30 editors x 100 inserts @ 10/s; burst 10 x 500
  capacity   editors at 2 inserts/s each in one document, growing until p95 >= 100 ms
  manydocs   100 documents x 3 editors at 2 inserts/s each, all at once
  large      1 KB and 1 MB documents: page load, first sync, preview latency
  cpu        server CPU time per keystroke, 1 KB against 1 MB (end and middle)
  memory     server RSS per idle connection, per open document, after everyone left
  peers      ../shared/bench-peers (pycrdt's Channels consumer, Node y-websocket) on the
             same matrix with their own load generator, yload.py

Results: bench/results/<run>/ (JSON per case, server logs, optional py-spy profiles);
bench/report.py turns the newest run into Markdown tables and docs/bench-latency.png.

  bench/run                       # everything (about 20 minutes on 2 cores)
  bench/run --quick               # a smoke run: tiny N and K, seconds
  bench/run --only matrix --reps 3
  bench/run --only capacity --profile   # py-spy flame data of the server per case
Every server listens on 127.0.0.1 only and is stopped by its own pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workloads
from bench.server import REPO, TandemServer, make_template, proc_status
from bench.tandem_load import LoadConfig, run_load

HERE = Path(__file__).resolve().parent
PEERS_DIR = Path(os.environ.get("TANDEM_BENCH_PEERS", REPO.parent / "shared" / "bench-peers"))
PEERS_HOME = Path(os.environ.get("PEERS_HOME", Path.home() / ".cache/tandem-bench-peers"))
ALL_CASES = ["matrix", "capacity", "manydocs", "large", "cpu", "memory", "peers"]

# name: (editors, inserts per editor, inserts/s per editor; 0 = burst): the peers' CASES
MATRIX = {
    "n2": (2, 100, 10.0),
    "n10": (10, 100, 10.0),
    "n30": (30, 100, 10.0),
    "burst10x500": (10, 500, 0.0),
}
QUICK_MATRIX = {"n2": (2, 10, 10.0), "burst3x30": (3, 30, 0.0)}
CAPACITY_STEPS = [50, 100, 200, 300, 400, 500, 600, 800]
CAPACITY_RATE = 2.0
CAPACITY_UPDATES = 20  # 10 s at 2/s
P95_LIMIT_MS = 100.0


@dataclass
class Options:
    outdir: Path
    quick: bool
    reps: int
    profile: bool
    peer_servers: list[str]
    capacity_max: int
    unload_wait: float


class Bench:
    def __init__(self, opts: Options) -> None:
        self.o = opts
        self.outdir = opts.outdir
        self.outdir.mkdir(parents=True, exist_ok=True)
        self.template: Path | None = None
        self.failed: list[str] = []

    # -- helpers ---------------------------------------------------------------------
    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def save(self, name: str, data: Any) -> Path:
        path = self.outdir / f"{name}.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    @contextlib.contextmanager
    def server(self, label: str) -> Iterator[TandemServer]:
        if self.template is None:
            self.template = make_template()
        server = TandemServer(template=self.template, log_path=self.outdir / f"{label}.server.log")
        try:
            server.start()
            with self.profiled(server, label):
                yield server
        finally:
            code = server.stop()
            if code not in (0, None):
                self.log(f"  {label}: the server exited with {code}")
            server.cleanup()

    @contextlib.contextmanager
    def profiled(self, server: TandemServer, label: str) -> Iterator[None]:
        """With --profile: py-spy samples the server for the whole case (collapsed stacks
        in <label>.pyspy.txt, top functions in <label>.pyspy-top.json)."""
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not self.o.profile or not Path(pyspy).exists():
            yield
            return
        raw = self.outdir / f"{label}.pyspy.txt"
        proc = subprocess.Popen(
            [
                pyspy,
                "record",
                "--pid",
                str(server.pid),
                "--format",
                "raw",
                "--rate",
                "200",
                "--nonblocking",
                "-o",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if raw.exists():
                self.save(f"{label}.pyspy-top", top_functions(raw))

    def load(self, server: TandemServer, cfg: LoadConfig, hard: float = 400) -> dict[str, Any]:
        cfg.base_url = server.base_url
        cfg.server_pid = server.pid
        res = asyncio.run(run_load(cfg, hard))
        res["server_start_s"] = server.start_s
        res["server_vmhwm_kib"] = proc_status(server.pid).get("VmHWM")
        return res

    # -- cases -----------------------------------------------------------------------
    def matrix(self) -> None:
        cases = QUICK_MATRIX if self.o.quick else MATRIX
        for rep in range(1, self.o.reps + 1):
            for case, (n, k, rate) in cases.items():
                label = f"tandem__{case}__r{rep}"
                with self.server(label) as server:
                    res = self.load(
                        server, LoadConfig(server.base_url, n, k, rate, label=label, seed=rep)
                    )
                res.update(server="tandem", case=case, rep=rep)
                self.save(label, res)
                self.log(f"{label}: {brief(res)}")

    def capacity(self) -> None:
        steps = [5, 10] if self.o.quick else CAPACITY_STEPS
        k = 4 if self.o.quick else CAPACITY_UPDATES
        best = None
        for n in steps:
            if n > self.o.capacity_max:
                break
            label = f"capacity__n{n}"
            with self.server(label) as server:
                res = self.load(
                    server,
                    LoadConfig(
                        server.base_url,
                        n,
                        k,
                        CAPACITY_RATE,
                        label=label,
                        connect_timeout=60 + 0.3 * n,
                    ),
                )
            res.update(server="tandem", case="capacity", n=n)
            self.save(label, res)
            self.log(f"{label}: {brief(res)}")
            p95 = res.get("lat_p95_ms")
            if not res["converged"] or p95 is None or p95 >= P95_LIMIT_MS:
                break
            best = n
        self.save(
            "capacity",
            {"largest_n_p95_under_100ms": best, "steps": steps, "k": k, "rate": CAPACITY_RATE},
        )

    def manydocs(self) -> None:
        docs, n, k = (4, 3, 5) if self.o.quick else (100, 3, CAPACITY_UPDATES)
        label = f"manydocs__d{docs}x{n}"
        with self.server(label) as server:
            res = self.load(
                server,
                LoadConfig(
                    server.base_url,
                    n,
                    k,
                    CAPACITY_RATE,
                    docs=docs,
                    label=label,
                    connect_timeout=120,
                ),
            )
        res.update(server="tandem", case="manydocs")
        self.save(label, res)
        self.log(f"{label}: {brief(res)}")

    def large(self) -> None:
        sizes = [1024, 64 * 1024] if self.o.quick else [1024, 1024 * 1024]
        reps = 3 if self.o.quick else 20
        out: dict[str, Any] = {}
        for size in sizes:
            text = workloads.markdown_document(size)
            try:
                with self.server(f"large__{size}") as server:
                    page = asyncio.run(
                        workloads.page_and_first_sync(server.base_url, text, 5, label=str(size))
                    )
                    preview = asyncio.run(
                        workloads.preview_latency(server.base_url, text, reps, label=str(size))
                    )
            except Exception as error:  # record it, go on with the next size
                out[str(size)] = {"error": repr(error)}
                self.log(f"large {size} FAILED: {error!r}")
                self.failed.append(f"large {size}")
                continue
            out[str(size)] = {"page": page, "preview": preview}
            self.log(
                f"large {size}: page {page['page_load_median_ms']:.1f} ms, first sync cold "
                f"{page['first_sync_cold_ms']:.1f} ms warm {page['first_sync_warm_median_ms']:.1f}"
                f" ms, preview p50 {fmt(preview.get('preview_p50_ms'))} "
                f"p99 {fmt(preview.get('preview_p99_ms'))} ms "
                f"({fmt(preview.get('fragment_bytes_median'), 0)} B per fragment)"
            )
        self.save("large", out)

    def cpu(self) -> None:
        big = 64 * 1024 if self.o.quick else 1024 * 1024
        keys = 50 if self.o.quick else 500
        runs = [(1024, "end"), (big, "end"), (1024, "middle"), (big, "middle")]
        out = []
        for rep, (size, where) in ((r, x) for r in range(1, self.o.reps + 1) for x in runs):
            label = f"cpu__{size}__{where}__r{rep}"
            try:
                with self.server(label) as server:
                    res = asyncio.run(
                        workloads.keystroke_cpu(
                            server.base_url,
                            server.pid,
                            workloads.markdown_document(size),
                            keystrokes=keys,
                            where=where,
                            label=label,
                            idle_s=1.0 if self.o.quick else 3.0,
                        )
                    )
            except Exception as error:  # record it, go on with the next run
                out.append({"doc_chars": size, "where": where, "rep": rep, "error": repr(error)})
                self.log(f"{label} FAILED: {error!r}")
                self.failed.append(label)
                continue
            res["rep"] = rep
            out.append(res)
            self.log(
                f"{label}: {res['server_ms_per_keystroke']:.3f} ms server CPU per keystroke, "
                f"ack p50 {fmt(res.get('ack_p50_ms'))} p99 {fmt(res.get('ack_p99_ms'))} ms, "
                f"converged {res['converged']}"
            )
        self.save("cpu", out)

    def memory(self) -> None:
        idle, docs = (10, 5) if self.o.quick else (200, 100)
        with self.server("memory") as server:
            res = asyncio.run(
                workloads.memory(
                    server.base_url,
                    server.pid,
                    idle_editors=idle,
                    open_docs=docs,
                    unload_wait_s=0 if self.o.quick else self.o.unload_wait,
                    settle_s=1.0 if self.o.quick else 3.0,
                )
            )
        self.save("memory", res)
        self.log(
            f"memory: {res['kib_per_idle_connection']:.1f} KiB per idle connection "
            f"({fmt(res.get('kib_per_idle_connection_first_stage'))} in the first stage), "
            f"{res['kib_per_open_document']:.1f} KiB per open document, after unload "
            f"{fmt(res.get('rss_after_unload_over_start_kib'), 0)} KiB over the start, "
            f"second round +{fmt(res.get('second_round_growth_kib'), 0)} KiB"
        )

    def peers(self) -> None:
        python = PEERS_HOME / ".venv" / "bin" / "python"
        if not python.exists():
            self.log(f"peers: running {PEERS_DIR / 'setup'}")
            subprocess.run([str(PEERS_DIR / "setup")], check=True, timeout=900)
        outdir = self.outdir / "peers"
        outdir.mkdir(exist_ok=True)
        cases = "n2" if self.o.quick else ",".join(MATRIX)
        cmd = [
            str(python),
            str(PEERS_DIR / "bench.py"),
            "--reps",
            str(self.o.reps),
            "--servers",
            ",".join(self.o.peer_servers),
            "--cases",
            cases,
            "--outdir",
            str(outdir),
        ]
        self.log("peers: " + " ".join(cmd))
        subprocess.run(cmd, check=False, timeout=3600)


def brief(res: dict[str, Any]) -> str:
    return (
        f"conv={res.get('converged')} p50={fmt(res.get('lat_p50_ms'))} "
        f"p95={fmt(res.get('lat_p95_ms'))} p99={fmt(res.get('lat_p99_ms'))} ms "
        f"(send p99 {fmt(res.get('lat_send_p99_ms'))}) ack p50/p99 "
        f"{fmt(res.get('ack_p50_ms'))}/{fmt(res.get('ack_p99_ms'))} ms "
        f"obs={fmt(100 * res.get('observed_fraction', 0), 1)}% "
        f"t_conv={fmt(res.get('time_to_full_convergence_s'), 2)} s "
        f"cpu={fmt(res.get('server_cpu_pct'), 0)}% loadgen={fmt(res.get('loadgen_cpu_pct'), 0)}%"
        f" errors={res.get('client_errors')}"
    )


def fmt(v: float | None, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def top_functions(raw: Path, limit: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    return {
        "samples": samples,
        "self": [(f, round(100 * c / samples, 1)) for f, c in own.most_common(limit)],
        "total": [(f, round(100 * c / samples, 1)) for f, c in total.most_common(limit)],
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in (
        "django",
        "channels",
        "daphne",
        "twisted",
        "pycrdt",
        "websockets",
        "markdown-it-py",
        "nh3",
        "django-htmx",
        "asgiref",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        out["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except OSError:
        out["node"] = None
    return out


def machine() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }


def git_state() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except OSError:
            return ""

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny N and K, seconds")
    ap.add_argument("--only", default="", help="comma-separated cases: " + ",".join(ALL_CASES))
    ap.add_argument("--skip", default="", help="comma-separated cases to leave out")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3; quick 1)")
    ap.add_argument("--profile", action="store_true", help="py-spy the server of every case")
    ap.add_argument("--peer-servers", default="node,channels,channels-cap100k")
    ap.add_argument("--capacity-max", type=int, default=800)
    ap.add_argument(
        "--unload-wait",
        type=float,
        default=40.0,
        help="seconds to wait for rooms to unload (TANDEM_ROOM_IDLE_SECONDS=30)",
    )
    ap.add_argument("--outdir", default=None, help="default: bench/results/<time>")
    ap.add_argument("--note", default="", help="stored with the results (e.g. 'quiet machine')")
    args = ap.parse_args()
    cases = [c for c in (args.only.split(",") if args.only else ALL_CASES) if c]
    skip = set(filter(None, args.skip.split(",")))
    if args.quick and not args.only:
        skip.add("peers")  # the peers' matrix is fixed at 10 s per cell
    unknown = set(cases) - set(ALL_CASES)
    if unknown:
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}")
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    outdir = Path(args.outdir) if args.outdir else HERE / "results" / stamp
    opts = Options(
        outdir=outdir,
        quick=args.quick,
        reps=args.reps or (1 if args.quick else 3),
        profile=args.profile,
        peer_servers=args.peer_servers.split(","),
        capacity_max=args.capacity_max,
        unload_wait=args.unload_wait,
    )
    bench = Bench(opts)
    meta = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "argv": sys.argv,
        "quick": args.quick,
        "reps": opts.reps,
        "note": args.note,
        "machine": machine(),
        "versions": versions(),
        "git": git_state(),
        "repo": os.environ.get("TANDEM_BENCH_REPO", str(REPO)),
        "cases": [c for c in cases if c not in skip],
    }
    bench.save("meta", meta)
    bench.log(f"results in {outdir}")
    failed = []
    for case in cases:
        if case in skip:
            continue
        bench.log(f"== {case}")
        t = time.monotonic()
        try:
            getattr(bench, case)()
        except Exception as error:  # a case that breaks must not hide the others
            failed.append(case)
            bench.log(f"{case} FAILED: {error!r}")
        bench.log(f"== {case} took {time.monotonic() - t:.0f} s")
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    failed += bench.failed
    meta["failed"] = failed
    bench.save("meta", meta)
    if bench.template is not None:
        shutil.rmtree(bench.template.parent, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
