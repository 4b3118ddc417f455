#!/usr/bin/env python
"""tandem_load -- a bounded, protocol-level load generator for Tandem.

Each simulated editor is a faithful minimal Tandem client (docs/protocol.md):

* its shadow text and version come from `GET /api/documents/<id>/` at the start;
* it sends `{"type": "sync", "cid", "rid", "base", "ops", "action", "sel"}` with at most one
  request in flight; what is typed meanwhile is kept as a pending insert;
* an answer `{"type": "ack", "rid", "version", "delta"}` is applied to the text as sent
  (that is the new shadow) and the pending insert is transformed past the delta; anything
  still unsent goes out at once;
* a push `{"type": "push", "base", "version", "delta"}` is applied to the shadow when
  nothing is in flight and it starts at the client's version, and ignored otherwise;
* a poke is answered with a sync (possibly without ops) when nothing is in flight and
  ignored otherwise; an idle client also syncs every IDLE_SYNC_SECONDS;
* HTML frames (anything not starting with "{") are counted and otherwise ignored.

Workload (the same as ../shared/bench-peers/yload.py): after every client has synced and
the document has been quiet for 0.3 s, every client inserts K single ASCII characters at
the end of its text at R per second (absolute schedule, random phase per client), or as
fast as it can (R = 0, burst: `await asyncio.sleep(0)` between keystrokes).

Latency of insert i of sender S at receiver C (every other client of the document):
  * `lat_*` (primary): from the keystroke (the moment the character entered S's text)
    until C holds it in its shadow. A keystroke typed while S had a request in flight waits
    for the answer; this is the time a user sees, and it is what yload measures for a
    relay server, where every keystroke is sent at once.
  * `lat_send_*`: from just before S's `ws.send` of the request that carried it (yload's
    exact start point) until C holds it.
"C holds it" is decided in two ways:
  * content (exact, used when the document has at most 62 editors): every editor of a
    document types its own letter or digit; a receiver counts, per letter, the characters
    that answers' and pushes' deltas insert into its shadow. A sender's inserts reach a receiver in
    order (each answer brings the shadow to a version of the document, which holds a prefix
    of every sender's inserts), so the receiver holds insert i of S once it has seen i + 1
    of S's letters. A letter seen more than K times, or one's own letter arriving in a
    delta, is counted as an error (duplicated text).
  * version (any number of editors): the answer to the request that carried insert i has
    `version` = the log position of the update holding it (docs/protocol.md); a receiver
    holds the insert from its first answer or push whose version is at least that. When both are
    available, the run records how far they disagree (`method_max_diff_ms`, expected 0).
Durable acknowledgement latency: a request with ops, from just before its `ws.send`
until its answer arrives (the answer is sent only once the edit is committed).

Converged: in every document, all editors' texts are identical, equal to the text
`GET /api/documents/<id>/` returns and of the expected length, within --drain-timeout
seconds after the last keystroke. Every loop is bounded by K, N and explicit timeouts;
only loopback servers are accepted.

Example (a server started with `manage.py serve --port 8000`):
  .venv/bin/python bench/tandem_load.py --base-url http://127.0.0.1:8000 -n 10 -k 100 -r 10
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import random
import secrets
import statistics
import string
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import websockets
from websockets.asyncio.client import ClientConnection, connect

now = time.perf_counter

Op = dict[str, Any]
Delta = list[Op]

# Every editor of a document types its own character; 62 editors per document can be told
# apart by content, beyond that the version method alone decides.
MARKERS = string.ascii_letters + string.digits
# An idle client syncs this often even without a poke (pokes may be dropped).
IDLE_SYNC_SECONDS = 5.0
# Concurrent connection attempts while opening the editors.
CONNECT_BATCH = 10


class ProtocolFailure(RuntimeError):
    """The server said something a correct server never says."""


# --------------------------------------------------------------------------- deltas
def apply_delta(text: str, delta: Delta) -> str:
    """Apply a Quill-style delta to `text` (positions in UTF-16 units; the benchmark's texts
    are ASCII, where they are characters). Raises ProtocolFailure on a malformed delta."""
    out: list[str] = []
    pos = 0
    size = len(text)
    for op in delta:
        if "insert" in op:
            value = op["insert"]
            if not isinstance(value, str) or not value:
                raise ProtocolFailure(f"bad insert {op!r}")
            out.append(value)
            continue
        n = op.get("retain", op.get("delete"))
        if not isinstance(n, int) or n <= 0 or pos + n > size:
            raise ProtocolFailure(f"bad op {op!r} at {pos} of {size}")
        if "retain" in op:
            out.append(text[pos : pos + n])
        pos += n
    if pos == 0:
        return "".join(out) + text if out else text
    out.append(text[pos:])
    return "".join(out)


def map_index(delta: Delta, index: int) -> int:
    """Where `index` of the text before `delta` lands in the text after it. Text inserted
    exactly at `index` goes before it, so what this editor typed at the end of the text
    (and has not sent yet) stays at the end, after what the others appended meanwhile.
    (The browser gives its own unsent text the first place instead and keeps typing at
    its caret; for this workload, typing at the end of the text, the order of concurrent
    characters is the only difference: the requests and their cost are the same.)"""
    old = 0  # position in the old text
    shift = 0  # new position - old position, so far
    for op in delta:
        if old > index:
            break
        if "insert" in op:
            shift += len(op["insert"])
        elif "retain" in op:
            old += op["retain"]
        else:
            n = op["delete"]
            if old + n <= index:
                shift -= n
            else:
                shift -= index - old  # the index falls inside the deleted range
                return index + shift
            old += n
    return index + shift


# --------------------------------------------------------------------------- numbers
def pct(sorted_vals: list[float], p: float) -> float | None:
    """The same nearest-rank percentile as yload.py."""
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, round(p / 100.0 * len(sorted_vals) + 0.5) - 1))
    return sorted_vals[k]


def summarize(values: list[float], prefix: str, out: dict[str, Any]) -> None:
    """p50/p90/p95/p99/max/mean in milliseconds as `<prefix>_p50_ms` and so on."""
    vals = sorted(values)
    for p in (50, 90, 95, 99):
        v = pct(vals, p)
        out[f"{prefix}_p{p}_ms"] = v * 1e3 if v is not None else None
    out[f"{prefix}_max_ms"] = vals[-1] * 1e3 if vals else None
    out[f"{prefix}_mean_ms"] = statistics.fmean(vals) * 1e3 if vals else None
    out[f"{prefix}_count"] = len(vals)


def proc_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        fields = data[data.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def proc_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


# --------------------------------------------------------------------------- HTTP
def check_loopback(url: str) -> None:
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing a non-loopback server: {url}")


def http_request(
    method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 60.0
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def create_document(base_url: str, title: str, text: str) -> str:
    status, body = http_request(
        "POST", f"{base_url}/api/documents/", {"title": title, "text": text}
    )
    if status != 201:
        raise RuntimeError(f"creating a document failed: {status} {body[:300]!r}")
    return str(json.loads(body)["id"])


def get_document(base_url: str, doc_id: str) -> tuple[str, int]:
    status, body = http_request("GET", f"{base_url}/api/documents/{doc_id}/")
    if status != 200:
        raise RuntimeError(f"reading document {doc_id} failed: {status} {body[:300]!r}")
    data = json.loads(body)
    return str(data["text"]), int(data["version"])


# --------------------------------------------------------------------------- the client
class Client:
    """One editor page, as the protocol sees it."""

    def __init__(
        self,
        ws_url: str,
        cid: str,
        name: str,
        text: str,
        version: int,
        *,
        marker: str = "x",
        markers: dict[str, int] | None = None,
        on_rx: Callable[[float], None] | None = None,
        on_html: Callable[[str, float], None] | None = None,
    ) -> None:
        self.ws_url = ws_url
        # [anchor, head] to send instead of a caret at the end (bench/memtrace.py), in the
        # text as it was; clamped to the text sent.
        self.selection: tuple[int, int] | None = None
        self.cid = cid
        self.name = name
        self.marker = marker
        # marker -> index of its sender in the document (content method), or None.
        self.markers = markers
        self.on_rx = on_rx
        self.on_html = on_html
        self.ws: ClientConnection | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()
        self.closing = False
        # sync state
        self.shadow = text
        self.version = version
        self.local = text
        self.sent_text: str | None = None
        self.pending = ""
        self.pending_pos = 0  # in the text the pending insert applies to
        self.in_flight = False
        self.rid = 0
        self.last_sync_t = 0.0
        # per-insert bookkeeping (one insert = one `type_text` call)
        self.typed = 0
        self.sent_upto = 0
        self.flight_lo = 0
        self.flight_hi = 0
        self.flight_t = 0.0
        self.t_key: list[float] = []
        self.t_send: list[float] = []
        self.commit: list[int] = []  # version of the update holding each insert
        # what arrived
        self.versions: list[int] = []
        self.version_t: list[float] = []
        self.arrivals: dict[int, list[float]] = {}  # sender index -> arrival times
        self.own_in_delta = 0
        self.foreign_in_delta = 0
        self.ack_lat: list[float] = []
        self.requests = 0
        self.requests_with_ops = 0
        self.pokes = 0
        self.pokes_answered = 0
        self.carets_frames = 0  # everyone's carets (it sends its own with every sync)
        self.pushes = 0
        self.pushes_applied = 0
        self.json_frames = 0
        self.html_frames = 0
        self.html_bytes = 0
        self.rx_bytes = 0
        self.errors: list[str] = []

    # -- connection ------------------------------------------------------------------
    async def open(self, timeout: float) -> None:
        self.ws = await connect(
            self.ws_url,
            compression=None,
            proxy=None,
            open_timeout=timeout,
            ping_interval=None,
            close_timeout=2,
            max_size=None,
            max_queue=4096,
        )
        self.reader_task = asyncio.create_task(self._reader(), name=f"reader {self.cid}")
        await self.ws.send(json.dumps({"type": "hello", "name": self.name}))
        await self.send_sync()

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(TimeoutError, websockets.WebSocketException, OSError):
                await asyncio.wait_for(self.ws.close(), 3.0)
        if self.reader_task is not None:
            self.reader_task.cancel()
            await asyncio.gather(self.reader_task, return_exceptions=True)

    # -- typing and syncing ----------------------------------------------------------
    def type_text(self, s: str, at: int | None = None) -> None:
        """A keystroke (or a paste): `s` enters the local text at `at` (default: the end)."""
        t = now()
        pos = len(self.local) if at is None else at
        if self.pending:
            # the pending insert keeps its place in its base text; typing continues it
            if pos != self.pending_pos + len(self.pending):
                raise RuntimeError("the load client only types contiguously")
            self.pending += s
        else:
            # local == the base text of a new pending insert (shadow, or the text in flight)
            self.pending_pos = pos
            self.pending = s
        self.local = self.local[:pos] + s + self.local[pos:] if at is not None else self.local + s
        self.t_key.append(t)
        self.typed += 1

    async def send_sync(self) -> None:
        """Send what is pending (maybe nothing) unless a request is in flight."""
        if self.in_flight or self.ws is None or self.closing:
            return
        self.in_flight = True
        ops: Delta = []
        if self.pending:
            if self.pending_pos:
                ops.append({"retain": self.pending_pos})
            ops.append({"insert": self.pending})
        self.sent_text = self.local
        self.pending = ""
        self.rid += 1
        self.requests += 1
        self.flight_lo, self.flight_hi = self.sent_upto, self.typed
        self.sent_upto = self.typed
        caret = len(self.local)
        sel = [caret, caret]
        if self.selection is not None:
            sel = [min(i, caret) for i in self.selection]
        message = json.dumps(
            {
                "type": "sync",
                "cid": self.cid,
                "rid": self.rid,
                "base": self.version,
                "ops": ops,
                "action": "",
                "sel": sel,
            },
            ensure_ascii=False,
        )
        t = now()
        self.flight_t = self.last_sync_t = t
        if ops:
            self.requests_with_ops += 1
            self.t_send.extend([t] * (self.flight_hi - self.flight_lo))
        try:
            await self.ws.send(message)
        except websockets.ConnectionClosed as error:
            if not self.closing:
                self.errors.append(f"send failed: {error!r}")

    def _on_ack(self, message: dict[str, Any], t: float) -> None:
        if not self.in_flight or message.get("rid") != self.rid or self.sent_text is None:
            raise ProtocolFailure(f"unexpected answer {message!r} (rid {self.rid})")
        delta: Delta = message["delta"]
        version = message["version"]
        if not isinstance(version, int) or not isinstance(delta, list):
            raise ProtocolFailure(f"malformed answer {message!r}")
        self._advance(self.sent_text, version, delta, t)
        self.sent_text = None
        self.in_flight = False
        if self.flight_hi > self.flight_lo:
            self.ack_lat.append(t - self.flight_t)
            self.commit.extend([version] * (self.flight_hi - self.flight_lo))
        self.synced.set()

    def _on_push(self, message: dict[str, Any], t: float) -> bool:
        """Apply a push if nothing is in flight and it starts at our version."""
        delta, version, base = message.get("delta"), message.get("version"), message.get("base")
        if not isinstance(version, int) or not isinstance(delta, list):
            raise ProtocolFailure(f"malformed push {message!r}")
        if self.in_flight or base != self.version:
            return False
        self._advance(self.shadow, version, delta, t)
        return True

    def _advance(self, old: str, version: int, delta: Delta, t: float) -> None:
        """`delta` turns `old` (the text sent, or the shadow) into the shadow at `version`;
        the pending insert moves past it."""
        shadow = apply_delta(old, delta) if delta else old
        if self.pending:
            pos = map_index(delta, self.pending_pos) if delta else self.pending_pos
            self.local = shadow[:pos] + self.pending + shadow[pos:]
            self.pending_pos = pos
        else:
            self.local = shadow
        self.shadow = shadow
        if self.versions and version < self.versions[-1]:
            self.errors.append(f"version went back from {self.versions[-1]} to {version}")
        self.version = version
        self.versions.append(version)
        self.version_t.append(t)
        if self.markers is not None:
            for op in delta:
                inserted = op.get("insert")
                if inserted:
                    self._count(inserted, t)

    def _count(self, inserted: str, t: float) -> None:
        assert self.markers is not None
        for char, n in Counter(inserted).items():
            sender = self.markers.get(char)
            if sender is None:
                self.foreign_in_delta += n
            elif char == self.marker:
                self.own_in_delta += n
            else:
                self.arrivals.setdefault(sender, []).extend([t] * n)

    async def _reader(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                t = now()
                if self.on_rx is not None:
                    self.on_rx(t)
                if not isinstance(frame, str):
                    self.errors.append("binary frame")
                    continue
                self.rx_bytes += len(frame)
                if not frame.startswith("{"):
                    self.html_frames += 1
                    self.html_bytes += len(frame)
                    if self.on_html is not None:
                        self.on_html(frame, t)
                    continue
                self.json_frames += 1
                message = json.loads(frame)
                kind = message.get("type")
                if kind == "ack":
                    self._on_ack(message, t)
                    if self.pending:
                        await self.send_sync()
                elif kind == "push":
                    self.pushes += 1
                    if self._on_push(message, t):
                        self.pushes_applied += 1
                        if self.pending:
                            await self.send_sync()
                    elif not self.in_flight:
                        await self.send_sync()  # a push from elsewhere: catch up
                elif kind == "poke":
                    self.pokes += 1
                    # like the browser: nothing in flight, and news or something unsent
                    version = message.get("version")
                    stale = isinstance(version, int) and version <= self.version
                    if not self.in_flight and not (stale and not self.pending):
                        self.pokes_answered += 1
                        await self.send_sync()
                elif kind == "carets":
                    self.carets_frames += 1
                elif kind == "error":
                    # The request changed nothing: what it carried is lost to this client.
                    self.errors.append(f"error answer: {message!r}")
                    self.in_flight = False
                    self.sent_text = None
                else:
                    self.errors.append(f"unknown message {message!r}")
        except websockets.ConnectionClosed as error:
            if not self.closing:
                self.errors.append(f"connection closed: {error!r}")
        except ProtocolFailure as error:
            self.errors.append(str(error))
        except Exception as error:
            self.errors.append(f"reader crashed: {error!r}")

    @property
    def idle(self) -> bool:
        return not self.in_flight and not self.pending


# --------------------------------------------------------------------------- a run
@dataclass
class DocGroup:
    """One document and its editors."""

    index: int
    doc_id: str
    text: str
    version: int
    clients: list[Client] = field(default_factory=list)
    unique_markers: bool = True


@dataclass
class LoadConfig:
    base_url: str
    clients: int = 2  # editors per document
    updates: int = 100  # inserts per editor
    rate: float = 10.0  # inserts/s per editor; 0 = burst
    docs: int = 1
    doc_ids: list[str] | None = None  # use these documents instead of creating them
    initial_text: str = ""
    server_pid: int | None = None
    seed: int = 1
    label: str = ""
    connect_timeout: float = 60.0
    settle_max: float = 10.0
    drain_timeout: float = 20.0
    burst_send_timeout: float = 60.0
    # More processes of one Tandem (docs/deploy.md): each document's editors are dealt
    # round-robin over base_url and these; their CPU is measured with the first one's.
    other_urls: list[str] = field(default_factory=list)
    other_pids: list[int] = field(default_factory=list)


class Sampler:
    """Server RSS and the load generator's event-loop lag, every 50 ms (bounded by stop)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.stop = asyncio.Event()
        self.lags: list[float] = []
        self.rss_max = 0

    async def run(self) -> None:
        period = 0.05
        while not self.stop.is_set():
            t = now()
            await asyncio.sleep(period)
            self.lags.append(now() - t - period)
            if self.pid:
                self.rss_max = max(self.rss_max, proc_rss_kib(self.pid) or 0)

    def results(self) -> dict[str, Any]:
        lags = sorted(self.lags)
        return {
            "loop_lag_p50_ms": (pct(lags, 50) or 0) * 1e3,
            "loop_lag_p99_ms": (pct(lags, 99) or 0) * 1e3,
            "loop_lag_max_ms": (lags[-1] if lags else 0) * 1e3,
            "server_rss_sampled_max_kib": self.rss_max,
        }


class LoadRun:
    def __init__(self, cfg: LoadConfig) -> None:
        check_loopback(cfg.base_url)
        self.cfg = cfg
        for url in cfg.other_urls:
            check_loopback(url)
        self.ws_bases = ["ws" + url[len("http") :] for url in [cfg.base_url, *cfg.other_urls]]
        self.token = secrets.token_hex(4)
        self.groups: list[DocGroup] = []
        self.last_rx = now()
        self.first_send: float | None = None
        self.res: dict[str, Any] = {}

    def _rx(self, t: float) -> None:
        self.last_rx = t

    @property
    def clients(self) -> list[Client]:
        return [c for g in self.groups for c in g.clients]

    async def setup(self) -> None:
        cfg = self.cfg
        doc_ids = cfg.doc_ids
        if doc_ids is None:
            doc_ids = []
            for d in range(cfg.docs):
                doc_ids.append(
                    await asyncio.to_thread(
                        create_document, cfg.base_url, f"bench {cfg.label} {d}", cfg.initial_text
                    )
                )
        for d, doc_id in enumerate(doc_ids):
            text, version = await asyncio.to_thread(get_document, cfg.base_url, doc_id)
            group = DocGroup(d, doc_id, text, version, unique_markers=cfg.clients <= len(MARKERS))
            markers = {MARKERS[i]: i for i in range(cfg.clients)} if group.unique_markers else None
            for i in range(cfg.clients):
                group.clients.append(
                    Client(
                        f"{self.ws_bases[(d + i) % len(self.ws_bases)]}/ws/d/{doc_id}/",
                        f"bench-{self.token}-{d}-{i}",
                        f"Bench {d}.{i}",
                        text,
                        version,
                        marker=MARKERS[i % len(MARKERS)],
                        markers=markers,
                        on_rx=self._rx,
                    )
                )
            self.groups.append(group)

    async def connect_all(self) -> None:
        clients = self.clients
        deadline = now() + self.cfg.connect_timeout
        for i in range(0, len(clients), CONNECT_BATCH):
            batch = clients[i : i + CONNECT_BATCH]
            await asyncio.wait_for(
                asyncio.gather(*(c.open(self.cfg.connect_timeout) for c in batch)),
                max(1.0, deadline - now()),
            )
        await asyncio.wait_for(
            asyncio.gather(*(c.synced.wait() for c in clients)), max(1.0, deadline - now())
        )

    async def idle_syncer(self, stop: asyncio.Event) -> None:
        """An idle client syncs every IDLE_SYNC_SECONDS even without a poke."""
        while not stop.is_set():
            await asyncio.sleep(0.25)
            t = now()
            for c in self.clients:
                if not c.in_flight and t - c.last_sync_t > IDLE_SYNC_SECONDS:
                    await c.send_sync()

    async def writer(self, c: Client, t0: float, phase: float) -> None:
        k, rate = self.cfg.updates, self.cfg.rate
        for i in range(k):
            if rate > 0:
                delay = t0 + phase + i / rate - now()
                if delay > 0:
                    await asyncio.sleep(delay)
            c.type_text(c.marker)
            if not c.in_flight:
                await c.send_sync()
            if rate <= 0:
                await asyncio.sleep(0)  # stay cooperative in burst mode

    def converged_now(self) -> bool:
        expected = self.cfg.clients * self.cfg.updates
        for g in self.groups:
            first = g.clients[0].local
            if len(first) != len(g.text) + expected:
                return False
            for c in g.clients:
                if not c.idle or c.sent_upto < self.cfg.updates or c.local != first:
                    return False
        return True

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        res = self.res
        res.update(
            label=cfg.label,
            base_url=cfg.base_url,
            docs=cfg.docs if cfg.doc_ids is None else len(cfg.doc_ids),
            clients=cfg.clients,
            updates_per_client=cfg.updates,
            rate_per_client=cfg.rate,
            server_pid=cfg.server_pid,
            idle_sync_s=IDLE_SYNC_SECONDS,
        )
        pid = cfg.server_pid
        if pid:
            res["server_rss_idle_kib"] = proc_rss_kib(pid)
        sampler = Sampler(pid)
        sampler_task = asyncio.create_task(sampler.run())
        stop_idle = asyncio.Event()
        idle_task: asyncio.Task[None] | None = None
        try:
            await self.setup()
            res["initial_len"] = len(self.groups[0].text) if self.groups else 0
            t_conn = now()
            try:
                await self.connect_all()
            except (TimeoutError, OSError, websockets.WebSocketException) as error:
                synced = sum(c.synced.is_set() for c in self.clients)
                res.update(
                    converged=False,
                    error=f"connecting failed after {now() - t_conn:.1f} s, {synced} of "
                    f"{len(self.clients)} editors synced: {error!r}",
                    connect_sync_s=None,
                )
                return res
            res["connect_sync_s"] = now() - t_conn
            idle_task = asyncio.create_task(self.idle_syncer(stop_idle))
            t_settle = now()
            while now() - self.last_rx < 0.3 and now() - t_settle < cfg.settle_max:
                await asyncio.sleep(0.05)
            res["settle_s"] = now() - t_settle
            await self._measure(sampler)
        finally:
            stop_idle.set()
            sampler.stop.set()
            await sampler_task
            if idle_task is not None:
                await asyncio.gather(idle_task, return_exceptions=True)
            res.update(sampler.results())
            await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        return res

    async def _measure(self, sampler: Sampler) -> None:
        cfg, res = self.cfg, self.res
        pid = cfg.server_pid
        clients = self.clients
        for c in clients:
            c.json_frames = c.html_frames = c.html_bytes = c.rx_bytes = 0
            c.pokes = c.pokes_answered = c.requests = c.requests_with_ops = 0
            c.carets_frames = 0
            c.pushes = c.pushes_applied = 0
        scpu0 = proc_cpu_s(pid) if pid else None
        others0 = [proc_cpu_s(p) for p in cfg.other_pids]
        if pid:
            res["server_rss_after_sync_kib"] = proc_rss_kib(pid)
        cpu0 = os.times()
        rng = random.Random(cfg.seed)
        t0 = now() + 0.05
        writers = [
            asyncio.create_task(self.writer(c, t0, rng.random() / cfg.rate if cfg.rate > 0 else 0))
            for c in clients
        ]
        budget = cfg.updates / cfg.rate + 5.0 if cfg.rate > 0 else cfg.burst_send_timeout
        done, pending = await asyncio.wait(writers, timeout=budget)
        for w in pending:
            w.cancel()
        res["writers_timed_out"] = len(pending)
        writer_errors = [repr(w.exception()) for w in done if w.exception() is not None]
        t_typed = now()
        # Converge: bounded by the drain timeout after the last keystroke.
        while not self.converged_now() and now() - t_typed < cfg.drain_timeout:
            await asyncio.sleep(0.02)
        t_end = now()
        if pid:
            scpu1 = proc_cpu_s(pid)
            res["server_rss_end_kib"] = proc_rss_kib(pid)
            if scpu0 is not None and scpu1 is not None:
                res["server_cpu_s"] = scpu1 - scpu0
                per_process = [scpu1 - scpu0]
                for p, before in zip(cfg.other_pids, others0, strict=True):
                    after = proc_cpu_s(p)
                    if before is not None and after is not None:
                        per_process.append(after - before)
                res["server_cpu_s_per_process"] = per_process
        cpu1 = os.times()
        res["converged_clients"] = self.converged_now()
        res["drain_s"] = t_end - t_typed
        # What the server says the documents hold, compared with every editor's text.
        server_match = True
        final_lens: list[int] = []
        for g in self.groups:
            text, _version = await asyncio.to_thread(get_document, cfg.base_url, g.doc_id)
            final_lens.extend(len(c.local) for c in g.clients)
            if any(c.local != text for c in g.clients):
                server_match = False
        res["server_text_matches"] = server_match
        res["final_len_expected"] = len(self.groups[0].text) + cfg.clients * cfg.updates
        res["final_lens_minmax"] = [min(final_lens), max(final_lens)] if final_lens else None
        res["converged"] = bool(res["converged_clients"] and server_match)
        res["writer_errors"] = writer_errors
        self._latencies(t_typed)
        active = max(self.last_rx - (self.first_send or t0), 1e-9)
        res["active_window_s"] = active
        if "server_cpu_s" in res:
            res["server_cpu_pct"] = 100.0 * res["server_cpu_s"] / active
        res["loadgen_cpu_pct"] = (
            100.0 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / active
        )
        res["requests_total"] = sum(c.requests for c in clients)
        res["requests_with_ops"] = sum(c.requests_with_ops for c in clients)
        res["pokes_total"] = sum(c.pokes for c in clients)
        res["pokes_answered"] = sum(c.pokes_answered for c in clients)
        res["carets_frames"] = sum(c.carets_frames for c in clients)
        res["pushes_total"] = sum(c.pushes for c in clients)
        res["pushes_applied"] = sum(c.pushes_applied for c in clients)
        res["rx_json_frames"] = sum(c.json_frames for c in clients)
        res["rx_html_frames"] = sum(c.html_frames for c in clients)
        res["rx_html_bytes"] = sum(c.html_bytes for c in clients)
        res["rx_bytes_total"] = sum(c.rx_bytes for c in clients)
        errors = [e for c in clients for e in c.errors]
        res["client_errors"] = len(errors)
        res["client_error_samples"] = errors[:5]
        res["duplicated_chars"] = sum(c.own_in_delta for c in clients)
        res["foreign_chars"] = sum(c.foreign_in_delta for c in clients)

    def _latencies(self, t_typed: float) -> None:
        """Keystroke-to-remote latency, computed after the run from what was recorded."""
        cfg, res = self.cfg, self.res
        k = cfg.updates
        lat_key: list[float] = []
        lat_send: list[float] = []
        v_key: list[float] = []
        v_send: list[float] = []
        first_send = min((c.t_send[0] for c in self.clients if c.t_send), default=None)
        last_send = max((c.t_send[-1] for c in self.clients if c.t_send), default=None)
        last_obs = 0.0
        overcount = 0
        max_diff = 0.0
        expected = 0
        content = all(g.unique_markers for g in self.groups)
        for g in self.groups:
            n = len(g.clients)
            expected += n * (n - 1) * k
            for r in g.clients:
                for j, s in enumerate(g.clients):
                    if s is r:
                        continue
                    # version method
                    v_obs: list[float] = []
                    for i, commit in enumerate(s.commit[:k]):
                        pos = bisect.bisect_left(r.versions, commit)
                        if pos < len(r.versions):
                            t = r.version_t[pos]
                            v_obs.append(t)
                            v_key.append(t - s.t_key[i])
                            v_send.append(t - s.t_send[i])
                    if not content:
                        if v_obs:
                            last_obs = max(last_obs, max(v_obs))
                        continue
                    arrivals = r.arrivals.get(j, [])
                    if len(arrivals) > k:
                        overcount += len(arrivals) - k
                    for i, t in enumerate(arrivals[:k]):
                        if i < len(s.t_key):
                            lat_key.append(t - s.t_key[i])
                        if i < len(s.t_send):
                            lat_send.append(t - s.t_send[i])
                        last_obs = max(last_obs, t)
                        if i < len(v_obs):
                            max_diff = max(max_diff, abs(v_obs[i] - t))
        if not content:
            lat_key, lat_send = v_key, v_send
        res["lat_method"] = "content" if content else "version"
        res["method_max_diff_ms"] = max_diff * 1e3 if content else None
        res["version_method_observed"] = len(v_key)
        res["overcounted_arrivals"] = overcount
        res["expected_observations"] = expected
        res["observed_total"] = len(lat_key)
        res["observed_fraction"] = len(lat_key) / expected if expected else 1.0
        res["all_observed"] = len(lat_key) == expected
        res["sent_total"] = sum(len(c.t_send) for c in self.clients)
        self.first_send = first_send
        if first_send is not None and last_send is not None:
            res["send_phase_s"] = last_send - first_send
            res["sends_per_s"] = res["sent_total"] / max(last_send - first_send, 1e-9)
            span = max((last_obs or t_typed) - first_send, 1e-9)
            res["deliveries_per_s"] = len(lat_key) / span
            res["time_to_full_convergence_s"] = (
                last_obs - first_send if res["all_observed"] and last_obs else None
            )
            res["convergence_after_last_send_s"] = (
                last_obs - last_send if res["all_observed"] and last_obs else None
            )
        summarize(lat_key, "lat", res)
        summarize(lat_send, "lat_send", res)
        summarize([t for c in self.clients for t in c.ack_lat], "ack", res)


async def run_load(cfg: LoadConfig, hard_timeout: float = 300.0) -> dict[str, Any]:
    """One bounded load run; returns the results (see the module docstring)."""
    return await asyncio.wait_for(LoadRun(cfg).run(), hard_timeout)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base-url", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--clients", "-n", type=int, default=2, help="editors per document")
    ap.add_argument("--updates", "-k", type=int, default=100, help="inserts per editor")
    ap.add_argument("--rate", "-r", type=float, default=10.0, help="inserts/s per editor; 0=burst")
    ap.add_argument("--docs", type=int, default=1, help="documents, each with --clients editors")
    ap.add_argument("--server-pid", type=int, default=None)
    ap.add_argument("--drain-timeout", type=float, default=20.0)
    ap.add_argument("--connect-timeout", type=float, default=60.0)
    ap.add_argument("--hard-timeout", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default=None, help="write the result JSON here")
    args = ap.parse_args()
    if args.clients < 2 or args.updates < 1:
        raise SystemExit("need >= 2 editors and >= 1 insert")
    cfg = LoadConfig(
        base_url=args.base_url.rstrip("/"),
        clients=args.clients,
        updates=args.updates,
        rate=args.rate,
        docs=args.docs,
        server_pid=args.server_pid,
        seed=args.seed,
        label=args.label,
        drain_timeout=args.drain_timeout,
        connect_timeout=args.connect_timeout,
    )
    res = asyncio.run(run_load(cfg, args.hard_timeout))
    out = json.dumps(res, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(out + "\n")
    print(out)


if __name__ == "__main__":
    main()
