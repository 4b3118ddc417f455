"""The Content-Security-Policy in a real Chromium: every page of Tandem loads and works with
no violation at all (the policy allows no inline script or style, no eval), and the
things the policy could silently break still work: CodeMirror's own styles (by nonce),
the people's colours (data-hue, set through the CSSOM), htmx swaps, the WebSocket and the
live view's event stream."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from e2e.client import HttpClient, eventually
from e2e.conftest import CreatedDocument
from e2e.editor_page import open_editor
from e2e.server import TandemServer

MakeDocument = Callable[..., CreatedDocument]
NewPage = Callable[..., Page]

# Every violation, from any page of the context, survives navigation: the init script
# reports it through a binding as it happens.
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} ` +
    `at ${e.sourceFile || location.href}:${e.lineNumber} (${e.sample || ""})`);
});
"""


class Violations:
    """What the pages of one browser context reported: CSP violations, console errors
    and uncaught exceptions."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def watch(self, context: BrowserContext) -> None:
        context.expose_binding("__cspViolation", lambda _source, text: self.found.append(text))
        context.add_init_script(_REPORT_VIOLATIONS)

    def watch_page(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"page error: {error}"))
        return page

    def _console(self, message: Any) -> None:
        # A 403/404 page's own status is logged as an error too: not a violation.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.found.append(f"console error: {message.text}")


def watched(new_page: NewPage, violations: Violations, **options: Any) -> Page:
    page = new_page(**options)
    violations.watch(page.context)
    return violations.watch_page(page)


def type_at_end(page: Page, text: str) -> None:
    editor = page.locator("#editor")
    editor.focus()
    editor.evaluate("el => el.setSelectionRange(el.value.length, el.value.length)")
    page.keyboard.type(text)


def test_every_page_loads_and_works_without_a_csp_violation(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer, tmp_path: Path
) -> None:
    violations = Violations()
    doc = make_document(
        "Policy check", "# Heading\n\nSome *text* and a [link](https://example.com).\n"
    )
    page = watched(new_page, violations)
    page.add_init_script("localStorage.setItem('tandem:name', 'Ann Example')")

    # The list, with its live updates and the import (a module script and a fetch).
    page.goto("/")
    expect(page.locator("#document-list")).to_contain_text("Policy check")
    (tmp_path / "Imported notes.md").write_text("# Imported\n")
    page.set_input_files("#import", str(tmp_path / "Imported notes.md"))
    expect(page.locator("#import-result")).to_contain_text("Imported “Imported notes”")
    page.fill("#filter", "Policy")
    expect(page.locator("#document-list")).not_to_contain_text("Imported notes")

    # The editor: CodeMirror's styles come in by nonce (without them it has no layout).
    page.goto(doc.path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    editor_display = page.locator(".cm-editor").evaluate("el => getComputedStyle(el).display")
    assert editor_display == "flex", "CodeMirror's base theme did not apply"
    nonce = page.locator('meta[name="csp-nonce"]').evaluate("el => el.nonce")
    header = server_csp(server, doc.path)
    assert nonce and f"'nonce-{nonce}'" not in header, "each response has its own nonce"
    type_at_end(page, "\ntyped under the policy\n")
    expect(page.locator("#preview")).to_contain_text("typed under the policy")

    # A second person: presence colours are set from data-hue, not a style attribute.
    other = open_editor(lambda **o: watched(new_page, violations, **o), doc.url, "Bo Sample")
    typed = doc.text + "\ntyped under the policy\n"
    expect(other.locator("#editor")).to_have_js_property("value", typed)
    bo = page.locator("#presence [data-name='Bo Sample']")
    expect(bo).to_be_visible()
    hue = bo.evaluate("el => getComputedStyle(el).getPropertyValue('--hue').trim()")
    assert hue == bo.get_attribute("data-hue"), (hue, bo.get_attribute("data-hue"))
    type_at_end(other, "bo types\n")
    expect(page.locator("#editor")).to_have_js_property("value", typed + "bo types\n")

    # The title (an htmx form), the share dialog and the history panel (htmx partials).
    page.fill("#title input[name='title']", "Policy checked")
    page.locator("#title input[name='title']").press("Enter")
    eventually(
        lambda: (
            HttpClient(server.url).get(f"/api/documents/{doc.id}/").json()["title"]
            == "Policy checked"
        ),
        10,
        "the rename",
    )
    page.click("#share")
    expect(page.locator("#share-dialog")).to_be_visible()
    expect(page.locator("#share-body")).not_to_contain_text("Making links")
    page.keyboard.press("Escape")
    page.click("#history-button")
    expect(page.locator(".history-entry").first).to_be_visible()
    page.keyboard.press("Escape")

    # A past version, its changes, the live view (Server-Sent Events) as it follows.
    page.goto(f"/d/{doc.id}/v/1/")
    expect(page.locator("#version-preview")).to_contain_text("Heading")
    page.goto(f"/d/{doc.id}/v/1/?against=current")
    expect(page.locator("main")).to_contain_text("typed under the policy")
    page.goto(f"/d/{doc.id}/live")
    expect(page.locator("#presence [data-name='Bo Sample']")).to_be_visible()
    type_at_end(other, "seen live\n")
    expect(page.locator("#preview")).to_contain_text("seen live")
    live_bo = page.locator("#presence [data-name='Bo Sample']")
    assert live_bo.evaluate("el => getComputedStyle(el).getPropertyValue('--hue').trim()") == hue

    # Error pages.
    page.goto("/d/no-such-document/v/1/")
    page.goto("/nothing/here")

    assert violations.found == [], "\n".join(violations.found)


def server_csp(server: TandemServer, path: str) -> str:
    response = HttpClient(server.url).get(path)
    return str(response.headers.get("Content-Security-Policy", ""))


def test_static_files_and_the_event_stream_carry_the_headers(
    make_document: MakeDocument, server: TandemServer
) -> None:
    """Through the real server: whitenoise's files (served before Django's views) and the
    live view's stream (Channels, not Django) carry the same defences as the pages."""
    doc = make_document("Headers", "text")
    page = HttpClient(server.url).get(doc.path).text
    script = re.search(r'src="(/static/js/[^"]+)"', page)
    assert script is not None
    for path in (script.group(1), "/static/css/tandem.css", "/favicon.ico"):
        response = HttpClient(server.url).get(path)
        assert_headers(response.headers, path)
    with urllib.request.urlopen(f"{server.url}/d/{doc.id}/events", timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert_headers(dict(stream.headers), "the event stream")


def assert_headers(headers: dict[str, str], where: str) -> None:
    lower = {k.lower(): v for k, v in headers.items()}
    assert "frame-ancestors 'none'" in lower.get("content-security-policy", ""), where
    assert "unsafe-inline" not in lower["content-security-policy"], where
    assert lower.get("x-content-type-options") == "nosniff", where
    assert lower.get("referrer-policy") == "same-origin", where
    assert lower.get("cross-origin-opener-policy") == "same-origin", where
