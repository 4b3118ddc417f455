"""The live document list: every open list page hears that documents changed.

The news is only a nudge (`docs.changed`, no titles in it): each page asks for its own
list again over HTTP, with its own access and its own filter, so nothing here needs to
know who may see what. Rooms nudge at most every LIST_INTERVAL seconds while edited.
The pages listen through collab/list_consumer.py.
"""

from __future__ import annotations

from channels.layers import get_channel_layer

from collab.protocol import LIST_GROUP, DocsChanged

LIST_INTERVAL = 2.0  # "edited just now" needs no finer grain


async def tell_lists() -> None:
    """Nudge every open document list, in every process."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(LIST_GROUP, DocsChanged().encode())
