"""The pages fit their window: a phone (390 and 320 px wide) and a desktop, light and dark.

No page scrolls sideways, the editor's title is wide enough to read and the name can be
set on a phone, a past version's actions stay on screen, and a long status message (the
links were reset, the document was deleted) is shown whole under the top bar instead of
stretching it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from e2e.client import HttpClient
from e2e.conftest import CreatedDocument
from e2e.server import TandemServer

MakeDocument = Callable[..., CreatedDocument]
NewPage = Callable[..., Page]

SIZES = [(390, 844), (320, 640), (1280, 800)]


def fits(page: Page) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= innerWidth"))


def two_versions(server: TandemServer, make_document: MakeDocument) -> CreatedDocument:
    doc = make_document("Quarterly planning notes", "# Plan\n\nFirst draft.\n")
    changed = HttpClient(server.url).request(
        "PUT", f"/api/documents/{doc.id}/text", json_body={"text": "# Plan\n\nSecond draft.\n"}
    )
    assert changed.status == 200, changed.text
    return doc


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_editor_and_version_pages_fit(
    new_page: NewPage,
    make_document: MakeDocument,
    server: TandemServer,
    width: int,
    height: int,
    scheme: str,
) -> None:
    doc = two_versions(server, make_document)
    page = new_page(viewport={"width": width, "height": height}, color_scheme=scheme)
    page.goto(doc.path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert fits(page)
    title = page.locator("#title-input").bounding_box()
    assert title is not None and title["width"] >= min(240, width * 0.6), title
    name = page.locator("#name")
    expect(name).to_be_visible()
    assert (name.bounding_box() or {"width": 0})["width"] >= 60
    for control in ("#share", "#history-button", ".export-menu summary"):
        expect(page.locator(control)).to_be_in_viewport()

    for path in (f"{doc.path}v/1/", f"{doc.path}v/1/?against=current"):
        page.goto(path)
        assert fits(page), path
        expect(page.locator("#restore")).to_be_in_viewport()
        expect(page.locator(".version-title .back")).to_be_in_viewport()


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_long_status_message_is_shown_whole_under_the_top_bar(
    new_page: NewPage,
    make_document: MakeDocument,
    server: TandemServer,
    width: int,
    height: int,
) -> None:
    doc = make_document("Soon gone", "text")
    page = new_page(viewport={"width": width, "height": height})
    page.goto(doc.path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#status-detail")).to_be_hidden()
    deleted = HttpClient(server.url).request("DELETE", f"/api/documents/{doc.id}/")
    assert deleted.status in {200, 204}, deleted.text
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    expect(page.locator("#status .label")).to_have_text("This document was deleted.")
    expect(page.locator("#status-detail")).to_have_text("This document was deleted.")
    # #status-detail is for the eyes only: the status itself still holds the message for
    # screen readers, out of sight on a phone but not display: none.
    label_display = page.locator("#status .label").evaluate("el => getComputedStyle(el).display")
    assert label_display != "none"
    expect(page.locator("#status-detail")).to_be_in_viewport()
    assert fits(page)
    expect(page.locator("#share")).to_be_in_viewport()
    # Nothing typed now could be saved: the text takes none, and can still be copied.
    expect(page.locator("#editor")).to_have_js_property("readOnly", True)
    page.locator("#editor .cm-content").click()
    page.keyboard.type("lost")
    assert page.locator("#editor").evaluate("el => el.value") == "text"


def _luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_markdown_marks_and_comments_are_readable(
    new_page: NewPage, make_document: MakeDocument, scheme: str
) -> None:
    """The quiet colours of the source (## and ** marks, list marks, comments) still
    reach WCAG AA contrast (4.5:1) against the editor's background."""
    doc = make_document("Contrast", "## Head\n\n**bold** and <!-- note -->\n")
    page = new_page(color_scheme=scheme)
    page.goto(doc.path)
    expect(page.locator("#editor .md-mark").first).to_be_visible()
    background = page.evaluate(
        "() => getComputedStyle(document.querySelector('.pane-source')).backgroundColor"
    )
    for selector in ("#editor .md-mark", "#editor .md-comment"):
        color = page.locator(selector).first.evaluate("el => getComputedStyle(el).color")
        light, dark = sorted([_luminance(color), _luminance(background)], reverse=True)
        ratio = (light + 0.05) / (dark + 0.05)
        assert ratio >= 4.5, (selector, color, background, ratio)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_offline_fits_and_says_so(
    new_page: NewPage, make_document: MakeDocument, width: int, height: int
) -> None:
    """Offline, the status says so and that the edits are kept: in the top bar where it
    fits (a desktop), under it on a phone, where the bar has no room for the words."""
    doc = make_document("Offline on a phone", "text")
    page = new_page(viewport={"width": width, "height": height})
    page.goto(doc.path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.context.set_offline(True)
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    page.locator("#editor .cm-content").click()
    page.keyboard.type(" kept")
    expect(page.locator("#status .label")).to_contain_text("your edits are kept")
    assert fits(page)
    for control in ("#share", "#history-button", "#name"):
        expect(page.locator(control)).to_be_in_viewport()
    shown = page.locator("#status-detail") if width < 760 else page.locator("#status .label")
    expect(shown).to_be_visible()
    expect(shown).to_contain_text("Offline")
    if width >= 760:
        expect(page.locator("#status-detail")).to_be_hidden()
    page.context.set_offline(False)
    expect(page.locator("#status")).to_have_attribute("data-synced", "true")
    expect(page.locator("#status-detail")).to_be_hidden()
