"""The action worker's queue: what ends blocks goes ahead of the blocks waiting their turn.

Blocks are carried out one at a time, and a block's KILL_RUN_CMD may take KILL_CMD_TIMEOUT
(then the kill); behind a burst of such blocks, one first-in-first-out queue made an `unblock`
wait for every block queued before it, and carry them out (their commands too) before undoing
them, and made blocks outlast their `until` by the backlog. So two lanes: the jobs that end
blocks or answer the administrator (an unblock, an expiry, a reload, whose IGNORE_FILE may now
hold a blocked address, `reapply`, the put-back of our nftables blocks, the end of the blocks of
addresses that became protected) are taken before any block; a block whose unblock or expiry
comes first is then not carried out (see BlockMaker.carry_out). Blocks, and the stop after
them, keep their order; the writing of alert-only HISTORY_FILE lines
(PortSentryWriter.write_notes) takes its turn among them.
"""

import collections
import enum
import threading
from typing import overload


class Job(enum.Enum):
    BLOCK = "block"
    STOP = "stop"  # after the blocks queued before it: see ResponsePolicy.stop
    UNBLOCK = "unblock"
    EXPIRE = "expire"
    SETTINGS = "settings"
    REAPPLY = "reapply"
    PUT_BACK = "put-back-nft"
    PROTECTED = "protected"  # end the blocks of addresses that became protected
    NOTES = "notes"  # write the alert-only HISTORY_FILE lines the store holds


_URGENT = frozenset(
    {Job.UNBLOCK, Job.EXPIRE, Job.SETTINGS, Job.REAPPLY, Job.PUT_BACK, Job.PROTECTED}
)
# One of these waiting is enough: a newer one takes its place (the newest settings; the one
# writing of notes writes them all). So they are never refused, nor is the stop (there is one),
# and the lanes stay bounded.
_ONE_WAITING = frozenset({Job.EXPIRE, Job.SETTINGS, Job.PUT_BACK, Job.NOTES})
_ALWAYS_TAKEN = _ONE_WAITING | {Job.STOP}


class JobQueue:
    """Bounded: at most `blocks_max` blocks and `urgent_max` urgent jobs wait."""

    def __init__(self, blocks_max: int, urgent_max: int) -> None:
        self.blocks_max = blocks_max
        self._urgent_max = urgent_max
        self._blocks: collections.deque[tuple[Job, object]] = collections.deque()
        self._urgent: collections.deque[tuple[Job, object]] = collections.deque()
        self._changed = threading.Condition()

    def put(self, kind: Job, payload: object) -> bool:
        """Queue a job; False if its lane is full (a block, an unblock or a reapply)."""
        with self._changed:
            if kind in _URGENT:
                lane, room = self._urgent, self._urgent_max
            else:
                lane, room = self._blocks, self.blocks_max
            if kind in _ONE_WAITING:
                for index, (waiting, _) in enumerate(lane):
                    if waiting is kind:
                        lane[index] = (kind, payload)
                        return True
            if len(lane) >= room and kind not in _ALWAYS_TAKEN:
                return False
            lane.append((kind, payload))
            self._changed.notify()
            return True

    @overload
    def get(self) -> tuple[Job, object]: ...

    @overload
    def get(self, timeout: float) -> tuple[Job, object] | None: ...

    def get(self, timeout: float | None = None) -> tuple[Job, object] | None:
        """The next job, urgent ones first (waits for one); with `timeout`, None if there is
        none within that many seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._urgent or self._blocks, timeout):
                return None
            return (self._urgent or self._blocks).popleft()

    def full(self) -> bool:
        """Whether a block would be refused now."""
        with self._changed:
            return len(self._blocks) >= self.blocks_max
