"""The broadcaster: what a document's group hears, paced by one mechanism.

Three kinds of news go to every editor of the document, wherever it is connected: the
document moved on (`doc.changed`, carrying the pushes themselves), the HTML that shows it
(`doc.fragments`: preview blocks that changed and the status line) and who is here
(`doc.presence`). Each goes out through a `Paced` sender: at once when the last one is
old enough, otherwise once more when it is, covering everything that happened meanwhile.
A broadcast costs O(editors), so the big ones are spaced by room size, which keeps their
share of the CPU the same for 10 editors and for 300.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer

from collab import fragments
from collab.carets import bring_on, caret_id, move
from collab.delta import Delta
from collab.engine import DocumentEngine
from collab.listing import LIST_INTERVAL, tell_lists
from collab.preview import PreviewState
from collab.protocol import (
    Carets,
    DocCarets,
    DocChanged,
    DocFragments,
    DocPresence,
    PresenceReply,
    PreviewReply,
    Push,
)
from collab.render_thread import in_render_thread
from collab.roster import Roster

log = logging.getLogger("tandem.collab")

# News of a change: at most once per this many seconds per editor in the room (10
# editors: 2 ms apart; 200 editors: 40 ms apart, which latency can afford), and bursts
# travel as fewer, larger pushes.
FANOUT_SECONDS_PER_EDITOR = 0.0002
FANOUT_MAX_INTERVAL = 0.05
# Fragments: at most every 0.1 s, and in a big room at most once per this many seconds
# per editor (a preview 0.2 s old is as good as 0.1 s to 200 people).
FRAGMENT_INTERVAL = 0.1
FRAGMENT_SECONDS_PER_EDITOR = 0.001
FRAGMENT_MAX_INTERVAL = 1.0
# Presence: when 200 people arrive at once, a few broadcasts instead of 200.
PRESENCE_INTERVAL = 0.1
# Carets: every caret that moved in this time goes out in one message (10 editors:
# every 0.1 s; 200: every second), whatever number of moves it covers. Between two, each
# browser maps the carets through the changes itself, so they stay on their characters.
CARETS_SECONDS_PER_EDITOR = 0.005
CARETS_INTERVAL = 0.1
CARETS_MAX_INTERVAL = 1.0


def broadcast_interval(editors: int, per_editor: float, least: float, most: float) -> float:
    """The time between two broadcasts to a room of `editors`: `per_editor` seconds each,
    within [least, most]."""
    return min(most, max(least, per_editor * editors))


class Paced:
    """Runs `send` soon after each `schedule()`: at once if the last run began at least
    `interval()` ago, else when it has; everything scheduled while it waits or runs is
    covered by one more run (`send` reads the state when it runs)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[], Awaitable[None]],
        interval: Callable[[], float],
    ) -> None:
        self._loop = loop
        self._send = send
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._due = False
        self._last = 0.0

    def schedule(self) -> None:
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())
        else:
            self._due = True

    async def _run(self) -> None:
        while True:
            wait = self._last + self._interval() - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._due = False
            self._last = time.monotonic()
            try:
                await self._send()
            except Exception:
                # The channel layer may be unreachable for a while (a Redis restart):
                # this broadcast is lost, which every receiver notices by its versions;
                # the next one must still go out.
                log.warning("a broadcast failed", exc_info=True)
            if not self._due:
                return


class Broadcaster:
    def __init__(
        self,
        group: str,
        epoch: int,
        engine: DocumentEngine,
        preview: PreviewState,
        roster: Roster,
        durable_version: Callable[[], int],
        last_change: Callable[[], Any],
    ) -> None:
        """`preview` has rendered the engine's text already (`render_full`)."""
        self.group = group
        self.epoch = epoch
        self.closed = False
        self._engine = engine
        self._preview = preview
        self._roster = roster
        self._durable_version = durable_version
        self._last_change = last_change
        # Only touched on the event loop; `preview` itself is updated in a worker thread.
        self._preview_blocks = list(preview.blocks)
        self.preview_generation = 0
        loop = asyncio.get_running_loop()
        self._news = Paced(loop, self._send_news, self._news_interval)
        self._fragments = Paced(loop, self._send_fragments, self._fragment_interval)
        self._presence = Paced(loop, self._send_presence, lambda: PRESENCE_INTERVAL)
        self._carets = Paced(loop, self._send_carets, self._carets_interval)
        self._carets_shown = False  # the last carets frame had any
        self._lists = Paced(loop, self._tell_lists, lambda: LIST_INTERVAL)

    def changed(self) -> None:
        """The document moved on (a commit)."""
        self._news.schedule()
        self._fragments.schedule()
        self._lists.schedule()  # "edited just now" in every open document list

    def presence_changed(self) -> None:
        self._presence.schedule()
        self._carets.schedule()  # a caret comes or goes with its member

    def carets_moved(self) -> None:
        self._carets.schedule()

    def full_preview(self) -> PreviewReply:
        """The whole preview as the room has it now (for an editor that joined, or that
        missed a preview diff)."""
        html = fragments.preview(self._preview_blocks, swap_oob=True)
        # With the word count: a big document's page leaves both to the room.
        html += fragments.statusline(
            self._preview.words, self._durable_version(), self._last_change(), swap_oob=True
        )
        return PreviewReply(self.epoch, self.preview_generation, html)

    async def _group_send(self, message: dict[str, Any]) -> None:
        if not self.closed:
            await get_channel_layer().group_send(self.group, message)

    # -- news --------------------------------------------------------------------------

    def _news_interval(self) -> float:
        return broadcast_interval(
            len(self._roster), FANOUT_SECONDS_PER_EDITOR, 0.0, FANOUT_MAX_INTERVAL
        )

    async def _send_news(self) -> None:
        """One push per version editors were left at (one JSON encoding each), to the
        durable version, in one group message. An editor whose version is not among them
        (it missed a message: the layer drops some by design) sees the gap and syncs."""
        version = self._durable_version()
        starts = self._roster.versions(below=version)
        pushes: list[tuple[int, str]] = []
        deltas: dict[int, Delta] = {}
        for base in sorted(starts):
            delta = self._engine.changes(base, version)
            if delta is not None:
                deltas[base] = delta
                pushes.append((base, Push(base, version, delta).encode()))
        self._roster.moved_on(set(deltas), version)
        # Carets left at those versions ride along on the changes just composed; each
        # composed again for its own caret was a tenth of the server's time at 200.
        for known in self._roster.members.values():
            caret = known.caret
            if caret is not None and caret.version in deltas:
                known.caret = move(caret, deltas[caret.version], version)
        await self._group_send(DocChanged(version, pushes).encode())

    # -- fragments ---------------------------------------------------------------------

    def _fragment_interval(self) -> float:
        return broadcast_interval(
            len(self._roster), FRAGMENT_SECONDS_PER_EDITOR, FRAGMENT_INTERVAL, FRAGMENT_MAX_INTERVAL
        )

    async def _send_fragments(self) -> None:
        if self.closed:
            return
        text = self._engine.text
        base = self.preview_generation
        # Usually well under a millisecond, but a change that turns the rest of a large
        # document into a code block re-renders all of it: keep that off the event loop.
        preview_html = await in_render_thread(self._preview.update, text)
        if preview_html is not None:
            self.preview_generation += 1
            self._preview_blocks = list(self._preview.blocks)
        status_html = fragments.statusline(
            self._preview.words, self._durable_version(), self._last_change(), swap_oob=True
        )
        message = DocFragments(
            self.epoch, status_html, preview_html or "", base, self.preview_generation
        )
        await self._group_send(message.encode())

    # -- presence ----------------------------------------------------------------------

    def presence(self) -> PresenceReply:
        return PresenceReply(fragments.presence(self._roster.names(), swap_oob=True))

    async def _send_presence(self) -> None:
        await self._group_send(DocPresence(self.presence().html).encode())

    async def _tell_lists(self) -> None:
        if not self.closed:
            await tell_lists()

    # -- carets ------------------------------------------------------------------------

    def _carets_interval(self) -> float:
        return broadcast_interval(
            len(self._roster), CARETS_SECONDS_PER_EDITOR, CARETS_INTERVAL, CARETS_MAX_INTERVAL
        )

    async def _send_carets(self) -> None:
        """Everyone's caret, brought on to the durable version, in one frame for all."""
        version = self._durable_version()
        carets: list[tuple[str, str, int, int, int]] = []
        hues = fragments.room_hues(self._roster.names())  # as the presence list's
        for known in self._roster.members.values():
            if known.caret is None or known.session is None or known.caret.version > version:
                continue
            known.caret = bring_on(known.caret, version, self._engine.changes)
            if known.caret is not None:
                hue = hues[known.name]
                carets.append(
                    (caret_id(known.session), known.name, hue, known.caret.anchor, known.caret.head)
                )
        if not carets and not self._carets_shown:
            return  # nobody has a caret, and nobody is shown one
        self._carets_shown = bool(carets)
        frame = Carets(version, carets).encode()
        await self._group_send(DocCarets(version, frame).encode())
