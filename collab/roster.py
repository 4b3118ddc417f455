"""The roster: who is in a document, wherever their connection is served.

A member is one connection (its consumer's channel, in any process) with a display
name, the page load it belongs to (its session: the `cid` of its requests, which keys
its undo history) and the version the room last left it at (where its next news starts).

Members say they are still here every HEARTBEAT_SECONDS (a join again); one not heard of
for MEMBER_TIMEOUT_SECONDS is dropped, which is what removes the members of a process
that died without saying goodbye. A page load's session outlives its connection for
SESSION_GRACE_SECONDS, so an editor that reconnects can still undo what it typed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collab.carets import Caret

HEARTBEAT_SECONDS = 10.0
MEMBER_TIMEOUT_SECONDS = 30.0
SESSION_GRACE_SECONDS = 120.0


@dataclass
class Member:
    name: str
    session: str | None = None
    version: int = -1
    joined: float = field(default_factory=time.time)
    seen: float = field(default_factory=time.monotonic)
    caret: Caret | None = None  # where its selection is (from its syncs)


class Roster:
    def __init__(
        self,
        on_change: Callable[[], None],
        drop_session: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`on_change`: the list of names changed. `drop_session(cid)`: a page load left
        for good (its undo history can go)."""
        self.members: dict[str, Member] = {}
        self._on_change = on_change
        self._drop_session = drop_session
        self._clock = clock
        self._sessions: dict[str, int] = {}  # page load -> members using it
        self._left: dict[str, float] = {}  # page load -> when its last member left

    def __len__(self) -> int:
        return len(self.members)

    def names(self) -> list[str]:
        return [m.name for m in self.members.values()]

    def join(self, member: str, name: str, session: str | None, version: int) -> bool:
        """Add or refresh a member; True if it is new."""
        known = self.members.get(member)
        if known is None:
            # Seen by the roster's clock (not Member's default) so expiry uses one clock.
            self.members[member] = Member(name, version=version, seen=self._clock())
            if session is not None:
                self.attach(member, session)
            self._on_change()
            return True
        known.seen = self._clock()
        if version > known.version:
            known.version = version
        if session is not None and known.session is None:
            self.attach(member, session)
        if known.name != name:
            known.name = name
            self._on_change()
        return False

    def attach(self, member: str, session: str) -> None:
        """The member's requests come from page load `session` (from its first sync)."""
        known = self.members.get(member)
        if known is None or known.session == session:
            return
        if known.session is not None:
            self._detach(known.session)
        known.session = session
        self._sessions[session] = self._sessions.get(session, 0) + 1
        self._left.pop(session, None)

    def answered(self, member: str, version: int) -> None:
        known = self.members.get(member)
        if known is not None:
            known.version = version
            known.seen = self._clock()

    def set_caret(self, member: str, caret: Caret) -> bool:
        """The member's selection is now `caret`; True if that moved it."""
        known = self.members.get(member)
        if known is None or known.caret == caret:
            return False
        known.caret = caret
        return True

    def leave(self, member: str) -> None:
        known = self.members.pop(member, None)
        if known is None:
            return
        if known.session is not None:
            self._detach(known.session)
        self._on_change()

    def _detach(self, session: str) -> None:
        count = self._sessions.get(session, 0) - 1
        if count > 0:
            self._sessions[session] = count
            return
        self._sessions.pop(session, None)
        self._left[session] = self._clock()

    def sweep(self) -> None:
        """Drop members not heard of for too long, and sessions past their grace."""
        now = self._clock()
        for member, known in list(self.members.items()):
            if now - known.seen > MEMBER_TIMEOUT_SECONDS:
                self.leave(member)
        for session, left in list(self._left.items()):
            if now - left > SESSION_GRACE_SECONDS:
                del self._left[session]
                self._drop_session(session)

    def versions(self, below: int) -> set[int]:
        """The versions members were left at, older than `below` (news starts there)."""
        return {m.version for m in self.members.values() if 0 <= m.version < below}

    def moved_on(self, versions: set[int], version: int) -> None:
        """Members at one of `versions` were sent news up to `version`."""
        for known in self.members.values():
            if known.version in versions:
                known.version = version
