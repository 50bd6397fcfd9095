"""Turns of the daemon's loop that failed on a bug: logged, counted, survived, until every turn
has failed for limits.LOOP_ERRORS_FATAL_S (see limits.py)."""

import logging

from portwarden import limits
from portwarden.text import counted, one_line

log = logging.getLogger("portwarden")


class LoopErrors:
    def __init__(self) -> None:
        self.total = 0  # turns failed since start (status, metrics: loop_errors)
        self._unsaid = 0  # failed since the last traceback logged
        self._next_said = float("-inf")  # monotonic
        self._failing_since: float | None = None  # the first failed turn of those in a row
        self._in_a_row = 0
        self._last = ""  # the last error, on one line (the error itself would keep its frames)

    def failed(self, error: Exception, now: float) -> None:
        """A turn raised `error`: count it, and log it with its traceback if none was logged
        for limits.LOOP_ERROR_LOG_S."""
        self.total += 1
        self._in_a_row += 1
        if self._failing_since is None:
            self._failing_since = now
        self._last = one_line(f"{type(error).__name__}: {error}")
        if now < self._next_said:
            self._unsaid += 1
            return
        since = (
            f"; {counted(self._unsaid, 'more turn')} failed since the last one logged"
            if self._unsaid
            else ""
        )
        log.error(
            "a turn of the loop failed (a bug: please report it with this traceback)%s; going on",
            since,
            exc_info=error,
        )
        self._unsaid = 0
        self._next_said = now + limits.LOOP_ERROR_LOG_S

    def passed(self) -> None:
        """A turn ran through: the failures in a row are over."""
        self._failing_since = None
        self._in_a_row = 0

    def fatal(self, now: float) -> bool:
        """Whether every turn has failed for limits.LOOP_ERRORS_FATAL_S; if so, says it."""
        if self._failing_since is None or now - self._failing_since < limits.LOOP_ERRORS_FATAL_S:
            return False
        log.error(
            "every turn of the loop failed for %g s (%d in a row; the last: %s): stopping "
            "with exit status 1, for a restart by the service manager",
            limits.LOOP_ERRORS_FATAL_S,
            self._in_a_row,
            self._last,
        )
        return True
