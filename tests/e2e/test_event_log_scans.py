"""The JSON event log keeps what syslog says of a scan: a scan type that joins partway (an
XMAS scan after a SYN scan, as nmap -O does) has its own `scan` event, and the summary lists
the ports probed."""

import json
import time
from pathlib import Path

from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon, nmap_runs
from tests.lab.syslogd import SyslogReceiver


def test_a_second_scan_type_and_the_ports_probed_are_in_the_json_log(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    syslog = SyslogReceiver(tmp_path / "log")
    try:
        daemon = start_daemon(
            "-stcp",
            conf=(
                f'UDP_MODE="none"\nSYSLOG_SOCKET="{syslog.path}"\nBLOCK_TCP="0"\n'
                'SCAN_END_QUIET="2"\nAUDIT_INTERVAL="0"\n'
            ),
        )
        attacker, target = lab.attackers[0], lab.target.ipv4
        nmap_runs(attacker, ["-sS", "-p", "11,15", target], ["-sX", "-p", "79,540", target])
        syslog.wait_for(
            rf"attackalert: TCP XMAS scan from host: {attacker.ipv4}/"
            rf"{attacker.ipv4} to TCP port: (79|540)$"
        )
        log = daemon.log_path.parent / "state" / "events.jsonl"
        deadline = time.monotonic() + 15
        while '"event":"scan-summary"' not in log.read_text():
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.1)
    finally:
        syslog.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    scans = [e for e in events if e["event"] == "scan"]
    assert [e["type"] for e in scans] == ["TCP SYN/Normal scan", "TCP XMAS scan"], scans
    assert scans[1]["port"] in (79, 540) and scans[1]["flags"] == "FIN+PSH+URG"
    (summary,) = (e for e in events if e["event"] == "scan-summary")
    assert sorted(summary["port_list"]) == [11, 15, 79, 540], summary
    assert summary["port_list"][0] == summary["first_port"]
    assert summary["port_list_cut"] is False and summary["ports"] == 4
