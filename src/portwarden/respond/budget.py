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
        self.refused = 0  # refusals since the budget was last used up; 0 while it is not
        # The sources refused and not served since: what the `...-cap ended` lines count (a
        # source's every probe asks again, and one refused at first may be served later).
        self._unserved: set[str] = set()
        self._uncounted = False  # a refused source not remembered (the set was full)

    def allows(self, source: str, cap: int, ports: int, now: float) -> bool:
        """Whether one more is allowed now for `source`, seen on `ports` distinct ports; counts
        it if so, else counts the refusal."""
        if len(self._recent) < cap:
            self._recent.append(now)
        elif len(self._strong) < cap and ports >= _STRONG_PORTS << (
            _STRONG_TIERS * len(self._strong) // cap
        ):
            self._strong.append(now)
        else:
            self.refused += 1
            if source not in self._unserved:
                if len(self._unserved) < limits.BLOCK_MAX_REFUSED_COUNTED_MAX:
                    self._unserved.add(source)
                else:
                    self._uncounted = True
            return False
        self._unserved.discard(source)
        return True

    def ended(self, now: float) -> tuple[int, bool] | None:
        """Forget what is a minute old. Once the budget that refused some is free again (a
        minute with none allowed): how many sources it refused and did not serve later, and
        whether there may have been more (past limits.BLOCK_MAX_REFUSED_COUNTED_MAX); else
        None."""
        for recent in (self._recent, self._strong):
            while recent and now - recent[0] > limits.BLOCKS_PER_MINUTE_WINDOW_S:
                recent.popleft()
        if not self.refused or self._recent:
            return None
        ended = len(self._unserved), self._uncounted
        self.refused, self._uncounted = 0, False
        self._unserved.clear()
        return ended
