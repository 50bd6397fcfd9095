"""The settings sit below what acts on them: the many modules that only name Settings do not load
the store (sqlite3), the alert paths, the control socket, the audit or the portmapper with it."""

import os
import subprocess
import sys

import portwarden

_ABOVE_CONFIG = (
    "portwarden.alert",
    "portwarden.audit",
    "portwarden.control",
    "portwarden.net.portmapper",
    "portwarden.portmap",
    "portwarden.store",
)


def test_importing_the_settings_loads_nothing_that_acts_on_them() -> None:
    """In a fresh interpreter: this one has loaded everything the other tests import."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, portwarden.config; print(*sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.path.dirname(portwarden.__path__[0])},
    ).stdout.split()
    assert "portwarden.config.load" in loaded
    assert [name for name in loaded if name.startswith(_ABOVE_CONFIG)] == []
