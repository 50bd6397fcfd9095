"""The JSON event log rotates by size into numbered generations, survives logrotate moving it
away, and is reopened on SIGHUP."""

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from portwarden.alert.dispatch import Alerts
from portwarden.alert.jsonlog import JsonLog
from portwarden.config import load_settings
from tests.unit.config_error import load_error

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


def test_the_next_file_after_a_rotation_keeps_the_owner_group_and_mode(tmp_path: Path) -> None:
    """A log shipper in group adm that the administrator let read the log (0640 root:adm)
    lost it at the first rotation: the new file was the daemon's 0600."""
    path = tmp_path / "events.jsonl"
    log = JsonLog(path, max_bytes=3 * LINE, keep=2)
    os.chown(path, -1, 4)  # adm
    path.chmod(0o640)
    for n in range(4):
        log.write({"n": n})
    log.close()
    assert numbers(path) == [3]
    info = path.stat()
    assert (info.st_gid, info.st_mode & 0o777) == (4, 0o640)


def test_a_file_moved_away_by_hand_keeps_its_access_in_the_next_one_but_one_made_is_left(
    tmp_path: Path,
) -> None:
    """`mv events.jsonl events.old; kill -HUP`: the file opened again is made like the old one
    (0640 root:adm), as after our own rotation; one the administrator made (logrotate's
    `create 0600 root root`) keeps its access."""
    path = tmp_path / "events.jsonl"
    log = JsonLog(path, max_bytes=1 << 20, keep=2)
    os.chown(path, -1, 4)  # adm
    path.chmod(0o640)
    path.rename(tmp_path / "events.old")
    log.reopen()
    info = path.stat()
    assert (info.st_gid, info.st_mode & 0o777) == (4, 0o640)
    path.rename(tmp_path / "events.older")
    path.touch(0o600)
    os.chmod(path, 0o600)
    log.reopen()
    log.close()
    info = path.stat()
    assert (info.st_gid, info.st_mode & 0o777) == (0, 0o600)


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


def test_logrotate_copytruncate_does_not_make_it_rotate_early(tmp_path: Path) -> None:
    """logrotate's copytruncate copies the file to .1 and empties it, without a SIGHUP: the
    log goes on in the emptied file and rotates only when that one is full, so .1 (logrotate's
    copy) is not pushed on to .2 by a rotation of a nearly empty file."""
    path = tmp_path / "events.jsonl"
    log = JsonLog(path, max_bytes=3 * LINE, keep=3)
    for n in range(3):
        log.write({"n": n})
    shutil.copyfile(path, tmp_path / "events.jsonl.1")
    os.truncate(path, 0)
    for n in range(3, 6):
        log.write({"n": n})
    assert numbers(path) == [3, 4, 5]
    assert numbers(tmp_path / "events.jsonl.1") == [0, 1, 2]
    assert not (tmp_path / "events.jsonl.2").exists()
    log.write({"n": 6})  # now it is full: our own rotation
    log.close()
    assert numbers(path) == [6]
    assert numbers(tmp_path / "events.jsonl.1") == [3, 4, 5]
    assert numbers(tmp_path / "events.jsonl.2") == [0, 1, 2]


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


def test_a_failed_rotation_keeps_appending_says_it_once_and_rotates_when_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A directory where the oldest generation goes makes the rotation fail: no event is lost
    (they go on into the current file), the failure is logged once, the rotation is tried again
    as the file grows (not at every event), and works once the directory is gone."""
    path = tmp_path / "events.jsonl"
    log = JsonLog(path, max_bytes=64 * LINE, keep=2)
    for n in range(65):
        log.write({"n": n})  # rotates once: events.jsonl.1
    blocker = tmp_path / "events.jsonl.2"
    (blocker / "inside").mkdir(parents=True)  # os.replace(.1, .2) fails: a directory
    with caplog.at_level(logging.INFO, logger="portwarden"):
        for n in range(65, 200):
            log.write({"n": n})  # not one OSError: every event is written
        tries = log.rotation.dropped
        (blocker / "inside").rmdir()
        blocker.rmdir()
        log.write({"n": 200})
    log.close()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith(f"JSON event log {path}: rotation failing: [Errno 21] Is a dir")
    assert said[0].endswith(
        "; events go on into the current file; it is tried again as the file grows"
    )
    assert (
        said[1]
        == f"JSON event log {path}: rotation works again ({tries} tries failed, {tries} so far)"
    )
    assert 2 <= tries <= (200 - 65) // 2  # a try per EVENT_LOG_MAX_BYTES/16 (3 lines here)
    assert log.outage.dropped == 0
    # The generations in order, the one that grew while rotation failed in the middle.
    oldest, grown = numbers(tmp_path / "events.jsonl.2"), numbers(tmp_path / "events.jsonl.1")
    assert oldest[0] == 0 and grown[-1] == 199 and len(grown) > 100
    assert oldest + grown + numbers(path) == list(range(201))


def test_event_log_max_bytes_has_a_floor(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    for size in ("65535", "64k"):
        conf.write_text(f'\nEVENT_LOG_MAX_BYTES="{size}"\n')
        shown = load_error(conf)
        assert shown == (
            f'{conf}:2: EVENT_LOG_MAX_BYTES="{size}": must be a whole '
            "number of bytes, at least 65536 (64 KiB)"
        )
    conf.write_text('EVENT_LOG_MAX_BYTES="65536"\n')
    assert load_settings(conf).event_log_max_bytes == 65536
