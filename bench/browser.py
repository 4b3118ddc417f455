#!/usr/bin/env python
"""The editing surface in a real browser: two Chromium pages on one document.

Measured with the pages' own clocks (performance.timeOrigin + performance.now()):
  remote   a keystroke in page A (its keydown's timestamp) until page B's editor holds it
           (B's applyRemote returned), and until B's next frame after that ("painted")
  typist   A's keydown until A's next frame has been produced (requestAnimationFrame, then
           a task: the frame that shows the character)
  open     navigation start until #status says connected (the socket is open and the
           editor mounted and attached to it), plus the page's transferred bytes

Keystrokes are sequential (the next one once B holds the previous one, then 30 ms), so
each number is one keystroke's own path, not a queue; typing starts 2 s after A's caret
jumped to the end of the document. B is a co-editor, its caret at the top of the
text; --reader measures a B with nothing focused or selected instead (CodeMirror then
reads the page's selection on every change, which costs a layout). Bounded: --keys
keystrokes and --opens page loads per size, each wait capped at 10 s, the whole run by
--budget seconds.

  .venv/bin/python -m bench.browser                      # 1 KB and 1 MB, this checkout
  .venv/bin/python -m bench.browser --repo before=/tmp/before --repo after=.   # compare
  .venv/bin/python -m bench.browser --sizes 1000 --keys 20 --opens 2     # quick
  .venv/bin/python -m bench.browser --delay-ms 5    # the pages a LAN away (10 ms round trip)

With several --repo, every server runs at once and the measurements alternate between
them, size by size: the opens one by one, then the typing in --rounds runs per checkout,
each round begun by the next checkout (whichever types second tends to look slower), so a
busy machine weighs on each alike.
The documents are bench/workloads.py's Markdown (headings, paragraphs, lists, code).
Prints a Markdown table and writes JSON to bench/results/browser.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lan import Lan
from bench.server import REPO, TandemServer
from bench.workloads import markdown_document

# Chromium's own background traffic is refused on a closed network, and as root it needs
# --no-sandbox; none of these change what a page does. (e2e/conftest.py uses them too.)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Installed before any page script: the page's own timestamps of keystrokes, remote
# changes reaching the editor, frames after each, and the moment it was connected.
INSTRUMENT = """
window.__bench = {keys: [], typed: [], remote: [], remotePaint: [], connected: null};
const now = () => performance.timeOrigin + performance.now();
const afterFrame = (push) => requestAnimationFrame(() => setTimeout(() => push(now())));
document.addEventListener('keydown', (e) => {
  if (e.key.length !== 1) return;
  const t = performance.timeOrigin + e.timeStamp;
  window.__bench.keys.push(t);
  afterFrame((p) => window.__bench.typed.push(p - t));
}, true);
new MutationObserver(() => {
  const s = document.getElementById('status');
  if (s && s.dataset.state === 'connected' && window.__bench.connected === null) {
    window.__bench.connected = performance.now();
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-state']});
"""

WRAP_REMOTE = """() => {
  const editor = window.tandem.editor;
  const apply = editor.applyRemote;
  editor.applyRemote = function (...args) {
    const result = apply.apply(this, args);
    const t = performance.timeOrigin + performance.now();
    window.__bench.remote.push(t);
    requestAnimationFrame(() => setTimeout(() => window.__bench.remotePaint.push(
      performance.timeOrigin + performance.now())));
    return result;
  };
}"""


SETTLE_MS = 2000


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(pct(values, 0.5), 1),
        "p95": round(pct(values, 0.95), 1),
        "max": round(max(values), 1) if values else float("nan"),
        "mean": round(statistics.fmean(values), 1) if values else float("nan"),
    }


def create_document(base_url: str, text: str) -> str:
    body = json.dumps({"title": "bench", "text": text}).encode()
    req = urllib.request.Request(
        base_url + "/api/documents/",
        data=body,
        headers={"Content-Type": "application/json", "Referer": base_url + "/"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as response:
        return str(json.loads(response.read())["id"])


def open_page(browser: Browser, url: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(INSTRUMENT)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(url)
    # A function, not an expression string: Playwright evals strings, which the CSP forbids.
    page.wait_for_function(
        "() => window.__bench.connected !== null && window.tandem", timeout=20_000
    )
    return page


def measure_open(browser: Browser, url: str, opens: int, deadline: float) -> dict[str, Any]:
    times: list[float] = []
    warm: list[float] = []
    sizes: list[int] = []
    for _ in range(opens):
        if time.monotonic() > deadline:
            break
        page = open_page(browser, url)
        times.append(page.evaluate("window.__bench.connected"))
        nav = page.evaluate(
            "(() => { const n = performance.getEntriesByType('navigation')[0];"
            " const r = performance.getEntriesByType('resource');"
            " return n.transferSize + r.reduce((s, e) => s + e.transferSize, 0); })()"
        )
        sizes.append(int(nav))
        # Opened again in the same browser: modules come from the HTTP cache (hashed URLs
        # are cached for ever) and V8's code cache, as for anyone's second visit.
        page.goto(url)
        page.wait_for_function("() => window.__bench.connected !== null && window.tandem")
        warm.append(page.evaluate("window.__bench.connected"))
        page.context.close()
    return {
        "open_ms": summary(times),
        "warm_open_ms": summary(warm),
        "transfer_bytes": max(sizes) if sizes else 0,
    }


def measure_typing(
    browser: Browser, url: str, keys: int, deadline: float, reader: bool = False
) -> dict[str, Any]:
    a = open_page(browser, url)
    b = open_page(browser, url)
    b.evaluate(WRAP_REMOTE)
    if not reader:
        # B is a co-editor: its caret in the text (at the top), as when both people type.
        b.locator("#editor").focus()
        b.keyboard.press("Control+Home")
    a.locator("#editor").focus()
    a.keyboard.press("Control+End")
    # Settle: CodeMirror parses the Markdown up to the end in the background (slices of
    # up to 100 ms) after the jump; these numbers are for typing once that is done.
    a.wait_for_timeout(SETTLE_MS)
    for i in range(keys):
        if time.monotonic() > deadline:
            break
        a.keyboard.press("abcdefghij"[i % 10])
        b.wait_for_function(f"() => window.__bench.remote.length >= {i + 1}", timeout=10_000)
        a.wait_for_timeout(30)  # lets both pages paint; the next keystroke starts idle
    a.wait_for_timeout(300)
    ka = a.evaluate("window.__bench")
    kb = b.evaluate("window.__bench")
    n = min(len(ka["keys"]), len(kb["remote"]), len(kb["remotePaint"]))
    same = a.evaluate("document.getElementById('editor').value") == b.evaluate(
        "document.getElementById('editor').value"
    )
    a.context.close()
    b.context.close()
    return {
        "remote": [kb["remote"][i] - ka["keys"][i] for i in range(n)],
        "painted": [kb["remotePaint"][i] - ka["keys"][i] for i in range(n)],
        "typist": list(ka["typed"]),
        "converged": same,
    }


def typing_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The samples of several typing runs of one case, together."""
    return {
        "remote_ms": summary([x for r in runs for x in r["remote"]]),
        "remote_painted_ms": summary([x for r in runs for x in r["painted"]]),
        "typist_to_frame_ms": summary([x for r in runs for x in r["typist"]]),
        "converged": all(r["converged"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repo",
        action="append",
        default=[],
        help="label=checkout whose server to measure (repeatable; default after=this one)",
    )
    parser.add_argument("--sizes", default="1000,1000000", help="document sizes in bytes")
    parser.add_argument("--keys", type=int, default=60, help="keystrokes per size")
    parser.add_argument("--opens", type=int, default=5, help="page loads per size")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="typing runs per size and checkout, alternating between checkouts (the keys "
        "are shared out among them): the one measured second is not always the same",
    )
    parser.add_argument("--budget", type=float, default=600, help="seconds for the whole run")
    parser.add_argument(
        "--reader",
        action="store_true",
        help="page B only reads (nothing focused or selected) instead of having its caret in "
        "the text",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0,
        help="pages reach each server through a forwarder that holds every chunk this long "
        "each way (bench/lan.py): 5 is a 10 ms round trip, as on a LAN; 0 is loopback",
    )
    parser.add_argument("--chromium", default=os.environ.get("TANDEM_CHROMIUM", ""))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "browser.json")
    args = parser.parse_args()
    repos = dict(r.split("=", 1) for r in args.repo) or {"after": str(REPO)}
    deadline = time.monotonic() + args.budget
    chromium = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    results: dict[str, Any] = {
        "repos": repos,
        "cpus": os.cpu_count(),
        "b_is": "a reader" if args.reader else "a co-editor (caret at the top)",
        "loadavg_before": os.getloadavg(),
        "cases": {label: {} for label in repos},
    }
    results["delay_ms"] = args.delay_ms
    servers = {label: TandemServer(repo=Path(path)).start() for label, path in repos.items()}
    try:
        with contextlib.ExitStack() as stack, sync_playwright() as p:
            # Where the pages reach each server: itself, or a LAN away.
            page_base = {label: srv.base_url for label, srv in servers.items()}
            if args.delay_ms > 0:
                for label, srv in servers.items():
                    lan = stack.enter_context(Lan(srv.port, args.delay_ms / 1000))
                    page_base[label] = f"http://127.0.0.1:{lan.port}"

            launch: dict[str, Any] = {"args": CHROMIUM_ARGS}
            if chromium:
                launch["executable_path"] = chromium
            browser = p.chromium.launch(**launch)
            for size in [int(s) for s in args.sizes.split(",")]:
                text = markdown_document(size)
                urls = {
                    label: f"{page_base[label]}/d/{create_document(srv.base_url, text)}/"
                    for label, srv in servers.items()
                }
                opens: dict[str, list[dict[str, Any]]] = {label: [] for label in repos}
                for _ in range(args.opens):
                    for label, url in urls.items():
                        opens[label].append(measure_open(browser, url, 1, deadline))
                typing: dict[str, list[dict[str, Any]]] = {label: [] for label in repos}
                per_round = max(1, args.keys // max(1, args.rounds))
                for r in range(max(1, args.rounds)):
                    # Alternate which checkout types first in each round.
                    order = list(urls.items())
                    for label, url in order[r % len(order) :] + order[: r % len(order)]:
                        typing[label].append(
                            measure_typing(browser, url, per_round, deadline, args.reader)
                        )
                for label in urls:
                    times = [o["open_ms"]["p50"] for o in opens[label] if o["open_ms"]["n"]]
                    warm = [o["warm_open_ms"]["p50"] for o in opens[label] if o["open_ms"]["n"]]
                    case = {
                        "open_ms": summary(times),
                        "warm_open_ms": summary(warm),
                        "transfer_bytes": max(
                            (o["transfer_bytes"] for o in opens[label]), default=0
                        ),
                        "loadavg": os.getloadavg(),
                    }
                    case.update(typing_summary(typing[label]))
                    results["cases"][label][str(size)] = case
                    print(f"{label} {size}: {json.dumps(case)}", file=sys.stderr)
            browser.close()
    finally:
        for srv in servers.values():
            srv.stop()
            shutil.rmtree(srv.tmp, ignore_errors=True)
    results["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(
        "| surface | size | open p50 / p95 (ms) | warm open p50 | page bytes | remote p50 / p95 |"
        " remote painted p50 / p95 | typist to frame p50 / p95 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, cases in results["cases"].items():
        for size, c in cases.items():
            print(
                f"| {label} | {size} | {c['open_ms']['p50']} / {c['open_ms']['p95']} |"
                f" {c['warm_open_ms']['p50']} |"
                f" {c['transfer_bytes']} | {c['remote_ms']['p50']} / {c['remote_ms']['p95']} |"
                f" {c['remote_painted_ms']['p50']} / {c['remote_painted_ms']['p95']} |"
                f" {c['typist_to_frame_ms']['p50']} / {c['typist_to_frame_ms']['p95']} |"
            )
    if args.delay_ms:
        print(f"pages a LAN away: {args.delay_ms} ms each way")
    print(f"load average before {results['loadavg_before']}, after {results['loadavg_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
