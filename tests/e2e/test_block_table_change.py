"""NFT_TABLE changed between runs: the blocks move to the new table and the old one, ours, is
removed at start; an `unblock` without a daemon removes the element from the table it was
added to; a table another running portwarden holds, or that holds what the store does not
know, is left as it is."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import SERVICE, StartDaemon, nmap
from tests.e2e.test_blocking import nft_elements, portwarden
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect

pytestmark = pytest.mark.usefixtures("echo_service")

NEW = "pwother"


def tables(lab: Lab) -> set[str]:
    out = lab.target.run(["nft", "list", "tables", "inet"]).stdout
    return {line.split()[-1] for line in out.splitlines()}


@pytest.fixture(autouse=True)
def no_new_table(lab: Lab) -> Iterator[None]:
    yield None
    lab.target.run(["nft", "delete", "table", "inet", NEW], check=False)


def blocked_then_stopped(lab: Lab, start_daemon: StartDaemon) -> tuple[RunningDaemon, str]:
    """A scanner blocked (forever) with the default table, the daemon stopped, and its
    configuration given NFT_TABLE="pwother"."""
    daemon = start_daemon("-stcp", "-sudp", conf='BLOCK_TCP="1"\n')
    attacker = lab.attackers[0]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    daemon.stop()
    conf = daemon.log_path.with_suffix(".conf")
    conf.write_text(f'NFT_TABLE="{NEW}"\n{conf.read_text()}')
    return daemon, attacker.ipv4


@pytest.mark.parametrize("stray", [False, True], ids=["ours-alone", "with-a-stray-element"])
def test_a_start_moves_the_blocks_to_the_new_table_and_removes_the_old(
    lab: Lab, start_daemon: StartDaemon, stray: bool
) -> None:
    daemon, source = blocked_then_stopped(lab, start_daemon)
    if stray:  # an element the store does not know: the old table is not ours to remove
        lab.target.run(
            ["nft", "add", "element", "inet", "portwarden", "blocked4", "{ 198.18.0.99 }"]
        )
    again = RunningDaemon(lab.target, daemon.log_path.with_suffix(".conf"), "-stcp", "-sudp")
    try:
        again.wait_for("ready:")
        moved = f"NFT_TABLE was portwarden, now {NEW}: 1 active block moved to table inet {NEW}"
        if stray:
            again.wait_for(
                f"{moved}; table inet portwarden is left as it is: it holds 1 element "
                "the store does not know"
            )
            assert nft_elements(lab.target) == {"198.18.0.99"}
        else:
            again.wait_for(f"{moved}; table inet portwarden removed")
            assert "portwarden" not in tables(lab)
        assert nft_elements(lab.target, NEW) == {source}
        assert not can_connect(lab.attackers[0], lab.target.ipv4, SERVICE)
        result = portwarden(lab.target, again, "unblock", source)
        assert result.returncode == 0 and f"unblocked {source}" in result.stdout
        assert nft_elements(lab.target, NEW) == set() and source not in nft_elements(lab.target)
        assert can_connect(lab.attackers[0], lab.target.ipv4, SERVICE)
    finally:
        again.stop()


def test_unblock_without_a_daemon_removes_the_element_from_the_table_it_went_into(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon, source = blocked_then_stopped(lab, start_daemon)
    assert not can_connect(lab.attackers[0], lab.target.ipv4, SERVICE)
    result = portwarden(lab.target, daemon, "unblock", source)
    assert result.returncode == 0 and f"unblocked {source}" in result.stdout
    assert source not in nft_elements(lab.target) | nft_elements(lab.target, NEW)
    assert can_connect(lab.attackers[0], lab.target.ipv4, SERVICE)


def test_an_old_table_another_running_daemon_holds_is_left_alone(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    daemon, _ = blocked_then_stopped(lab, start_daemon)
    other = tmp_path / "other.conf"  # another instance, with the default table
    other.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nUDP_MODE="none"\nBLOCK_TCP="1"\n'
    )
    held = RunningDaemon(lab.target, other, "-stcp")
    try:
        held.wait_for("ready:")
        lab.target.run(
            ["nft", "add", "element", "inet", "portwarden", "blocked4", "{ 198.18.0.98 }"]
        )  # the other daemon's block, say
        again = RunningDaemon(lab.target, daemon.log_path.with_suffix(".conf"), "-stcp", "-sudp")
        try:
            again.wait_for("ready:")
            again.wait_for(
                "table inet portwarden .an earlier NFT_TABLE. is held by another "
                "running portwarden: left as it is"
            )
            assert "198.18.0.98" in nft_elements(lab.target)
        finally:
            again.stop()
    finally:
        held.stop()


@pytest.mark.parametrize("stray", [False, True], ids=["ours-alone", "with-a-stray-element"])
def test_unblock_all_without_a_daemon_removes_the_old_table_too(
    lab: Lab, start_daemon: StartDaemon, stray: bool
) -> None:
    """After `unblock --all` no active block names the old table: the store's ended blocks
    do, and it goes as it would at start (ours alone, and nothing in it the store does not
    know)."""
    daemon, source = blocked_then_stopped(lab, start_daemon)
    if stray:
        lab.target.run(
            ["nft", "add", "element", "inet", "portwarden", "blocked4", "{ 198.18.0.99 }"]
        )
    result = portwarden(lab.target, daemon, "unblock", "--all")
    assert result.returncode == 0 and f"unblocked {source}" in result.stdout
    assert can_connect(lab.attackers[0], lab.target.ipv4, SERVICE)
    assert NEW not in tables(lab)
    if stray:
        assert "portwarden" in tables(lab) and nft_elements(lab.target) == {"198.18.0.99"}
        assert (
            "table inet portwarden (an earlier NFT_TABLE) is left as it is: it holds 1 "
            "element the store does not know" in result.stderr
        )
        lab.target.run(["nft", "delete", "table", "inet", "portwarden"])
    else:
        assert "removed nftables table inet portwarden (an earlier NFT_TABLE)" in result.stdout
        assert "portwarden" not in tables(lab)
