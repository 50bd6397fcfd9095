"""Making a block: how long it lasts, its plan (every action in PortSentry's order, with how to
do and undo it), recorded before anything is done, then carried out in order by the action
worker, each action's outcome recorded as it comes."""

import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from portwarden import fileedit, limits
from portwarden.config import BlockMode
from portwarden.config.kill import BRACKETED_TARGET, nft_element_command, route_undo
from portwarden.net import local
from portwarden.net.addresses import IPAddress
from portwarden.respond import commands, portsentry_files
from portwarden.respond.context import ActionContext, hostname
from portwarden.respond.nft_table import NftTable, uses_nft
from portwarden.respond.portsentry_writer import PortSentryWriter
from portwarden.respond.recorded import NOT_RUN, PRESENT, enforced
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
)
from portwarden.text import one_line

log = logging.getLogger("portwarden")


@dataclass(frozen=True)
class BlockRequest:
    address: IPAddress
    proto: str  # tcp or udp
    port: int
    mode: str
    reason: str
    block_mode: BlockMode


def _present(action: Action) -> Action:
    """A hosts.deny line that was there before the block: not ours, never removed."""
    log.info("hosts.deny: %s has the line already (not ours: an unblock leaves it)", action.do[0])
    return action._replace(undo=(), status=PRESENT)


class BlockMaker:
    def __init__(
        self,
        context: ActionContext,
        nft: NftTable,
        unblocks: Unblocker,
        files: PortSentryWriter,
        stopping: threading.Event | None = None,
    ) -> None:
        """`stopping`: set when the daemon stops; from then on no KILL_RUN_CMD is started (see
        _carry_out)."""
        self._context = context
        self._store = context.store
        self._nft = nft
        self._unblocks = unblocks
        self._files = files
        self._stopping = stopping
        self.not_run = 0  # KILL_RUN_CMDs not started because the daemon stops
        # A block's own nftables step found our table gone and made it again: the other blocks
        # are gone.
        self.put_back_due = False

    def duration_for(self, address: str, replacing: int | None = None) -> float | None:
        """Seconds the next block of `address` lasts (None: forever); `replacing`: the id of
        the block it supersedes, no offence of its own (Store.offences)."""
        s = self._context.settings
        if not s.block_duration:
            return None
        if s.block_escalation == 1:
            return self.duration(1)
        return self.duration(self._store.offences(address, replacing) + 1)

    def duration(self, offence: int) -> float | None:
        """Seconds this block lasts (None: forever), longer for repeat offenders."""
        s = self._context.settings
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

    def record(
        self,
        request: BlockRequest,
        now: float,
        until: float | None,
        nft_done: Action | None = None,
        replacing: int | None = None,
    ) -> BlockRecord | None:
        """Record the block, every action planned, before anything else of it is done. The
        daemon's loop does this right after it adds the nftables element (within a fraction
        of a millisecond; an insert after an idle spell takes ~0.3 ms, as long again as the
        element, so it does not come first): a kill in between leaves an element the store
        does not know, which the next start removes (it refills the sets from the store), and
        so does `unblock NET` without a daemon (NftTable.sweep). That element's outcome
        (`nft_done`) is recorded in the same insert: a block that ends before the worker's
        turn (an unblock, a kill then `unblock` without a daemon) was in force all the same,
        and gets its HISTORY_FILE line. No file is read. None if the address is already
        blocked. `replacing`: the id of the address's command-only block this one supersedes
        (Store.add_block)."""
        address = str(request.address)
        plan = [
            nft_done if nft_done is not None and a.kind == NFT else a for a in self._plan(request)
        ]
        return self._store.add_block(
            address,
            request.proto,
            request.port,
            request.mode,
            request.reason,
            address,
            now,
            until,
            tuple(plan),
            self._context.boot,
            replacing,
        )

    def carry_out(self, record: BlockRecord, nft_done: Action | None = None) -> BlockRecord | None:
        """Do the recorded block's planned actions (but the nftables element the loop added:
        `nft_done`, its outcome). Returns the record, ended at once if nothing took effect
        (see recorded.enforced); None when the block ended, or its unblock began, before its
        turn came (an expiry or an unblock, which the worker takes before any block, or an
        unblock the loop began: nothing of it is done, and its element is removed; it gets its
        HISTORY_FILE line if that element had been added, as it was in force). A block whose
        turn has come is carried out whole (an unblock asked meanwhile undoes it after)."""
        ended_by = self._store.ending(record.id)
        if ended_by is not None:
            log.info(
                "block address=%s not carried out: it ended (by=%s) before its turn",
                record.address,
                ended_by,
            )
            if nft_done is not None and nft_done.status == DONE:
                self._unblocks.undo(nft_done, record.address)  # the unblock may have come before it
            self._files.write_history([record])  # a line only if in force (the element was added)
            return None
        lookup = self._context.start_lookup(ipaddress.ip_address(record.address))
        # What an earlier block of this address left in force (a hosts.deny line an unblock
        # could not remove) is undone first: else this block would take that line for the
        # administrator's, and the leftover's retry would later remove it under this block.
        for cleared in self._unblocks.retry_left(ipaddress.ip_network(record.address))[0]:
            log.info(
                "unblocked %s: what its earlier block left in force is undone now", cleared.address
            )
        actions = [self._checked(a, nft_done) for a in record.actions]
        if tuple(actions) != record.actions:  # durable before any file or route changes
            self._store.set_actions(record.id, tuple(actions))
        for index, action in enumerate(actions):
            if action.status == PLANNED:
                self._carry_out(record, actions, index)
        name = hostname(lookup, record.address, record.since)
        record = record._replace(actions=tuple(actions), hostname=name)
        if name != record.address:
            self._store.set_hostname(record.id, name)
        if not enforced(record.actions):
            self._store.end_block(record.id, time.time(), FAILED)
            self._store.set_written([record.id])  # never in force: no HISTORY_FILE line
            return record
        self._files.write_history([record])
        self._files.write_files(record)
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
        self._unblocks.unblock(record._replace(actions=nft_only), FAILED)
        self._store.set_written([record.id])  # never in force: no HISTORY_FILE line

    def steps(self, block_mode: BlockMode) -> list[str]:
        """What a block in `block_mode` does, in PortSentry 1.2's order (DisposeTCP/DisposeUDP):
        hosts.deny, then KILL_ROUTE, then KILL_RUN_CMD; with KILL_RUN_CMD_FIRST the command,
        then hosts.deny, then KILL_ROUTE. Our nftables blocker, the fast one, comes before
        hosts.deny. Nothing at all when the settings give nothing to do (see
        config.settings.nothing_to_do)."""
        s = self._context.settings
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
        s = self._context.settings
        target, port, mode = str(request.address), request.port, request.mode
        plan = []
        for step in self.steps(request.block_mode):
            try:
                if step == NFT:
                    plan.append(self._nft.action(PLANNED))
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
        template = self._context.settings.kill_hosts_deny or ""
        template = template.replace(BRACKETED_TARGET, "$TARGET$")
        address = portsentry_files.wrappers_address(request.address)
        return commands.fill(template, address, request.port, request.mode)

    def _carry_out(self, record: BlockRecord, actions: list[Action], index: int) -> None:
        """Do actions[index], recording it running first if it is an external command (it may
        be killed with us) and its outcome after."""
        action = actions[index]
        if action.kind == COMMAND and self._stopping is not None and self._stopping.is_set():
            # The daemon stops: the blocks queued behind a slow command must not hold it up
            # (a start does not run them either: see Restorer._resume).
            actions[index] = action._replace(status=NOT_RUN)
            self._store.set_actions(record.id, tuple(actions))
            self.not_run += 1
            return
        if action.kind in (ROUTE, COMMAND):
            actions[index] = action._replace(status=RUNNING)
            self._store.set_actions(record.id, tuple(actions))
        if action.kind == NFT:
            actions[index] = self._nft.add(ipaddress.ip_address(record.address), record.until)
            # `nft flush ruleset`: the other blocks must come back too (the worker does it).
            self.put_back_due |= self._nft.remade
        elif action.kind == HOSTS_DENY:
            actions[index] = self._add_hosts_deny_line(action)
        else:
            what = "KILL_ROUTE" if action.kind == ROUTE else "KILL_RUN_CMD"
            timeout = self._context.settings.kill_cmd_timeout
            actions[index] = run_action(action, what, record.address, timeout)
        self._store.set_actions(record.id, tuple(actions))

    def _add_hosts_deny_line(self, action: Action) -> Action:
        path, line = action.do
        try:
            added = fileedit.add_line(Path(path), line)
        except OSError as error:
            log.error("hosts.deny: %s", one_line(str(error)))
            return action._replace(status=f"{FAILED}: {one_line(str(error))}")
        return action._replace(status=DONE) if added else _present(action)


def run_action(
    action: Action, what: str, address: str, timeout: float, quiet_undo: bool = False
) -> Action:
    """Run the action's command for `address`, for at most `timeout` seconds (after its undo
    when `quiet_undo`: it may or may not be in force, so only one copy is left; never that of
    a route not ours). A failure is recorded with why. A KILL_ROUTE that adds an nftables
    element finds out first whether the element is there already (`nft add element` says
    nothing then, and its undo would remove it): see _element_there. One that finds a route
    there already (`File exists`): see _route_there."""
    if quiet_undo and action.undo and action.status != PRESENT:
        commands.run(list(action.undo), timeout, f"{what} undo", quiet=True)
    # Not for one done already (a block put back after a reboot): the element a ruleset loaded
    # at boot holds is still ours.
    ours = action.status == DONE
    check = nft_element_command(action.do, "get") if action.kind == ROUTE and not ours else None
    if check and commands.run(check, timeout, f"{what} check", quiet=True) is None:
        return _element_there(action, what, address)
    there = commands.THERE_ALREADY if action.kind == ROUTE else ()
    failure = commands.run(
        list(action.do), timeout, what, harmless=there, harmless_as=commands.EXISTS
    )
    if failure == commands.EXISTS:  # nft `create element`: the element came after the check
        return (
            _element_there(action, what, address) if check else _route_there(action, what, address)
        )
    return action._replace(status=DONE if failure is None else f"{FAILED}: {failure}")


def _element_there(action: Action, what: str, address: str) -> Action:
    """A KILL_ROUTE's nftables element that was there before it ran (`nft get element` found
    it, or `nft create element` said `File exists`): in force, but not ours (recorded
    `present`, so no unblock removes it)."""
    log.info(
        "%s: the nftables element for %s is there already (not ours: an unblock leaves it): %s",
        what,
        address,
        one_line(" ".join(action.do)),
    )
    return action._replace(status=PRESENT)


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
            log.info(
                "%s: a route blocking %s is there already (%s; not ours: an unblock leaves it): %s",
                what,
                address,
                routes[0],
                one_line(" ".join(action.do)),
            )
            return action._replace(status=PRESENT)
        if other:
            why = (
                f"a route to {address} is there already ({other[0]}): KILL_ROUTE "
                "could not add its own"
            )
        else:
            why = f"said File exists, but no route to {address} is there"
    log.error("%s for %s failed: %s", what, address, why)
    return action._replace(status=f"{FAILED}: {why}")
