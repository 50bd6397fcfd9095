"""Unblocking: every action of a block that was, or may have been, done is undone, then the
block ends (by an unblock, its expiry, the ignore file, a protected address, a stop). The
blocks are marked as being unblocked first, so a start after a kill finishes the unblock
rather than applying the block again; an undo that fails is recorded on the ended block (a
leftover) and tried again at the next unblock of its address and at start."""

import ipaddress
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from portwarden import fileedit, limits
from portwarden.config.ignore import IgnoreList, Network
from portwarden.net.nftables import NftError
from portwarden.respond import commands
from portwarden.respond.context import ActionContext
from portwarden.respond.nft_table import NftTable
from portwarden.respond.portsentry_writer import PortSentryWriter
from portwarden.respond.recorded import IGNORED, PROTECTED, left
from portwarden.store.db import (
    DONE,
    HOSTS_DENY,
    NFT,
    PLANNED,
    ROUTE,
    RUNNING,
    UNDO_FAILED,
    Action,
    BlockRecord,
)
from portwarden.text import counted, one_line

log = logging.getLogger("portwarden")

NO_UNDO = "no known undo: remove it by hand"  # a KILL_ROUTE that config.kill.route_undo cannot undo

_FEW_ADDRESSES = 256  # an ignored network this small is looked up by its addresses' spellings


def _inside(records: list[BlockRecord], networks: tuple[Network, ...]) -> list[BlockRecord]:
    """The records whose address is in one of `networks`. At a start with 100,000 blocks,
    parsing every address would cost over half a second; the ignore file's entries are mostly
    single hosts, which a set of their spellings finds at once."""
    few = {str(a) for n in networks if n.num_addresses <= _FEW_ADDRESSES for a in n}
    many = IgnoreList.build(n for n in networks if n.num_addresses > _FEW_ADDRESSES)
    return [
        r
        for r in records
        if r.address in few or (many.networks and ipaddress.ip_address(r.address) in many)
    ]


def _undo_due(action: Action) -> bool:
    """Whether an unblock undoes the action: done, or maybe done (planned, or a command
    killed with us), or an undo that failed before; not one that failed (nothing added)."""
    return action.status in (DONE, PLANNED, RUNNING) or action.status.startswith(UNDO_FAILED)


class Unblocker:
    def __init__(self, context: ActionContext, nft: NftTable, files: PortSentryWriter) -> None:
        self._context = context
        self._store = context.store
        self._nft = nft
        self._files = files
        self._routes_gone = 0  # KILL_ROUTE undos with nothing to remove, not yet said

    def unblock(self, record: BlockRecord, by: str) -> BlockRecord | None:
        """Undo every action of the block that was or may have been done, then end it. Returns
        the ended record, whose actions still in force (their undo failed) say UNDO_FAILED
        (see recorded.left), or None if it had already ended."""
        undone = self.unblock_many([record], by)
        self._files.write_files(None)
        return undone[0] if undone else None

    def unblock_many(self, records: list[BlockRecord], by: str) -> list[BlockRecord]:
        """unblock for many blocks, BLOCKED_FILE not written: first each is marked as being
        unblocked by `by` (one transaction: a start after a kill finishes the unblock, see
        `finish_unblocks`, rather than applying the block again); then our nftables elements
        go in one batch, the hosts.deny lines in one rewrite per file, the rest one by one;
        the blocks end as they are undone, in one transaction every UNBLOCK_COMMIT_S (so a kill
        while thousands of KILL_ROUTE undos run leaves only the rest for the next start).
        Returns the records ended here."""
        if not records:
            return []
        self._store.start_unblocking([r.id for r in records], by)
        nft_error = self._remove_elements(records)
        removed = self._remove_hosts_deny_lines(records)
        undone: list[BlockRecord] = []
        chunk: list[BlockRecord] = []
        commit_at = time.monotonic() + limits.UNBLOCK_COMMIT_S
        for record in records:
            chunk.append(
                record._replace(
                    actions=tuple(
                        self._undone_batched(a, record.address, nft_error, removed)
                        for a in record.actions
                    )
                )
            )
            if time.monotonic() >= commit_at:
                undone += self._end_undone(chunk, by)
                chunk = []
                commit_at = time.monotonic() + limits.UNBLOCK_COMMIT_S
        undone += self._end_undone(chunk, by)
        self._say_routes_gone()
        return undone

    def unblock_at_once(self, records: list[BlockRecord], by: str) -> None:
        """What the loop does of an unblock the moment it is asked, before the action worker's
        turn (it may be running a block's KILL_RUN_CMD): the blocks are marked as being
        unblocked by `by`, so that none of their actions not yet done is carried out any more
        (see BlockMaker.carry_out) and a start after a kill finishes the unblock, and their nftables
        elements are removed. The worker's unblock_many then does the rest, and records it."""
        self._store.start_unblocking([r.id for r in records], by)
        error = self._remove_elements(records)
        if error is not None:
            log.warning(
                "nftables: removing the elements of %s failed: %s; the action worker tries again",
                counted(len(records), "unblocked block"),
                error,
            )

    def _end_undone(self, undone: list[BlockRecord], by: str) -> list[BlockRecord]:
        """End the blocks (their actions as undone) in one transaction; returns those that had
        not ended already."""
        now_ended = self._store.end_blocks([(r.id, r.actions) for r in undone], time.time(), by)
        return [r for r in undone if r.id in now_ended]

    def finish_unblocks(self) -> list[BlockRecord]:
        """At start: the unblocks a kill interrupted are done again to the end (an undo of what
        is gone already is harmless), each by who asked."""
        by_whom: dict[str, list[BlockRecord]] = {}
        for record, by in self._store.unblocking():
            by_whom.setdefault(by, []).append(record)
        finished = [u for by, records in by_whom.items() for u in self.unblock_many(records, by)]
        if finished:
            log.warning("finished %s that a stop interrupted", counted(len(finished), "unblock"))
        return finished

    def _remove_elements(self, records: list[BlockRecord]) -> str | None:
        """Our nftables elements of `records` removed in one batch. Returns why it failed."""
        elements = [
            (table, ipaddress.ip_address(r.address))
            for r in records
            for a in r.actions
            if a.kind == NFT and _undo_due(a)
            for table in self._nft.tables_of(a)
        ]
        try:
            self._nft.remove_from(elements)
        except (OSError, NftError) as error:
            return one_line(str(error))
        return None

    def _remove_hosts_deny_lines(self, records: list[BlockRecord]) -> dict[tuple[str, str], str]:
        """Our hosts.deny lines of `records` removed: one rewrite per file. Returns why it
        failed, for each line of a file that could not be rewritten."""
        by_file: dict[str, list[str]] = {}
        for record in records:
            for a in record.actions:
                if a.kind == HOSTS_DENY and len(a.undo) == 2 and _undo_due(a):
                    by_file.setdefault(a.undo[0], []).append(a.undo[1])
        failed: dict[tuple[str, str], str] = {}
        for path, lines in by_file.items():
            try:
                fileedit.remove_lines(Path(path), lines)
            except OSError as error:
                failed.update(((path, line), one_line(str(error))) for line in lines)
        return failed

    def _undone_batched(
        self,
        action: Action,
        address: str,
        nft_error: str | None,
        deny_failed: dict[tuple[str, str], str],
    ) -> Action:
        """_undone, for an action whose undo was done in a batch (nftables, hosts.deny)."""
        if action.kind == NFT and _undo_due(action):
            return self._outcome(action, address, nft_error)
        if action.kind == HOSTS_DENY and len(action.undo) == 2 and _undo_due(action):
            return self._outcome(action, address, deny_failed.get((action.undo[0], action.undo[1])))
        return self._undone(action, address)

    def _undone(self, action: Action, address: str) -> Action:
        """The action after its undo: as it was (done again after an undo that failed before),
        or UNDO_FAILED and why."""
        try:
            error = self.undo(action, address)
        except (OSError, NftError) as failure:
            error = one_line(str(failure))
        return self._outcome(action, address, error)

    @staticmethod
    def _outcome(action: Action, address: str, error: str | None) -> Action:
        """The action after an undo that failed with `error` (None: it worked)."""
        if error is None:
            return action._replace(status=DONE) if action.status.startswith(UNDO_FAILED) else action
        log.error(
            "undoing %s for %s failed: %s; run `portwarden unblock %s` again once it is fixed",
            action.kind,
            address,
            error,
            address,
        )
        return action._replace(status=f"{UNDO_FAILED}: {error}")

    def undo(self, action: Action, address: str) -> str | None:
        """Undo one action; returns why it failed, if it did. One that may never have been done
        (planned, or a command killed with us) is undone too: an undo of something not there
        is harmless, and its failure is expected (logged at debug level)."""
        unsure = action.status in (PLANNED, RUNNING)
        if not _undo_due(action):
            return None  # failed: nothing was added
        if action.kind == NFT:
            element = ipaddress.ip_address(address)
            self._nft.remove_from([(table, element) for table in self._nft.tables_of(action)])
        elif action.kind == HOSTS_DENY and len(action.undo) == 2:
            fileedit.remove_line(Path(action.undo[0]), action.undo[1])
        elif action.kind == ROUTE and action.undo:
            failure = commands.run(
                list(action.undo),
                self._context.settings.kill_cmd_timeout,
                "KILL_ROUTE undo",
                quiet=unsure,
                harmless=commands.NOT_THERE,
            )
            if failure == commands.GONE and action.status != PLANNED:  # planned: never added
                self._routes_gone += 1
            elif failure is not None and not unsure:
                return f"{' '.join(action.undo)} failed: {failure}"
        elif action.kind == ROUTE and action.status != PLANNED:
            return NO_UNDO
        return None

    def retry_left(
        self, network: Network | None, by_hand: bool = False
    ) -> tuple[list[BlockRecord], list[BlockRecord]]:
        """Undo again what ended blocks inside `network` (all when None) left in force.
        `by_hand`: the administrator asks (`unblock`), having been told to remove by hand what
        cannot be undone. Returns those now fully undone, and those still not."""
        cleared: list[BlockRecord] = []
        still: list[BlockRecord] = []
        rebooted = self._store.left_in_other_boots(self._context.boot)
        for record in self._store.leftovers():
            if network is not None and ipaddress.ip_address(record.address) not in network:
                continue
            actions = tuple(
                self._retried(a, record.address, record.id in rebooted, by_hand)
                for a in record.actions
            )
            self._store.set_left(record.id, actions)
            record = record._replace(actions=actions)
            (still if left(record) else cleared).append(record)
        self._say_routes_gone()
        return cleared, still

    def _say_routes_gone(self) -> None:
        """One line for the KILL_ROUTE undos of a batch that found nothing to remove (routes
        removed by hand, or by a reboot; every one of them when a start finishes thousands of
        interrupted unblocks), instead of one each."""
        if self._routes_gone:
            log.info(
                "KILL_ROUTE undo: nothing to remove for %s (gone already: removed "
                "by hand, or by a reboot)",
                counted(self._routes_gone, "block"),
            )
            self._routes_gone = 0

    def _retried(self, action: Action, address: str, rebooted: bool, by_hand: bool) -> Action:
        """A leftover's action after another try: a KILL_ROUTE left in force before a reboot
        is gone with it (routes and firewall rules do not survive one); one with no known undo
        is taken as removed by hand once the administrator runs `unblock` again."""
        if not action.status.startswith(UNDO_FAILED):
            return action
        if rebooted and action.kind == ROUTE:
            log.info("KILL_ROUTE for %s left in force before a reboot: gone with it", address)
            return action._replace(status=DONE)
        if by_hand and action.kind == ROUTE and not action.undo:
            log.info("KILL_ROUTE for %s (no known undo) taken as removed by hand", address)
            return action._replace(status=DONE)
        return self._undone(action, address)

    def unblock_matching(self, network: Network | None, by: str) -> list[BlockRecord]:
        """Unblock every active block inside `network` (all when None)."""
        inside = [
            r
            for r in self._store.active()
            if network is None or ipaddress.ip_address(r.address) in network
        ]
        return self._unblock_each(inside, by)

    def unblock_ignored(self, active: list[BlockRecord] | None = None) -> list[BlockRecord]:
        """End the active blocks inside IGNORE_FILE's networks (at start and at each reload):
        the ignore list is never blocked, also when an address is added to it after its
        block (else the administrator who adds a locked-out host stays locked out). `active`:
        the active blocks, when the caller has read them already."""
        networks = self._context.settings.ignored_networks
        if not networks:
            return []
        records = self._store.active() if active is None else active
        return self._unblock_each(_inside(records, networks), IGNORED)

    def unblock_protected(
        self, protected: Mapping[str, str], active: list[BlockRecord] | None = None
    ) -> list[BlockRecord]:
        """End the active blocks of `protected`'s addresses (each with why it is protected, as
        said in the log): they became a gateway, a name server or a local address after their
        block (at start, at each reload and when the periodic refresh finds them), and a block
        would cut this host off them. `active`: as for unblock_ignored."""
        if not protected:
            return []
        records = self._store.active() if active is None else active
        due = [r for r in records if r.address in protected]
        for record in due:
            log.warning(
                "protected address=%s why=%s: it became protected after its block, which ends",
                record.address,
                protected[record.address],
            )
        return self._unblock_each(due, PROTECTED)

    def _unblock_each(self, records: list[BlockRecord], by: str) -> list[BlockRecord]:
        undone = self.unblock_many(records, by)
        if undone:  # once, not once per block: `unblock --all` of many blocks stays linear
            self._files.write_files(None)
        return undone

    def expire(self, now: float) -> list[BlockRecord]:
        """End the blocks whose time is up (BLOCKED_FILE not written)."""
        return self.unblock_many(self._store.due(now), "expired")
