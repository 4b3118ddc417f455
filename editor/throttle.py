"""Failed attempts per address: a guessed share link, owner key or bearer token.

A token has at least 128 random bits, so guessing is hopeless anyway; the limit makes it
visibly so and keeps a guessing script from costing the server anything. Kept in memory:
per process, forgotten at restart (the window is short).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_FAILURES = 20
WINDOW_SECONDS = 600.0
MAX_ADDRESSES = 10_000  # memory stays bounded whatever a flood of addresses does


class FailureLimiter:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        cutoff = self.clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def blocked(self, address: str) -> bool:
        """True when `address` failed too often lately: refuse before checking anything."""
        failures = self._recent(address)
        return failures is not None and len(failures) >= self.max_failures

    def retry_after(self, address: str) -> int:
        """Seconds until `address` may try again (0 when it may now)."""
        failures = self._recent(address)
        if failures is None or len(failures) < self.max_failures:
            return 0
        return max(1, int(failures[-self.max_failures] + self.window - self.clock()) + 1)

    def failed(self, address: str) -> None:
        failures = self._recent(address) or deque(maxlen=self.max_failures)
        failures.append(self.clock())
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)

    def clear(self) -> None:
        self._failures.clear()


limiter = FailureLimiter()
