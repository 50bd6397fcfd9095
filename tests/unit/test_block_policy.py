"""The loop's side of blocking: the cap on new blocks, what is logged for a blocked source."""

import contextlib
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.alert.dispatch import Alerts
from portwarden.config.values import NftUse
from portwarden.detect.engine import Verdict
from portwarden.detect.probe import SYN_SCAN, Probe
from portwarden.net.addresses import IPAddress, Proto
from portwarden.respond.policy import ResponsePolicy
from portwarden.store.db import NFT, Action, boot_id
from tests.unit.blocking import blocking_settings

TARGET = ipaddress.ip_address("198.18.0.1")


@contextlib.contextmanager
def stopped_worker(folder: Path, extra: str) -> Iterator[ResponsePolicy]:
    """A policy whose worker is not started: its block jobs stay queued, nothing is done.
    `extra`: configuration lines besides a hosts.deny action."""
    settings = blocking_settings(folder, f'KILL_HOSTS_DENY="ALL: $TARGET$"\n{extra}')
    made = ResponsePolicy(settings, folder / "store.db", Alerts(settings))
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def policy(tmp_path: Path) -> Iterator[ResponsePolicy]:
    with stopped_worker(tmp_path, 'BLOCKS_PER_MINUTE="10"\n') as made:
        yield made


def verdict(source: str, ports: int) -> Verdict:
    probe = Probe(ipaddress.ip_address(source), TARGET, Proto.TCP, 40000, 11, "stcp", SYN_SCAN)
    return Verdict("scan", probe, True, ports, ports, 0.0)


def flood(policy: ResponsePolicy, sources: int, ports: int) -> int:
    """`sources` spoofed addresses, each seen on `ports` ports; returns the blocks made."""
    for number in range(sources):
        policy.on_verdict(verdict(str(ipaddress.ip_address("198.18.1.0") + number), ports), 1.0)
    return policy.blocks_made


def test_one_probe_sources_get_the_cap(policy: ResponsePolicy) -> None:
    assert flood(policy, 40, 1) == 10


def test_sources_on_several_ports_count_in_the_cap_too(policy: ResponsePolicy) -> None:
    """SCAN_TRIGGER >= 3 makes every block one of a source seen on 3 ports: the second budget
    is extra, past the first, never instead of it."""
    assert flood(policy, 40, 24) == 20


def test_the_second_budget_asks_more_ports_the_fuller_it_is(policy: ResponsePolicy) -> None:
    """Spoofed sources that each touch 3 ports fill the first budget and the first quarter of
    the second (3 of 10 places: 3 ports, then 6, 12, 24): a real scanner seen on more ports
    still gets a place, and so on up to the cap."""
    assert flood(policy, 40, 3) == 13
    policy.on_verdict(verdict("198.18.0.11", 5), 2.0)
    assert policy.blocks_made == 13
    policy.on_verdict(verdict("198.18.0.11", 6), 2.0)
    assert policy.blocks_made == 14
    for number, ports in enumerate((6, 6, 12, 12, 12, 24, 24, 24)):
        policy.on_verdict(verdict(f"198.18.0.{20 + number}", ports), 2.0)
    assert policy.blocks_made == 20
    policy.on_verdict(verdict("198.18.0.40", 64), 2.0)
    assert policy.blocks_made == 20  # twice the cap: no more this minute


def test_the_second_budget_is_left_for_real_scanners(policy: ResponsePolicy) -> None:
    assert flood(policy, 40, 1) == 10
    policy.on_verdict(verdict("198.18.0.11", 20), 2.0)
    assert policy.blocks_made == 11


def test_already_blocked_is_said_once_and_only_after_the_block(
    policy: ResponsePolicy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "portwarden")
    policy.start()
    policy.on_verdict(verdict("198.18.0.11", 1), 1.0)
    policy.on_verdict(verdict("198.18.0.11", 2), 1.0)  # while the block is being made
    deadline = time.monotonic() + 5
    while policy.store.active_block("198.18.0.11") is None or "block address" not in caplog.text:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for _ in range(3):
        policy.tick(2.0)
        policy.on_verdict(verdict("198.18.0.11", 3), 2.0)
    lines = [r.getMessage().split()[0] for r in caplog.records if "198.18.0.11" in r.getMessage()]
    assert lines == ["block", "already-blocked"]


def test_a_summary_neither_says_already_blocked_nor_blocks_again(
    policy: ResponsePolicy, caplog: pytest.LogCaptureFixture
) -> None:
    """The summary comes SCAN_END_QUIET after the scan, with no new probe: by then the block may
    also have been lifted (unblock, a short BLOCK_DURATION)."""
    caplog.set_level(logging.INFO, "portwarden")
    policy.start()
    scan = verdict("198.18.0.12", 3)
    policy.on_verdict(scan, 1.0)
    deadline = time.monotonic() + 5
    while "198.18.0.12" in policy._in_flight:  # recorded at once, made by the worker, which
        assert time.monotonic() < deadline  # tells the loop after its log line
        time.sleep(0.01)
        policy.tick(2.0)
    record = policy.store.active_block("198.18.0.12")
    assert record is not None and "block address" in caplog.text
    policy.on_verdict(scan._replace(kind="scan-summary"), 2.0)
    assert "already-blocked" not in caplog.text
    policy.store.end_block(record.id, time.time(), "command")
    policy.tick(3.0)
    policy.on_verdict(scan._replace(kind="scan-summary"), 3.0)
    assert policy.blocks_made == 1
    assert policy.describe(scan._replace(kind="scan-summary")) == (
        "not blocked: its block ended (command)"
    )
    prober = verdict("198.18.0.13", 1)._replace(kind="os-summary")
    assert policy.describe(prober) == "not blocked: OS probing alone never blocks"
    # An IPv6 prefix's summary says which of its addresses it speaks of.
    one = verdict("2001:db8:1:2::7", 1)._replace(kind="os-summary")
    of_prefix = one._replace(prefix=ipaddress.IPv6Network("2001:db8:1:2::/64"))
    assert policy.describe(one) == "not blocked: OS probing alone never blocks"
    assert policy.describe(of_prefix) == (
        "2001:db8:1:2::7: not blocked: OS probing alone never blocks"
    )


def test_a_block_the_full_action_queue_refuses_is_recorded_as_failed_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every block is in the store from the moment it is decided; one the worker's queue
    cannot take is ended (failed: no offence), so nothing is left that the store forgets."""
    monkeypatch.setattr("portwarden.limits.BLOCK_QUEUE_MAX", 2)
    settings = blocking_settings(tmp_path, 'KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    policy = ResponsePolicy(settings, tmp_path / "store.db", Alerts(settings))
    try:
        assert flood(policy, 4, 3) == 2
        active = sorted(r.address for r in policy.store.active())
        assert active == ["198.18.1.0", "198.18.1.1"]  # recorded before the worker runs
        ended = policy.store.last_end("198.18.1.2")
        assert ended is not None and ended[0] == "failed"
        assert policy.store.offences("198.18.1.3") == 0
        assert not (tmp_path / "hosts.deny").exists()
    finally:
        policy.stop()


def test_the_element_the_loop_adds_is_recorded_done_in_the_same_insert(
    policy: ResponsePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the worker's turn the block is in force (its element is in the set): the store
    says so, so an unblock or a kill before that turn still leaves a HISTORY_FILE line."""
    actions = policy._actions
    actions.settings = dataclasses.replace(actions.settings, block_nftables=NftUse.ALWAYS)
    monkeypatch.setattr(actions.nft, "add", lambda address, until: Action(NFT, (), "done"))
    policy.on_verdict(verdict("198.18.0.11", 3), 1.0)
    (record,) = policy.store.active()
    assert [(a.kind, a.status) for a in record.actions] == [
        ("nft", "done"),
        ("hosts.deny", "planned"),
    ]


class SetsThatHoldEverything:
    """Our nftables sets as the kernel would answer: every element is there; asked, it notes."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def has(self, address: IPAddress) -> bool:
        self.asked.append(str(address))
        return True


@pytest.mark.parametrize(("left_s", "asked"), [(0.5, []), (30.0, ["198.18.0.11"])])
def test_a_block_within_a_second_of_its_end_is_not_checked_for_a_lost_element(
    policy: ResponsePolicy, monkeypatch: pytest.MonkeyPatch, left_s: float, asked: list[str]
) -> None:
    """A probe from a source blocked with nftables came through: the kernel is asked whether
    its element is still in the set (else it is added again), unless the block ends within
    ELEMENT_CHECK_S: the kernel counts timeouts in whole seconds and may have let it go, which
    is no lost element to put back."""
    sets = SetsThatHoldEverything()
    monkeypatch.setattr(policy._actions.nft, "blocker", lambda: sets)
    now = time.time()
    policy.store.add_block(
        "198.18.0.11", "tcp", 11, "stcp", SYN_SCAN, "", now, now + left_s, (Action(NFT),), boot_id()
    )
    policy.tick(1.0)
    policy.on_verdict(verdict("198.18.0.11", 1), 2.0)
    assert sets.asked == asked


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[ResponsePolicy]:
    """At most 5 active blocks (BLOCKS_MAX), far below BLOCKS_PER_MINUTE."""
    with stopped_worker(tmp_path, 'BLOCKS_PER_MINUTE="100"\nBLOCKS_MAX="5"\n') as made:
        yield made


def test_blocks_max_stops_new_blocks_once_said_and_evicts_none(
    capped: ResponsePolicy, caplog: pytest.LogCaptureFixture
) -> None:
    """A spoofed flood under the per-minute cap still fills the firewall without BLOCKS_MAX:
    past it no new block (a real scanner included: the blocks in force are kept), one line
    and one alert for the episode, detection goes on (the summary says why)."""
    caplog.set_level(logging.INFO, "portwarden")
    assert flood(capped, 20, 1) == 5
    capped.on_verdict(verdict("198.18.0.11", 64), 2.0)
    assert capped.blocks_made == 5
    assert sorted(r.address for r in capped.store.active()) == [f"198.18.1.{n}" for n in range(5)]
    reached = [r.message for r in caplog.records if "block-max" in r.message]
    assert reached == [
        "block-max reached: 5 active blocks (BLOCKS_MAX=5); no new block until "
        "some end (unblock, expiry); detection goes on"
    ]
    summary = verdict("198.18.0.11", 64)._replace(kind="scan-summary")
    assert capped.describe(summary) == "not blocked: BLOCKS_MAX=5 active blocks reached"


def end_the_first_of_five(capped: ResponsePolicy, now: float) -> None:
    """The first of the five flooded blocks ends (an unblock), the five carried out."""
    first = capped.store.active_block("198.18.1.0")
    assert first is not None and capped.store.end_block(first.id, time.time(), "command")
    capped._worker.finished.extend(f"198.18.1.{n}" for n in range(5))  # as if carried out
    capped.tick(now)


def test_blocks_max_ends_when_a_block_ends_and_blocks_resume(
    capped: ResponsePolicy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "portwarden")
    flood(capped, 8, 1)
    end_the_first_of_five(capped, 2.0)
    assert (
        "block-max ended: 4 active blocks now; 3 sources were not blocked while BLOCKS_MAX=5 "
        "was reached" in caplog.text
    )
    capped.on_verdict(verdict("198.18.0.11", 3), 3.0)
    assert capped.blocks_made == 6
    capped.on_verdict(verdict("198.18.0.12", 3), 3.0)
    assert capped.blocks_made == 6
    assert caplog.text.count("block-max reached") == 2  # a second episode, said again


def test_blocks_max_ended_counts_each_refused_source_once(
    capped: ResponsePolicy, caplog: pytest.LogCaptureFixture
) -> None:
    """A source refused on 3 ports (3 verdicts) is one source not blocked, not 3."""
    caplog.set_level(logging.INFO, "portwarden")
    flood(capped, 5, 1)
    for port in (11, 12, 13):
        probe = verdict("198.18.0.11", 3).probe._replace(dport=port)
        capped.on_verdict(verdict("198.18.0.11", 3)._replace(probe=probe), 2.0)
    capped.on_verdict(verdict("198.18.0.12", 3), 2.0)
    end_the_first_of_five(capped, 3.0)
    assert (
        "block-max ended: 4 active blocks now; 2 sources were not blocked while "
        "BLOCKS_MAX=5 was reached" in caplog.text
    )


def test_blocks_max_reached_gives_the_real_number_of_active_blocks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three blocks restored under BLOCKS_MAX=2 (it was lowered): the line and the event say
    3 blocks are in force, not 2."""
    caplog.set_level(logging.INFO, "portwarden")
    with stopped_worker(tmp_path, 'BLOCKS_MAX="2"\n') as policy:
        said: list[int] = []
        monkeypatch.setattr(policy._alerts, "block_max", said.append)
        for address in ("198.18.0.21", "198.18.0.22", "198.18.0.23"):
            policy.store.add_block(
                address, "tcp", 11, "stcp", SYN_SCAN, "", time.time(), None, (), boot_id()
            )
        policy.tick(1.0)
        policy.on_verdict(verdict("198.18.0.11", 64), 1.0)
        assert "block-max reached: 3 active blocks (BLOCKS_MAX=2)" in caplog.text
        assert said == [3]


def test_blocks_max_counts_the_blocks_restored_from_the_store(tmp_path: Path) -> None:
    with stopped_worker(tmp_path, 'BLOCKS_MAX="2"\n') as policy:
        for address in ("198.18.0.21", "198.18.0.22"):
            policy.store.add_block(
                address, "tcp", 11, "stcp", SYN_SCAN, "", time.time(), None, (), boot_id()
            )
        policy.tick(1.0)
        policy.on_verdict(verdict("198.18.0.11", 64), 1.0)
        assert policy.blocks_made == 0


def test_blocks_max_0_is_no_cap(tmp_path: Path) -> None:
    with stopped_worker(tmp_path, 'BLOCKS_PER_MINUTE="1000"\nBLOCKS_MAX="0"\n') as policy:
        assert flood(policy, 300, 1) == 300


def test_a_broadcast_address_of_this_hosts_subnet_is_never_blocked(
    policy: ResponsePolicy, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A SYN forged from 198.18.0.255 would blackhole this host's own subnet broadcasts."""
    caplog.set_level(logging.INFO, "portwarden")
    broadcasts = frozenset(ipaddress.IPv4Address(a) for a in ("198.18.0.0", "198.18.0.255"))
    monkeypatch.setattr("portwarden.respond.policy.broadcast_addresses", lambda: broadcasts)
    policy.refresh()
    for address in ("198.18.0.255", "198.18.0.0", "198.18.0.255"):
        policy.on_verdict(verdict(address, 64), 1.0)
    assert policy.blocks_made == 0
    lines = [r.message for r in caplog.records if r.message.startswith("not-blocking")]
    assert lines == [
        f"not-blocking address={a} why=broadcast (nothing allows it)"
        for a in ("198.18.0.255", "198.18.0.0")
    ]
    summary = verdict("198.18.0.255", 64)._replace(kind="scan-summary")
    assert policy.describe(summary) == (
        "not blocked: a broadcast or network address of this host's subnet"
    )


def test_a_full_action_queue_is_said_once_naming_the_address_then_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("portwarden.limits.BLOCK_QUEUE_MAX", 2)
    caplog.set_level(logging.INFO, "portwarden")
    with stopped_worker(tmp_path, "") as policy:
        assert flood(policy, 40, 3) == 2
        full = [r.message for r in caplog.records if "action queue" in r.message]
        assert full == [
            "action queue full (2 jobs waiting): block of 198.18.1.2 dropped; "
            "further drops are counted until it has room"
        ]
        policy.tick(2.0)
        assert "room again" not in caplog.text  # still full: nothing has been taken
        policy._worker.jobs.get()
        policy.tick(3.0)
        assert "action queue has room again: 38 jobs were dropped while it was full" in caplog.text
