"""Which namespaces the lab may remove: its own names only, never another's (no namespace is
touched here)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from portwarden.lab import demo
from portwarden.lab.network import LabPrefixError, check_prefix, is_lab_namespace

NO_SUCH_PID = 99_999_999  # above any pid_max


@pytest.mark.parametrize("prefix", ["", "-", "pwt", "PWT-", "pw t-", "pwt-*", "../x-", "pwt--"])
def test_a_prefix_that_could_match_others_is_refused(prefix: str) -> None:
    with pytest.raises(LabPrefixError, match="must be lower-case letters and digits"):
        check_prefix(prefix)
    with pytest.raises(LabPrefixError):
        is_lab_namespace("pwt-target", prefix)


@pytest.mark.parametrize("prefix", ["pwt-", "f2-", "pwlab-123-", "f2-stale-"])
def test_good_prefixes_pass(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize(
    "name", ["f2-sw", "f2-target", "f2-atk1", "f2-atk12", "f2-client", "f2-probe77", "f2-behind"]
)
def test_the_labs_own_names_match(name: str) -> None:
    assert is_lab_namespace(name, "f2-")


@pytest.mark.parametrize(
    "name",
    [
        "f2-stale-target",
        "f2-targetx",
        "f2-atk",
        "f2-my-vpn",
        "f2-",
        "xf2-target",
        "f3-target",
        "cni-1234",
        "f2-sw2",
    ],
)
def test_other_names_with_or_without_the_prefix_do_not(name: str) -> None:
    assert not is_lab_namespace(name, "f2-")


def test_a_killed_demo_runs_namespaces_and_folder_are_orphans(tmp_path: Path) -> None:
    folder = tmp_path / f"portwarden-lab-{NO_SUCH_PID}-abc"
    found = demo.orphans(
        [f"pwlab-{NO_SUCH_PID}-target", "pwlab-x-target", "pwt-target"],
        [folder, tmp_path / "portwarden-lab-abc"],
    )
    assert found == {NO_SUCH_PID: [folder]}
    # a namespace that only starts like a demo's is not the demo's
    assert demo.orphans([f"pwlab-{NO_SUCH_PID}-other"], []) == {}


def test_a_running_demos_leftovers_are_not_orphans(tmp_path: Path) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "portwarden"])
    try:
        deadline = time.monotonic() + 5  # its command line is the new program's once it runs
        while b"portwarden" not in Path(f"/proc/{alive.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline and alive.poll() is None
            time.sleep(0.01)
        folder = tmp_path / f"portwarden-lab-{alive.pid}-abc"
        assert demo.orphans([f"pwlab-{alive.pid}-sw"], [folder]) == {}
    finally:
        alive.kill()
        alive.wait()
