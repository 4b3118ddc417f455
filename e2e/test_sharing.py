"""Sharing in real browsers, against a server that trusts no one by address
(TANDEM_TRUST_LOOPBACK=0): the owner signs in with the owner link, an editor and a viewer
come through the share links, someone without a link is turned away, and resetting the
links disconnects the guests."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect

from e2e.client import HttpClient, eventually
from e2e.held import HeldRequests
from e2e.server import TandemServer

NewPage = Callable[..., Page]


@pytest.fixture(scope="module")
def guarded() -> Iterator[TandemServer]:
    srv = TandemServer()
    srv.extra_env = {"TANDEM_TRUST_LOOPBACK": "0"}
    srv.start()
    yield srv
    try:
        if srv.running:
            srv.stop()
    finally:
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def owner_link(srv: TandemServer) -> str:
    found = re.search(r"(http://\S+/\?owner=\S+)", srv.output(since_start=False))
    assert found, srv.output()
    return found.group(1)


def connected(page: Page) -> Page:
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page


def editor_text(page: Page) -> str:
    return str(page.locator("#editor").evaluate("el => el.value"))


def drop_text(page: Page, selector: str, text: str) -> None:
    """A real drop (trusted drag events through the DevTools protocol, as from another
    application): it inserts the text into an editable text area."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    cdp = page.context.new_cdp_session(page)
    data = {"items": [{"mimeType": "text/plain", "data": text}], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        point = {"x": box["x"] + 20, "y": box["y"] + 20}
        cdp.send("Input.dispatchDragEvent", {"type": kind, **point, "data": data})
    cdp.detach()


def stored(srv: TandemServer, doc_id: str) -> str:
    key = owner_link(srv).rsplit("=", 1)[1]
    response = HttpClient(srv.url).get(
        f"/api/documents/{doc_id}/", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status == 200, response.text
    return str(response.json()["text"])


def test_owner_shares_an_editor_co_edits_a_viewer_reads_and_reset_disconnects(
    guarded: TandemServer, new_page: NewPage
) -> None:
    base = guarded.url
    # The owner: the owner link sets the cookie and lands on the list, key gone from the URL.
    owner = new_page()
    owner.goto(owner_link(guarded))
    expect(owner).to_have_url(f"{base}/")
    owner.locator("#new-document").click()
    expect(owner).to_have_url(re.compile(r"/d/[^/]+/$"))
    doc_path = owner.url.removeprefix(base)
    doc_id = doc_path.split("/")[2]
    connected(owner)
    owner.locator("#editor").click()
    owner.keyboard.type("Agenda")

    owner.locator("#share").click()
    dialog = owner.locator("#share-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".share-qr svg")).to_have_count(2)
    edit_link = dialog.locator("#share-edit").input_value()
    view_link = dialog.locator("#share-view").input_value()
    assert edit_link.startswith(f"{base}/s/") and view_link.startswith(f"{base}/s/")
    assert edit_link != view_link
    owner.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # An editor, through the edit link: the token leaves the address bar.
    editor = new_page()
    editor.goto(edit_link)
    expect(editor).to_have_url(f"{base}{doc_path}")
    connected(editor)
    expect(editor.locator("#read-only")).to_have_count(0)
    expect(editor.locator("#share")).to_have_count(0)
    editor.locator("#editor").click()
    editor.keyboard.press("End")
    editor.keyboard.type(" and notes")
    expect(owner.locator("#editor")).to_have_js_property("value", "Agenda and notes")

    # A viewer, through the view link: sees typing live, cannot change a character.
    viewer = new_page(permissions=["clipboard-read", "clipboard-write"])
    viewer.goto(view_link)
    expect(viewer).to_have_url(f"{base}{doc_path}")
    connected(viewer)
    expect(viewer.locator("#read-only")).to_be_visible()
    assert viewer.locator("#editor").evaluate("el => el.readOnly")
    # readonly.js set it before the editor module defined the element: the element's own
    # readOnly (the attribute's reflection) is back in charge, not a stale plain property.
    assert viewer.locator("#editor").evaluate("el => !Object.hasOwn(el, 'readOnly')")
    owner.locator("#editor").click()
    owner.keyboard.press("End")
    owner.keyboard.type("!")
    expect(viewer.locator("#editor")).to_have_js_property("value", "Agenda and notes!")

    box = viewer.locator("#editor")
    box.click()
    viewer.keyboard.type("typed by the viewer")
    viewer.keyboard.press("Backspace")
    viewer.keyboard.press("Control+Z")  # undo goes to the server for editors: not here
    viewer.evaluate("navigator.clipboard.writeText('pasted by the viewer')")
    box.focus()
    viewer.keyboard.press("Control+V")
    viewer.keyboard.insert_text("inserted by the viewer")
    drop_text(viewer, "#editor", "dropped by the viewer")
    owner.keyboard.type("?")  # something that must still arrive after all of that
    expect(viewer.locator("#editor")).to_have_js_property("value", "Agenda and notes!?")
    # ... and can still read as in a read-only text area: click in, select all, copy
    # (Tab moves on: no "Tab indents" hint for a reader).
    assert viewer.locator("#editor .cm-content").get_attribute("aria-describedby") in (None, "")
    viewer.locator("#editor .cm-content").click()
    assert viewer.evaluate("() => document.activeElement.classList.contains('cm-content')")
    viewer.keyboard.press("Control+A")
    viewer.keyboard.press("Control+C")
    assert viewer.evaluate("navigator.clipboard.readText()") == "Agenda and notes!?"
    assert viewer.evaluate(
        "() => [document.getElementById('editor').selectionStart,"
        " document.getElementById('editor').selectionEnd]"
    ) == [0, 18]
    expect(viewer.locator("#status")).to_have_attribute("data-state", "connected")
    expect(viewer.locator("#status .label")).to_have_text("Connected")
    eventually(lambda: stored(guarded, doc_id) == "Agenda and notes!?", what="server text")

    # A rename by the owner reaches the viewer, whose title stays read-only.
    owner.locator("#title-input").fill("Agenda, final")
    owner.locator("#title-input").press("Enter")
    expect(viewer.locator("#title-input")).to_have_value("Agenda, final")
    assert viewer.locator("#title-input").evaluate("el => el.readOnly")
    assert not editor.locator("#title-input").evaluate("el => el.readOnly")

    # Someone without a link: the friendly 403 page, for the document and the list.
    stranger = new_page()
    response = stranger.goto(f"{base}{doc_path}")
    assert response is not None and response.status == 403
    expect(stranger.locator("#forbidden")).to_contain_text("Ask the person who shared it")
    response = stranger.goto(f"{base}/")
    assert response is not None and response.status == 403
    assert "Agenda" not in stranger.content()

    # The viewer's live view (the same person, another tab) follows along until the reset.
    live = viewer.context.new_page()
    live.goto(f"{base}{doc_path}live")
    expect(live.locator("#live-state")).to_have_text("Live")
    expect(live.locator("#preview")).to_contain_text("Agenda and notes!?")

    # Reset: the guests are disconnected and told why; the owner stays; old links fail.
    owner.locator("#share").click()
    expect(dialog.locator("#share-edit")).to_have_value(edit_link)  # the same links again
    owner.once("dialog", lambda d: d.accept())
    owner.locator("#share-reset").click()
    expect(dialog.locator(".share-reset [role=status]")).to_contain_text("New links made")
    assert dialog.locator("#share-edit").input_value() != edit_link
    for guest in (editor, viewer):
        expect(guest.locator("#status")).to_have_attribute("data-state", "offline", timeout=2000)
        expect(guest.locator("#status .label")).to_contain_text("reset")
        # The whole message under the top bar, which stays as wide as the page.
        expect(guest.locator("#status-detail")).to_be_visible()
        expect(guest.locator("#status-detail")).to_contain_text("Ask the person who shared it")
        assert guest.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
        expect(guest.locator("#history-button")).to_be_in_viewport()
    # Nothing typed now could be saved: the editor's text no longer takes any.
    expect(editor.locator("#editor")).to_have_js_property("readOnly", True)
    editor.locator("#editor .cm-content").click()
    editor.keyboard.type("lost?")
    assert editor.locator("#editor").evaluate("el => el.value") == "Agenda and notes!?"
    expect(owner.locator("#status-detail")).to_be_hidden()
    # The live view says it stopped, and why, instead of showing "Live" over old text.
    expect(live.locator("#live-state")).to_have_text("Stopped")
    expect(live.locator("#live-ended")).to_contain_text("links were reset")
    expect(live.locator("#live-ended")).to_be_visible()
    expect(owner.locator("#status")).to_have_attribute("data-state", "connected")
    late = new_page()
    for old in (edit_link, view_link):
        response = late.goto(old)
        assert response is not None and response.status == 403
    response = editor.goto(f"{base}{doc_path}")  # the editor's cookie names a link that is gone
    assert response is not None and response.status == 403


def test_a_grant_survives_a_server_restart(guarded: TandemServer, new_page: NewPage) -> None:
    key = owner_link(guarded).rsplit("=", 1)[1]
    owner_api = {"Authorization": f"Bearer {key}"}
    client = HttpClient(guarded.url)
    created = client.post(
        "/api/documents/", json_body={"title": "Kept", "text": "still here"}, headers=owner_api
    )
    assert created.status == 201, created.text
    doc_id = created.json()["id"]
    view_link = client.get(f"/api/documents/{doc_id}/links", headers=owner_api).json()["view"]
    viewer = new_page()
    viewer.goto(view_link)
    connected(viewer)
    guarded.stop()
    guarded.start()
    viewer.reload()
    connected(viewer)
    expect(viewer.locator("#editor")).to_have_js_property("value", "still here")
    expect(viewer.locator("#read-only")).to_be_visible()


def owner_sharing(guarded: TandemServer, new_page: NewPage) -> tuple[Page, Locator, str]:
    """The owner in a new document with the Share dialog open: page, dialog, edit link."""
    owner = new_page()
    owner.goto(owner_link(guarded))
    owner.locator("#new-document").click()
    connected(owner)
    owner.locator("#share").click()
    dialog = owner.locator("#share-dialog")
    return owner, dialog, dialog.locator("#share-edit").input_value()


def links_were_reset(dialog: Locator, old_link: str, new_page: NewPage) -> None:
    """The dialog says the links were reset and shows new ones, which work."""
    expect(dialog.locator(".share-reset [role=status]")).to_contain_text("New links made")
    new_link = dialog.locator("#share-edit").input_value()
    assert new_link != old_link
    response = new_page().goto(new_link)
    assert response is not None and response.status == 200


def test_links_reset_while_the_dialog_still_loads_stay_reset(
    guarded: TandemServer, new_page: NewPage
) -> None:
    """Reopened, the dialog shows the links it had while it asks for them again: a reset
    clicked meanwhile must not be undone by that slower answer (the old, dead links)."""
    owner, dialog, old_link = owner_sharing(guarded, new_page)
    owner.keyboard.press("Escape")

    # The next look at the links is slow: its answer comes after the reset was sent and
    # before the reset's answer (both requests are held, then let go in that order).
    held = HeldRequests(owner, re.compile(r"/d/[^/]+/share/(reset/)?$"))
    owner.locator("#share").click()
    held.wait_for(1, "the dialog's request for the links")
    owner.once("dialog", lambda d: d.accept())
    owner.locator("#share-reset").click()
    held.wait_for(2, "the reset")
    held.release(0)
    held.release(1)
    held.stop()
    links_were_reset(dialog, old_link, new_page)


def test_a_second_reset_click_while_the_first_is_answered_changes_nothing(
    guarded: TandemServer, new_page: NewPage
) -> None:
    """The reset is not cancelled by a second click (it may have happened already): the
    second click is ignored, without a second question."""
    owner, dialog, old_link = owner_sharing(guarded, new_page)
    questions: list[str] = []

    def answer(question: Dialog) -> None:
        questions.append(question.message)
        question.accept()

    owner.on("dialog", answer)
    held = HeldRequests(owner, re.compile(r"/d/[^/]+/share/reset/$"))
    owner.locator("#share-reset").click()
    held.wait_for(1, "the reset")
    owner.locator("#share-reset").click()
    owner.wait_for_timeout(200)
    assert len(held.routes) == 1 and len(questions) == 1
    held.release(0)
    held.stop()
    links_were_reset(dialog, old_link, new_page)


def test_the_dialog_names_the_document_as_it_is_called_now(
    guarded: TandemServer, new_page: NewPage
) -> None:
    owner, dialog, _ = owner_sharing(guarded, new_page)
    owner.keyboard.press("Escape")
    owner.locator("#title-input").fill("Renamed since")
    owner.locator("#title-input").press("Enter")
    expect(owner.locator("#title-input")).to_have_value("Renamed since")
    owner.locator("#share").click()
    expect(dialog.locator("#share-heading")).to_have_text("Share “Renamed since”")
    expect(dialog.locator(".share-intro")).to_contain_text("Renamed since")
