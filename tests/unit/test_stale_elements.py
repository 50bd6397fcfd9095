"""Elements of our nftables sets that the store does not list (a ruleset saved earlier and
restored with `nft -f`, a daemon killed between adding an element and recording its block):
`unblock NET` removes those inside NET, with a daemon or without, and `reapply` leaves the sets
holding exactly the active nftables blocks. Only an instance that works with nftables touches
the table, or holds NFT_TABLE to do so. The kernel's side is a stand-in here (no privileges):
tests/e2e/test_block_stale_elements.py has the real sets."""

import dataclasses
import ipaddress
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from portwarden import admin_output
from portwarden.alert.dispatch import Alerts
from portwarden.config import ConfigError
from portwarden.config.ignore import Network
from portwarden.config.values import NftUse
from portwarden.net.addresses import IPAddress
from portwarden.respond import admin
from portwarden.respond.actions import Actions
from portwarden.respond.nft import claim_table
from portwarden.respond.nft_table import NftTable, works_with_nft
from portwarden.respond.policy import ResponsePolicy
from portwarden.store.db import UNBLOCK_COMMAND, Action, Store
from tests.unit.blocking import blocking_settings
from tests.unit.test_actions import request

# A name no other test or daemon on this host holds (NFT_TABLE: a letter, then up to 31).
TABLE = f"pwunit{os.getpid()}"
NFT_ADDED = Action("nft", (), "done", (TABLE,))


class Sets:
    """Our two sets, as the kernel would hold them."""

    def __init__(self) -> None:
        self.elements: set[str] = set()
        self.dropped = False

    def elements_inside(self, network: Network | None) -> list[IPAddress]:
        found = [ipaddress.ip_address(a) for a in sorted(self.elements)]
        return [a for a in found if network is None or a in network]

    def add(self, address: IPAddress, seconds: int | None) -> bool:
        self.elements.add(str(address))
        return False

    def remove(self, addresses: Iterable[IPAddress]) -> None:
        self.elements -= {str(a) for a in addresses}

    def put_back(self, blocks: Iterable[tuple[object, int | None]]) -> None:
        self.elements |= {str(a) for a, _ in blocks}

    def drop_table(self) -> bool:
        self.dropped = True
        self.elements.clear()
        return True


@pytest.fixture
def sets(monkeypatch: pytest.MonkeyPatch) -> Sets:
    kernel = Sets()
    monkeypatch.setattr(NftTable, "_unchecked", lambda self: kernel)
    monkeypatch.setattr(NftTable, "blocker", lambda self: kernel)
    return kernel


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Actions]]:
    """Actions of an instance with NFT_TABLE=TABLE; `extra`: more configuration lines.
    `BLOCK_NFTABLES="0"` unless set otherwise with `nft`."""
    stores: list[Store] = []

    def build(extra: str = "", nft: bool = True) -> Actions:
        settings = blocking_settings(tmp_path, f'NFT_TABLE="{TABLE}"\n{extra}')
        if nft:
            settings = dataclasses.replace(settings, block_nftables=NftUse.ALWAYS)
        stores.append(Store(settings.state_dir / "portwarden.db"))
        return Actions(settings, stores[-1])

    yield build
    for store in stores:
        store.close()


def blocked(actions: Actions, *addresses: str) -> None:
    """Blocks made as the daemon makes them: the loop's element, then the worker's turn."""
    for address in addresses:
        actions.nft.add(ipaddress.ip_address(address), None)
        record = actions.blocks.record(request(address), time.time(), None, NFT_ADDED)
        assert record is not None
        actions.blocks.carry_out(record, NFT_ADDED)


def net(text: str) -> Network:
    return ipaddress.ip_network(text)


def test_a_restored_old_ruleset_is_undone_by_unblock_and_by_reapply(
    make: Callable[..., Actions], sets: Sets
) -> None:
    """The reviewer's case: blocks .50 .51 .52, the ruleset saved, .50 unblocked, .53 blocked,
    the saved ruleset restored: .50 is back and .53 gone. `unblock .50` (what the daemon's
    worker runs) finds no active block but removes the element; `reapply` puts .53 back and
    removes the ended block's element."""
    actions = make()
    blocked(actions, "198.18.1.50", "198.18.1.51", "198.18.1.52")
    saved = set(sets.elements)
    _, answer = admin.unblock_here(actions, net("198.18.1.50"))
    assert answer["unblocked"] == ["198.18.1.50"] and answer.get("swept") == 0
    blocked(actions, "198.18.1.53")
    sets.elements = set(saved)  # nft -f saved.nft
    _, answer = admin.unblock_here(actions, net("198.18.1.50"))
    assert answer["unblocked"] == [] and answer.get("swept") == 1
    assert sets.elements == {"198.18.1.51", "198.18.1.52"}
    lines = admin_output.unblock_lines(answer, actions.settings, net("198.18.1.50"))
    assert [line.text for line in lines] == [
        "removed 1 nftables element for 198.18.1.50 that the store did not list"
    ]
    sets.elements = set(saved)
    again = admin.reapply_here(actions)
    assert again.get("nft_blocks") == 3 and again.get("nft_swept") == 1
    assert sets.elements == {"198.18.1.51", "198.18.1.52", "198.18.1.53"}
    assert [line.text for line in admin_output.reapply_lines(again, actions.settings)] == [
        f"nftables: 3 blocks in table inet {TABLE}",
        "removed 1 nftables element that the store did not list",
    ]
    again = admin.reapply_here(actions)
    assert again.get("nft_swept") == 0


def test_the_sweep_keeps_the_active_blocks_and_takes_those_being_unblocked(
    make: Callable[..., Actions], sets: Sets
) -> None:
    """What the store lists is each active nftables block's address, but not one whose
    unblock has begun (the loop removed its element on purpose: see unblock_at_once)."""
    actions = make()
    blocked(actions, "198.18.1.50", "198.18.1.51", "198.18.2.1")
    (ending,) = [r for r in actions.store.active() if r.address == "198.18.1.51"]
    actions.store.start_unblocking([ending.id], UNBLOCK_COMMAND)
    sets.elements |= {"198.18.1.51", "198.18.1.99", "198.18.2.99"}
    assert actions.nft.sweep(net("198.18.1.0/24"), actions.restorer.in_nft_sets) == 2
    assert sets.elements == {"198.18.1.50", "198.18.2.1", "198.18.2.99"}


@pytest.mark.parametrize("count", [1, 2])
def test_reapply_and_unblock_say_their_numbers_in_the_right_number(
    make: Callable[..., Actions], count: int
) -> None:
    settings = make().settings
    noun = "element" if count == 1 else "elements"
    answer: admin.ReapplyAnswer = {
        "reapplied": [],
        "not_reapplied": [],
        "nft_blocks": count,
        "nft_swept": count,
    }
    assert [line.text for line in admin_output.reapply_lines(answer, settings)] == [
        f"nftables: {count} {'block' if count == 1 else 'blocks'} in table inet {TABLE}",
        f"removed {count} nftables {noun} that the store did not list",
    ]


def test_an_instance_without_nftables_leaves_the_table_to_the_daemon_that_holds_it(
    make: Callable[..., Actions], sets: Sets
) -> None:
    """KILL_HOSTS_DENY alone (no nftables, ever), while another daemon here blocks with a
    table of the same name: `run` starts beside it, and so `unblock` and `reapply` work too,
    without a daemon, and leave that table and its elements alone (they are the other's)."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n', nft=False)
    record = actions.blocks.record(request("198.18.0.11"), time.time(), None)
    assert record is not None and actions.blocks.carry_out(record) is not None
    sets.elements = {"198.18.0.12"}  # the other daemon's block
    held = claim_table(TABLE, "the other daemon")
    try:
        assert not works_with_nft(actions.settings, actions.store)
        assert admin_output.unblock(actions.settings, "198.18.0.0/24") == 0
        assert admin_output.reapply(actions.settings) == 0
        assert admin_output.unblock(actions.settings, None) == 0
    finally:
        held.close()
    assert actions.store.active() == []
    assert sets.elements == {"198.18.0.12"} and not sets.dropped


def test_an_instance_that_blocked_with_nftables_holds_the_table_to_touch_it(
    make: Callable[..., Actions], sets: Sets, capsys: pytest.CaptureFixture[str]
) -> None:
    """The built-in blocker switched off after it blocked: an element of its ended blocks may
    still be there (a restored ruleset brings it back), so `unblock` still removes it, holding
    NFT_TABLE as `run` does; while another daemon holds it, nothing is changed."""
    actions = make()
    blocked(actions, "198.18.0.11")
    admin.unblock_here(actions, None)
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n', nft=False)
    assert works_with_nft(actions.settings, actions.store)
    sets.elements = {"198.18.0.11"}  # an old ruleset restored
    held = claim_table(TABLE, "the other daemon")
    try:
        assert admin_output.unblock(actions.settings, "198.18.0.0/24") == 1
        assert "nothing was changed" in capsys.readouterr().err
    finally:
        held.close()
    assert sets.elements == {"198.18.0.11"}
    assert admin_output.unblock(actions.settings, "198.18.0.0/24") == 0
    assert capsys.readouterr().out == (
        "removed 1 nftables element inside 198.18.0.0/24 that the store did not list\n"
    )
    assert sets.elements == set()


def test_a_daemon_that_blocked_with_nftables_holds_the_table_from_its_start(
    tmp_path: Path,
) -> None:
    """As `unblock` without a daemon: its start puts the blocks of its store back in the
    table (or its `unblock` sweeps it), so a second daemon must not block with it."""
    settings = blocking_settings(tmp_path, f'NFT_TABLE="{TABLE}"\n')
    store = Store(tmp_path / "store.db")
    held = claim_table(TABLE, "the other daemon")
    try:
        policy = ResponsePolicy(settings, tmp_path / "store.db", Alerts(settings))
        policy.claim_table(settings)  # no nftables, ever: not claimed
        policy.stop()
        address = "198.18.0.11"
        store.add_block(address, "tcp", 11, "stcp", "test", address, 1.0, None, (NFT_ADDED,), "")
        policy = ResponsePolicy(settings, tmp_path / "store.db", Alerts(settings))
        with pytest.raises(ConfigError, match="another portwarden in this network namespace"):
            policy.claim_table(settings)
        policy.stop()
    finally:
        held.close()
        store.close()
