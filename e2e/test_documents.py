"""The document pages in a real browser against a real server: create, rename, delete,
filter, open by URL, 404, and the editor page connecting to its WebSocket."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import CreatedDocument
from e2e.server import REPO, TandemServer

MakeDocument = Callable[..., CreatedDocument]
DOC_URL = re.compile(r"/d/([A-Za-z0-9_-]{14,})/$")


def unique(word: str) -> str:
    """A title no other test on the shared server uses."""
    return f"{word} {secrets.token_hex(3)}"


def row(page: Page, doc_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f"[id='doc-{doc_id}']")


def open_actions(page: Page, doc_id: str) -> None:
    row(page, doc_id).locator("summary").click()


def test_create_from_the_list_opens_the_new_document_in_the_editor(
    page: Page, server: TandemServer
) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Documents")).to_be_visible()
    page.locator("#new-document").click()
    expect(page).to_have_url(DOC_URL)
    match = DOC_URL.search(page.url)
    assert match
    expect(page.locator("#editor")).to_be_visible()
    expect(page.locator("#title-input")).to_have_value("Untitled")
    # Back on the list, it is there, first (the most recent).
    page.goto("/")
    expect(row(page, match.group(1))).to_be_visible()
    expect(page.locator(".doc-row").first).to_have_id(f"doc-{match.group(1)}")


def test_rename_in_the_editor_shows_in_the_editor_and_the_list(
    page: Page, make_document: MakeDocument
) -> None:
    doc = make_document(unique("Before"))
    new_title = unique("After")
    page.goto(doc.path)
    title = page.locator("#title-input")
    expect(title).to_have_value(doc.title)
    with page.expect_response(lambda r: r.url.endswith(f"{doc.path}rename/")) as response:
        title.fill(new_title)
        title.press("Enter")
    assert response.value.status == 200
    expect(page.locator("#title-input")).to_have_value(new_title)
    page.reload()
    expect(page.locator("#title-input")).to_have_value(new_title)
    page.goto("/")
    expect(row(page, doc.id).locator(".doc-title")).to_have_text(new_title)


def test_rename_to_nothing_in_the_editor_says_why_and_keeps_the_title(
    page: Page, make_document: MakeDocument
) -> None:
    doc = make_document(unique("Keep"))
    page.goto(doc.path)
    title = page.locator("#title-input")
    # Emptied and left (no `required`: the browser would refuse silently), then spaces.
    with page.expect_response(lambda r: r.url.endswith(f"{doc.path}rename/")) as response:
        title.fill("")
        title.press("Tab")
    assert response.value.status == 422
    expect(page.locator("#title [role=alert]")).to_contain_text("cannot be empty")
    with page.expect_response(lambda r: r.url.endswith(f"{doc.path}rename/")) as response:
        page.locator("#title-input").fill("   ")
        page.locator("#title-input").press("Enter")
    assert response.value.status == 422
    expect(page.locator("#title [role=alert]")).to_contain_text("cannot be empty")
    page.reload()
    expect(page.locator("#title-input")).to_have_value(doc.title)


def test_rename_from_the_list_updates_the_row_in_place(
    page: Page, make_document: MakeDocument
) -> None:
    doc = make_document(unique("Row"))
    new_title = unique("Renamed row")
    page.goto("/")
    open_actions(page, doc.id)
    field = row(page, doc.id).locator("input[name=title]")
    field.fill(new_title)
    row(page, doc.id).get_by_role("button", name="Rename").click()
    expect(row(page, doc.id).locator(".doc-title")).to_have_text(new_title)
    expect(page).to_have_url(re.compile(r"/$"))  # stayed on the list
    page.reload()
    expect(row(page, doc.id).locator(".doc-title")).to_have_text(new_title)


def test_delete_asks_first_and_dismissing_keeps_the_document(
    page: Page, make_document: MakeDocument
) -> None:
    doc = make_document(unique("Keep me"))
    page.goto("/")
    open_actions(page, doc.id)
    messages: list[str] = []

    def dismiss(dialog) -> None:  # type: ignore[no-untyped-def]
        messages.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    row(page, doc.id).get_by_role("button", name="Delete").click()
    expect(row(page, doc.id)).to_be_visible()
    assert messages and doc.title in messages[0]
    page.reload()
    expect(row(page, doc.id)).to_be_visible()
    assert page.request.get(doc.url).status == 200


def test_delete_with_confirmation_removes_the_document(
    page: Page, make_document: MakeDocument
) -> None:
    doc = make_document(unique("Delete me"))
    other = make_document(unique("Not me"))
    page.goto("/")
    open_actions(page, doc.id)
    page.once("dialog", lambda dialog: dialog.accept())
    row(page, doc.id).get_by_role("button", name="Delete").click()
    expect(row(page, doc.id)).to_have_count(0)
    expect(row(page, other.id)).to_be_visible()
    page.reload()
    expect(row(page, doc.id)).to_have_count(0)
    assert page.request.get(doc.url).status == 404


def test_filter_narrows_the_list_as_you_type(page: Page, make_document: MakeDocument) -> None:
    tag = secrets.token_hex(3)
    apple_pie = make_document(f"Apple pie {tag}")
    apple_crumble = make_document(f"Apple crumble {tag}")
    banana = make_document(f"Banana bread {tag}")
    page.goto("/")
    search = page.locator("#filter")
    search.press_sequentially(tag, delay=20)
    expect(page.locator(".doc-row")).to_have_count(3)
    search.press_sequentially(" apple", delay=20)
    expect(page.locator(".doc-row")).to_have_count(2)
    expect(row(page, apple_pie.id)).to_be_visible()
    expect(row(page, apple_crumble.id)).to_be_visible()
    expect(row(page, banana.id)).to_have_count(0)
    search.press_sequentially(" pie", delay=20)
    expect(page.locator(".doc-row")).to_have_count(1)
    expect(row(page, apple_pie.id)).to_be_visible()
    # The address keeps the filter, so reloading or sharing shows the same list.
    expect(page).to_have_url(re.compile(r"\?q="))
    page.reload()
    expect(page.locator(".doc-row")).to_have_count(1)
    expect(page.locator("#filter")).to_have_value(f"{tag} apple pie")
    # Clearing it brings everything back.
    page.locator("#filter").fill("")
    expect(row(page, banana.id)).to_be_visible()
    search.fill(f"{tag} cherry")
    expect(page.locator(".doc-row")).to_have_count(0)
    expect(page.locator("#document-list")).to_contain_text("No document matches")


def test_open_a_document_by_its_url_shows_its_text(page: Page, make_document: MakeDocument) -> None:
    text = "\n# Notes 😀\n\nFirst line\nsecond line with </textarea> in it\n"
    doc = make_document(unique("By URL"), text)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(doc.url)
    assert response is not None and response.status == 200
    expect(page.locator("#editor")).to_have_js_property("value", text)
    expect(page.locator("#title-input")).to_have_value(doc.title)
    expect(page).to_have_title(f"{doc.title} · Tandem")
    for element_id in ["title", "editor", "preview", "presence", "status"]:
        expect(page.locator(f"#{element_id}")).to_have_count(1)
    assert errors == [], errors


def test_an_unknown_address_shows_the_404_page(page: Page, server: TandemServer) -> None:
    response = page.goto("/d/no-such-document-here/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Nothing here")).to_be_visible()
    page.get_by_role("link", name="All documents").click()
    expect(page.get_by_role("heading", name="Documents")).to_be_visible()


def test_the_editor_page_opens_its_websocket(page: Page, make_document: MakeDocument) -> None:
    doc = make_document(unique("Socket"))
    with page.expect_websocket() as info:
        page.goto(doc.path)
    ws = info.value
    assert ws.url.endswith(f"/ws/d/{doc.id}/")
    page.wait_for_timeout(500)
    assert not ws.is_closed()


def _client_reports_status() -> bool:
    js = "".join(p.read_text() for p in (REPO / "static" / "js").glob("*.js"))
    return "data-state" in js or "dataset.state" in js


@pytest.mark.xfail(
    not _client_reports_status(),
    reason="static/js/ does not set #status's data-state yet (the browser client is in progress)",
    run=False,
)
def test_the_editor_page_reaches_the_connected_state(
    page: Page, make_document: MakeDocument
) -> None:
    doc = make_document(unique("Status"), "hello")
    page.goto(doc.path)
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "connected", timeout=10_000)
    expect(status).to_have_attribute("data-version", "1")


def test_the_new_page_fixture_gives_independent_browsers(
    new_page: Callable[..., Page], make_document: MakeDocument
) -> None:
    doc = make_document(unique("Together"), "shared")
    pages = [new_page() for _ in range(3)]
    for p in pages:
        p.goto(doc.path)
        expect(p.locator("#editor")).to_have_js_property("value", "shared")
    cookies = [p.context.cookies() for p in pages]
    assert len({c[0]["value"] for c in cookies if c}) == len(pages), "contexts share cookies"
    assert len({id(p.context) for p in pages}) == 3


def test_menus_close_on_escape_outside_clicks_and_a_download(
    page: Page, make_document: MakeDocument
) -> None:
    doc = make_document(unique("Menus"), "# Menus\n")
    page.goto(doc.path)
    menu = page.locator(".export-menu")
    summary = menu.locator("summary")
    summary.click()
    expect(menu).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    expect(summary).to_be_focused()
    summary.click()
    page.locator("#preview").click()  # outside
    expect(menu).not_to_have_attribute("open", "")
    summary.click()
    with page.expect_download() as download:
        menu.get_by_text("Download Markdown (.md)").click()
    assert download.value.suggested_filename.endswith(".md")
    expect(menu).not_to_have_attribute("open", "")

    # The list's row menu holds a rename field: typing in it keeps the menu open.
    page.goto("/")
    open_actions(page, doc.id)
    actions = row(page, doc.id).locator("details")
    row(page, doc.id).locator("input[name=title]").click()
    expect(actions).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(actions).not_to_have_attribute("open", "")


def test_the_import_picker_shows_keyboard_focus(page: Page, server: TandemServer) -> None:
    """The file input is out of sight; focused from the keyboard, its label shows it."""
    page.goto(server.url + "/")
    label = page.locator("label[for=import]")
    assert label.evaluate("el => getComputedStyle(el).outlineStyle") == "none"
    page.locator("#import").focus()  # as Tab does: focus-visible for a file input
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    expect(page.locator("#import")).to_be_focused()
    assert label.evaluate("el => getComputedStyle(el).outlineStyle") == "solid"
