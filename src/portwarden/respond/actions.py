"""Doing and undoing blocks: nftables, KILL_ROUTE, hosts.deny, KILL_RUN_CMD, and the files.

Used by the daemon's loop (it records a block and adds its nftables element), its action
worker thread (the rest) and, when no daemon runs, by the `unblock` and `reapply` commands,
each with its own Store connection. The store is the one source of truth: every action of a
block is recorded (planned, with how to do and undo it) before anything is done, an external
command is marked running while it runs, and each action is updated once it is done or
failed. So an unblock undoes everything that was, or may have been, done, and a start after a
kill at any moment finishes exactly what was interrupted. An undo that fails is recorded on
the ended block (a leftover) and tried again at the next unblock of its address and at start.
"""

import contextlib
import ipaddress
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from portwarden import fileedit, limits
from portwarden.config import BlockMode, ConfigError, Settings
from portwarden.config.ignore import IgnoreList, Network
from portwarden.config.kill import BRACKETED_TARGET, route_undo
from portwarden.config.values import NftUse
from portwarden.net import local
from portwarden.net.addresses import IPAddress
from portwarden.net.nftables import DEFAULT_TABLE, Nft, NftError, load_library
from portwarden.net.resolve import Lookup, Resolver
from portwarden.respond import commands, portsentry_files
from portwarden.respond.nft import NftBlocker, TableListing, claim_table
from portwarden.store.db import (
    DONE,
    FAILED,
    PLANNED,
    RUNNING,
    UNDO_FAILED,
    Action,
    BlockRecord,
    HistoryNote,
    Store,
    boot_id,
    collector_paused,
)
from portwarden.text import are, counted, one_line, safe_hostname

log = logging.getLogger("portwarden")

NFT, ROUTE, HOSTS_DENY, COMMAND = "nft", "route", "hosts.deny", "command"
INTERRUPTED = f"{FAILED}: interrupted"
NOT_RUN = f"{FAILED}: not run (the daemon stopped before its turn)"
REAPPLY_FAILED = f"{FAILED}: at reapply: "  # a KILL_ROUTE in force until `reapply` ran it again
NOT_CONFIGURED = "not run again: the configuration no longer has this KILL_ROUTE"
NO_UNDO = "no known undo: remove it by hand"  # a KILL_ROUTE that config.kill.route_undo cannot undo
# A hosts.deny line or a KILL_ROUTE route that was there before the block (PortSentry's
# leftover, the administrator's own): it denies the host, but it is not ours, so no unblock
# removes it.
PRESENT = "present"
IN_FORCE = (DONE, PRESENT)
IGNORED = "ignored"  # the `ended_by` of a block whose address is now in the ignore file
# The `ended_by` of a block whose address became one never blocked (a gateway, a name server, a
# local address) after its block.
PROTECTED = "protected"


@dataclass(frozen=True)
class BlockRequest:
    address: IPAddress
    proto: str  # tcp or udp
    port: int
    mode: str
    reason: str
    block_mode: BlockMode


def table_of(action: Action) -> str:
    """The nftables table an nftables action's element went into: the NFT_TABLE of its day,
    recorded since NFT_TABLE can change between runs; a record made before it was recorded
    names none: the default's (nft.DEFAULT_TABLE)."""
    return action.do[0] if action.do else DEFAULT_TABLE


def _not_ours(listing: TableListing, addresses: set[str]) -> str:
    """What keeps a table of an earlier NFT_TABLE from being removed, with `addresses` (the
    store's) taken out of it."""
    others = len(listing.elements - addresses)
    if others:
        return f"{counted(others, 'element')} the store does not know"
    return "sets, chains or rules that are not ours"


def enforced(actions: tuple[Action, ...]) -> bool:
    """Whether a block took effect: one of its blocking actions (nftables, route, hosts.deny)
    is done; for a block that only runs KILL_RUN_CMD, the command. (A block with nothing to do
    is never made: see ResponsePolicy.on_verdict.)"""
    blocking = [a for a in actions if a.kind != COMMAND] or actions
    return any(a.status in IN_FORCE for a in blocking)


def not_ours(action: Action) -> bool:
    """A hosts.deny line in force that was there before the block (recorded `present`; before
    that status existed, `done` without an undo), or a KILL_ROUTE route that was (`present`:
    its undo is kept, for a run after a reboot that finds it gone and adds it)."""
    if action.kind == ROUTE:
        return action.status == PRESENT
    return action.kind == HOSTS_DENY and action.status in IN_FORCE and len(action.undo) != 2


def via(actions: tuple[Action, ...]) -> list[str]:
    """What holds a block in force (`blocked`): the kinds of its actions in force (or whose
    undo failed), a hosts.deny line that is not ours marked so."""
    return [f"{a.kind} (not ours)" if not_ours(a) else a.kind for a in actions
            if a.status in IN_FORCE or a.status.startswith(UNDO_FAILED)]  # fmt: skip


def kept_lines(record: BlockRecord) -> list[str]:
    """The hosts.deny lines and KILL_ROUTE routes an unblock of `record` leaves as they are
    (not ours), one phrase each."""
    return [_what(a) if a.kind == ROUTE else f'hosts.deny line "{a.do[1]}" in {a.do[0]}'
            for a in record.actions
            if not_ours(a) and (a.kind == ROUTE or len(a.do) == 2)]  # fmt: skip


def left(record: BlockRecord) -> list[str]:
    """What an ended block left in force (its actions whose undo failed), one phrase each."""
    return [f"{_what(a)} ({a.status.partition(': ')[2]})"
            for a in record.actions if a.status.startswith(UNDO_FAILED)]  # fmt: skip


def _what(action: Action) -> str:
    if action.kind == HOSTS_DENY and len(action.undo) == 2:
        return f'hosts.deny line "{action.undo[1]}" in {action.undo[0]}'
    if action.kind == ROUTE:
        return f"KILL_ROUTE {' '.join(action.do)}"
    return f"{action.kind} element"


_FEW_ADDRESSES = 256  # an ignored network this small is looked up by its addresses' spellings


def _inside(records: list[BlockRecord], networks: tuple[Network, ...]) -> list[BlockRecord]:
    """The records whose address is in one of `networks`. At a start with 100,000 blocks,
    parsing every address would cost over half a second; the ignore file's entries are mostly
    single hosts, which a set of their spellings finds at once."""
    few = {str(a) for n in networks if n.num_addresses <= _FEW_ADDRESSES for a in n}
    many = IgnoreList.build(n for n in networks if n.num_addresses > _FEW_ADDRESSES)
    return [r for r in records if r.address in few
            or (many.networks and ipaddress.ip_address(r.address) in many)]  # fmt: skip


def lasting(actions: tuple[Action, ...]) -> bool:
    """Whether the block has something in force across a restart. One that only ran
    KILL_RUN_CMD is forgotten at restart, as PortSentry forgot every block at its start, so the
    next scan from the source runs the command again."""
    return any(a.kind != COMMAND for a in actions)


def lasting_steps(steps: list[str]) -> bool:
    """Whether a plan of `steps` (Actions.steps) makes a block that enforces (see `lasting`),
    not one that only runs KILL_RUN_CMD."""
    return any(step != COMMAND for step in steps)


def uses_nft(settings: Settings) -> bool:
    """Whether new blocks go into our nftables sets."""
    if BlockMode.BLOCK not in (settings.block_tcp, settings.block_udp):
        return False
    use = settings.block_nftables
    return use is NftUse.ALWAYS or (use is NftUse.AUTO and settings.kill_route is None)


def nft_warning(settings: Settings) -> str | None:
    """For check-config: the built-in blocker is on but libnftables cannot be loaded here."""
    if not uses_nft(settings):
        return None
    try:
        load_library()
    except NftError as error:
        return (f"blocking uses the built-in nftables blocker (BLOCK_NFTABLES), but {error}; "
                "every block's nftables step would fail")  # fmt: skip
    return None


class Unfilled(NamedTuple):
    """The restore at start could not fill our nftables sets: why, and what is not in force."""

    why: str
    blocks: int  # active blocks whose nftables element is missing
    bare: int  # of those, the blocks with nothing else in force (a route, a hosts.deny line)


def _unfilled(why: str, kept: list[BlockRecord]) -> Unfilled:
    missing = [r for r in kept if any(a.kind == NFT for a in r.actions)]
    bare = sum(not any(a.kind not in (NFT, COMMAND) and a.status in IN_FORCE for a in r.actions)
               for r in missing)  # fmt: skip
    return Unfilled(why, len(missing), bare)


def _commands_left(statuses: Counter[str]) -> str:
    """`2 blocks were recorded but ... (not run); 1 was interrupted while it ran (...)`: the
    KILL_RUN_CMDs a stop left, each kind said only when there is one."""
    said = []
    if statuses[NOT_RUN]:
        said.append(f"{counted(statuses[NOT_RUN], 'block was', 'blocks were')} recorded but "
                    "the daemon stopped before " + ("its" if statuses[NOT_RUN] == 1 else
                                                     "their") + " turn (not run)")  # fmt: skip
    if statuses[INTERRUPTED]:
        said.append(f"{counted(statuses[INTERRUPTED], 'block was', 'blocks were')} interrupted "
                    "while its command ran (it may have run, and cannot be undone)")  # fmt: skip
    return "; ".join(said)


class Reapplied(NamedTuple):
    """What `reapply` did with each active block that has a KILL_ROUTE (addresses)."""

    done: list[str]
    failed: list[tuple[str, str]]  # address, why
    no_undo: list[str]  # not run again: it may still be in force
    unconfigured: list[str]  # not run again: the configuration no longer has it


def _present(action: Action) -> Action:
    """A hosts.deny line that was there before the block: not ours, never removed."""
    log.info("hosts.deny: %s has the line already (not ours: an unblock leaves it)",
             action.do[0])  # fmt: skip
    return action._replace(undo=(), status=PRESENT)


def _undo_due(action: Action) -> bool:
    """Whether an unblock undoes the action: done, or maybe done (planned, or a command
    killed with us), or an undo that failed before; not one that failed (nothing added)."""
    return action.status in (DONE, PLANNED, RUNNING) or action.status.startswith(UNDO_FAILED)


def _reapplied(action: Action) -> bool:
    """Whether `reapply` runs the action again: a KILL_ROUTE that took effect (ours, or a
    blocking route not ours that was there: if a flush took it, ours takes its place), also one
    whose run at an earlier reapply failed. Not one that failed at its block (an IPv4-only
    KILL_ROUTE for an IPv6 block would fail again at every reapply), nor one still planned (its
    block waits for the action worker, which runs it)."""
    again = action.status in IN_FORCE or action.status.startswith(REAPPLY_FAILED)
    return action.kind == ROUTE and bool(action.do) and again


def _seconds_left(until: float | None, now: float) -> int | None:
    """An element's kernel timeout for a block ending at `until` (None: never): at least a
    second, and at most limits.BLOCK_SECONDS_MAX (the kernel's range), also when the clock was
    set back after a block of that length."""
    if until is None:
        return None
    return min(limits.BLOCK_SECONDS_MAX, max(1, round(until - now)))


class Actions:
    def __init__(self, settings: Settings, store: Store,
                 stopping: threading.Event | None = None) -> None:  # fmt: skip
        """`stopping`: set when the daemon stops; from then on no KILL_RUN_CMD is started (see
        _carry_out)."""
        self.settings = settings
        self.store = store
        self._stopping = stopping
        self.not_run = 0  # KILL_RUN_CMDs not started because the daemon stops
        self.boot = boot_id()
        self._nft: NftBlocker | None = None
        self._context: Nft | None = None  # kept when ensure() fails, for the next try
        self._resolver: Resolver | None = None
        self.table_remade = False  # the last nft_add found our table gone and made it again
        self.put_back_due = False  # so did a block's own nftables step: the others are gone
        self.unfilled: Unfilled | None = None  # the restore could not fill the sets
        self._routes_gone = 0  # KILL_ROUTE undos with nothing to remove, not yet said

    def nft(self) -> NftBlocker:
        if self._nft is None:
            blocker = self._blocker()
            blocker.ensure()  # only a table and sets that are ours and right are used
            self._nft = blocker
        return self._nft

    def _blocker(self) -> NftBlocker:
        return NftBlocker(self._nft_context(), self.settings.block_forward, self.settings.nft_table)

    def reconfigure(self, settings: Settings) -> bool:
        """Take new settings (SIGHUP). Returns whether the nftables blocker changed shape
        (BLOCK_FORWARD): if it was in use, it is rebuilt at once, its table not yet changed
        (`nft()` forgets it and makes the table right; so nft_damage goes on watching the new
        shape; the action worker reshapes the table right after)."""
        reshaped = settings.block_forward != self.settings.block_forward
        self.settings = settings
        if reshaped and self._nft is not None:
            self._nft = self._blocker()
        return reshaped

    def reshape(self) -> NftBlocker:
        """Make our table match the settings (after reconfigure said it changed shape)."""
        self._nft = None
        return self.nft()

    def _nft_context(self) -> Nft:
        if self._context is None:
            self._context = Nft()
        return self._context

    def drop_table(self) -> bool:
        """Remove our nftables table; False if there was none (it is not made to be removed).
        The next block makes it again."""
        self._nft = None
        return self._blocker().drop_table()

    def duration_for(self, address: str, replacing: int | None = None) -> float | None:
        """Seconds the next block of `address` lasts (None: forever); `replacing`: the id of
        the block it supersedes, no offence of its own (Store.offences)."""
        s = self.settings
        if not s.block_duration:
            return None
        if s.block_escalation == 1:
            return self.duration(1)
        return self.duration(self.store.offences(address, replacing) + 1)

    def duration(self, offence: int) -> float | None:
        """Seconds this block lasts (None: forever), longer for repeat offenders."""
        s = self.settings
        if not s.block_duration:
            return None
        try:
            seconds = s.block_duration * s.block_escalation ** (offence - 1)
        except OverflowError:  # a factor of 1000 overflows a float by the 104th offence
            seconds = math.inf
        return min(seconds, s.block_duration_max or limits.BLOCK_SECONDS_MAX)

    def until_for(self, address: str, now: float, replacing: int | None = None) -> float | None:
        """When a block of `address` made `now` ends (None: never); `replacing`: as in
        duration_for."""
        seconds = self.duration_for(address, replacing)
        return None if seconds is None else now + seconds

    def record(self, request: BlockRequest, now: float, until: float | None,
               nft_done: Action | None = None,
               replacing: int | None = None) -> BlockRecord | None:  # fmt: skip
        """Record the block, every action planned, before anything else of it is done. The
        daemon's loop does this right after it adds the nftables element (within a fraction
        of a millisecond; an insert after an idle spell takes ~0.3 ms, as long again as the
        element, so it does not come first): a kill in between leaves an element the store
        does not know, which the next start removes (it refills the sets from the store), and
        so does `unblock NET` without a daemon (sweep_nft). That element's outcome
        (`nft_done`) is recorded in the same insert: a block that ends before the worker's
        turn (an unblock, a kill then `unblock` without a daemon) was in force all the same,
        and gets its HISTORY_FILE line. No file is read. None if the address is already
        blocked. `replacing`: the id of the address's command-only block this one supersedes
        (Store.add_block)."""
        address = str(request.address)
        plan = [nft_done if nft_done is not None and a.kind == NFT else a
                for a in self._plan(request)]  # fmt: skip
        return self.store.add_block(
            address, request.proto, request.port, request.mode, request.reason, address, now,
            until, tuple(plan), self.boot, replacing)  # fmt: skip

    def carry_out(self, record: BlockRecord, nft_done: Action | None = None) -> BlockRecord | None:
        """Do the recorded block's planned actions (but the nftables element the loop added:
        `nft_done`, its outcome). Returns the record, ended at once if nothing took effect
        (see `enforced`); None when the block ended, or its unblock began, before its turn came
        (an expiry or an unblock, which the worker takes before any block, or an unblock the
        loop began: nothing of it is done, and its element is removed; it gets its
        HISTORY_FILE line if that element had been added, as it was in force). A block whose
        turn has come is carried out whole (an unblock asked meanwhile undoes it after)."""
        ended_by = self.store.ending(record.id)
        if ended_by is not None:
            log.info("block address=%s not carried out: it ended (by=%s) before its turn",
                     record.address, ended_by)  # fmt: skip
            if nft_done is not None and nft_done.status == DONE:
                self._undo(nft_done, record.address)  # the unblock may have come before it
            self.write_history([record])  # a line only if in force (the element was added)
            return None
        lookup = self._start_lookup(ipaddress.ip_address(record.address))
        # What an earlier block of this address left in force (a hosts.deny line an unblock
        # could not remove) is undone first: else this block would take that line for the
        # administrator's, and the leftover's retry would later remove it under this block.
        for cleared in self.retry_left(ipaddress.ip_network(record.address))[0]:
            log.info("unblocked %s: what its earlier block left in force is undone now",
                     cleared.address)  # fmt: skip
        actions = [self._checked(a, nft_done) for a in record.actions]
        if tuple(actions) != record.actions:  # durable before any file or route changes
            self.store.set_actions(record.id, tuple(actions))
        for index, action in enumerate(actions):
            if action.status == PLANNED:
                self._carry_out(record, actions, index)
        hostname = self._hostname(lookup, record.address, record.since)
        record = record._replace(actions=tuple(actions), hostname=hostname)
        if hostname != record.address:
            self.store.set_hostname(record.id, hostname)
        if not enforced(record.actions):
            self.store.end_block(record.id, time.time(), FAILED)
            self.store.set_written([record.id])  # never in force: no HISTORY_FILE line
            return record
        self.write_history([record])
        self.write_files(record)
        return record

    @staticmethod
    def _checked(action: Action, nft_done: Action | None) -> Action:
        """A planned action as it stands before the worker does anything: the nftables
        element the loop added (or failed to), a hosts.deny line that is there already (not
        ours: never removed)."""
        if action.kind == NFT and action.status == PLANNED and nft_done is not None:
            return nft_done
        if action.kind == HOSTS_DENY and action.status == PLANNED:
            path, line = action.do
            try:
                if fileedit.has_line(Path(path), line):
                    return _present(action)
            except OSError as error:
                log.error("hosts.deny: %s", one_line(str(error)))
                return action._replace(undo=(), status=f"{FAILED}: {one_line(str(error))}")
        return action

    def abandon(self, record: BlockRecord) -> None:
        """A recorded block that will not be made (the action queue is full): its nftables
        element, which the loop may have added, is removed, and it ends as failed (no
        offence)."""
        nft_only = tuple(a for a in record.actions if a.kind == NFT)
        self.unblock(record._replace(actions=nft_only), FAILED)
        self.store.set_written([record.id])  # never in force: no HISTORY_FILE line

    def steps(self, block_mode: BlockMode) -> list[str]:
        """What a block in `block_mode` does, in PortSentry 1.2's order (DisposeTCP/DisposeUDP):
        hosts.deny, then KILL_ROUTE, then KILL_RUN_CMD; with KILL_RUN_CMD_FIRST the command,
        then hosts.deny, then KILL_ROUTE. Our nftables blocker, the fast one, comes before
        hosts.deny. Nothing at all when the settings give nothing to do (see
        config.settings.nothing_to_do)."""
        s = self.settings
        if block_mode is BlockMode.RUN_CMD_ONLY:
            return [COMMAND] if s.kill_run_cmd else []
        steps = [NFT] if uses_nft(s) else []
        if s.kill_hosts_deny:
            steps.append(HOSTS_DENY)
        if s.kill_route:
            steps.append(ROUTE)
        if not s.kill_run_cmd:
            return steps
        return [COMMAND, *steps] if s.kill_run_cmd_first else [*steps, COMMAND]

    def nft_first(self, request: BlockRequest) -> bool:
        """Whether the nftables step comes first for this request (it does unless the
        command must run first)."""
        return self.steps(request.block_mode)[:1] == [NFT]

    def _plan(self, request: BlockRequest) -> list[Action]:
        """Every action of the block with how to do and undo it, none done yet (see
        `_checked`). Reads no file: the loop calls it."""
        s = self.settings
        target, port, mode = str(request.address), request.port, request.mode
        plan = []
        for step in self.steps(request.block_mode):
            try:
                if step == NFT:
                    plan.append(self._nft_action(PLANNED))
                elif step == HOSTS_DENY:
                    where = (str(s.hosts_deny_file), self.hosts_deny_line(request))
                    plan.append(Action(HOSTS_DENY, where, PLANNED, where))
                else:
                    command = s.kill_route if step == ROUTE else s.kill_run_cmd
                    argv = commands.expand(command.argv if command else (), target, port, mode)
                    undo = route_undo(argv) if step == ROUTE else None
                    plan.append(Action(step, tuple(undo or ()), PLANNED, tuple(argv)))
            except ValueError as error:
                log.error("%s for %s failed: %s", step, target, one_line(str(error)))
                plan.append(Action(step, (), f"{FAILED}: {one_line(str(error))}"))
        return plan

    def hosts_deny_line(self, request: BlockRequest) -> str:
        """KILL_HOSTS_DENY's text as it is (PortSentry wrote it so), the macros filled in; an
        IPv6 $TARGET$ in brackets, the form tcpd matches (brackets written around $TARGET$
        are not doubled: see config.kill.hosts_deny_problems)."""
        template = (self.settings.kill_hosts_deny or "").replace(BRACKETED_TARGET, "$TARGET$")
        address = portsentry_files.wrappers_address(request.address)
        return commands.fill(template, address, request.port, request.mode)

    def _carry_out(self, record: BlockRecord, actions: list[Action], index: int) -> None:
        """Do actions[index], recording it running first if it is an external command (it may
        be killed with us) and its outcome after."""
        action = actions[index]
        if action.kind == COMMAND and self._stopping is not None and self._stopping.is_set():
            # The daemon stops: the blocks queued behind a slow command must not hold it up
            # (a start does not run them either: see _resume).
            actions[index] = action._replace(status=NOT_RUN)
            self.store.set_actions(record.id, tuple(actions))
            self.not_run += 1
            return
        if action.kind in (ROUTE, COMMAND):
            actions[index] = action._replace(status=RUNNING)
            self.store.set_actions(record.id, tuple(actions))
        if action.kind == NFT:
            actions[index] = self.nft_add(ipaddress.ip_address(record.address), record.until)
            # `nft flush ruleset`: the other blocks must come back too (the worker does it).
            self.put_back_due |= self.table_remade
        elif action.kind == HOSTS_DENY:
            actions[index] = self._add_hosts_deny_line(action)
        else:
            what = "KILL_ROUTE" if action.kind == ROUTE else "KILL_RUN_CMD"
            actions[index] = self._run(action, what, record.address)
        self.store.set_actions(record.id, tuple(actions))

    def _add_hosts_deny_line(self, action: Action) -> Action:
        path, line = action.do
        try:
            added = fileedit.add_line(Path(path), line)
        except OSError as error:
            log.error("hosts.deny: %s", one_line(str(error)))
            return action._replace(status=f"{FAILED}: {one_line(str(error))}")
        return action._replace(status=DONE) if added else _present(action)

    def _run(self, action: Action, what: str, address: str, quiet_undo: bool = False) -> Action:
        """Run the action's command for `address` (after its undo when `quiet_undo`: it may or
        may not be in force, so only one copy is left; never that of a route not ours). A
        failure is recorded with why. A KILL_ROUTE that finds a route there already (`File
        exists`): see _route_there."""
        timeout = self.settings.kill_cmd_timeout
        if quiet_undo and action.undo and action.status != PRESENT:
            commands.run(list(action.undo), timeout, f"{what} undo", quiet=True)
        there = commands.THERE_ALREADY if action.kind == ROUTE else ()
        failure = commands.run(list(action.do), timeout, what, harmless=there,
                               harmless_as=commands.EXISTS)  # fmt: skip
        if failure == commands.EXISTS:
            return self._route_there(action, what, address)
        return action._replace(status=DONE if failure is None else f"{FAILED}: {failure}")

    @staticmethod
    def _route_there(action: Action, what: str, address: str) -> Action:
        """A KILL_ROUTE that said `File exists`, which any route to the address makes it say:
        in force, but not ours (recorded `present`, so no unblock removes it), only if the
        routes to exactly that address all block it (blackhole, unreachable, prohibit; `route
        add -host A reject` makes an unreachable one); else failed, naming the route there (an
        ordinary host route, a VPN peer's: the address is not blocked)."""
        try:
            routes = local.host_routes(ipaddress.ip_address(address))
        except OSError as error:
            why = f"said File exists, and the routes could not be read: {error.strerror or error}"
        else:
            other = [r for r in routes if not r.blocking]
            if routes and not other:
                log.info("%s: a route blocking %s is there already (%s; not ours: an unblock "
                         "leaves it): %s", what, address, routes[0],
                         one_line(" ".join(action.do)))  # fmt: skip
                return action._replace(status=PRESENT)
            if other:
                why = (f"a route to {address} is there already ({other[0]}): KILL_ROUTE "
                       "could not add its own")  # fmt: skip
            else:
                why = f"said File exists, but no route to {address} is there"
        log.error("%s for %s failed: %s", what, address, why)
        return action._replace(status=f"{FAILED}: {why}")

    def sweep_nft(self, network: Network) -> int:
        """Remove every element inside `network` from our sets, also those the store does not
        know (see `record`); only while no daemon runs. Returns how many were there."""
        try:
            return (self._nft or self._blocker()).remove_inside(network)
        except NftError as error:
            log.error("nftables: %s", one_line(str(error)))
            return 0

    def nft_add(self, address: IPAddress, until: float | None) -> Action:
        """Add the element, its kernel timeout ending at `until` as the store's block does."""
        try:
            self.table_remade = self.nft().add(address, _seconds_left(until, time.time()))
        except NftError as error:
            log.error("nftables block of %s failed: %s", address, one_line(str(error)))
            return self._nft_action(f"{FAILED}: {one_line(str(error))}")
        return self._nft_action(DONE)

    def _nft_action(self, status: str) -> Action:
        """An nftables action, with the table its element goes in (see `table_of`)."""
        return Action(NFT, (), status, (self.settings.nft_table,))

    @staticmethod
    def _hostname(lookup: Lookup | None, address: str, since: float) -> str:
        """The name `lookup` finds by RESOLVE_HOST_TIMEOUT_S after `since` (when the block or
        note was made), made safe for a line; else the address."""
        name = Resolver.name(lookup, since + limits.RESOLVE_HOST_TIMEOUT_S - time.time())
        return address if name is None else safe_hostname(name)

    def _start_lookup(self, address: IPAddress) -> Lookup | None:
        if not self.settings.resolve_host:
            return None
        if self._resolver is None:
            self._resolver = Resolver()
        return self._resolver.start(address)

    def unblock(self, record: BlockRecord, by: str) -> BlockRecord | None:
        """Undo every action of the block that was or may have been done, then end it. Returns
        the ended record, whose actions still in force (their undo failed) say UNDO_FAILED
        (see `left`), or None if it had already ended."""
        undone = self.unblock_many([record], by)
        self.write_files(None)
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
        self.store.start_unblocking([r.id for r in records], by)
        nft_error = self._remove_elements(records)
        removed = self._remove_hosts_deny_lines(records)
        undone: list[BlockRecord] = []
        chunk: list[BlockRecord] = []
        commit_at = time.monotonic() + limits.UNBLOCK_COMMIT_S
        for record in records:
            chunk.append(record._replace(actions=tuple(
                self._undone_batched(a, record.address, nft_error, removed)
                for a in record.actions)))  # fmt: skip
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
        (see carry_out) and a start after a kill finishes the unblock, and their nftables
        elements are removed. The worker's unblock_many then does the rest, and records it."""
        self.store.start_unblocking([r.id for r in records], by)
        error = self._remove_elements(records)
        if error is not None:
            log.warning("nftables: removing the elements of %d unblocked blocks failed: %s; "
                        "the action worker tries again", len(records), error)  # fmt: skip

    def _end_undone(self, undone: list[BlockRecord], by: str) -> list[BlockRecord]:
        """End the blocks (their actions as undone) in one transaction; returns those that had
        not ended already."""
        now_ended = self.store.end_blocks([(r.id, r.actions) for r in undone], time.time(), by)
        return [r for r in undone if r.id in now_ended]

    def finish_unblocks(self) -> list[BlockRecord]:
        """At start: the unblocks a kill interrupted are done again to the end (an undo of what
        is gone already is harmless), each by who asked."""
        by_whom: dict[str, list[BlockRecord]] = {}
        for record, by in self.store.unblocking():
            by_whom.setdefault(by, []).append(record)
        finished = [u for by, records in by_whom.items() for u in self.unblock_many(records, by)]
        if finished:
            log.warning("finished %d unblocks that a stop interrupted", len(finished))
        return finished

    def _remove_elements(self, records: list[BlockRecord]) -> str | None:
        """Our nftables elements of `records` removed in one batch. Returns why it failed."""
        elements = [(table, ipaddress.ip_address(r.address)) for r in records
                    for a in r.actions if a.kind == NFT and _undo_due(a)
                    for table in self._tables_of(a)]  # fmt: skip
        try:
            self._remove_from(elements)
        except (OSError, NftError) as error:
            return one_line(str(error))
        return None

    def _tables_of(self, action: Action) -> list[str]:
        """Where an undo removes an nftables action's element: the table it was added to (see
        `table_of`) and, if NFT_TABLE has changed since, the one now in use, which the start
        filled (_leave_old_tables)."""
        return sorted({table_of(action), self.settings.nft_table})

    def _remove_from(self, elements: list[tuple[str, IPAddress]]) -> None:
        """Remove each (table, address): one batch per table. A table of an earlier NFT_TABLE
        is left alone when it is not there, or when another running portwarden holds it (it
        is that daemon's now); one that is not there (yet) is not made to remove nothing."""
        by_table: dict[str, list[IPAddress]] = {}
        for table, address in elements:
            by_table.setdefault(table, []).append(address)
        for table, addresses in by_table.items():
            if table == self.settings.nft_table:
                (self._nft or self._blocker()).remove(addresses)
                continue
            with self._other_table(table) as blocker:
                if blocker is not None and blocker.exists():
                    blocker.remove(addresses)

    @contextlib.contextmanager
    def _other_table(self, table: str) -> Iterator[NftBlocker | None]:
        """A table that an earlier NFT_TABLE named, held (nft.claim_table) while it is used;
        None when another running portwarden holds it."""
        try:
            claim = claim_table(table, self.settings.source)
        except ConfigError:
            log.warning("nftables: table inet %s (an earlier NFT_TABLE) is held by another "
                        "running portwarden: left as it is", table)  # fmt: skip
            yield None
            return
        with contextlib.closing(claim):
            yield NftBlocker(self._nft_context(), False, table)

    def _leave_old_tables(self, active: list[BlockRecord]) -> list[BlockRecord]:
        """At start, once the sets of NFT_TABLE hold every active block: the blocks whose
        element went into the table of an earlier NFT_TABLE are taken out of it, and that
        table is removed if it holds nothing else (else it is left, and the log says how to
        remove it); their actions then name the table now in use. Returns `active` so
        changed. A table that another running portwarden holds is left as it is; one that
        cannot be changed keeps its blocks' actions as they were (the next start tries again,
        and an unblock removes their elements from both tables)."""
        now = self.settings.nft_table
        by_table: dict[str, set[str]] = {}
        for record in active:
            for action in record.actions:
                if action.kind == NFT and table_of(action) != now:
                    by_table.setdefault(table_of(action), set()).add(record.address)
        left = {
            table for table, addresses in by_table.items() if self._leave_table(table, addresses)
        }
        if not left:
            return active
        moved: dict[int, tuple[Action, ...]] = {}
        for record in active:
            actions = tuple(a._replace(do=(now,)) if a.kind == NFT and table_of(a) in left else a
                            for a in record.actions)  # fmt: skip
            if actions != record.actions:
                moved[record.id] = actions
        self.store.set_actions_many(list(moved.items()))
        return [r._replace(actions=moved[r.id]) if r.id in moved else r for r in active]

    def _leave_table(self, old: str, addresses: set[str]) -> bool:
        """_leave_old_tables for one table; whether its blocks are left (False: it could not
        be changed)."""
        now = self.settings.nft_table
        moved = f"NFT_TABLE was {old}, now {now}: {counted(len(addresses), 'active block')}"
        with self._other_table(old) as blocker:
            if blocker is None:
                return True  # another daemon's now: nothing of it is ours to change
            try:
                if not blocker.exists():  # a reboot or a flush took it
                    return True
                listing = blocker.listing()
                if listing.ours_alone and listing.elements <= addresses:
                    blocker.drop_table()
                    log.warning("nftables: %s moved to table inet %s; table inet %s removed",
                                moved, now, old)  # fmt: skip
                    return True
                blocker.remove([ipaddress.ip_address(a) for a in listing.elements & addresses])
            except NftError as error:
                log.error("nftables: %s: they are in table inet %s, but could not be taken out "
                          "of table inet %s (%s): it still drops them; tried again at the next "
                          "start", moved, now, old, one_line(str(error)))  # fmt: skip
                return False
        log.warning("nftables: %s moved to table inet %s; table inet %s is left as it is: it "
                    "holds %s (`nft delete table inet %s` removes it)", moved, now, old,
                    _not_ours(listing, addresses), old)  # fmt: skip
        return True

    def drop_old_tables(self) -> list[str]:
        """For `unblock --all`, once every block has ended: each table of an earlier NFT_TABLE
        that the store's blocks (ended ones too) name is removed, as at start
        (_leave_old_tables), if it is there and ours alone, holds no element, and no other
        running portwarden holds it; else it is left, and the log says why. Returns the
        tables removed."""
        recorded = {table_of(Action(NFT, do=do)) for do in self.store.dos_of(NFT)}
        removed = []
        for old in sorted(recorded - {self.settings.nft_table}):
            with self._other_table(old) as blocker:
                if blocker is None or not blocker.exists():
                    continue
                listing = blocker.listing()
                if listing.ours_alone and not listing.elements:
                    blocker.drop_table()
                    removed.append(old)
                    continue
            log.warning("nftables: table inet %s (an earlier NFT_TABLE) is left as it is: it "
                        "holds %s (`nft delete table inet %s` removes it)", old,
                        _not_ours(listing, set()), old)  # fmt: skip
        return removed

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

    def _undone_batched(self, action: Action, address: str, nft_error: str | None,
                        deny_failed: dict[tuple[str, str], str]) -> Action:  # fmt: skip
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
            error = self._undo(action, address)
        except (OSError, NftError) as failure:
            error = one_line(str(failure))
        return self._outcome(action, address, error)

    @staticmethod
    def _outcome(action: Action, address: str, error: str | None) -> Action:
        """The action after an undo that failed with `error` (None: it worked)."""
        if error is None:
            return action._replace(status=DONE) if action.status.startswith(UNDO_FAILED) else action
        log.error("undoing %s for %s failed: %s; run `portwarden unblock %s` again once it "
                  "is fixed", action.kind, address, error, address)  # fmt: skip
        return action._replace(status=f"{UNDO_FAILED}: {error}")

    def _undo(self, action: Action, address: str) -> str | None:
        """Undo one action; returns why it failed, if it did. One that may never have been done
        (planned, or a command killed with us) is undone too: an undo of something not there
        is harmless, and its failure is expected (logged at debug level)."""
        unsure = action.status in (PLANNED, RUNNING)
        if not _undo_due(action):
            return None  # failed: nothing was added
        if action.kind == NFT:
            element = ipaddress.ip_address(address)
            self._remove_from([(table, element) for table in self._tables_of(action)])
        elif action.kind == HOSTS_DENY and len(action.undo) == 2:
            fileedit.remove_line(Path(action.undo[0]), action.undo[1])
        elif action.kind == ROUTE and action.undo:
            failure = commands.run(list(action.undo), self.settings.kill_cmd_timeout,
                                   "KILL_ROUTE undo", quiet=unsure,
                                   harmless=commands.NOT_THERE)  # fmt: skip
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
        rebooted = self.store.left_in_other_boots(self.boot)
        for record in self.store.leftovers():
            if network is not None and ipaddress.ip_address(record.address) not in network:
                continue
            actions = tuple(self._retried(a, record.address, record.id in rebooted, by_hand)
                            for a in record.actions)  # fmt: skip
            self.store.set_left(record.id, actions)
            record = record._replace(actions=actions)
            (still if left(record) else cleared).append(record)
        self._say_routes_gone()
        return cleared, still

    def _say_routes_gone(self) -> None:
        """One line for the KILL_ROUTE undos of a batch that found nothing to remove (routes
        removed by hand, or by a reboot; every one of them when a start finishes thousands of
        interrupted unblocks), instead of one each."""
        if self._routes_gone:
            log.info("KILL_ROUTE undo: nothing to remove for %d blocks (gone already: removed "
                     "by hand, or by a reboot)", self._routes_gone)  # fmt: skip
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
        inside = [r for r in self.store.active()
                  if network is None or ipaddress.ip_address(r.address) in network]  # fmt: skip
        return self._unblock_each(inside, by)

    def unblock_ignored(self, active: list[BlockRecord] | None = None) -> list[BlockRecord]:
        """End the active blocks inside IGNORE_FILE's networks (at start and at each reload):
        the ignore list is never blocked, also when an address is added to it after its
        block (else the administrator who adds a locked-out host stays locked out). `active`:
        the active blocks, when the caller has read them already."""
        networks = self.settings.ignored_networks
        if not networks:
            return []
        records = self.store.active() if active is None else active
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
        records = self.store.active() if active is None else active
        due = [r for r in records if r.address in protected]
        for record in due:
            log.warning("protected address=%s why=%s: it became protected after its block, "
                        "which ends", record.address, protected[record.address])  # fmt: skip
        return self._unblock_each(due, PROTECTED)

    def _unblock_each(self, records: list[BlockRecord], by: str) -> list[BlockRecord]:
        undone = self.unblock_many(records, by)
        if undone:  # once, not once per block: `unblock --all` of many blocks stays linear
            self.write_files(None)
        return undone

    def expire(self, now: float) -> list[BlockRecord]:
        """End the blocks whose time is up (BLOCKED_FILE not written)."""
        return self.unblock_many(self.store.due(now), "expired")

    def restore(self, protected: Mapping[str, str] | None = None) -> int:
        """At start: end overdue blocks, those inside IGNORE_FILE or of `protected` addresses
        (see unblock_protected), and those that only ran a command (see `lasting`); make
        the firewall, routes and files match the store. nftables sets are refilled always (one
        idempotent transaction), hosts.deny lines put back (one write), KILL_ROUTE run again
        only for blocks made before this boot (routes and rules do not survive one; running
        them again without one would add them twice), and what a kill interrupted finished.
        What an unblock left in force (an undo that failed) is tried again first."""
        with collector_paused():
            return self._restore(protected or {})

    def _restore(self, protected: Mapping[str, str]) -> int:
        now = time.time()
        self.finish_unblocks()  # before anything is applied again: see unblock_many
        for record in self.retry_left(None)[1]:
            log.error("unblocked %s, but left in force: %s", record.address,
                      "; ".join(left(record)))  # fmt: skip
        self.expire(now)
        everything = self.store.active()
        # Reported by ResponsePolicy.start, as the others that end here.
        if self.unblock_ignored(everything):
            everything = self.store.active()
        if self.unblock_protected(protected, everything):
            everything = self.store.active()
        active = []
        for record in everything:
            if lasting(record.actions):
                active.append(record)
            else:
                self.store.end_block(record.id, now, "restart")
        active = self._into_nft(active)  # their elements come in the batch below
        self.unfilled = None
        unfilled = None
        if uses_nft(self.settings) or any(a.kind == NFT for r in active for a in r.actions):
            try:
                self.nft().replace_all(self._nft_blocks(active, now))
            except NftError as error:  # the rest is restored all the same: see policy.start
                unfilled = one_line(str(error))
            else:  # only then: else the old table may be all that blocks them
                active = self._leave_old_tables(active)
        put_back = self._put_back_hosts_deny(active)
        rebooted = self.store.made_in_other_boots(self.boot)
        kept: list[BlockRecord] = []
        commands_left: Counter[str] = Counter()
        for record in active:
            routed = any(a.kind == ROUTE for a in record.actions)
            if all(a.status in IN_FORCE for a in record.actions) and not (
                routed and record.id in rebooted
            ):  # the usual case, and nothing to do: fast for 100,000 blocks
                kept.append(record)
                continue
            actions = tuple(self._resume(a, record, record.id in rebooted, put_back)
                            for a in record.actions)  # fmt: skip
            if actions != record.actions:
                self.store.set_actions(record.id, actions)
            if record.id in rebooted and routed:
                self.store.set_boot(record.id, self.boot)  # at once: a kill now runs it again
            commands_left.update(a.status for a, was in zip(actions, record.actions, strict=True)
                                 if a.kind == COMMAND and a != was)  # fmt: skip
            if enforced(actions):
                kept.append(record._replace(actions=actions))
            else:
                self.store.end_block(record.id, now, FAILED)
                shown = ",".join(f"{a.kind}:{a.status}" for a in actions)
                log.error("block of %s ended: none of its actions is in force (%s)",
                          record.address, shown)  # fmt: skip
        if rebooted:
            self.store.set_boot_all(self.boot)  # the blocks without a route: one statement
        if commands_left:
            log.warning("KILL_RUN_CMD not run again at start: %s", _commands_left(commands_left))
        self.catch_up_history()
        self.write_files(None, kept)
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
                    log.warning("hosts.deny: %s of active blocks put back in %s (they were "
                                "missing: removed by hand or by another program; `portwarden "
                                "unblock ADDR` ends a block)", counted(removed, "line"),
                                path)  # fmt: skip
            status.update(((path, line), outcome) for line in lines)
        return status

    def _resume(self, action: Action, record: BlockRecord, rebooted: bool,
                put_back: dict[tuple[str, str], str]) -> Action:  # fmt: skip
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
        if not action.do and self.settings.kill_route:  # recorded before `do` was
            argv = commands.expand(self.settings.kill_route.argv, record.address, record.port,
                                   record.mode)  # fmt: skip
            action = action._replace(do=tuple(argv))
        if not action.do:
            return action
        if action.status in IN_FORCE and not self._configured(action, record):
            log.warning("KILL_ROUTE for %s not run again after the reboot: the configuration "
                        "no longer has it (%s)", record.address, " ".join(action.do))  # fmt: skip
            return action._replace(status=f"{FAILED}: {NOT_CONFIGURED}")
        return self._run(
            action, "KILL_ROUTE (restore)", record.address, quiet_undo=action.status == RUNNING
        )

    def _configured(self, action: Action, record: BlockRecord) -> bool:
        """Whether the KILL_ROUTE of the configuration now in force is the route `action` ran
        (after the administrator switched blockers, the old one must not come back)."""
        route = self.settings.kill_route
        if route is None:
            return False
        return tuple(commands.expand(route.argv, record.address, record.port,
                                     record.mode)) == action.do  # fmt: skip

    def _into_nft(self, active: list[BlockRecord]) -> list[BlockRecord]:
        """`active` with an nftables action for each block that has none, recorded, when the
        built-in blocker is on: blocks made before it was turned on (KILL_ROUTE only, or an
        IPv6 block whose route failed, leaving a hosts.deny line) would else never be in our
        sets. The caller adds their elements."""
        if not uses_nft(self.settings):
            return active
        taken = {r.id: r._replace(actions=(self._nft_action(DONE), *r.actions))
                 for r in active if not any(a.kind == NFT for a in r.actions)}  # fmt: skip
        if taken:
            self.store.set_actions_many([(r.id, r.actions) for r in taken.values()])
            log.warning("nftables: %s made before the built-in blocker was on %s now "
                        "enforced by it too", counted(len(taken), "block"),
                        are(len(taken)))  # fmt: skip
        return [taken.get(r.id, r) for r in active]

    def take_into_nft(self) -> int:
        """After a reload that turned the built-in blocker on: the active blocks without an
        nftables action get one (see _into_nft). Returns how many; the caller puts them in
        the sets (put_back_nft)."""
        active = self.store.active()
        return sum(a is not b for a, b in zip(self._into_nft(active), active, strict=True))

    def reapply_routes(self) -> Reapplied:
        """Run KILL_ROUTE again for every active block, each after its undo (so that nothing
        is in force twice): when the routes or firewall rules were flushed by hand. Not run
        again: a KILL_ROUTE with no known undo (it may still be in force), and one that the
        configuration no longer has (see _configured)."""
        outcome = Reapplied([], [], [], [])
        for record in self.store.active():
            routes = [a for a in record.actions if _reapplied(a)]
            if not routes:
                continue
            if not all(self._configured(a, record) for a in routes):
                outcome.unconfigured.append(record.address)
                continue
            if not all(a.undo for a in routes):
                outcome.no_undo.append(record.address)
                continue
            actions = tuple(self._run_again(a, record.address) if _reapplied(a) else a
                            for a in record.actions)  # fmt: skip
            self.store.set_actions(record.id, actions)
            self.store.set_boot(record.id, self.boot)
            failed = [a.status.removeprefix(REAPPLY_FAILED) for a in actions
                      if a.status.startswith(REAPPLY_FAILED)]  # fmt: skip
            if failed:
                outcome.failed.append((record.address, "; ".join(failed)))
            else:
                outcome.done.append(record.address)
        return outcome

    def _run_again(self, route: Action, address: str) -> Action:
        """A KILL_ROUTE run again by `reapply`; a failure is marked as one of reapply's (the
        next reapply tries again: the route was in force before). A blocking route there
        already (after our undo: not ours) is in force: recorded `present`, as at a block."""
        again = self._run(route, "KILL_ROUTE (reapply)", address, quiet_undo=True)
        if again.status in IN_FORCE:
            return again
        return again._replace(status=REAPPLY_FAILED + again.status.partition(": ")[2])

    def put_back_nft(self) -> int | None:
        """Make our table again (or repair its chains and rules) with the active nftables
        blocks (a failed nft action counts too: this is its second chance). Returns how many;
        None when nothing blocks with nftables."""
        ending = {record.id for record, _ in self.store.unblocking()}  # elements gone on purpose
        active = [r for r in self.store.active() if r.id not in ending]
        blocks = self._nft_blocks(active, time.time())
        if not blocks and not uses_nft(self.settings):
            return None
        self.nft().put_back(blocks)
        return len(blocks)

    @staticmethod
    def _nft_blocks(active: list[BlockRecord], now: float) -> list[tuple[str, int | None]]:
        return [(r.address, _seconds_left(r.until, now))
                for r in active if any(a.kind == NFT for a in r.actions)]  # fmt: skip

    def nft_damage(self) -> str | None:
        """What is missing of our nftables table (NftBlocker.damage), if this process has been
        using it."""
        return None if self._nft is None else self._nft.damage()

    def write_history(self, records: list[BlockRecord]) -> None:
        """HISTORY_FILE gets the line of each block of `records` that took effect (see
        `enforced`), then the store knows they are written (a failure: at the next start)."""
        if records and self._append_history([r for r in records if enforced(r.actions)]):
            self.store.set_written([r.id for r in records])

    def write_notes(self) -> None:
        """HISTORY_FILE gets the line of each scan reported in alert-only mode that the store
        holds (see ResponsePolicy._note), with the name RESOLVE_HOST finds for its address,
        waited for as a block's is; the name is recorded before the line is written (a start
        after a kill in between must recognise the line: catch_up_history). Then the store
        forgets them; a write that fails leaves them there, for the next note or start."""
        notes = self.store.notes()
        if not notes:
            return
        lookups = [self._start_lookup(ipaddress.ip_address(n.address))
                   if n.hostname == n.address else None for n in notes]  # fmt: skip
        named = []
        for note, lookup in zip(notes, lookups, strict=True):
            hostname = self._hostname(lookup, note.address, note.since)
            if lookup is not None and hostname != note.hostname:
                self.store.set_note_hostname(note.id, hostname)
                note = note._replace(hostname=hostname)
            named.append(note)
        if not self._append_history(named):
            return
        self.store.forget_notes([n.id for n in named])
        for note in named:
            log.info("history-note address=%s port=%d proto=%s: HISTORY_FILE line written "
                     "(alert only, HISTORY_ALERT_ONLY=1)", note.address, note.port,
                     note.proto)  # fmt: skip

    def catch_up_history(self) -> None:
        """At start: the lines a kill left unwritten, of blocks that took effect (see
        Store.unwritten) and of alert-only notes, oldest first, but those the file has
        already (the kill came between the write and the store's update)."""
        blocks, notes = self.store.unwritten(), self.store.notes()
        due: list[BlockRecord | HistoryNote] = [r for r in blocks if enforced(r.actions)]
        due = sorted([*due, *notes], key=lambda entry: entry.since)
        if (blocks or notes) and self._append_history(due, catching_up=True):
            self.store.set_written([r.id for r in blocks])
            self.store.forget_notes([n.id for n in notes])

    def _append_history(self, entries: Sequence[BlockRecord | HistoryNote],
                        catching_up: bool = False) -> bool:  # fmt: skip
        """Append the entries' lines to HISTORY_FILE (`catching_up`: but those it has
        already). Returns whether that worked (if not, it is said)."""
        path = self.settings.history_file
        try:
            if catching_up and entries:
                present = portsentry_files.history_lines(path)
                entries = [e for e in entries if portsentry_files.portsentry_line(e) not in present]
            portsentry_files.append_history(path, entries)
        except OSError as error:
            log.error("writing HISTORY_FILE failed: %s", one_line(str(error)))
            return False
        if catching_up and entries:
            log.warning("HISTORY_FILE: %d lines a stop left unwritten written now", len(entries))
        return True

    def write_files(self, new: BlockRecord | None = None,
                    active: list[BlockRecord] | None = None) -> None:  # fmt: skip
        """BLOCKED_FILE.<mode> lists the active blocks: after a new block (`new`) its mode's
        file, else the files of the modes that run, of every mode with a block, and every one
        that exists (emptied when its last block has gone)."""
        s = self.settings
        try:
            blocks = self.store.active() if active is None else active
            if new is not None:
                modes = {new.mode}
            else:
                modes = {m.value for m in (s.tcp_mode, s.udp_mode) if m}
                modes |= {b.mode for b in blocks} | portsentry_files.blocked_files_present(
                    s.blocked_file
                )
            portsentry_files.write_blocked_files(s.blocked_file, blocks, modes)
        except OSError as error:
            log.error("writing PortSentry files failed: %s", one_line(str(error)))
