"""How Tandem renders Markdown: one place for the whole policy.

Which Markdown: CommonMark with tables, strikethrough and task-list checkboxes (table
alignment kept as `align`), raw HTML allowed in and then sanitised by nh3 to an allow
list (links get rel="noopener noreferrer nofollow" and open in a new tab; only http,
https, mailto, tel and ftp URLs; a task box is the only <input>, always disabled).
No linkify (it needs linkify-it-py, an extra dependency).

Used per top-level block by the live preview (collab/preview.py), by exports and by
history pages; rendered blocks are cached by their source and the link definitions they
use.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

__all__ = ["Refs", "cached_render", "definitions", "render_markdown"]

_TASK = re.compile(r"\[([ xX])\][ \t]")
_ALIGN = re.compile(r"text-align:(left|center|right)")


def _tandem_tweaks(state: StateCore) -> None:
    """Task-list checkboxes, and table alignment as `align` (nh3 drops every `style`)."""
    tokens = state.tokens
    for i, tok in enumerate(tokens):
        if tok.type in ("th_open", "td_open"):
            style = tok.attrGet("style")
            if style:
                tok.attrs.pop("style", None)
                m = _ALIGN.search(str(style))
                if m:
                    tok.attrSet("align", m.group(1))
        elif (
            tok.type == "inline"
            and i >= 2
            and tokens[i - 1].type == "paragraph_open"
            and tokens[i - 2].type == "list_item_open"
            and tok.children
            and tok.children[0].type == "text"
        ):
            first = tok.children[0]
            m = _TASK.match(first.content)
            if not m:
                continue
            box = Token("html_inline", "", 0)
            checked = " checked" if m.group(1) != " " else ""
            box.content = f'<input type="checkbox"{checked}> '
            first.content = first.content[m.end() :]
            tok.children.insert(0, box)
            tokens[i - 2].attrSet("class", "task")


_LOCAL = threading.local()


def _md() -> MarkdownIt:
    # One parser per thread: rendering may run in worker threads, and a MarkdownIt
    # instance is cheap to keep but not documented as thread-safe.
    md: MarkdownIt | None = getattr(_LOCAL, "md", None)
    if md is None:
        md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
        md.core.ruler.push("tandem_tweaks", _tandem_tweaks)
        _LOCAL.md = md
    return md


_ATTRIBUTES: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("code", set()).add("class")  # language-xyz from fenced code
_ATTRIBUTES.setdefault("img", set()).add("title")
_ATTRIBUTES.setdefault("a", set()).add("title")

_CLEANER = nh3.Cleaner(
    tags=set(nh3.ALLOWED_TAGS) | {"input"},
    attributes=_ATTRIBUTES,
    # Task-list boxes only: any other <input> loses its type and is forced disabled.
    tag_attribute_values={
        "input": {"type": {"checkbox"}, "checked": {"", "checked"}},
        "li": {"class": {"task"}},
    },
    set_tag_attribute_values={"input": {"disabled": "disabled"}, "a": {"target": "_blank"}},
    url_schemes={"http", "https", "mailto", "tel", "ftp"},
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)

Refs = tuple[tuple[str, str, str], ...]  # (normalised label, href, title), sorted


def render_markdown(source: str, refs: Refs = ()) -> str:
    """Sanitised HTML of one piece of Markdown; `refs` are link definitions from elsewhere."""
    md = _md()
    env: dict[str, Any] = {}
    if refs:
        env["references"] = {
            label: {"href": href, "title": title, "map": None} for label, href, title in refs
        }
    html = md.renderer.render(md.parse(source, env), md.options, env)
    return _CLEANER.clean(html)


class _RenderCache:
    """A bounded LRU of rendered blocks keyed by (source, refs), bounded by characters so a
    run of huge blocks (an unclosed fence being typed) cannot grow it without limit."""

    def __init__(self, max_chars: int = 32_000_000, max_entry: int = 1_000_000) -> None:
        self._data: OrderedDict[tuple[str, Refs], str] = OrderedDict()
        self._chars = 0
        self._max_chars = max_chars
        self._max_entry = max_entry
        self._lock = threading.Lock()

    def get(self, source: str, refs: Refs) -> str:
        key = (source, refs)
        with self._lock:
            html = self._data.get(key)
            if html is not None:
                self._data.move_to_end(key)
                return html
        html = render_markdown(source, refs)
        size = len(source) + len(html)
        if size <= self._max_entry:
            with self._lock:
                if key not in self._data:
                    self._data[key] = html
                    self._chars += size
                    while self._chars > self._max_chars:
                        (old_src, _), old_html = self._data.popitem(last=False)
                        self._chars -= len(old_src) + len(old_html)
        return html

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._chars = 0


_CACHE = _RenderCache()


def cached_render(source: str, refs: Refs = ()) -> str:
    """render_markdown(source, refs), from the shared cache when it has it."""
    return _CACHE.get(source, refs)


def definitions(source: str) -> dict[str, tuple[str, str]]:
    """Link reference definitions made in one block (label -> (href, title))."""
    md = _md()
    env: dict[str, Any] = {}
    md.parse(source, env)
    return {k: (v["href"], v["title"]) for k, v in env.get("references", {}).items()}
