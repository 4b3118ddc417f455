"""History and the live view across two processes (PostgreSQL and Redis between them)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from e2e.client import HttpClient, eventually
from e2e.cluster import Cluster
from e2e.conftest import create_document
from e2e.editor_page import caret_to_end, open_editor, text_of
from e2e.test_cluster_collab import api_state

NewPage = Callable[..., Page]


def test_a_live_view_on_one_process_follows_typing_on_the_other_and_a_restore(
    new_page: NewPage, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster()
    first, second = cluster
    doc = create_document(first, "Live across", "# Across\n")
    ada = open_editor(new_page, first.url + doc.path, "Ada")  # her process runs the room
    live = new_page()
    live.goto(f"{second.url}/d/{doc.id}/live")
    expect(live.locator("#preview h1")).to_have_text("Across")
    expect(live.locator("#presence [data-name='Ada']")).to_be_visible()
    caret_to_end(ada)
    ada.keyboard.type("\ntyped on the first process\n")
    expect(live.locator("#preview")).to_contain_text("typed on the first process")
    eventually(lambda: api_state(second.url, doc.id)[0] == text_of(ada), 10, "the text stored")
    # A restore asked of the second process is made by the room in the first, live.
    response = HttpClient(second.url).post(
        f"/api/documents/{doc.id}/restore", json_body={"version": 1}
    )
    assert response.status == 200, response.text
    expect(ada.locator("#editor")).to_have_js_property("value", "# Across\n")
    expect(live.locator("#preview")).not_to_contain_text("typed on the first process")
    # Deleted through the second process: the live view there says it stopped, and the
    # editor on the first turns read-only with the reason under its top bar.
    deleted = HttpClient(second.url).request("DELETE", f"/api/documents/{doc.id}/")
    assert deleted.status in {200, 204}, deleted.text
    expect(live.locator("#live-state")).to_have_text("Stopped")
    expect(live.locator("#live-ended")).to_have_text("This document was deleted.")
    expect(ada.locator("#status-detail")).to_have_text("This document was deleted.")
    expect(ada.locator("#editor")).to_have_js_property("readOnly", True)
