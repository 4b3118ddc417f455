"""The editing surface on the real page (static/js/surface.js: CodeMirror 6 behind
`#editor`): highlighting in light and dark, search and replace, a 1 MB document, IME,
read-only mode, and the page before (or without) any script."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from e2e.client import HttpClient, eventually
from e2e.conftest import CreatedDocument
from e2e.server import TandemServer

NewPage = Callable[..., Page]
MakeDocument = Callable[..., CreatedDocument]

MARKDOWN = """# Heading 😀

Some *emphasis*, **strong**, `code` and a [link](https://example.org).

- a list item 漢字
- e\u0301 combining
"""


def open_editor(new_page: NewPage, doc: CreatedDocument, **options: Any) -> Page:
    page = new_page(**options)
    page.goto(doc.path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page


def value(page: Page) -> str:
    return str(page.locator("#editor").evaluate("el => el.value"))


def stored_text(server: TandemServer, doc: CreatedDocument) -> str:
    return str(HttpClient(server.url).get(f"/api/documents/{doc.id}/").json()["text"])


SPY_ON_SENDS = """
const send = WebSocket.prototype.send;
window.__sent = [];
WebSocket.prototype.send = function (data) {
  window.__sent.push(data);
  return send.call(this, data);
};
"""


def sent_syncs(page: Page) -> list[dict[str, Any]]:
    """The sync requests the page sent (it must have been opened after spy_on_sends)."""
    frames = [json.loads(f) for f in page.evaluate("window.__sent") if f.startswith("{")]
    return [f for f in frames if f.get("type") == "sync"]


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_markdown_is_highlighted_in_light_and_dark(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    doc = make_document("Highlight", MARKDOWN)
    colours = {}
    for scheme in ["light", "dark"]:
        page = open_editor(new_page, doc, color_scheme=scheme)
        content = page.locator("#editor .cm-content")
        expect(content).to_be_visible()
        for cls, text in [
            ("md-heading", "Heading"),
            ("md-em", "emphasis"),
            ("md-strong", "strong"),
            ("md-code", "code"),
            ("md-link", "link"),
            ("md-url", "https://example.org"),
        ]:
            expect(content.locator(f".{cls}", has_text=text).first).to_be_visible()
        expect(content.locator(".md-list-mark").first).to_have_text("-")
        heading = content.locator(".md-heading", has_text="Heading").first
        colours[scheme] = heading.evaluate("el => getComputedStyle(el).color")
        text_colour = content.evaluate("el => getComputedStyle(el).color")
        assert colours[scheme] != text_colour  # headings stand out from plain text
    assert colours["light"] != colours["dark"]


def test_search_and_replace_reaches_everyone(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    text = "one 😀 two 😀 three e\u0301 😀\n"
    doc = make_document("Search", text)
    a, b = open_editor(new_page, doc), open_editor(new_page, doc)
    a.locator("#editor").focus()
    a.keyboard.press("Control+Home")
    a.keyboard.press("Control+f")
    search = a.locator("#editor .cm-search input[name=search]")
    expect(search).to_be_focused()
    search.press_sequentially("😀")
    search.press("End")  # the panel reads its fields on keyup (an emoji is typed without keys)
    a.keyboard.press("Enter")  # finds the first match and selects it (UTF-16 offsets)
    assert a.locator("#editor").evaluate("el => [el.selectionStart, el.selectionEnd]") == [4, 6]
    replace = a.locator("#editor .cm-search input[name=replace]")
    replace.press_sequentially("漢字")
    replace.press("End")
    a.locator("#editor .cm-search button[name=replaceAll]").click()
    expected = "one 漢字 two 漢字 three e\u0301 漢字\n"
    eventually(lambda: value(a) == value(b) == stored_text(server, doc) == expected, 10)


def test_a_1_mb_document_types_and_receives_remote_edits(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    line = "A line of text with *emphasis*, 😀 and 漢字 e\u0301, to fill a megabyte.\n"
    # Paragraphs of 20 lines, and the first one a single 200 KB paragraph (a pasted log).
    para = line * 20 + "\n"
    big = "# Big\n\n" + line * 2500 + "\n" + para * (800_000 // len(para.encode()))
    doc = make_document("Big", big)
    a, b = open_editor(new_page, doc), open_editor(new_page, doc)
    assert value(a) == big
    # The page left the preview and the word count to the room: both arrive.
    expect(a.locator("#preview h1")).to_have_text("Big", timeout=10_000)
    expect(a.locator("#statusline .words")).to_have_text(re.compile(r"^[\d,]+ words$"))
    # Only what is in view is in the DOM (CodeMirror draws the viewport).
    assert a.locator("#editor .cm-line").count() < 500
    a.locator("#editor").focus()
    a.keyboard.press("Control+End")
    a.keyboard.type("end!")
    b.locator("#editor").focus()
    b.locator("#editor").evaluate("el => el.setSelectionRange(8, 8)")
    b.keyboard.type("[b]")
    started = time.monotonic()
    eventually(lambda: value(a) == value(b), 20, "both pages to hold the same text")
    expected = big[:8] + "[b]" + big[8:] + "end!"
    assert value(a) == expected
    eventually(lambda: stored_text(server, doc) == expected, 10)
    # Remote edits kept each caret where its owner left it.
    assert a.locator("#editor").evaluate("el => el.selectionStart") == utf16(expected)
    assert b.locator("#editor").evaluate("el => el.selectionStart") == 11
    assert time.monotonic() - started < 20


# Whether each insertText's default was prevented (by surface.js typing directly),
# seen after every handler has run.
SPY_ON_TYPING = """
window.__typed = [];
window.addEventListener('beforeinput', (e) => {
  if (e.inputType === 'insertText') window.__typed.push([e.data, e.defaultPrevented]);
});
"""

# The editor's selection put at `held`, the browser's at `shown`, and a beforeinput for
# typing in the same task (before the editor can hear of the browser's); returns whether
# the editor took it.
SYNTHETIC_INSERT = """([data, held, shown]) => {
  const editor = document.getElementById('editor');
  editor.setSelectionRange(held, held);
  const {node, offset} = editor.view.domAtPos(shown);
  document.getSelection().collapse(node, offset);
  const e = new InputEvent('beforeinput', {inputType: 'insertText', data, bubbles: true,
                                           cancelable: true});
  editor.querySelector('.cm-content').dispatchEvent(e);
  return e.defaultPrevented;
}"""


def test_typing_goes_straight_to_the_editor_where_the_browser_agrees(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    """surface.js takes a typed character from beforeinput (no DOM round trip) on a
    desktop browser when the browser would type over exactly the editor's selection;
    otherwise, and on touch devices, CodeMirror's own path types it. Both reach
    everyone."""
    doc = make_document("Direct", "hello world")
    a = new_page()
    a.add_init_script(SPY_ON_TYPING + SPY_ON_SENDS)
    a.goto(doc.path)
    expect(a.locator("#status")).to_have_attribute("data-state", "connected")
    b = open_editor(new_page, doc)
    editor = a.locator("#editor")
    editor.focus()
    a.keyboard.press("End")
    a.keyboard.type("!😀")
    editor.evaluate("el => el.setSelectionRange(0, 5)")  # "hello", typed over
    a.keyboard.type("Hi")
    expected = "Hi world!😀"
    eventually(lambda: value(a) == value(b) == stored_text(server, doc) == expected, 10)
    assert a.evaluate("window.__typed") == [["!", True], ["😀", True], ["H", True], ["i", True]]
    # Sent as what was typed (edits made while a request is out go together), never as
    # a rewrite of the text around it.
    ops = [op for m in sent_syncs(a) for op in m["ops"]]
    assert sorted("".join(op.get("insert", "") for op in ops)) == sorted("!😀Hi")
    assert sum(op.get("delete", 0) for op in ops) == len("hello")
    # A click, then typing at once: the text lands where the click put the caret.
    box = a.locator("#editor .cm-line").first.bounding_box()
    assert box is not None
    a.mouse.click(box["x"] + 1, box["y"] + box["height"] / 2)  # before the first letter
    a.keyboard.type("Z")
    eventually(lambda: value(b) == "Z" + expected, 10)
    # The browser means another place than the editor's selection: left to CodeMirror.
    assert a.evaluate(SYNTHETIC_INSERT, ["x", 3, 5]) is False
    assert a.evaluate(SYNTHETIC_INSERT, ["x", 3, 3]) is True
    eventually(lambda: value(b) == "ZHix world!😀", 10)


def test_typing_on_a_touch_device_goes_through_the_browser(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    """Touch devices (their keyboards keep their own idea of the text, and Android
    ignores a cancelled beforeinput) type the browser's way, which CodeMirror reads."""
    doc = make_document("Touch", "ab")
    a = new_page(has_touch=True)
    a.add_init_script(SPY_ON_TYPING)
    a.goto(doc.path)
    expect(a.locator("#status")).to_have_attribute("data-state", "connected")
    a.locator("#editor").focus()
    a.keyboard.press("End")
    a.keyboard.type("c😀")
    eventually(lambda: stored_text(server, doc) == "abc😀", 10)
    assert a.evaluate("window.__typed") == [["c", False], ["😀", False]]


def test_ime_composition_is_not_sent_half_composed(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("IME", "ab")
    page = new_page()
    page.add_init_script(SPY_ON_SENDS)
    page.goto(doc.path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.locator("#editor").focus()
    page.locator("#editor").evaluate("el => el.setSelectionRange(1, 1)")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "n", "selectionStart": 1, "selectionEnd": 1})
    cdp.send("Input.imeSetComposition", {"text": "ni", "selectionStart": 2, "selectionEnd": 2})
    cdp.send("Input.imeSetComposition", {"text": "你", "selectionStart": 1, "selectionEnd": 1})
    page.wait_for_timeout(300)
    assert value(page) == "a你b"  # shown while composing ...
    assert stored_text(server, doc) == "ab"  # ... but not sent
    cdp.send("Input.insertText", {"text": "你"})
    eventually(lambda: stored_text(server, doc) == "a你b", 10, "the committed text")
    inserted = [op["insert"] for m in sent_syncs(page) for op in m["ops"] if "insert" in op]
    assert inserted == ["你"]


def test_read_only_refuses_typing_paste_and_drop(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Read only", "look, don't touch")
    writer = open_editor(new_page, doc)
    page = open_editor(new_page, doc, permissions=["clipboard-read", "clipboard-write"])
    page.locator("#editor").evaluate("el => { el.readOnly = true; }")
    expect(page.locator("#editor .readonly-note")).to_contain_text("Read-only")
    expect(page.locator("#editor .cm-content")).to_have_attribute("aria-readonly", "true")
    page.locator("#editor").click()
    page.keyboard.press("End")
    page.keyboard.type("typed")
    page.keyboard.press("Backspace")
    page.evaluate("navigator.clipboard.writeText('pasted')")
    page.keyboard.press("Control+v")
    page.evaluate("document.execCommand('insertText', false, 'exec')")
    page.locator("#editor .cm-content").evaluate(
        """el => {
            const data = new DataTransfer();
            data.setData('text/plain', 'dropped');
            const r = el.getBoundingClientRect();
            for (const type of ['dragenter', 'dragover', 'drop']) {
                el.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true,
                    dataTransfer: data, clientX: r.left + 5, clientY: r.top + 5}));
            }
        }"""
    )
    page.wait_for_timeout(300)
    assert value(page) == "look, don't touch"
    # ... while someone else's edits still arrive
    writer.locator("#editor").focus()
    writer.keyboard.press("Control+End")
    writer.keyboard.type("!")
    eventually(lambda: value(page) == "look, don't touch!", 10)
    assert stored_text(server, doc) == "look, don't touch!"


def test_the_page_without_javascript_shows_the_text(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    text = "\n# Before any script 😀\n\nline two 漢字 e\u0301\n"
    doc = make_document("No JS", text)
    page = new_page(java_script_enabled=False)
    page.goto(doc.path)
    fallback = page.locator("#editor textarea")
    expect(fallback).to_be_visible()
    expect(fallback).to_have_value(text)
    expect(page.locator("#preview h1")).to_have_text("Before any script 😀")
    # The text is in the page once (the text area), not again as JSON.
    html = page.content()
    assert html.count("line two") == 2  # the text area and the preview


def test_a_big_document_without_javascript_shows_its_text_in_chunks(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    line = "A line with 😀 and 漢字 e\u0301, <b>not markup</b>.\n"
    text = "# Big and plain\n\n" + line * 6000
    doc = make_document("Big, no JS", text)
    page = new_page(java_script_enabled=False)
    page.goto(doc.path)
    fallback = page.locator("#editor .editor-fallback-chunks")
    expect(fallback).to_be_visible()
    expect(fallback).to_contain_text("# Big and plain")
    assert fallback.evaluate("el => el.textContent") == text
    # Laid out only once in view (a megabyte in a text area is a quarter second of layout).
    assert fallback.evaluate(
        "el => [...el.children].every((c) => getComputedStyle(c).contentVisibility === 'auto')"
    )


def test_tab_indents_and_escape_then_tab_leaves_the_text(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    """Tab is the editor's (it indents), so the way out is said to screen readers and
    works: Escape, then Tab, moves focus on from the text."""
    doc = make_document("Keys", "- item")
    page = open_editor(new_page, doc)
    content = page.locator("#editor .cm-content")
    hint = content.get_attribute("aria-describedby")
    assert hint == "editor-keys"
    expect(page.locator(f"#{hint}")).to_contain_text("press Escape, then Tab")
    content.click()
    page.keyboard.press("End")
    page.keyboard.press("Tab")
    eventually(lambda: value(page) != "- item", 5)  # indented, focus still in the text
    assert page.evaluate("() => document.activeElement.classList.contains('cm-content')")
    before = value(page)
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    assert value(page) == before
    assert page.evaluate(
        "() => !document.getElementById('editor').contains(document.activeElement)"
    )


def test_the_preview_follows_the_text_as_it_scrolls(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    """Scrolling the text brings the preview to the same place: the block at the top of
    the editor's view is at the top of the preview's pane (one way only)."""
    text = "".join(f"## Section {i}\n\nParagraph {i} 😀 漢字.\n\n" for i in range(80))
    doc = make_document("Long", text)
    page = open_editor(new_page, doc, viewport={"width": 1280, "height": 700})
    expect(page.locator("#preview h2").nth(79)).to_have_text("Section 79")
    pane = page.locator(".pane-preview")
    assert pane.evaluate("el => el.scrollTop") == 0

    def top_section() -> str:
        return str(
            page.evaluate(
                """() => {
                  const r = document.querySelector('.pane-preview').getBoundingClientRect();
                  const el = document.elementFromPoint(r.left + r.width / 2, r.top + 30);
                  const s = el && el.closest('section.block');
                  return s ? s.textContent.trim().split('\\n')[0] : '';
                }"""
            )
        )

    # (-1: the top edge on the blank line before the heading: the heading's block comes)
    for n, nudge in ((40, 2), (71, -1), (12, 2)):
        page.evaluate(
            """([n, nudge]) => {
              const view = document.getElementById('editor').view;
              const pos = view.state.doc.toString().indexOf('## Section ' + n + '\\n');
              const scroller = view.scrollDOM;
              const top = scroller.getBoundingClientRect().top;
              const pad = view.documentTop - top + scroller.scrollTop;
              scroller.scrollTop = view.lineBlockAt(pos).top + pad + nudge;  // heading at the top
            }""",
            [n, nudge],
        )
        wanted = f"Section {n}"
        eventually(lambda: top_section() == wanted, 5, f"the preview at {n}")  # noqa: B023
    page.evaluate("() => { document.getElementById('editor').view.scrollDOM.scrollTop = 0; }")
    eventually(lambda: pane.evaluate("el => el.scrollTop") == 0, 5, "the preview at the top")
