"""Seeing each other: names, colours and the presence list, with three people at once."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from functools import partial

from playwright.sync_api import Page, expect

from e2e.client import eventually
from e2e.conftest import CreatedDocument, create_document
from e2e.proxy import Proxy
from e2e.server import TandemServer

MakeDocument = Callable[..., CreatedDocument]
NewPage = Callable[..., Page]


def open_as(new_page: NewPage, path: str, name: str, *, watch_styles: bool = False) -> Page:
    """A person in a browser of their own, whose remembered name is `name` (unless they
    chose another one since). `watch_styles`: see `inline_styles`."""
    page = new_page()
    if watch_styles:
        watch_inline_styles(page)
    page.add_init_script(
        "if (!localStorage.getItem('tandem:name')) "
        f"localStorage.setItem('tandem:name', {json.dumps(name)})"
    )
    page.goto(path)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page


def watch_inline_styles(page: Page) -> None:
    """Record every inline style the page's scripts set as an attribute (setAttribute,
    or HTML parsed by the page): what a Content-Security-Policy without 'unsafe-inline'
    refuses. Styles set through the CSSOM (element.style) are allowed and not recorded."""
    page.add_init_script(
        r"""window.inlineStyles = [];
        const record = (el) => window.inlineStyles.push(el.className || el.tagName);
        const setAttribute = Element.prototype.setAttribute;
        Element.prototype.setAttribute = function (name, value) {
          if (String(name).toLowerCase() === "style") record(this);
          return setAttribute.call(this, name, value);
        };
        for (const key of ["innerHTML", "outerHTML"]) {
          const d = Object.getOwnPropertyDescriptor(Element.prototype, key);
          Object.defineProperty(Element.prototype, key, { ...d, set(html) {
            d.set.call(this, html);
            if (/\bstyle\s*=/i.test(String(html))) record(this);
          } });
        }"""
    )


def inline_styles(page: Page) -> list[str]:
    """The classes of the elements given an inline style attribute since the page opened."""
    return list(page.evaluate("window.inlineStyles"))


def names(page: Page) -> list[str]:
    """The presence list, in its order on the page."""
    return list(
        page.locator("#presence [data-name]").evaluate_all("els => els.map(e => e.dataset.name)")
    )


def shows(page: Page, expected: set[str], me: str) -> bool:
    listed = names(page)
    return (
        sorted(listed) == sorted(expected)
        and listed[0] == me
        and page.locator("#presence .me").get_attribute("data-name") == me
    )


def test_names_colours_and_a_rename_show_for_everyone(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    doc = make_document("Names", "# Hello\n")
    people = ["Ada Lovelace", "Bob Kahn", "Cy Young"]
    ada, bob, cy = (open_as(new_page, doc.path, n) for n in people)
    pages = {"Ada Lovelace": ada, "Bob Kahn": bob, "Cy Young": cy}
    for me, page in pages.items():
        eventually(partial(shows, page, set(people), me), 5, f"everyone, {me} first, on {me}'s")
        expect(page.locator("#name")).to_have_value(me)

    # A person's colour is the same on every page and differs from the others'.
    def colour(page: Page, name: str) -> str:
        entry = page.locator(f'#presence [data-name="{name}"]')
        return str(entry.evaluate("e => getComputedStyle(e).backgroundColor"))

    for name in people:
        assert len({colour(p, name) for p in pages.values()}) == 1
    assert len({colour(ada, n) for n in people}) == 3

    # Bob renames himself: Enter sends it, everyone sees it at once.
    started = time.monotonic()
    bob.locator("#name").fill("Bea Kahn")
    bob.locator("#name").press("Enter")
    renamed = {"Ada Lovelace", "Bea Kahn", "Cy Young"}
    for me, page in [("Ada Lovelace", ada), ("Bea Kahn", bob), ("Cy Young", cy)]:
        eventually(partial(shows, page, renamed, me), 5, f"the new name on {me}'s page")
    assert time.monotonic() - started < 2.5
    # Remembered: the next visit starts with it.
    bob.reload()
    expect(bob.locator("#status")).to_have_attribute("data-state", "connected")
    expect(bob.locator("#name")).to_have_value("Bea Kahn")
    eventually(lambda: shows(ada, renamed, "Ada Lovelace"), 5, "still three after the reload")

    # Leaving the field renames too; an empty name is refused (the old one stays).
    cy.locator("#name").fill("  ")
    cy.locator("#name").blur()
    expect(cy.locator("#name")).to_have_value("Cy Young")
    cy.locator("#name").fill("Cyrus")
    ada.locator("#name").focus()  # not cy: leaving its field is what sends it
    cy.locator("#name").blur()
    final = {"Ada Lovelace", "Bea Kahn", "Cyrus"}
    eventually(lambda: shows(ada, final, "Ada Lovelace"), 5, "Cyrus on Ada's page")


def test_a_closed_page_and_an_offline_browser_leave_everywhere(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    doc = make_document("Leaving", "text\n")
    people = ["Ada Lovelace", "Bob Kahn", "Cy Young"]
    ada, bob, cy = (open_as(new_page, doc.path, n) for n in people)
    eventually(lambda: shows(ada, set(people), "Ada Lovelace"), 5, "three people")

    # When Cy's entry goes, timed by each page itself (wall clock, as here).
    for page in (ada, bob):
        page.evaluate(
            """() => { const timer = setInterval(() => {
              if (document.querySelector('#presence [data-name="Cy Young"]')) return;
              window.cyGoneAt = Date.now();
              clearInterval(timer);
            }, 10); }"""
        )
    closed_at = time.time() * 1000
    cy.close()
    left = {"Ada Lovelace", "Bob Kahn"}
    eventually(lambda: shows(ada, left, "Ada Lovelace"), 3, "Cy gone from Ada's page")
    eventually(lambda: shows(bob, left, "Bob Kahn"), 3, "Cy gone from Bob's page")
    for page in (ada, bob):
        assert page.evaluate("window.cyGoneAt") - closed_at < 1000  # within a second

    # Bob's browser goes offline (it tells the page, which closes its socket): he leaves
    # at once; back online, he is back.
    bob.context.set_offline(True)
    eventually(lambda: shows(ada, {"Ada Lovelace"}, "Ada Lovelace"), 3, "Bob gone")
    bob.context.set_offline(False)
    eventually(lambda: shows(ada, left, "Ada Lovelace"), 10, "Bob back")


def test_a_pulled_cable_leaves_within_the_ping_time(new_page: NewPage) -> None:
    # Nothing reaches the server any more from Bob, not even his page's close: only the
    # server's pings notice (TANDEM_PING_SECONDS; 10 by default, which makes the 30 s of
    # the promise, tests/test_serve.py; 1 s here).
    ping = 1.0
    srv = TandemServer()
    srv.extra_env["TANDEM_PING_SECONDS"] = str(ping)
    srv.start()
    proxy = Proxy(target=srv.port).start()
    try:
        doc = create_document(srv, "Cable", "text\n")
        ada = open_as(new_page, srv.url + doc.path, "Ada")
        cy = open_as(new_page, srv.url + doc.path, "Cy")
        bob = open_as(new_page, proxy.url + doc.path, "Bob")
        everyone = {"Ada", "Bob", "Cy"}
        eventually(lambda: shows(ada, everyone, "Ada") and shows(cy, everyone, "Cy"), 5, "3")
        proxy.hang()
        bob.context.set_offline(True)  # the page closes its socket: the close is lost too
        started = time.monotonic()
        eventually(lambda: shows(ada, {"Ada", "Cy"}, "Ada"), 15, "Bob gone from Ada's page")
        eventually(lambda: shows(cy, {"Ada", "Cy"}, "Cy"), 2, "Bob gone from Cy's page")
        # A ping, 1.5 pings unanswered, Daphne's 2 s checker, a presence broadcast.
        assert time.monotonic() - started < 2.5 * ping + 2 + 1.5
        # Ada and Cy answer the pings: they stay, well past the time it took.
        ada.wait_for_timeout(4000)
        assert shows(ada, {"Ada", "Cy"}, "Ada") and shows(cy, {"Ada", "Cy"}, "Cy")
    finally:
        proxy.stop()
        srv.kill()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


# -- carets and selections ----------------------------------------------------------------


def caret_offsets(page: Page, name: str) -> list[int]:
    return [
        int(o)
        for o in page.locator(f'#collab .remote-caret[data-name="{name}"]').evaluate_all(
            "els => els.map(e => e.dataset.offset)"
        )
    ]


def place(page: Page, start: int, end: int | None = None, direction: str = "forward") -> None:
    page.locator("#editor").focus()
    page.locator("#editor").evaluate(
        "(el, [s, e, d]) => el.setSelectionRange(s, e, d)",
        [start, start if end is None else end, direction],
    )


def test_carets_and_selections_show_in_everyone_elses_editor(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    text = "Hello world\nsecond line\n"
    doc = make_document("Carets", text)
    ada, bob, cy = (open_as(new_page, doc.path, n) for n in ["Ada", "Bob", "Cy"])
    place(bob, 6)  # before "world"
    place(cy, 12)  # start of the second line
    eventually(lambda: caret_offsets(ada, "Bob") == [6], 5, "Bob's caret on Ada's page")
    eventually(lambda: caret_offsets(ada, "Cy") == [12], 5, "Cy's caret on Ada's page")
    eventually(lambda: caret_offsets(cy, "Bob") == [6], 5, "Bob's caret on Cy's page")
    # Nobody sees their own caret as a remote one.
    assert caret_offsets(bob, "Bob") == [] and caret_offsets(ada, "Ada") == []

    # Ada types before Bob's caret: it stays before "w", at once (her unsent text too:
    # drawn in the frame that shows her text, as the carets layer is).
    place(ada, 0)
    ada.keyboard.type("Hi! ")
    ada.evaluate("() => new Promise((done) => requestAnimationFrame(() => setTimeout(done)))")
    assert caret_offsets(ada, "Bob") == [10]
    eventually(lambda: caret_offsets(cy, "Bob") == [10], 5, "Bob's caret moved on Cy's page")
    assert caret_offsets(ada, "Cy") == [16]

    # Bob selects "world": a highlight of it in the others' editors.
    place(bob, 10, 15)

    def selection_text(page: Page) -> str:
        marks = page.locator('#collab .remote-selection[data-name="Bob"]')
        return "".join(marks.all_inner_texts())

    eventually(lambda: selection_text(ada) == "world", 5, "Bob's selection on Ada's page")
    eventually(lambda: selection_text(cy) == "world", 5, "Bob's selection on Cy's page")
    # the caret is at the selection's end (the layer draws it with the next frame)
    eventually(lambda: caret_offsets(ada, "Bob") == [15], 5, "Bob's caret at the end")

    # Selected from right to left: the caret is at the start, where his moving end is.
    place(bob, 10, 15, "backward")
    eventually(lambda: caret_offsets(ada, "Bob") == [10], 5, "Bob's caret at the head")
    eventually(lambda: caret_offsets(cy, "Bob") == [10], 5, "Bob's caret at the head on Cy's")
    assert selection_text(ada) == "world"

    # His caret has his colour, and his name on a label.
    caret = ada.locator('#collab .remote-caret[data-name="Bob"]')
    avatar = ada.locator('#presence [data-name="Bob"]')
    assert caret.evaluate("e => getComputedStyle(e).borderLeftColor") == avatar.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert caret.locator(".remote-caret-label").inner_text() == "Bob"

    # Bob closes his page: his caret goes everywhere.
    bob.close()
    eventually(lambda: caret_offsets(ada, "Bob") == [], 5, "Bob's caret gone from Ada's page")
    eventually(lambda: selection_text(cy) == "", 5, "Bob's selection gone from Cy's page")


def value(page: Page) -> str:
    return str(page.locator("#editor").evaluate("el => el.value"))


def test_a_click_on_someone_s_caret_puts_mine_there(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    """A caret's hover area (for its name) reaches a few pixels to each side; a click
    there is a click in the text, and what is typed next lands there. (It used to go to
    the browser, which put its selection in the caret's name label: nothing could be
    typed.)"""
    doc = make_document("Click", "Hi world\n")
    ada = open_as(new_page, doc.path, "Ada")
    open_as(new_page, doc.path, "Bob")  # his caret at the start, where a page opens
    eventually(lambda: caret_offsets(ada, "Bob") == [0], 5, "Bob's caret on Ada's page")
    line = ada.locator("#editor .cm-line").first.bounding_box()
    assert line is not None
    for dx in range(6):  # on the caret and its hover area
        place(ada, 8)
        ada.mouse.click(line["x"] + dx, line["y"] + line["height"] / 2)
        in_label = "() => !!getSelection().anchorNode?.parentElement?.closest('.remote-caret')"
        assert ada.evaluate(in_label) is False, dx
        ada.keyboard.type("Z")
        eventually(lambda: value(ada).count("Z") == 1, 5, f"the Z typed after a click at +{dx}")
        assert value(ada).index("Z") in (0, 1), (dx, value(ada))
        ada.keyboard.press("Backspace")


def test_a_caret_shows_its_name_under_the_pointer(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    # The carets layer takes no pointer events (a click there is a click in the text):
    # carets.js finds the pointer within 5 px of a caret itself.
    doc = make_document("Hover", "Hi world\n")
    ada = open_as(new_page, doc.path, "Ada")
    bob = open_as(new_page, doc.path, "Bob")
    place(bob, 3)
    eventually(lambda: caret_offsets(ada, "Bob") == [3], 5, "Bob's caret on Ada's page")
    label = ada.locator('#collab .remote-caret[data-name="Bob"] .remote-caret-label')
    expect(label).to_have_css("opacity", "0", timeout=5000)  # the fade after his move
    box = ada.locator('#collab .remote-caret[data-name="Bob"]').bounding_box()
    assert box is not None
    ada.mouse.move(box["x"] + 4, box["y"] + box["height"] / 2)
    expect(label).to_have_css("opacity", "1")
    ada.mouse.move(box["x"] + 40, box["y"] + box["height"] / 2)
    expect(label).to_have_css("opacity", "0")


def bob_far_down(new_page: NewPage, make_document: MakeDocument) -> tuple[Page, int]:
    """Ada's page, with Bob's caret at line 350 of 400 (out of her view): (ada, where)."""
    lines = [f"line {i}" for i in range(400)]
    doc = make_document("Long", "\n".join(lines) + "\n")
    ada, bob = (open_as(new_page, doc.path, n) for n in ["Ada", "Bob"])
    far = len("\n".join(lines[:350])) + 1  # the start of line 350
    place(bob, far)
    ada.wait_for_timeout(1000)  # Bob's caret reaches Ada (out of her view: not drawn)
    return ada, far


def test_clicking_a_person_scrolls_to_their_caret(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    ada, far = bob_far_down(new_page, make_document)
    assert caret_offsets(ada, "Bob") == []
    ada.locator('#presence [data-name="Bob"]').click()
    eventually(lambda: caret_offsets(ada, "Bob") == [far], 5, "Bob's caret scrolled into view")
    assert ada.locator(".cm-scroller").evaluate("e => e.scrollTop") > 1000


def test_a_person_is_reached_and_shown_with_the_keyboard(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    ada, far = bob_far_down(new_page, make_document)
    bob_button = ada.locator('#presence li[data-name="Bob"] > button')
    expect(bob_button).to_have_attribute("aria-label", "Bob: show where they are")
    expect(bob_button).to_have_text("B")
    me = ada.locator('#presence li[data-name="Ada"]')
    expect(me).to_have_attribute("aria-label", "Ada (you)")
    assert me.locator("button").count() == 0
    who = "() => (document.activeElement.closest('[data-name]') || {dataset: {}}).dataset.name"
    ada.locator("#name").focus()
    for _ in range(6):  # Tab from the name field reaches Bob (bounded)
        ada.keyboard.press("Tab")
        if ada.evaluate(who) == "Bob":
            break
    assert ada.evaluate(who) == "Bob"
    ada.keyboard.press("Enter")
    eventually(lambda: caret_offsets(ada, "Bob") == [far], 5, "Bob's caret scrolled into view")


# -- marks in the preview -------------------------------------------------------------------


def marks(page: Page) -> dict[str, str]:
    """Who has a mark in the preview, and the text of the block it is in (its first 12
    characters)."""
    found = page.locator("#preview section.block > .preview-mark[data-name]").evaluate_all(
        "els => els.filter(e => e.parentElement)"
        ".map(e => [e.dataset.name, e.parentElement.textContent.trim().slice(0, 12)])"
    )
    return dict(found)


def test_the_preview_marks_the_block_each_person_is_in(
    new_page: NewPage, make_document: MakeDocument
) -> None:
    text = "# Title\n\nFirst paragraph.\n\n- one\n- two\n\nLast paragraph 😀.\n"
    doc = make_document("Marks", text)
    ada, bob, cy = (open_as(new_page, doc.path, n, watch_styles=True) for n in ["Ada", "Bob", "Cy"])
    place(bob, text.index("paragraph."))
    place(cy, text.index("two"), text.index("two") + 2)  # a selection: marked at its head
    eventually(
        lambda: (
            {k: v for k, v in marks(ada).items() if k != "Ada"}
            == {"Bob": "First paragr", "Cy": "one\ntwo"}
        ),
        5,
        "Bob and Cy marked on Ada's page",
    )
    assert "Ada" not in marks(ada)  # nobody sees a mark of their own
    eventually(lambda: marks(bob).get("Cy") == "one\ntwo", 5, "Cy marked on Bob's page")
    assert "Bob" not in marks(bob)
    # In their colour (the avatar's).
    mark = ada.locator('#preview .preview-mark[data-name="Bob"]')
    avatar = ada.locator('#presence [data-name="Bob"]')
    assert mark.evaluate("e => getComputedStyle(e).backgroundColor") == avatar.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )

    # Marks follow the carets: Bob moves past the emoji (UTF-16 counts), Cy's block moves
    # down as Ada types a new block above it.
    place(bob, len(text) - 2)
    eventually(lambda: marks(ada).get("Bob") == "Last paragra", 5, "Bob's mark moved")
    place(ada, 0)
    ada.keyboard.type("Intro\n\n")
    eventually(lambda: marks(ada).get("Cy") == "one\ntwo", 5, "Cy still in the list")
    eventually(lambda: marks(bob).get("Cy") == "one\ntwo", 5, "on Bob's page too")
    eventually(lambda: marks(bob).get("Ada") == "Title", 5, "Ada's caret before the title")
    place(ada, 2)
    eventually(lambda: marks(bob).get("Ada") == "Intro", 5, "Ada's mark in her new block")

    # Someone leaves: their mark goes.
    cy.close()
    eventually(lambda: "Cy" not in marks(ada) and "Cy" not in marks(bob), 5, "Cy's mark gone")

    # Colours came through the CSSOM, never an inline style: a strict Content-Security-
    # Policy (style-src 'self') would refuse none of the marks, carets or selections.
    for page in (ada, bob):
        drawn = [c for c in inline_styles(page) if re.search(r"preview-mark|remote-", c)]
        assert drawn == [], drawn
