"""A slow scan (BLOCK_TCP=0: alert only) is never quiet for SCAN_END_QUIET, yet it is reported
while it goes on: after SCAN_REPORT_INTERVAL an interim summary says it is still going, in the
log, syslog, the JSON event log and the mail; the final summary covers what came after."""

import json
import re
from pathlib import Path

from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon
from tests.e2e.test_alerts import smtp_server, text_of, wait_for_mail
from tests.lab.syslogd import SyslogReceiver


def test_a_slow_scan_is_reported_while_it_goes_on_and_then_to_its_end(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    syslog = SyslogReceiver(tmp_path / "log")
    server = smtp_server(lab, lab.client.ipv4, "2527", str(inbox))
    daemon = start_daemon(
        "-stcp",
        conf=(
            f'BLOCK_TCP="0"\nSYSLOG_SOCKET="{syslog.path}"\n'
            'SCAN_END_QUIET="4"\nSCAN_REPORT_INTERVAL="4.5"\n'
            'MAIL_ON_TCP_SCAN="1"\nMAIL_TO="admin@example.org"\n'
            f'SMTP_RELAY="{lab.client.ipv4}"\nSMTP_PORT="2527"\n'
        ),
    )
    attacker, target = lab.attackers[0], lab.target.ipv4
    try:
        # Eight SYNs to the tripwire 11, one a second: never 4 s quiet until the last one (3 s
        # to spare for a late one on a loaded machine); the sixth comes 5 s after the first,
        # past SCAN_REPORT_INTERVAL, and two more after it.
        attacker.run(["hping3", "-S", "-c", "8", "-i", "1", "-p", "11", target], check=False)
        interim, final = wait_for_mail(inbox, 2)
    finally:
        server.kill()
        syslog.sock.close()
    summaries = daemon.attacks(kind="scan-summary", src=attacker.ipv4)
    assert [s.get("ongoing") for s in summaries] == ["yes", None]
    so_far, after = (int(s["probes"]) for s in summaries)
    assert so_far >= 2 and after >= 1 and so_far + after == 8  # 5 and 3 when on time
    # Syslog: scandetd's words, then that the scan goes on; the final line as before.
    lines = [line for line in syslog.lines if "Possible port scan" in line]
    head = f"Possible port scan from {attacker.ipv4} to {target} \\(TCP SYN/Normal scan\\)"
    assert len(lines) == 2
    assert re.search(f"{head}, still going \\({so_far} probes so far\\)$", lines[0])
    assert re.search(f"{head}$", lines[1])
    # The JSON event log: "ongoing", and the final part starts after the interim one ends.
    log = daemon.log_path.parent / "state" / "events.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    first, second = (e for e in events if e["event"] == "scan-summary")
    assert (first["ongoing"], first["probes"], second["ongoing"], second["probes"]) == (
        True,
        so_far,
        False,
        after,
    )
    assert first["last_seen"] <= second["started"]
    # The mails: the first says the scan is still going, the second does not.
    assert (
        interim["Subject"] == f"portwarden: TCP scan from {attacker.ipv4} to {target} (still going)"
    )
    assert final["Subject"] == f"portwarden: TCP scan from {attacker.ipv4} to {target}"
    interim_body, final_body = (text_of(m).replace("\r\n", "\n") for m in (interim, final))
    assert f"Probes:          {so_far}\n" in interim_body
    assert "Status:          still going: this report covers the scan so far" in interim_body
    assert "Action:          not blocked (BLOCK_TCP=0" in interim_body
    assert f"Probes:          {after}\n" in final_body and "Status:" not in final_body
