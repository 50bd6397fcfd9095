"""The JSON event log rotates by size into numbered generations, survives logrotate moving it
away, and is reopened on SIGHUP."""

import json
from pathlib import Path

from portwarden.alert.dispatch import Alerts
from portwarden.alert.jsonlog import JsonLog
from portwarden.config import load_settings

LINE = len('{"n":0}\n')


def numbers(path: Path) -> list[int]:
    return [json.loads(line)["n"] for line in path.read_text().splitlines()]


def test_size_rotation_keeps_the_configured_generations(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = JsonLog(path, max_bytes=3 * LINE, keep=2)
    for n in range(10):
        log.write({"n": n})
    log.close()
    # Three lines a file; the oldest generation (0-2) is gone, nothing else is lost.
    assert numbers(path) == [9]
    assert numbers(tmp_path / "events.jsonl.1") == [6, 7, 8]
    assert numbers(tmp_path / "events.jsonl.2") == [3, 4, 5]
    assert not (tmp_path / "events.jsonl.3").exists()


def test_a_file_moved_away_without_sighup_is_recreated_at_rotation(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = JsonLog(path, max_bytes=3 * LINE, keep=3)
    log.write({"n": 0})
    path.rename(tmp_path / "moved")  # logrotate without copytruncate, before its SIGHUP
    for n in range(1, 6):
        log.write({"n": n})  # no FileNotFoundError: every event is somewhere
    log.close()
    assert numbers(tmp_path / "moved") == [0, 1, 2]
    assert numbers(path) == [3, 4, 5]
    assert not (tmp_path / "events.jsonl.1").exists()


def test_reopen_follows_logrotate_and_keeps_the_old_file_if_it_cannot(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nSYSLOG_SOCKET=""\n')
    alerts = Alerts(load_settings(conf))
    path = tmp_path / "events.jsonl"
    alerts.table_lost()
    path.rename(tmp_path / "events.jsonl.1")
    alerts.reopen()  # what a SIGHUP does, even when the new configuration is refused
    alerts.table_lost()
    assert len(path.read_text().splitlines()) == 1
    assert len((tmp_path / "events.jsonl.1").read_text().splitlines()) == 1
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")  # cannot be opened (O_NOFOLLOW)
    alerts.reopen()
    alerts.table_lost()
    alerts.close()
    assert not (tmp_path / "elsewhere").exists()
    delivered = alerts.delivered()
    assert delivered["sent"]["json"] == 3  # the last one into the old file, which is still open
    assert delivered["dropped"]["json"] == {"rate_limit": 0, "error": 0}
