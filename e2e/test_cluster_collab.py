"""One document, two processes: real browsers on each, Redis and PostgreSQL between them.

The processes share nothing but the database and the channel layer (e2e/cluster.py), as
in docs/deploy.md. A document's room runs in one of them (the lease holder); the other's
editors reach it over Redis. These tests check what a user sees: co-editing, presence
and preview across the two; the owner killed with SIGKILL in the middle of typing; and
two processes racing to take one document.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from playwright.sync_api import Page, expect
from websockets.sync.client import connect

from e2e.client import HttpClient, eventually
from e2e.cluster import Cluster
from e2e.conftest import create_document
from e2e.editor_page import caret_to_end, open_editor, text_of
from e2e.proxy import Proxy

NewPage = Callable[..., Page]


def api_state(url: str, doc_id: str) -> tuple[str, int]:
    body = HttpClient(url).get(f"/api/documents/{doc_id}/").json()
    return body["text"], body["version"]


def converged(pages: list[Page], cluster: Cluster, doc_id: str, timeout: float = 20) -> str:
    """Every page and the API of every process hold the same text; return it."""

    def same() -> str | None:
        texts = {text_of(p) for p in pages}
        states = {api_state(server.url, doc_id) for server in cluster if server.running}
        if len(texts) != 1 or len(states) != 1:
            return None
        (text,) = texts
        ((stored, _version),) = states
        return text if text == stored else None

    return eventually(same, timeout, "every editor and every process to hold the same text")


def presence_names(page: Page) -> list[str]:
    return sorted(
        page.locator("#presence [data-name]").evaluate_all("els => els.map(e => e.dataset.name)")
    )


def test_browsers_on_two_processes_co_edit_one_document(
    new_page: NewPage, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster(extra_env={"TANDEM_LOG_LEVEL": "DEBUG"})
    first, second = cluster
    doc = create_document(first, "Across processes", "# Notes\n\nstart\n")
    ada = open_editor(new_page, first.url + doc.path, "Ada Lovelace")
    bob = open_editor(new_page, second.url + doc.path, "Bob Kahn")
    caret_to_end(ada)
    caret_to_end(bob)
    for i in range(6):  # both type at the same time, at the same place
        ada.keyboard.type(f"a{i} ")
        bob.keyboard.type(f"b{i} ")
    text = converged([ada, bob], cluster, doc.id)
    for i in range(6):
        assert text.count(f"a{i} ") == 1 and text.count(f"b{i} ") == 1, text
    # Both show both people, and the same preview (rendered once, by the room).
    both = ["Ada Lovelace", "Bob Kahn"]
    eventually(
        lambda: presence_names(ada) == both and presence_names(bob) == both,
        10,
        "both people in presence on both pages",
    )

    def same_preview() -> bool:
        shown = {p.locator("#preview").inner_text() for p in (ada, bob)}
        return len(shown) == 1 and "b5" in shown.pop()

    try:
        eventually(same_preview, 10, "the same preview on both")
    except AssertionError:
        raise AssertionError(
            f"{ada.locator('#preview').inner_html()!r}\n{bob.locator('#preview').inner_html()!r}"
            f"\n{text!r}\n{cluster.logs()}"
        ) from None
    # The API of either process answers with the same text and version.
    assert api_state(first.url, doc.id) == api_state(second.url, doc.id)
    # Undo across processes: Bob's room is in Ada's process; his Ctrl+Z takes back his
    # own last typing there, and nobody else's.
    time.sleep(0.6)  # a new undo step (changes 0.5 s apart are one)
    bob.keyboard.type("UNDO-ME")
    eventually(lambda: "UNDO-ME" in api_state(first.url, doc.id)[0], 10, "Bob's typing stored")
    bob.keyboard.press("Control+z")

    def without_undone() -> str | None:
        stored = api_state(first.url, doc.id)[0]
        return stored if "UNDO-ME" not in stored else None

    assert eventually(without_undone, 10, "Bob's undo applied") == text
    # A rename through one process shows on the other's page.
    HttpClient(second.url).post(f"/d/{doc.id}/rename/", form={"title": "Renamed on B"})
    expect(ada.locator("#title-input")).to_have_value("Renamed on B")


def test_the_owner_killed_while_both_type_loses_and_doubles_nothing(
    new_page: NewPage, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster(lease_seconds=2.0, extra_env={"TANDEM_LOG_LEVEL": "DEBUG"})
    owner, survivor = cluster
    doc = create_document(owner, "Kill the owner", "")
    proxy = Proxy(target=owner.port).start()  # Ada's process, until it dies
    try:
        # Ada connects first: her process claims the document and runs its room.
        ada = open_editor(new_page, proxy.url + doc.path, "Ada")
        bob = open_editor(new_page, survivor.url + doc.path, "Bob")
        caret_to_end(ada)
        caret_to_end(bob)
        typed: list[str] = []
        for i in range(8):
            for page, who in ((ada, "a"), (bob, "b")):
                page.keyboard.type(f"{who}{i:02} ")
                typed.append(f"{who}{i:02} ")
        assert f"document {doc.id}: room loaded here" in cluster.log(0), "Ada's process owns it"
        cluster.kill(0)  # kill -9: nothing flushed, no lease given back
        killed_at = time.monotonic()
        proxy.target = survivor.port  # what the proxy does once its health check fails
        for i in range(8, 16):
            for page, who in ((ada, "a"), (bob, "b")):
                page.keyboard.type(f"{who}{i:02} ")
                typed.append(f"{who}{i:02} ")
        # The survivor takes the document over once the lease runs out: Bob's typing
        # after the kill is stored within a few seconds.
        try:
            eventually(lambda: "b15 " in api_state(survivor.url, doc.id)[0], 20, "Bob's typing")
        except AssertionError as error:
            status = bob.locator("#status").evaluate("el => el.outerHTML")
            raise AssertionError(
                f"{error}\nBob: {status}\n{text_of(bob)!r}\n"
                f"stored: {api_state(survivor.url, doc.id)}\n--- survivor's log:\n{cluster.log(1)}"
            ) from None
        assert time.monotonic() - killed_at < 15
        expect(ada.locator("#status")).to_have_attribute("data-state", "connected", timeout=20_000)
        text = converged([ada, bob], cluster, doc.id, timeout=30)
        for token in typed:
            assert text.count(token) == 1, (token, text)
        assert len(text) == sum(len(t) for t in typed)
        assert f"document {doc.id}: room loaded here" in cluster.log(1), "the survivor took over"
        assert "Traceback" not in cluster.log(1), cluster.log(1)
    finally:
        proxy.stop()


def _editor(url: str, doc_id: str, cid: str, marker: str, start: threading.Barrier) -> Any:
    """A protocol-level editor: connect when everyone does, insert `marker` at the start
    of the text at version 1, return the answer."""
    start.wait(10)
    ws_url = url.replace("http://", "ws://") + f"/ws/d/{doc_id}/"
    with connect(ws_url, open_timeout=10, close_timeout=2) as ws:
        ws.send(json.dumps({"type": "hello", "name": cid}))
        request = {"type": "sync", "cid": cid, "rid": 1, "base": 1, "ops": [{"insert": marker}]}
        ws.send(json.dumps(request))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            frame = ws.recv(timeout=30)
            if isinstance(frame, str) and frame.startswith("{"):
                message = json.loads(frame)
                if message["type"] in {"ack", "error"}:
                    return message
    raise AssertionError(f"{cid}: no answer")


def _race(cluster: Cluster, round_: int) -> None:
    first, second = cluster
    doc = create_document(first, f"Race {round_}", "x")
    markers = [f"<{p}{i}>" for p in ("p", "q") for i in range(5)]
    start = threading.Barrier(len(markers))
    answers: dict[str, Any] = {}

    def run(marker: str, url: str) -> None:
        answers[marker] = _editor(url, doc.id, f"race-{round_}-{marker[1:-1]}", marker, start)

    threads = [
        threading.Thread(target=run, args=(m, (first if m[1] == "p" else second).url))
        for m in markers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == sorted(markers)
    assert all(a["type"] == "ack" for a in answers.values()), answers
    text, version = api_state(second.url, doc.id)
    assert version == 1 + len(markers)
    for marker in markers:
        assert text.count(marker) == 1, (marker, text)
    with psycopg.connect(cluster.database_url) as db:
        seqs = [
            row[0]
            for row in db.execute(
                "SELECT seq FROM collab_documentupdate WHERE document_id = %s ORDER BY seq",
                [doc.id],
            )
        ]
        row = db.execute(
            "SELECT epoch FROM collab_documentlease WHERE document_id = %s", [doc.id]
        ).fetchone()
    assert seqs == list(range(1, version + 1))  # one sequencer: no gap, no collision
    assert row is not None and row[0] == 1, "exactly one process ever took the lease"


def test_two_processes_racing_to_take_one_document_never_both_append(cluster: Cluster) -> None:
    """Editors on both processes open a document nobody runs, all at the same moment, so
    that both processes try to claim it at once; then check the log itself."""
    for round_ in range(3):
        _race(cluster, round_)
