"""What lasts or repeats is said once, not once per turn or per check: counters that grow in
bursts under attack (sources evicted from the full table, packets the kernel dropped), said when
they start growing and again only after a quiet spell; a condition that holds check after check
(the audit cannot look), said when it begins or changes."""


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


class Condition:
    """The current state of something that holds until it does not (None: all is well)."""

    def __init__(self) -> None:
        self.current: str | None = None

    def changes(self, state: str | None) -> bool:
        """Take `state`; whether it differs from the one before (it began, changed or ended)."""
        changed = state != self.current
        self.current = state
        return changed
