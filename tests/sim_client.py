"""A model of the browser's sync client: the reference that static/js follows.

The client keeps three things about its text:

- `shadow` at `version`: the text of the last answer or push (the server's at that version);
- `inflight`: at most one request, whose ops turn `shadow` into `sent` (the text sent);
- `pending`: what was typed since, a delta from `sent` (or from `shadow` when nothing is in
  flight) to `text`, the text area.

An answer's delta turns `sent` into the new shadow. The client applies it there, moves
its pending edits past it with `transform`, and the text area becomes the new shadow
plus the pending edits. Besides answers, the server pushes changes
to an idle client (`Push`: a delta from one version to a newer one). The client applies a
push only when nothing is in flight and the push starts at its own version, so a push
and an answer can never both apply to one shadow. After a reconnect it resends the
request in flight exactly as it was (same rid, base and ops).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from collab import delta as D
from collab.engine import Answer, SyncRequest


@dataclass(frozen=True)
class Push:
    """The server's `push`: `delta` turns the text at `base` into the text at `version`."""

    base: int
    version: int
    delta: D.Delta


@dataclass
class SimClient:
    cid: str
    shadow: str
    version: int
    text: str = ""
    pending: D.Delta = field(default_factory=list)
    inflight: SyncRequest | None = None
    sent: str = ""
    rid: int = 0

    def __post_init__(self) -> None:
        self.text = self.shadow

    def edit(self, change: D.Delta) -> None:
        """A local edit (an input event), as a delta against the text area."""
        self.text = D.apply(self.text, change)
        self.pending = D.compose(self.pending, change)

    def request(self, action: str = "") -> SyncRequest | None:
        """The next request, or None while one is in flight (lockstep)."""
        if self.inflight is not None:
            return None
        self.rid += 1
        self.inflight = SyncRequest(self.cid, self.rid, self.version, self.pending, action)
        self.sent, self.pending = self.text, []
        return self.inflight

    def receive(self, answer: Answer) -> None:
        """Apply the answer to our own request in flight."""
        assert self.inflight is not None and answer.rid == self.inflight.rid
        self.shadow = D.apply(self.sent, answer.delta)
        self.version = answer.version
        # Our unsent typing moves past the server's changes; ours stays first at a tie, so
        # what one person types at one spot stays in one piece (the browser client does
        # the same: static/js/sync-client.js).
        self.pending = D.transform(answer.delta, self.pending, priority=False)
        self.text = D.apply(self.shadow, self.pending)
        self.inflight = None

    def receive_push(self, push: Push) -> bool:
        """Apply a push if it fits (nothing in flight, starts at our version)."""
        if self.inflight is not None or push.base != self.version:
            return False
        self.shadow = D.apply(self.shadow, push.delta)
        self.version = push.version
        self.pending = D.transform(push.delta, self.pending, priority=False)
        self.text = D.apply(self.shadow, self.pending)
        return True

    @property
    def idle(self) -> bool:
        return self.inflight is None and not self.pending
