"""An engine is freed once its room lets go of it (bench/soak.py found every unloaded
room's engine kept for ever: a reference cycle through pycrdt's UndoManager, which the
garbage collector cannot follow). Fails with the undo managers given a bound method of
the engine as their clock (checked)."""

from __future__ import annotations

import gc
import weakref

from tests.test_engine import Room, ins


def test_an_engine_with_editors_is_freed_when_its_room_lets_go() -> None:
    room = Room("abc")
    for cid in ("tab-one-0001", "tab-two-0002"):
        client = room.client(cid)
        client.edit(ins(0, "x"))
        room.sync(cid, client)
    freed = weakref.ref(room.engine)
    del room, client
    gc.collect()
    assert freed() is None
