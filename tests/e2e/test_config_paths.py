"""A configuration path with a newline (`run -c $'/tmp/x\\ndir/x.conf'`) does not split the
daemon's log lines: its warnings and the ready line show it escaped, as check-config does."""

import re
from pathlib import Path

from portwarden.lab.network import Lab
from tests.lab.daemon import RunningDaemon

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} portwarden\[\d+\]: [A-Z]+ ")


def _run_until(lab: Lab, tmp_path: Path, conf: Path, settings: str, line: str) -> RunningDaemon:
    """Run the daemon on `conf` (STATE_DIR in `tmp_path`, then `settings`, no syslog) until
    it logs `line`, then stop it; it must stop cleanly (exit status 0)."""
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\n{settings}SYSLOG_SOCKET=""\n')
    daemon = RunningDaemon(lab.target, conf)
    try:
        daemon.wait_for(line)
    finally:
        assert daemon.stop()[0] == 0
    return daemon


def test_a_newline_in_the_config_path_does_not_split_a_log_line(lab: Lab, tmp_path: Path) -> None:
    folder = tmp_path / "x\ndir"
    folder.mkdir()
    conf = folder / "x.conf"
    daemon = _run_until(
        lab, tmp_path, conf, 'TCP_MODE="stcp"\nUDP_MODE="none"\nTCP_PORT="1"\n', "ready:"
    )
    shown = str(conf).replace("\n", "\\n")
    lines = daemon.log().splitlines()
    assert [line for line in lines if not LINE.match(line)] == []
    assert any(
        line.endswith(f"WARNING {shown}:4: unknown key TCP_PORT ignored (did you mean TCP_PORTS?)")
        for line in lines
    )
    assert any(
        f"ready: tcp mode stcp, udp mode off, config {shown}, state " in line for line in lines
    )


def test_both_modes_off_starts_with_a_warning_and_watches_nothing(lab: Lab, tmp_path: Path) -> None:
    """Debian's init script started nothing for TCP_MODE="" and UDP_MODE=""; portwarden starts
    (the port audit, status and the control socket work) and says it watches nothing."""
    conf = tmp_path / "off.conf"
    daemon = _run_until(
        lab, tmp_path, conf, 'TCP_MODE=""\nUDP_MODE="none"\n', "ready: tcp mode off, udp mode off, "
    )
    assert (
        f"WARNING {conf}:2: TCP_MODE and UDP_MODE are both off: without a mode flag the "
        "daemon watches nothing"
    ) in daemon.log()
