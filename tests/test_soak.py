"""A short soak against a real server (bench/soak.py; the long one is a command, see
docs/security.md): editors come, type, leave (half without a goodbye) and come back;
once they are all gone, the server holds no more rooms or tasks than before and about
as many Python objects.

Fails if a connection leaves anything running behind it: checked by not cancelling the
consumer's heartbeat task on leave (tasks stayed above the baseline).
"""

from __future__ import annotations

import contextlib

from bench.soak import run, soak_server


def test_after_a_soak_rooms_tasks_and_objects_return_to_baseline() -> None:
    server = soak_server()
    try:
        server.start(timeout=120)
        result = run(server, editors=6, docs=2, seconds=10.0)
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()
    before, after = result["before"], result["after"]
    assert result["sessions"] >= 6
    assert after["rooms"] <= before["rooms"], result
    assert after["tasks"] <= before["tasks"], result
    assert after["objects"] < before["objects"] * 1.05, result
