"""The embedded default configuration: Debian's portsentry.conf, log-only, in our own format.

A configuration file only needs the keys it changes; every key it leaves out takes the value
below. KILL_ROUTE, KILL_HOSTS_DENY and KILL_RUN_CMD are deliberately unset, so turning on
blocking uses the built-in firewall blocker unless the file names its own commands.
"""

import os
from pathlib import Path

DEFAULT_SOURCE = "<embedded defaults>"

DEFAULT_CONF = """\
TCP_MODE="tcp"
UDP_MODE="udp"
TCP_PORTS="1,11,15,79,111,119,143,540,635,1080,1524,2000,5742,6667,12345,12346,20034,27665,31337,32771,32772,32773,32774,40421,49724,54320"
UDP_PORTS="1,7,9,69,161,162,513,635,640,641,700,37444,34555,31335,32770,32771,32772,32773,32774,31337,54321"
ADVANCED_PORTS_TCP="1024"
ADVANCED_PORTS_UDP="1024"
ADVANCED_EXCLUDE_TCP="113,139"
ADVANCED_EXCLUDE_UDP="520,138,137,67,68,546"
RESOLVE_HOST="0"
BLOCK_UDP="0"
BLOCK_TCP="0"
KILL_RUN_CMD_FIRST="0"
SCAN_TRIGGER="0"
"""

SYSTEM_CONFIG = Path("/etc/portwarden/portwarden.conf")


def default_state_dir() -> Path:
    """/var/lib/portwarden for root; the XDG state directory for anyone else."""
    if os.geteuid() == 0:
        return Path("/var/lib/portwarden")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "portwarden"
