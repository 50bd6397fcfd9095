"""Alerts an administrator receives: mail through a real SMTP server, syslog lines on a real
datagram socket, the JSON event log; none of them can stall detection or be forged."""

import email
import email.utils
import errno
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import NamedTuple

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import NMAP_OS_ONCE, SERVICE, StartDaemon, nmap, nmap_runs
from tests.lab import logwatch
from tests.lab.daemon import RunningDaemon, start_with_hosts_file
from tests.lab.isolated import NEW_MOUNTS
from tests.lab.services import can_connect
from tests.lab.syslogd import SyslogReceiver
from tests.lab.tls import make_relay_certificate

SMTP = Path(__file__).parent.parent / "lab" / "smtp.py"
# fail2ban's published filter (Debian's package), which reads PortSentry's history file.
FAIL2BAN_PORTSENTRY = Path("/etc/fail2ban/filter.d/portsentry.conf")


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[SyslogReceiver]:
    receiver = SyslogReceiver(tmp_path / "log")
    yield receiver
    receiver.sock.close()


def smtp_server(lab: Lab, *args: str) -> subprocess.Popen:
    proc = lab.client.popen([sys.executable, str(SMTP), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and "listening" in proc.stdout.readline()
    return proc


def made_inbox(tmp_path: Path) -> Path:
    """The folder where the lab's SMTP server (smtp_server) saves each mail it takes."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return inbox


class Relay(NamedTuple):
    """The lab's SMTP server on the client, plain and open, saving each mail it takes."""

    inbox: Path
    server: subprocess.Popen
    conf: str  # the daemon's SMTP_RELAY and SMTP_PORT lines for it


def started_relay(lab: Lab, tmp_path: Path, port: str) -> Relay:
    inbox = made_inbox(tmp_path)
    server = smtp_server(lab, lab.client.ipv4, port, str(inbox))
    return Relay(inbox, server, f'SMTP_RELAY="{lab.client.ipv4}"\nSMTP_PORT="{port}"\n')


def wait_for_mail(folder: Path, count: int, timeout: float = 30) -> list[Message]:
    deadline = time.monotonic() + timeout
    while len(list(folder.glob("*.eml"))) < count:
        assert time.monotonic() < deadline, f"only {len(list(folder.glob('*.eml')))} mails"
        time.sleep(0.1)
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


def text_of(mail: Message) -> str:
    """The body of a one-part mail, as sent."""
    body = mail.get_payload()
    assert isinstance(body, str), f"not a one-part mail: {mail['Content-Type']}"
    return body


def report_fields(mail: Message) -> dict[str, str]:
    """The `Name: value` lines of a report's body, values stripped."""
    pairs = (line.split(":", 1) for line in text_of(mail).strip().splitlines())
    return {key: value.strip() for key, value in pairs}


def stamp_of(logged: str) -> float:
    """An attack line's `time=` (UTC, ISO 8601 with milliseconds) in epoch seconds."""
    return datetime.fromisoformat(logged.replace("Z", "+00:00")).timestamp()


def local_time(text: str) -> int:
    """A mail's time (`2026-11-24 13:09:42 +0100`) in epoch seconds."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").timestamp())


def banned_by_fail2ban(history: Path) -> list[str]:
    """The addresses fail2ban's portsentry filter finds in `history`, one per matching line."""
    return subprocess.run(
        ["fail2ban-regex", "--out", "ip", str(history), str(FAIL2BAN_PORTSENTRY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()


def test_mail_syslog_json_and_fail2ban_for_an_nmap_scan(
    lab: Lab, start_daemon: StartDaemon, syslog: SyslogReceiver, tmp_path: Path
) -> None:
    inbox = made_inbox(tmp_path)
    # A relay that wants STARTTLS, with a certificate from a private CA, then a login.
    tls = make_relay_certificate(tmp_path, lab.client.ipv4)
    password = tmp_path / "smtp.secret"
    password.write_text("s3cret pass\n# the first line is the password\n")
    password.chmod(0o600)
    server = smtp_server(
        lab,
        lab.client.ipv4,
        "2525",
        str(inbox),
        "--tls",
        str(tls.cert),
        str(tls.key),
        "--auth",
        "pw-target",
        "s3cret pass",
    )
    daemon = start_daemon(
        "-stcp",
        "-sudp",
        conf=(
            f'SMTP_STARTTLS="1"\nSMTP_CA_FILE="{tls.ca}"\nSMTP_USER="pw-target"\n'
            f'SMTP_PASSWORD_FILE="{password}"\n'
            f'BLOCK_TCP="1"\nSYSLOG_SOCKET="{syslog.path}"\nSYSLOG_FACILITY="local3"\n'
            'MAIL_ON_TCP_SCAN="1"\nMAIL_ON_OS_PROBE="1"\nSCAN_END_QUIET="2"\n'
            'MAIL_FROM="portwarden@target.example"\n'
            'MAIL_TO="admin@example.org, security@example.org"\n'
            'MAIL_SUBJECT="[pw] %p scan from %s to %d (100%%)"\n'
            f'SMTP_RELAY="{lab.client.ipv4}"\nSMTP_PORT="2525"\nSMTP_HELO="target.example"\n'
            'LOG_CONNECTIONS="1"\nLOG_DETAILS="1"\n'
        ),
    )
    attacker, target = lab.attackers[0], lab.target.ipv4
    try:
        nmap(attacker.run, "-sS", "-p", "1-20", target)  # tripwires 1, 11 and 15
        (mail,) = wait_for_mail(inbox, 1)
    finally:
        server.kill()
    assert (inbox / "0001.login").read_text() == "pw-target"
    assert mail["From"] == "portwarden@target.example"
    assert mail["To"] == "admin@example.org, security@example.org"
    assert mail["Subject"] == f"[pw] TCP scan from {attacker.ipv4} to {target} (100%)"
    assert (inbox / "0001.rcpt").read_text().split() == [
        "admin@example.org",
        "security@example.org",
    ]
    body = report_fields(mail)
    assert body["Source"] == attacker.ipv4 and body["Destination"] == target
    assert body["Protocol"] == "TCP" and body["Scan type"] == "TCP SYN/Normal scan"
    # The block lands within a packet or two, so the rest of nmap's burst may never reach the
    # sensor: the mail counts exactly the probes the daemon logged before it.
    seen = [a["port"] for a in daemon.attacks(src=attacker.ipv4, kind="scan")]
    assert seen and set(seen) <= {"1", "11", "15"}
    assert body["Probes"] == str(len(seen)) and body["Distinct ports"] == str(len(set(seen)))
    assert body["First port"].split()[0] == seen[0]
    assert body["Last port"].split()[0] == seen[-1]
    # The times are the probes' own (logged to the millisecond), in whole seconds.
    probed = [stamp_of(a["time"]) for a in daemon.attacks(src=attacker.ipv4, kind="scan")]
    assert local_time(body["Started"]) == int(probed[0])
    assert local_time(body["Last seen"]) == int(probed[-1])
    assert local_time(body["First port"].split(" at ")[1]) == int(probed[0])
    assert local_time(body["Last port"].split(" at ")[1]) == int(probed[-1])
    assert body["Mode"] == "stcp"
    sent = email.utils.parsedate_to_datetime(mail["Date"]).timestamp()
    assert int(probed[-1]) <= sent <= time.time()
    assert mail["Auto-Submitted"] == "auto-generated"
    assert body["Action"] == "blocked via nft until forever"
    assert body["Flags seen"] == "SYN"
    # Syslog: PortSentry's wording, our ident and the configured facility (local3 = 19).
    line = syslog.wait_for(
        rf"attackalert: TCP SYN/Normal scan from host: {attacker.ipv4}/"
        rf"{attacker.ipv4} to TCP port: (1|11|15)$"
    )
    assert line.startswith(f"<{19 * 8 + 5}>") and " portwarden[" in line
    syslog.wait_for(
        rf"attackalert: Host {attacker.ipv4} has been blocked via nftables set inet "
        r"portwarden blocked4$"
    )
    syslog.wait_for(rf"Possible port scan from {attacker.ipv4} to {target} \(TCP SYN/Normal")
    syslog.wait_for(rf"port (1|11|15) connection attempt from {attacker.ipv4}$")
    syslog.wait_for(rf"TCP {attacker.ipv4}\(\d+\) -> {target}\((1|11|15)\)$")
    # fail2ban's portsentry filter, run by fail2ban-regex on the history file, finds the scanner.
    history = daemon.log_path.parent / "state" / "portsentry.history"
    assert banned_by_fail2ban(history) == [attacker.ipv4]
    # logwatch's PortSentry report on these lines, as rsyslog writes them to /var/log/messages:
    # empty with Debian's service file (it keeps the ident portsentry only), the scan and the
    # block with ours.
    share = logwatch.share()
    assert share is not None, "logwatch is not unpacked: run scripts/test.sh"
    messages = [logwatch.file_line(line, "target") for line in syslog.lines]
    assert logwatch.report(share, share / logwatch.DEBIAN_PORTSENTRY, messages).strip() == ""
    report = logwatch.report(share, logwatch.OVERRIDE, messages)
    ports = " ".join(dict.fromkeys(sorted(seen, key=int)))
    assert f"TCP SYN/Normal from:\n      {attacker.ipv4}: ports: {ports}\n" in report, report
    assert f"Warning: Blocked route from/to {attacker.ipv4} 1 times(s)." in report, report
    # JSON event log: the first probe, the block, the summary, with stable fields.
    events = [
        json.loads(x)
        for x in (daemon.log_path.parent / "state" / "events.jsonl").read_text().splitlines()
    ]
    kinds = [e["event"] for e in events]
    assert {"scan", "block", "scan-summary"} <= set(kinds)
    summary = next(e for e in events if e["event"] == "scan-summary")
    assert summary["src"] == attacker.ipv4 and summary["probes"] == len(seen)
    assert summary["action"] == "blocked via nft until forever"
    assert set(summary) >= {"time", "started", "last_seen", "first_port", "last_port", "types"}
    assert summary["flags"] == ["SYN"]
    daemon.stop()


@pytest.mark.usefixtures("echo_service")
def test_the_os_probe_mail_for_nmap_os_detection(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """nmap -O sends TCP probes and one UDP probe (U1): the mail says both protocols, each
    probe's pattern, and which host was probed. It comes OS_PROBE_QUIET after the last."""
    inbox, server, relay = started_relay(lab, tmp_path, "2528")
    start_daemon(
        "-stcp",
        "-sudp",
        conf=(
            'MAIL_ON_OS_PROBE="1"\nMAIL_TO="admin@example.org"\nMAIL_SUBJECT="%p OS probe from '
            '%s"\n'
            f"{relay}"
        ),
    )
    attacker = lab.attackers[1]
    try:
        nmap(attacker.run, *NMAP_OS_ONCE, "-p", str(SERVICE), lab.target.ipv4)
        (mail,) = wait_for_mail(inbox, 1, timeout=40)
    finally:
        server.kill()
    assert mail["Subject"] == f"TCP+UDP OS probe from {attacker.ipv4}"
    body = report_fields(mail)
    hostname = lab.target.run(["hostname"]).stdout.strip()
    assert body["Target host"] == hostname
    assert body["Source"] == attacker.ipv4 and body["Destination"] == lab.target.ipv4
    assert body["Protocol"] == "TCP+UDP"
    assert body["Scan type"] == "OS fingerprinting probe (nmap)"
    assert {"udp/U1", "SYN/SEQ1", "NULL/T2"} <= set(body["Flag patterns"].split())
    assert int(body["Probes"]) >= 8
    assert body["Action"] == "not blocked (BLOCK_TCP=0 BLOCK_UDP=0)"


@pytest.mark.parametrize("relay", ["hang", "refuse"])
def test_a_dead_relay_never_stalls_detection(
    lab: Lab, start_daemon: StartDaemon, relay: str
) -> None:
    """The hanging relay holds the mail for SMTP_TIMEOUT (12 s): the next scan is reported
    long before, while the mail still waits."""
    server = smtp_server(lab, "--hang", lab.client.ipv4, "2526") if relay == "hang" else None
    daemon = start_daemon(
        "-stcp",
        "-sudp",
        conf=(
            'MAIL_ON_TCP_SCAN="1"\nSCAN_END_QUIET="1"\nMAIL_TO="admin@example.org"\n'
            f'SMTP_RELAY="{lab.client.ipv4}"\nSMTP_PORT="2526"\nSMTP_TIMEOUT="12"\n'
        ),
    )
    not_delivered = (
        r"mail 'portwarden: TCP scan from [^']*' via .*: not delivered to "
        r"admin@example.org for now \(.*\); trying again in 300 s"
    )
    try:
        nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(r"kind=scan-summary")  # a mail is now being tried
        mark = daemon.mark()
        started = time.monotonic()
        nmap(lab.attackers[1].run, "-sS", "-p", "15", lab.target.ipv4)
        daemon.wait_for_attack(mark, src=lab.attackers[1].ipv4, port="15")
        assert time.monotonic() - started < 8  # 4 s below the relay's 12 s
        if relay == "hang":  # reported while the mail still waited
            assert not re.search(not_delivered, daemon.log()[mark:]), daemon.log()[mark:]
        daemon.wait_for(not_delivered, timeout=45)
        # The event is kept regardless.
        events = (daemon.log_path.parent / "state" / "events.jsonl").read_text()
        assert '"event":"scan-summary"' in events
    finally:
        if server:
            server.kill()
        daemon.stop()


@pytest.mark.parametrize("relay", ["550", "451", "down"])
def test_a_relay_that_refuses_for_good_or_for_now(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path, relay: str
) -> None:
    """550 at RCPT: final, said with the report's subject. 451 at DATA, or no relay listening
    (connection refused): tried again after SMTP_RETRY_DELAY (its least, 10 s) and delivered
    once the relay takes it; the report is in the store with its outcome."""
    inbox = made_inbox(tmp_path)
    args = {"550": ["--refuse", "admin@example.org"], "451": ["--defer-data", "1"], "down": []}
    server = (
        None
        if relay == "down"
        else smtp_server(lab, lab.client.ipv4, "2532", str(inbox), *args[relay])
    )
    daemon = start_daemon(
        "-stcp",
        conf=(
            'UDP_MODE="none"\nMAIL_ON_TCP_SCAN="1"\nSCAN_END_QUIET="1"\nMAIL_TO="admin@example.org"\n'
            f'SMTP_RELAY="{lab.client.ipv4}"\nSMTP_PORT="2532"\nSMTP_RETRY_DELAY="10"\n'
        ),
    )
    attacker = lab.attackers[0]
    title = f"portwarden: TCP scan from {attacker.ipv4} to {lab.target.ipv4}"
    try:
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        if relay == "550":
            daemon.wait_for(
                rf"mail '{title}' to admin@example.org via \S+ port 2532 failed: "
                r"admin@example.org: 550 5\.1\.1 <admin@example.org>: Recipient address rejected"
            )
            assert "trying again" not in daemon.log() and not list(inbox.glob("*.eml"))
            expected: tuple[str, bool | None] = ("failed", None)
        else:
            daemon.wait_for(
                rf"mail '{title}' via \S+ port 2532: not delivered to "
                r"admin@example.org for now \(.*\); trying again in 10 s"
            )
            if server is None:  # the relay comes back
                server = smtp_server(lab, lab.client.ipv4, "2532", str(inbox))
            (mail,) = wait_for_mail(inbox, 1, timeout=20)
            assert mail["Subject"] == title
            expected = ("sent", True)
        daemon.stop()
    finally:
        if server is not None:
            server.kill()
    with sqlite3.connect(daemon.log_path.parent / "state" / "portwarden.db") as db:
        rows = db.execute("SELECT kind, subject, outcome, mailed FROM reports").fetchall()
    assert [
        (kind, subject, outcome, mailed and True) for kind, subject, outcome, mailed in rows
    ] == [("scan-summary", title, *expected)]


def test_hostile_reverse_dns_name_cannot_inject_lines(
    lab: Lab, syslog: SyslogReceiver, tmp_path: Path
) -> None:
    attacker = lab.attackers[2]
    evil = "evil.example\x1b[2J;Fake:\x07header$(id)"  # /etc/hosts splits names at blanks
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{attacker.ipv4} {evil}\n")
    inbox, server, relay = started_relay(lab, tmp_path, "2527")
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nUDP_MODE="none"\n'
        f'RESOLVE_HOST="1"\nSYSLOG_SOCKET="{syslog.path}"\nMAIL_ON_TCP_SCAN="1"\n'
        f'SCAN_END_QUIET="1"\nMAIL_TO="admin@example.org"\n'
        f"{relay}"
        'BLOCK_TCP="2"\nKILL_RUN_CMD="/bin/true"\n'
    )
    log = tmp_path / "daemon.log"
    proc = start_with_hosts_file(lab.target, hosts, conf, log, "-stcp")
    escaped = r"evil.example\x1b[2J;Fake:\x07header$(id)"
    try:
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        (mail,) = wait_for_mail(inbox, 1)
        # BLOCK_TCP=2 leaves the traffic alone: the next probe is "already blocked", named.
        attacker.run(["hping3", "-c", "1", "-S", "-p", "11", lab.target.ipv4], check=False)
        syslog.wait_for(
            rf"attackalert: Host: {re.escape(escaped)}/{attacker.ipv4} is already "
            "blocked Ignoring$"
        )
    finally:
        server.kill()
        proc.terminate()
        proc.wait(timeout=10)
    source = next(x for x in text_of(mail).splitlines() if x.startswith("Source:"))
    assert (
        source == f"Source:          {attacker.ipv4} (evil.example\\x1b[2J;Fake:\\x07header$(id))"
    )
    assert "Fake" not in {key for key in mail}
    for line in syslog.lines + log.read_text().splitlines():
        assert "\x1b" not in line and "\x07" not in line
    # PortSentry's line names the host as name/ip with RESOLVE_HOST, the name escaped
    named = f"attackalert: TCP SYN/Normal scan from host: {escaped}/{attacker.ipv4} to TCP port: 11"
    assert any(line.endswith(named) for line in syslog.lines), syslog.lines


def test_one_mail_per_scan_of_one_protocol(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """nmap -sS -sU is two scans: with MAIL_ON_TCP_SCAN alone, one mail, for the TCP one only,
    with its own probes (UDP probes counted in it made a TCP mail say "UDP scan")."""
    inbox, server, relay = started_relay(lab, tmp_path, "2528")
    daemon = start_daemon(
        "-stcp",
        "-sudp",
        conf=(f'MAIL_ON_TCP_SCAN="1"\nSCAN_END_QUIET="1"\nMAIL_TO="admin@example.org"\n{relay}'),
    )
    attacker = lab.attackers[1]
    try:
        nmap(attacker.run, "-sS", "-sU", "-p", "T:1,11,U:7,9", lab.target.ipv4)
        daemon.wait_for(rf"kind=scan-summary src={attacker.ipv4} \S+ proto=udp")
        daemon.wait_for(rf"kind=scan-summary src={attacker.ipv4} \S+ proto=tcp")
        (mail,) = wait_for_mail(inbox, 1)
        time.sleep(0.5)  # no second mail follows
        assert len(list(inbox.glob("*.eml"))) == 1
    finally:
        server.kill()
    body = report_fields(mail)
    assert (body["Protocol"], body["Scan type"]) == ("TCP", "TCP SYN/Normal scan")
    assert (body["Probes"], body["Distinct ports"]) == ("2", "2")
    assert {body["First port"].split()[0], body["Last port"].split()[0]} == {"1", "11"}
    events = [
        json.loads(x)
        for x in (daemon.log_path.parent / "state" / "events.jsonl").read_text().splitlines()
    ]
    summaries = {e["proto"]: e for e in events if e["event"] == "scan-summary"}
    assert set(summaries) == {"tcp", "udp"}
    assert summaries["tcp"]["types"] == ["TCP SYN/Normal scan"]
    assert summaries["udp"]["types"] == ["UDP scan"]
    assert summaries["udp"]["probes"] >= 2 and summaries["tcp"]["probes"] == 2
    assert (summaries["tcp"]["flags"], summaries["udp"]["flags"]) == (["SYN"], [])
    daemon.stop()


def held_reports(daemon: RunningDaemon) -> int:
    with sqlite3.connect(daemon.log_path.parent / "state" / "portwarden.db") as db:
        return int(db.execute("SELECT count(*) FROM reports WHERE outcome = 'held'").fetchone()[0])


def test_a_reload_that_raises_mail_per_hour_lists_the_held_reports_at_once(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """MAIL_PER_HOUR=1: the first scan's report goes, the next two are held (the notice says
    so). A reload to MAIL_PER_HOUR=5 wakes the mail thread: the list of the held reports goes
    at once, not at the next report, and names the cap that held them (it said the new one)."""
    inbox, server, relay = started_relay(lab, tmp_path, "2529")
    daemon = start_daemon(
        "-stcp",
        conf=(
            'MAIL_ON_TCP_SCAN="1"\nSCAN_END_QUIET="1"\nMAIL_PER_HOUR="1"\nMAIL_TO="a@example.org"\n'
            f"{relay}"
        ),
    )
    try:
        for attacker in lab.attackers:
            nmap(attacker.run, "-sS", "-p", "1,11", lab.target.ipv4)
            daemon.wait_for(rf"kind=scan-summary src={attacker.ipv4} ")
        deadline = time.monotonic() + 10
        while held_reports(daemon) < 2:
            assert time.monotonic() < deadline, "the reports were never held"
            time.sleep(0.1)
        assert len(wait_for_mail(inbox, 2)) == 2  # the first report and the notice
        conf = daemon.log_path.with_suffix(".conf")
        conf.write_text(conf.read_text().replace('MAIL_PER_HOUR="1"', 'MAIL_PER_HOUR="5"'))
        mark = daemon.mark()
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for("configuration reloaded", since=mark)
        mails = wait_for_mail(inbox, 3, timeout=10)
    finally:
        server.kill()
    assert [m["Subject"] for m in mails[1:]] == [
        "portwarden: mail rate limit reached",
        "portwarden: 2 reports were not mailed (MAIL_PER_HOUR)",
    ]
    assert "by MAIL_PER_HOUR=1." in " ".join(text_of(mails[2]).split())
    assert held_reports(daemon) == 0
    daemon.stop()


def test_the_scan_report_gives_the_flags_seen(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A SYN, a FIN and an XMAS scan from one source are one TCP scan: its mail and its JSON
    summary list the three flag combinations, in the order they came."""
    inbox, server, relay = started_relay(lab, tmp_path, "2532")
    daemon = start_daemon(
        "-stcp",
        conf=(
            'UDP_MODE="none"\nMAIL_ON_TCP_SCAN="1"\nSCAN_END_QUIET="2"\nMAIL_TO="admin@example.org"\n'
            f"{relay}"
        ),
    )
    attacker = lab.attackers[2]
    try:
        nmap_runs(
            attacker, *([scan, "-p", "11", lab.target.ipv4] for scan in ("-sS", "-sF", "-sX"))
        )
        (mail,) = wait_for_mail(inbox, 1)
    finally:
        server.kill()
    body = report_fields(mail)
    assert body["Flags seen"] == "SYN, FIN, FIN+PSH+URG"
    events = [
        json.loads(x)
        for x in (daemon.log_path.parent / "state" / "events.jsonl").read_text().splitlines()
    ]
    (summary,) = (e for e in events if e["event"] == "scan-summary")
    assert summary["flags"] == ["SYN", "FIN", "FIN+PSH+URG"]
    assert summary["types"] == ["TCP SYN/Normal scan", "TCP FIN scan", "TCP XMAS scan"]


_SEND_UDP = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    for _ in range(3):
        s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
"""


@pytest.mark.usefixtures("echo_service")
def test_portsentry_lines_in_stealth_modes(
    lab: Lab, start_daemon: StartDaemon, syslog: SyslogReceiver
) -> None:
    """Word for word as PortSentry 1.2's stealth modes write them. BLOCK_TCP=2 (the command
    only) leaves the traffic alone, so a blocked scanner's later probes are still seen."""
    start_daemon(
        "-stcp",
        "-sudp",
        conf=(f'SYSLOG_SOCKET="{syslog.path}"\nBLOCK_TCP="2"\nKILL_RUN_CMD="/bin/true"\n'),
    )
    scanner, prober, udp = (a.ipv4 for a in lab.attackers)
    target = lab.target.ipv4
    nmap(lab.attackers[0].run, "-sS", "-p", "1,11,15", target)
    syslog.wait_for(
        rf"attackalert: TCP SYN/Normal scan from host: {scanner}/{scanner} to TCP "
        r"port: (1|11|15)$"
    )
    syslog.wait_for(rf"attackalert: Host: {scanner}/{scanner} is already blocked Ignoring$")
    # A SYN+FIN to a tripwire: a packet PortSentry calls "Unknown Type"; to an open port it is
    # a queso-style OS probe.
    lab.attackers[1].run(["hping3", "-c", "1", "-S", "-F", "-p", "11", target], check=False)
    syslog.wait_for(
        r"attackalert: Unknown Type: TCP Packet Flags: SYN: 1 FIN: 1 ACK: 0 PSH: 0 "
        rf"URG: 0 RST: 0 from host: {prober}/{prober} to TCP port: 11$"
    )
    syslog.wait_for(rf"detail: TCP odd-flags scan \(FIN\+SYN\) from {prober} to TCP port 11$")
    lab.attackers[1].run(["hping3", "-c", "1", "-S", "-F", "-p", str(SERVICE), target], check=False)
    syslog.wait_for(
        rf"attackalert: OS fingerprinting probe \(queso\) from host: {prober}/"
        rf"{prober} to TCP port: {SERVICE}$"
    )
    assert not [line for line in syslog.lines if "queso" in line and line.endswith(": 11")]
    nmap(lab.attackers[2].run, "-sU", "-p", "7", target)
    syslog.wait_for(rf"attackalert: UDP scan from host: {udp}/{udp} to UDP port: 7$")
    # "already blocked" once per block, not once per probe.
    assert sum("is already blocked" in line and scanner in line for line in syslog.lines) == 1


def test_every_probe_is_logged_below_the_trigger_too(
    lab: Lab, start_daemon: StartDaemon, syslog: SyslogReceiver
) -> None:
    """LOG_CONNECTIONS and LOG_DETAILS are scandetd's "log every probe": with SCAN_TRIGGER="2"
    the first probe has its lines although it makes no verdict."""
    daemon = start_daemon(
        "-stcp",
        conf=(
            f'UDP_MODE="none"\nSYSLOG_SOCKET="{syslog.path}"\nSCAN_TRIGGER="2"\n'
            'LOG_CONNECTIONS="1"\nLOG_DETAILS="1"\n'
        ),
    )
    attacker, target = lab.attackers[0].ipv4, lab.target.ipv4
    nmap(lab.attackers[0].run, "-sS", "-p", "11", target)
    syslog.wait_for(rf"port 11 connection attempt from {attacker}$")
    syslog.wait_for(rf"TCP {attacker}\(\d+\) -> {target}\(11\)$")
    assert not any("attackalert" in line for line in syslog.lines)
    nmap(lab.attackers[0].run, "-sS", "-p", "15", target)  # the second: past the trigger
    syslog.wait_for(
        rf"attackalert: TCP SYN/Normal scan from host: {attacker}/{attacker} to TCP "
        "port: 15$"
    )
    syslog.wait_for(rf"port 15 connection attempt from {attacker}$")
    assert [a["port"] for a in daemon.attacks(kind="scan")] == ["15"]
    assert sum("connection attempt" in line for line in syslog.lines) == 2


def test_adminalert_lines_at_start_reload_and_stop(
    start_daemon: StartDaemon, syslog: SyslogReceiver
) -> None:
    """PortSentry said when it started and stopped; logwatch's script files those lines as
    routine, and shows a refused reload among its unmatched entries."""
    daemon = start_daemon(
        "-stcp", conf=(f'UDP_MODE="none"\nSYSLOG_SOCKET="{syslog.path}"\nAUDIT_INTERVAL="0"\n')
    )
    conf = daemon.log_path.with_suffix(".conf")
    good = conf.read_text()
    modes = "tcp mode stcp, udp mode off"
    syslog.wait_for(rf"adminalert: PortSentry is now active and listening \(portwarden: {modes}\)$")
    daemon.proc.send_signal(signal.SIGHUP)
    syslog.wait_for(
        r"adminalert: PortSentry is now active and listening \(portwarden: "
        rf"configuration reloaded; {modes}\)$"
    )
    conf.write_text(good + 'SCAN_TRIGGER="lots"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    where = re.escape(str(conf))
    refused = syslog.wait_for(
        r"adminalert: ERROR: reload refused, old configuration stays in "
        rf'force: {where}:\d+: SCAN_TRIGGER="lots": '
    )
    assert refused.startswith(f"<{3 * 8 + 3}>")  # daemon.err
    conf.write_text(good)
    assert daemon.stop()[0] == 0
    syslog.wait_for(r"adminalert: portsentry shutdown: portwarden is shutting down \(SIGTERM\)$")
    share = logwatch.share()
    assert share is not None, "logwatch is not unpacked: run scripts/test.sh"
    messages = [logwatch.file_line(line, "target") for line in syslog.lines]
    assert len(messages) == 4
    report = logwatch.report(share, logwatch.OVERRIDE, messages)
    refused_text = messages[2].split("]: ", 1)[1]
    assert report == f"\n**Unmatched entries**\n1 Time(s): {refused_text}\n", report


def test_portsentry_lines_in_classic_modes(
    lab: Lab, start_daemon: StartDaemon, syslog: SyslogReceiver
) -> None:
    start_daemon(
        "-tcp",
        "-udp",
        conf=(f'SYSLOG_SOCKET="{syslog.path}"\nBLOCK_UDP="2"\nKILL_RUN_CMD="/bin/true"\n'),
    )
    attacker, target = lab.attackers[0], lab.target.ipv4
    can_connect(attacker, target, 31337)  # accepted, then closed at once
    syslog.wait_for(
        rf"attackalert: Connect from host: {attacker.ipv4}/{attacker.ipv4} to TCP "
        r"port: 31337$"
    )
    attacker.run([sys.executable, "-c", _SEND_UDP, target, "31337"])
    syslog.wait_for(
        rf"attackalert: Connect from host: {attacker.ipv4}/{attacker.ipv4} to UDP "
        r"port: 31337$"
    )
    syslog.wait_for(rf"attackalert: Host: {attacker.ipv4} is already blocked\. Ignoring$")


def test_a_scan_still_open_at_stop_is_summarised_and_mailed(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """SIGTERM within SCAN_END_QUIET of a scan: its summary and mail are not lost with the
    daemon (a restart right after a scan used to drop both)."""
    inbox, server, relay = started_relay(lab, tmp_path, "2531")
    daemon = start_daemon(
        "-stcp",
        conf=(
            'UDP_MODE="none"\nMAIL_ON_TCP_SCAN="1"\nSCAN_END_QUIET="300"\n'
            f'MAIL_TO="admin@example.org"\n{relay}'
        ),
    )
    attacker = lab.attackers[0]
    try:
        nmap(attacker.run, "-sS", "-p", "1,11", lab.target.ipv4)
        daemon.wait_for_attack(kind="scan", src=attacker.ipv4)
        assert daemon.attacks(kind="scan-summary") == []  # the scan is not over yet
        daemon.stop()
        (summary,) = daemon.attacks(kind="scan-summary", src=attacker.ipv4)
        assert summary["ports"] == "2"
        (mail,) = wait_for_mail(inbox, 1, timeout=5)
        assert attacker.ipv4 in mail["Subject"]
    finally:
        server.kill()


def small_tmpfs(folder: Path) -> list[str]:
    """A wrapper that runs the daemon with a 256 KiB tmpfs on `folder`, in a mount namespace of
    its own (the host's file systems are never filled)."""
    return [
        *NEW_MOUNTS,
        "sh",
        "-c",
        'mount -t tmpfs -o size=256k tmpfs "$0" && exec "$@"',
        str(folder),
    ]


def fill_up(folder: Path, log: Path, room: int) -> None:
    """Fill the file system of `folder`, leaving `room` bytes free at the end of the last page
    of `log` (the page a tmpfs file grows in): the next line longer than that is cut short by
    the full disk. The padding is a JSON line of its own."""
    page = os.sysconf("SC_PAGE_SIZE")
    frame = len('{"event":"padding","pad":""}\n')
    pad = -(log.stat().st_size + frame + room) % page
    with log.open("a") as file:
        file.write('{"event":"padding","pad":"' + "x" * pad + '"}\n')
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"\0" * page):
            pass
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    finally:
        os.close(fd)


def test_a_full_disk_under_the_event_log(lab: Lab, tmp_path: Path) -> None:
    """Events that do not fit are dropped whole, counted and said once; a reload goes through;
    room again is said once; the stop is clean (it used to end in a traceback)."""
    folder = tmp_path / "events"
    folder.mkdir()
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nUDP_MODE="none"\n'
        f'EVENT_LOG="{folder}/events.jsonl"\nSCAN_END_QUIET="300"\n'
        'SYSLOG_SOCKET=""\nAUDIT_INTERVAL="0"\n'
    )
    daemon = RunningDaemon(lab.target, conf, "-stcp", wrapper=small_tmpfs(folder))
    try:
        daemon.wait_for("ready:")
        view = Path(f"/proc/{daemon.proc.pid}/root{folder}")  # the daemon's mount namespace
        events = view / "events.jsonl"
        fill_up(view, events, room=10)
        for attacker in lab.attackers[:2]:
            nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
            daemon.wait_for_attack(src=attacker.ipv4)
        daemon.wait_for(
            r"JSON event log \S+ failing: No space left on device; events are "
            "dropped and counted until it works"
        )
        mark = daemon.mark()
        conf.write_text(conf.read_text() + 'LOG_DETAILS="1"\n')
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for("configuration reloaded", since=mark)
        lines = events.read_text().splitlines()
        assert [json.loads(line)["event"] for line in lines] == ["padding"]  # no part line
        (view / "filler").unlink()
        nmap(lab.attackers[2].run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(
            r"JSON event log \S+ works again \(2 events dropped since it failed, 2 so "
            r"far\)"
        )
        written = [json.loads(line) for line in events.read_text().splitlines()]
        assert [(e["event"], e.get("src")) for e in written] == [
            ("padding", None),
            ("scan", lab.attackers[2].ipv4),
        ]
        fill_up(view, events, room=10)  # the summaries at the stop do not fit
        status, _ = daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.stop()
    log = daemon.log()
    assert status == 0 and "Traceback" not in log and "reload refused" not in log, log
    assert "stopped: probes=3" in log
    assert len(re.findall("JSON event log .* failing", log)) == 2
    assert log.count("works again") == 1


def attack_order(lines: list[str], *patterns: str) -> list[int]:
    """The index in `lines` of the first line matching each pattern (each must match one)."""
    found = []
    for pattern in patterns:
        matching = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert matching, f"no line matched {pattern!r}: {lines}"
        found.append(matching[0])
    return found


def test_block_lines_one_per_action_in_portsentrys_order(
    lab: Lab, start_daemon: StartDaemon, syslog: SyslogReceiver, tmp_path: Path
) -> None:
    """PortSentry 1.2's words and order: the attack line, then one line per action done
    (hosts.deny, KILL_ROUTE, KILL_RUN_CMD) with its string or command as used; "already blocked"
    after the attack line of the probe that met the block; at stop the scan's summary, and the
    shutdown line last. A failed action's status in the event log says why."""
    deny = tmp_path / "hosts.deny"
    daemon = start_daemon(
        "-stcp",
        conf=(
            f'UDP_MODE="none"\nSYSLOG_SOCKET="{syslog.path}"\nBLOCK_TCP="1"\nBLOCK_NFTABLES="0"\n'
            f'KILL_HOSTS_DENY="ALL: $TARGET$ : DENY"\nHOSTS_DENY_FILE="{deny}"\n'
            'KILL_ROUTE="/bin/echo route $TARGET$ $PORT$"\n'
            "KILL_RUN_CMD=\"/bin/sh -c 'echo no such table >&2; exit 4' $TARGET$\"\n"
            'SCAN_END_QUIET="300"\n'
        ),
    )
    a, target = lab.attackers[0].ipv4, lab.target.ipv4
    nmap(lab.attackers[0].run, "-sS", "-p", "11", target)
    syslog.wait_for(
        rf"attackalert: Host {a} has been blocked via dropped route using command: "
        rf'"/bin/echo route {a} 11"$'
    )
    nmap(lab.attackers[0].run, "-sS", "-p", "15", target)  # this route lets it through
    syslog.wait_for(rf"attackalert: Host: {a}/{a} is already blocked Ignoring$")
    assert daemon.stop()[0] == 0
    lines = list(syslog.lines)
    order = attack_order(
        lines,
        rf"attackalert: TCP SYN/Normal scan from host: {a}/{a} to TCP port: 11$",
        rf'attackalert: Host {a} has been blocked via wrappers with string: "ALL: {a} : DENY"$',
        rf"attackalert: Host {a} has been blocked via dropped route using command",
        rf"attackalert: TCP SYN/Normal scan from host: {a}/{a} to TCP port: 15$",
        rf"attackalert: Host: {a}/{a} is already blocked Ignoring$",
        rf"Possible port scan from {a} to {target}",
        r"adminalert: portsentry shutdown: portwarden is shutting down \(SIGTERM\)$",
    )
    assert order == sorted(order) and order[-1] == len(lines) - 1, lines
    assert not any("External command run" in line for line in lines)  # it failed
    events = [
        json.loads(x)
        for x in (daemon.log_path.parent / "state" / "events.jsonl").read_text().splitlines()
    ]
    (block,) = [e for e in events if e["event"] == "block"]
    assert block["actions"] == [
        {"kind": "hosts.deny", "status": "done"},
        {"kind": "route", "status": "done"},
        {"kind": "command", "status": "failed: exit status 4: no such table"},
    ]


def test_the_external_command_line_and_the_nftables_line(
    lab: Lab, start_daemon: StartDaemon, syslog: SyslogReceiver
) -> None:
    start_daemon(
        "-stcp",
        conf=(
            f'UDP_MODE="none"\nSYSLOG_SOCKET="{syslog.path}"\nBLOCK_TCP="1"\n'
            'KILL_RUN_CMD="/bin/true $TARGET$ $PORT$"\n'
        ),
    )
    a = lab.attackers[0].ipv6
    nmap(lab.attackers[0].run, "-6", "-sS", "-p", "11", lab.target.ipv6)
    nft = syslog.wait_for(
        rf"attackalert: Host {a} has been blocked via nftables set inet "
        r"portwarden blocked6$"
    )
    run = syslog.wait_for(
        rf"attackalert: External command run for host: {a} using command: "
        rf'"/bin/true {a} 11"$'
    )
    assert syslog.lines.index(nft) < syslog.lines.index(run)


SLOW_SYSLOGD = Path(__file__).parent.parent / "lab" / "syslogd.py"


def test_a_burst_of_attack_lines_reaches_a_slow_syslog_with_a_short_queue(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """net.unix.max_dgram_qlen=10 (a common value): an nmap of 50 ports over IPv6 is a burst
    of 50 attack lines, more than the socket holds. The sender waits for room, as syslog(3)
    would, instead of dropping: every line arrives at a syslog daemon that reads slowly."""
    key = "net.unix.max_dgram_qlen"
    old = lab.target.run(["sysctl", "-n", key]).stdout.strip()
    lab.target.run(["sysctl", "-qw", f"{key}=10"])
    path, out = tmp_path / "log", tmp_path / "received"
    receiver = lab.target.popen(
        [sys.executable, str(SLOW_SYSLOGD), str(path), str(out), "0.002"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None and "listening" in receiver.stdout.readline()
        daemon = start_daemon(
            "-atcp", conf=f'UDP_MODE="none"\nSYSLOG_SOCKET="{path}"\nBLOCK_TCP="0"\n'
        )
        nmap(lab.attackers[0].run, "-6", "-sS", "-p", "1-50", lab.target.ipv6)
        deadline = time.monotonic() + 10
        while len(daemon.attacks(kind="scan")) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert daemon.stop()[0] == 0  # the stop sends what is queued
        log = daemon.log()
        received = out.read_text().splitlines()
    finally:
        receiver.kill()
        receiver.wait()
        lab.target.run(["sysctl", "-qw", f"{key}={old}"])
    scans = [line for line in received if "attackalert: TCP SYN/Normal scan" in line]
    assert len(scans) == len(daemon.attacks(kind="scan")) >= 40, log
    assert not re.search(r"syslog \S+ failing", log), log


def test_a_reloads_warnings_go_to_syslog_before_the_reloaded_line(
    start_daemon: StartDaemon, syslog: SyslogReceiver, tmp_path: Path
) -> None:
    """A reload that took a missing ignore file: syslog says so, not only stderr."""
    daemon = start_daemon(
        "-stcp", conf=(f'UDP_MODE="none"\nSYSLOG_SOCKET="{syslog.path}"\nAUDIT_INTERVAL="0"\n')
    )
    syslog.wait_for(r"adminalert: PortSentry is now active")
    conf = daemon.log_path.with_suffix(".conf")
    conf.write_text(conf.read_text() + f'IGNORE_FILE="{tmp_path}/gone.ignore"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    reloaded = syslog.wait_for(
        r"adminalert: PortSentry is now active and listening "
        r"\(portwarden: configuration reloaded"
    )
    warning = syslog.wait_for(
        rf"adminalert: WARNING: reload: .*IGNORE_FILE {tmp_path}/gone"
        r"\.ignore does not"
    )
    assert warning.startswith(f"<{3 * 8 + 4}>")  # daemon.warning
    assert syslog.lines.index(warning) < syslog.lines.index(reloaded)
