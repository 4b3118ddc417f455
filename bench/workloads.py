"""The benchmark's special scenarios beyond the editing matrix: large documents (page load,
first sync, preview latency, server time per keystroke) and memory. Each one drives a
running server through the same protocol client as tandem_load.py, bounded in time."""

from __future__ import annotations

import asyncio
import bisect
import random
import re
import secrets
import statistics
from collections.abc import Callable
from typing import Any

from bench.tandem_load import (
    Client,
    create_document,
    get_document,
    http_request,
    now,
    proc_cpu_s,
    proc_rss_kib,
    summarize,
)

WORDS = [
    "tandem",
    "editor",
    "shared",
    "text",
    "merge",
    "replica",
    "shadow",
    "version",
    "answer",
    "commit",
    "preview",
    "block",
    "latency",
    "server",
    "client",
    "network",
    "keystroke",
    "document",
    "markdown",
    "paragraph",
    "heading",
    "list",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
]


def markdown_document(size: int, seed: int = 7) -> str:
    """A deterministic ASCII Markdown document of `size` characters: headings, paragraphs,
    lists and code blocks, separated by blank lines, like real notes."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    section = 0
    while total < size:
        kind = rng.random()
        if kind < 0.08:
            section += 1
            block = f"## Section {section}: {' '.join(rng.choices(WORDS, k=4))}"
        elif kind < 0.18:
            block = "\n".join(f"- {' '.join(rng.choices(WORDS, k=8))}" for _ in range(4))
        elif kind < 0.22:
            lines = [f"def f{section}_{i}(x): return x + {i}" for i in range(4)]
            block = "```python\n" + "\n".join(lines) + "\n```"
        else:
            words = rng.choices(WORDS, k=rng.randint(40, 90))
            block = " ".join(words).capitalize() + "."
        parts.append(block)
        total += len(block) + 2
    text = "\n\n".join(parts)
    return text[:size].rstrip() + "\n"


def _cid(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


async def _open(
    ws_base: str,
    doc_id: str,
    text: str,
    version: int,
    name: str,
    *,
    on_html: Callable[[str, float], None] | None = None,
    timeout: float = 60.0,
) -> Client:
    client = Client(
        f"{ws_base}/ws/d/{doc_id}/", _cid("bench"), name, text, version, on_html=on_html
    )
    await client.open(timeout)
    try:
        await asyncio.wait_for(client.synced.wait(), timeout)
    except TimeoutError:
        await client.close()
        raise RuntimeError(
            f"no answer to the first sync within {timeout} s: {client.errors}"
        ) from None
    return client


async def _wait(predicate: Callable[[], bool], timeout: float, step: float = 0.005) -> bool:
    deadline = now() + timeout
    while not predicate():
        if now() > deadline:
            return False
        await asyncio.sleep(step)
    return True


# --------------------------------------------------------------------------- page load
def time_get(url: str) -> tuple[float, int, int]:
    """Seconds to fetch a whole page, its status and its size."""
    t = now()
    status, body = http_request("GET", url, timeout=120)
    return now() - t, status, len(body)


async def page_and_first_sync(
    base_url: str, text: str, reps: int = 5, label: str = ""
) -> dict[str, Any]:
    """Page load (GET /d/<id>/, whole body) and the first sync of an editor: connect,
    hello, an empty sync and its answer, with the room cold (first editor: the document
    is loaded from storage) and warm (another editor is already in it)."""
    ws_base = "ws" + base_url[len("http") :]
    doc_id = await asyncio.to_thread(create_document, base_url, f"large {label}", text)
    out: dict[str, Any] = {"doc_chars": len(text), "doc_id": doc_id}
    pages = [await asyncio.to_thread(time_get, f"{base_url}/d/{doc_id}/") for _ in range(reps)]
    out["page_status"] = pages[0][1]
    out["page_bytes"] = pages[0][2]
    out["page_load_first_ms"] = pages[0][0] * 1e3
    out["page_load_median_ms"] = statistics.median(p[0] for p in pages) * 1e3
    t = now()
    text0, version = await asyncio.to_thread(get_document, base_url, doc_id)
    out["api_get_ms"] = (now() - t) * 1e3
    assert text0 == text, "the API does not return the text it was given"

    async def first_sync() -> tuple[float, float | None, int, Client]:
        first_html: list[tuple[float, int]] = []
        t0 = now()
        client = await _open(
            ws_base,
            doc_id,
            text0,
            version,
            "Sync",
            on_html=lambda frame, t: first_html.append((t, len(frame))),
        )
        t_ack = now() - t0
        await _wait(lambda: bool(first_html), 10)
        t_html = first_html[0][0] - t0 if first_html else None
        return t_ack, t_html, first_html[0][1] if first_html else 0, client

    cold, cold_html, html_bytes, c1 = await first_sync()
    warm_runs = []
    extra = []
    for _ in range(reps):
        w, wh, _, c = await first_sync()
        warm_runs.append((w, wh))
        extra.append(c)
    out["first_sync_cold_ms"] = cold * 1e3
    out["first_preview_cold_ms"] = cold_html * 1e3 if cold_html is not None else None
    out["first_preview_bytes"] = html_bytes
    out["first_sync_warm_median_ms"] = statistics.median(w for w, _ in warm_runs) * 1e3
    warm_html = [wh for _, wh in warm_runs if wh is not None]
    out["first_preview_warm_median_ms"] = statistics.median(warm_html) * 1e3 if warm_html else None
    await asyncio.gather(c1.close(), *(c.close() for c in extra))
    return out


# --------------------------------------------------------------------------- preview
async def preview_latency(
    base_url: str, text: str, reps: int = 20, label: str = ""
) -> dict[str, Any]:
    """A types a short unique word (one edit) into a paragraph in the middle of the
    document; B is another editor. Preview latency = A's keystroke until B receives the
    HTML fragment holding it; text latency = until B's shadow holds it."""
    ws_base = "ws" + base_url[len("http") :]
    doc_id = await asyncio.to_thread(create_document, base_url, f"preview {label}", text)
    text0, version = await asyncio.to_thread(get_document, base_url, doc_id)
    seen: dict[str, tuple[float, int, bool]] = {}
    token_re = re.compile(r"zq\d{4}x")

    def watch(frame: str, t: float) -> None:
        for token in token_re.findall(frame):
            if token not in seen:
                seen[token] = (t, len(frame), '<section id="b-' in frame)

    a = await _open(ws_base, doc_id, text0, version, "Typist")
    b = await _open(ws_base, doc_id, text0, version, "Reader", on_html=watch)
    await asyncio.sleep(0.5)
    middle = text0.find("\n\n", len(text0) // 2)
    pos = middle if middle > 0 else len(text0)
    lat_preview: list[float] = []
    lat_text: list[float] = []
    frame_bytes: list[int] = []
    per_block = 0
    missed = 0
    rng = random.Random(3)
    for i in range(reps):
        token = f" zq{i:04d}x"
        a.type_text(token, at=pos)
        t_key = a.t_key[-1]
        await a.send_sync()
        pos += len(token)
        word = token.strip()
        got = await _wait(lambda: word in seen, 5.0)  # noqa: B023 - awaited right here
        if not got:
            missed += 1
            continue
        t_html, size, block = seen[word]
        lat_preview.append(t_html - t_key)
        frame_bytes.append(size)
        per_block += block
        await _wait(lambda: len(a.commit) > i, 5.0)  # noqa: B023 - awaited right here
        if len(a.commit) > i:
            k = bisect.bisect_left(b.versions, a.commit[i])
            if k < len(b.versions):
                lat_text.append(b.version_t[k] - t_key)
        await asyncio.sleep(0.2 + 0.2 * rng.random())
    out: dict[str, Any] = {"doc_chars": len(text0), "reps": reps, "missed": missed}
    summarize(lat_preview, "preview", out)
    summarize(lat_text, "text", out)
    out["fragment_bytes_median"] = statistics.median(frame_bytes) if frame_bytes else None
    out["fragments_per_block"] = per_block
    out["client_errors"] = a.errors[:3] + b.errors[:3]
    await asyncio.gather(a.close(), b.close())
    return out


# --------------------------------------------------------------------------- CPU
async def keystroke_cpu(
    base_url: str,
    server_pid: int,
    text: str,
    keystrokes: int = 500,
    rate: float = 50.0,
    where: str = "end",
    idle_s: float = 3.0,
    label: str = "",
) -> dict[str, Any]:
    """Server CPU time per keystroke: one editor types `keystrokes` characters at `rate`
    per second at the end (or in the middle) of the document; the server's utime+stime
    over the run, minus its idle rate over the same time, divided by the keystrokes."""
    ws_base = "ws" + base_url[len("http") :]
    doc_id = await asyncio.to_thread(create_document, base_url, f"cpu {label}", text)
    text0, version = await asyncio.to_thread(get_document, base_url, doc_id)
    a = await _open(ws_base, doc_id, text0, version, "Typist")
    await asyncio.sleep(1.0)
    c0, t0 = proc_cpu_s(server_pid), now()
    await asyncio.sleep(idle_s)
    c1, t1 = proc_cpu_s(server_pid), now()
    assert c0 is not None and c1 is not None
    idle_rate = (c1 - c0) / (t1 - t0)
    pos = len(text0) if where == "end" else max(0, text0.find("\n\n", len(text0) // 2))
    start = now()
    for i in range(keystrokes):
        delay = start + i / rate - now()
        if delay > 0:
            await asyncio.sleep(delay)
        a.type_text("k", at=pos + i)
        if not a.in_flight:
            await a.send_sync()
    await _wait(lambda: a.idle and len(a.commit) >= keystrokes, 30.0)
    await asyncio.sleep(0.5)  # the throttled preview of the last change
    c2, t2 = proc_cpu_s(server_pid), now()
    assert c2 is not None
    busy = (c2 - c1) - idle_rate * (t2 - t1)
    out: dict[str, Any] = {
        "doc_chars": len(text0),
        "where": where,
        "keystrokes": keystrokes,
        "rate": rate,
        "requests": a.requests_with_ops,
        "idle_cpu_pct": 100 * idle_rate,
        "run_s": t2 - t1,
        "server_cpu_s": c2 - c1,
        "server_ms_per_keystroke": 1e3 * busy / keystrokes,
        "acked": len(a.commit),
        "client_errors": a.errors[:3],
    }
    summarize(a.ack_lat, "ack", out)
    final, _ = await asyncio.to_thread(get_document, base_url, doc_id)
    out["converged"] = final == a.local and len(final) == len(text0) + keystrokes
    await a.close()
    return out


# --------------------------------------------------------------------------- memory
async def _settled_rss(pid: int, seconds: float) -> int:
    """RSS after `seconds` of quiet (the smallest of the last few samples)."""
    samples: list[int] = []
    end = now() + seconds
    while now() < end:
        samples.append(proc_rss_kib(pid) or 0)
        await asyncio.sleep(0.1)
    return min(samples[-5:]) if samples else proc_rss_kib(pid) or 0


async def _connect_stages(
    ws_base: str,
    server_pid: int,
    doc_id: str,
    text: str,
    version: int,
    editors: list[Client],
    stages: list[int],
    settle_s: float,
) -> list[dict[str, Any]]:
    """Connect idle editors, 10 at a time, up to each stage; the RSS at each stage."""
    out = []
    for stage in stages:
        t = now()
        while len(editors) < stage:
            batch = range(len(editors), min(len(editors) + 10, stage))
            editors += await asyncio.gather(
                *(_open(ws_base, doc_id, text, version, f"Idle {j}") for j in batch)
            )
        connect_s = now() - t
        html = sum(c.html_bytes for c in editors)
        rss = await _settled_rss(server_pid, settle_s)
        out.append(
            {"editors": stage, "rss_kib": rss, "connect_s": connect_s, "html_bytes_rx": html}
        )
    return out


async def memory(
    base_url: str,
    server_pid: int,
    idle_editors: int = 200,
    open_docs: int = 100,
    doc_chars: int = 1000,
    unload_wait_s: float = 40.0,
    settle_s: float = 3.0,
) -> dict[str, Any]:
    """Server RSS per open document (one editor in each of many small documents), per idle
    connection (idle editors in one small document, each having said hello and synced
    once, as a page does; connected in stages to show whether the cost per connection
    grows with N), after everyone left and the rooms unloaded (TANDEM_ROOM_IDLE_SECONDS,
    30 s by default), and after the same editors came back once more (RSS that grows
    again by as much is a leak; RSS that stays is memory the allocator kept for reuse)."""
    ws_base = "ws" + base_url[len("http") :]
    text = markdown_document(doc_chars, seed=11)
    out: dict[str, Any] = {"idle_editors": idle_editors, "open_docs": open_docs}
    doc_id = await asyncio.to_thread(create_document, base_url, "memory", text)
    others = [
        await asyncio.to_thread(create_document, base_url, f"memory {d}", text)
        for d in range(open_docs)
    ]
    text0, version = await asyncio.to_thread(get_document, base_url, doc_id)
    out["rss_start_kib"] = await _settled_rss(server_pid, settle_s)
    # 1. open documents, one editor each
    doc_editors: list[Client] = []
    for i in range(0, open_docs, 10):
        batch = others[i : i + 10]
        doc_editors += await asyncio.gather(
            *(_open(ws_base, d, text0, version, "Solo") for d in batch)
        )
    out["rss_open_docs_kib"] = await _settled_rss(server_pid, settle_s)
    out["kib_per_open_document"] = (out["rss_open_docs_kib"] - out["rss_start_kib"]) / open_docs
    # 2. idle editors in one more document
    stages = sorted({max(1, idle_editors // 4), max(1, idle_editors // 2), idle_editors})
    editors: list[Client] = [await _open(ws_base, doc_id, text0, version, "First")]
    out["rss_one_editor_kib"] = await _settled_rss(server_pid, settle_s)
    t = now()
    out["stages"] = await _connect_stages(
        ws_base, server_pid, doc_id, text0, version, editors, [s + 1 for s in stages], settle_s
    )
    out["connect_idle_s"] = now() - t
    out["rss_idle_editors_kib"] = out["stages"][-1]["rss_kib"]
    out["html_bytes_rx_during_connect"] = out["stages"][-1]["html_bytes_rx"]
    out["kib_per_idle_connection"] = (
        out["rss_idle_editors_kib"] - out["rss_one_editor_kib"]
    ) / idle_editors
    first_stage = out["stages"][0]
    out["kib_per_idle_connection_first_stage"] = (
        first_stage["rss_kib"] - out["rss_one_editor_kib"]
    ) / (first_stage["editors"] - 1)
    everyone = [*editors, *doc_editors]
    out["client_errors"] = [e for c in everyone for e in c.errors][:5]
    # 3. everyone leaves
    await asyncio.gather(*(c.close() for c in everyone))
    out["rss_after_close_kib"] = await _settled_rss(server_pid, settle_s)
    if unload_wait_s > 0:
        await asyncio.sleep(unload_wait_s)
        out["rss_after_unload_kib"] = await _settled_rss(server_pid, settle_s)
        out["unload_wait_s"] = unload_wait_s
        out["rss_after_unload_over_start_kib"] = out["rss_after_unload_kib"] - out["rss_start_kib"]
        # 4. the same idle editors once more
        again: list[Client] = []
        text1, version1 = await asyncio.to_thread(get_document, base_url, doc_id)
        round2 = await _connect_stages(
            ws_base, server_pid, doc_id, text1, version1, again, [idle_editors + 1], settle_s
        )
        out["rss_second_round_kib"] = round2[0]["rss_kib"]
        out["second_round_growth_kib"] = round2[0]["rss_kib"] - out["rss_after_unload_kib"]
        await asyncio.gather(*(c.close() for c in again))
    return out
