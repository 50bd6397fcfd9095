"""Alert-only mode's HISTORY_FILE lines (HISTORY_ALERT_ONLY): which sources have had theirs.

PortSentry 1.2 wrote its `Blocked` line for a scan also when it blocked nothing (BLOCK_TCP=0),
and fail2ban's `portsentry` jail bans on that line. A line stands for the block the source would
have had: one per source and protocol (PortSentry's -tcp and -udp processes each wrote theirs),
for as long as the source goes on scanning with that protocol. One that has been quiet for
SCAN_TRIGGER_WINDOW (its episode over, its next probe counted afresh by the detection too) gets
a new line at its next scan: by then a ban fail2ban made on the first line may have ended.
"""

import collections

from portwarden import limits


class NotedSources:
    """The sources, as "address proto", that have had their alert-only line in their current
    run of scanning, with when they were last reported (monotonic), least recent first. At most
    limits.NOTED_SOURCES_MAX: past it the least recent is forgotten (its next scan gets
    another line, which BLOCKS_PER_MINUTE bounds)."""

    def __init__(self) -> None:
        self._last: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def noted(self, address: str, now: float, quiet_s: float) -> bool:
        """Whether `address` ("address proto") has had its line and not been quiet for
        `quiet_s` since; if so, it is taken as seen now."""
        last = self._last.get(address)
        if last is None or now - last > quiet_s:
            return False
        self.add(address, now)
        return True

    def add(self, address: str, now: float) -> None:
        self._last[address] = now
        self._last.move_to_end(address)
        if len(self._last) > limits.NOTED_SOURCES_MAX:
            self._last.popitem(last=False)

    def forget_quiet(self, now: float, quiet_s: float) -> None:
        """Forget the sources quiet for `quiet_s`: their next scan is a new one."""
        while self._last and now - next(iter(self._last.values())) > quiet_s:
            self._last.popitem(last=False)
