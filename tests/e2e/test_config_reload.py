"""A reload that would watch nothing, hang or split the state is refused, and the daemon goes on
with the configuration in force; one that changes the modes watches with the new ones at once."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.lab.network import Lab
from tests.e2e.conftest import TCP_PORTS, UDP_PORTS, StartDaemon, nmap
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect


def test_reload_refuses_an_empty_port_list_and_a_fifo_ignore_file(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    daemon = start_daemon("-stcp")
    conf = daemon.log_path.with_suffix(".conf")
    good = conf.read_text()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad, shown in (
        (
            re.sub(r'(?m)^TCP_PORTS=".*"$', 'TCP_PORTS=""', good),
            r'TCP_PORTS="": names no port, but the flag -stcp watches it',
        ),
        (
            good + f'IGNORE_FILE="{fifo}"\n',
            r"IGNORE_FILE=.*: cannot read the ignore file: not a regular file but a FIFO",
        ),
    ):
        conf.write_text(bad)
        mark = daemon.mark()
        daemon.proc.send_signal(1)  # SIGHUP
        where = re.escape(str(conf))
        daemon.wait_for(
            rf"reload refused, old configuration stays in force: {where}:\d+: {shown}", since=mark
        )
    conf.write_text(good)
    mark = daemon.mark()
    daemon.proc.send_signal(1)
    daemon.wait_for("configuration reloaded", since=mark)  # not stalled on the FIFO
    assert daemon.proc.poll() is None


def test_reload_and_check_config_refuse_the_same_event_logs(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A directory, a symbolic link, a path in /sys: check-config used to accept what the
    daemon then refused ("Too many levels of symbolic links" for the link)."""
    daemon = start_daemon("-stcp")
    conf = daemon.log_path.with_suffix(".conf")
    good = conf.read_text()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    for path in (tmp_path, tmp_path / "link", Path("/sys/events.jsonl")):
        conf.write_text(good + f'EVENT_LOG="{path}"\n')
        checked = lab.target.run(
            [sys.executable, "-m", "portwarden", "check-config", str(conf)], check=False
        )
        assert checked.returncode == 2
        error = checked.stderr.strip().removeprefix("portwarden: error: ")
        mark = daemon.mark()
        daemon.proc.send_signal(1)  # SIGHUP
        daemon.wait_for(
            r"(?m)reload refused, old configuration stays in force: " + re.escape(error) + "$",
            since=mark,
        )
    assert "symbolic link refused" in daemon.log()
    assert "Too many levels" not in daemon.log()


def test_reload_refuses_a_new_state_dir(lab: Lab, start_daemon: StartDaemon) -> None:
    """Kept, it split the state: the events, history and blocked files followed the new
    folder while the store and the control socket stayed, and `status` said NOT running."""
    daemon = start_daemon("-stcp", conf='UDP_MODE="none"\n')
    conf = daemon.log_path.with_suffix(".conf")
    good = conf.read_text()
    old, new = daemon.log_path.parent / "state", daemon.log_path.parent / "moved"
    conf.write_text(good.replace(f'STATE_DIR="{old}"', f'STATE_DIR="{new}"'))
    mark = daemon.mark()
    daemon.proc.send_signal(1)  # SIGHUP
    daemon.wait_for(
        rf"reload refused, old configuration stays in force: {re.escape(str(conf))}:1: "
        rf'STATE_DIR="{new}": changes only at a restart \(the running daemon.s '
        rf"state is in {old}\)",
        since=mark,
    )
    nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for_attack(mark, src=lab.attackers[0].ipv4)
    assert not new.exists()
    deadline = time.monotonic() + 5
    while lab.attackers[0].ipv4 not in (old / "events.jsonl").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    conf.write_text(good)
    status = lab.target.run(
        [sys.executable, "-m", "portwarden", "status", "--json", "-c", str(conf)], check=False
    )
    assert status.returncode == 0 and json.loads(status.stdout)["running"], status.stderr


def _listener(lab: Lab, port: int) -> subprocess.Popen:
    """Another program listening on 127.0.0.1:`port` in the target."""
    script = (
        "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', int(__import__("
        "'sys').argv[1]))); s.listen(); print('listening', flush=True); time.sleep(120)"
    )
    proc = lab.target.popen(
        [sys.executable, "-c", script, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
    return proc


def _page(lab: Lab, port: int) -> int:
    """The HTTP status of the metrics page on 127.0.0.1:`port` in the target (0: refused)."""
    script = (
        "import sys, urllib.request\ntry:\n    print(urllib.request.urlopen(sys.argv[1], "
        "timeout=5).status)\nexcept OSError:\n    print(0)"
    )
    url = f"http://127.0.0.1:{port}/metrics"
    return int(lab.target.run([sys.executable, "-c", script, url]).stdout)


def test_metrics_listen_on_a_busy_port_refuses_the_reload_and_the_start(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """The working page used to be closed first; the new bind then failed, the log said
    "configuration reloaded" and metrics stayed off."""
    busy = _listener(lab, 9878)
    daemon = start_daemon("-stcp", conf='UDP_MODE="none"\nMETRICS_LISTEN="9877"\n')
    conf = daemon.log_path.with_suffix(".conf")
    good = conf.read_text()
    assert _page(lab, 9877) == 200
    conf.write_text(good.replace('METRICS_LISTEN="9877"', 'METRICS_LISTEN="9878"'))
    mark = daemon.mark()
    daemon.proc.send_signal(1)
    daemon.wait_for(
        rf"reload refused, old configuration stays in force: {re.escape(str(conf))}:"
        r'\d+: METRICS_LISTEN="9878": cannot listen on 127.0.0.1 port 9878: Address '
        "already in use\n",
        since=mark,
    )
    assert "configuration reloaded" not in daemon.log()[mark:]
    assert _page(lab, 9877) == 200
    conf.write_text(good.replace('METRICS_LISTEN="9877"', 'METRICS_LISTEN="9879"'))
    mark = daemon.mark()
    daemon.proc.send_signal(1)
    daemon.wait_for("configuration reloaded", since=mark)
    assert (_page(lab, 9879), _page(lab, 9877)) == (200, 0)
    assert daemon.stop()[0] == 0
    # At start: refused in one line before anything is made, as any unusable setting.
    conf.write_text(
        good.replace('METRICS_LISTEN="9877"', 'METRICS_LISTEN="9878"').replace("/state", "/state2")
    )
    started = lab.target.run(
        [sys.executable, "-m", "portwarden", "run", "-c", str(conf)], check=False, timeout=30
    )
    line = good.splitlines().index('METRICS_LISTEN="9877"') + 1
    assert started.returncode == 2 and started.stderr == (
        f'portwarden: error: {conf}:{line}: METRICS_LISTEN="9878": cannot listen on 127.0.0.1 port '
        "9878: Address already in use\n"
    )
    assert [p.name for p in (daemon.log_path.parent / "state2").iterdir()] == ["portwarden.lock"]
    busy.kill()


def test_reloads_during_a_scan_lose_no_probe(lab: Lab, start_daemon: StartDaemon) -> None:
    """logrotate sends a SIGHUP at each rotation: a reload that leaves the sensors' ports alone
    keeps the sensors, so every probe of a scan going on meanwhile is seen. (Closed ports
    answer with RST, so nmap sends each probe once: one lost is lost for good.)"""
    daemon = start_daemon("-atcp", conf='SCAN_END_QUIET="1"\n')
    watched = int(daemon.wait_for(r"atcp: watching (\d+) tcp ports: 0,").group(1))
    attacker = lab.attackers[0]
    mark = daemon.mark()
    scan = attacker.popen(
        ["nmap", "-n", "-Pn", "-sS", "--max-rate", "500", "-p", "1-1023", lab.target.ipv4],
        stdout=subprocess.DEVNULL,
    )
    while scan.poll() is None:
        daemon.proc.send_signal(1)  # SIGHUP
        time.sleep(0.05)
    reloads = daemon.log()[mark:].count("configuration reloaded")
    assert scan.returncode == 0 and reloads >= 10, reloads

    def summarised() -> int:
        found = daemon.attacks(mark, kind="scan-summary", src=attacker.ipv4)
        return sum(int(summary["probes"]) for summary in found)

    # Each port of 1-1023 watched (all but 0) once at least; more if nmap sent one again. (On a
    # loaded machine, nmap may pause longer than SCAN_END_QUIET: the scan is then summarised
    # in two, whose probes add up.)
    deadline = time.monotonic() + 30
    while summarised() < watched - 1:
        assert time.monotonic() < deadline, daemon.log()[mark:][-3000:]
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (("tcp", "udp"), ("stcp", "audp")),
        (("tcp", "udp"), ("atcp", "sudp")),
        (("stcp", "sudp"), ("tcp", "udp")),
    ],
)
def test_a_reload_that_changes_the_modes_watches_the_old_ports_at_once(
    lab: Lab, start_daemon: StartDaemon, old: tuple[str, str], new: tuple[str, str]
) -> None:
    """The classic modes' own sockets were taken for services: a reload to a stealth or
    advanced mode kept their ports out of the tripwires for SERVICE_GONE_GRACE (`stcp:
    watching 0 tcp ports`). And back: the classic modes bind them at once. TCP 11 and UDP 9
    are in the port lists (tests/e2e/conftest.py) and among the 20 ports a `watching` line
    shows."""
    daemon = start_daemon(conf=f'TCP_MODE="{old[0]}"\nUDP_MODE="{old[1]}"\n')
    time.sleep(limits.REFRESH_S + 1)  # a refresh has seen the old sensors' sockets
    conf = daemon.log_path.with_suffix(".conf")
    text = conf.read_text()
    for proto, was, now in zip(("TCP", "UDP"), old, new, strict=True):
        text = text.replace(f'{proto}_MODE="{was}"', f'{proto}_MODE="{now}"')
    conf.write_text(text)
    mark = daemon.mark()
    daemon.proc.send_signal(1)  # SIGHUP
    daemon.wait_for("configuration reloaded", since=mark)
    for proto, mode, port in (("tcp", new[0], "11"), ("udp", new[1], "9")):
        shown = daemon.wait_for(rf"{mode}: watching \d+ {proto} ports: (\S*)", since=mark)
        assert port in shown.group(1).split(","), daemon.log()[mark:]
    attacker = lab.attackers[0]
    nmap(attacker.run, "-sT" if new[0] == "tcp" else "-sS", "-p", "11", lab.target.ipv4)
    nmap(attacker.run, "-sU", "-p", "9", lab.target.ipv4)
    for proto, mode, port in (("tcp", new[0], "11"), ("udp", new[1], "9")):
        daemon.wait_for_attack(mark, src=attacker.ipv4, proto=proto, port=port, mode=mode)


def test_a_reload_whose_new_sensors_fail_watches_every_old_port_again(
    lab: Lab, tmp_path: Path
) -> None:
    """Without CAP_NET_RAW a reload to -sudp cannot make its sensor, and the old classic ones
    come back. The failed build's TCP sensor stayed open while they did: the fallback logged
    `tcp: not watching ports in use by a service: 1 (Address already in use), ...` and watched
    no TCP port at all."""
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="tcp"\nUDP_MODE="udp"\n'
        f'TCP_PORTS="{TCP_PORTS}"\nUDP_PORTS="{UDP_PORTS}"\nAUDIT_INTERVAL="0"\n'
    )
    daemon = RunningDaemon(lab.target, conf, wrapper=["setpriv", "--bounding-set=-net_raw"])
    try:
        daemon.wait_for("ready:")
        mark = daemon.mark()
        conf.write_text(conf.read_text().replace('UDP_MODE="udp"', 'UDP_MODE="sudp"'))
        daemon.proc.send_signal(1)  # SIGHUP
        daemon.wait_for("configuration reloaded", since=mark)
        after = daemon.log()[mark:]
        assert (
            "ERROR reload: sensors for the new configuration failed ([Errno 1] Operation not "
            "permitted); keeping the old modes and ports"
        ) in after
        assert "in use by a service" not in after, after
        assert f"tcp: watching {len(TCP_PORTS.split(','))} tcp ports: " in after, after
        assert f"udp: watching {len(UDP_PORTS.split(','))} udp ports: " in after, after
        attacker = lab.attackers[0]
        assert can_connect(attacker, lab.target.ipv4, 31337)
        daemon.wait_for_attack(mark, src=attacker.ipv4, port="31337", mode="tcp")
        assert daemon.proc.poll() is None and "Traceback" not in daemon.log()
    finally:
        daemon.stop()
