"""Unit tests never touch the host: no nftables table or blackhole route of theirs may be left
in the host's own network namespace (as root, a test that forgot to leave the kernel side out
would make our real table there)."""

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from portwarden import service


def _host_kernel_state() -> tuple[str, ...]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        return ()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    routes = [
        subprocess.run(
            ["ip", family, "route", "show", "type", "blackhole"], capture_output=True, text=True
        ).stdout
        for family in ("-4", "-6")
    ]
    return (tables, *routes)


@pytest.fixture(scope="module", autouse=True)
def host_left_alone() -> Iterator[None]:
    before = _host_kernel_state()
    yield
    assert _host_kernel_state() == before, "a unit test changed the host's nftables or routes"


@pytest.fixture(autouse=True)
def umask_restored() -> Iterator[None]:
    """`main()` sets the process's umask (077) as the command does; the next test must see the
    one it started with, or files it writes for another user (hosts.allow) turn 0600."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.fixture(autouse=True)
def claims_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock files of BLOCKED_FILE and EVENT_LOG (portwarden.claims) go to a test folder,
    not the host's /run."""
    monkeypatch.setattr("portwarden.claims.ROOT_CLAIMS", tmp_path_factory.mktemp("claims"))


@pytest.fixture
def notes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the daemon tells systemd (service.notify), in order."""
    said: list[str] = []

    def notify(message: str) -> bool:
        said.append(message)
        return True

    monkeypatch.setattr(service, "notify", notify)
    return said
