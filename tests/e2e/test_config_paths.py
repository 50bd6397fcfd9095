"""A configuration path with a newline (`run -c $'/tmp/x\\ndir/x.conf'`) does not split the
daemon's log lines: its warnings and the ready line show it escaped, as check-config does."""

import re
from pathlib import Path

from portwarden.lab.network import Lab
from tests.lab.daemon import RunningDaemon

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} portwarden\[\d+\]: [A-Z]+ ")


def test_a_newline_in_the_config_path_does_not_split_a_log_line(lab: Lab, tmp_path: Path) -> None:
    folder = tmp_path / "x\ndir"
    folder.mkdir()
    conf = folder / "x.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
                    'TCP_PORT="1"\nSYSLOG_SOCKET=""\n')  # fmt: skip
    daemon = RunningDaemon(lab.target, conf)
    try:
        daemon.wait_for("ready:")
    finally:
        daemon.stop()
    shown = str(conf).replace("\n", "\\n")
    lines = daemon.log().splitlines()
    assert [line for line in lines if not LINE.match(line)] == []
    assert any(line.endswith(f"WARNING {shown}:4: unknown key TCP_PORT ignored (did you mean "
                             "TCP_PORTS?)") for line in lines)  # fmt: skip
    assert any(f"ready: tcp mode stcp, udp mode off, config {shown}, state " in line
               for line in lines)  # fmt: skip


def test_both_modes_off_starts_with_a_warning_and_watches_nothing(lab: Lab, tmp_path: Path) -> None:
    """Debian's init script started nothing for TCP_MODE="" and UDP_MODE=""; portwarden starts
    (the port audit, status and the control socket work) and says it watches nothing."""
    conf = tmp_path / "off.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nTCP_MODE=""\nUDP_MODE="none"\n'
                    'SYSLOG_SOCKET=""\n')  # fmt: skip
    daemon = RunningDaemon(lab.target, conf)
    try:
        daemon.wait_for("ready: tcp mode off, udp mode off, ")
    finally:
        assert daemon.stop()[0] == 0
    assert (f"WARNING {conf}:2: TCP_MODE and UDP_MODE are both off: without a mode flag the "
            "daemon watches nothing") in daemon.log()  # fmt: skip
