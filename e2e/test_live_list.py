"""The document list is live: changes made elsewhere show without a reload."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from e2e.client import HttpClient
from e2e.conftest import CreatedDocument
from e2e.server import TandemServer
from e2e.test_presence import open_as

MakeDocument = Callable[..., CreatedDocument]
NewPage = Callable[..., Page]


def titles(page: Page) -> list[str]:
    return list(page.locator("#document-list .doc-title").all_inner_texts())


def test_the_list_follows_creates_renames_edits_and_deletes_with_its_filter(
    new_page: NewPage, make_document: MakeDocument, server: TandemServer, http: HttpClient
) -> None:
    make_document("Qzx alpha", "a\n")
    beta = make_document("Qzx beta", "b\n")
    make_document("Other", "c\n")
    lister = new_page()
    lister.goto("/?q=qzx")
    expect(lister.locator("#document-list .doc-title")).to_have_count(2)
    lister.wait_for_timeout(300)  # its socket is open
    # Created elsewhere: it appears (the filter still applies to the ones that don't match).
    make_document("Qzx gamma", "g\n")
    make_document("Unrelated", "u\n")
    expect(lister.locator("#document-list .doc-title")).to_have_count(3)
    assert titles(lister)[0] == "Qzx gamma"
    assert "Unrelated" not in titles(lister)
    expect(lister.locator("#filter")).to_have_value("qzx")
    # Edited elsewhere (in an editor): it moves to the top.
    editor = open_as(new_page, beta.path, "Ada")
    reader = open_as(new_page, beta.path, "Bob")
    editor.locator("#editor").focus()
    editor.keyboard.type("more ")
    expect(lister.locator("#document-list .doc-title").first).to_have_text("Qzx beta", timeout=8000)
    # Renamed elsewhere (the title in the editor): it changes in place.
    editor.locator("#title-input").fill("Qzx beta two")
    editor.locator("#title-input").press("Enter")
    expect(lister.locator("#document-list")).to_contain_text("Qzx beta two")
    expect(editor).to_have_title("Qzx beta two · Tandem")
    expect(reader).to_have_title("Qzx beta two · Tandem")  # the tab follows anyone's rename
    # Deleted elsewhere: it goes.
    assert http.request("DELETE", f"/api/documents/{beta.id}/").status in {200, 204}
    expect(lister.locator("#document-list")).not_to_contain_text("Qzx beta two")
    assert titles(lister) == ["Qzx gamma", "Qzx alpha"]
