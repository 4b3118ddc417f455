"""Presence and carets across two processes: the room runs in one, editors on both."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from playwright.sync_api import Page, expect

from e2e.client import HttpClient, eventually
from e2e.cluster import Cluster
from e2e.conftest import create_document
from e2e.test_live_list import titles
from e2e.test_presence import caret_offsets, marks, names, open_as, place

NewPage = Callable[..., Page]


def everyone(page: Page, expected: list[str]) -> bool:
    return sorted(names(page)) == expected


def test_names_and_carets_cross_processes(
    new_page: NewPage, make_cluster: Callable[..., Cluster]
) -> None:
    first, second = make_cluster()
    doc = create_document(first, "Across", "Hello world\nsecond line\n")
    ada = open_as(new_page, first.url + doc.path, "Ada")
    bob = open_as(new_page, second.url + doc.path, "Bob")
    cy = open_as(new_page, second.url + doc.path, "Cy")
    for page in (ada, bob, cy):
        eventually(partial(everyone, page, ["Ada", "Bob", "Cy"]), 10, "three people")
    # Bob (on the process without the room) renames himself; Ada sees it.
    bob.locator("#name").fill("Bea")
    bob.locator("#name").press("Enter")
    eventually(lambda: sorted(names(ada)) == ["Ada", "Bea", "Cy"], 10, "the rename on Ada's page")
    # Carets go both ways and move with the text.
    place(bob, 6)
    place(ada, 12)
    eventually(lambda: caret_offsets(ada, "Bea") == [6], 10, "Bea's caret on Ada's page")
    eventually(lambda: caret_offsets(cy, "Ada") == [12], 10, "Ada's caret on Cy's page")
    place(cy, 0)
    cy.keyboard.type("ab")
    eventually(lambda: caret_offsets(ada, "Bea") == [8], 10, "Bea's caret moved on Ada's page")
    eventually(lambda: caret_offsets(bob, "Ada") == [14], 10, "Ada's caret moved on Bea's page")
    # And the preview marks the block each one is in, on either process.
    eventually(lambda: marks(ada).get("Bea") == "abHello worl", 10, "Bea's mark on Ada's page")
    eventually(lambda: marks(cy).get("Ada") == "abHello worl", 10, "Ada's mark on Cy's page")
    bob.close()
    eventually(lambda: sorted(names(ada)) == ["Ada", "Cy"], 10, "Bea gone")
    eventually(lambda: caret_offsets(ada, "Bea") == [], 10, "Bea's caret gone")


def test_the_document_list_follows_another_process(
    new_page: NewPage, make_cluster: Callable[..., Cluster]
) -> None:
    # A list page open on the second process; everything happens through the first.
    first, second = make_cluster()
    make_document = partial(create_document, first)
    make_document("Qzx alpha", "a\n")
    lister = new_page()
    lister.goto(second.url + "/?q=qzx")
    expect(lister.locator("#document-list .doc-title")).to_have_count(1)
    lister.wait_for_timeout(500)  # its socket is open
    beta = make_document("Qzx beta", "b\n")
    make_document("Unrelated", "u\n")
    expect(lister.locator("#document-list .doc-title")).to_have_count(2, timeout=10_000)
    assert titles(lister) == ["Qzx beta", "Qzx alpha"]
    # Edited in an editor on the first process: alpha moves to the top.
    alpha_id = first_id(first.url, "Qzx alpha")
    editor = open_as(new_page, f"{first.url}/d/{alpha_id}/", "Ada")
    editor.locator("#editor").focus()
    editor.keyboard.type("more ")
    expect(lister.locator("#document-list .doc-title").first).to_have_text(
        "Qzx alpha", timeout=10_000
    )
    # Renamed there: it changes in place.
    editor.locator("#title-input").fill("Qzx alpha two")
    editor.locator("#title-input").press("Enter")
    expect(lister.locator("#document-list")).to_contain_text("Qzx alpha two", timeout=10_000)
    # Deleted through the first process's API: it goes.
    http = HttpClient(first.url)
    assert http.request("DELETE", f"/api/documents/{beta.id}/").status in {200, 204}
    expect(lister.locator("#document-list")).not_to_contain_text("Qzx beta", timeout=10_000)
    assert titles(lister) == ["Qzx alpha two"]


def first_id(url: str, title: str) -> str:
    documents = HttpClient(url).get("/api/documents/").json()
    rows = documents["documents"] if isinstance(documents, dict) else documents
    return str(next(d["id"] for d in rows if d["title"] == title))
