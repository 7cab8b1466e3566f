"""Spacing the republishes of a replay evenly (`dlq replay --rate`)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """At most `per_second` goes per second (None: unlimited): two consecutive `wait()`s return at least
    1/per_second apart, so n goes take at least (n - 1)/per_second. A slow go is not made up for by a burst.
    The clock and sleep are injectable for tests."""

    def __init__(
        self,
        per_second: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("the rate must be positive")
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock = clock
        self.sleep = sleep
        self._next: float | None = None

    def wait(self, while_waiting: Callable[[], None] = lambda: None, max_sleep_s: float = 5.0) -> None:
        """Return when the next go may happen; `while_waiting` runs after each sleep of at most `max_sleep_s`
        (renewing leases during a long wait)."""
        if not self.interval:
            return
        if self._next is not None:
            while (remaining := self._next - self.clock()) > 0:
                self.sleep(min(remaining, max_sleep_s))
                while_waiting()
        self._next = self.clock() + self.interval
