"""In the loop: which verdicts become blocks, which addresses must never be blocked, how many
blocks a minute; the blocks themselves are carried out by one worker thread, off the loop,
which takes unblocks and expiry before them (respond/worker.py, respond/jobs.py)."""

import contextlib
import ipaddress
import itertools
import logging
import socket
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from portwarden import limits
from portwarden.alert.dispatch import Alerts
from portwarden.config import BlockMode, Settings
from portwarden.config.ignore import Network, parse_network
from portwarden.config.settings import nothing_to_do
from portwarden.detect.engine import Verdict
from portwarden.net.addresses import IPAddress, Proto
from portwarden.net.local import (
    broadcast_addresses,
    default_gateways,
    local_addresses,
    name_servers,
)
from portwarden.net.nftables import NftError
from portwarden.respond.actions import Actions
from portwarden.respond.block import BlockRequest
from portwarden.respond.budget import MinuteBudget
from portwarden.respond.jobs import (
    BlockJob,
    ExpireJob,
    NotesJob,
    ProtectedJob,
    PutBackJob,
    ReapplyJob,
    SettingsJob,
    StopJob,
    UnblockJob,
)
from portwarden.respond.nft import claim_table
from portwarden.respond.nft_table import works_with_nft
from portwarden.respond.notes import NotedSources
from portwarden.respond.recorded import lasting, lasting_steps, via
from portwarden.respond.worker import ActionWorker, report_unblocks, say_table_remade
from portwarden.store.db import DONE, NFT, UNBLOCK_COMMAND, Action, BlockRecord, Store
from portwarden.text import counted, one_line, utc_stamp

log = logging.getLogger("portwarden")

# Verdicts that block: probes to tripwire ports, past SCAN_TRIGGER. An OS-fingerprinting probe
# ("os-probe", "os-summary") does not block by itself: it may go to a port with a real service,
# whose clients a single forged packet would then cut off. nmap -O also probes closed ports
# and, unless told otherwise, scans: that part meets the tripwires and blocks it. A summary
# ("scan-summary") comes after the scan's probes, each already a "scan" verdict: it blocks
# nothing (it would block again a source unblocked or expired meanwhile, and say "already
# blocked" with no probe).
_BLOCKING_KINDS = frozenset({"scan"})


# Why an address is never blocked, with the key that allows it (None: nothing does) and how
# alerts name it.
_PROTECTED_BY = {
    "gateway": ("PROTECT_GATEWAYS", "a default gateway"),
    "nameserver": ("PROTECT_NAMESERVERS", "a name server"),
    "broadcast": (None, "a broadcast or network address of this host's subnet"),
    "local": (None, "an address of this host"),
}


def _protection(why: tuple[str, ...]) -> str:
    """`gateway,nameserver (PROTECT_GATEWAYS=0 and PROTECT_NAMESERVERS=0 allow it)`: the log's
    words for why an address is protected."""
    return f"{','.join(why)} ({_overridden_by(why)})"


def _protected_as(why: tuple[str, ...]) -> str:
    """'a default gateway', 'a name server', or both joined with 'and'."""
    return " and ".join(_PROTECTED_BY[w][1] for w in why)


def _overridden_by(why: tuple[str, ...]) -> str:
    """'PROTECT_GATEWAYS=0 allows it', '... and ... allow it', or 'nothing allows it'."""
    keys = [f"{key}=0" for key, _ in (_PROTECTED_BY[w] for w in why) if key is not None]
    if len(keys) < len(why):
        return "nothing allows it"
    return f"{' and '.join(keys)} {'allow' if len(keys) > 1 else 'allows'} it"


class ResponsePolicy:
    def __init__(
        self,
        settings: Settings,
        store_path: Path,
        alerts: Alerts,
        local: Callable[[], frozenset[IPAddress]] = local_addresses,
    ) -> None:
        """`local`: this host's addresses now (the daemon's own view, re-read every refresh,
        so they are not read twice)."""
        self.settings = settings
        self._alerts = alerts
        self._local = local
        self._store = Store(store_path, durable=False)  # it records blocks: see BlockMaker.record
        self._worker = ActionWorker(settings, store_path, alerts)
        self._active: set[str] = set()
        self._in_flight: set[str] = set()  # submitted to the worker, not finished
        self._next_expiry: float | None = None
        self._version = -1
        self._announced: set[str] = set()
        self._element_checked: dict[str, float] = {}  # address: no new look before (monotonic)
        # Probed again while its block was being made: "already blocked" is said once the block
        # is recorded (its own `block` line comes first), with the mode of that probe; or, if
        # the block only runs KILL_RUN_CMD and that probe's BLOCK enforces, the probe makes the
        # block that supersedes it (tick).
        self._probed_in_flight: dict[str, Verdict] = {}
        self._supersede_due: list[Verdict] = []
        # Active blocks that only ran (or run) KILL_RUN_CMD: BLOCK_TCP or BLOCK_UDP 2. A probe
        # of the other protocol whose BLOCK is 1 is not "already blocked" by one (see
        # _superseded).
        self._command_only: set[str] = set()
        self._refused: set[str] = set()
        # Submitted to the worker to end (protected), with when (monotonic): submitted again
        # after PROTECTED_END_RETRY_S if still active (the worker's job failed).
        self._ending_protected: dict[str, float] = {}
        self._block_budget = MinuteBudget()  # BLOCKS_PER_MINUTE
        # Alert-only HISTORY_FILE lines (_note): a budget of their own, of the same size, so
        # they never take the place of a block (BLOCK_TCP=1 with BLOCK_UDP=0).
        self._note_budget = MinuteBudget()
        self._noted = NotedSources()
        self._not_noted: set[str] = set()  # protected addresses whose line was refused, said
        # Since BLOCKS_MAX active blocks were reached: whether it is (an episode), and the
        # sources refused a block, each once (at most BLOCK_MAX_REFUSED_COUNTED_MAX).
        self._over_max = False
        self._refused_at_max: set[str] = set()
        self._dropped = 0  # jobs the full action queue refused since it was last seen with room
        self._protected: dict[IPAddress, tuple[str, ...]] = {}  # address: why (_PROTECTED_BY)
        self._idle_said: set[Proto] = set()  # "nothing to do" logged for (since the last reload)
        self._actions = Actions(settings, self._store)  # the loop's own, for the nft step
        self._table_claim: socket.socket | None = None
        self.blocks_made = 0  # since start

    @property
    def blocks_active(self) -> int:
        """Blocks in force (and submitted), as the loop knows them."""
        return len(self._active)

    def blocked_addresses(self) -> set[str]:
        return set(self._active)

    @property
    def store(self) -> Store:
        """The loop's store connection (for status)."""
        return self._store

    def claim_table(self, settings: Settings) -> None:
        """Hold NFT_TABLE once this instance works with nftables under `settings`
        (works_with_nft; nft.claim_table). Raises ConfigError when another daemon here holds
        it."""
        if self._table_claim is None and works_with_nft(settings, self._store):
            self._table_claim = claim_table(settings.nft_table, settings.source)

    def start(self) -> None:
        """Re-apply the active blocks in one batch (and say how many), then start the worker."""
        self.claim_table(self.settings)
        before = self._store.active_addresses()
        self._protected = self._read_protected()
        restored = self._actions.restorer.restore(self._protected_blocks(before))
        unfilled = self._actions.restorer.unfilled
        if unfilled is None:
            log.info("restored %s from the store", counted(restored, "active block"))
        else:
            # Started all the same: detection, alerts and the other actions work, and the
            # sets are filled again every NFT_PUT_BACK_RETRY_S until it works (_check_table).
            log.error(
                "nftables: the active blocks could not be put in table inet %s: %s; "
                "trying again every %d s",
                self.settings.nft_table,
                unfilled.why,
                limits.NFT_PUT_BACK_RETRY_S,
            )
            log.warning(
                "restored %s from the store, but not the nftables "
                "elements of %d of them; %d of those have nothing else in force (no "
                "route, no hosts.deny line): not blocked until the sets are filled",
                counted(restored, "active block"),
                unfilled.blocks,
                unfilled.bare,
            )
            self._alerts.nft_failed(unfilled.why)
            self._worker.unfilled.set()
            self._worker.retry_at = time.monotonic() + limits.NFT_PUT_BACK_RETRY_S
        ended = sorted(before - self._store.active_addresses())  # overdue, or command-only
        report_unblocks(
            self._alerts, ended, lambda a: self._store.last_end(a) or ("restart", time.time())
        )
        self._check_table()
        self._worker.start()

    def stop(self) -> None:
        if self._worker.ident is not None:  # started
            self._worker.stopping.set()
            self._worker.jobs.put(StopJob(self.settings.unblock_on_stop))
            self._worker.join(timeout=limits.ACTION_WORKER_STOP_WAIT_S)
            if self._worker.is_alive():
                log.error(
                    "the action worker did not finish within %d s; what it was doing (see "
                    "above) may be incomplete",
                    limits.ACTION_WORKER_STOP_WAIT_S,
                )
            self._sync()  # the loop's view of the blocks, after the worker's last changes
        self._store.close()
        if self._table_claim is not None:
            self._table_claim.close()

    def reconfigure(self, settings: Settings) -> None:
        self.settings = settings
        self._actions.reconfigure(settings)
        self._worker.reshaping.set()
        self._worker.jobs.put(SettingsJob(settings))
        self._idle_said.clear()
        self.refresh()

    def refresh(self) -> None:
        """Addresses that must never be blocked, re-read (routes, resolv.conf and the local
        addresses change); the blocks of those that became protected end."""
        self._protected = self._read_protected()
        self._sync()
        now, again = time.monotonic(), limits.PROTECTED_END_RETRY_S
        due = {
            address: why
            for address, why in self._protected_blocks(self._active).items()
            if now - self._ending_protected.get(address, -again) >= again
        }
        if due and self._worker.jobs.put(ProtectedJob(due)):
            self._ending_protected.update(dict.fromkeys(due, now))
        self._check_table()

    def _read_protected(self) -> dict[IPAddress, tuple[str, ...]]:
        """Each address never blocked, with why (_PROTECTED_BY's keys), read now. (A local
        address never reaches the policy: the engine ignores it. It is here for its blocks
        made before it was local.)"""
        protected: dict[IPAddress, tuple[str, ...]] = {}
        sources: tuple[tuple[str, bool, Callable[[], frozenset[IPAddress]]], ...] = (
            ("gateway", self.settings.protect_gateways, default_gateways),
            ("nameserver", self.settings.protect_nameservers, name_servers),
            ("broadcast", True, broadcast_addresses),
            ("local", True, self._local),
        )
        for why, on, addresses in sources:
            for address in addresses() if on else ():
                protected[address] = (*protected.get(address, ()), why)
        return protected

    def _protected_blocks(self, active: set[str]) -> dict[str, str]:
        """The addresses of `active` (blocks in force) that are protected now, each with why
        (for the log)."""
        return {str(a): _protection(why) for a, why in self._protected.items() if str(a) in active}

    def _check_table(self) -> None:
        """A firewall reload that flushes the whole ruleset (`nft flush ruleset`, as
        nftables.service does) takes our table and every block with it; `nft flush chain`
        takes our drop rules: put them back; so too when the sets lack blocks (a failed
        restore or put-back). Only when blocks that the worker has finished are active:
        `unblock --all` removes the table on purpose, and a block in flight meanwhile is either
        ended by it or makes the table again itself (the loop adds its element first). Not
        while a put-back is under way, nor while the worker has yet to give the table the shape
        of new settings (BLOCK_FORWARD), and after a failed put-back only every
        NFT_PUT_BACK_RETRY_S."""
        worker = self._worker
        self._sync()  # an `unblock --all` ends the blocks before it removes the table
        if (
            not self._active - self._in_flight
            or worker.putting_back.is_set()
            or worker.reshaping.is_set()
            or time.monotonic() < worker.retry_at
        ):
            return
        if worker.unfilled.is_set():
            log.warning("nftables: trying again to put the active blocks back")
        else:
            damage = self._actions.nft.damage()
            if damage is None:
                return
            log.warning(
                "nftables: missing: %s (a firewall reload or a flush?); putting the "
                "active blocks back",
                damage,
            )
            self._alerts.table_lost()
        self._put_back_soon()

    def _put_back_soon(self) -> None:
        self._worker.putting_back.set()
        self._worker.jobs.put(PutBackJob())

    def _sync(self) -> None:
        """Follow the store when the action worker changed it."""
        finished = False
        while self._worker.finished:
            self._in_flight.discard(self._worker.finished.popleft())
            finished = True
        version = self._store.data_version()
        if version == self._version and not finished:  # a failed block changes no version
            return
        self._version = version
        active = self._store.active()
        self._active = {r.address for r in active} | self._in_flight
        self._ending_protected = {
            a: t for a, t in self._ending_protected.items() if a in self._active
        }
        self._announced &= self._active
        self._command_only = {r.address for r in active if not lasting(r.actions)}
        self._element_checked = {
            a: t for a, t in self._element_checked.items() if a in self._active
        }
        for address, verdict in list(self._probed_in_flight.items()):
            if address not in self._in_flight:
                del self._probed_in_flight[address]
                if self._supersedes(address, verdict):
                    self._supersede_due.append(verdict)
                elif address in self._active:
                    self._announce(address, verdict.probe.mode)
        self._next_expiry = min((r.until for r in active if r.until is not None), default=None)

    def tick(self, now: float) -> None:
        self._sync()
        due, self._supersede_due = self._supersede_due, []
        for verdict in due:
            self.on_verdict(verdict, now)
        wall = time.time()
        if self._next_expiry is not None and self._next_expiry <= wall:
            self._next_expiry = None
            self._worker.jobs.put(ExpireJob())
        for budget, said in (
            (self._block_budget, "block-cap ended: %d%s sources were not blocked while it held"),
            (
                self._note_budget,
                "history-cap ended: %d%s sources got no alert-only HISTORY_FILE line while it held",
            ),
        ):
            ended = budget.ended(now)
            if ended is not None:
                log.warning(said, ended[0], " or more" if ended[1] else "")
        self._noted.forget_quiet(now, self.settings.scan_trigger_window)
        if self._over_max and not self._full():
            refused = len(self._refused_at_max)
            more = " or more" if refused >= limits.BLOCK_MAX_REFUSED_COUNTED_MAX else ""
            log.warning(
                "block-max ended: %d active blocks now; %d%s sources were not blocked "
                "while BLOCKS_MAX=%d was reached",
                len(self._active),
                refused,
                more,
                self.settings.blocks_max,
            )
            self._over_max = False
            self._refused_at_max.clear()
        if self._dropped and not self._worker.jobs.full():
            log.warning(
                "action queue has room again: %d jobs were dropped while it was full "
                "(each block among them recorded as failed; its next probe tries "
                "again)",
                self._dropped,
            )
            self._dropped = 0

    def _announce(self, address: str, mode: str) -> None:
        """Say "already blocked" once per block."""
        if address not in self._announced:
            self._announced.add(address)
            log.info("already-blocked address=%s", address)
            self._alerts.already_blocked(address, mode)

    def on_verdict(self, verdict: Verdict, now: float) -> None:
        if verdict.kind not in _BLOCKING_KINDS:
            return
        probe = verdict.probe
        mode = self.settings.block_tcp if probe.proto is Proto.TCP else self.settings.block_udp
        if mode is BlockMode.ALERT_ONLY:
            self._note(verdict, now)
            return
        address = str(probe.src)
        idle = self._idle(mode, probe.proto)
        if idle is not None:  # an empty plan: no block at all, no record, no files
            if probe.proto not in self._idle_said:
                self._idle_said.add(probe.proto)
                log.warning(
                    "not-blocking address=%s why=nothing-to-do (%s): scans are only "
                    "alerted; said once",
                    address,
                    idle,
                )
            return
        if address in self._active:
            self._sync()
        replacing = None
        if address in self._active:
            if address in self._in_flight:
                if address not in self._probed_in_flight or self._supersedes(address, verdict):
                    self._probed_in_flight[address] = verdict
                return
            replacing = self._superseded(address, verdict)
            if replacing is None:
                self._put_element_back(probe.src, now)
                self._announce(address, probe.mode)
                return
        why = self._protected.get(probe.src)
        if why is not None:
            if address not in self._refused:
                self._refused.add(address)
                log.warning("not-blocking address=%s why=%s", address, _protection(why))
                self._alerts.not_blocking(address, _protected_as(why))
            return
        if replacing is None and self._full():  # one that supersedes takes its block's place
            if not self._over_max:
                self._over_max = True
                log.warning(
                    "block-max reached: %d active blocks (BLOCKS_MAX=%d); no new block "
                    "until some end (unblock, expiry); detection goes on",
                    len(self._active),
                    self.settings.blocks_max,
                )
                self._alerts.block_max(len(self._active))
            if len(self._refused_at_max) < limits.BLOCK_MAX_REFUSED_COUNTED_MAX:
                self._refused_at_max.add(address)
            return
        if not self._block_budget.allows(
            address, self.settings.blocks_per_minute, verdict.ports, now
        ):
            if self._block_budget.refused == 1:
                log.warning(
                    "block-cap reached: %d blocks in a minute; detection goes on, "
                    "blocks resume when the rate falls",
                    self.settings.blocks_per_minute,
                )
                self._alerts.block_cap(self.settings.blocks_per_minute)
            return
        request = BlockRequest(
            probe.src, probe.proto.value, probe.dport, probe.mode, probe.scan, mode
        )
        now_wall = time.time()
        replaced = None if replacing is None else replacing.id
        until = self._actions.blocks.until_for(address, now_wall, replaced)
        nft_done = None
        if self._actions.blocks.nft_first(request):
            # In the loop, one netlink batch (~0.02-0.15 ms): the worker could wait for the GIL.
            nft_done = self._nft_add(probe.src, until)
        try:  # at once: see there
            record = self._actions.blocks.record(request, now_wall, until, nft_done, replaced)
        except sqlite3.Error as error:  # nothing stays in force that the store does not know
            log.error(
                "block of %s not made: the store refused it: %s; its next probe tries again",
                address,
                one_line(str(error)),
            )
            self._take_element_back(probe.src, nft_done)
            return
        self._active.add(address)  # never submitted twice
        if record is None:  # blocked already, by a block the loop has not seen yet
            if replacing is not None:  # or being unblocked: the element is not the store's
                self._take_element_back(probe.src, nft_done)
            self._announce(address, probe.mode)
            return
        if replacing is not None:
            log.info(
                "block address=%s supersedes its block of mode=%s, which only ran "
                "KILL_RUN_CMD: BLOCK_%s=1",
                address,
                replacing.mode,
                probe.proto.value.upper(),
            )
            self._command_only.discard(address)
            self._announced.discard(address)  # once per block: the new one too
        if not lasting(record.actions):
            self._command_only.add(address)
        self._in_flight.add(address)
        if self._submit(BlockJob(record, nft_done, replacing is not None)):
            self.blocks_made += 1
            return
        self._actions.blocks.abandon(record)
        self._active.discard(address)
        self._in_flight.discard(address)

    def _note(self, verdict: Verdict, now: float) -> None:
        """A scan of a protocol whose BLOCK is 0 (alert only): with HISTORY_ALERT_ONLY, the
        verdict that would have made a block gets PortSentry's `Blocked` line in HISTORY_FILE,
        as PortSentry 1.2 wrote it then (fail2ban's `portsentry` jail bans on it). Once per
        source and protocol while it goes on scanning (respond/notes.py); none for a source blocked
        already (its block has its line), nor for an address no block would be made for
        (protected: fail2ban would ban it; the ignore list and this host's addresses make no
        verdict at all). BLOCKS_PER_MINUTE bounds these lines too, in a budget of their own.
        Recorded in the store, written by the action worker (RESOLVE_HOST's name is looked
        up there, off the loop)."""
        s = self.settings
        probe = verdict.probe
        address = str(probe.src)
        # Per protocol, as PortSentry's -tcp and -udp processes each wrote theirs, and since
        # fail2ban's stock jail bans TCP only: a source's UDP probes during that ban must not
        # keep its TCP line from being written again once the ban is over.
        noted = f"{address} {probe.proto.value}"
        if not s.history_alert_only or self._noted.noted(noted, now, s.scan_trigger_window):
            return
        if address in self._active:
            self._sync()
            if address in self._active:
                return
        why = self._protected.get(probe.src)
        if why is not None:
            if address not in self._not_noted:
                self._not_noted.add(address)
                log.info(
                    "no HISTORY_FILE line for address=%s why=%s: whatever bans on that "
                    "file would ban it",
                    address,
                    _protection(why),
                )
            return
        if not self._note_budget.allows(address, s.blocks_per_minute, verdict.ports, now):
            if self._note_budget.refused == 1:
                log.warning(
                    "history-cap reached: %d alert-only HISTORY_FILE lines in a minute "
                    "(BLOCKS_PER_MINUTE); detection goes on, lines resume when the rate "
                    "falls",
                    s.blocks_per_minute,
                )
            return
        try:
            self._store.add_note(address, probe.proto.value, probe.dport, time.time())
        except sqlite3.Error as error:
            log.error(
                "HISTORY_FILE line for %s not recorded: the store refused it: %s; its "
                "next probe tries again",
                address,
                one_line(str(error)),
            )
            return
        self._noted.add(noted, now)
        self._worker.jobs.put(NotesJob())  # one waits at most: it writes every note

    def _take_element_back(self, source: IPAddress, nft_done: Action | None) -> None:
        """Remove the element the loop added for a block that was not recorded."""
        if nft_done is not None and nft_done.status == DONE:
            with contextlib.suppress(NftError):
                self._actions.nft.blocker().remove([source])

    def _supersedes(self, address: str, verdict: Verdict) -> bool:
        """Whether `verdict` would make a block that enforces (nftables, a route, a hosts.deny
        line) where `address` has an active block that only runs KILL_RUN_CMD (BLOCK=2 of the
        other protocol). PortSentry 1.2 ran one process per protocol, each with its own
        BLOCKED_FILE.<mode>: its TCP side blocked a source that its UDP side had only run the
        command for. A plan with no such step (BLOCK=1 with the command alone) never
        supersedes: it would do the same again."""
        if address not in self._command_only:
            return False
        s = self.settings
        mode = s.block_tcp if verdict.probe.proto is Proto.TCP else s.block_udp
        return mode is BlockMode.BLOCK and lasting_steps(self._actions.blocks.steps(mode))

    def _superseded(self, address: str, verdict: Verdict) -> BlockRecord | None:
        """The address's active block that `verdict` supersedes (see _supersedes), read from
        the store (the loop's view may be a moment old)."""
        if not self._supersedes(address, verdict):
            return None
        record = self._store.active_block(address)
        if record is None or lasting(record.actions):
            self._command_only.discard(address)
            return None
        return record

    def _nft_add(self, source: IPAddress, until: float | None) -> Action:
        """Add `source`'s element (NftTable.add); if our table was gone and had to be made
        again, have the other active blocks put back."""
        done = self._actions.nft.add(source, until)
        if self._actions.nft.remade:
            self._sync()  # is it `unblock --all` that removed it? then nothing is lost
            if self._active - self._in_flight and not self._worker.putting_back.is_set():
                # Our table was gone (`nft flush ruleset`) and holds this block alone now (a
                # put-back under way was announced already and brings the others back).
                say_table_remade(self._alerts, self.settings, source)
                self._put_back_soon()
        return done

    def _put_element_back(self, source: IPAddress, now: float) -> None:
        """A probe from `source`, which is blocked, reached the sensors. They sit behind our
        input hook: if its block has an nftables element, the element is gone (`nft flush set`,
        `nft delete element`, which the check of the table every REFRESH_S does not see): add
        it again. Looked at once per ELEMENT_CHECK_S per source at most, and the kernel is
        asked first: a probe read just after the element was added may have come before it."""
        address = str(source)
        if now < self._element_checked.get(address, 0.0):
            return
        self._element_checked[address] = now + limits.ELEMENT_CHECK_S
        record = self._store.active_block(address)
        if record is None or not any(a.kind == NFT and a.status == DONE for a in record.actions):
            return
        if self._store.ending(record.id) is not None:
            return  # being unblocked: its element was removed on purpose (_unblock_at_once)
        if record.until is not None and record.until - time.time() < limits.ELEMENT_CHECK_S:
            return  # its time is up, or nearly: the kernel may have let it go (whole seconds)
        try:
            if self._actions.nft.blocker().has(source):
                return
        except NftError as error:
            log.error(
                "nftables: cannot tell whether %s is in its set: %s", address, one_line(str(error))
            )
            return
        done = self._nft_add(source, record.until)
        if done.status == DONE and not self._actions.nft.remade:
            log.warning(
                "nftables: element %s was gone from the sets of table inet %s (a flush "
                "or a delete by hand?): its probe came through; added again",
                address,
                self.settings.nft_table,
            )
            self._alerts.element_lost(address)

    def describe(self, summary: Verdict) -> str:
        """What was done about a summary's source, for reports: how it is blocked, or why not.
        For an IPv6 prefix (IPV6_SOURCE_PREFIX), about its last address, named first: each of
        its addresses is blocked on its own, so the prefix as a whole is not."""
        done = self._done_about(summary)
        return done if summary.prefix is None else f"{summary.probe.src}: {done}"

    def _done_about(self, summary: Verdict) -> str:
        address = str(summary.probe.src)
        record = self._store.active_block(address)
        if record is not None:
            # UTC: this text goes to the log and the JSON event log, whose times are all UTC.
            until = "forever" if record.until is None else utc_stamp(record.until)
            how = ", ".join(via(record.actions))  # a hosts.deny line not ours marked so
            return f"blocked via {how or 'nothing (every action failed)'} until {until}"
        if address in self._in_flight:
            return "being blocked"
        why = self._protected.get(summary.probe.src)
        if why is not None:
            return f"not blocked: {_protected_as(why)}"
        s = self.settings
        mode = s.block_tcp if summary.probe.proto is Proto.TCP else s.block_udp
        if mode is BlockMode.ALERT_ONLY:
            return f"not blocked (BLOCK_TCP={int(s.block_tcp)} BLOCK_UDP={int(s.block_udp)})"
        idle = self._idle(mode, summary.probe.proto)
        if idle is not None:
            return f"not blocked: {idle}"
        if summary.kind == "os-summary":
            return "not blocked: OS probing alone never blocks"
        ended = self._store.last_end(address)
        if ended is not None:
            return f"not blocked: its block ended ({ended[0]})"
        if self._over_max:
            return f"not blocked: BLOCKS_MAX={s.blocks_max} active blocks reached"
        if self._block_budget.refused:
            return f"not blocked: BLOCKS_PER_MINUTE={s.blocks_per_minute} reached"
        return "not blocked"

    def _idle(self, mode: BlockMode, proto: Proto) -> str | None:
        """Why a block in `mode` would do nothing (`BLOCK_TCP=2 but no KILL_RUN_CMD`), or None
        when its plan has a step."""
        if self._actions.blocks.steps(mode):
            return None
        key = "BLOCK_TCP" if proto is Proto.TCP else "BLOCK_UDP"
        return f"{key}={int(mode)} but {nothing_to_do(self.settings, mode)}"

    def _full(self) -> bool:
        """BLOCKS_MAX blocks are in force (or submitted): no new one until some end. No block
        in force is evicted to make room: an administrator's real blocks must stay, and a
        spoofed flood must not unblock a real scanner by pushing it out."""
        cap = self.settings.blocks_max
        return cap > 0 and len(self._active) >= cap

    def on_request(self, request: dict[str, Any]) -> "dict[str, Any] | Future[dict[str, Any]]":
        """`unblock` or `reapply` from the control socket: the answer comes from the worker,
        which takes them before the blocks waiting their turn. An unblock is begun here at once
        (_unblock_at_once)."""
        answer: Future[dict[str, Any]] = Future()
        network = None
        if request["command"] == "reapply":
            queued = self._worker.jobs.put(ReapplyJob(answer))
        else:
            try:  # every block only when asked in so many words
                network = (
                    None
                    if request.get("all") is True
                    else parse_network(str(request.get("network")))
                )
            except ValueError as error:
                return {"error": f"unblock: {one_line(str(error))}"}
            queued = self._worker.jobs.put(UnblockJob(network, answer))
            if queued:
                try:
                    self._unblock_at_once(network)
                except (sqlite3.Error, NftError) as error:  # the worker does it all anyway
                    log.warning(
                        "unblock: the first step failed (%s); the action worker does "
                        "the whole unblock",
                        one_line(str(error)),
                    )
        if not queued:
            return {"error": "the daemon's action queue is full; try again"}
        return answer

    def _unblock_at_once(self, network: Network | None) -> None:
        """The worker may be running a block's KILL_RUN_CMD (up to KILL_CMD_TIMEOUT) before it
        takes the unblock: meanwhile the matching blocks are marked as being unblocked and their
        nftables elements removed (Unblocker.unblock_at_once), so the source is let through at
        once and none of their actions not yet done is carried out. At most
        limits.UNBLOCK_AT_ONCE_MAX blocks: a wider unblock is all the worker's."""
        self._sync()
        if network is not None and network.num_addresses == 1:
            inside = iter({str(network.network_address)} & self._active)
        else:
            inside = (
                a for a in self._active if network is None or ipaddress.ip_address(a) in network
            )
        matching = list(itertools.islice(inside, limits.UNBLOCK_AT_ONCE_MAX + 1))
        if len(matching) > limits.UNBLOCK_AT_ONCE_MAX:
            return
        records = [r for a in matching if (r := self._store.active_block(a)) is not None]
        if records:
            self._actions.unblocks.unblock_at_once(records, UNBLOCK_COMMAND)

    def _submit(self, job: BlockJob) -> bool:
        """Queue a block for the worker. A full queue refuses it: the first refusal is said,
        naming the block dropped; the others are counted and said when the queue has room
        again (tick), so a burst is two lines, not one per block."""
        if self._worker.jobs.put(job):
            return True
        if not self._dropped:
            log.error(
                "action queue full (%d jobs waiting): block of %s dropped; further drops "
                "are counted until it has room",
                self._worker.jobs.blocks_max,
                job.record.address,
            )
        self._dropped += 1
        return False
