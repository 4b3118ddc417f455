"""History read from the log: sessions (grouping), the text at a version, named versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Text

from collab import history, store
from collab.crdt import TEXT_KEY, new_doc
from collab.delta import counts
from collab.engine import DocumentEngine
from collab.log import DocumentLog
from collab.models import DocumentUpdate
from collab.protocol import SyncRequest
from editor.changes import CONTEXT_LINES, Piece, changes, summary

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(seq: int, minutes: float, author: str = "Ann", ins: int = 1, dele: int = 0) -> history.Row:
    return history.Row(seq, author, T0 + timedelta(minutes=minutes), ins, dele)


# ---------------------------------------------------------------- grouping


def reference_groups(rows: list[history.Row], labels: dict[int, str]) -> list[list[int]]:
    """Sessions the slow, obvious way: split the whole (oldest first) list at each break."""
    ordered = sorted(rows, key=lambda r: r.seq)
    groups: list[list[int]] = []
    for i, r in enumerate(ordered):
        if i == 0 or history.breaks_between(r, ordered[i - 1], labels):
            groups.append([])
        groups[-1].append(r.seq)
    return [sorted(g, reverse=True) for g in reversed(groups)]


timelines = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=12, allow_nan=False),
        st.sampled_from(["Ann", "Bo", ""]),
    ),
    min_size=0,
    max_size=60,
)


@given(timelines, st.sets(st.integers(1, 60)), st.integers(1, 7))
def test_paging_groups_exactly_as_grouping_everything_at_once(
    steps: list[tuple[float, str]], labelled: set[int], limit: int
) -> None:
    rows, minute = [], 0.0
    for seq, (gap, author) in enumerate(steps, start=1):
        minute += gap
        rows.append(row(seq, minute, author))
    labels = {v: f"v{v}" for v in labelled if v <= len(rows)}
    expected = reference_groups(rows, labels)
    newest_first = list(reversed(rows))
    seen: list[list[int]] = []
    before: int | None = None
    for _ in range(len(rows) + 1):
        page_rows = [r for r in newest_first if before is None or r.seq < before]
        page, before = history.group(page_rows, labels, limit)
        assert len(page) <= limit
        for s in page:
            seqs = list(range(s.version, s.first - 1, -1))
            seen.append(seqs)
            members = [r for r in rows if r.seq in seqs]
            assert s.inserted == sum(r.inserted for r in members)
            assert set(s.authors) == {r.author or history.UNKNOWN_AUTHOR for r in members}
            assert s.label == labels.get(s.version, "")
        if before is None:
            break
    assert seen == expected


def test_a_pause_longer_than_the_gap_starts_a_new_session() -> None:
    rows = [row(1, 0, "Ann"), row(2, 1, "Bo"), row(3, 20, "Ann")]
    sessions, after = history.group(list(reversed(rows)), {}, 10)
    assert [(s.version, s.first, s.authors) for s in sessions] == [
        (3, 3, ["Ann"]),
        (2, 1, ["Bo", "Ann"]),
    ]
    assert after is None


def test_a_named_version_ends_its_session_and_carries_the_label() -> None:
    rows = [row(i, i * 0.1) for i in range(1, 6)]
    sessions, _ = history.group(list(reversed(rows)), {3: "Draft"}, 10)
    assert [(s.version, s.first, s.label) for s in sessions] == [(5, 4, ""), (3, 1, "Draft")]


def test_a_long_session_is_listed_in_pieces_of_at_most_1000_updates() -> None:
    rows = [row(i, 0) for i in range(1, 2501)]
    sessions, _ = history.group(list(reversed(rows)), {}, 10)
    assert [(s.version, s.first) for s in sessions] == [(2500, 2001), (2000, 1001), (1000, 1)]


# ---------------------------------------------------------------- text at a version

edits = st.lists(
    st.tuples(
        st.floats(0, 1),  # where
        st.integers(0, 4),  # how much to delete
        st.text(alphabet="ab é😀\n", max_size=5),  # what to insert
        st.booleans(),  # a snapshot after this update
    ),
    min_size=1,
    max_size=25,
)


@pytest.mark.django_db
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits)
def test_text_at_every_version_matches_a_replay_of_the_log(
    steps: list[tuple[float, int, str, bool]],
) -> None:
    doc = store.create_document("H")
    engine = DocumentEngine(DocumentLog(updates=[]))
    texts = {0: ""}
    rid = 0
    for where, delete, insert, snapshot in steps:
        text = engine.text
        units = len(text.encode("utf-16-le")) // 2
        at = int(where * units)
        # Never split a surrogate pair: move to the start of a character.
        prefix = text.encode("utf-16-le")[: at * 2].decode("utf-16-le", "ignore")
        at = len(prefix.encode("utf-16-le")) // 2
        rest = text[len(prefix) :]
        gone = len(rest[:delete].encode("utf-16-le")) // 2
        ops: list[dict[str, object]] = [{"retain": at}] if at else []
        if gone:
            ops.append({"delete": gone})
        if insert:
            ops.append({"insert": insert})
        rid += 1
        request = SyncRequest("history-test", rid, engine.version, ops)
        _, update = engine.handle("s", request, "Ann")
        if update is None:
            continue
        assert (update.inserted, update.deleted) == counts(ops)  # type: ignore[arg-type]
        state = engine.encode_state() if snapshot else None
        store.append(doc.id, [update], state)
        texts[engine.version] = engine.text
    for version, expected in texts.items():
        assert history.text_at(doc.id, version) == expected
        replay, ytext = new_doc(store.load_updates(doc.id, version))
        assert str(replay.get(TEXT_KEY, type=Text)) == expected == str(ytext)


@pytest.mark.django_db
def test_text_at_an_unknown_version_is_refused() -> None:
    doc = store.create_document("H", "abc")
    assert history.text_at(doc.id, 1) == "abc"
    assert history.text_at(doc.id, 0) == ""
    with pytest.raises(history.UnknownVersion, match="versions 0 to 1"):
        history.text_at(doc.id, 2)
    with pytest.raises(history.UnknownVersion):
        history.text_at("nope", 0)


@pytest.mark.django_db
def test_the_counts_are_stored_with_each_update() -> None:
    doc = store.create_document("H", "héllo 😀")
    first = DocumentUpdate.objects.get(document=doc, seq=1)
    assert (first.inserted, first.deleted) == (8, 0)  # UTF-16 units, as the browser counts


# ---------------------------------------------------------------- named versions and labels


@pytest.mark.parametrize(
    ("value", "message"),
    [(5, "must be a string"), ("  \n ", "must not be empty"), ("x" * 101, "longer than 100")],
)
def test_bad_labels_are_refused(value: object, message: str) -> None:
    with pytest.raises(history.BadLabel, match=message):
        history.clean_label(value)


def test_labels_are_one_printable_line() -> None:
    assert history.clean_label("  Draft\n 2\x00 ") == "Draft 2"


# ---------------------------------------------------------------- the changes view


def test_changes_mark_insertions_and_deletions_and_collapse_what_did_not_change() -> None:
    old = "\n".join(f"line {i}" for i in range(100))
    new = old.replace("line 50", "line fifty").replace("line 80\n", "")
    pieces = changes(old, new)
    kinds = [p.kind for p in pieces]
    assert kinds.count("gap") == 3  # before, between and after the two changes
    assert any(p.kind == "insert" and "fifty" in p.text for p in pieces)
    assert any(p.kind == "delete" and "80" in p.text for p in pieces)
    # Nothing is lost but the collapsed lines: what is shown rebuilds both texts' edges.
    shown_new = "".join(p.text for p in pieces if p.kind in ("equal", "insert"))
    assert "line fifty" in shown_new and "line 49" in shown_new and "line 10\n" not in shown_new
    assert summary(pieces) == (len("fifty"), len("50") + len("line 80\n"))


def test_changes_of_equal_texts_are_one_collapsed_stretch() -> None:
    text = "\n".join(str(i) for i in range(50))
    assert changes(text, text) == [Piece("gap", "", 50)]
    assert changes("a\nb", "a\nb") == [Piece("equal", "a\nb")]  # short: shown whole


@given(st.text(alphabet="ab .,\n😀", max_size=40), st.text(alphabet="ab .,\n😀", max_size=40))
def test_the_changes_rebuild_both_texts(old: str, new: str) -> None:
    pieces = changes(old, new)
    if any(p.kind == "gap" for p in pieces):  # only long unchanged stretches collapse
        assert old.count("\n") >= 2 * CONTEXT_LINES
        return
    assert "".join(p.text for p in pieces if p.kind in ("equal", "delete")) == old
    assert "".join(p.text for p in pieces if p.kind in ("equal", "insert")) == new
