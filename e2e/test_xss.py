"""The XSS corpus (tests/xss_payloads.txt) in a real Chromium: no payload runs anywhere.

The payloads go everywhere a person can put text: a document's text, titles (also renamed
live), display names (presence, remote carets, history authors), version labels, imported
files (names and contents). One browser context then visits every place they show: the
list and its import, the editor (CodeMirror, preview, presence, carets, title), the share
dialog, the history panel, a past version and its changes, the live view as it follows
(Server-Sent Events), and the HTML exports opened as files.

The context ignores the Content-Security-Policy (bypass_csp): this proves the escaping and
the sanitiser on their own; the policy is a second wall (e2e/test_csp.py). A payload that
runs calls window.__xss(n) or asks for /__xss/n; both are watched, and so are dialogs. A
scan of each page's DOM finds what would run on a click or a hover (handlers, javascript:
URLs, frames, foreign scripts, htmx attributes in user content).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from websockets.sync.client import ClientConnection, connect

from e2e.client import HttpClient, eventually
from e2e.conftest import CreatedDocument
from e2e.server import TandemServer
from tests.xss_corpus import CANARY, Payload, load, packed

MakeDocument = Callable[..., CreatedDocument]
NewPage = Callable[..., Page]
PAYLOADS = load()

# What would run on a click or a hover, or load a frame, found in the page as it is now.
SCAN = """() => {
  const found = [];
  const urlAttributes = ["href", "src", "action", "formaction", "data", "srcdoc",
    "xlink:href", "to"];
  const userContent = "#preview, .markdown-body, #presence, .cm-content, .doc-title, " +
    ".history-label, .history-authors, #import-result, #changes, .live-title, #share-heading";
  for (const el of document.querySelectorAll("*")) {
    for (const a of el.attributes) {
      const name = a.name.toLowerCase();
      if (name.startsWith("on")) found.push(`${el.tagName}[${name}]`);
      if (urlAttributes.includes(name)) {
        // As the URL parser reads it: ends trimmed, tabs and line breaks dropped.
        const v = a.value.replace(/^[\\u0000-\\u0020]+|[\\u0000-\\u0020]+$/g, "")
          .replace(/[\\t\\n\\r]/g, "").toLowerCase();
        if (/^(javascript|vbscript|data):/.test(v)) found.push(`${el.tagName}[${name}]=${a.value}`);
      }
    }
    if (["IFRAME", "FRAME", "OBJECT", "EMBED", "BASE", "TEMPLATE", "NOSCRIPT"].includes(el.tagName))
      found.push(el.tagName);
    if (el.tagName === "META" && /refresh/i.test(el.httpEquiv)) found.push("META refresh");
  }
  for (const s of document.scripts) {
    const ours = s.src ? new URL(s.src).pathname.startsWith("/static/")
      : ["importmap", "application/json"].includes(s.type);
    if (!ours) found.push("SCRIPT " + s.outerHTML.slice(0, 80));
  }
  // Markup that htmx would act on, inside what people wrote.
  for (const el of document.querySelectorAll(userContent)) {
    for (const inner of el.querySelectorAll("*"))
      for (const a of inner.attributes)
        if (/^(hx-|data-hx-|ws-|sse-)/.test(a.name))
          found.push(`${inner.tagName}[${a.name}] in ${el.id || el.className}`);
  }
  return found;
}"""


class Watch:
    """Every sign of a payload that ran, from any page of the context."""

    def __init__(self, page: Page) -> None:
        self.calls: list[Any] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.unsafe: dict[str, list[str]] = {}
        context = page.context
        context.expose_binding("__xss", lambda _source, n=None: self.calls.append(n))
        context.on("request", self._request)
        page.on("dialog", self._dialog)

    def _request(self, request: Any) -> None:
        if CANARY in request.url:
            self.requests.append(request.url)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def scan(self, page: Page, where: str) -> None:
        found = page.evaluate(SCAN)
        if found:
            self.unsafe[where] = found

    def ran(self) -> list[str]:
        """The payloads that ran (each once, with its text), besides the controls (0)."""
        numbers = {n for n in self.calls if n != 0}
        numbers |= {int(n) for url in self.requests for n in re.findall(r"/__xss/(\d+)", url)}
        numbers.discard(0)
        ran = [
            f"{n}: {PAYLOADS[n - 1].text!r}"
            if isinstance(n, int) and 0 < n <= len(PAYLOADS)
            else f"{n!r}"
            for n in sorted(numbers, key=str)
        ]
        return ran + [f"dialog {m!r}" for m in self.dialogs]


def file_name(payload: Payload) -> str:
    # A file name holds anything but "/" and NUL; line breaks would not survive a form.
    name = re.sub(r"[\x00-\x1f/]", "_", payload.text)[:90]
    return f"{name}.md"


class People:
    """One protocol client per payload: its name is the payload; each types a character
    and selects text near the start, so its caret shows in everyone's view."""

    def __init__(self, server: TandemServer, doc_id: str, base: int) -> None:
        self.url = server.url.replace("http://", "ws://") + f"/ws/d/{doc_id}/"
        self.base = base
        self.sockets: list[ClientConnection] = []
        self.open = ExitStack()
        self.stop = threading.Event()
        self.drainer = threading.Thread(target=self._drain, daemon=True)

    def join(self) -> None:
        for payload in PAYLOADS:
            ws = self.open.enter_context(connect(self.url, open_timeout=10, close_timeout=1))
            ws.send(json.dumps({"type": "hello", "name": payload.text}))
            cid = f"xss-person-{payload.n:04d}"
            ops = [{"insert": "·"}]
            sync = {"type": "sync", "cid": cid, "rid": 1, "base": self.base, "ops": ops}
            ws.send(json.dumps({**sync, "sel": [payload.n % 40, payload.n % 40 + 3]}))
            self.sockets.append(ws)
        self.drainer.start()

    def _drain(self) -> None:
        # Read what the server sends, so no one of them looks like a slow reader.
        while not self.stop.is_set():
            for ws in self.sockets:
                try:
                    while True:
                        ws.recv(timeout=0)
                except Exception:
                    pass
            time.sleep(0.05)

    def leave(self) -> None:
        self.stop.set()
        self.drainer.join(5)
        self.open.close()


@contextmanager
def people_in(server: TandemServer, doc_id: str, base: int) -> Iterator[People]:
    people = People(server, doc_id, base)
    try:
        people.join()
        yield people
    finally:
        people.leave()


def test_no_payload_runs_anywhere(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer, tmp_path: Path
) -> None:
    http = HttpClient(server.url)
    corpus_text = "\n\n".join(p.text for p in PAYLOADS) + "\n"
    doc = make_document("XSS corpus", corpus_text)
    titled = [make_document(title, title) for title in packed(200)]

    page = new_page(bypass_csp=True)
    watch = Watch(page)
    page.add_init_script("localStorage.setItem('tandem:name', 'Watcher')")

    try:
        visit_everything(page, watch, http, server, doc, titled, tmp_path)
    finally:
        # A payload that ran (or sits ready to) is the finding, even if it also broke the
        # page on the way and stopped the visit early.
        page.wait_for_timeout(500)  # late timers, late loads
        watch.scan(page, "the last page")
        found = watch.ran() + [f"{k}: {v}" for k, v in watch.unsafe.items()]
        assert found == [], "\n".join(found)[:4000]
    eventually(lambda: 0 in watch.calls and watch.requests, 5, "the controls arrived")


def visit_everything(
    page: Page,
    watch: Watch,
    http: HttpClient,
    server: TandemServer,
    doc: CreatedDocument,
    titled: list[CreatedDocument],
    tmp_path: Path,
) -> None:
    corpus_text = doc.text
    # The list and an import of one file per payload (its name and its text).
    page.goto("/")
    page.evaluate(f"() => {{ __xss(0); fetch('{CANARY}0'); }}")  # the controls
    paths = []
    for payload in PAYLOADS:
        path = tmp_path / file_name(payload)
        path.write_text(payload.text, encoding="utf-8")
        paths.append(str(path))
    page.set_input_files("#import", paths)
    expect(page.locator("#import-result li")).to_have_count(len(PAYLOADS), timeout=30_000)
    watch.scan(page, "list after import")
    page.reload()
    expect(page.locator("#document-list")).to_contain_text("XSS corpus")
    watch.scan(page, "list")

    # The editor, with a person per payload (presence, carets, history authors).
    page.goto(doc.path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    with people_in(server, doc.id, base=1) as people:
        expect(page.locator("#presence [data-name]")).to_have_count(len(PAYLOADS) + 1)
        expect(page.locator(".remote-caret").first).to_be_attached()
        page.locator("#editor").focus()
        page.keyboard.type("typed by the watcher ")
        watch.scan(page, "editor with everyone")

        # Titles, renamed while the editor is open (the title goes out to every editor).
        token = http.csrf_token()
        for title in packed(200):
            response = http.post(
                f"/d/{doc.id}/rename/", form={"title": title, "csrfmiddlewaretoken": token}
            )
            assert response.status == 200, response.status
        expect(page.locator("#title input")).to_have_value(packed(200)[-1])
        watch.scan(page, "editor after renames")
        page.click("#share")
        expect(page.locator("#share-body")).not_to_contain_text("Making links")
        watch.scan(page, "share dialog")
        page.keyboard.press("Escape")

        # Version labels, one per payload (cut to the 100 characters a label holds).
        latest = http.get(f"/api/documents/{doc.id}/").json()["version"]
        assert latest > len(PAYLOADS), latest
        for payload in PAYLOADS:
            label = {"label": " ".join(payload.text.split())[:100], "version": 1 + payload.n}
            response = http.post(f"/api/documents/{doc.id}/versions", json_body=label)
            assert response.status == 201, response.text
        page.click("#history-button")
        expect(page.locator(".history-entry.named").first).to_be_visible()
        watch.scan(page, "history panel")
        page.keyboard.press("Escape")

        # A past version, its changes, and the live view as the people go on typing.
        page.goto(f"/d/{doc.id}/v/1/")
        watch.scan(page, "version 1")
        page.goto(f"/d/{doc.id}/v/1/?against=current")
        watch.scan(page, "changes since version 1")
        page.goto(f"/d/{doc.id}/live")
        expect(page.locator("#presence [data-name]")).to_have_count(len(PAYLOADS))
        writer = people.sockets[0]
        version = http.get(f"/api/documents/{doc.id}/").json()["version"]
        sync = {"type": "sync", "cid": "xss-person-0001", "rid": 2, "base": version}
        writer.send(json.dumps({**sync, "ops": [{"insert": "live " + corpus_text}]}))
        expect(page.locator("#preview")).to_contain_text("live ", timeout=15_000)
        watch.scan(page, "live view")

    # A document per packed title, in the editor.
    page.goto(titled[0].path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    watch.scan(page, "editor of a payload title")

    # The exports, opened as files (their own CSP applies; this context ignores it).
    for exported in (doc, titled[0], titled[-1]):
        response = http.get(f"/d/{exported.id}/export.html")
        path = tmp_path / f"export-{exported.id}.html"
        path.write_bytes(response.body)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        watch.scan(page, f"export of {exported.id}")
