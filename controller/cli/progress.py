"""A minimal progress bar on stderr, shown only on a terminal, safe to call from worker threads."""

from __future__ import annotations

import sys
from _thread import allocate_lock  # threading.Lock itself, without importing threading (start-up, issue 19)


class Progress:
    """``advance()`` after each target; ``close()`` clears the line. Does nothing when disabled."""

    def __init__(self, total: int, enabled: bool = True, width: int = 30) -> None:
        self.total = total
        self.done = 0
        self.width = width
        self.enabled = enabled and sys.stderr.isatty()
        self._lock = allocate_lock()

    def advance(self, label: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += 1
            filled = self.width * self.done // max(self.total, 1)
            bar = "#" * filled + "-" * (self.width - filled)
            sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} {label[-40:]:<40}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * (self.width + 60) + "\r")
            sys.stderr.flush()
