"""Several real browsers editing one document at once against a real server."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, WebSocket, expect

from e2e.client import HttpClient, eventually
from e2e.conftest import CreatedDocument, create_document
from e2e.server import TandemServer

MakeDocument = Callable[..., CreatedDocument]
NewPage = Callable[..., Page]


def open_editor(new_page: NewPage, doc: CreatedDocument) -> Page:
    page = new_page()
    page.goto(doc.path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page


def value(page: Page) -> str:
    # #editor is the CodeMirror surface: a `value` like a text area's, not an <input>.
    return str(page.locator("#editor").evaluate("el => el.value"))


def stored_text(server_url: str, doc_id: str) -> str:
    return HttpClient(server_url).get(f"/api/documents/{doc_id}/").json()["text"]


def converged(pages: list[Page], server_url: str, doc_id: str) -> str:
    """Wait until every page and the server hold the same text; return it."""

    def same() -> str | None:
        texts = {value(p) for p in pages}
        if len(texts) != 1:
            return None
        (text,) = texts
        return text if text == stored_text(server_url, doc_id) else None

    return eventually(same, 15, "every editor and the server to hold the same text")


def caret_to(page: Page, index: int) -> None:
    page.locator("#editor").focus()
    page.locator("#editor").evaluate("(el, i) => el.setSelectionRange(i, i)", index)


def test_three_editors_typing_at_once_converge(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Three", "start\nmiddle\nend")
    pages = [open_editor(new_page, doc) for _ in range(3)]
    # Two type at the same spot (the very start), one at another (the end).
    caret_to(pages[0], 0)
    caret_to(pages[1], 0)
    caret_to(pages[2], len("start\nmiddle\nend"))
    words = ["aaaa", "bbbb", "cccc"]
    for i in range(4):
        for page, word in zip(pages, words, strict=True):
            page.keyboard.type(word[i])
    text = converged(pages, server.url, doc.id)
    assert sorted(text.replace("start\nmiddle\nend", "")) == sorted("aaaabbbbcccc")
    assert "aaaa" in text and "bbbb" in text and text.endswith("cccc")


def test_emoji_and_cjk_arrive_intact(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Unicode", "")
    a, b = open_editor(new_page, doc), open_editor(new_page, doc)
    caret_to(a, 0)
    a.keyboard.insert_text("héllo 😀 👍🏽 世界 e\u0301 ")
    caret_to(b, 0)
    b.keyboard.insert_text("🇫🇷 한국어 ")
    text = converged([a, b], server.url, doc.id)
    assert "héllo 😀 👍🏽 世界 e\u0301 " in text
    assert "🇫🇷 한국어 " in text


def test_my_caret_stays_put_while_someone_types_before_it(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Carets", "0123456789")
    a, b = open_editor(new_page, doc), open_editor(new_page, doc)
    caret_to(a, 5)  # A's caret between 4 and 5
    b.locator("#editor").focus()
    b.locator("#editor").evaluate("el => el.setSelectionRange(0, 0)")
    b.keyboard.type("XYZ")
    converged([a, b], server.url, doc.id)
    caret = a.locator("#editor").evaluate("el => [el.selectionStart, el.selectionEnd]")
    assert caret == [8, 8]
    a.keyboard.type("!")
    assert converged([a, b], server.url, doc.id) == "XYZ01234!56789"


def test_offline_edits_merge_when_the_connection_returns(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Offline", "line one\nline two\n")
    a, b = open_editor(new_page, doc), open_editor(new_page, doc)
    a.context.set_offline(True)
    expect(a.locator("#status")).to_have_attribute("data-state", "offline")
    expect(a.locator("#status .label")).to_have_text("Offline — reconnecting…")
    caret_to(a, len("line one"))
    a.keyboard.type(" (offline)")
    expect(a.locator("#status .label")).to_have_text("Offline — your edits are kept and will sync")
    caret_to(b, 0)
    b.keyboard.type("# ")
    eventually(lambda: stored_text(server.url, doc.id).startswith("# "), what="B's edit")
    a.context.set_offline(False)
    expect(a.locator("#status")).to_have_attribute("data-state", "connected")
    assert converged([a, b], server.url, doc.id) == "# line one (offline)\nline two\n"


def test_no_acknowledged_keystroke_is_lost_when_the_server_is_killed(
    new_page: NewPage, make_server: Callable[[], TandemServer]
) -> None:
    srv = make_server()
    doc = create_document(srv, "Crash", "")
    a = new_page()
    a.goto(doc.url)
    expect(a.locator("#status")).to_have_attribute("data-state", "connected")
    caret_to(a, 0)
    a.keyboard.type("before crash. ")
    eventually(lambda: stored_text(srv.url, doc.id) == "before crash. ", what="the first edits")
    srv.kill()
    expect(a.locator("#status")).to_have_attribute("data-state", "offline")
    a.keyboard.type("while down. ")
    srv.start()
    expect(a.locator("#status")).to_have_attribute("data-state", "connected", timeout=15_000)
    a.keyboard.type("after.")
    eventually(
        lambda: stored_text(srv.url, doc.id) == "before crash. while down. after.",
        what="every keystroke on the server",
    )
    assert value(a) == "before crash. while down. after."
    b = new_page()
    b.goto(doc.url)
    expect(b.locator("#editor")).to_have_js_property("value", "before crash. while down. after.")


def test_preview_and_presence_update_everywhere(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Preview", "intro")
    a, b = open_editor(new_page, doc), open_editor(new_page, doc)
    expect(a.locator("#presence .avatar")).to_have_count(2)
    expect(b.locator("#presence .avatar")).to_have_count(2)
    caret_to(a, len("intro"))
    a.keyboard.type('\n\n## Shared heading\n\n<img src=x onerror="window.pwned=1">')
    for page in (a, b):
        expect(page.locator("#preview h2")).to_have_text("Shared heading")
        expect(page.locator("#statusline .words")).to_contain_text("3 words")
    assert b.evaluate("window.pwned") is None
    c = open_editor(new_page, doc)
    expect(a.locator("#presence .avatar")).to_have_count(3)
    c.close()
    expect(a.locator("#presence .avatar")).to_have_count(2)


def test_undo_takes_back_only_my_own_typing(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Undo", "")
    a, b = open_editor(new_page, doc), open_editor(new_page, doc)
    caret_to(a, 0)
    a.keyboard.type("mine")
    converged([a, b], server.url, doc.id)
    caret_to(b, 4)
    b.keyboard.type(" theirs")
    converged([a, b], server.url, doc.id)
    a.locator("#editor").focus()
    a.keyboard.press("Control+z")
    assert converged([a, b], server.url, doc.id) == " theirs"
    a.keyboard.press("Control+Shift+z")
    assert converged([a, b], server.url, doc.id) == "mine theirs"


def test_a_100_kb_paste_reaches_the_other_editor(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Paste", "top\n")
    a, b = open_editor(new_page, doc), open_editor(new_page, doc)
    block = "".join(f"line {i:05d} with some words and ü 漢 😀\n" for i in range(3000))
    assert len(block.encode("utf-16-le")) // 2 > 100_000
    caret_to(a, len("top\n"))
    # execCommand goes through the same input events as a real paste, without the
    # seconds Chromium takes to type 100 KB key by key.
    a.locator("#editor").evaluate("(el, t) => document.execCommand('insertText', false, t)", block)
    assert converged([a, b], server.url, doc.id) == "top\n" + block


def test_download_the_document_as_markdown(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Field notes", "# Notes\n\nsome 😀 text\n")
    page = open_editor(new_page, doc)
    page.locator(".export-menu summary").click()
    with page.expect_download() as info:
        page.get_by_role("link", name="Download Markdown (.md)").click()
    download = info.value
    assert download.suggested_filename == "field-notes.md"
    with open(download.path(), encoding="utf-8") as f:
        assert f.read() == "# Notes\n\nsome 😀 text\n"


def test_a_rename_shows_in_other_editors_but_not_under_someone_typing_a_title(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Old name", "")
    a, b, c = (open_editor(new_page, doc) for _ in range(3))
    c.locator("#title-input").click()
    c.locator("#title-input").fill("C is typing")
    a.locator("#title-input").fill("New name")
    a.locator("#title-input").press("Enter")
    expect(b.locator("#title-input")).to_have_value("New name")
    expect(c.locator("#title-input")).to_have_value("C is typing")
    expect(c.locator("#title-input")).to_be_focused()


def test_keystrokes_in_flight_when_the_server_dies_land_exactly_once(
    new_page: NewPage, make_server: Callable[[], TandemServer]
) -> None:
    srv = make_server()
    doc = create_document(srv, "Crash in flight", "")
    a = new_page()
    a.goto(doc.url)
    expect(a.locator("#status")).to_have_attribute("data-state", "connected")
    caret_to(a, 0)
    typed = ""
    for word in ("one ", "two ", "three ", "four "):
        a.keyboard.type(word)  # no waiting: requests are in flight when the server dies
        typed += word
    srv.kill()
    for word in ("five ", "six "):
        a.keyboard.type(word)
        typed += word
    srv.start()
    expect(a.locator("#status")).to_have_attribute("data-state", "connected", timeout=15_000)
    eventually(lambda: stored_text(srv.url, doc.id) == typed, 15, "every keystroke, once")
    assert value(a) == typed


def test_an_idle_editor_is_brought_up_to_date_by_pushes_without_asking(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    """Someone else's typing reaches an idle editor as `push` frames: the idle page sends
    no request for it (docs/protocol.md), and its caret and text stay right."""
    doc = make_document("Pushes", "idle reader\n")
    writer = open_editor(new_page, doc)
    reader = new_page()
    sent: list[str] = []
    received: list[str] = []

    def watch(ws: WebSocket) -> None:
        ws.on("framesent", lambda frame: sent.append(str(frame)))
        ws.on("framereceived", lambda frame: received.append(str(frame)))

    reader.on("websocket", watch)
    reader.goto(doc.path)
    expect(reader.locator("#status")).to_have_attribute("data-state", "connected")
    caret_to(reader, 4)  # inside "idle": the writer's text goes in after it
    eventually(lambda: any('"ack"' in f for f in received), 5, "the first answer")

    # Moving the caret is said once (a sync without ops: others see where it is).
    # (Playwright hands over frames only while it is called: hence the wait.)
    def caret_said() -> bool:
        reader.wait_for_timeout(20)
        return any('"sel":[4,4]' in f for f in sent)

    eventually(caret_said, 5, "the caret's position")
    syncs_before = sum('"sync"' in f for f in sent)
    caret_to(writer, len("idle reader\n"))
    writer.keyboard.type("written elsewhere")
    text = converged([writer, reader], server.url, doc.id)
    assert text == "idle reader\nwritten elsewhere"
    assert sum('"push"' in f for f in received) >= 1
    # The idle sync runs every 5 s; this took far less: not one request for the news.
    assert sum('"sync"' in f for f in sent) == syncs_before
    assert reader.locator("#editor").evaluate("el => el.selectionStart") == 4
