"""The one thread that renders previews, off the event loop.

Rendering holds the GIL, so more threads would not render faster; and each thread keeps
a Markdown parser of its own (`collab.markdown._md`). On the loop's default executor, which
starts up to six threads as load comes and goes, that was up to six parsers, made
whenever a busier moment started another thread (the soak test saw a "leak" of one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tandem-render")


async def in_render_thread(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_executor, fn, *args)
