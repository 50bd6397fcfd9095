"""Counters that grow in bursts under attack (sources evicted from the full table, packets the
kernel dropped): said once when they start growing, again only after a quiet spell, never once
per turn."""


class Episode:
    def __init__(self, quiet_s: float) -> None:
        self._quiet_s = quiet_s
        self._seen = 0
        self._last_growth = float("-inf")  # monotonic

    def begins(self, count: int, now: float) -> int:
        """How much `count` grew if that starts an episode (no growth for `quiet_s` before),
        else 0."""
        grown = count - self._seen
        if grown <= 0:
            return 0
        new = now - self._last_growth >= self._quiet_s
        self._seen, self._last_growth = count, now
        return grown if new else 0
