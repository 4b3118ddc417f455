"""Requests a test holds back and lets go in the order it wants: for races between
what the page asks and what the person clicks meanwhile."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Request, Route


class HeldRequests:
    """Every request to `pattern` waits until `release(i)` (i: the order they came in)."""

    def __init__(self, page: Page, pattern: re.Pattern[str]) -> None:
        self.page = page
        self.pattern = pattern
        self.routes: list[Route] = []
        self.ended: list[Request] = []
        page.route(pattern, lambda route: self.routes.append(route))
        page.on("requestfinished", lambda request: self.ended.append(request))
        page.on("requestfailed", lambda request: self.ended.append(request))

    def wait_for(self, count: int, what: str) -> None:
        """Until `count` requests are held. Playwright runs route handlers only while the
        test is in a Playwright call, so this waits with the page, not with time.sleep."""
        self._wait(lambda: len(self.routes) >= count, what)

    def release(self, index: int) -> None:
        """Let request `index` go, and wait until the page has had its answer (or had
        given up on it: a request the page cancelled may never end here)."""
        route = self.routes[index]
        try:
            route.continue_()
        except PlaywrightError:
            return  # the page cancelled it
        self._wait(lambda: route.request in self.ended, "its answer", give_up_quietly=True)
        self.page.wait_for_timeout(100)  # htmx swaps once the answer is read

    def stop(self) -> None:
        self.page.unroute_all(behavior="ignoreErrors")

    def _wait(self, check: Callable[[], bool], what: str, give_up_quietly: bool = False) -> None:
        for _ in range(250):
            if check():
                return
            self.page.wait_for_timeout(20)
        if not give_up_quietly:
            raise AssertionError(f"timed out waiting for {what}")
