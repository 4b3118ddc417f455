"""History, restore, import and the live view, in a real Chromium against a real server."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from e2e.client import HttpClient, eventually
from e2e.conftest import CreatedDocument
from e2e.editor_page import open_editor
from e2e.held import HeldRequests
from e2e.proxy import Proxy
from e2e.server import TandemServer, free_port

MakeDocument = Callable[..., CreatedDocument]
NewPage = Callable[..., Page]


def type_at_end(page: Page, text: str) -> None:
    editor = page.locator("#editor")
    editor.focus()
    editor.evaluate("el => el.setSelectionRange(el.value.length, el.value.length)")
    page.keyboard.type(text)


def synced(page: Page, text: str) -> None:
    expect(page.locator("#editor")).to_have_js_property("value", text)
    expect(page.locator("#status")).not_to_have_attribute("data-version", "0")


def stored(server: TandemServer, doc_id: str) -> str:
    return str(HttpClient(server.url).get(f"/api/documents/{doc_id}/").json()["text"])


def name_version(server: TandemServer, doc_id: str, version: int, label: str) -> None:
    response = HttpClient(server.url).post(
        f"/api/documents/{doc_id}/versions", json_body={"label": label, "version": version}
    )
    assert response.status == 201, response.text


def test_the_panel_lists_a_session_by_two_people(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Two people", "start\n")
    ann = open_editor(new_page, doc.url, "Ann Example")
    bo = open_editor(new_page, doc.url, "Bo Sample")
    type_at_end(ann, "ann was here\n")
    eventually(lambda: "ann was here" in stored(server, doc.id), 10, "Ann's text stored")
    type_at_end(bo, "bo too\n")
    eventually(lambda: "bo too" in stored(server, doc.id), 10, "Bo's text stored")
    ann.click("#history-button")
    entry = ann.locator(".history-entry").first
    expect(entry).to_be_visible()
    expect(entry.locator(".history-authors")).to_contain_text("Ann Example")
    expect(entry.locator(".history-authors")).to_contain_text("Bo Sample")
    expect(entry.locator(".history-summary .ins")).not_to_have_text("+0")


def test_a_past_version_renders_and_its_changes_are_marked(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Versions", "# Old title\n\nkeep this gone\n")
    client = HttpClient(server.url)
    response = client.request(
        "PUT", f"/api/documents/{doc.id}/text", json_body={"text": "# Old title\n\nkeep this new\n"}
    )
    assert response.status == 200
    page = new_page()
    page.goto(f"/d/{doc.id}/v/1/")
    expect(page.locator("#version-preview h1")).to_have_text("Old title")
    expect(page.locator("#version-preview")).to_contain_text("keep this gone")
    expect(page.locator("#editor")).to_have_count(0)  # read-only: no editor
    page.get_by_role("link", name="Changes since").click()
    expect(page.locator("#changes del")).to_have_text("gone")
    expect(page.locator("#changes ins")).to_have_text("new")


def test_restore_updates_two_editors_live_and_the_restorer_can_undo_it(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Restore", "first draft\n")
    name_version(server, doc.id, 1, "First draft")
    ann = open_editor(new_page, doc.url, "Ann")
    bo = open_editor(new_page, doc.url, "Bo")
    type_at_end(ann, "a paragraph to lose\n")
    typed = "first draft\na paragraph to lose\n"
    synced(bo, typed)
    eventually(lambda: stored(server, doc.id) == typed, 10, "the typing stored")
    ann.wait_for_timeout(600)  # past the undo capture time: typing and restore are apart
    ann.click("#history-button")
    named = ann.locator(".history-entry.named")
    expect(named.locator(".history-label")).to_have_text("First draft")
    named.locator("button.restore").click()
    expect(ann.locator(".history-message")).to_contain_text("Restored version 1")
    # Merged live: both editors hold version 1's text at once, nobody reloaded.
    synced(ann, "first draft\n")
    synced(bo, "first draft\n")
    ann.keyboard.press("Escape")  # close the panel
    ann.locator("#editor").focus()
    ann.keyboard.press("Control+z")
    synced(ann, typed)
    synced(bo, typed)
    eventually(lambda: stored(server, doc.id) == typed, 10, "the undo stored")


def test_import_through_the_page(new_page: NewPage, server: TandemServer, tmp_path: Path) -> None:
    files = {
        "Meeting notes.md": "\ufeff# Notes\r\nsecond line\r\n".encode(),
        "todo.txt": b"buy milk\n",
        "picture.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "latin.txt": "caf\xe9".encode("latin-1"),
    }
    paths = []
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        paths.append(str(tmp_path / name))
    page = new_page()
    page.goto("/")
    page.set_input_files("#import", paths)
    result = page.locator("#import-result")
    expect(result).to_contain_text("Imported “Meeting notes”")
    expect(result).to_contain_text("Imported “todo”")
    expect(result).to_contain_text("picture.md: this looks like a binary file")
    expect(result).to_contain_text("latin.txt: not UTF-8 text")
    row = page.locator("#document-list").get_by_text("Meeting notes")
    expect(row).to_be_visible()
    row.click()
    expect(page.locator("#editor")).to_have_js_property("value", "# Notes\nsecond line\n")


def test_the_live_view_follows_typing_and_catches_up_after_a_cut(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Live", "# Live\n")
    proxy = Proxy(target=server.port).start()
    try:
        live = new_page()
        live.goto(f"{proxy.url}/d/{doc.id}/live")
        expect(live.locator("#preview h1")).to_have_text("Live")
        writer = open_editor(new_page, doc.url, "Writer")
        expect(live.locator("#presence [data-name='Writer']")).to_be_visible()
        type_at_end(writer, "\nfirst words\n")
        expect(live.locator("#preview")).to_contain_text("first words")
        # The connection drops and stays down while the writer goes on.
        proxy.target = free_port()  # nothing listens there: reconnecting fails
        proxy.cut()
        type_at_end(writer, "\nwritten while cut off\n")
        eventually(lambda: "while cut off" in stored(server, doc.id), 10, "the typing stored")
        expect(live.locator("#preview")).not_to_contain_text("while cut off")
        proxy.target = server.port  # back: EventSource reconnects with Last-Event-ID
        expect(live.locator("#preview")).to_contain_text("written while cut off", timeout=20_000)
        type_at_end(writer, "\nand after\n")
        expect(live.locator("#preview")).to_contain_text("and after")
        expect(live.locator("#editor")).to_have_count(0)
    finally:
        proxy.stop()


def test_restore_from_a_past_versions_page_happens_in_the_editor_and_undoes(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer
) -> None:
    doc = make_document("Restore from the page", "old text\n")
    client = HttpClient(server.url)
    response = client.request(
        "PUT", f"/api/documents/{doc.id}/text", json_body={"text": "new text\n"}
    )
    assert response.status == 200
    page = new_page()
    page.goto(f"/d/{doc.id}/v/1/")
    page.click("#restore")
    expect(page).to_have_url(doc.url)  # back in the editor, the ?restore= gone
    expect(page.locator(".history-message")).to_contain_text("Restored version 1")
    synced(page, "old text\n")
    page.keyboard.press("Escape")
    page.locator("#editor").focus()
    page.keyboard.press("Control+z")
    synced(page, "new text\n")
    page.reload()  # a reload does not restore again
    synced(page, "new text\n")


def test_naming_a_version_in_the_panel_and_renaming_it_says_so(
    new_page: NewPage, make_document: Callable[..., CreatedDocument]
) -> None:
    doc = make_document("Named", "draft")
    page = open_editor(new_page, doc.url, "Namer")
    page.locator("#history-button").click()
    dialog = page.locator("#history-dialog")
    label = dialog.locator("#version-label")
    label.fill("First draft")
    label.press("Enter")
    expect(dialog.locator(".history-message")).to_have_text("Saved version 1 as “First draft”.")
    expect(dialog).to_contain_text("First draft")
    dialog.locator("#version-label").fill("Sent to Ann")
    dialog.locator("#version-label").press("Enter")
    expect(dialog.locator(".history-message")).to_have_text(
        "Renamed version 1 from “First draft” to “Sent to Ann”."
    )
    expect(dialog.locator(".history-entry").first).to_contain_text("Sent to Ann")
    expect(dialog.locator(".history-entry").first).not_to_contain_text("First draft")


def held_history(page: Page) -> HeldRequests:
    return HeldRequests(page, re.compile(r"/d/[^/]+/history/?(\?.*)?$"))


def named_wins_over_the_reload(dialog: Locator, held: HeldRequests, label: str) -> None:
    """The panel's reload is held until "Named" has been asked for, and answers first:
    the named list (one version, `label`) is what stays."""
    held.wait_for(1, "the panel's reload")
    dialog.locator("#history-named").click()
    held.wait_for(2, "the named versions")
    held.release(0)
    held.release(1)
    held.stop()
    expect(dialog.locator("#history-named")).to_have_attribute("aria-pressed", "true")
    expect(dialog.locator(".history-entry")).to_have_count(1)
    expect(dialog.locator(".history-entry")).to_contain_text(label)


def test_a_filter_chosen_while_the_panel_reloads_is_the_one_shown(
    new_page: NewPage, make_document: Callable[..., CreatedDocument], server: TandemServer
) -> None:
    """Reopened, the panel shows its last list while it loads afresh: "Named" clicked
    meanwhile must not be overwritten by that slower answer (every version, and "All"
    pressed)."""
    doc = make_document("Filtered", "one")
    page = open_editor(new_page, doc.url, "Filterer")
    type_at_end(page, " two")
    eventually(lambda: stored(server, doc.id) == "one two", 10, "the text stored")
    name_version(server, doc.id, 1, "The first")
    page.locator("#history-button").click()
    dialog = page.locator("#history-dialog")
    expect(dialog.locator(".history-entry")).not_to_have_count(0)
    page.keyboard.press("Escape")

    held = held_history(page)
    page.locator("#history-button").click()
    named_wins_over_the_reload(dialog, held, "The first")


def test_a_filter_chosen_while_the_panel_reloads_after_saving_is_the_one_shown(
    new_page: NewPage, make_document: Callable[..., CreatedDocument]
) -> None:
    """After "Save version" the panel loads its list again (history.js): that load, too,
    gives way to a filter chosen meanwhile."""
    doc = make_document("Saved", "draft")
    page = open_editor(new_page, doc.url, "Saver")
    page.locator("#history-button").click()
    dialog = page.locator("#history-dialog")
    expect(dialog.locator(".history-entry")).not_to_have_count(0)
    held = held_history(page)
    dialog.locator("#version-label").fill("Kept")
    dialog.locator("#version-label").press("Enter")
    named_wins_over_the_reload(dialog, held, "Kept")
