"""BLOCKS_PER_MINUTE: how many blocks (or alert-only HISTORY_FILE lines) a minute may bring,
so that a flood of spoofed sources cannot fill the firewall, or the file, at the packets'
pace, nor keep a real scanner from its block."""

import collections

from portwarden import limits

_STRONG_PORTS = 3  # distinct ports that make a source a scanner rather than one stray packet
_STRONG_TIERS = 4  # the second budget in quarters, each asking twice the ports of the one before


class MinuteBudget:
    """`cap` a minute, and everything counts in it; once it is used up, sources seen on
    several ports still get a second budget of the same size, which asks more of a source the
    fuller it is: its first quarter takes sources seen on 3 distinct ports, the second on 6,
    the third on 12, the last on 24. A flood of spoofed one-probe sources thus cannot stop a
    real scanner (which touches many ports) from being served; forged sources that touch a few
    ports each use up only the first quarters, past which a source that touched more still
    gets a slot; and no kind of source gets more than twice the cap a minute."""

    def __init__(self) -> None:
        self._recent: collections.deque[float] = collections.deque()  # monotonic
        self._strong: collections.deque[float] = collections.deque()
        self.refused = 0  # since the budget was last used up; 0 while it is not

    def allows(self, cap: int, ports: int, now: float) -> bool:
        """Whether one more is allowed now for a source seen on `ports` distinct ports; counts
        it if so, else counts the refusal."""
        if len(self._recent) < cap:
            self._recent.append(now)
            return True
        used = len(self._strong)
        if used < cap and ports >= _STRONG_PORTS << (_STRONG_TIERS * used // cap):
            self._strong.append(now)
            return True
        self.refused += 1
        return False

    def ended(self, now: float) -> int:
        """Forget what is a minute old. Returns how many were refused, once the budget that
        refused them is free again (a minute with none allowed); else 0."""
        for recent in (self._recent, self._strong):
            while recent and now - recent[0] > limits.BLOCKS_PER_MINUTE_WINDOW_S:
                recent.popleft()
        if not self.refused or self._recent:
            return 0
        refused, self.refused = self.refused, 0
        return refused
