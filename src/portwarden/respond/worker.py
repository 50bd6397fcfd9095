"""The action worker: one thread, off the loop, that carries out the blocks the loop recorded
and does the rest of the action side (unblocks, expiry, reloads, the put-back of our nftables
blocks, `reapply`, alert-only HISTORY_FILE lines), taking the urgent jobs before the blocks
waiting their turn (see respond/jobs.py)."""

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, assert_never

from portwarden import limits
from portwarden.alert.dispatch import Alerts
from portwarden.config import Settings
from portwarden.config.ignore import shown
from portwarden.net.nftables import NftError
from portwarden.respond.actions import Actions
from portwarden.respond.admin import reapply_here, unblock_here
from portwarden.respond.jobs import (
    BlockJob,
    ExpireJob,
    JobQueue,
    NotesJob,
    ProtectedJob,
    PutBackJob,
    ReapplyJob,
    SettingsJob,
    StopJob,
    UnblockJob,
)
from portwarden.respond.nft_table import uses_nft
from portwarden.respond.recorded import IGNORED, NOT_RUN, PROTECTED, enforced
from portwarden.store.db import UNBLOCK_COMMAND, BlockRecord, Store
from portwarden.text import counted, one_line, utc_stamp

log = logging.getLogger("portwarden")


def block_line(record: BlockRecord, what: str = "block") -> str:
    until = "forever" if record.until is None else utc_stamp(record.until)
    actions = ",".join(f"{a.kind}:{a.status.split(':')[0]}" for a in record.actions) or "none"
    return (
        f"{what} address={record.address} actions={actions} until={until} "
        f"offence={record.offence} port={record.port} mode={record.mode} "
        f'reason="{one_line(record.reason)}"'
    )


def _just_now(by: str) -> Callable[[str], tuple[str, float]]:
    """For report_unblocks: every block ended by `by`, now."""
    now = time.time()
    return lambda _address: (by, now)


def report_unblocks(
    alerts: Alerts, ended: Sequence[str], how: Callable[[str], tuple[str, float]]
) -> None:
    """One line and event per ended block (its address, and by what and when: `how`), at most
    limits.UNBLOCKS_REPORTED_MAX at once (an `unblock --all` of thousands), then their number;
    `how` is asked only for those shown."""
    for address in ended[: limits.UNBLOCKS_REPORTED_MAX]:
        by, when = how(address)
        log.info("unblock address=%s by=%s", address, by)
        alerts.unblocked(address, by, when)
    if len(ended) > limits.UNBLOCKS_REPORTED_MAX:
        log.info("unblock: %d more addresses", len(ended) - limits.UNBLOCKS_REPORTED_MAX)
        alerts.unblocks_not_shown(len(ended) - limits.UNBLOCKS_REPORTED_MAX, time.time())


def say_table_remade(alerts: Alerts, settings: Settings, address: object) -> None:
    """A block found our table gone (`nft flush ruleset`) and made it again: the other active
    blocks are to be put back (by the caller)."""
    log.warning(
        "nftables: table inet %s was gone; made again for %s, putting the other active blocks back",
        settings.nft_table,
        address,
    )
    alerts.table_lost()


class ActionWorker(threading.Thread):
    """Owns the action side (nftables context, files, commands) and its own store connection."""

    def __init__(self, settings: Settings, store_path: Path, alerts: Alerts) -> None:
        super().__init__(name="portwarden-actions", daemon=True)
        # Only to make the worker's Actions (in run: its store connection is the thread's own);
        # a reload's settings come as a SettingsJob, and actions.settings is the one in force.
        self._settings_at_start = settings
        self._alerts = alerts
        self._path = store_path
        self.jobs = JobQueue(limits.BLOCK_QUEUE_MAX, limits.URGENT_JOBS_MAX)
        # Addresses whose block job is finished (recorded, or failed): the loop stops treating
        # them as in flight. A deque: appended here, popped by the loop, no lock needed.
        self.finished: collections.deque[str] = collections.deque()
        self.putting_back = threading.Event()  # a put-back-nft job is queued or running
        # New settings are queued or being applied: the table may still have the old shape.
        self.reshaping = threading.Event()
        # The sets lack blocks: the restore at start, or the last put-back, failed.
        self.unfilled = threading.Event()
        self.retry_at = 0.0  # after a failed put-back: no new one before (monotonic)
        # The daemon stops: the command running finishes (or times out), no other starts.
        self.stopping = threading.Event()

    def run(self) -> None:
        actions = Actions(self._settings_at_start, Store(self._path), self.stopping)
        while True:
            job = self.jobs.get()
            try:
                match job:
                    case StopJob(unblock):
                        self._on_stop(actions, unblock)
                    case SettingsJob(settings):
                        try:
                            if actions.reconfigure(settings) and uses_nft(settings):
                                # BLOCK_FORWARD changed: the chain comes or goes
                                actions.nft.reshape()
                        finally:
                            self.reshaping.clear()
                        self._settings_taken(actions)
                    case BlockJob():
                        self._carry_out(actions, job)
                    case PutBackJob():
                        self._put_back(actions)
                    case NotesJob():
                        actions.files.write_notes()
                    case ExpireJob():
                        expired = actions.unblocks.expire(time.time())
                        report_unblocks(
                            self._alerts, [r.address for r in expired], _just_now("expired")
                        )
                        if expired:
                            actions.files.write_files()
                    case UnblockJob():
                        with _answering(job.answer):
                            job.answer.set_result(self._unblock(actions, job))
                    case ProtectedJob(due):
                        ended = actions.unblocks.unblock_protected(due)
                        report_unblocks(
                            self._alerts, [r.address for r in ended], _just_now(PROTECTED)
                        )
                    case ReapplyJob(answer):
                        with _answering(answer):
                            reapplied = reapply_here(actions)
                            _say_swept(reapplied.get("nft_swept", 0), actions.settings, "reapply")
                            answer.set_result(dict(reapplied))  # as JSON
                    case _:
                        assert_never(job)
            except Exception:  # one failing action must never stop the others
                log.exception("action %s failed", job.kind)
            if isinstance(job, StopJob):  # the last job, even when it failed
                return

    def _on_stop(self, actions: Actions, unblock: bool) -> None:
        """The last job; `unblock` (UNBLOCK_ON_STOP): every block ends, and our nftables table."""
        if actions.blocks.not_run:
            log.warning(
                "stopping: KILL_RUN_CMD not run for %s that waited their turn (recorded `%s`)",
                counted(actions.blocks.not_run, "block"),
                NOT_RUN,
            )
        if unblock:
            report_unblocks(
                self._alerts,
                [r.address for r in actions.unblocks.unblock_matching(None, "stop")],
                _just_now("stop"),
            )
            if actions.nft.in_use():  # else the table is not ours: another instance's, maybe
                actions.nft.drop_table()

    def _carry_out(self, actions: Actions, job: BlockJob) -> None:
        try:
            record = actions.blocks.carry_out(job.record, job.nft_done)
        finally:
            self.finished.append(job.record.address)
        if record is not None:
            self._report_block(record)
        if job.supersedes:  # the mode file of the block it ended drops it
            actions.files.write_files()
        if actions.blocks.put_back_due:
            actions.blocks.put_back_due = False
            say_table_remade(self._alerts, actions.settings, job.record.address)
            self.putting_back.set()
            self._put_back(actions)

    def _settings_taken(self, actions: Actions) -> None:
        """After a reload, as at start (Restorer.restore): the blocks now inside IGNORE_FILE
        end, and those made before the built-in blocker was turned on are put in its sets."""
        report_unblocks(
            self._alerts,
            [r.address for r in actions.unblocks.unblock_ignored()],
            _just_now(IGNORED),
        )
        if actions.restorer.take_into_nft():
            self.putting_back.set()
            self._put_back(actions)

    def _unblock(self, actions: Actions, job: UnblockJob) -> dict[str, Any]:
        undone, answer = unblock_here(actions, job.network)
        report_unblocks(self._alerts, [r.address for r in undone], _just_now(UNBLOCK_COMMAND))
        where = "--all" if job.network is None else shown(job.network)
        _say_swept(answer.get("swept", 0), actions.settings, f"unblock {where}")
        return dict(answer)  # for the control socket, as JSON

    def _report_block(self, record: BlockRecord) -> None:
        if enforced(record.actions):
            log.warning("%s", block_line(record))
            self._alerts.blocked(record)
            return
        # A failed block counts as no offence (Store.offences): the line says so.
        log.error("%s", block_line(record._replace(offence=0), "block-failed"))
        self._alerts.block_failed(record.address)

    def _put_back(self, actions: Actions) -> None:
        try:
            count = actions.restorer.put_back_nft()
        except NftError as error:
            self.retry_at = time.monotonic() + limits.NFT_PUT_BACK_RETRY_S
            self.unfilled.set()
            log.error(
                "nftables: putting the blocks back failed: %s; trying again in %d s",
                one_line(str(error)),
                limits.NFT_PUT_BACK_RETRY_S,
            )
        else:
            self.unfilled.clear()
            log.warning(
                "nftables: %s re-applied in table inet %s",
                counted(count or 0, "block"),
                actions.settings.nft_table,
            )
        finally:
            self.putting_back.clear()


def _say_swept(count: int, settings: Settings, by: str) -> None:
    """The elements an unblock or a reapply removed from our sets that the store did not
    list (NftTable.sweep): blocks that had ended, back in force."""
    if count:
        log.warning(
            "nftables: %s: removed %s of table inet %s that the store did not list "
            "(a ruleset saved earlier and restored?)",
            by,
            counted(count, "element"),
            settings.nft_table,
        )


@contextlib.contextmanager
def _answering(answer: "Future[dict[str, Any]]") -> Iterator[None]:
    """The client waiting for `answer` gets one, also when the work failed."""
    try:
        yield
    except Exception as error:
        answer.set_result({"error": f"{type(error).__name__}: {one_line(str(error))}"})
        raise
