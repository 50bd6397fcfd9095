"""scripts/run.sh (README's first command) starts without pip once .venv has this version: no
package index needed (an installed clone offline: pip's build isolation wanted setuptools>=68
from the index at every start) and no seconds spent reinstalling."""

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]


def setup(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", ". scripts/setup-python.sh"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_installed_venv_is_not_installed_again() -> None:
    assert setup(WITH_TEST="1").returncode == 0  # installs only if pyproject.toml changed
    for kind in ("1", "0"):  # the test tools cover a plain run too
        started = time.monotonic()
        offline = setup(WITH_TEST=kind, PIP_NO_INDEX="1")
        assert offline.returncode == 0, offline.stderr
        assert time.monotonic() - started < 2
