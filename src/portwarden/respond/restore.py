"""Putting the blocks back in force: at start (what a kill interrupted finished, our nftables
sets refilled, hosts.deny lines put back, KILL_ROUTE run again after a reboot), after a reload
that turned the built-in blocker on, after a flush of our table, and at `reapply`."""

import logging
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from portwarden import fileedit
from portwarden.net.nftables import NftError
from portwarden.respond import commands
from portwarden.respond.block import run_action
from portwarden.respond.context import ActionContext
from portwarden.respond.nft_table import NftTable, seconds_left, uses_nft
from portwarden.respond.old_tables import leave_old_tables
from portwarden.respond.portsentry_writer import PortSentryWriter
from portwarden.respond.recorded import IN_FORCE, NOT_RUN, enforced, lasting, left
from portwarden.respond.unblock import Unblocker
from portwarden.store.db import (
    COMMAND,
    DONE,
    FAILED,
    HOSTS_DENY,
    NFT,
    PLANNED,
    ROUTE,
    RUNNING,
    Action,
    BlockRecord,
    collector_paused,
)
from portwarden.text import are, counted, one_line

log = logging.getLogger("portwarden")

INTERRUPTED = f"{FAILED}: interrupted"
REAPPLY_FAILED = f"{FAILED}: at reapply: "  # a KILL_ROUTE in force until `reapply` ran it again
NOT_CONFIGURED = "not run again: the configuration no longer has this KILL_ROUTE"


class Unfilled(NamedTuple):
    """The restore at start could not fill our nftables sets: why, and what is not in force."""

    why: str
    blocks: int  # active blocks whose nftables element is missing
    bare: int  # of those, the blocks with nothing else in force (a route, a hosts.deny line)


def _unfilled(why: str, kept: list[BlockRecord]) -> Unfilled:
    missing = [r for r in kept if any(a.kind == NFT for a in r.actions)]
    bare = sum(
        not any(a.kind not in (NFT, COMMAND) and a.status in IN_FORCE for a in r.actions)
        for r in missing
    )
    return Unfilled(why, len(missing), bare)


def _commands_left(statuses: Counter[str]) -> str:
    """`2 blocks were recorded but ... (not run); 1 was interrupted while it ran (...)`: the
    KILL_RUN_CMDs a stop left, each kind said only when there is one."""
    said = []
    if statuses[NOT_RUN]:
        said.append(
            f"{counted(statuses[NOT_RUN], 'block was', 'blocks were')} recorded but "
            "the daemon stopped before "
            + ("its" if statuses[NOT_RUN] == 1 else "their")
            + " turn (not run)"
        )
    if statuses[INTERRUPTED]:
        said.append(
            f"{counted(statuses[INTERRUPTED], 'block was', 'blocks were')} interrupted "
            "while its command ran (it may have run, and cannot be undone)"
        )
    return "; ".join(said)


class Reapplied(NamedTuple):
    """What `reapply` did with each active block that has a KILL_ROUTE (addresses)."""

    done: list[str]
    failed: list[tuple[str, str]]  # address, why
    no_undo: list[str]  # not run again: it may still be in force
    unconfigured: list[str]  # not run again: the configuration no longer has it


def _reapplied(action: Action) -> bool:
    """Whether `reapply` runs the action again: a KILL_ROUTE that took effect (ours, or a
    blocking route not ours that was there: if a flush took it, ours takes its place), also one
    whose run at an earlier reapply failed. Not one that failed at its block (an IPv4-only
    KILL_ROUTE for an IPv6 block would fail again at every reapply), nor one still planned (its
    block waits for the action worker, which runs it)."""
    again = action.status in IN_FORCE or action.status.startswith(REAPPLY_FAILED)
    return action.kind == ROUTE and bool(action.do) and again


class Restorer:
    def __init__(
        self, context: ActionContext, nft: NftTable, unblocks: Unblocker, files: PortSentryWriter
    ) -> None:
        self._context = context
        self._store = context.store
        self._nft = nft
        self._unblocks = unblocks
        self._files = files
        self.unfilled: Unfilled | None = None  # the restore could not fill the sets

    def restore(self, protected: Mapping[str, str] | None = None) -> int:
        """At start: end overdue blocks, those inside IGNORE_FILE or of `protected` addresses
        (see Unblocker.unblock_protected), and those that only ran a command (see
        recorded.lasting); make the firewall, routes and files match the store. nftables sets
        are refilled always (one idempotent transaction), hosts.deny lines put back (one
        write), KILL_ROUTE run again only for blocks made before this boot (routes and rules
        do not survive one; running them again without one would add them twice), and what a
        kill interrupted finished. What an unblock left in force (an undo that failed) is
        tried again first."""
        with collector_paused():
            return self._restore(protected or {})

    def _restore(self, protected: Mapping[str, str]) -> int:
        now = time.time()
        # Before anything is applied again: see Unblocker.unblock_many.
        self._unblocks.finish_unblocks()
        for record in self._unblocks.retry_left(None)[1]:
            log.error(
                "unblocked %s, but left in force: %s", record.address, "; ".join(left(record))
            )
        self._unblocks.expire(now)
        everything = self._store.active()
        # Reported by ResponsePolicy.start, as the others that end here.
        if self._unblocks.unblock_ignored(everything):
            everything = self._store.active()
        if self._unblocks.unblock_protected(protected, everything):
            everything = self._store.active()
        active = []
        for record in everything:
            if lasting(record.actions):
                active.append(record)
            else:
                self._store.end_block(record.id, now, "restart")
        active = self._into_nft(active)  # their elements come in the batch below
        self.unfilled = None
        unfilled = None
        if uses_nft(self._context.settings) or any(
            a.kind == NFT for r in active for a in r.actions
        ):
            try:
                self._nft.blocker().replace_all(self._nft_blocks(active, now))
            except NftError as error:  # the rest is restored all the same: see policy.start
                unfilled = one_line(str(error))
            else:  # only then: else the old table may be all that blocks them
                active = leave_old_tables(self._nft, self._store, active)
        put_back = self._put_back_hosts_deny(active)
        boot = self._context.boot
        rebooted = self._store.made_in_other_boots(boot)
        kept: list[BlockRecord] = []
        commands_left: Counter[str] = Counter()
        for record in active:
            routed = any(a.kind == ROUTE for a in record.actions)
            if all(a.status in IN_FORCE for a in record.actions) and not (
                routed and record.id in rebooted
            ):  # the usual case, and nothing to do: fast for 100,000 blocks
                kept.append(record)
                continue
            actions = tuple(
                self._resume(a, record, record.id in rebooted, put_back) for a in record.actions
            )
            if actions != record.actions:
                self._store.set_actions(record.id, actions)
            if record.id in rebooted and routed:
                self._store.set_boot(record.id, boot)  # at once: a kill now runs it again
            commands_left.update(
                a.status
                for a, was in zip(actions, record.actions, strict=True)
                if a.kind == COMMAND and a != was
            )
            if enforced(actions):
                kept.append(record._replace(actions=actions))
            else:
                self._store.end_block(record.id, now, FAILED)
                shown = ",".join(f"{a.kind}:{a.status}" for a in actions)
                log.error(
                    "block of %s ended: none of its actions is in force (%s)", record.address, shown
                )
        if rebooted:
            self._store.set_boot_all(boot)  # the blocks without a route: one statement
        if commands_left:
            log.warning("KILL_RUN_CMD not run again at start: %s", _commands_left(commands_left))
        self._files.catch_up_history()
        self._files.write_files(None, kept)
        if unfilled is not None:
            self.unfilled = _unfilled(unfilled, kept)
        return len(kept)

    def _put_back_hosts_deny(self, active: list[BlockRecord]) -> dict[tuple[str, str], str]:
        """Our hosts.deny lines of the active blocks, added where missing: one read and one
        write per file. Returns each line's status (done, or failed: why). Lines that were in
        force and are missing (removed by hand: only `unblock` ends a block) are counted in
        one line per file; those a kill left planned are not (they were never there)."""
        by_file: dict[str, list[str]] = {}
        in_force: set[tuple[str, str]] = set()
        for record in active:
            for a in record.actions:
                if a.kind == HOSTS_DENY and len(a.undo) == 2 and a.status in (DONE, PLANNED):
                    by_file.setdefault(a.undo[0], []).append(a.undo[1])
                    if a.status == DONE:
                        in_force.add((a.undo[0], a.undo[1]))
        status: dict[tuple[str, str], str] = {}
        for path, lines in by_file.items():
            try:
                added = fileedit.add_lines(Path(path), lines)
                outcome = DONE
            except OSError as error:
                log.error("hosts.deny: %s", one_line(str(error)))
                outcome = f"{FAILED}: {one_line(str(error))}"
            else:
                if removed := sum((path, line) in in_force for line in added):
                    log.warning(
                        "hosts.deny: %s of active blocks put back in %s (they were "
                        "missing: removed by hand or by another program; `portwarden "
                        "unblock ADDR` ends a block)",
                        counted(removed, "line"),
                        path,
                    )
            status.update(((path, line), outcome) for line in lines)
        return status

    def _resume(
        self,
        action: Action,
        record: BlockRecord,
        rebooted: bool,
        put_back: dict[tuple[str, str], str],
    ) -> Action:
        """One action of an active block at start: what it is now."""
        if action.kind == NFT:
            return action if action.status == DONE else action._replace(status=DONE)
        if action.kind == HOSTS_DENY and action.status == PLANNED:
            return action._replace(status=put_back.get((action.undo[0], action.undo[1]), DONE))
        if action.kind == COMMAND and action.status in (PLANNED, RUNNING):
            # Not run now: a start must not wait for up to BLOCK_QUEUE_MAX commands.
            return action._replace(status=NOT_RUN if action.status == PLANNED else INTERRUPTED)
        if action.kind != ROUTE or not (rebooted or action.status in (PLANNED, RUNNING)):
            return action
        route = self._context.settings.kill_route
        if not action.do and route:  # recorded before `do` was
            argv = commands.expand(route.argv, record.address, record.port, record.mode)
            action = action._replace(do=tuple(argv))
        if not action.do:
            return action
        if action.status in IN_FORCE and not self._configured(action, record):
            log.warning(
                "KILL_ROUTE for %s not run again after the reboot: the configuration "
                "no longer has it (%s)",
                record.address,
                " ".join(action.do),
            )
            return action._replace(status=f"{FAILED}: {NOT_CONFIGURED}")
        timeout = self._context.settings.kill_cmd_timeout
        return run_action(
            action,
            "KILL_ROUTE (restore)",
            record.address,
            timeout,
            quiet_undo=action.status == RUNNING,
        )

    def _configured(self, action: Action, record: BlockRecord) -> bool:
        """Whether the KILL_ROUTE of the configuration now in force is the route `action` ran
        (after the administrator switched blockers, the old one must not come back)."""
        route = self._context.settings.kill_route
        if route is None:
            return False
        return (
            tuple(commands.expand(route.argv, record.address, record.port, record.mode))
            == action.do
        )

    def _into_nft(self, active: list[BlockRecord]) -> list[BlockRecord]:
        """`active` with an nftables action for each block that has none, recorded, when the
        built-in blocker is on: blocks made before it was turned on (KILL_ROUTE only, or an
        IPv6 block whose route failed, leaving a hosts.deny line) would else never be in our
        sets. The caller adds their elements."""
        if not uses_nft(self._context.settings):
            return active
        taken = {
            r.id: r._replace(actions=(self._nft.action(DONE), *r.actions))
            for r in active
            if not any(a.kind == NFT for a in r.actions)
        }
        if taken:
            self._store.set_actions_many([(r.id, r.actions) for r in taken.values()])
            log.warning(
                "nftables: %s made before the built-in blocker was on %s now enforced by it too",
                counted(len(taken), "block"),
                are(len(taken)),
            )
        return [taken.get(r.id, r) for r in active]

    def take_into_nft(self) -> int:
        """After a reload that turned the built-in blocker on: the active blocks without an
        nftables action get one (see _into_nft). Returns how many; the caller puts them in
        the sets (put_back_nft)."""
        active = self._store.active()
        return sum(a is not b for a, b in zip(self._into_nft(active), active, strict=True))

    def reapply_routes(self) -> Reapplied:
        """Run KILL_ROUTE again for every active block, each after its undo (so that nothing
        is in force twice): when the routes or firewall rules were flushed by hand. Not run
        again: a KILL_ROUTE with no known undo (it may still be in force), and one that the
        configuration no longer has (see _configured)."""
        outcome = Reapplied([], [], [], [])
        for record in self._store.active():
            routes = [a for a in record.actions if _reapplied(a)]
            if not routes:
                continue
            if not all(self._configured(a, record) for a in routes):
                outcome.unconfigured.append(record.address)
                continue
            if not all(a.undo for a in routes):
                outcome.no_undo.append(record.address)
                continue
            actions = tuple(
                self._run_again(a, record.address) if _reapplied(a) else a for a in record.actions
            )
            self._store.set_actions(record.id, actions)
            self._store.set_boot(record.id, self._context.boot)
            failed = [
                a.status.removeprefix(REAPPLY_FAILED)
                for a in actions
                if a.status.startswith(REAPPLY_FAILED)
            ]
            if failed:
                outcome.failed.append((record.address, "; ".join(failed)))
            else:
                outcome.done.append(record.address)
        return outcome

    def _run_again(self, route: Action, address: str) -> Action:
        """A KILL_ROUTE run again by `reapply`; a failure is marked as one of reapply's (the
        next reapply tries again: the route was in force before). A blocking route there
        already (after our undo: not ours) is in force: recorded `present`, as at a block."""
        timeout = self._context.settings.kill_cmd_timeout
        again = run_action(route, "KILL_ROUTE (reapply)", address, timeout, quiet_undo=True)
        if again.status in IN_FORCE:
            return again
        return again._replace(status=REAPPLY_FAILED + again.status.partition(": ")[2])

    def put_back_nft(self) -> int | None:
        """Make our table again (or repair its chains and rules) with the active nftables
        blocks (a failed nft action counts too: this is its second chance). Returns how many;
        None when nothing blocks with nftables."""
        blocks = self._nft_blocks(self._in_nft_sets(), time.time())
        if not blocks and not uses_nft(self._context.settings):
            return None
        self._nft.blocker().put_back(blocks)
        return len(blocks)

    def in_nft_sets(self) -> set[str]:
        """The addresses whose element belongs in our sets (see NftTable.sweep)."""
        return {r.address for r in self._in_nft_sets()}

    def _in_nft_sets(self) -> list[BlockRecord]:
        """The active blocks with an nftables action, but those whose unblock has begun
        (their elements are gone on purpose)."""
        ending = {record.id for record, _ in self._store.unblocking()}
        return [
            r
            for r in self._store.active()
            if r.id not in ending and any(a.kind == NFT for a in r.actions)
        ]

    @staticmethod
    def _nft_blocks(active: list[BlockRecord], now: float) -> list[tuple[str, int | None]]:
        return [
            (r.address, seconds_left(r.until, now))
            for r in active
            if any(a.kind == NFT for a in r.actions)
        ]
