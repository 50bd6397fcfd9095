"""The loop's side of blocking: the cap on new blocks, what is logged for a blocked source."""

import ipaddress
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.alert.dispatch import Alerts
from portwarden.detect.engine import Verdict
from portwarden.detect.probe import SYN_SCAN, IPAddress, Probe, Proto
from portwarden.respond.actions import NFT
from portwarden.respond.policy import ResponsePolicy
from portwarden.store.db import Action, boot_id
from tests.unit.blocking import blocking_settings

TARGET = ipaddress.ip_address("198.18.0.1")


@pytest.fixture
def policy(tmp_path: Path) -> Iterator[ResponsePolicy]:
    """A policy whose worker is not started: its block jobs stay queued, nothing is done."""
    settings = blocking_settings(tmp_path, 'KILL_HOSTS_DENY="ALL: $TARGET$"\n'
                                 'BLOCKS_PER_MINUTE="10"\n')  # fmt: skip
    made = ResponsePolicy(settings, tmp_path / "store.db", Alerts(settings))
    yield made
    made.stop()


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
        "not blocked: its block ended (command)")  # fmt: skip
    prober = verdict("198.18.0.13", 1)._replace(kind="os-summary")
    assert policy.describe(prober) == "not blocked: OS probing alone never blocks"


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
    monkeypatch.setattr(policy._actions, "nft", lambda: sets)
    now = time.time()
    policy.store.add_block("198.18.0.11", "tcp", 11, "stcp", SYN_SCAN, "", now, now + left_s,
                           (Action(NFT),), boot_id())  # fmt: skip
    policy.tick(1.0)
    policy.on_verdict(verdict("198.18.0.11", 1), 2.0)
    assert sets.asked == asked
