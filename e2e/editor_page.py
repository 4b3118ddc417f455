"""What tests do with an editor page: open it as a named person, read and place in its
text. `#editor` is a custom element (CodeMirror behind a text area's API), so its text is
read through `value`, never Playwright's `input_value()`."""

from __future__ import annotations

import json
from collections.abc import Callable

from playwright.sync_api import Page, expect


def open_editor(new_page: Callable[..., Page], url: str, name: str) -> Page:
    """A new person (browser context) called `name` on the editor at `url`, connected."""
    page = new_page()
    page.add_init_script(f"localStorage.setItem('tandem:name', {json.dumps(name)})")
    page.goto(url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page


def text_of(page: Page) -> str:
    return str(page.locator("#editor").evaluate("el => el.value"))


def caret_to_end(page: Page) -> None:
    page.locator("#editor").focus()
    page.locator("#editor").evaluate("el => el.setSelectionRange(el.value.length, el.value.length)")
