"""Unit tests never touch the host: no nftables table or blackhole route of theirs may be left
in the host's own network namespace (as root, a test that forgot to leave the kernel side out
would make our real table there)."""

import ctypes
import ctypes.util
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from portwarden import service
from portwarden.portmap import owner

# No time limit per example: the suite runs on a shared, loaded machine, where a slow example
# is the machine's doing, not a failure (a 200 ms deadline failed test_replay under load).
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")


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
def no_rpcbind_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """For the portmap tests: this host's passwd (an `_rpc` user, who cannot enter pytest's
    folders) is not the subject there; with no rpcbind found, no user reads the files for it."""
    monkeypatch.setattr(owner, "rpcbind_user", lambda: None)


LIBWRAP = ctypes.util.find_library("wrap")
HOSTS_FILES = ("hosts.allow", "hosts.deny")


@pytest.fixture
def libwrap_allows(tmp_path: Path) -> Iterator[Callable[[str], bool]]:
    """libwrap's own verdict for the rpcbind daemon on tmp_path's hosts.allow and hosts.deny
    (hosts_ctl, with the library's table paths pointed at the test files)."""
    if LIBWRAP is None:
        pytest.skip("libwrap is not installed")
    lib = ctypes.CDLL(LIBWRAP)
    lib.hosts_ctl.argtypes = [ctypes.c_char_p] * 4
    lib.hosts_ctl.restype = ctypes.c_int
    tables = [ctypes.c_void_p.in_dll(lib, f"hosts_{name}_table") for name in ("allow", "deny")]
    saved = [table.value for table in tables]
    paths = [ctypes.create_string_buffer(bytes(tmp_path / name)) for name in HOSTS_FILES]
    for table, path in zip(tables, paths, strict=True):
        table.value = ctypes.addressof(path)
    try:
        yield (
            lambda address: lib.hosts_ctl(b"rpcbind", b"unknown", address.encode(), b"unknown") == 1
        )
    finally:
        for table, value in zip(tables, saved, strict=True):
            table.value = value


@pytest.fixture
def notes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the daemon tells systemd (service.notify), in order."""
    said: list[str] = []

    def notify(message: str) -> bool:
        said.append(message)
        return True

    monkeypatch.setattr(service, "notify", notify)
    return said
