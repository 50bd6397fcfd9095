"""Python scripts run in namespaces of their own (`unshare`: the namespace and everything in it
vanish with the process), for lab tests that ask the real kernel and read back a JSON answer."""

import json
import subprocess
import sys
from typing import Any

NEW_NETWORK = ("unshare", "-n")
NEW_MOUNTS = ("unshare", "-m", "--propagation", "private")


def printed_json(namespace: tuple[str, ...], script: str, *args: str, timeout: float = 30) -> Any:
    """What `script` (with `args` as sys.argv[1:]) printed as JSON, run by a fresh Python under
    `namespace` (NEW_NETWORK or NEW_MOUNTS); a failing script fails the test."""
    out = subprocess.run(
        [*namespace, sys.executable, "-c", script, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return json.loads(out.stdout)
