"""Doing and undoing blocks: nftables, KILL_ROUTE, hosts.deny, KILL_RUN_CMD, and the files.

Used by the daemon's action worker thread and by the `blocked` / `unblock` commands, each with
its own Store connection. The store is the one source of truth: a block is committed there
before it is reported done, and unblocking undoes exactly the actions recorded with it.
"""

import ipaddress
import logging
import math
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from portwarden import limits
from portwarden.config import BlockMode, Settings
from portwarden.config.ignore import Address, Network
from portwarden.config.values import NftUse
from portwarden.respond import commands, files
from portwarden.respond.nft import Nft, NftBlocker, NftError
from portwarden.store.db import Action, BlockRecord, Store
from portwarden.text import one_line

log = logging.getLogger("portwarden")


@dataclass(frozen=True)
class BlockRequest:
    address: Address
    proto: str  # tcp or udp
    port: int
    mode: str
    reason: str
    block_mode: BlockMode
    nft_done: Action | None = None  # the loop already added it to the set (reaction time)


def safe_hostname(name: str) -> str:
    """A reverse-DNS name fit for a log line or PortSentry's files: no controls, no spaces."""
    return one_line(name, limits.HOSTNAME_MAX).replace(" ", "\\x20").replace("/", "\\x2f")


def uses_nft(settings: Settings) -> bool:
    """Whether new blocks go into our nftables sets."""
    if BlockMode.BLOCK not in (settings.block_tcp, settings.block_udp):
        return False
    use = settings.block_nftables
    return use is NftUse.ALWAYS or (use is NftUse.AUTO and settings.kill_route is None)


class Actions:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._nft: NftBlocker | None = None
        self._context: Nft | None = None  # kept when ensure() fails, for the next try

    def nft(self) -> NftBlocker:
        if self._nft is None:
            if self._context is None:
                self._context = Nft()
            blocker = NftBlocker(self._context, self.settings.block_forward)
            blocker.ensure()  # only a table and sets that are ours and right are used
            self._nft = blocker
        return self._nft

    def duration_for(self, address: str) -> float | None:
        """Seconds the next block of `address` lasts (None: forever)."""
        s = self.settings
        if not s.block_duration:
            return None
        if s.block_escalation == 1:
            return self.duration(1)
        return self.duration(self.store.offences(address) + 1)

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

    def block(self, request: BlockRequest) -> BlockRecord | None:
        """Block one address. Returns the record, or None if it was already blocked."""
        s = self.settings
        address = str(request.address)
        since = time.time()
        seconds = self.duration_for(address)
        done: list[Action] = []
        steps = self._steps(request)
        if s.kill_run_cmd_first and "command" in steps:
            steps.remove("command")
            steps.insert(0, "command")
        if steps and steps[0] == "nft":  # first, before anything slow: reaction time
            first = request.nft_done
            if first is None or first.status != "done":  # not tried, or failed: try (again)
                first = self.nft_add(request.address, seconds)
            done.append(first)
            steps.pop(0)
        record = self.store.add_block(
            address, request.proto, request.port, request.mode, request.reason, address, since,
            None if seconds is None else since + seconds, tuple(done))  # fmt: skip
        if record is None:
            return None
        for step in steps:
            done.append(self._do(step, request, seconds))
        hostname = self._hostname(request.address)
        record = record._replace(actions=tuple(done), hostname=hostname)
        self.store.set_actions(record.id, record.actions)
        if hostname != address:
            self.store.set_hostname(record.id, hostname)
        self.write_files(record)
        return record

    def _steps(self, request: BlockRequest) -> list[str]:
        s = self.settings
        if request.block_mode is BlockMode.RUN_CMD_ONLY:
            return ["command"] if s.kill_run_cmd else []
        steps = ["nft"] if uses_nft(s) else []
        if s.kill_route:
            steps.append("route")
        if s.kill_hosts_deny:
            steps.append("hosts.deny")
        if s.kill_run_cmd:
            steps.append("command")
        return steps

    def _do(self, step: str, request: BlockRequest, seconds: float | None) -> Action:
        s = self.settings
        target, port, mode = str(request.address), request.port, request.mode
        try:
            if step == "nft":
                return self.nft_add(request.address, seconds)
            if step == "hosts.deny":  # the literal text, as PortSentry wrote it
                line = commands.fill(s.kill_hosts_deny or "", target, port, mode)
                files.add_line(s.hosts_deny_file, line)
                return Action("hosts.deny", (str(s.hosts_deny_file), line))
            command = s.kill_route if step == "route" else s.kill_run_cmd
            argv = commands.expand(command.argv if command else (), target, port, mode)
            what = "KILL_ROUTE" if step == "route" else "KILL_RUN_CMD"
            ok = commands.run(argv, s.kill_cmd_timeout, what)
            undo = commands.route_undo(argv) if step == "route" else None
            return Action(step, tuple(undo or ()), "done" if ok else "failed")
        except (OSError, ValueError) as error:
            log.error("%s for %s failed: %s", step, target, one_line(str(error)))
            return Action(step, (), f"failed: {one_line(str(error))}")

    def nft_first(self, request: BlockRequest) -> bool:
        """Whether the nftables step comes first for this request (it does unless the
        command must run first)."""
        steps = self._steps(request)
        return (
            bool(steps)
            and steps[0] == "nft"
            and not (self.settings.kill_run_cmd_first and "command" in steps)
        )

    def nft_add(self, address: Address, seconds: float | None) -> Action:
        try:
            self.nft().add(address, None if seconds is None else max(1, round(seconds)))
        except NftError as error:
            log.error("nftables block of %s failed: %s", address, one_line(str(error)))
            return Action("nft", (), f"failed: {one_line(str(error))}")
        return Action("nft")

    def _hostname(self, address: Address) -> str:
        if not self.settings.resolve_host:
            return str(address)
        try:
            return safe_hostname(socket.gethostbyaddr(str(address))[0])
        except (OSError, UnicodeError):
            return str(address)

    def unblock(self, record: BlockRecord, by: str, write_files: bool = True) -> bool:
        """Undo every action recorded for the block, then end it. False if already ended."""
        if not self.store.end_block(record.id, time.time(), by):
            return False
        for action in record.actions:
            try:
                if action.kind == "nft":
                    self.nft().remove([ipaddress.ip_address(record.address)])
                elif action.kind == "hosts.deny" and len(action.undo) == 2:
                    files.remove_line(Path(action.undo[0]), action.undo[1])
                elif action.kind == "route" and action.undo:
                    commands.run(list(action.undo), self.settings.kill_cmd_timeout, "route undo")
                elif action.kind == "route":
                    log.warning("cannot tell how to undo KILL_ROUTE for %s; remove it by hand",
                                record.address)  # fmt: skip
            except (OSError, NftError) as error:
                log.error("undoing %s for %s failed: %s", action.kind, record.address,
                          one_line(str(error)))  # fmt: skip
        if write_files:
            self.write_files(None)
        return True

    def unblock_matching(self, network: Network | None, by: str) -> list[BlockRecord]:
        """Unblock every active block inside `network` (all when None)."""
        inside = [r for r in self.store.active()
                  if network is None or ipaddress.ip_address(r.address) in network]  # fmt: skip
        undone = [r for r in inside if self.unblock(r, by, write_files=False)]
        if undone:  # once, not once per block: `unblock --all` of many blocks stays linear
            self.write_files(None)
        return undone

    def expire(self, now: float) -> list[BlockRecord]:
        return [r for r in self.store.due(now) if self.unblock(r, "expired", write_files=False)]

    def restore(self) -> int:
        """At start: end overdue blocks; make the firewall, routes and files match the store."""
        now = time.time()
        if self.expire(now):
            self.write_files(None)
        active = self.store.active()
        if uses_nft(self.settings) or any(a.kind == "nft" for r in active for a in r.actions):
            self.nft().replace_all(self._nft_blocks(active, now))
        for record in active:
            for action in record.actions:
                if action.kind == "hosts.deny" and len(action.undo) == 2:
                    files.add_line(Path(action.undo[0]), action.undo[1])
                elif action.kind == "route" and self.settings.kill_route:
                    argv = commands.expand(self.settings.kill_route.argv, record.address,
                                           record.port, record.mode)  # fmt: skip
                    commands.run(argv, self.settings.kill_cmd_timeout, "KILL_ROUTE (restore)")
        self.write_files(None, active)
        return len(active)

    def put_back_nft(self) -> int:
        """After our table was removed: make it again with the active nftables blocks (a failed
        nft action counts too: this is its second chance). Returns how many."""
        blocks = self._nft_blocks(self.store.active(), time.time())
        self.nft().put_back(blocks)
        return len(blocks)

    @staticmethod
    def _nft_blocks(active: list[BlockRecord], now: float) -> list[tuple[str, int | None]]:
        return [(r.address, None if r.until is None else max(1, round(r.until - now)))
                for r in active if any(a.kind == "nft" for a in r.actions)]  # fmt: skip

    def nft_table_lost(self) -> bool:
        """Whether our nftables table is gone although this process has been using it."""
        return self._nft is not None and not self._nft.table_present()

    def write_files(self, new: BlockRecord | None = None,
                     active: list[BlockRecord] | None = None) -> None:  # fmt: skip
        try:
            if new is not None:
                files.append_history(self.settings.history_file, new)
            files.write_blocked_file(self.settings.blocked_file,
                                     self.store.active() if active is None else active)  # fmt: skip
        except OSError as error:
            log.error("writing PortSentry files failed: %s", one_line(str(error)))
