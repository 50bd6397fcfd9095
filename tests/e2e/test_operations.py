"""What an administrator uses to trust the daemon: status, metrics, reload, service manager."""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portwarden import limits
from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon, nmap
from tests.e2e.test_blocking import portwarden
from tests.lab.daemon import RunningDaemon, run_daemonised, wait_for_text

METRICS = "127.0.0.1:9877"


def status_json(lab: Lab, daemon: RunningDaemon) -> dict:
    result = portwarden(lab.target, daemon, "status", "--json")
    assert result.returncode in (0, 3), result.stderr
    return json.loads(result.stdout)


def scrape(lab: Lab) -> dict[str, float]:
    """Every sample on the metrics page, parsed by Prometheus' own client library."""
    page = lab.target.run(
        [
            sys.executable,
            "-c",
            "import urllib.request; print(urllib.request"
            f".urlopen('http://{METRICS}/metrics').read().decode(), end='')",
        ]
    ).stdout
    samples = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_status_and_metrics_count_what_was_sent(lab: Lab, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(
        "-stcp", "-sudp", conf=f'METRICS_LISTEN="{METRICS}"\nSCAN_END_QUIET="1"\nSYSLOG_SOCKET=""\n'
    )
    tcp_scanner, udp_scanner = lab.attackers[0], lab.attackers[1]
    # 4 and 2 tripwires. No retries: a reply that nmap sees late on a loaded machine makes no
    # second probe.
    nmap(tcp_scanner.run, "-sS", "-p", "1,11,15,79,80,81", lab.target.ipv4, retries=0)
    nmap(udp_scanner.run, "-sU", "-p", "7,9,10", lab.target.ipv4, retries=0)
    daemon.wait_for(rf"kind=scan-summary src={udp_scanner.ipv4}")
    daemon.wait_for(rf"kind=scan-summary src={tcp_scanner.ipv4}")

    found = status_json(lab, daemon)
    assert found["running"] and found["pid"] == int(found["pid"])
    assert {m["mode"] for m in found["modes"]} == {"stcp", "sudp"}
    assert lab.target.ipv4 in found["addresses"]
    scanners = {s["address"]: s for s in found["scanners"]}
    tcp, udp = scanners[tcp_scanner.ipv4], scanners[udp_scanner.ipv4]
    assert (tcp["probes"], tcp["ports"], tcp["types"]) == (4, 4, ["TCP SYN/Normal scan"])
    assert (udp["probes"], udp["ports"], udp["types"]) == (2, 2, ["UDP scan"])
    assert not tcp["blocked"] and tcp["first_seen"] <= tcp["last_seen"]
    ports = {(p["port"], p["proto"]): p["probes"] for p in found["ports"]}
    assert ports == {
        (1, "tcp"): 1,
        (11, "tcp"): 1,
        (15, "tcp"): 1,
        (79, "tcp"): 1,
        (7, "udp"): 1,
        (9, "udp"): 1,
    }
    counters = found["counters"]
    assert (counters["probes"], counters["scans"], counters["blocks"]) == (6, 2, 0)
    assert counters["audit_last_run"] == found["audit"]["time"]  # a time, not epoch seconds
    # Per path: the JSON log has each scanner's first probe and its summary; syslog is off.
    assert found["alerts"] == {
        "sent": {"syslog": 0, "json": 4, "mail": 0},
        "dropped": {path: {"rate_limit": 0, "error": 0} for path in ("syslog", "json", "mail")},
    }
    assert found["blocks"]["active"] == 0
    assert found["audit"]["open_ports"] == 0 and found["audit"]["findings"] == []

    text = portwarden(lab.target, daemon, "status").stdout
    assert "portwarden is running" in text and tcp_scanner.ipv4 in text and "79/tcp" in text
    assert re.search(rf"\n  audit_last_run +{found['audit']['time']}\n", text), text
    assert "Alerts (syslog lines, JSON events, mails)" in text
    assert [line.split() for line in text.splitlines() if line.startswith("  json ")] == [
        ["json", "4", "0", "0"]
    ]

    deadline = time.monotonic() + 5  # the page is rebuilt once a second
    while (metrics := scrape(lab))["portwarden_probes_total"] != 6:
        assert time.monotonic() < deadline, metrics
        time.sleep(0.2)
    assert metrics["portwarden_scans_total"] == 2
    assert metrics["portwarden_blocks_active"] == 0
    assert metrics["portwarden_sources_tracked"] == 2
    assert metrics["portwarden_alerts_sent_total{path=json}"] == 4  # 2 scans, 2 summaries
    assert metrics["portwarden_alerts_sent_total{path=mail}"] == 0
    for path in ("syslog", "json", "mail"):
        for reason in ("rate_limit", "error"):
            assert metrics[f"portwarden_alerts_dropped_total{{path={path},reason={reason}}}"] == 0
    assert abs(metrics["portwarden_start_time_seconds"] - time.time()) < 600

    # The control socket is for root only.
    sock = daemon.log_path.parent / "state" / "control.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    # Stopped: `status` falls back to the store's last status, and says the daemon is not running.
    assert daemon.stop()[0] == 0
    result = portwarden(lab.target, daemon, "status", "--json")
    assert result.returncode == 3
    after = json.loads(result.stdout)
    assert after["running"] is False and after["saved"]
    assert {s["address"] for s in after["scanners"]} == {tcp_scanner.ipv4, udp_scanner.ipv4}
    assert "portwarden is NOT running" in portwarden(lab.target, daemon, "status").stdout


def test_reload_takes_a_new_ignore_list_and_refuses_a_broken_file(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    ignore = tmp_path / "ignore"
    ignore.write_text("# nobody yet\n")
    first, second = lab.attackers[0], lab.attackers[1]
    daemon = start_daemon("-stcp", conf=f'IGNORE_FILE="{ignore}"\nBLOCK_TCP="1"\n')
    nmap(first.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for_attack(src=first.ipv4)
    conf = daemon.log_path.with_suffix(".conf")

    ignore.write_text(f"{second.ipv4}/32\n")
    mark = daemon.mark()
    daemon.proc.send_signal(1)  # SIGHUP
    daemon.wait_for("configuration reloaded", since=mark)
    nmap(second.run, "-sS", "-p", "11,15", lab.target.ipv4)
    nmap(lab.attackers[2].run, "-sS", "-p", "15", lab.target.ipv4)
    daemon.wait_for_attack(mark, src=lab.attackers[2].ipv4)
    assert daemon.attacks(mark, src=second.ipv4) == []  # the new ignore list holds
    # The block made before the reload is still in force.
    assert first.run(["ping", "-c1", "-W1", lab.target.ipv4], check=False).returncode != 0

    # A broken file refuses the whole reload: also its ignore list, emptied meanwhile, which
    # would un-ignore the second attacker.
    good = conf.read_text()
    conf.write_text(good + 'SCAN_TRIGGER="many"\n')
    ignore.write_text("")
    mark = daemon.mark()
    daemon.proc.send_signal(1)
    line = daemon.wait_for(r"reload refused.*", since=mark).group(0)
    assert f"{conf}:" in line and "SCAN_TRIGGER" in line and "many" in line
    nmap(second.run, "-sS", "-p", "79", lab.target.ipv4)
    nmap(second.run, "-6", "-sS", "-p", "79", lab.target.ipv6)  # not ignored: seen after it
    daemon.wait_for_attack(mark, src=second.ipv6, port="79")
    assert daemon.attacks(mark, src=second.ipv4) == []  # the old settings stay in force
    assert daemon.proc.poll() is None
    conf.write_text(good)


def test_service_manager_readiness_watchdog_reload_and_stop(lab: Lab, tmp_path: Path) -> None:
    """What systemd sees with Type=notify and WatchdogSec: a real datagram socket as NOTIFY."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(15)
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nUDP_MODE="none"\nTCP_MODE="stcp"\n'
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    proc = lab.target.popen(
        [sys.executable, "-m", "portwarden", "run", "-c", str(conf)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        messages = [notify.recv(256).decode() for _ in range(4)]
        assert messages[0] == "READY=1\nSTATUS=watching; tcp mode stcp, udp mode off"
        assert "WATCHDOG=1" in messages[1:]
        proc.send_signal(1)
        while (message := notify.recv(256).decode()) == "WATCHDOG=1":
            pass
        assert message.startswith("RELOADING=1\nMONOTONIC_USEC=")
        while (message := notify.recv(256).decode()) == "WATCHDOG=1":
            pass
        assert message == "READY=1\nSTATUS=reloaded; tcp mode stcp, udp mode off"
        proc.terminate()
        while (message := notify.recv(256).decode()) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"
        assert proc.wait(timeout=10) == 0
    finally:
        notify.close()


@pytest.mark.parametrize("value", ["localhost:9877", "127.0.0.1:99999", "::1:9918"])
def test_bad_metrics_listen_is_a_one_line_error(tmp_path: Path, value: str) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\n\nMETRICS_LISTEN="{value}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "portwarden", "check-config", str(conf)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f'{conf}:3: METRICS_LISTEN="{value}"' in result.stderr


def test_daemon_mode_returns_when_ready_writes_a_pid_file_and_logs_to_a_file(
    lab: Lab, tmp_path: Path
) -> None:
    command, pid_file, log, pid = run_daemonised(lab.target, tmp_path)
    try:
        assert "ready:" in log.read_text()  # ready before the command returned
        # Not world-readable without a service manager's UMask= either.
        state = tmp_path / "state"
        for path in (pid_file, log, state, state / "portwarden.db", state / "events.jsonl"):
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
        deadline = time.monotonic() + 10
        while f"attack kind=scan src={lab.attackers[0].ipv4}" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # A second one on the same STATE_DIR fails, and says so, before it detaches; it
        # writes nothing in the first one's log.
        logged = log.read_text()
        again = lab.target.run(
            command[:-2] + ["--pid-file", str(tmp_path / "2.pid")], check=False, timeout=30
        )
        assert again.returncode == 2 and again.stderr == (
            f"portwarden: error: STATE_DIR {tmp_path}/state is in use by another portwarden "
            f"(pid {pid}); give each instance its own STATE_DIR\n"
        )
        assert log.read_text() == logged and not (tmp_path / "2.pid").exists()
        # One with its own STATE_DIR but the first one's event log: found only once it runs
        # (the claim is the daemon's), and exits as in the foreground, 2, naming the line.
        other = tmp_path / "other.conf"
        other.write_text(
            f'STATE_DIR="{tmp_path}/other"\nTCP_PORTS="11"\nTCP_MODE="stcp"\n'
            f'UDP_MODE="none"\nEVENT_LOG="{state}/events.jsonl"\n'
        )
        claimed = lab.target.run([*command[:5], str(other), "--daemon"], check=False, timeout=30)
        assert claimed.returncode == 2, claimed.stderr
        assert claimed.stderr.count("\n") == 1 and (
            f"the daemon stopped: {other}:5: EVENT_LOG=" in claimed.stderr
        ), claimed.stderr
        assert f"in use by another portwarden (pid {pid}) as its EVENT_LOG" in claimed.stderr
    finally:
        os.kill(pid, 15)
    deadline = time.monotonic() + 10
    while pid_file.exists():
        assert time.monotonic() < deadline, "pid file left behind"
        time.sleep(0.1)
    assert "stopped: probes=1" in log.read_text()


def test_daemon_mode_with_a_pid_file_it_cannot_write_says_why(lab: Lab, tmp_path: Path) -> None:
    """A pid file in a folder that is not there: refused before anything starts. One that
    cannot be written all the same (here a directory): the daemon stops and the command says
    why, in one line, instead of a traceback in the log."""
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
    )
    command = [sys.executable, "-m", "portwarden", "run", "-c", str(conf), "--daemon"]
    missing = lab.target.run(
        [*command, "--pid-file", "/nonexistent/x.pid"], check=False, timeout=30
    )
    assert missing.returncode == 2 and missing.stderr == (
        'portwarden: error: --pid-file: "/nonexistent/x.pid": /nonexistent is not a directory\n'
    )
    assert not (tmp_path / "state").exists()  # nothing started
    (tmp_path / "a-dir").mkdir()
    failed = lab.target.run(
        [*command, "--pid-file", str(tmp_path / "a-dir")], check=False, timeout=30
    )
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
    assert f"the daemon stopped: cannot write the pid file {tmp_path}/a-dir: " in failed.stderr
    deadline = time.monotonic() + 10  # the daemon ends its clean stop
    while lab.target.run(["pgrep", "-f", str(conf)], check=False).stdout:
        assert time.monotonic() < deadline, "the daemon did not stop"
        time.sleep(0.1)
    logged = (tmp_path / "state" / "portwarden.log").read_text()
    assert "Traceback" not in logged and "cannot write the pid file" in logged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-dir", "portwarden.conf", "state"]


def test_ready_line_names_the_configuration_by_its_absolute_path(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "d.conf").write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
    )
    log = tmp_path / "d.log"
    with log.open("wb") as out:
        daemon = lab.target.popen(
            [sys.executable, "-m", "portwarden", "run", "-c", "d.conf"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_text(log, "ready:")
        assert f", config {tmp_path}/d.conf, state {tmp_path}/state" in log.read_text()
        # `status` and a refused reload name it so too (they named it `d.conf`).
        status = lab.target.run(
            [sys.executable, "-m", "portwarden", "status", "--json", "-c", "d.conf"], cwd=tmp_path
        )
        assert json.loads(status.stdout)["config"] == f"{tmp_path}/d.conf"
        with (tmp_path / "d.conf").open("a") as conf:
            conf.write('SCAN_TRIGGER="lots"\n')
        daemon.send_signal(signal.SIGHUP)
        wait_for_text(log, "reload refused")
        assert f"old configuration stays in force: {tmp_path}/d.conf:5: " in log.read_text()
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit as shipped, with ExecStart pointed at this checkout's command (verify checks
    that the program exists). A unit with a mistake must fail the same check."""
    shipped = (Path(__file__).parents[2] / "packaging" / "portwarden.service").read_text()
    command = str(Path(sys.executable).parent / "portwarden")
    assert Path(command).exists()
    unit = tmp_path / "portwarden.service"
    unit.write_text(shipped.replace("/usr/local/bin/portwarden", command))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "Type=notify" in shipped and "WatchdogSec=" in shipped
    lines = shipped.splitlines()
    for line in (
        "RestartPreventExitStatus=2",
        "SystemCallFilter=@system-service",
        "SystemCallErrorNumber=EPERM",
        "PrivateMounts=yes",
        "ExecStartPre=/usr/local/bin/portwarden check-config --quiet",
    ):
        assert line in lines
    unit.write_text(
        shipped.replace("/usr/local/bin/portwarden", command).replace(
            "ProtectSystem=true", "ProtectSytem=true"
        )
    )
    broken = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
    )
    assert "ProtectSytem" in broken.stderr


def test_control_socket_survives_hostile_and_slow_clients(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-stcp", conf='UDP_MODE="none"\n')
    path = str(daemon.log_path.parent / "state" / "control.sock")

    def request(data: bytes) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(data)
            return sock.recv(65536)

    assert b"bad request" in request(b"[" * 4000 + b"\n")  # deep nesting: RecursionError
    assert b"bad request" in request(b"\xff\xfe garbage\n")
    assert b"unknown command" in request(b'{"command": "rm -rf /"}\n')
    # A client that trickles bytes is dropped after CONTROL_CLIENT_WAIT_S (0.5 s) whatever it sends;
    # the loop goes on reading probes. It is given 20 s of trickling: one never dropped is
    # the defect.
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.connect(path)
    mark = daemon.mark()
    started = time.monotonic()
    dropped_after = None
    while time.monotonic() - started < 20:
        try:
            slow.send(b"{")
        except (BrokenPipeError, ConnectionResetError):  # a reset: our bytes were left unread
            dropped_after = time.monotonic() - started
            break
        time.sleep(0.2)
    assert dropped_after is not None, "the loop kept waiting for a client that trickles bytes"
    assert dropped_after < 10 * limits.CONTROL_CLIENT_WAIT_S, dropped_after
    nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for_attack(mark, src=lab.attackers[0].ipv4)
    slow.close()
    assert status_json(lab, daemon)["running"]
    daemon.stop()


def test_reload_refuses_an_event_log_it_cannot_open(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    daemon = start_daemon("-stcp", conf='UDP_MODE="none"\n')
    conf = daemon.log_path.with_suffix(".conf")
    good = conf.read_text()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    conf.write_text(good + f'EVENT_LOG="{tmp_path}/link"\n')
    events = daemon.log_path.parent / "state" / "events.jsonl"
    nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for_attack(src=lab.attackers[0].ipv4)
    events.rename(events.with_name("rotated"))  # logrotate, then its SIGHUP
    mark = daemon.mark()
    daemon.proc.send_signal(1)
    daemon.wait_for(r"reload refused, old configuration stays in force: .*link", since=mark)
    nmap(lab.attackers[1].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for_attack(mark, src=lab.attackers[1].ipv4)
    # The refused reload reopened the event log all the same: the new event is in a new file.
    assert lab.attackers[0].ipv4 in events.with_name("rotated").read_text()
    deadline = time.monotonic() + 5
    while lab.attackers[1].ipv4 not in (events.read_text() if events.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert lab.attackers[0].ipv4 not in events.read_text()
    assert not (tmp_path / "elsewhere").exists()
    conf.write_text(good)
    daemon.stop()


def test_status_works_while_the_configuration_is_broken(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """An administrator who just broke the file still sees the running daemon."""
    daemon = start_daemon("-stcp", "-sudp")
    conf = daemon.log_path.with_suffix(".conf")
    conf.write_text(conf.read_text() + 'SCAN_TRIGGER="lots"\nthis is not a setting\n')
    result = portwarden(lab.target, daemon, "status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["running"] is True
    (warning,) = result.stderr.splitlines()
    assert warning.startswith(f"portwarden: warning: {conf}:") and "status read from" in warning


def _exec_reload(unit: str, conf: Path, main_pid: int) -> int:
    """The unit's ExecReload= commands run as systemd runs them: in order, stopping at the
    first that fails; its exit status (0: reloaded). Our program is this checkout's, reading
    the test's file."""
    program = str(Path(sys.executable).parent / "portwarden")
    for line in unit.splitlines():
        if line.startswith("ExecReload="):
            args = line.removeprefix("ExecReload=").replace("$MAINPID", str(main_pid)).split()
            if args[0] == "/usr/local/bin/portwarden":
                args = [program, *args[1:], "-c", str(conf)]
            status = subprocess.run(args, capture_output=True, check=False).returncode
            if status != 0:
                return status
    return 0


def test_the_units_reload_fails_on_a_broken_file(lab: Lab, start_daemon: StartDaemon) -> None:
    """`systemctl reload` used to send SIGHUP whatever the file said and succeed: the error was
    only in the journal. (No systemd here: the unit's own commands are run as it runs them.)"""
    unit = (Path(__file__).parents[2] / "packaging" / "portwarden.service").read_text()
    daemon = start_daemon("-stcp", conf='UDP_MODE="none"\n')
    conf = daemon.log_path.with_suffix(".conf")
    good = conf.read_text()
    conf.write_text(good + 'SCAN_TRIGGER="many"\n')
    mark = daemon.mark()
    assert _exec_reload(unit, conf, daemon.proc.pid) == 2
    conf.write_text(good)
    assert _exec_reload(unit, conf, daemon.proc.pid) == 0
    daemon.wait_for("configuration reloaded", since=mark)
    assert "reload refused" not in daemon.log()[mark:]  # the broken file never reached it


def test_slow_metrics_clients_delay_neither_a_scrape_nor_a_stop(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """One thread served one connection at a time and waited 2 s for each that sent nothing:
    an idle client delayed a scrape by 2 s (a few hundred timed it out) and a stop by up to 2 s.
    Then the wait was 1 s per read: a client that sent a byte every 0.2 s was never dropped,
    and METRICS_CLIENTS_MAX of them closed every scrape at once for as long as they went on.
    Here that many send their requests a byte every 0.2 s (2 minutes' worth; 16 s of waits for
    a server that takes them in turn): a scrape, tried again while all slots are taken, is
    served once they are closed, 1 s after they were taken in. Then the daemon stops with 15
    idle clients connected (that a stop does not wait for their threads, which may live up to
    1 s, is tested with a longer wait in tests/unit/test_metrics.py)."""
    daemon = start_daemon("-stcp", conf=f'UDP_MODE="none"\nMETRICS_LISTEN="{METRICS}"\n')
    host, port = METRICS.split(":")
    script = (
        "import socket, threading, time, urllib.error, urllib.request\n"
        f"address = ({host!r}, {port})\n"
        "def trickle(sock):\n"
        "    try:\n"
        "        for byte in b'GET /' + b'a' * 600:\n"
        "            sock.send(bytes([byte]))\n"
        "            time.sleep(0.2)\n"
        "    except OSError:\n"
        "        pass\n"
        f"for _ in range({limits.METRICS_CLIENTS_MAX}):\n"
        "    threading.Thread(target=trickle, args=(socket.create_connection(address),)).start()\n"
        "started = time.monotonic()\n"
        "while time.monotonic() < started + 30:\n"
        "    try:\n"
        f"        urllib.request.urlopen('http://{METRICS}/metrics', timeout=30).read()\n"
        "        break\n"
        "    except (urllib.error.URLError, ConnectionError):\n"  # closed at once: no slot
        "        time.sleep(0.05)\n"
        "print(time.monotonic() - started, flush=True)\n"
        "idle = [socket.create_connection(address) for _ in range(15)]\n"
        "print('connected', flush=True)\n"
        "time.sleep(120)\n"
    )
    clients = lab.target.popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert clients.stdout is not None
        assert float(clients.stdout.readline()) < 5  # before: 30, never served
        assert clients.stdout.readline() == "connected\n"
        status, seconds = daemon.stop(timeout=60)
        assert status == 0 and seconds < 5, seconds
    finally:
        clients.kill()


def test_status_of_a_daemon_that_does_not_answer_shows_the_last_saved_status(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """A stopped (SIGSTOP) or stuck daemon: `status` used to wait 10 s and fail with "no answer
    in time". Now it says so in its first line and shows the last saved status, exit 4."""
    daemon = start_daemon("-stcp", conf='UDP_MODE="none"\n')
    conf = str(daemon.log_path.with_suffix(".conf"))
    for _ in range(2):  # the second answer comes after the loop's first turn, which saves it
        status_json(lab, daemon)
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        asked = [
            lab.target.popen(
                [sys.executable, "-m", "portwarden", "status", *json_flag, "-c", conf],
                stdout=subprocess.PIPE,
                text=True,
            )
            for json_flag in ([], ["--json"])
        ]
        (text, _), (as_json, _) = (proc.communicate(timeout=30) for proc in asked)
        assert [proc.returncode for proc in asked] == [4, 4]
        # Two commands starting at once on a loaded machine; the old wait was 10 s, and
        # one that never ends is communicate()'s timeout.
        assert time.monotonic() - started < limits.CONTROL_ANSWER_WAIT_S + 4
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert text.startswith(
        f"portwarden: daemon pid {daemon.proc.pid} not answering; last saved status ("
    )
    assert "  stcp: 8 tcp ports" in text
    found = json.loads(as_json)
    assert (found["running"], found["answering"], found["pid"]) == (True, False, daemon.proc.pid)
    assert found["saved"] and found["modes"][0]["mode"] == "stcp"
    answered = status_json(lab, daemon)
    assert (answered["running"], answered["answering"]) == (True, True)
