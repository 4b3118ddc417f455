"""Thousands of hostile frames through the WebSocket consumer (and the list socket and the
live view) while two editors work: tests/fuzz.py has the scenario and its checks."""

from __future__ import annotations

import os

import pytest

from tests.fuzz import run

# A bigger run: python -m tests.fuzz --frames N (docs/security.md has its figures).
FRAMES = int(os.environ.get("FUZZ_FRAMES", "2000"))


@pytest.mark.django_db(transaction=True)
def test_hostile_frames_change_nothing_and_editors_converge() -> None:
    report = run(FRAMES)
    print(report.summary())
    assert sum(report.frames.values()) >= FRAMES
    # Every kind was sent, and both refusals and (mutated but valid) edits happened.
    assert set(report.frames) == {
        "text",
        "bytes",
        "json",
        "typed",
        "mutated",
        "op",
        "number",
        "hello",
    }
    assert report.replies["bad_request"] > 0 and report.replies["ack"] > 0, report.replies
