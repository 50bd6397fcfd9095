"""What portwarden's first start does to the files PortSentry left (README, "Migrating from
PortSentry"): BLOCKED_FILE.<mode> listed PortSentry's blocks of its last session, and
PortSentry emptied it at every start (Debian's portsentry.conf: "this session only"); so does
portwarden, then lists its own blocks there. HISTORY_FILE keeps every line, as PortSentry's."""

import ipaddress
from pathlib import Path

from portwarden.config import BlockMode
from portwarden.respond.actions import Actions
from portwarden.respond.block import BlockRequest
from portwarden.store.db import Store
from tests.unit.blocking import block, blocking_settings

PORTSENTRY_LINE = (
    "1700000000 - 11/14/2023 22:13:20 Host: 198.18.0.99/198.18.0.99 Port: 1 TCP Blocked\n"
)


def test_first_start_empties_portsentrys_blocked_files_and_keeps_its_history(
    tmp_path: Path,
) -> None:
    old = tmp_path / "portsentry"
    old.mkdir()
    for mode in ("atcp", "udp"):
        (old / f"portsentry.blocked.{mode}").write_text(PORTSENTRY_LINE)
    (old / "portsentry.history").write_text(PORTSENTRY_LINE)
    settings = blocking_settings(
        tmp_path,
        f'BLOCKED_FILE="{old}/portsentry.blocked"\n'
        f'HISTORY_FILE="{old}/portsentry.history"\n'
        'KILL_HOSTS_DENY="ALL: $TARGET$"\n',
    )
    actions = Actions(settings, Store(settings.state_dir / "portwarden.db"))
    # The start: portwarden knows none of PortSentry's blocks.
    assert actions.restorer.restore() == 0
    assert (old / "portsentry.blocked.atcp").read_text() == ""
    assert (old / "portsentry.blocked.udp").read_text() == ""
    assert (old / "portsentry.history").read_text() == PORTSENTRY_LINE
    made = block(
        actions,
        BlockRequest(
            ipaddress.ip_address("198.18.0.11"),
            "tcp",
            11,
            "stcp",
            "TCP SYN/Normal scan",
            BlockMode.BLOCK,
        ),
    )
    assert made is not None
    assert actions.restorer.restore() == 1  # a restart: portwarden's own blocks stay listed
    assert "/198.18.0.11 Port: 11 TCP Blocked" in (old / "portsentry.blocked.stcp").read_text()
    assert (old / "portsentry.history").read_text().startswith(PORTSENTRY_LINE)
