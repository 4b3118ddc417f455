"""Presence and carets across two processes: the room runs in one, editors on both."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from playwright.sync_api import Page

from e2e.client import eventually
from e2e.cluster import Cluster
from e2e.conftest import create_document
from e2e.test_presence import caret_offsets, names, open_as, place

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
    bob.close()
    eventually(lambda: sorted(names(ada)) == ["Ada", "Cy"], 10, "Bea gone")
    eventually(lambda: caret_offsets(ada, "Bea") == [], 10, "Bea's caret gone")
