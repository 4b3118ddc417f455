// Markdown for the editor: @lezer/markdown's parser (CommonMark + GitHub's tables,
// strikethrough, task lists and autolinks) as a CodeMirror language, and a highlighter
// that gives tokens classes (md-*) rather than colours, so static/css/tandem.css colours
// them for light and dark alike. @codemirror/lang-markdown would do the same but loads
// the HTML, CSS and JavaScript languages for embedded code (see scripts/vendor-codemirror).

import { Language, defineLanguageFacet, syntaxHighlighting } from "@codemirror/language";
import { GFM, parser } from "@lezer/markdown";
import { Tag, styleTags, tags, tagHighlighter } from "@lezer/highlight";

const data = defineLanguageFacet({ commentTokens: { block: { open: "<!--", close: "-->" } } });

// The parser is incremental between blocks, but parses a paragraph's inline content in
// one go, and link brackets cost time quadratic in its length: one 1 MB paragraph (a
// pasted log, text without blank lines) took 1.3 s to open. Paragraphs over 10,000
// characters are cut at the next line break; only highlighting that spans the cut is lost.
const LONG_PARAGRAPH = 10_000;
const longParagraphs = {
  parseBlock: [{ name: "LongParagraph", endLeaf: (_cx, _line, leaf) => leaf.content.length > LONG_PARAGRAPH }],
};

// A list's bullet or number gets its own tag (the parser tags every mark, `#`, `*`, `[`,
// alike), so that it can stand out without colouring the marks inside list items.
const listMark = Tag.define(tags.processingInstruction);
const listMarks = { props: [styleTags({ ListMark: listMark })] };

/** CodeMirror's Markdown language; incremental, parsed viewport first. */
export const markdownLanguage = new Language(
  data,
  parser.configure([GFM, longParagraphs, listMarks]),
  [],
  "markdown",
);

/** Token classes: the colours live in tandem.css (light and dark). */
export const markdownHighlighter = tagHighlighter([
  { tag: tags.heading1, class: "md-heading md-h1" },
  { tag: tags.heading2, class: "md-heading md-h2" },
  { tag: tags.heading, class: "md-heading" },
  { tag: tags.emphasis, class: "md-em" },
  { tag: tags.strong, class: "md-strong" },
  { tag: tags.strikethrough, class: "md-strike" },
  { tag: tags.link, class: "md-link" },
  { tag: tags.url, class: "md-url" },
  { tag: tags.monospace, class: "md-code" },
  { tag: listMark, class: "md-mark md-list-mark" },
  { tag: tags.processingInstruction, class: "md-mark" },
  { tag: tags.quote, class: "md-quote" },
  { tag: tags.contentSeparator, class: "md-hr" },
  { tag: tags.comment, class: "md-comment" },
  { tag: [tags.labelName, tags.string], class: "md-meta" },
  { tag: [tags.escape, tags.character], class: "md-escape" },
]);

/** The extensions that make a CodeMirror editor a highlighted Markdown editor. */
export function markdown() {
  return [markdownLanguage, syntaxHighlighting(markdownHighlighter)];
}
