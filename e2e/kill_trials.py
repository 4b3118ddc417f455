"""Kill trials: editors burst edits, the process that runs the document is killed with
SIGKILL at a random moment and restarted; every acknowledged edit must be there exactly
once, and nothing twice.

A trial: every editor (tests/sim_client.SimClient, the reference client, on a real
WebSocket) types unique markers ("<e2.137>") as fast as the lockstep protocol lets it;
at a random moment the process that holds the document's room gets SIGKILL. Once its
editors have seen their sockets close, the acknowledged markers are counted; the process
is restarted (same port, same data); before any of them reconnects, the text the server
has stored must hold each acknowledged marker exactly once and no marker twice. Then the
editors reconnect and resend what was in flight exactly as it was (same rid, base and
ops). In most trials the next burst starts once every editor has been answered again; in
a quarter it starts at once, so kills also land while the room loads and resends are
answered. At the end: every marker ever typed is in the
text exactly once, every editor holds that text, and the stored log (its rows, read
straight from the database) is gapless, holds each request once, and replays to it.

    .venv/bin/python -m e2e.kill_trials --trials 500             # one process, SQLite
    .venv/bin/python -m e2e.kill_trials --trials 20 --cluster    # two, PostgreSQL + Redis

The test suite runs the same trials (e2e/test_durability.py), fewer of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import secrets
import shutil
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import websockets
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from collab.protocol import Answer
from e2e.client import HttpClient
from e2e.server import TandemServer
from tests.sim_client import Push, SimClient

MARKER = re.compile(r"<e\d+\.\d+>")
BURST_SECONDS = 0.25  # the longest a burst runs before its kill
TYPE_PAUSE = 0.004  # at most this long between an editor's keystrokes
MAX_KEYS_PER_BURST = 400  # per editor: a bound on every burst
SETTLE_SECONDS = 30.0  # for editors to reconnect, resend and agree at the end
AT_ONCE_SHARE = 0.25  # trials whose burst starts right after the restart, not once ready
READY_SECONDS = 20.0  # for editors to be answered again after a restart
OWNER_SECONDS = 15.0  # for a survivor to take the document over after a kill
CLOSE_SECONDS = 5.0  # for editors to see their sockets close after a kill

Row = tuple[int, bytes, str, int | None, int, int]  # seq, data, client_key, rid, ins, del


# --------------------------------------------------------------------------- editors
class Editor:
    """One editor page: the reference client's state machine on a WebSocket that it
    reconnects (while `may_connect` is set), resending its request in flight as it was."""

    def __init__(self, number: int, url: Callable[[], str], text: str, version: int) -> None:
        self.number = number
        self.url = url
        self.sim = SimClient(
            cid=f"kill-{number}-{secrets.token_hex(6)}", shadow=text, version=version
        )
        self.typed: list[str] = []
        self.acked: set[str] = set()
        self._pending: list[str] = []  # markers typed since the last request
        self._inflight: list[str] = []  # markers of the request in flight
        self._keys = 0
        self.ws: ClientConnection | None = None
        self.may_connect = asyncio.Event()
        self.errors: list[str] = []
        self.notices: list[str] = []  # what the server said it could not do (not saving)
        self.resends = 0
        self.close_codes: list[int | None] = []  # of every socket that closed, in order
        self._task: asyncio.Task[None] | None = None

    @property
    def online(self) -> bool:
        return self.ws is not None

    def start(self) -> None:
        self.may_connect.set()
        self._task = asyncio.get_running_loop().create_task(self._connection())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)

    async def type_marker(self) -> None:
        marker = f"<e{self.number}.{self._keys}>"
        self._keys += 1
        end = len(self.sim.text)
        self.sim.edit(([{"retain": end}] if end else []) + [{"insert": marker}])
        self.typed.append(marker)
        self._pending.append(marker)
        await self.flush()

    async def flush(self, force: bool = False) -> None:
        """Send what was typed (or, with `force`, an empty sync) if nothing is in flight."""
        if self.ws is None or self.sim.inflight is not None:
            return
        if not self._pending and not force:
            return
        request = self.sim.request()
        assert request is not None
        self._inflight, self._pending = self._pending, []
        await self._send(request.encode())

    async def _send(self, message: dict[str, Any]) -> None:
        ws = self.ws
        if ws is None:
            return
        # A socket that just died: the request stays in flight and is resent on reconnect.
        with contextlib.suppress(websockets.ConnectionClosed, OSError):
            await ws.send(json.dumps(message))

    async def _connection(self) -> None:
        while True:
            await self.may_connect.wait()
            try:
                ws = await connect(
                    self.url(),
                    origin=Origin(_origin(self.url())),
                    open_timeout=2,
                    ping_interval=None,
                )
            except (OSError, TimeoutError, websockets.InvalidHandshake):
                await asyncio.sleep(0.05)
                continue
            self.ws = ws
            try:
                if self.sim.inflight is not None:
                    self.resends += 1
                    await self._send(self.sim.inflight.encode())  # exactly as it was
                else:
                    await self.flush()
                async for frame in ws:
                    if isinstance(frame, str) and frame.startswith("{"):
                        await self._receive(json.loads(frame))
            except (websockets.ConnectionClosed, OSError):
                pass
            finally:
                self.ws = None
                self.close_codes.append(ws.close_code)

    async def _receive(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        inflight = self.sim.inflight
        if kind == "ack":
            if inflight is None or msg["rid"] != inflight.rid:
                return
            self.sim.receive(Answer(msg["rid"], msg["version"], msg["delta"]))
            self.acked.update(self._inflight)
            self._inflight = []
            await self.flush()
        elif kind == "push":
            self.sim.receive_push(Push(msg["base"], msg["version"], msg["delta"]))
        elif kind == "poke":
            await self.flush(force=True)
        elif kind == "error":
            self.errors.append(json.dumps(msg))
        elif kind == "notice":
            self.notices.append(msg["message"])

    @property
    def idle(self) -> bool:
        return self.sim.inflight is None and not self._pending


def _origin(ws_url: str) -> str:
    return "http://" + ws_url.split("://", 1)[1].split("/", 1)[0]


# --------------------------------------------------------------------------- targets
class Target(Protocol):
    """The server processes under test and where their document's log is stored."""

    @property
    def servers(self) -> Sequence[TandemServer]: ...

    def owner(self, doc_id: str) -> int | None:
        """The index of the process that holds the document's lease (None: no process
        of ours, e.g. one that was killed)."""
        ...

    def log_rows(self, doc_id: str) -> list[Row]: ...


_ROWS = (
    "SELECT seq, data, client_key, request_id, inserted, deleted "
    "FROM collab_documentupdate WHERE document_id = {} ORDER BY seq"
)


@dataclass
class OneProcess:
    """One `serve` process on SQLite in its data folder (the default deployment)."""

    server: TandemServer

    @property
    def servers(self) -> Sequence[TandemServer]:
        return [self.server]

    def owner(self, doc_id: str) -> int | None:
        return 0

    def log_rows(self, doc_id: str) -> list[Row]:
        path = self.server.data_dir / "tandem.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return [
                (s, bytes(d), c, r, i, x)
                for s, d, c, r, i, x in db.execute(_ROWS.format("?"), [doc_id])
            ]


@dataclass
class Processes:
    """Several processes on one PostgreSQL and one Redis (e2e/cluster.py)."""

    servers: Sequence[TandemServer]
    database_url: str

    def owner(self, doc_id: str) -> int | None:
        import psycopg

        with psycopg.connect(self.database_url) as db:
            row = db.execute(
                "SELECT owner FROM collab_documentlease WHERE document_id = %s", [doc_id]
            ).fetchone()
        pid = int(row[0].split(":")[1]) if row else -1
        for index, server in enumerate(self.servers):
            if server.proc is not None and server.proc.pid == pid:
                return index
        return None

    def log_rows(self, doc_id: str) -> list[Row]:
        import psycopg

        with psycopg.connect(self.database_url) as db:
            rows = db.execute(_ROWS.format("%s"), [doc_id]).fetchall()
        return [(s, bytes(d), c, r, i, x) for s, d, c, r, i, x in rows]


# --------------------------------------------------------------------------- trials
@dataclass
class Figures:
    trials: int = 0
    editors: int = 0
    typed: int = 0  # markers typed, all trials
    acked: int = 0  # of them acknowledged by the end
    checked_after_kills: int = 0  # acknowledged markers checked right after a restart
    inflight_at_kills: int = 0  # requests in flight when a process died
    resent: int = 0  # requests resent after a reconnect (same rid, base and ops)
    lost: int = 0
    doubled: int = 0
    versions: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.trials} kill trials, {self.editors} editors, {self.typed} edits typed, "
            f"{self.acked} acknowledged ({self.checked_after_kills} checked right after a "
            f"restart, {self.inflight_at_kills} requests in flight at a kill, "
            f"{self.resent} resent); "
            f"{self.lost} lost, {self.doubled} doubled; log of {self.versions} versions; "
            f"{self.seconds:.1f} s"
        )


def _api_state(url: str, doc_id: str) -> tuple[str, int]:
    body = HttpClient(url).get(f"/api/documents/{doc_id}/").json()
    return body["text"], body["version"]


def _count(text: str) -> Counter[str]:
    return Counter(MARKER.findall(text))


async def until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


class Team:
    """Editors on one new document, each connected to one of the target's processes."""

    def __init__(self, target: Target, editors: int = 4) -> None:
        self.target = target
        servers = target.servers
        first = servers[0].url
        made = HttpClient(first).post("/api/documents/", json_body={"title": "Durability"})
        self.doc_id: str = made.json()["id"]
        text, version = _api_state(first, self.doc_id)
        self.version = version  # the stored version, as of the last settle()
        self.homes = [i % len(servers) for i in range(editors)]
        self.editors = [
            Editor(i, self._ws_url(home), text, version) for i, home in enumerate(self.homes)
        ]

    def _ws_url(self, home: int) -> Callable[[], str]:
        return lambda: f"ws://127.0.0.1:{self.target.servers[home].port}/ws/d/{self.doc_id}/"

    async def open(self) -> None:
        for editor in self.editors:
            editor.start()
        if not await until(lambda: all(e.online for e in self.editors), 20):
            raise AssertionError("the editors could not connect")

    async def close(self) -> None:
        for editor in self.editors:
            await editor.stop()

    def on(self, process: int) -> list[Editor]:
        return [e for e, home in zip(self.editors, self.homes, strict=True) if home == process]

    def acked(self) -> set[str]:
        return set().union(*(e.acked for e in self.editors))

    def typed(self) -> list[str]:
        return [m for e in self.editors for m in e.typed]

    async def burst(self, seconds: float, rng: random.Random) -> None:
        """Every editor types markers for `seconds` (keys at random short intervals)."""

        async def typist(editor: Editor) -> None:
            end = time.monotonic() + seconds
            for _ in range(MAX_KEYS_PER_BURST):
                if time.monotonic() >= end:
                    return
                await editor.type_marker()
                await asyncio.sleep(rng.uniform(0, TYPE_PAUSE))

        await asyncio.gather(*(typist(e) for e in self.editors))

    def stored(self) -> tuple[str, int]:
        """The text and version the server stored (read through a running process)."""
        url = next(s.url for s in self.target.servers if s.running)
        return _api_state(url, self.doc_id)

    async def settle(self, seconds: float = SETTLE_SECONDS) -> list[str]:
        """Let every editor reconnect, resend and catch up; then check the text and the
        log: the problems found (none: every marker typed is stored exactly once, every
        editor holds the stored text, the log is whole)."""
        problems: list[str] = []
        deadline = time.monotonic() + seconds
        stored, version = "", -1
        while time.monotonic() < deadline:
            for editor in self.editors:
                if editor.online and editor.idle and editor.sim.version != version:
                    await editor.flush(force=True)  # the idle sync that catches up
            await asyncio.sleep(0.1)
            stored, version = await asyncio.to_thread(self.stored)
            if all(
                e.idle and e.sim.version == version and e.sim.text == stored for e in self.editors
            ):
                break
        else:
            problems.append(
                f"the editors did not settle on the stored text (versions "
                f"{[e.sim.version for e in self.editors]} vs {version}, "
                f"idle {[e.idle for e in self.editors]})"
            )
        counts = _count(stored)
        typed = self.typed()
        missing = sorted(m for m in typed if counts[m] == 0)
        doubled = sorted(m for m, n in counts.items() if n > 1)
        unknown = sorted(set(counts) - set(typed))
        if missing or doubled or unknown:
            problems.append(
                f"at the end: missing {missing[:10]} ({len(missing)}), "
                f"doubled {doubled[:10]}, unknown {unknown[:10]}"
            )
        errors = [m for e in self.editors for m in e.errors]
        if errors:
            problems.append(f"the server answered errors: {errors[:5]}")
        rows = await asyncio.to_thread(self.target.log_rows, self.doc_id)
        problems.extend(check_log(rows, stored))
        self.version = version
        return problems


async def run_trials(
    target: Target, trials: int, editors: int = 4, seed: int | None = None
) -> Figures:
    """Run `trials` kill trials on one new document; the figures, with any problem found."""
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    figures = Figures(editors=editors)
    started = time.monotonic()
    team = await asyncio.to_thread(Team, target, editors)
    try:
        await team.open()
        checked: set[str] = set()  # acknowledged markers checked after a restart so far
        for trial in range(trials):
            await _trial(team, rng, figures, checked, f"trial {trial} (seed {seed})")
            figures.trials += 1
        problems = await team.settle()
    finally:
        await team.close()
    figures.problems.extend(f"seed {seed}: {problem}" for problem in problems)
    counts = _count((await asyncio.to_thread(team.stored))[0])
    figures.typed = len(team.typed())
    figures.acked = len(team.acked())
    figures.versions = team.version
    figures.resent = sum(e.resends for e in team.editors)
    figures.lost += sum(counts[m] == 0 for m in team.acked())
    figures.doubled += sum(n > 1 for n in counts.values())
    figures.seconds = time.monotonic() - started
    return figures


async def _trial(
    team: Team, rng: random.Random, figures: Figures, checked: set[str], label: str
) -> None:
    target = team.target
    if rng.random() >= AT_ONCE_SHARE:
        # Most kills land while the room is loaded and answering: wait until every
        # editor is back and its resend answered. The others land while it loads.
        ready = await until(lambda: all(e.online and e.idle for e in team.editors), READY_SECONDS)
        if not ready:  # nothing the later trials find would mean much
            raise AssertionError(f"{label}: the editors were not answered after a restart")
    kill_after = rng.uniform(0.0, BURST_SECONDS)
    # Typing goes on a little past the kill: edits made offline are sent after.
    typing = asyncio.create_task(team.burst(kill_after + rng.uniform(0, 0.05), rng))
    await asyncio.sleep(kill_after)
    victim = await _owner(target, team.doc_id, label)
    cut_off = team.on(victim)
    for editor in cut_off:
        editor.may_connect.clear()  # none of them may reach the restarted process yet
    connected = [e for e in cut_off if e.online]  # (the others' requests were counted)
    target.servers[victim].kill()
    await typing
    if not await until(lambda: not any(e.online for e in cut_off), CLOSE_SECONDS):
        raise AssertionError(f"{label}: a socket to the killed process stayed open")
    figures.inflight_at_kills += sum(e.sim.inflight is not None for e in connected)
    # Everything acknowledged so far (answers the dead process sent before it died
    # included: they were read before the sockets closed).
    acked = team.acked()
    await asyncio.to_thread(target.servers[victim].start)
    stored, _ = await asyncio.to_thread(_api_state, target.servers[victim].url, team.doc_id)
    counts = _count(stored)
    lost = sorted(m for m in acked if counts[m] == 0)
    doubled = sorted(m for m, n in counts.items() if n > 1)
    figures.checked_after_kills += len(acked - checked)
    checked |= acked
    figures.lost += len(lost)
    figures.doubled += len(doubled)
    if lost or doubled:
        figures.problems.append(f"{label}: lost {lost[:10]}, doubled {doubled[:10]}")
    for editor in cut_off:
        editor.may_connect.set()


async def _owner(target: Target, doc_id: str, label: str) -> int:
    """The running process that holds the document's lease (after a kill, the lease
    names the dead process until a survivor takes the document over)."""
    deadline = time.monotonic() + OWNER_SECONDS
    while True:
        owner = await asyncio.to_thread(target.owner, doc_id)
        if owner is not None and target.servers[owner].running:
            return owner
        if time.monotonic() > deadline:
            raise AssertionError(f"{label}: no running process took the document over")
        await asyncio.sleep(0.02)


def check_log(rows: list[Row], text: str) -> list[str]:
    """The stored log of a text made only of inserts: versions 1..n without a gap, each
    request stored once, and its updates replay to `text`."""
    problems: list[str] = []
    seqs = [row[0] for row in rows]
    if seqs != list(range(1, len(rows) + 1)):
        problems.append(f"the log's versions have gaps or repeats: {seqs[:20]}...")
    requests = Counter((c, r) for _, _, c, r, _, _ in rows if c)
    twice = [key for key, n in requests.items() if n > 1]
    if twice:
        problems.append(f"requests stored twice in the log: {twice[:10]}")
    doc: Doc = Doc()
    for row in rows:
        doc.apply_update(row[1])
    replayed = str(doc.get("text", type=Text))
    if replayed != text:
        problems.append(
            f"the log replays to {len(replayed)} characters, not the {len(text)} stored"
        )
    if sum(r[4] for r in rows) != len(text) or any(r[5] for r in rows):
        problems.append("the log's insert/delete counts do not add up to the text")
    if len(_count(replayed)) != len(MARKER.findall(replayed)):
        problems.append("the log replays to a text with a marker twice")
    return problems


# --------------------------------------------------------------------------- command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--editors", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--cluster", action="store_true", help="two processes on PostgreSQL and Redis"
    )
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl+C, so the servers started here are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.cluster:
        figures = _run_cluster(args)
    else:
        server = TandemServer().start()
        try:
            figures = asyncio.run(
                run_trials(OneProcess(server), args.trials, args.editors, args.seed)
            )
        finally:
            server.kill()
            shutil.rmtree(server.data_dir, ignore_errors=True)
    print(figures.summary())
    for problem in figures.problems:
        print("PROBLEM:", problem, file=sys.stderr)
    return 1 if figures.problems else 0


def _run_cluster(args: argparse.Namespace) -> Figures:
    from e2e.cluster import Cluster
    from tests.services import PostgresServer, RedisServer

    redis, postgres = RedisServer().start(), PostgresServer().start()
    cluster = Cluster(redis.url, postgres.create_database(), lease_seconds=1.0)
    try:
        cluster.start()
        target = Processes(cluster.servers, cluster.database_url)
        return asyncio.run(run_trials(target, args.trials, args.editors, args.seed))
    finally:
        cluster.stop()
        redis.close()
        postgres.close()


if __name__ == "__main__":
    sys.exit(main())
