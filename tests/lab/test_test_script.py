"""scripts/test.sh's policy-rc.d (no service starts during the install) never outlives it, not
even when apt-get fails under `set -e`: left behind, no package would start its services again.
Run in a private mount namespace with a folder over /usr/sbin, and with stand-ins for dpkg and
apt-get, so that the machine's own /usr/sbin and packages are never touched."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_lab
from tests.lab.isolated import NEW_MOUNTS

SCRIPT = Path(__file__).parents[2] / "scripts" / "test.sh"


def _stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


# Ctrl-C as a terminal sends it: to the script and to apt-get, which dies of it. (A stand-in
# that signalled the script alone and then exited 0 let a run go on past the install when the
# script's trap came late, into the whole suite, nested.)
@pytest.mark.parametrize(("install", "status"), [("exit 100", 100), ("kill -INT $PPID $$", 130)])
def test_policy_rc_d_is_removed_when_the_install_fails(
    tmp_path: Path, install: str, status: int
) -> None:
    require_lab()  # root, for the mount namespace
    sbin, bin_ = tmp_path / "sbin", tmp_path / "bin"
    sbin.mkdir()
    bin_.mkdir()
    seen = tmp_path / "seen"
    _stand_in(bin_, "dpkg", "exit 1")  # nothing installed yet
    _stand_in(
        bin_,
        "apt-get",
        f'[ "$1" = update ] && exit 0\ncat /usr/sbin/policy-rc.d > {seen}\n{install}',
    )
    script = f"mount --bind {sbin} /usr/sbin && exec sh {SCRIPT}"
    result = subprocess.run(
        [*NEW_MOUNTS, "sh", "-c", script],
        env={**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == status, result.stderr
    assert seen.read_text() == "#!/bin/sh\nexit 101\n"  # it was there during the install
    assert list(sbin.iterdir()) == []  # and is gone
