"""The daemon starts in the target host, says it is ready, and stops cleanly on SIGTERM."""

import subprocess
import sys
from pathlib import Path

from portwarden.lab.network import Lab
from tests.lab.daemon import RunningDaemon


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "portwarden.conf"
    path.write_text(f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="1,11,15"\nUDP_PORTS="1,7"\n{extra}')
    return path


def test_starts_reports_ready_and_stops_on_sigterm(clean_lab: Lab, tmp_path: Path) -> None:
    daemon = RunningDaemon(clean_lab.target, config(tmp_path), "-stcp", "-sudp")
    daemon.wait_for(r"ready: tcp mode stcp, udp mode sudp")
    status, seconds = daemon.stop()
    assert status == 0
    assert seconds < 2.0, seconds  # the issue: stops cleanly on SIGTERM within 2 seconds
    assert "stopping on SIGTERM" in daemon.log()
    assert (tmp_path / "state").is_dir()


def test_modes_come_from_the_file_without_flags(clean_lab: Lab, tmp_path: Path) -> None:
    daemon = RunningDaemon(clean_lab.target, config(tmp_path, 'TCP_MODE="atcp"\nUDP_MODE="none"\n'))
    daemon.wait_for(r"ready: tcp mode atcp, udp mode off")
    assert daemon.stop()[0] == 0


def test_two_instances_never_share_a_state_dir(clean_lab: Lab, tmp_path: Path) -> None:
    conf = config(tmp_path)
    first = RunningDaemon(clean_lab.target, conf)
    first.wait_for("ready")
    second = clean_lab.target.run(
        [sys.executable, "-m", "portwarden", "run", "-c", str(conf)], check=False, timeout=20
    )
    assert second.returncode == 2
    assert f"STATE_DIR {tmp_path}/state is in use by another portwarden" in second.stderr
    assert first.stop()[0] == 0


def test_bad_config_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    conf = config(tmp_path, 'SCAN_TRIGGER="many"\n')
    result = subprocess.run(
        [sys.executable, "-m", "portwarden", "run", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f'portwarden: error: {conf}:4: SCAN_TRIGGER="many": must be a whole number >= 0\n'
    )
    assert not (tmp_path / "state").exists()
