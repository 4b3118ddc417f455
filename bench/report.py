#!/usr/bin/env python
"""Markdown tables (and a latency plot) from one run of bench/run_bench.py.

  .venv/bin/python bench/report.py                    # the newest run in bench/results/
  .venv/bin/python bench/report.py bench/results/X --plot docs/bench-latency.png

Per (server, case) the tables show the MEDIAN over repetitions (p99 also its range), as
../shared/bench-peers/report.py does. Latency percentiles cover observed deliveries only:
where "observed" is under 100 % the run did not converge and they are biased low.
The Markdown goes to stdout and to <run>/report.md; the plot (matplotlib, optional) to
--plot, by default docs/bench-latency.png for a full run and <run>/latency.png otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASE_ORDER = ["n2", "n10", "n30", "burst10x500", "burst3x30"]
SERVER_ORDER = ["tandem", "node", "channels", "channels-cap100k"]
SERVER_LABEL = {
    "tandem": "Tandem (this repository: manage.py serve, one process)",
    "node": "Node @y/websocket-server 0.1.1 (yjs 13)",
    "channels": "Django Channels + pycrdt YjsConsumer (in-memory layer, capacity 100)",
    "channels-cap100k": "the same, in-memory layer capacity 100000",
}
Run = dict[str, Any]


def med(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int) and nd == 0:
        return str(v)
    return f"{v:.{nd}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x" if r >= 0.001 else f"{r:.1e}x"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def newest_run() -> Path:
    runs = sorted(
        (p for p in (HERE / "results").glob("*") if (p / "meta.json").exists()),
        key=lambda p: (p / "meta.json").stat().st_mtime,
    )
    if not runs:
        raise SystemExit("no results in bench/results/: run bench/run first")
    full = [p for p in runs if not p.name.endswith("-quick")]
    return (full or runs)[-1]


class Report:
    def __init__(self, run: Path) -> None:
        self.run = run
        self.meta = load_json(run / "meta.json")
        self.lines: list[str] = []
        self.matrix: dict[tuple[str, str], list[Run]] = defaultdict(list)
        for path in sorted(run.glob("tandem__*__r*.json")):
            d = load_json(path)
            self.matrix[(d["server"], d["case"])].append(d)
        for path in sorted((run / "peers").glob("*__r*.json")):
            d = load_json(path)
            self.matrix[(d["server"], d["case"])].append(d)
        self.capacity = sorted(
            (load_json(p) for p in run.glob("capacity__n*.json")), key=lambda d: d["n"]
        )
        self.manydocs = [load_json(p) for p in sorted(run.glob("manydocs__*.json"))]
        self.large = load_json(run / "large.json") if (run / "large.json").exists() else None
        self.cpu = load_json(run / "cpu.json") if (run / "cpu.json").exists() else None
        self.memory = load_json(run / "memory.json") if (run / "memory.json").exists() else None

    def out(self, line: str = "") -> None:
        self.lines.append(line)

    # -- tables ----------------------------------------------------------------------
    def cell(self, server: str, case: str, key: str) -> float | None:
        return med(d.get(key) for d in self.matrix.get((server, case), []))

    def matrix_table(self) -> None:
        if not self.matrix:
            return
        self.out("### Keystroke-to-remote latency: Tandem and the peers, same workload")
        self.out()
        self.out(
            "| server | case (N x K @ R/s) | reps | converged | observed % | p50 ms | p90 ms "
            "| p99 ms (range) | max ms | full convergence s | server CPU % | loadgen CPU % "
            "| server RSS idle → peak MiB |"
        )
        self.out("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for case in CASE_ORDER:
            for server in SERVER_ORDER:
                rs = self.matrix.get((server, case))
                if not rs:
                    continue
                d0 = rs[0]
                rate = d0["rate_per_client"]
                what = f"{d0['clients']} x {d0['updates_per_client']} @ "
                what += "burst" if rate <= 0 else f"{rate:g}/s"
                conv = sum(1 for d in rs if d["converged"])
                p99s = [d["lat_p99_ms"] for d in rs if d.get("lat_p99_ms") is not None]
                p99r = f" ({min(p99s):.1f}-{max(p99s):.1f})" if len(p99s) > 1 else ""
                tconv = [d.get("time_to_full_convergence_s") for d in rs]
                tconv_s = (
                    f(med(tconv), 2)
                    if all(t is not None for t in tconv)
                    else (
                        f"{f(med(tconv), 2)} ({sum(t is None for t in tconv)} never)"
                        if any(t is not None for t in tconv)
                        else "never"
                    )
                )
                idle = med(d.get("server_rss_idle_kib") for d in rs)
                peak = med(
                    max(d.get("server_rss_sampled_max_kib") or 0, d.get("server_rss_end_kib") or 0)
                    for d in rs
                )
                self.out(
                    f"| {server} | {case} ({what}) | {len(rs)} | {conv}/{len(rs)} "
                    f"| {f(100 * (med(d['observed_fraction'] for d in rs) or 0))} "
                    f"| {f(self.cell(server, case, 'lat_p50_ms'))} "
                    f"| {f(self.cell(server, case, 'lat_p90_ms'))} "
                    f"| {f(self.cell(server, case, 'lat_p99_ms'))}{p99r} "
                    f"| {f(self.cell(server, case, 'lat_max_ms'))} | {tconv_s} "
                    f"| {f(self.cell(server, case, 'server_cpu_pct'), 0)} "
                    f"| {f(self.cell(server, case, 'loadgen_cpu_pct'), 0)} "
                    f"| {f(idle / 1024 if idle else None)} → {f(peak / 1024 if peak else None)} |"
                )
        self.out()
        self.out(
            "Tandem's latency runs from the keystroke (the moment the character entered the "
            "sender's text) to the moment the receiver's shadow holds it; the peers' from just "
            "before `ws.send` (every keystroke is sent at once there, so the two coincide)."
        )
        self.out()
        self.tandem_detail_table()
        self.ratio_table()

    def tandem_detail_table(self) -> None:
        rows = [(c, self.matrix[("tandem", c)]) for c in CASE_ORDER if ("tandem", c) in self.matrix]
        if not rows:
            return
        self.out("### Tandem detail (median over reps)")
        self.out()
        self.out(
            "| case | p50 / p99 ms from keystroke | p50 / p99 ms from ws.send | durable ack "
            "p50 / p99 ms | requests (with ops) | pokes | HTML frames | method check |"
        )
        self.out("|---|---|---|---|---|---|---|---|")
        for case, rs in rows:
            diff = med(d.get("method_max_diff_ms") for d in rs)
            self.out(
                f"| {case} | {f(self.cell('tandem', case, 'lat_p50_ms'))} / "
                f"{f(self.cell('tandem', case, 'lat_p99_ms'))} "
                f"| {f(self.cell('tandem', case, 'lat_send_p50_ms'))} / "
                f"{f(self.cell('tandem', case, 'lat_send_p99_ms'))} "
                f"| {f(self.cell('tandem', case, 'ack_p50_ms'))} / "
                f"{f(self.cell('tandem', case, 'ack_p99_ms'))} "
                f"| {f(self.cell('tandem', case, 'requests_total'), 0)} "
                f"({f(self.cell('tandem', case, 'requests_with_ops'), 0)}) "
                f"| {f(self.cell('tandem', case, 'pokes_total'), 0)} "
                f"| {f(self.cell('tandem', case, 'rx_html_frames'), 0)} "
                f"| {'content = version' if diff == 0 else f'differ by {f(diff)} ms'} |"
            )
        self.out()

    def ratio_table(self) -> None:
        peers = [s for s in SERVER_ORDER[1:] if any(k[0] == s for k in self.matrix)]
        if not peers or not any(k[0] == "tandem" for k in self.matrix):
            return
        self.out("### Ratios: Tandem ÷ peer (below 1 = Tandem faster)")
        self.out()
        head = " | ".join(f"p50 ÷ {p} | p99 ÷ {p} | convergence ÷ {p}" for p in peers)
        self.out(f"| case | {head} |")
        self.out("|---|" + "---|" * (3 * len(peers)))
        for case in CASE_ORDER:
            if ("tandem", case) not in self.matrix:
                continue
            cells = []
            for p in peers:
                conv_ok = all(d["converged"] for d in self.matrix.get((p, case), []))
                note = "" if conv_ok else " (peer lost updates)"
                for key in ("lat_p50_ms", "lat_p99_ms", "time_to_full_convergence_s"):
                    cells.append(
                        ratio(self.cell("tandem", case, key), self.cell(p, case, key)) + note
                    )
            self.out(f"| {case} | " + " | ".join(cells) + " |")
        self.out()

    def capacity_table(self) -> None:
        if not self.capacity:
            return
        summary = self.run / "capacity.json"
        best = load_json(summary)["largest_n_p95_under_100ms"] if summary.exists() else None
        d0 = self.capacity[0]
        self.out(
            f"### Capacity: editors in one document, {d0['updates_per_client']} inserts each "
            f"@ {d0['rate_per_client']:g}/s"
        )
        self.out()
        self.out(f"Largest N with p95 < 100 ms and converged: **{best}**.")
        self.out()
        self.out(
            "| editors | converged | p50 ms | p95 ms | p99 ms | ack p50 / p99 ms | server CPU % "
            "| loadgen CPU % | loadgen loop lag p99 ms | connect+sync s | requests | RSS peak MiB |"
        )
        self.out("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for d in self.capacity:
            self.out(
                f"| {d['n']} | {f(d['converged'])} | {f(d.get('lat_p50_ms'))} "
                f"| {f(d.get('lat_p95_ms'))} | {f(d.get('lat_p99_ms'))} "
                f"| {f(d.get('ack_p50_ms'))} / {f(d.get('ack_p99_ms'))} "
                f"| {f(d.get('server_cpu_pct'), 0)} | {f(d.get('loadgen_cpu_pct'), 0)} "
                f"| {f(d.get('loop_lag_p99_ms'))} | {f(d.get('connect_sync_s'), 1)} "
                f"| {d.get('requests_total')} "
                f"| {f((d.get('server_rss_sampled_max_kib') or 0) / 1024)} |"
            )
        self.out()
        for d in self.capacity:
            if d.get("error"):
                self.out(f"- {d['n']} editors: {d['error']}")
                self.out()
        for d in self.manydocs:
            self.out(
                f"**Many documents**: {d['docs']} documents x {d['clients']} editors, "
                f"{d['updates_per_client']} inserts each @ {d['rate_per_client']:g}/s: "
                f"converged {f(d['converged'])}, p50 {f(d.get('lat_p50_ms'))} ms, p95 "
                f"{f(d.get('lat_p95_ms'))} ms, p99 {f(d.get('lat_p99_ms'))} ms, durable ack "
                f"p50/p99 {f(d.get('ack_p50_ms'))}/{f(d.get('ack_p99_ms'))} ms, server CPU "
                f"{f(d.get('server_cpu_pct'), 0)} %, connect+sync {f(d.get('connect_sync_s'))} s, "
                f"server RSS peak {f((d.get('server_rss_sampled_max_kib') or 0) / 1024)} MiB."
            )
            self.out()

    def large_table(self) -> None:
        if not self.large:
            return
        self.out("### Large documents")
        self.out()
        self.out(
            "| document | page load ms (first / median of 5) | page bytes | API GET ms "
            "| first sync cold / warm ms | first preview cold ms (bytes) | preview latency "
            "p50 / p99 ms | text latency p50 / p99 ms | preview fragment bytes |"
        )
        self.out("|---|---|---|---|---|---|---|---|---|")
        for size, d in self.large.items():
            if "error" in d:
                self.out(f"| {int(size) // 1024} KiB | failed: {d['error'][:200]} |||||||| ")
                continue
            page, prev = d["page"], d["preview"]
            self.out(
                f"| {int(size) // 1024} KiB | {f(page['page_load_first_ms'])} / "
                f"{f(page['page_load_median_ms'])} | {page['page_bytes']} "
                f"| {f(page['api_get_ms'])} | {f(page['first_sync_cold_ms'])} / "
                f"{f(page['first_sync_warm_median_ms'])} | {f(page.get('first_preview_cold_ms'))} "
                f"({page.get('first_preview_bytes')}) | {f(prev.get('preview_p50_ms'))} / "
                f"{f(prev.get('preview_p99_ms'))} | {f(prev.get('text_p50_ms'))} / "
                f"{f(prev.get('text_p99_ms'))} | {f(prev.get('fragment_bytes_median'), 0)} |"
            )
        self.out()

    def cpu_cells(self) -> list[dict[str, Any]]:
        """One row per (document size, typing position): medians over repetitions."""
        groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
        for d in self.cpu or []:
            groups[(d["doc_chars"], d["where"])].append(d)
        rows = []
        for (size, where), ds in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            ok = [d for d in ds if "error" not in d]
            row: dict[str, Any] = {"doc_chars": size, "where": where, "reps": len(ds)}
            if not ok:
                row["error"] = ds[0]["error"]
            else:
                row["ms"] = med(d["server_ms_per_keystroke"] for d in ok)
                row["ms_range"] = (
                    min(d["server_ms_per_keystroke"] for d in ok),
                    max(d["server_ms_per_keystroke"] for d in ok),
                )
                for key in ("ack_p50_ms", "ack_p99_ms", "requests", "keystrokes"):
                    row[key] = med(d.get(key) for d in ok)
                row["converged"] = all(d["converged"] for d in ok)
            rows.append(row)
        return rows

    def cpu_table(self) -> None:
        rows = self.cpu_cells()
        if not rows:
            return
        self.out("### Server CPU time per keystroke (one editor, 50 keystrokes/s)")
        self.out()
        self.out(
            "| document | typing at | reps | requests | server ms / keystroke (range) "
            "| ratio to 1 KiB | durable ack p50 / p99 ms | converged |"
        )
        self.out("|---|---|---|---|---|---|---|---|")
        small = {r["where"]: r for r in rows if r["doc_chars"] <= 2048 and "ms" in r}
        for r in rows:
            size = f"{r['doc_chars'] // 1024} KiB"
            if "error" in r:
                self.out(
                    f"| {size} | {r['where']} | {r['reps']} | failed: {r['error'][:200]} |||||"
                )
                continue
            base = small.get(r["where"])
            lo, hi = r["ms_range"]
            self.out(
                f"| {size} | {r['where']} | {r['reps']} | {f(r['requests'], 0)} "
                f"| {r['ms']:.2f} ({lo:.2f}-{hi:.2f}) "
                f"| {ratio(r['ms'], base['ms'] if base else None)} "
                f"| {f(r.get('ack_p50_ms'))} / {f(r.get('ack_p99_ms'))} | {f(r['converged'])} |"
            )
        self.out()

    def memory_table(self) -> None:
        m = self.memory
        if not m:
            return
        self.out("### Memory (server RSS)")
        self.out()
        self.out("| measure | value |")
        self.out("|---|---|")
        rows: list[tuple[str, float | None]] = [
            ("RSS at start (MiB)", m["rss_start_kib"] / 1024),
            (
                f"RSS with {m['open_docs']} open documents, one editor each (MiB)",
                m["rss_open_docs_kib"] / 1024,
            ),
            ("KiB per open document (with its one editor)", m["kib_per_open_document"]),
            ("RSS with one editor in one more document (MiB)", m["rss_one_editor_kib"] / 1024),
        ]
        for st in m.get("stages", []):
            rows.append(
                (
                    f"RSS with {st['editors'] - 1} more idle editors there (MiB); connecting "
                    f"them took {st['connect_s']:.1f} s and brought the editors "
                    f"{st['html_bytes_rx'] / 1e6:.1f} MB of HTML",
                    st["rss_kib"] / 1024,
                )
            )
        rows += [
            (f"KiB per idle connection (at {m['idle_editors']})", m["kib_per_idle_connection"]),
            ("KiB per idle connection (first stage)", m.get("kib_per_idle_connection_first_stage")),
            ("RSS right after everyone left (MiB)", m["rss_after_close_kib"] / 1024),
        ]
        if "rss_after_unload_kib" in m:
            rows += [
                (
                    f"RSS {m['unload_wait_s']:.0f} s later (rooms unload after 30 s idle) (MiB)",
                    m["rss_after_unload_kib"] / 1024,
                ),
                ("... over the start (MiB)", m["rss_after_unload_over_start_kib"] / 1024),
                (
                    f"RSS after the {m['idle_editors']} idle editors came back (MiB)",
                    m["rss_second_round_kib"] / 1024,
                ),
                ("... growth in that second round (MiB)", m["second_round_growth_kib"] / 1024),
            ]
        for name, value in rows:
            self.out(f"| {name} | {f(value)} |")
        self.out()

    def targets(self) -> None:
        self.out("### Targets of issue 4")
        self.out()
        self.out("| target | measured | met |")
        self.out("|---|---|---|")

        def row(name: str, measured: str, ok: bool | None) -> None:
            self.out(f"| {name} | {measured} | {'-' if ok is None else ('yes' if ok else 'NO')} |")

        tandem_runs = [d for (s, _), rs in self.matrix.items() if s == "tandem" for d in rs]
        all_runs = tandem_runs + self.capacity + self.manydocs
        if all_runs:
            conv = sum(d["converged"] for d in all_runs)
            row("converge in every case", f"{conv}/{len(all_runs)} runs", conv == len(all_runs))
        for case, limit in (("n10", 25.0), ("n30", 100.0)):
            p99 = self.cell("tandem", case, "lat_p99_ms")
            if p99 is not None:
                row(f"p99 ≤ {limit:g} ms at {case[1:]} editors", f"{p99:.1f} ms", p99 <= limit)
        tb = self.cell("tandem", "burst10x500", "time_to_full_convergence_s")
        nb = self.cell("node", "burst10x500", "time_to_full_convergence_s")
        if tb is not None:
            row(
                "burst convergence ≤ 2x Node",
                f"{tb:.2f} s vs {f(nb, 2)} s",
                None if nb is None else tb <= 2 * nb,
            )
        if self.capacity:
            summary = self.run / "capacity.json"
            best = load_json(summary)["largest_n_p95_under_100ms"] if summary.exists() else None
            row(
                "≥ 200 editors in one document at p95 < 100 ms",
                f"{best}",
                best is not None and best >= 200,
            )
        rows = self.cpu_cells()
        for where in ("end", "middle"):
            small = [
                r for r in rows if r["where"] == where and r["doc_chars"] <= 2048 and "ms" in r
            ]
            big = [r for r in rows if r["where"] == where and r["doc_chars"] > 2048]
            if small and big:
                a = small[0]["ms"]
                b = big[0].get("ms")
                row(
                    f"server time per keystroke, {big[0]['doc_chars'] // 1024} KiB <= 2x 1 KiB "
                    f"(typing at the {where})",
                    f"{b:.2f} vs {a:.2f} ms" if b is not None else "1 MiB run failed",
                    None if b is None else b <= 2 * a,
                )
        if self.memory:
            per = self.memory["kib_per_idle_connection"]  # KiB; the target is in kB
            row("≤ 100 KB server memory per idle connection", f"{per:.1f} KiB", per * 1.024 <= 100)
        self.out()

    def build(self) -> str:
        m = self.meta
        mach = m["machine"]
        self.out(f"## Run {self.run.name}")
        self.out()
        self.out(
            f"{m['started']}; {mach['cpus']} x {mach['cpu_model']}, {mach['mem_gib']} GiB RAM, "
            f"Linux {mach['kernel']}; load average at start {mach['loadavg_at_start']}; "
            f"git {m['git']['commit'][:10]}{' (dirty)' if m['git']['dirty'] else ''}; "
            f"reps {m['reps']}{'; QUICK (smoke) run' if m['quick'] else ''}"
            f"{'; note: ' + m['note'] if m.get('note') else ''}."
        )
        self.out()
        self.out("Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".")
        self.out()
        if m.get("failed"):
            self.out(f"**Failed cases: {', '.join(m['failed'])}** (see the run's log).")
            self.out()
        self.targets()
        self.matrix_table()
        self.capacity_table()
        self.large_table()
        self.cpu_table()
        self.memory_table()
        return "\n".join(self.lines) + "\n"

    # -- plot ------------------------------------------------------------------------
    def plot(self, path: Path) -> bool:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no plot", file=sys.stderr)
            return False
        fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
        colors = {"tandem": "C0", "node": "C1", "channels": "C3", "channels-cap100k": "C2"}
        for server in SERVER_ORDER:
            pts: list[tuple[int, float, float, bool]] = []
            for case in ("n2", "n10", "n30"):
                rs = self.matrix.get((server, case))
                if rs:
                    p50 = self.cell(server, case, "lat_p50_ms")
                    p99 = self.cell(server, case, "lat_p99_ms")
                    if p50 is not None and p99 is not None:
                        pts.append((rs[0]["clients"], p50, p99, all(d["converged"] for d in rs)))
            if not pts:
                continue
            pts.sort()
            xs = [p[0] for p in pts]
            c = colors[server]
            ax.plot(xs, [p[1] for p in pts], "-o", color=c, label=f"{server} p50")
            ax.plot(xs, [p[2] for p in pts], "--s", color=c, alpha=0.7, label=f"{server} p99")
            for x, _, p99, ok in pts:
                if not ok:
                    ax.annotate(
                        "lost updates",
                        (x, p99),
                        fontsize=7,
                        color=c,
                        textcoords="offset points",
                        xytext=(4, 4),
                    )
        cap = [
            (d["n"], d["lat_p50_ms"], d["lat_p99_ms"])
            for d in self.capacity
            if d.get("lat_p50_ms") is not None
        ]
        if cap:
            xs = [c[0] for c in cap]
            ax.plot(xs, [c[1] for c in cap], "-^", color="C4", label="tandem p50, 2 inserts/s")
            ax.plot(
                xs,
                [c[2] for c in cap],
                "--v",
                color="C4",
                alpha=0.7,
                label="tandem p99, 2 inserts/s",
            )
        ax.axhline(100, color="grey", lw=0.8, ls=":")
        ax.axhline(25, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("editors in one document (10 inserts/s each, unless marked 2/s)")
        ax.set_ylabel("keystroke-to-remote latency, ms")
        ax.set_title(f"Tandem vs peers, {self.meta['machine']['cpus']} cores, one process")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", nargs="?", default=None, help="a bench/results/<run> folder")
    ap.add_argument("--plot", default=None, help="where to write the PNG")
    args = ap.parse_args()
    run = Path(args.run) if args.run else newest_run()
    report = Report(run)
    text = report.build()
    (run / "report.md").write_text(text)
    print(text)
    if args.plot:
        plot = Path(args.plot)
    elif not report.meta["quick"] and report.matrix:
        plot = REPO / "docs" / "bench-latency.png"
    else:
        plot = run / "latency.png"
    if report.plot(plot):
        print(f"plot: {plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
