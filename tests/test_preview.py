"""The per-block Markdown preview: split, ids, out-of-band updates, sanitising, words.

Fragments are checked by applying them the way htmx 2.0.10 does (its `oobSwap`): a
top-level element with `hx-swap-oob="delete"` removes the element with its id, `"true"`
replaces it, and `"afterend:#x"` / `"afterbegin:#preview"` insert the *children* of the
wrapper (not the wrapper) after #x / at the start of #preview.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest

from collab.blocks import split_blocks, word_count
from collab.markdown import render_markdown
from collab.preview import PreviewState

VOID = {"area", "br", "col", "embed", "hr", "img", "input", "source", "track", "wbr"}


class _Fragment(HTMLParser):
    """Top-level elements of a fragment: (hx-swap-oob, id, [(child id, child inner)])."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self.text = text
        self.lines = [0]
        for line in text.split("\n"):
            self.lines.append(self.lines[-1] + len(line) + 1)
        self.depth = 0
        self.top: list[tuple[str, str, str, list[tuple[str, str]]]] = []
        self.inner_start = 0
        self.child_start = 0
        self.child_id = ""
        self.feed(text)
        self.close()
        assert self.depth == 0

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.lines[line - 1] + col

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        end = self._offset() + len(self.get_starttag_text() or "")
        if self.depth == 0:
            self.top.append((a.get("hx-swap-oob", "true"), a.get("id", ""), "", []))
            self.inner_start = end
        elif self.depth == 1 and tag == "section":
            self.child_id = a["id"]
            self.child_start = end
        if tag not in VOID:
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        self.depth -= 1
        here = self._offset()
        if self.depth == 1 and tag == "section" and self.child_id:
            self.top[-1][3].append((self.child_id, self.text[self.child_start : here]))
            self.child_id = ""
        elif self.depth == 0:
            oob, eid, _, children = self.top[-1]
            self.top[-1] = (oob, eid, self.text[self.inner_start : here], children)


def apply_oob(dom: list[tuple[str, str]], fragment: str) -> list[tuple[str, str]]:
    """Apply a fragment to a model of #preview: a list of (section id, inner HTML)."""
    dom = list(dom)
    for oob, eid, inner, children in _Fragment(fragment).top:
        ids = [i for i, _ in dom]
        if ":" in oob:
            style, selector = oob.split(":", 1)
            if selector == "#preview":
                assert style == "afterbegin"
                at = 0
            else:
                assert style == "afterend" and selector.startswith("#b-")
                assert ids.count(selector[1:]) == 1, f"target {selector} missing"
                at = ids.index(selector[1:]) + 1
            assert children, "an insertion wrapper carries sections"
            dom[at:at] = children
        else:
            assert ids.count(eid) == 1, f"#{eid} missing"
            at = ids.index(eid)
            if oob == "delete":
                del dom[at]
            else:
                assert oob == "true"
                dom[at] = (eid, inner)
        assert len({i for i, _ in dom}) == len(dom), "ids stay unique"
    return dom


def full(text: str) -> list[tuple[str, str]]:
    return [(b.id, b.inner) for b in PreviewState().render_full(text)]


def same_preview(dom: list[tuple[str, str]], text: str) -> None:
    """`dom` shows what a fresh render of `text` shows. Ids are equal up to the number
    that tells identical blocks apart (a fresh render numbers them afresh)."""
    fresh = full(text)
    assert [inner for _, inner in dom] == [inner for _, inner in fresh]
    assert [i.rsplit("-", 1)[0] for i, _ in dom] == [i.rsplit("-", 1)[0] for i, _ in fresh]
    assert len({i for i, _ in dom}) == len(dom)


def step(state: PreviewState, dom: list[tuple[str, str]], text: str) -> list[tuple[str, str]]:
    fragment = state.update(text)
    if fragment is not None:
        dom = apply_oob(dom, fragment)
    same_preview(dom, text)
    assert [(b.id, b.inner) for b in state.blocks] == dom
    return dom


DOC = """# Title

First paragraph with *emphasis*.

```python
def f():

    return 1
```

- one
- two

Last paragraph.
"""

# -- splitting ------------------------------------------------------------------------


def test_blocks_are_blank_line_separated() -> None:
    assert split_blocks(DOC) == [
        "# Title",
        "First paragraph with *emphasis*.",
        "```python\ndef f():\n\n    return 1\n```",
        "- one\n- two",
        "Last paragraph.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "```\na\n\n\nb\n```",
        "~~~\na\n\n~~~",
        "````\n```\n\nx\n````",  # a shorter fence does not close a longer one
        "```\na\n\n``` not a closer\n\nb\n```",
        "<!-- a\n\nb -->",
        "<pre>\na\n\nb\n</pre>",
        "<script>\nx\n\ny\n</script>",
        "    code\n\n    more code",
        "- a\n\n  continued\n\n- b\n\n- c",  # one loose list
        "1. a\n\n2. b",
        "> quote\n\n    indented after",
    ],
)
def test_constructs_with_blank_lines_stay_one_block(text: str) -> None:
    assert split_blocks(text) == [text]


def test_unclosed_fence_runs_to_the_end() -> None:
    assert split_blocks("para\n\n```\na\n\nb\n\n# not a heading") == [
        "para",
        "```\na\n\nb\n\n# not a heading",
    ]


def test_fence_inside_list_item_does_not_swallow_the_document() -> None:
    text = "- item\n  ```\n  a\n\n  b\n  ```\n\nafter\n\n```\nreal\n\nfence\n```"
    assert split_blocks(text) == [
        "- item\n  ```\n  a\n\n  b\n  ```",
        "after",
        "```\nreal\n\nfence\n```",
    ]


def test_leading_and_trailing_blank_lines_are_not_blocks() -> None:
    assert split_blocks("\n  \n\na\n\n \n") == ["a"]
    assert split_blocks("") == []
    assert split_blocks(" \n\t\n  ") == []


def test_long_loose_list_is_cut_by_content_only() -> None:
    items = [f"- item {i}" for i in range(200)]
    blocks = split_blocks("\n\n".join(items))
    assert 1 < len(blocks) < 200
    assert all(b.count("\n\n") >= 15 for b in blocks[:-1])
    # Inserting an item near the start moves no cut after the next one.
    edited = split_blocks("\n\n".join([*items[:3], "- new", *items[3:]]))
    assert edited[2:] == blocks[2:]


def _equivalent_docs(count: int) -> list[str]:
    pieces = [
        "# Heading {w}", "Para {w} with *em* and [link][r{n}]", "- item {w}",
        "- item {w}\n  continued", "1. one {w}", "2) two {w}", "* star {w}",
        "```\ncode {w}\n\nmore\n```", "~~~py\n{w}\n\n~~~", "````\n```\n{w}\n\n````",
        "    indented {w}", "> quote {w}", "> quote\n>\n> {w}", "<div>\n{w}\n</div>\n",
        "<!-- c {w}\n\n-->\n", "<pre>\n{w}\n\n</pre>", '[r{n}]: /u{n} "T{w}"',
        "| a | b |\n|---|:-:|\n| {w} | x |", "---", "***", "Setext {w}\n===",
        "  two-space {w}", "- [ ] task {w}", "text <b>{w}</b> &amp; ~~s~~",
        "  ```\n  {w}\n\n  ```", "- a\n\n  b {w}", "1. a\n\n   ```\n   x\n\n   y\n   ```",
        "\t\ttab {w}", "- ```\n  a\n\n  b\n  ```", "```", "-->",
    ]  # fmt: skip
    rng = random.Random(7)
    docs = []
    for _ in range(count):
        out = []
        for _ in range(rng.randint(0, 14)):
            word = rng.choice(["a", "β", "漢字", "😀", "x y"])
            out.append(rng.choice(pieces).format(w=word, n=rng.randint(0, 3)))
            out.append(rng.choice(["\n", "\n\n", "\n\n\n", "\n  \n"]))
        docs.append("".join(out))
    return docs


def test_blocks_render_like_the_whole_document() -> None:
    # Whitespace between elements may differ (and an unclosed fence drops trailing blank
    # lines); the elements and text may not.
    def squash(html: str) -> str:
        return re.sub(r"\s+", "", html)

    for text in _equivalent_docs(1500):
        blocks = PreviewState().render_full(text)
        assert squash("".join(b.inner for b in blocks)) == squash(render_markdown(text)), text


def test_reference_definitions_resolve_across_blocks() -> None:
    text = "See [the docs][d] and [d].\n\nMore text.\n\n[d]: https://example.com/d 'Docs'"
    html = "".join(b.html for b in PreviewState().render_full(text))
    assert html.count('href="https://example.com/d"') == 2
    assert 'title="Docs"' in html


def test_changed_definition_refreshes_the_blocks_using_it() -> None:
    text = "Use [x].\n\nOther.\n\n[x]: /one"
    state = PreviewState()
    dom = [(b.id, b.inner) for b in state.render_full(text)]
    new = text.replace("/one", "/two")
    fragment = state.update(new)
    assert fragment is not None
    assert 'hx-swap-oob="true"' in fragment and "/two" in fragment
    assert "Other" not in fragment
    same_preview(apply_oob(dom, fragment), new)


# -- ids and updates ---------------------------------------------------------------------


def test_ids_are_stable_across_an_unrelated_edit() -> None:
    state = PreviewState()
    before = state.render_full(DOC)
    after = PreviewState().render_full(DOC.replace("Last paragraph", "Final paragraph"))
    assert [b.id for b in before[:4]] == [b.id for b in after[:4]]
    assert before[4].id != after[4].id
    assert all(re.fullmatch(r"b-[0-9a-f]{12}-\d+", b.id) for b in before)
    assert before[0].html.startswith(f'<section id="{before[0].id}" class="block" data-len="7">')


def test_identical_blocks_get_distinct_ids() -> None:
    blocks = PreviewState().render_full("---\n\ntext\n\n---\n\n---")
    ids = [b.id for b in blocks]
    assert len(set(ids)) == 4
    assert ids[0].endswith("-0") and ids[2].endswith("-1") and ids[3].endswith("-2")


def test_editing_one_of_many_identical_blocks_moves_no_other_id() -> None:
    text = "\n\n".join(["# Head", *["---"] * 50, "tail"])
    state = PreviewState()
    dom = [(b.id, b.inner) for b in state.render_full(text)]
    assert len({i for i, _ in dom}) == 52
    edited = text.replace("---", "***", 1)
    fragment = state.update(edited)
    assert fragment is not None and fragment.count("<section") == 2
    dom = apply_oob(dom, fragment)
    same_preview(dom, edited)
    # A new copy takes a free number, and the ids stay unique.
    dom = step(state, dom, edited.replace("tail", "---\n\ntail"))
    dom = step(state, dom, "---\n\n" + edited)


def test_update_sends_only_the_changed_block() -> None:
    state = PreviewState()
    blocks = state.render_full(DOC)
    fragment = state.update(DOC.replace("emphasis", "strong emphasis"))
    assert fragment is not None
    assert fragment.count("<section") == 2  # one deletion, one insertion
    assert f'<section id="{blocks[1].id}" hx-swap-oob="delete"></section>' in fragment
    assert f'hx-swap-oob="afterend:#{blocks[0].id}"' in fragment
    assert "strong emphasis" in fragment and "Title" not in fragment


def test_no_change_means_no_fragment() -> None:
    state = PreviewState()
    state.render_full(DOC)
    assert state.update(DOC) is None
    # A change to separating blank lines changes no block.
    assert state.update(DOC.replace("\n\n- one", "\n\n\n\n- one")) is None


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: "New first block\n\n" + t,
        lambda t: t + "\nNew last block\n",
        lambda t: t.replace("- one", "Inserted\n\n- one"),
        lambda t: t.replace("# Title\n\n", ""),
        lambda t: t.replace("\n\nLast paragraph.", ""),
        lambda t: t.replace("- one\n- two\n\n", ""),
        lambda t: t.replace("First paragraph", "First\n\nsplit\n\nparagraph"),
        lambda t: t.replace("\n\n- one", " joined\n- one"),
        lambda t: t.replace("```python", "Para\n\n```python"),
        lambda t: t.replace("```\n\n- one", "\n\n- one"),  # unclose the fence
        lambda t: t + "\n# Title\n",  # a duplicate of the first block
        lambda t: "# Title\n\n" + t,  # a duplicate before the first block
        lambda t: "",
    ],
)
def test_fragments_turn_the_old_preview_into_the_new(edit: Callable[[str], str]) -> None:
    state = PreviewState()
    dom = [(b.id, b.inner) for b in state.render_full(DOC)]
    step(state, dom, edit(DOC))


def test_from_and_to_the_empty_document() -> None:
    state = PreviewState()
    assert state.render_full("") == []
    fragment = state.update("# Hi\n\ntext")
    assert fragment is not None and 'hx-swap-oob="afterbegin:#preview"' in fragment
    dom = apply_oob([], fragment)
    same_preview(dom, "# Hi\n\ntext")
    dom = step(state, dom, "  \n")
    assert dom == []
    step(state, dom, "again")


def test_random_edits_keep_the_preview_in_step() -> None:
    # Typing, deleting and pasting anywhere: the fragments must always yield exactly
    # what a fresh render of the new text gives.
    rng = random.Random(11)
    snippets = [
        "a", " ", "\n", "\n\n", "```", "\n```\n", "- ", "1. ", "  ", "<!--", "-->", "#",
        "[r]", "\n[r]: /x\n", "> ", "漢", "😀", "|a|b|\n|-|-|\n", "---", "~~~\n", "<pre>",
    ]  # fmt: skip
    for doc in _equivalent_docs(60):
        state = PreviewState()
        dom = [(b.id, b.inner) for b in state.render_full(doc)]
        text = doc
        for _ in range(12):
            a = rng.randint(0, len(text))
            b = min(len(text), a + rng.choice([0, 0, 1, 3, 20]))
            ins = rng.choice(["", rng.choice(snippets), rng.choice(snippets) * 2])
            text = text[:a] + ins + text[b:]
            dom = step(state, dom, text)
            assert state.words == word_count(text)


def test_incremental_split_matches_a_full_split_in_a_large_document() -> None:
    base = "\n\n".join(
        f"## Section {i}\n\nSome text {i} with a [link](https://example.com/{i}).\n\n"
        f"- a {i}\n- b {i}\n\n```\ncode {i}\n\nmore\n```"
        for i in range(300)
    )
    state = PreviewState()
    dom = [(b.id, b.inner) for b in state.render_full(base)]
    rng = random.Random(3)
    text = base
    for _ in range(40):
        # Edits in prose (a fence typed here would legitimately change everything after).
        at = text.index("Some text", rng.randint(0, len(text) - 200)) + 5
        cut = rng.randint(0, 2)
        text = text[:at] + rng.choice(["x", "\n\n", "\n- ", "", "漢"]) + text[at + cut :]
        fragment = state.update(text)
        if fragment is not None:
            assert len(fragment) < 2_000  # only changed blocks travel
            dom = apply_oob(dom, fragment)
    same_preview(dom, text)


# -- sanitising ----------------------------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    "text <script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x]( javascript:alert(1))",
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "![x](data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=)",
    "<svg onload=alert(1)><circle/></svg>",
    "<svg><script>alert(1)</script></svg>",
    '<iframe src="https://evil.example"></iframe>',
    "<object data=x></object><embed src=x>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<p style="width: expression(alert(1))">x</p>',
    "<style>body{display:none}</style>",
    '<form action="/d/x/"><button formaction="javascript:alert(1)">x</button></form>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<div hx-get="/api/documents/" hx-trigger="load" hx-swap-oob="true" id="editor">x</div>',
    '<a href="#" onclick="alert(1)" onmouseover="alert(1)">x</a>',
    "<details open ontoggle=alert(1)>x</details>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:/">',
    "[x]: javascript:alert(1)\n\n[y][x]",
]


@pytest.mark.parametrize("source", XSS)
def test_nothing_active_survives(source: str) -> None:
    html = "".join(b.html for b in PreviewState().render_full(source)).lower()
    assert "<script" not in html
    assert "<iframe" not in html and "<object" not in html and "<embed" not in html
    assert "<style" not in html and "<svg" not in html and "<form" not in html
    assert "<meta" not in html and "<base" not in html
    assert not re.search(r"\son[a-z]+\s*=", html), html
    # Refused links stay as literal text; no attribute may carry such a URL.
    assert not re.search(r"=\s*[\"']?\s*(javascript|vbscript|data):", html), html
    assert "style=" not in html and "expression(" not in html
    assert "hx-" not in html
    assert 'id="editor"' not in html


def test_links_are_safe_and_open_elsewhere() -> None:
    (block,) = PreviewState().render_full("[site](https://example.com)")
    assert 'href="https://example.com"' in block.html
    assert 'rel="noopener noreferrer nofollow"' in block.html
    assert 'target="_blank"' in block.html


def test_markdown_features() -> None:
    text = (
        "| a | b |\n|:-|-:|\n| 1 | 2 |\n\n~~gone~~\n\n- [ ] todo\n- [x] done\n\n"
        "```js\nlet x = 1 < 2;\n```\n\n![alt](/img.png)"
    )
    html = "".join(b.html for b in PreviewState().render_full(text))
    assert '<th align="left">a</th>' in html and '<td align="right">2</td>' in html
    assert "<s>gone</s>" in html
    assert '<li class="task"><input type="checkbox" disabled="disabled"> todo</li>' in html
    assert 'checked=""' in html
    assert '<code class="language-js">let x = 1 &lt; 2;' in html
    assert '<img src="/img.png" alt="alt">' in html


def test_raw_inputs_are_inert() -> None:
    (block,) = PreviewState().render_full('<input type="text" name="x" value="y">')
    assert block.inner.strip() == '<input disabled="disabled">'


def test_emoji_and_cjk_render_intact() -> None:
    text = "# 你好, 世界 👋🏽\n\n家族: 👨‍👩‍👧‍👦, combining: e\u0301, 한국어"
    html = "".join(b.html for b in PreviewState().render_full(text))
    assert "你好, 世界 👋🏽" in html
    assert "👨‍👩‍👧‍👦" in html and "e\u0301" in html and "한국어" in html


# -- words ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("Hello, world!", 2),
        ("# Heading\n\n- one two\n- three", 4),
        ("don't e-mail 3.14 naïve", 4),
        ("你好世界", 4),
        ("日本語とEnglish", 5),
        ("한국어 단어", 2),
        ("emoji 😀 only counts words", 4),
        ("[a link](https://example.com/long/path) <b>bold</b>", 3),
        ("snake_case", 2),
    ],
)
def test_word_count(text: str, words: int) -> None:
    assert word_count(text) == words


def test_words_of_the_state_follow_edits() -> None:
    state = PreviewState()
    state.render_full(DOC)
    assert state.words == word_count(DOC)
    state.update(DOC + "\nthree more words\n")
    assert state.words == word_count(DOC) + 3


def test_a_huge_block_gets_a_note_in_the_live_preview_but_renders_in_exports() -> None:
    table = "| a | b |\n|---|---|\n" + "".join(f"| {i} | x |\n" for i in range(20_000))
    text = "# Title\n\n" + table
    live = PreviewState(block_limit=100_000)
    blocks = live.render_full(text)
    assert "<h1>Title</h1>" in blocks[0].html
    assert "too large to preview live" in blocks[1].html
    assert "<table" not in blocks[1].html
    # A keystroke inside the huge block sends a note, not megabytes.
    fragment = live.update(text + "| 20000 | y |\n")
    assert fragment is not None
    assert len(fragment) < 1_000
    full = PreviewState().render_full(text)
    assert "<table" in full[1].html


# -- laying the blocks over the text (static/js/preview-marks.js) ---------------------------


def units(text: str) -> str:
    """`text` with one character per UTF-16 code unit (surrogate pairs split), so that
    offsets count as the browser counts them."""
    raw = text.encode("utf-16-le", "surrogatepass")
    return "".join(chr(int.from_bytes(raw[i : i + 2], "little")) for i in range(0, len(raw), 2))


def lay(text: str, lengths: list[int]) -> list[int]:
    """The page's walk (layBlocks): each block starts on the first line at or after the
    end of the one before that is not blank (spaces and tabs only)."""
    line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    line_ends = [s - 1 for s in line_starts[1:]] + [len(text)]
    starts, pos = [], 0
    for length in lengths:
        n = max(i for i, s in enumerate(line_starts) if s <= pos)
        if pos > line_starts[n] and n + 1 < len(line_starts):
            n += 1
        while not text[line_starts[n] : line_ends[n]].strip(" \t") and n + 1 < len(line_starts):
            n += 1
        start = max(pos, line_starts[n])
        starts.append(start)
        pos = min(start + length, len(text))
    return starts


def laid_out(state: PreviewState, html_lengths: dict[str, int]) -> None:
    """Each block's `data-len` is its source's UTF-16 length, and the walk finds every
    block's source where it is in the text."""
    text = units(state.text)
    blocks = state.blocks
    lengths = [html_lengths[b.id] for b in blocks]
    assert lengths == [len(units(b.source)) for b in blocks]
    for block, start, length in zip(blocks, lay(text, lengths), lengths, strict=True):
        assert text[start : start + length] == units(block.source)


SECTION_LEN = re.compile(r'<section id="([^"]+)" class="block" data-len="(\d+)"')


def test_blocks_carry_their_length_and_lay_over_the_text() -> None:
    rng = random.Random(5)
    snippets = ["a", " ", "\n", "\n\n", " \n\t\n", "```", "- ", "  ", "#", "😀", "漢", "e\u0301"]
    for doc in [DOC, "\n \n😀 x\n\n\n  \n- a\n\n  b\n\n漢字\n  \n", *_equivalent_docs(20)]:
        state = PreviewState()
        lengths = {
            b.id: int(n) for b in state.render_full(doc) for _, n in SECTION_LEN.findall(b.html)
        }
        laid_out(state, lengths)
        text = doc
        for _ in range(12):
            a = rng.randint(0, len(text))
            b = min(len(text), a + rng.choice([0, 1, 3, 20]))
            text = text[:a] + rng.choice(["", *snippets]) + text[b:]
            fragment = state.update(text) or ""
            lengths.update({i: int(n) for i, n in SECTION_LEN.findall(fragment)})
            laid_out(state, lengths)
