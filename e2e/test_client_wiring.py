"""The whole browser client (static/js/editor.js with htmx 2 and its ws extension, as the
editor page loads them) against a fake Tandem WebSocket server in a thread.

The fake speaks docs/protocol.md for one document with plain OT, using the engine's own
Python reference deltas (collab/delta.py), and can hold answers, drop the connection
(the browser sees 1006), close with a code, refuse to reconnect, poke, and push HTML
fragments. No Django, no real server: this pins the client's side of the protocol.

Run: .venv/bin/pytest e2e/test_client_wiring.py -q -p no:django
"""

# ruff: noqa: E501  (the in-page tests are JavaScript source in strings)
from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from collab import delta as pydelta
from collab.protocol import CLOSE_RETRY, browser_constants
from e2e.client import eventually
from e2e.test_client_units import StaticServer, import_map

INITIAL_TEXT = "Hello"
INITIAL_VERSION = 7

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>wiring</title>
<meta name="htmx-config" content='{"allowScriptTags": false, "selfRequestsOnly": true}'>
<script src="/htmx/htmx-2.js" defer></script>
<script src="/htmx/ext/hx-ws-2.js" defer></script>
IMPORTMAP
<script type="module" src="/static/js/editor.js"></script>
</head><body>
<span id="status" data-state="connecting" data-version="VERSION" role="status" aria-live="polite">
  <span class="dot" aria-hidden="true"></span><span class="label">Connecting…</span></span>
<div id="collab" hx-ext="ws" ws-connect="WSURL">
  <tandem-editor id="editor" style="display:flex;width:600px;height:200px"><textarea style="flex:1">
TEXT</textarea></tandem-editor>
  <article id="preview"></article>
</div>
<script id="tandem-protocol" type="application/json">PROTOCOL</script>
<script>
  // Every data-state the indicator goes through, for the tests.
  window.__states = [];
  new MutationObserver(() => window.__states.push(document.getElementById('status').dataset.state))
    .observe(document.getElementById('status'), {attributes: true, attributeFilter: ['data-state']});
</script>
</body></html>"""


class FakeTandem:
    """One document, one WebSocket endpoint on 127.0.0.1:<free port>."""

    def __init__(self, text: str = INITIAL_TEXT, version: int = INITIAL_VERSION) -> None:
        self.lock = threading.RLock()
        self.version = version
        self.texts = {version: text}
        self.log: dict[int, list[dict[str, Any]]] = {}
        self.answered: dict[tuple[str, int], str] = {}
        self.frames: list[tuple[int, str]] = []  # (connection number, raw frame)
        self.hellos: list[str] = []
        self.actions: list[str] = []
        self.conns: list[ServerConnection] = []
        self.attempts = 0
        # Apply requests that change something but send no answer (an answer lost).
        # Empty syncs (the idle ones) are still answered, so timing cannot matter.
        self.hold = False
        self.refuse = False  # refuse handshakes (a server that is down)
        self.server = serve(
            self._handle, "127.0.0.1", 0, max_size=2**20, process_request=self._process_request
        )
        self.port = self.server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/ws/d/doc1/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def text(self) -> str:
        with self.lock:
            return self.texts[self.version]

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)

    # -- protocol ----------------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request: Any) -> Any:
        with self.lock:
            self.attempts += 1
            if self.refuse:
                return conn.respond(503, "down for the test\n")
        return None

    def _handle(self, conn: ServerConnection) -> None:
        with self.lock:
            self.conns.append(conn)
            number = len(self.conns)
        try:
            for raw in conn:
                self._on_frame(conn, number, str(raw))
        except ConnectionClosed:
            pass

    def _since(self, base: int) -> list[dict[str, Any]]:
        d: list[dict[str, Any]] = []
        for v in range(base + 1, self.version + 1):
            d = pydelta.compose(d, self.log[v])
        return d

    def _commit(self, d: list[dict[str, Any]]) -> None:
        if not d:
            return
        self.texts[self.version + 1] = pydelta.apply(self.texts[self.version], d)
        self.log[self.version + 1] = d
        self.version += 1

    def _on_frame(self, conn: ServerConnection, number: int, raw: str) -> None:
        with self.lock:
            self.frames.append((number, raw))
            msg = json.loads(raw)
            if msg["type"] == "hello":
                self.hellos.append(msg["name"])
                return
            assert msg["type"] == "sync", msg
            key = (msg["cid"], msg["rid"])
            if key not in self.answered:
                ops = pydelta.validate(msg["ops"])
                pydelta.apply(self.texts[msg["base"]], ops)
                since = self._since(msg["base"])
                # What the server had first stays first (transform(a, b, p) is b
                # rewritten to go after a, a's insert first at a tie when p).
                self._commit(pydelta.transform(since, ops, True))
                if msg["action"]:
                    self.actions.append(msg["action"])
                answer = {
                    "type": "ack",
                    "rid": msg["rid"],
                    "version": self.version,
                    "delta": pydelta.transform(ops, since, False),
                }
                self.answered[key] = json.dumps(answer)
            if not (self.hold and (msg["ops"] or msg["action"])):
                conn.send(self.answered[key])

    # -- the test's levers -------------------------------------------------------------
    def remote(self, d: list[dict[str, Any]]) -> None:
        """Someone else's edit on the current text, then a poke to every editor."""
        with self.lock:
            self._commit(pydelta.validate(d))
            self.broadcast(json.dumps({"type": "poke", "version": self.version}))

    def broadcast(self, frame: str) -> None:
        for conn in list(self.conns):
            with contextlib.suppress(ConnectionClosed):
                conn.send(frame)

    def syncs(self) -> list[tuple[int, dict[str, Any]]]:
        with self.lock:
            return [(n, json.loads(f)) for n, f in self.frames if f.startswith('{"type":"sync"')]

    def drop(self) -> None:
        """Cut the latest connection without a close frame: the browser sees 1006."""
        self.conns[-1].socket.shutdown(socket.SHUT_RDWR)

    def close_latest(self, code: int, reason: str = "") -> None:
        self.conns[-1].close(code, reason)


@pytest.fixture(scope="module")
def static_server() -> Iterator[StaticServer]:
    with StaticServer({}) as srv:
        yield srv


@pytest.fixture
def fake() -> Iterator[FakeTandem]:
    srv = FakeTandem()
    yield srv
    srv.stop()


@pytest.fixture
def editor_url(static_server: StaticServer, fake: FakeTandem) -> str:
    """The URL of an editor page wired to `fake` (initial text and version as a real one)."""
    path = f"/editor-{fake.port}.html"
    html = (
        PAGE.replace("WSURL", fake.url)
        .replace("VERSION", str(INITIAL_VERSION))
        .replace("PROTOCOL", json.dumps(browser_constants()))
        .replace("IMPORTMAP", import_map())
        .replace("TEXT", INITIAL_TEXT)
    )
    static_server.extra[path] = ("text/html; charset=utf-8", html.encode())
    return static_server.url + path


@pytest.fixture
def open_editor(
    browser: Browser, editor_url: str, fake: FakeTandem
) -> Iterator[Callable[..., Page]]:
    """`open_editor()` opens the editor page in a fresh browser context and waits until
    it is connected and its first sync reached the server; `open_editor(navigate=False)`
    only gives the (blank) page."""
    contexts = []
    errors: list[str] = []

    def make(navigate: bool = True) -> Page:
        context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if navigate:
            before = len(fake.conns)
            page.goto(editor_url)
            expect(page.locator("#status")).to_have_attribute("data-state", "connected")
            eventually(lambda: any(n > before for n, _ in fake.syncs()), what="the first sync")
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, errors


def value(page: Page) -> str:
    return page.evaluate("document.getElementById('editor').value")


def wait_synced(page: Page, fake: FakeTandem, timeout: float = 10.0) -> None:
    """Until the page holds the server's latest version with nothing unsent, and shows it."""

    def done() -> bool:
        s = page.evaluate(
            "(() => { const s = document.getElementById('status').dataset;"
            " return [s.state, s.synced, s.version, window.tandem.client.text,"
            " document.getElementById('editor').value]; })()"
        )
        return s[:3] == ["connected", "true", str(fake.version)] and s[3] == s[4] == fake.text

    eventually(done, timeout, "the page to be in step with the server")


def type_at_end(page: Page, text: str) -> None:
    page.locator("#editor").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)


def test_connects_says_hello_and_syncs_typing(
    open_editor: Callable[..., Page], fake: FakeTandem
) -> None:
    page = open_editor()
    assert value(page) == INITIAL_TEXT
    eventually(lambda: fake.syncs(), what="the first sync")
    assert len(fake.hellos) == 1 and re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", fake.hellos[0])
    # hello first, then a catch-up sync from the page's version with no ops
    assert json.loads(fake.frames[0][1])["type"] == "hello"
    first = fake.syncs()[0][1]
    assert first["rid"] == 1 and first["base"] == INITIAL_VERSION and first["ops"] == []
    assert first["action"] == "" and re.fullmatch(r"[0-9a-f]{32}", first["cid"])
    type_at_end(page, " world, 漢字 😀")
    wait_synced(page, fake)
    assert fake.text == "Hello world, 漢字 😀"
    expect(page.locator("#status .label")).to_have_text("Connected")
    # rids count up one by one; at most one request was in flight at any time
    rids = [m["rid"] for _, m in fake.syncs()]
    assert rids == list(range(1, len(rids) + 1))
    # the display name is kept for the next visit
    name = fake.hellos[0]
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    eventually(lambda: len(fake.hellos) == 2, what="the second hello")
    assert fake.hellos[1] == name


def test_remote_edits_arrive_and_the_caret_stays_put(
    open_editor: Callable[..., Page], fake: FakeTandem
) -> None:
    page = open_editor()
    page.locator("#editor").click()
    page.evaluate("document.getElementById('editor').setSelectionRange(2, 4, 'backward')")
    fake.remote([{"insert": ">> "}])
    wait_synced(page, fake)
    assert value(page) == ">> Hello"
    assert page.evaluate(
        "(() => { const t = document.getElementById('editor');"
        " return [t.selectionStart, t.selectionEnd, t.selectionDirection]; })()"
    ) == [5, 7, "backward"]
    # Type while someone else keeps inserting at the start: nothing lost, nothing doubled,
    # and what this person typed stays in one piece after their caret.
    page.keyboard.press("Control+End")
    typed = ""
    for i in range(30):
        ch = "abcdefghij"[i % 10]
        page.keyboard.type(ch)
        typed += ch
        if i % 3 == 0:
            fake.remote([{"insert": f"[{i}]"}])
    wait_synced(page, fake)
    assert value(page) == fake.text
    assert fake.text.endswith(">> Hello" + typed)
    assert all(f"[{i}]" in fake.text for i in range(0, 30, 3))
    # the caret followed the typing to the end
    assert page.evaluate("document.getElementById('editor').selectionStart") == len(fake.text)


def test_html_fragments_are_swapped_and_json_is_not(
    open_editor: Callable[..., Page], fake: FakeTandem
) -> None:
    page = open_editor()
    fake.broadcast(
        '<article id="preview" hx-swap-oob="true"><p>rendered <b>preview</b></p></article>'
    )
    expect(page.locator("#preview p")).to_have_text("rendered preview")
    fake.remote([{"retain": 5}, {"insert": "!"}])
    wait_synced(page, fake)
    assert '"type"' not in page.evaluate("document.body.innerText")
    # scripts in fragments do not run
    fake.broadcast('<article id="preview"><script>window.__pwned = 1</script><p>x</p></article>')
    expect(page.locator("#preview p")).to_have_text("x")
    assert page.evaluate("window.__pwned") is None


def test_an_unanswered_request_is_resent_unchanged_after_a_drop(
    open_editor: Callable[..., Page], fake: FakeTandem
) -> None:
    page = open_editor()
    wait_synced(page, fake)
    fake.hold = True  # the server applies the next request but the answer is lost
    type_at_end(page, "!")
    held = eventually(lambda: [m for _, m in fake.syncs() if m["ops"]], what="the request")[0]
    assert fake.text == "Hello!"
    type_at_end(page, "?")  # typed while waiting: not sent yet (one request in flight)
    time.sleep(0.2)
    assert len([m for _, m in fake.syncs() if m["ops"]]) == 1
    with fake.lock:
        fake.hold = False
        fake.drop()
    wait_synced(page, fake)
    assert "offline" in page.evaluate("window.__states")
    after = [m for n, m in fake.syncs() if n == 2]
    assert after[0] == held  # first thing on the new connection: the very same request
    assert fake.text == value(page) == "Hello!?"  # applied once, then the '?'
    assert next(f for n, f in fake.frames if n == 2).startswith('{"type":"hello"')


def test_offline_typing_is_kept_and_merged(
    open_editor: Callable[..., Page], fake: FakeTandem
) -> None:
    page = open_editor()
    wait_synced(page, fake)
    with fake.lock:
        fake.refuse = True
        fake.drop()
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    type_at_end(page, " offline")
    fake.remote([{"insert": "Someone: "}])  # meanwhile, someone else edits
    expect(page.locator("#status")).to_have_attribute("data-synced", "false")
    expect(page.locator("#status .label")).to_have_text(
        "Can't reach the server — your edits are kept and will sync"
    )
    # Shown whole: only a message (which #status-detail repeats) is cut short.
    assert page.locator("#status .label").evaluate("el => el.scrollWidth <= el.clientWidth")
    # let a few reconnects fail so the backoff grows, then come back online
    attempts = fake.attempts
    eventually(lambda: fake.attempts >= attempts + 4, timeout=15, what="retries")
    fake.refuse = False
    start = time.monotonic()
    page.evaluate("window.dispatchEvent(new Event('online'))")
    wait_synced(page, fake)
    assert time.monotonic() - start < 2.0  # the online event reconnects at once
    assert fake.text == value(page) == "Someone: Hello offline"


def test_close_codes(open_editor: Callable[..., Page], fake: FakeTandem) -> None:
    page = open_editor()
    wait_synced(page, fake)
    fake.close_latest(1000)  # the extension would give up after 1000; the client does not
    eventually(lambda: len(fake.conns) == 2, what="a reconnect after 1000")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    fake.close_latest(1012)  # service restart: retried
    eventually(lambda: len(fake.conns) == 3, what="a reconnect after 1012")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    # The code Tandem's server sends for "reconnect and resend" (it cannot send 1012):
    # the extension would give up after it; the client does not.
    fake.close_latest(CLOSE_RETRY, "the document is reloading")
    eventually(lambda: len(fake.conns) == 4, what="a reconnect after CLOSE_RETRY")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    fake.close_latest(4404, "deleted")  # final
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    expect(page.locator("#status .label")).to_have_text("This document was deleted.")
    page.evaluate("window.dispatchEvent(new Event('online'))")
    time.sleep(1.5)
    assert len(fake.conns) == 4


def test_undo_and_redo_keys_are_sent_as_actions(
    open_editor: Callable[..., Page], fake: FakeTandem
) -> None:
    page = open_editor()
    type_at_end(page, "abc")
    wait_synced(page, fake)
    page.keyboard.press("Control+z")
    eventually(lambda: fake.actions == ["undo"], what="an undo request")
    page.keyboard.press("Control+Shift+z")
    page.keyboard.press("Control+y")
    eventually(lambda: fake.actions == ["undo", "redo", "redo"], what="two redo requests")
    assert value(page) == "Helloabc"  # the browser's own undo never ran
    undo = next(m for _, m in fake.syncs() if m["action"] == "undo")
    assert undo["ops"] == [] and undo["sel"] == [8, 8]


def test_a_huge_paste_is_split_under_the_message_limit(
    open_editor: Callable[..., Page], fake: FakeTandem
) -> None:
    page = open_editor()
    wait_synced(page, fake)
    page.evaluate("navigator.clipboard.writeText('Pasted line 😀 漢字\\n'.repeat(60000))")
    page.locator("#editor").click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Control+v")
    wait_synced(page, fake, timeout=30)
    assert fake.text == "Hello" + "Pasted line 😀 漢字\n" * 60000
    sizes = [len(f.encode()) for _, f in fake.frames]
    assert max(sizes) < 2**20 and len([s for s in sizes if s > 100_000]) >= 2
    assert len(fake.conns) == 1  # never closed for a too-big message


def test_closing_with_unsent_edits_asks_first(
    open_editor: Callable[..., Page], fake: FakeTandem
) -> None:
    page = open_editor()
    wait_synced(page, fake)
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    with page.expect_event("close"):
        page.close(run_before_unload=True)  # nothing unsent: no question
    assert dialogs == []
    page = open_editor()
    page.on("dialog", on_dialog)
    fake.hold = True
    type_at_end(page, "unsent")
    with page.expect_event("dialog") as info:
        page.close(run_before_unload=True)
    assert info.value.type == "beforeunload"
    assert dialogs == ["beforeunload"] and not page.is_closed()


def test_remote_changes_wait_for_an_ime_composition(
    open_editor: Callable[..., Page], fake: FakeTandem
) -> None:
    page = open_editor()
    wait_synced(page, fake)
    page.locator("#editor").click()
    page.keyboard.press("Control+End")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "n", "selectionStart": 1, "selectionEnd": 1})
    cdp.send("Input.imeSetComposition", {"text": "ni", "selectionStart": 2, "selectionEnd": 2})
    fake.remote([{"insert": "A: "}])  # arrives mid-composition: must not break it
    page.wait_for_timeout(300)
    assert value(page) == "Helloni"
    cdp.send("Input.imeSetComposition", {"text": "你", "selectionStart": 1, "selectionEnd": 1})
    cdp.send("Input.insertText", {"text": "你"})
    wait_synced(page, fake)
    assert fake.text == value(page) == "A: Hello你"
    assert page.evaluate("document.getElementById('editor').selectionStart") == len("A: Hello你")
    # nothing half-composed was ever sent
    sent = [op["insert"] for _, m in fake.syncs() for op in m["ops"] if "insert" in op]
    assert sent == ["你"]


def test_text_typed_before_the_script_runs_is_kept(
    open_editor: Callable[..., Page], fake: FakeTandem, editor_url: str
) -> None:
    page = open_editor(navigate=False)
    held: list[Any] = []
    page.route("**/static/js/editor.js", lambda route: held.append(route))
    page.goto(editor_url, wait_until="commit")
    page.wait_for_selector("#editor")
    page.locator("#editor").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" early")
    assert held, "the module was requested"
    held[0].continue_()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    wait_synced(page, fake)
    assert fake.text == "Hello early"


def test_the_socket_opens_while_the_editor_loads_and_waits_for_it(
    open_editor: Callable[..., Page], fake: FakeTandem, editor_url: str
) -> None:
    # editor.js imports the editor (editing.js: CodeMirror) without holding up
    # DOMContentLoaded, so htmx opens the socket meanwhile. Until the editor is here the
    # page says "connecting", sends only its name, and keeps what the server says for
    # it. (The real server pokes and sends carets only after a first sync; a fake that
    # does so earlier checks that nothing is lost whatever comes.)
    page = open_editor(navigate=False)
    editing = hold_the_editor(page, editor_url, fake)
    fake.remote([{"retain": 5}, {"insert": " world"}])  # a poke, before the editor is here
    # Someone's caret after "Hello", as of the version after the "!" typed below: said
    # once, now, and not again (it does not move).
    carets = [["x1", "Ada", 200, 5, 5]]
    fake.broadcast(json.dumps({"type": "carets", "version": fake.version + 1, "carets": carets}))
    page.locator("#editor textarea").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("!")  # into the server's text area: the editor picks it up
    page.wait_for_timeout(300)
    assert page.evaluate("document.getElementById('status').dataset.state") == "connecting"
    assert "connected" not in page.evaluate("window.__states")
    assert len(fake.hellos) == 1 and fake.syncs() == []
    editing.continue_()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    wait_synced(page, fake)
    assert fake.text == value(page) == "Hello world!"
    assert len(fake.conns) == 1 and len(fake.hellos) == 1
    expect(page.locator(".remote-caret-label")).to_have_text("Ada")


def hold_the_editor(page: Page, editor_url: str, fake: FakeTandem) -> Any:
    """Open the page with editing.js held back once the socket is open; its route."""
    held: list[Any] = []
    before = len(fake.conns)
    page.route("**/static/js/editing.js", lambda route: held.append(route))
    page.goto(editor_url, wait_until="commit")
    for _ in range(200):  # Playwright calls the route handler only while we call it
        if len(fake.conns) > before and held:
            break
        page.wait_for_timeout(25)
    assert len(fake.conns) == before + 1 and held
    return held[0]


def test_leaving_with_text_typed_before_the_editor_loaded_asks_first(
    open_editor: Callable[..., Page], fake: FakeTandem, editor_url: str
) -> None:
    page = open_editor(navigate=False)
    hold_the_editor(page, editor_url, fake)
    with page.expect_event("close"):
        page.close(run_before_unload=True)  # nothing typed: no question
    page = open_editor(navigate=False)
    hold_the_editor(page, editor_url, fake)
    page.locator("#editor textarea").click()
    page.keyboard.type("draft")
    with page.expect_event("dialog") as info:
        page.close(run_before_unload=True)
    assert info.value.type == "beforeunload"
    info.value.dismiss()
    assert not page.is_closed()


def test_an_editor_that_cannot_load_says_so_and_leaves_the_room(
    open_editor: Callable[..., Page], fake: FakeTandem, editor_url: str
) -> None:
    page = open_editor(navigate=False)
    hold_the_editor(page, editor_url, fake).abort()
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    expect(page.locator("#status")).to_contain_text("The editor did not load")
    eventually(lambda: fake.conns[0].close_code == 1000, what="the socket closed")
    page.wait_for_timeout(1500)  # longer than the first reconnect delays
    assert len(fake.conns) == 1 and fake.syncs() == []
