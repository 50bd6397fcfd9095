"""MAIL_PER_HOUR: which mails may go now and which are held back. No I/O and no clock of its
own: `now` (monotonic seconds) is passed in.

The rules: at most `per_hour` mails tried in any sliding hour (a mail counts when it is tried,
delivered or not: the cap bounds what the relay is asked to send). The first report held back
begins a hold; the mail thread says so at once in one short notice mail, the only mail allowed
over the cap, and at most one an hour. As soon as the hour has room again, one mail (counted
under the cap) says how many reports were held; a report that comes then goes only if there is
room left after that summary.
"""

import collections
from collections.abc import Iterable

from portwarden import limits


class MailBudget:
    def __init__(
        self,
        tried: Iterable[float] = (),
        noticed: float | None = None,
        held: int = 0,
        held_since: float | None = None,
        held_under: int | None = None,
    ) -> None:
        """`tried`: when mails were counted in the last hour, in order, `noticed`: when the
        last notice went (None: not in the last hour), and a hold that goes on: `held` reports
        held since `held_since` under the cap `held_under`; a start gets them from the store,
        so a daemon that restarts again and again still sends no more than the cap an hour, and
        one that restarts during a hold still lists its reports in one mail."""
        self._sent: collections.deque[float] = collections.deque(tried)  # mails under the cap
        self.held = held  # reports held since the hold began, not yet summarised
        self.held_since = held_since
        # The cap in force when the hold began: the summary names it, after a reload too.
        self.held_under = held_under
        self._noticed = noticed  # when the last notice went

    def _room(self, now: float, per_hour: int) -> bool:
        window = limits.MAIL_PER_HOUR_WINDOW_S
        while self._sent and self._sent[0] + window <= now:  # as in reopens_at, to the bit
            self._sent.popleft()
        return len(self._sent) < per_hour

    def admit(self, now: float, per_hour: int) -> bool:
        """A mail wants to go: True if it may (and it is counted), False if it is held (while
        reports are held, the summary of them must go first: see release)."""
        if not self.held and self._room(now, per_hour):
            self._sent.append(now)
            return True
        self.held += 1
        if self.held == 1:
            self.held_since, self.held_under = now, per_hour
        return False

    @property
    def noticed(self) -> float | None:
        """When the last notice went (None: not in the last hour before the start, nor since)."""
        return self._noticed

    def notice_allowed(self, now: float) -> bool:
        """Whether the notice that a hold began may go: once an hour at most (counted here)."""
        if self._noticed is not None and now - self._noticed < limits.MAIL_PER_HOUR_WINDOW_S:
            return False
        self._noticed = now
        return True

    def release(self, now: float, per_hour: int) -> int:
        """How many reports were held, once there is room for the mail that says so (it is
        counted); 0 when nothing is held or there is no room yet."""
        if not self.held or not self._room(now, per_hour):
            return 0
        self._sent.append(now)
        held, self.held, self.held_since, self.held_under = self.held, 0, None, None
        return held

    def reopens_at(self, now: float, per_hour: int) -> float | None:
        """When the held reports can be summarised (`now` if at once); None if none is held."""
        if not self.held:
            return None
        if self._room(now, per_hour):
            return now
        return self._sent[len(self._sent) - per_hour] + limits.MAIL_PER_HOUR_WINDOW_S
