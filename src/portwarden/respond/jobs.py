"""The action worker's jobs, one frozen dataclass per kind (`Job`, their union), and its queue:
what ends blocks goes ahead of the blocks waiting their turn.

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
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from portwarden.config import Settings
from portwarden.config.ignore import Network
from portwarden.store.db import Action, BlockRecord


@dataclass(frozen=True)
class BlockJob:
    """A block the loop recorded (and whose nftables element it added: `nft_done`);
    `supersedes`: it ended the address's command-only block (ResponsePolicy.on_verdict)."""

    kind: ClassVar[str] = "block"  # in the log: `action block failed`
    record: BlockRecord
    nft_done: Action | None
    supersedes: bool = False


@dataclass(frozen=True)
class StopJob:
    """The end of the worker, after the blocks queued before it (see ResponsePolicy.stop);
    `unblock`: UNBLOCK_ON_STOP, every block ends and our nftables table goes."""

    kind: ClassVar[str] = "stop"
    unblock: bool


@dataclass(frozen=True)
class UnblockJob:
    """`portwarden unblock` through the daemon: begun by the loop (Unblocker.unblock_at_once),
    done by the worker before the blocks waiting their turn, so those inside `network` are
    not carried out at all (BlockMaker.carry_out)."""

    kind: ClassVar[str] = "unblock"
    network: Network | None  # None: every block, and our nftables table
    answer: "Future[dict[str, Any]]"


@dataclass(frozen=True)
class ExpireJob:
    """End the blocks whose time is up."""

    kind: ClassVar[str] = "expire"


@dataclass(frozen=True)
class SettingsJob:
    """A reload: the worker takes `settings`."""

    kind: ClassVar[str] = "settings"
    settings: Settings


@dataclass(frozen=True)
class ReapplyJob:
    """`portwarden reapply` through the daemon."""

    kind: ClassVar[str] = "reapply"
    answer: "Future[dict[str, Any]]"


@dataclass(frozen=True)
class PutBackJob:
    """Put our nftables blocks back (a lost table, sets that lack blocks)."""

    kind: ClassVar[str] = "put-back-nft"


@dataclass(frozen=True)
class ProtectedJob:
    """End the blocks of addresses that became protected: `due`, each with why."""

    kind: ClassVar[str] = "protected"
    due: Mapping[str, str]


@dataclass(frozen=True)
class NotesJob:
    """Write the alert-only HISTORY_FILE lines the store holds."""

    kind: ClassVar[str] = "notes"


Job: TypeAlias = (
    BlockJob
    | StopJob
    | UnblockJob
    | ExpireJob
    | SettingsJob
    | ReapplyJob
    | PutBackJob
    | ProtectedJob
    | NotesJob
)

_URGENT: frozenset[type[Job]] = frozenset(
    {UnblockJob, ExpireJob, SettingsJob, ReapplyJob, PutBackJob, ProtectedJob}
)
# One of these waiting is enough: a newer one takes its place (the newest settings; the one
# writing of notes writes them all). So they are never refused, nor is the stop (there is one),
# and the lanes stay bounded.
_ONE_WAITING: frozenset[type[Job]] = frozenset({ExpireJob, SettingsJob, PutBackJob, NotesJob})
_ALWAYS_TAKEN = _ONE_WAITING | {StopJob}


class JobQueue:
    """Bounded: at most `blocks_max` blocks and `urgent_max` urgent jobs wait."""

    def __init__(self, blocks_max: int, urgent_max: int) -> None:
        self.blocks_max = blocks_max
        self._urgent_max = urgent_max
        self._blocks: collections.deque[Job] = collections.deque()
        self._urgent: collections.deque[Job] = collections.deque()
        self._changed = threading.Condition()

    def put(self, job: Job) -> bool:
        """Queue a job; False if its lane is full (a block, an unblock or a reapply)."""
        kind = type(job)
        with self._changed:
            if kind in _URGENT:
                lane, room = self._urgent, self._urgent_max
            else:
                lane, room = self._blocks, self.blocks_max
            if kind in _ONE_WAITING:
                for index, waiting in enumerate(lane):
                    if type(waiting) is kind:
                        lane[index] = job
                        return True
            if len(lane) >= room and kind not in _ALWAYS_TAKEN:
                return False
            lane.append(job)
            self._changed.notify()
            return True

    def get(self) -> Job:
        """The next job, urgent ones first; waits for one."""
        with self._changed:
            self._changed.wait_for(lambda: self._urgent or self._blocks)
            return (self._urgent or self._blocks).popleft()

    def full(self) -> bool:
        """Whether a block would be refused now."""
        with self._changed:
            return len(self._blocks) >= self.blocks_max
