"""The action worker's queue: what ends blocks first, blocks in order, every lane bounded."""

import dataclasses
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from portwarden.alert.dispatch import Alerts
from portwarden.config.ignore import parse_network
from portwarden.respond.jobs import (
    BlockJob,
    ExpireJob,
    Job,
    JobQueue,
    PutBackJob,
    ReapplyJob,
    SettingsJob,
    StopJob,
    UnblockJob,
)
from portwarden.respond.worker import ActionWorker
from portwarden.store.db import BlockRecord
from tests.unit.blocking import blocking_settings


def drain(jobs: JobQueue) -> list[Job]:
    """Every job waiting, in the order the worker takes them (JobQueue.get waits for one)."""
    taken = []
    while jobs._urgent or jobs._blocks:
        taken.append(jobs.get())
    return taken


def block(number: int) -> BlockJob:
    address = f"198.18.1.{number}"
    return BlockJob(
        BlockRecord(number, address, "tcp", 11, "stcp", "x", address, 0.0, None, 1, ()), None
    )


def unblock(network: str) -> UnblockJob:
    answer: Future[dict[str, Any]] = Future()
    return UnblockJob(parse_network(network), answer)


def reapply() -> ReapplyJob:
    answer: Future[dict[str, Any]] = Future()
    return ReapplyJob(answer)


def settings(folder: Path, source: str) -> SettingsJob:
    """A reload's settings, told apart by `source`."""
    return SettingsJob(dataclasses.replace(blocking_settings(folder), source=source))


def test_unblocks_expiry_and_reloads_go_ahead_of_the_blocks_waiting_and_the_stop_comes_last(
    tmp_path: Path,
) -> None:
    jobs = JobQueue(blocks_max=10, urgent_max=10)
    unblocking, reload, stop = unblock("198.18.1.1"), settings(tmp_path, "new.conf"), StopJob(True)
    reapplying = reapply()
    put: list[Job] = [
        block(1),
        block(2),
        unblocking,
        block(3),
        stop,
        ExpireJob(),
        reapplying,
        reload,
        PutBackJob(),
    ]
    for job in put:
        assert jobs.put(job)
    assert drain(jobs) == [
        unblocking,
        ExpireJob(),
        reapplying,
        reload,
        PutBackJob(),
        block(1),
        block(2),
        block(3),
        stop,
    ]


def test_one_expiry_reload_and_put_back_wait_at_most_the_newest_settings_win(
    tmp_path: Path,
) -> None:
    jobs = JobQueue(blocks_max=10, urgent_max=2)
    put: list[Job] = [
        ExpireJob(),
        settings(tmp_path, "old.conf"),
        ExpireJob(),
        PutBackJob(),
        settings(tmp_path, "new.conf"),
        PutBackJob(),
    ]
    for job in put:
        assert jobs.put(job)  # never refused, though past urgent_max
    assert drain(jobs) == [ExpireJob(), settings(tmp_path, "new.conf"), PutBackJob()]


def test_a_full_lane_refuses_its_own_jobs_only_and_the_stop_is_always_taken() -> None:
    jobs = JobQueue(blocks_max=2, urgent_max=1)
    assert jobs.put(block(1)) and jobs.put(block(2))
    assert jobs.full() and not jobs.put(block(3))
    assert jobs.put(unblock("198.18.1.1"))  # the blocks' lane being full does not stop an unblock
    assert not jobs.put(unblock("198.18.1.2")) and not jobs.put(reapply())
    assert jobs.put(StopJob(False))
    assert [type(job) for job in drain(jobs)] == [UnblockJob, BlockJob, BlockJob, StopJob]
    assert not jobs.full()


def test_the_worker_ends_at_the_stop_even_when_the_stop_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing UNBLOCK_ON_STOP was logged and the worker went on waiting for jobs, so every
    stop waited ACTION_WORKER_STOP_WAIT_S for it and then said it did not finish."""
    settings = blocking_settings(tmp_path)

    def failing(self: ActionWorker, actions: Any, unblock: bool) -> None:
        raise RuntimeError("the unblock failed")

    monkeypatch.setattr(ActionWorker, "_on_stop", failing)
    worker = ActionWorker(settings, tmp_path / "store.db", Alerts(settings))
    worker.start()
    worker.jobs.put(StopJob(True))
    worker.join(timeout=5)
    assert not worker.is_alive()
