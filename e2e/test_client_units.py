"""Unit tests of the browser client's modules (static/js), run inside Chromium.

No Tandem server is needed: a tiny HTTP server in a thread serves static/ (and a test
helper module), and each test imports the ES modules in a blank page and checks them
there: delta.js (apply, compose, transform, transformIndex, anchoredDiff, splitDelta,
with emoji, CJK and combining marks), sync-client.js against a fake transport and a fake
OT server (acks while typing, pushes, pokes, resends, undo queueing, errors, large pastes, and a
seeded multi-editor convergence run), and surface.js (the CodeMirror editor behind
#editor) driven by real key presses, a real paste and a real IME composition (Chrome
DevTools' Input.imeSetComposition).

Run: .venv/bin/pytest e2e/test_client_units.py -q -p no:django
"""

# ruff: noqa: E501  (the in-page tests are JavaScript source in strings)
from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from collab import delta as pydelta
from e2e.client import eventually

REPO = Path(__file__).resolve().parent.parent
STATIC = REPO / "static"


def import_map() -> str:
    """An import map for the vendored modules with plain /static/ URLs (the editor page's
    comes from templates/editor/_importmap.html), for pages served straight from static/."""
    template = (REPO / "templates" / "editor" / "_vendor_imports.html").read_text()
    template = re.sub(r"\{% load [^%]*%\}|\{#.*?#\}", "", template)
    entries = re.sub(r"\{% static '([^']+)' %\}", r"/static/\1", template).strip()
    return f'<script type="importmap">{{"imports": {{{entries}}}}}</script>'


BLANK_PAGE = f"""<!doctype html><html><head><meta charset="utf-8"><title>units</title>
{import_map()}</head><body></body></html>""".encode()

# Helpers for the in-page tests: a seeded PRNG, random texts and deltas that respect
# surrogate pairs, and a fake server speaking docs/protocol.md with plain OT (the real
# server merges with a CRDT; to a client the two look the same).
TESTLIB_JS = r"""
import { apply, compose, transform, normalize } from "/static/js/delta.js";

export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Pieces that are whole characters: ASCII, CJK, emoji (surrogate pairs), a combining
// mark, a ZWJ sequence, newlines.
export const PIECES = ["a", "b", "c", " ", "\n", "漢", "字", "😀", "🎉", "e\u0301", "\u0301", "👩\u200d💻", "é"];

export function randomText(r, maxPieces) {
  let s = "";
  const n = Math.floor(r() * (maxPieces + 1));
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)];
  return s;
}

// Positions of `text` that do not split a surrogate pair.
export function boundaries(text) {
  const out = [];
  for (let i = 0; i <= text.length; i++) {
    const hi = text.charCodeAt(i - 1), lo = text.charCodeAt(i);
    if (!(hi >= 0xd800 && hi <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff)) out.push(i);
  }
  return out;
}

// A random delta on `text` (several ops).
export function randomDelta(r, text) {
  const b = boundaries(text);
  const ops = [];
  let pos = 0;
  while (true) {
    const later = b.filter((x) => x >= pos);
    if (later.length <= 1 || r() < 0.25) break;
    const target = later[Math.floor(r() * later.length)];
    const kind = r();
    if (kind < 0.4) {
      ops.push({ insert: randomText(r, 3) || "x" });
    } else if (kind < 0.7 && target > pos) {
      ops.push({ delete: target - pos });
      pos = target;
    } else if (target > pos) {
      ops.push({ retain: target - pos });
      pos = target;
    }
  }
  if (r() < 0.3) ops.push({ insert: randomText(r, 2) || "y" });
  return normalize(ops.filter((op) => op.insert !== "" && op.retain !== 0 && op.delete !== 0));
}

// A fake Tandem server for one document: versioned, OT-merging, idempotent on (cid, rid).
export class FakeServer {
  constructor(text = "", version = 0) {
    this.version = version;
    this.texts = { [version]: text };
    this.log = {}; // version -> delta from version - 1
    this.answered = new Map(); // "cid/rid" -> answer
    this.requests = [];
  }
  get text() { return this.texts[this.version]; }
  since(base) {
    let d = [];
    for (let v = base + 1; v <= this.version; v++) d = compose(d, this.log[v]);
    return d;
  }
  commit(delta) {
    if (delta.length === 0) return;
    this.log[this.version + 1] = delta;
    this.texts[this.version + 1] = apply(this.text, delta);
    this.version += 1;
  }
  // Someone else's edit, made on the current text.
  remote(delta) { this.commit(delta); }
  // The news for an editor the server last told about version `from`.
  push(from) { return { type: "push", base: from, version: this.version, delta: this.since(from) }; }
  handle(json) {
    const req = JSON.parse(json);
    this.requests.push(req);
    const key = `${req.cid}/${req.rid}`;
    if (this.answered.has(key)) return this.answered.get(key);
    if (!(req.base in this.texts)) return { type: "error", code: "bad_base", message: "no such version", rid: req.rid };
    const since = this.since(req.base);
    apply(this.texts[req.base], req.ops); // throws on a bad request
    this.commit(transform(since, req.ops, true)); // what was there first stays first
    const answer = { type: "ack", rid: req.rid, version: this.version, delta: transform(req.ops, since, false) };
    this.answered.set(key, answer);
    return answer;
  }
}
"""


class _Handler(SimpleHTTPRequestHandler):
    extra: dict[str, tuple[str, bytes]] = {}  # path -> (content type, body)
    roots: dict[str, Path] = {}  # URL prefix -> folder

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in self.extra:
            content_type, body = self.extra[path]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def translate_path(self, path: str) -> str:
        # /static/... from the project's static folder, /htmx/... from django-htmx's.
        path = path.split("?", 1)[0]
        for prefix, root in self.roots.items():
            if path.startswith(prefix):
                target = (root / path[len(prefix) :]).resolve()
                if root.resolve() in target.parents:
                    return str(target)
        return str(REPO / "nonexistent")

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticServer:
    """Serves static/ (and extra in-memory pages) on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, extra: dict[str, tuple[str, bytes]]) -> None:
        import django_htmx

        roots = {
            "/static/": STATIC,
            "/htmx/": Path(django_htmx.__file__).resolve().parent / "static" / "django_htmx",
        }
        self.extra = extra  # more pages can be added while it runs

        class Handler(_Handler):
            pass

        Handler.extra = extra
        Handler.roots = roots
        Handler.extensions_map = {**_Handler.extensions_map, ".js": "text/javascript"}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def static_server() -> Iterator[StaticServer]:
    extra = {
        "/blank.html": ("text/html; charset=utf-8", BLANK_PAGE),
        "/testlib.js": ("text/javascript", TESTLIB_JS.encode()),
    }
    with StaticServer(extra) as srv:
        yield srv


@pytest.fixture
def unit_page(browser: Browser, static_server: StaticServer) -> Iterator[Page]:
    """A blank page on the static server (its own context: no Tandem server needed)."""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(static_server.url + "/blank.html")
    yield page
    context.close()
    assert not errors, errors


def run(page: Page, body: str, arg: Any = None) -> Any:
    """Runs `body` (an async function body with `d` = delta.js, `S` = sync-client.js,
    `T` = surface.js, `L` = the test helpers, `arg`) in the page; returns its result."""
    return page.evaluate(
        """async ([body, arg]) => {
            const d = await import('/static/js/delta.js');
            const S = await import('/static/js/sync-client.js');
            const T = await import('/static/js/surface.js');
            const L = await import('/testlib.js');
            const fn = new (Object.getPrototypeOf(async function () {}).constructor)('d', 'S', 'T', 'L', 'arg', body);
            return await fn(d, S, T, L, arg);
        }""",
        [body, arg],
    )


# ------------------------------------------------------------------------- delta.js


# The delta contract collab/delta.py keeps too: the same cases (tests/delta_cases.json),
# and the same results as the Python module on seeded random deltas.
DELTA_CASES: dict[str, Any] = json.loads((REPO / "tests" / "delta_cases.json").read_text())


def test_delta_contract_cases(unit_page: Page) -> None:
    """Every shared case gives delta.js exactly the result it gives collab/delta.py."""
    failures = run(
        unit_page,
        """
        const same = (x, y) => JSON.stringify(x) === JSON.stringify(y);
        const bad = [];
        for (const c of arg.apply) {
          let got;
          try { got = d.apply(c.text, c.delta); } catch (e) { got = {error: String(e)}; }
          const ok = c.error !== undefined ? typeof got === 'object' : got === c.result;
          if (!ok) bad.push(['apply', c, got]);
        }
        for (const c of arg.compose) {
          const got = d.compose(c.a, c.b);
          if (!same(got, c.result)) bad.push(['compose', c, got]);
        }
        for (const c of arg.transform) {
          const got = d.transform(c.a, c.b, c.priority);
          if (!same(got, c.result)) bad.push(['transform', c, got]);
        }
        for (const c of arg.transform_index) {
          const got = d.transformIndex(c.delta, c.index, c.priority);
          if (got !== c.result) bad.push(['transformIndex', c, got]);
        }
        for (const c of arg.normalize) {
          const got = d.normalize(c.delta);
          if (!same(got, c.result)) bad.push(['normalize', c, got]);
        }
        return bad;
        """,
        DELTA_CASES,
    )
    assert failures == []
    assert sum(len(v) for v in DELTA_CASES.values() if isinstance(v, list)) > 50


PIECES = ["a", "b", " ", "\n", "漢", "字", "😀", "🎉", "e\u0301", "\u0301", "👩\u200d💻", "é"]


def random_text(rng: random.Random, pieces: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, pieces)))


def random_delta(rng: random.Random, text: str) -> pydelta.Delta:
    """A valid delta for `text`, not necessarily canonical (adjacent ops of one kind, a
    delete before an insert, a trailing retain): both sides must take any valid delta."""
    chars = list(text)  # code points: an astral character (2 units) is never split
    ops: pydelta.Delta = []
    i = 0
    while i < len(chars) or rng.random() < 0.3:
        roll = rng.random()
        if roll < 0.3 or i >= len(chars):
            inserted = random_text(rng, 3)
            if inserted:
                ops.append({"insert": inserted})
            if i >= len(chars):
                break
            continue
        take = "".join(chars[i : i + rng.randint(1, 3)])
        i += len(take)
        ops.append({("delete" if roll < 0.55 else "retain"): pydelta.utf16_len(take)})
    return ops


def test_delta_js_agrees_with_the_python_module(unit_page: Page) -> None:
    """Seeded random texts and deltas (emoji, CJK, combining marks, ZWJ sequences):
    apply, compose, transform with either priority, transformIndex at every boundary
    and normalize give delta.js the results collab/delta.py gives."""
    rng = random.Random(20261201)
    cases = []
    for _ in range(300):
        text = random_text(rng, 10)
        a, b = random_delta(rng, text), random_delta(rng, text)
        after_a = pydelta.apply(text, a)
        c = random_delta(rng, after_a)
        indexes = list(range(pydelta.utf16_len(text) + 1))
        cases.append(
            {
                "text": text,
                "a": a,
                "b": b,
                "c": c,
                "apply": after_a,
                "compose": pydelta.compose(a, c),
                "transform": [pydelta.transform(a, b, True), pydelta.transform(a, b, False)],
                "index": [
                    [pydelta.transform_index(a, i, p) for i in indexes] for p in (True, False)
                ],
                "normalize": pydelta.normalize(a),
            }
        )
    failures = run(
        unit_page,
        """
        const same = (x, y) => JSON.stringify(x) === JSON.stringify(y);
        const bad = [];
        for (const c of arg) {
          const n = c.index[0].length;
          const got = {
            apply: d.apply(c.text, c.a),
            compose: d.compose(c.a, c.c),
            transform: [d.transform(c.a, c.b, true), d.transform(c.a, c.b, false)],
            index: [true, false].map((p) => Array.from({length: n}, (_, i) => d.transformIndex(c.a, i, p))),
            normalize: d.normalize(c.a),
          };
          for (const k of Object.keys(got)) if (!same(got[k], c[k])) bad.push([k, c.text, c.a, c.b, c.c, got[k], c[k]]);
          if (bad.length > 5) break;
        }
        return bad;
        """,
        cases,
    )
    assert failures == []


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("abc", [{"retain": 4}]),
        ("abc", [{"retain": 1}, {"delete": 3}]),
        ("a😀b", [{"retain": 2}]),  # inside the pair
        ("a😀b", [{"retain": 1}, {"delete": 1}]),
        ("abc", [{"insert": "\ud83d"}]),  # lone surrogate
        ("abc", [{"insert": "a\r\nb"}]),  # CR
        ("abc", [{"retain": 0}]),
        ("abc", [{"insert": ""}]),
        ("abc", [{"retain": 1.5}]),
        ("abc", [{"retain": 1, "delete": 1}]),
        ("abc", [{"bogus": 1}]),
    ],
)
def test_apply_rejects_what_the_protocol_forbids(
    unit_page: Page, text: str, delta: list[dict[str, Any]]
) -> None:
    assert (
        run(
            unit_page,
            "try { d.apply(arg[0], arg[1]); return 'applied'; } catch (e) { return 'error'; }",
            [text, delta],
        )
        == "error"
    )


def test_is_noop(unit_page: Page) -> None:
    result = run(
        unit_page, "return [d.isNoop([{retain: 3}]), d.isNoop([]), d.isNoop([{insert: 'a'}])];"
    )
    assert result == [True, True, False]


def test_compose_and_transform_properties_on_random_deltas(unit_page: Page) -> None:
    """For a few hundred seeded random texts and deltas (emoji, CJK, combining marks):
    compose is apply-then-apply, transform converges both ways with either priority, and
    transformIndex follows a character that survives."""
    failures = run(
        unit_page,
        """
        const r = L.rng(20240607);
        const bad = [];
        for (let i = 0; i < 400 && bad.length < 5; i++) {
          const s = L.randomText(r, 12);
          const a = L.randomDelta(r, s);
          const b = L.randomDelta(r, s);
          const sa = d.apply(s, a), sb = d.apply(s, b);
          // compose
          const c = L.randomDelta(r, sa);
          if (d.apply(s, d.compose(a, c)) !== d.apply(sa, c)) bad.push(['compose', s, a, c]);
          // transform convergence, both priorities
          for (const p of [true, false]) {
            const left = d.apply(sa, d.transform(a, b, p));
            const right = d.apply(sb, d.transform(b, a, !p));
            if (left !== right) bad.push(['transform', p, s, a, b, left, right]);
          }
          // transformIndex: a character of s that a keeps is found where it went
          const bs = L.boundaries(s);
          const idx = bs[Math.floor(r() * bs.length)];
          if (idx < s.length) {
            const kept = d.compose(a, []);  // canonical copy
            let pos = 0, deleted = false;
            for (const op of kept) {
              if (op.insert !== undefined) continue;
              const n = op.retain ?? op.delete;
              if (op.delete !== undefined && idx >= pos && idx < pos + n) deleted = true;
              pos += n;
            }
            if (!deleted) {
              const j = d.transformIndex(a, idx, false);  // pushed past inserts at idx
              if (sa.charCodeAt(j) !== s.charCodeAt(idx)) bad.push(['index', s, a, idx, j]);
            }
          }
        }
        return bad;
        """,
    )
    assert failures == []


# Anchored diff: (before, after, selection before [start, end], backward?) -> delta
ANCHORED_CASES = [
    # typing "a" into "aa" at the start: the op is at the caret, not at the end
    ("aa", "aaa", 0, 0, False, [{"insert": "a"}]),
    ("aa", "aaa", 1, 1, False, [{"retain": 1}, {"insert": "a"}]),
    # Backspace in "aaa" with the caret at 2 deletes the character before the caret
    ("aaa", "aa", 2, 2, True, [{"retain": 1}, {"delete": 1}]),
    # Delete (forward) at 1
    ("aaa", "aa", 1, 1, False, [{"retain": 1}, {"delete": 1}]),
    # replace a selection
    (
        "hello world",
        "hello there",
        6,
        11,
        False,
        [{"retain": 6}, {"insert": "there"}, {"delete": 5}],
    ),
    ("abab", "ab", 2, 4, False, [{"retain": 2}, {"delete": 2}]),
    # paste at the caret, pasted text repeating its surroundings
    ("xyxy", "xyxyxy", 2, 2, False, [{"retain": 2}, {"insert": "xy"}]),
    # Backspace over an emoji: both halves go
    ("a😀b", "ab", 3, 3, True, [{"retain": 1}, {"delete": 2}]),
    # replacing one emoji with another that shares the high surrogate: never half a pair
    ("😀", "😃", 0, 2, False, [{"insert": "😃"}, {"delete": 2}]),
    ("x😀😀", "x😀", 5, 5, True, [{"retain": 3}, {"delete": 2}]),
    # combining mark typed after a letter
    ("e", "e\u0301", 1, 1, False, [{"retain": 1}, {"insert": "\u0301"}]),
    # IME: "ni" composed into 你 at the caret (the composition started at 1)
    ("a", "a你", 1, 1, False, [{"retain": 1}, {"insert": "你"}]),
    # a word deleted backwards (Ctrl+Backspace)
    ("one two two", "one two ", 11, 11, True, [{"retain": 8}, {"delete": 3}]),
    # no change
    ("same", "same", 1, 1, False, []),
    # an anchor that no single edit fits is clamped, never wrong
    ("abc", "abXc", 0, 0, False, [{"retain": 2}, {"insert": "X"}]),
]


@pytest.mark.parametrize(("prev", "nxt", "start", "end", "backward", "expected"), ANCHORED_CASES)
def test_anchored_diff(
    unit_page: Page, prev: str, nxt: str, start: int, end: int, backward: bool, expected: list[Any]
) -> None:
    delta = run(unit_page, "return d.anchoredDiff(...arg);", [prev, nxt, start, end, backward])
    assert delta == expected
    assert run(unit_page, "return d.apply(arg[0], arg[1]);", [prev, delta]) == nxt


def test_anchored_diff_random_single_edits(unit_page: Page) -> None:
    """Random single edits diffed with the selection they were made with: an insert at
    the caret, a Backspace or Delete of a range, or a replaced selection. Inserts and
    deletes come back exactly as made (even amid repeated text); every result applies and
    never holds half a surrogate pair."""
    bad = run(
        unit_page,
        """
        const r = L.rng(7);
        const bad = [];
        for (let i = 0; i < 600; i++) {
          const s = L.randomText(r, 8);
          const b = L.boundaries(s);
          let x = b[Math.floor(r() * b.length)], y = b[Math.floor(r() * b.length)];
          if (x > y) [x, y] = [y, x];
          const kind = Math.floor(r() * 4);
          let t, delta, exact;
          if (kind === 0) {          // typing or pasting at the caret x
            const ins = L.randomText(r, 3) || 'a';
            t = s.slice(0, x) + ins + s.slice(x);
            delta = d.anchoredDiff(s, t, x, x, false);
            exact = d.normalize([{retain: x}, {insert: ins}]);
          } else if (kind === 1) {   // Backspace with the caret at y, removing [x, y)
            t = s.slice(0, x) + s.slice(y);
            delta = d.anchoredDiff(s, t, y, y, true);
            exact = d.normalize([{retain: x}, {delete: y - x}]);
          } else if (kind === 2) {   // Delete (forward) with the caret at x, removing [x, y)
            t = s.slice(0, x) + s.slice(y);
            delta = d.anchoredDiff(s, t, x, x, false);
            exact = d.normalize([{retain: x}, {delete: y - x}]);
          } else {                   // the selection [x, y) replaced
            t = s.slice(0, x) + L.randomText(r, 3) + s.slice(y);
            delta = d.anchoredDiff(s, t, x, y, false);
            exact = null;
          }
          if (d.apply(s, delta) !== t) bad.push(['apply', s, t, x, y, delta]);
          if (exact && JSON.stringify(delta) !== JSON.stringify(exact)) bad.push(['exact', kind, s, x, y, delta, exact]);
          for (const op of delta) if (op.insert !== undefined && d.hasLoneSurrogate(op.insert)) bad.push(['lone', s, t, delta]);
        }
        return bad;
        """,
    )
    assert bad == []


def test_split_delta_keeps_requests_small_and_exact(unit_page: Page) -> None:
    result = run(
        unit_page,
        """
        const big = '😀'.repeat(3000) + 'x'.repeat(5000) + '"\\\\\\n'.repeat(1000);
        const base = 'hello world';
        const delta = [{retain: 5}, {insert: big}, {delete: 1}, {retain: 3}, {insert: 'tail'}];
        const out = [];
        let rest = delta, text = base, pieces = 0;
        while (rest.length) {
          const [head, tail] = d.splitDelta(rest, 4000);
          if (JSON.stringify(head).length > 4000 && new TextEncoder().encode(JSON.stringify(head)).length > 4000) out.push('too big');
          for (const op of head) if (op.insert && d.hasLoneSurrogate(op.insert)) out.push('split pair');
          if (!head.length) { out.push('no progress'); break; }
          text = d.apply(text, head);
          rest = tail;
          pieces += 1;
        }
        const small = d.splitDelta([{retain: 1}, {insert: 'ab'}], 1000);
        return {ok: text === d.apply(base, delta), pieces, out, small,
                size: d.jsonSize(delta) >= new TextEncoder().encode(JSON.stringify(delta)).length};
        """,
    )
    assert result["ok"] and result["out"] == [] and result["pieces"] > 5
    assert result["small"] == [[{"retain": 1}, {"insert": "ab"}], []]
    assert result["size"]


# ------------------------------------------------------------------- sync-client.js

# A harness: one SyncClient with a fake transport (frames collected in `sent`) and a
# FakeServer that answers when the test says so.
HARNESS = """
const server = new L.FakeServer(arg?.text ?? 'hello', 5);
const sent = [];
const remote = [];
let selection = [0, 0];
const c = new S.SyncClient({
  text: server.text, version: 5, cid: 'test-client-1',
  send: (json) => sent.push(json),
  onRemote: (delta) => remote.push(delta),
  getSelection: () => selection,
  maxBytes: arg?.maxBytes,
});
const answer = (i = sent.length - 1) => c.receive(server.handle(sent[i]));
const last = () => JSON.parse(sent[sent.length - 1]);
const type = (pos, s) => c.edit(d.normalize([{retain: pos}, {insert: s}]));
"""


def sync_scenario(page: Page, body: str, arg: Any = None) -> Any:
    return run(page, HARNESS + body, arg)


def test_sync_first_request_and_ack_while_typing(unit_page: Page) -> None:
    r = sync_scenario(
        unit_page,
        """
        c.open();                       // connect: a catch-up sync with no ops
        const first = last();
        answer();
        type(5, '!');                   // sent at once
        const second = last();
        type(6, '?');                   // typed while the request is in flight: held
        const held = sent.length;
        server.remote([{insert: '>> '}]);   // someone else types at the start meanwhile
        answer(1);                      // the ack carries '>> ' and the next request goes out
        const third = last();
        answer();
        return {first, second, held, third, text: c.text, shadow: c.shadow, version: c.version,
                server: server.text, remote, sentCount: sent.length, unsent: c.hasUnsent()};
        """,
    )
    assert r["first"] == {
        "type": "sync",
        "cid": "test-client-1",
        "rid": 1,
        "base": 5,
        "ops": [],
        "action": "",
        "sel": [0, 0],
    }
    assert r["second"]["rid"] == 2 and r["second"]["ops"] == [{"retain": 5}, {"insert": "!"}]
    assert r["held"] == 2
    # The pending '?' was rebased past the server's '>> ' and sent with the new base.
    assert r["third"]["rid"] == 3 and r["third"]["base"] == 7
    assert r["third"]["ops"] == [{"retain": 9}, {"insert": "?"}]
    assert r["text"] == r["shadow"] == r["server"] == ">> hello!?"
    assert r["version"] == 8
    assert r["remote"] == [[{"insert": ">> "}]]
    assert r["sentCount"] == 3 and r["unsent"] is False


def test_sync_poke_is_ignored_while_in_flight(unit_page: Page) -> None:
    r = sync_scenario(
        unit_page,
        """
        c.open();
        const n0 = sent.length;           // 1: the catch-up sync is in flight
        c.receive({type: 'poke', version: 99});
        const n1 = sent.length;           // still 1
        answer();
        const n2 = sent.length;
        server.remote([{retain: 5}, {insert: ' world'}]);
        c.receive({type: 'poke', version: server.version});
        const n3 = sent.length;           // 2: an empty sync to fetch the change
        const req = last();
        answer();
        c.receive({type: 'poke', version: 1});  // even an old-looking poke is answered
        const n4 = sent.length;
        return {n0, n1, n2, n3, n4, req, text: c.text};
        """,
    )
    assert (r["n0"], r["n1"], r["n2"], r["n3"], r["n4"]) == (1, 1, 1, 2, 3)
    assert r["req"]["ops"] == [] and r["req"]["rid"] == 2
    assert r["text"] == "hello world"


def test_sync_push_applies_only_when_idle_and_at_its_base(unit_page: Page) -> None:
    r = sync_scenario(
        unit_page,
        """
        c.open(); answer();                        // version 5, nothing in flight
        server.remote([{retain: 5}, {insert: ' 😀'}]);
        c.receive(server.push(5));                 // applied: no request needed
        const afterPush = {text: c.text, shadow: c.shadow, version: c.version, sent: sent.length};
        type(8, '!');                              // in flight from the pushed version
        const req = last();
        server.remote([{insert: '漢'}]);
        c.receive(server.push(7));                 // in flight: ignored
        const ignored = {text: c.text, version: c.version};
        answer();                                  // the answer brings 漢 as well
        const stale = sent.length;
        c.receive({type: 'push', base: 3, version: 4, delta: [{insert: 'x'}]});  // not our base
        const resync = last();
        answer();
        return {afterPush, req, ignored, stale, resync, text: c.text, server: server.text,
                version: c.version, remote};
        """,
    )
    assert r["afterPush"] == {"text": "hello 😀", "shadow": "hello 😀", "version": 6, "sent": 1}
    assert r["req"]["base"] == 6 and r["req"]["ops"] == [{"retain": 8}, {"insert": "!"}]
    assert r["ignored"] == {"text": "hello 😀!", "version": 6}
    assert r["resync"]["ops"] == [] and r["resync"]["base"] == 8  # a push it cannot use: sync
    assert r["text"] == r["server"] == "漢hello 😀!" and r["version"] == 8
    assert r["remote"] == [[{"retain": 5}, {"insert": " 😀"}], [{"insert": "漢"}]]


def test_sync_resends_the_unanswered_request_unchanged_after_reconnect(unit_page: Page) -> None:
    r = sync_scenario(
        unit_page,
        """
        c.open(); answer();
        type(0, 'A');                  // rid 2 in flight...
        const inflight = sent[sent.length - 1];
        server.handle(inflight);       // ...the server applied it but the answer was lost
        c.close();
        type(1, 'B');                  // offline typing
        const whileClosed = sent.length;
        c.open();                      // reconnect: the same frame first, nothing else
        const resent = sent[sent.length - 1];
        const afterOpen = sent.length;
        answer();                      // answered from what the server stored
        const next = last();
        answer();
        return {same: resent === inflight, whileClosed, afterOpen, next, text: c.text,
                server: server.text, requests: server.requests.length};
        """,
    )
    assert r["same"] is True
    assert r["whileClosed"] == 2 and r["afterOpen"] == 3
    assert r["next"]["rid"] == 3 and r["next"]["ops"] == [{"retain": 1}, {"insert": "B"}]
    assert r["text"] == r["server"] == "ABhello"


def test_sync_undo_is_queued_while_in_flight_and_keeps_later_typing_apart(unit_page: Page) -> None:
    r = sync_scenario(
        unit_page,
        """
        c.open(); answer();
        type(5, '1');             // rid 2 in flight
        type(6, '2');             // pending
        c.undo();                 // queued after '2'
        type(7, '3');             // typed after the undo: a separate segment
        const queued = sent.length;
        answer();                 // ack of rid 2: rid 3 = '2' + undo
        const third = last();
        answer();                 // ack of rid 3: rid 4 = '3'
        const fourth = last();
        answer();
        c.redo();                 // nothing in flight: sent at once
        const fifth = last();
        return {queued, third, fourth, fifth};
        """,
    )
    assert r["queued"] == 2
    assert r["third"]["action"] == "undo" and r["third"]["ops"] == [{"retain": 6}, {"insert": "2"}]
    assert r["fourth"]["action"] == "" and r["fourth"]["ops"] == [{"retain": 7}, {"insert": "3"}]
    assert r["fifth"]["action"] == "redo" and r["fifth"]["ops"] == []


def test_sync_ignores_answers_to_other_requests_and_handles_errors(unit_page: Page) -> None:
    r = sync_scenario(
        unit_page,
        """
        c.open(); answer();
        type(0, 'x');
        c.receive({type: 'ack', rid: 1, version: 42, delta: [{insert: 'junk'}]});  // old rid
        const ignored = c.version === 5 && c.text === 'xhello';
        // too_large: the request changed nothing; it is split smaller and sent again
        const rid = last().rid;
        c.receive({type: 'error', code: 'too_large', message: 'too big', rid});
        const retried = last();
        answer();
        // bad_base: syncing stops for good, the text stays, the page says so
        type(0, 'y');
        c.receive({type: 'error', code: 'bad_base', message: 'no such version', rid: last().rid});
        const count = sent.length;
        type(0, 'z');
        c.receive({type: 'poke', version: 100});
        c.tick();
        return {ignored, retried, failure: c.failure, unsent: c.hasUnsent(), text: c.text,
                quiet: sent.length === count, maxBytes: c.maxBytes};
        """,
    )
    assert r["ignored"] is True
    assert r["retried"]["rid"] == 3 and r["retried"]["ops"] == [{"insert": "x"}]
    assert r["maxBytes"] == 450_000
    assert r["failure"]["code"] == "bad_base"
    assert r["unsent"] is True and r["text"] == "zyxhello" and r["quiet"] is True


def test_sync_recovers_from_too_old_with_the_current_text(unit_page: Page) -> None:
    """`too_old` (the server will not rebuild so old a base): the client fetches the
    current text and version, moves what it has not sent past the difference, sends it
    from there, and ends equal to the server."""
    r = sync_scenario(
        unit_page,
        """
        let fetches = 0;
        const r2 = new S.SyncClient({
          text: server.text, version: 5, cid: 'test-client-2',
          send: (json) => sent.push(json),
          fetchLatest: async () => { fetches += 1; return {text: server.text, version: server.version}; },
        });
        const answer2 = () => r2.receive(server.handle(sent[sent.length - 1]));
        r2.open(); answer2();
        server.remote([{insert: 'far '}]);  // the document moved on: 'far hello'
        r2.edit(d.normalize([{retain: 5}, {insert: '!'}]));  // 'hello!', from version 5
        const tooOld = last();
        r2.receive({type: 'error', code: 'too_old', message: 'too far behind', rid: tooOld.rid});
        r2.edit(d.normalize([{retain: 0}, {insert: '>'}]));  // typed while it fetches
        const quiet = sent.length;
        await new Promise((resolve) => setTimeout(resolve, 0));
        const resent = last();
        answer2();
        return {tooOld, quiet, count: sent.length, resent, fetches, failure: r2.failure,
                text: r2.text, shadow: r2.shadow, server: server.text};
        """,
    )
    assert r["tooOld"]["base"] == 5 and r["quiet"] == 2  # nothing more sent while fetching
    assert r["fetches"] == 1 and r["failure"] is None
    assert r["resent"]["base"] == 6  # from the fetched version
    assert r["resent"]["ops"] == [{"insert": ">"}, {"retain": 9}, {"insert": "!"}]
    assert r["text"] == r["shadow"] == r["server"] == ">far hello!"


def test_sync_rejects_an_unusable_answer_without_corrupting_the_text(unit_page: Page) -> None:
    r = sync_scenario(
        unit_page,
        """
        c.open();
        c.receive({type: 'ack', rid: 1, version: 6, delta: [{retain: 99}]});
        return {failure: c.failure && c.failure.code, text: c.text, version: c.version};
        """,
    )
    assert r == {"failure": "bad_answer", "text": "hello", "version": 5}


def test_sync_idle_tick(unit_page: Page) -> None:
    r = run(
        unit_page,
        """
        let now = 1000;
        const sent = [];
        const c = new S.SyncClient({text: '', version: 0, cid: 'tick-client', send: (j) => sent.push(j),
                                    now: () => now, idleMs: 5000});
        c.tick();                                  // not connected: nothing
        c.open();                                  // catch-up sync
        c.receive({type: 'ack', rid: 1, version: 0, delta: []});
        now += 4000; c.tick(); const a = sent.length;
        now += 1500; c.tick(); const b = sent.length;   // idle 5.5 s: a sync
        now += 9000; c.tick(); const e = sent.length;   // in flight: not again
        return [a, b, e];
        """,
    )
    assert r == [1, 2, 2]


def test_sync_splits_a_huge_paste_into_requests_under_the_limit(unit_page: Page) -> None:
    r = sync_scenario(
        unit_page,
        """
        c.open(); answer();
        const paste = ('Paste 😀 漢字 line\\n').repeat(40000);   // ~ 1 MB of JSON
        type(5, paste);
        let guard = 0;
        while (c.inFlight && guard++ < 50) answer();
        const sizes = sent.map((j) => new TextEncoder().encode(j).length);
        return {ok: c.text === server.text && server.text === 'hello' + paste,
                count: sent.length, max: Math.max(...sizes), unsent: c.hasUnsent()};
        """,
        {"maxBytes": 300_000},
    )
    assert r["ok"] is True and r["unsent"] is False
    assert r["max"] <= 300_000 and r["count"] >= 5


def test_sync_many_editors_converge(unit_page: Page) -> None:
    """Seeded random run: 4 clients type, delete, undo-free, with random delivery order
    and delays and a disconnect now and then; all end with the server's text, and
    every inserted token is there exactly once (no loss, no duplicate)."""
    r = run(
        unit_page,
        """
        const results = [];
        for (let seed = 1; seed <= 25; seed++) {
          const r = L.rng(seed);
          const server = new L.FakeServer('', 0);
          const clients = [];
          const toServer = [];   // [client index, json]
          const toClient = [];   // [client index, message]
          const known = [];      // per client: the version the server last told it about
          let token = 0;
          const tokens = [];
          for (let i = 0; i < 4; i++) {
            const c = new S.SyncClient({text: '', version: 0, cid: 'client-' + i + '-seed' + seed,
                                        send: (json) => toServer.push([i, json])});
            c.open();
            clients.push(c);
            known.push(-1);
          }
          for (let step = 0; step < 300; step++) {
            const x = r();
            const i = Math.floor(r() * clients.length);
            const c = clients[i];
            if (x < 0.35) {
              const t = '<' + (token++) + '>';
              tokens.push(t);
              // insert at a token boundary so tokens stay whole
              const cuts = [0, ...[...c.text.matchAll(/>/g)].map((m) => m.index + 1)];
              const at = cuts[Math.floor(r() * cuts.length)];
              c.edit(d.normalize([{retain: at}, {insert: t}]));
            } else if (x < 0.55 && toServer.length) {
              const [j, json] = toServer.splice(Math.floor(r() * toServer.length), 1)[0];
              if (clients[j].connected) {
                const answer = server.handle(json);
                if (answer.type === 'ack') known[j] = answer.version;
                toClient.push([j, answer]);
              }
            } else if (x < 0.75) {
              // the server pushes news to everyone it has told something, in flight or not
              for (const [j, k] of known.entries()) {
                if (k >= 0 && clients[j].connected && server.version > k) {
                  toClient.push([j, server.push(k)]);
                  known[j] = server.version;
                }
              }
            } else if (x < 0.8 && toClient.length) {
              // per client, answers arrive in order
              const [j, msg] = toClient.shift();
              if (clients[j].connected) clients[j].receive(msg);
            } else if (x < 0.85) {
              for (const [j] of clients.entries()) if (!clients[j].inFlight) clients[j].receive({type: 'poke', version: server.version});
            } else if (x < 0.9 && c.connected) {
              // drop the connection: frames in transit for it are lost
              c.close();
              known[i] = -1;
              for (let k = toServer.length - 1; k >= 0; k--) if (toServer[k][0] === i) toServer.splice(k, 1);
              for (let k = toClient.length - 1; k >= 0; k--) if (toClient[k][0] === i) toClient.splice(k, 1);
            } else if (!c.connected) {
              c.open();
            }
          }
          // settle: reconnect everyone, deliver everything, sync until quiet
          for (const c of clients) if (!c.connected) c.open();
          for (let round = 0; round < 200 && (toServer.length || toClient.length || clients.some((c) => c.hasUnsent() || c.version !== server.version)); round++) {
            while (toServer.length) { const [j, json] = toServer.shift(); toClient.push([j, server.handle(json)]); }
            while (toClient.length) { const [j, msg] = toClient.shift(); clients[j].receive(msg); }
            for (const c of clients) c.receive({type: 'poke', version: server.version});
          }
          const texts = clients.map((c) => c.text);
          const found = tokens.map((t) => server.text.split(t).length - 1);
          results.push({seed, same: texts.every((t) => t === server.text) && clients.every((c) => c.shadow === server.text),
                        tokens: found.every((n) => n === 1), count: tokens.length});
        }
        return results;
        """,
    )
    assert all(x["same"] and x["tokens"] for x in r), [
        x for x in r if not (x["same"] and x["tokens"])
    ]
    assert sum(x["count"] for x in r) > 1000


# ----------------------------------------------------------------------- surface.js

SURFACE_SETUP = """
document.getElementById('ta')?.remove();
const el = document.createElement('tandem-editor');
el.id = 'ta';
el.style.cssText = 'display:block;width:300px;height:120px';
const fallback = document.createElement('textarea');
fallback.defaultValue = arg?.value ?? '';
el.append(fallback);
document.body.append(el);   // surface.js mounts CodeMirror here
el.view.dom.style.height = '100%';  // the page's CSS does this on the editor page
const edits = [];
const calls = [];
window.__edits = edits;
window.__calls = calls;
window.__binding = el.bindSync({
  onEdit: (delta) => edits.push(delta),
  onUndo: () => calls.push('undo'),
  onRedo: () => calls.push('redo'),
  onCompositionEnd: () => calls.push('compositionend'),
});
el.focus();
const caret = arg?.caret ?? el.value.length;
el.setSelectionRange(caret, caret);
"""


def bind_surface(page: Page, value: str = "", caret: int | None = None) -> None:
    run(page, SURFACE_SETUP, {"value": value, "caret": caret})


def edits(page: Page) -> list[Any]:
    return page.evaluate("window.__edits.splice(0)")


def surface_value(page: Page) -> str:
    return page.evaluate("document.getElementById('ta').value")


def test_surface_is_codemirror_with_the_text_area_api(unit_page: Page) -> None:
    bind_surface(unit_page, "one 😀\ntwo", caret=2)
    r = unit_page.evaluate(
        """() => {
            const el = document.getElementById('ta');
            const out = {};
            out.mounted = !!el.querySelector('.cm-editor .cm-content') && !el.querySelector('textarea');
            out.value = el.value;
            out.caret = [el.selectionStart, el.selectionEnd];
            el.setSelectionRange(6, 4, 'backward');   // start > end: collapses at end, as a text area
            out.collapsed = [el.selectionStart, el.selectionEnd];
            el.setSelectionRange(4, 6, 'backward');
            out.backward = [el.selectionStart, el.selectionEnd, el.selectionDirection];
            el.select();
            out.all = [el.selectionStart, el.selectionEnd];
            out.focused = el.contains(document.activeElement);
            out.readOnly = el.readOnly;
            return out;
        }"""
    )
    assert r["mounted"] and r["value"] == "one 😀\ntwo"
    assert r["caret"] == [2, 2]
    assert r["collapsed"] == [4, 4]
    assert r["backward"] == [4, 6, "backward"]
    assert r["all"] == [0, len("one 😀\ntwo".encode("utf-16-le")) // 2]
    assert r["focused"] is True and r["readOnly"] is False


def test_surface_reports_the_selection_as_anchor_and_head(unit_page: Page) -> None:
    # What a sync's `sel` says: a backward selection keeps its direction, so others draw
    # the caret at the head (the end that moves).
    bind_surface(unit_page, "Hello world", caret=0)
    r = unit_page.evaluate(
        """() => {
            const el = document.getElementById('ta');
            el.setSelectionRange(6, 11, 'backward');
            const backward = window.__binding.selection();
            el.setSelectionRange(6, 11);
            return [backward, window.__binding.selection()];
        }"""
    )
    assert r == [[11, 6], [6, 11]]


def test_preview_blocks_are_laid_over_the_text(unit_page: Page) -> None:
    # static/js/preview-marks.js: blocks (lengths in UTF-16 units) separated by blank
    # lines; a caret belongs to the last block starting at or before it.
    r = run(
        unit_page,
        r"""
        const { EditorState } = await import('@codemirror/state');  // the page's bundle only
        const M = await import('/static/js/preview-marks.js');
        const text = '\n \n# T😀\n\npara one\ntwo\n \t\n\n- a\n\n  b\n\n';
        const doc = EditorState.create({ doc: text }).doc;
        const starts = M.layBlocks(doc, [5, 12, 8]);
        const at = [0, 3, 8, 9, 10, 22, 26, 27, text.length].map((p) => M.blockAt(starts, p));
        // Lengths that no longer fit (the preview trails the text): never past the end.
        const drift = M.layBlocks(doc, [2, 200, 5]);
        return { starts, at, slices: starts.map((s, i) => text.slice(s, s + [5, 12, 8][i])), drift };
        """,
    )
    assert r["starts"] == [3, 10, 27]
    assert r["slices"] == ["# T😀", "para one\ntwo", "- a\n\n  b"]
    assert r["at"] == [0, 0, 0, 0, 1, 1, 1, 2, 2]
    assert all(0 <= s <= 37 for s in r["drift"])


def test_preview_blocks_are_walked_only_as_far_as_a_caret_needs(unit_page: Page) -> None:
    # preview-marks.js's Layout: the block found for every position is the eager walk's
    # (layBlocks + blockAt), but a caret near the top walks only the first blocks.
    r = run(
        unit_page,
        r"""
        const { EditorState } = await import('@codemirror/state');  // the page's bundle only
        const M = await import('/static/js/preview-marks.js');
        const blocks = Array.from({length: 300}, (_, i) => i % 7 ? `para ${i} 😀\nline` : `# H${i}`);
        const text = '\n' + blocks.join('\n\n \n') + '\n';
        const doc = EditorState.create({ doc: text }).doc;
        const preview = document.createElement('div');
        for (const b of blocks) {
          const section = document.createElement('section');
          section.className = 'block';
          section.dataset.len = String(b.length);
          preview.append(section, document.createElement('hr'));  // not a block: skipped
        }
        const sections = Array.from(preview.querySelectorAll('section'));
        const starts = M.layBlocks(doc, blocks.map((b) => b.length));
        const near = new M.Layout(preview, doc);
        const first = sections.indexOf(near.sectionAt(3));
        const walkedNear = near.sections.length;
        const all = new M.Layout(preview, doc);
        const wrong = [];
        for (let pos = text.length; pos >= 0; pos -= 7) {  // from the end: one long walk
          const want = sections[M.blockAt(starts, pos)];
          if (all.sectionAt(pos) !== want) wrong.push(pos);
        }
        return { first, walkedNear, walkedAll: all.sections.length, wrong };
        """,
    )
    assert r["first"] == 0
    assert r["walkedNear"] == 2  # the block holding the caret, and the next (to know)
    assert r["walkedAll"] == 300
    assert r["wrong"] == []


def test_a_changed_preview_keeps_the_walk_before_its_first_change(unit_page: Page) -> None:
    # Layout.renewed keeps the blocks before the first one htmx touched and before the
    # first edit since; whatever it keeps, every position must find the block a walk
    # afresh on the new text finds. Random block swaps, insertions, removals and edits.
    r = run(
        unit_page,
        r"""
        const { ChangeSet, EditorState } = await import('@codemirror/state');
        const M = await import('/static/js/preview-marks.js');
        let seed = 7;
        const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
        const words = ['a', 'para 😀', '# head', '- item', '漢字 e\u0301', ' ', ''];
        const block = () => Array.from({length: 1 + rand(3)}, () => words[rand(words.length)] + 'x').join('\n');
        const section = (len) => {
          const el = document.createElement('section');
          el.className = 'block';
          el.dataset.len = String(len);
          return el;
        };
        const failures = [];
        let reused = 0;
        for (let trial = 0; trial < 40; trial++) {
          const blocks = Array.from({length: 20 + rand(30)}, block);
          let doc = EditorState.create({ doc: '\n' + blocks.join('\n\n') }).doc;
          const preview = document.createElement('div');
          for (const b of blocks) preview.append(section(b.length));
          const observer = new MutationObserver(() => {});
          observer.observe(preview, { childList: true });
          let layout = new M.Layout(preview, doc);
          layout.sectionAt(rand(doc.length + 1));
          for (let round = 0; round < 4; round++) {
            // The preview changes: a block refreshed, one added, one taken away.
            const kids = Array.from(preview.children);
            const k = rand(kids.length);
            const kind = rand(3);
            if (kind === 0) kids[k].replaceWith(section(1 + rand(40)));
            else if (kind === 1) kids[k].after(section(1 + rand(40)));
            else if (kids.length > 1) kids[k].remove();
            // ... and the text is edited somewhere.
            const at = rand(doc.length + 1);
            const edit = ChangeSet.of([{ from: at, to: Math.min(doc.length, at + rand(4)), insert: rand(2) ? 'y\n' : 'z' }], doc.length);
            layout.since = layout.since.composeDesc(edit.desc);
            doc = edit.apply(doc);
            layout.noteChanges(observer.takeRecords());
            const before = layout.sections.length;
            layout = layout.renewed(preview, doc);
            reused += layout.sections.length > 0 && before > 0 ? 1 : 0;
            const sections = Array.from(preview.children);
            const starts = M.layBlocks(doc, sections.map((el) => Number(el.dataset.len)));
            for (let pos = 0; pos <= doc.length; pos += 1 + rand(5)) {
              if (layout.sectionAt(pos) !== sections[M.blockAt(starts, pos)]) failures.push([trial, round, pos]);
            }
          }
          observer.disconnect();
        }
        return { failures: failures.slice(0, 5), reused };
        """,
    )
    assert r["failures"] == []
    assert r["reused"] > 20  # most renewals kept a walked part


def test_surface_changesets_become_deltas_and_back(unit_page: Page) -> None:
    r = run(
        unit_page,
        """
        const { EditorState } = await import('@codemirror/state');
        const out = [];
        for (const [doc, delta] of arg) {
            const state = EditorState.create({ doc });
            const tr = state.update({ changes: T.deltaToChanges(delta) });
            out.push([tr.newDoc.toString(), d.apply(doc, delta), T.changesToDelta(tr.changes)]);
        }
        return out;
        """,
        [
            ["a😀b\nc", [{"retain": 1}, {"delete": 2}, {"insert": "漢\n"}]],
            ["e\u0301x", [{"retain": 2}, {"insert": "🎉"}, {"delete": 1}]],
            [
                "abc",
                [{"insert": "X"}, {"retain": 1}, {"delete": 1}, {"retain": 1}, {"insert": "Y"}],
            ],
        ],
    )
    for new_doc, applied, _delta in r:
        assert new_doc == applied
    assert r[0][2] == [{"retain": 1}, {"insert": "漢\n"}, {"delete": 2}]
    assert r[2][2] == [
        {"insert": "X"},
        {"retain": 1},
        {"delete": 1},
        {"retain": 1},
        {"insert": "Y"},
    ]


def test_surface_typing_backspace_delete_and_selection(unit_page: Page) -> None:
    bind_surface(unit_page, "aaa", caret=1)
    unit_page.keyboard.type("a")
    assert edits(unit_page) == [[{"retain": 1}, {"insert": "a"}]]
    unit_page.keyboard.press("Backspace")  # caret 2 in "aaaa": deletes index 1
    assert edits(unit_page) == [[{"retain": 1}, {"delete": 1}]]
    unit_page.keyboard.press("Delete")  # caret 1: deletes index 1 (forward)
    assert edits(unit_page) == [[{"retain": 1}, {"delete": 1}]]
    unit_page.evaluate("document.getElementById('ta').setSelectionRange(0, 2)")
    unit_page.keyboard.type("Z")  # replaces the selection "aa"
    assert edits(unit_page) == [[{"insert": "Z"}, {"delete": 2}]]
    assert surface_value(unit_page) == "Z"


def test_surface_emoji_and_cjk_and_paste(unit_page: Page) -> None:
    bind_surface(unit_page, "x", caret=1)
    unit_page.keyboard.insert_text("😀漢")
    assert edits(unit_page) == [[{"retain": 1}, {"insert": "😀漢"}]]
    unit_page.keyboard.press("ArrowLeft")
    unit_page.keyboard.press("Backspace")  # the whole emoji (2 units)
    assert edits(unit_page) == [[{"retain": 1}, {"delete": 2}]]
    # A real Ctrl+V of 100 KB (with CRLFs, which become LFs): one edit.
    unit_page.evaluate("navigator.clipboard.writeText('line of pasted text 😀\\r\\n'.repeat(4500))")
    unit_page.evaluate("document.getElementById('ta').setSelectionRange(1, 1)")
    unit_page.keyboard.press("Control+v")
    pasted = edits(unit_page)
    expected = "line of pasted text 😀\n" * 4500
    assert pasted == [[{"retain": 1}, {"insert": expected}]]
    assert surface_value(unit_page) == "x" + expected + "漢"


def test_surface_ime_composition_is_one_edit_at_its_end(unit_page: Page) -> None:
    bind_surface(unit_page, "ab", caret=1)
    cdp = unit_page.context.new_cdp_session(unit_page)
    cdp.send("Input.imeSetComposition", {"text": "n", "selectionStart": 1, "selectionEnd": 1})
    cdp.send("Input.imeSetComposition", {"text": "ni", "selectionStart": 2, "selectionEnd": 2})
    cdp.send("Input.imeSetComposition", {"text": "你", "selectionStart": 1, "selectionEnd": 1})
    unit_page.wait_for_timeout(100)
    assert edits(unit_page) == []  # nothing half-composed
    assert unit_page.evaluate("window.__binding.isComposing()") is True
    cdp.send("Input.insertText", {"text": "你"})  # commit
    eventually(lambda: unit_page.evaluate("window.__edits.length"), 5, "the committed edit")
    assert edits(unit_page) == [[{"retain": 1}, {"insert": "你"}]]
    assert unit_page.evaluate("window.__binding.isComposing()") is False
    eventually(lambda: unit_page.evaluate("window.__calls") == ["compositionend"], 5)
    assert surface_value(unit_page) == "a你b"


def test_surface_undo_keys_go_to_the_server_not_the_browser(unit_page: Page) -> None:
    bind_surface(unit_page, "", caret=0)
    unit_page.keyboard.type("abc")
    edits(unit_page)
    unit_page.keyboard.press("Control+z")
    unit_page.keyboard.press("Control+Shift+z")
    unit_page.keyboard.press("Control+y")
    unit_page.keyboard.press("Meta+z")
    assert unit_page.evaluate("window.__calls") == ["undo", "redo", "redo", "undo"]
    assert surface_value(unit_page) == "abc"  # no undo ran in the browser
    assert edits(unit_page) == []


def test_surface_remote_change_keeps_caret_selection_and_scroll(unit_page: Page) -> None:
    text = "".join(f"line {i}\n" for i in range(200))
    bind_surface(unit_page, text, caret=0)
    r = unit_page.evaluate(
        """async () => {
            const el = document.getElementById('ta');
            const view = el.view;
            const b = window.__binding;
            const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
            const topLine = () => {
                const rect = view.scrollDOM.getBoundingClientRect();
                const pos = view.posAtCoords({x: rect.left + 5, y: rect.top + 5});
                return view.state.doc.lineAt(pos).text;
            };
            const out = {};
            // a selection made backwards in the middle, scrolled there
            el.setSelectionRange(700, 710, 'backward');
            view.scrollDOM.scrollTop = 900;
            await frame(); await frame();
            const before = topLine();
            b.applyRemote([{insert: 'REMOTE\\n'}]);            // before the selection
            out.sel1 = [el.selectionStart, el.selectionEnd, el.selectionDirection];
            await frame(); await frame();
            out.scroll1 = [before, topLine()];                  // the same line stays on top
            b.applyRemote([{retain: 1500}, {insert: 'after'}]);   // after it: unchanged
            out.sel2 = [el.selectionStart, el.selectionEnd];
            // a collapsed caret with text inserted exactly at it stays before that text
            el.setSelectionRange(5, 5);
            b.applyRemote([{retain: 5}, {insert: 'XY'}]);
            out.caret = [el.selectionStart, el.selectionEnd];
            // the selection does not grow when text is inserted at its edges
            el.setSelectionRange(10, 12);
            b.applyRemote([{retain: 10}, {insert: '<'}, {retain: 2}, {insert: '>'}]);
            out.edges = [el.selectionStart, el.selectionEnd];
            // a deletion around the caret puts it at the deletion
            el.setSelectionRange(30, 30);
            b.applyRemote([{retain: 25}, {delete: 10}]);
            out.deleted = el.selectionStart;
            out.edits = window.__edits.length;   // remote changes are not local edits
            return out;
        }"""
    )
    assert r["sel1"] == [707, 717, "backward"]
    assert r["scroll1"][0] == r["scroll1"][1], r["scroll1"]
    assert r["sel2"] == [707, 717]
    assert r["caret"] == [5, 5]
    assert r["edges"] == [11, 13]
    assert r["deleted"] == 25
    assert r["edits"] == 0


def test_surface_lone_surrogates_become_replacement_characters(unit_page: Page) -> None:
    bind_surface(unit_page, "ab", caret=1)
    r = unit_page.evaluate(
        """() => {
            const el = document.getElementById('ta');
            el.view.dispatch({changes: {from: 1, insert: 'x\\ud83dy'}, selection: {anchor: 4}});
            return [el.value, window.__edits.splice(0), el.selectionStart];
        }"""
    )
    # the protocol rejects lone surrogates: the editor and the edit agree on U+FFFD
    assert r[0] == "ax\ufffdyb"
    assert r[1] == [[{"retain": 1}, {"insert": "x\ufffdy"}]]
    assert r[2] == 4


def test_surface_read_only_refuses_local_edits_but_takes_remote_ones(unit_page: Page) -> None:
    bind_surface(unit_page, "text", caret=4)
    unit_page.evaluate("document.getElementById('ta').readOnly = true")
    unit_page.locator("#ta").click()
    unit_page.keyboard.type("typed")
    unit_page.evaluate("document.execCommand('insertText', false, 'exec')")
    unit_page.evaluate(
        "document.getElementById('ta').view.dispatch({changes: {from: 0, insert: 'x'}})"
    )
    assert surface_value(unit_page) == "text" and edits(unit_page) == []
    unit_page.evaluate("window.__binding.applyRemote([{retain: 4}, {insert: '!'}])")
    assert surface_value(unit_page) == "text!"
    assert unit_page.locator("#ta .readonly-note").is_visible()
    unit_page.evaluate("document.getElementById('ta').readOnly = false")
    assert unit_page.locator("#ta .readonly-note").count() == 0


# ------------------------------------------------------------------------- presence.js


def test_initials_are_the_servers(unit_page: Page) -> None:
    """presence.js's initials (my own entry, renamed at once) are what the server's
    presence list shows for the same name: letters or digits, never markup or dashes."""
    from collab.fragments import person

    names = [
        "Quiet Otter",
        "ada",
        "<b>Zoë</b> Li",
        "  spaced   out  ",
        "- dash",
        "李雷 韩梅梅",
        "élan vital",
        "e\u0301cole x",
        "😀 smile",
        "42 is",
        "&amp; co",
        "",
        "!!!",
    ]
    got = unit_page.evaluate(
        "async (names) => { const p = await import('/static/js/presence.js');"
        " return names.map(p.initials); }",
        names,
    )
    assert got == [person(n).initials for n in names]
    assert person("(Zoë) Li").initials == "ZL" and person("!!!").initials == "?"
