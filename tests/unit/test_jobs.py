"""The action worker's queue: what ends blocks first, blocks in order, every lane bounded."""

from portwarden.respond.jobs import Job, JobQueue


def drain(jobs: JobQueue) -> list[tuple[Job, object]]:
    taken = []
    while (job := jobs.get(timeout=0)) is not None:
        taken.append(job)
    return taken


def test_unblocks_expiry_and_reloads_go_ahead_of_the_blocks_waiting_and_the_stop_comes_last() -> (
    None
):
    jobs = JobQueue(blocks_max=10, urgent_max=10)
    for job in [
        (Job.BLOCK, 1),
        (Job.BLOCK, 2),
        (Job.UNBLOCK, "a"),
        (Job.BLOCK, 3),
        (Job.STOP, True),
        (Job.EXPIRE, None),
        (Job.REAPPLY, "r"),
        (Job.SETTINGS, "s"),
        (Job.PUT_BACK, None),
    ]:
        assert jobs.put(*job)
    assert drain(jobs) == [
        (Job.UNBLOCK, "a"),
        (Job.EXPIRE, None),
        (Job.REAPPLY, "r"),
        (Job.SETTINGS, "s"),
        (Job.PUT_BACK, None),
        (Job.BLOCK, 1),
        (Job.BLOCK, 2),
        (Job.BLOCK, 3),
        (Job.STOP, True),
    ]


def test_one_expiry_reload_and_put_back_wait_at_most_the_newest_settings_win() -> None:
    jobs = JobQueue(blocks_max=10, urgent_max=2)
    for job in [
        (Job.EXPIRE, None),
        (Job.SETTINGS, "old"),
        (Job.EXPIRE, None),
        (Job.PUT_BACK, None),
        (Job.SETTINGS, "new"),
        (Job.PUT_BACK, None),
    ]:
        assert jobs.put(*job)  # never refused, though past urgent_max
    assert drain(jobs) == [(Job.EXPIRE, None), (Job.SETTINGS, "new"), (Job.PUT_BACK, None)]


def test_a_full_lane_refuses_its_own_jobs_only_and_the_stop_is_always_taken() -> None:
    jobs = JobQueue(blocks_max=2, urgent_max=1)
    assert jobs.put(Job.BLOCK, 1) and jobs.put(Job.BLOCK, 2)
    assert jobs.full() and not jobs.put(Job.BLOCK, 3)
    assert jobs.put(Job.UNBLOCK, "a")  # the blocks' lane being full does not stop an unblock
    assert not jobs.put(Job.UNBLOCK, "b") and not jobs.put(Job.REAPPLY, "r")
    assert jobs.put(Job.STOP, False)
    assert [kind for kind, _ in drain(jobs)] == [Job.UNBLOCK, Job.BLOCK, Job.BLOCK, Job.STOP]
    assert not jobs.full()
