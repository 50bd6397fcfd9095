"""`run --daemon` and logrotate: after the log file is moved and SIGHUP comes, the log records,
stdout and stderr all go to the new file (stray output such as a thread's traceback too)."""

import os
import signal
import time
from pathlib import Path

from portwarden.lab.network import Lab
from tests.lab.daemon import run_daemonised, wait_for_text


def test_stdout_and_stderr_follow_the_log_file_after_logrotate_moved_it(
    lab: Lab, tmp_path: Path
) -> None:
    daemon = run_daemonised(lab.target, tmp_path, 'AUDIT_INTERVAL="0"\n')
    pid, log = daemon.pid, daemon.log
    try:
        outputs = [Path(f"/proc/{pid}/fd/{fd}") for fd in (1, 2)]
        assert [os.readlink(p) for p in outputs] == [str(log)] * 2
        log.rename(log.with_name("portwarden.log.1"))  # as logrotate does (no copytruncate)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 15
        while not log.exists() or "configuration reloaded" not in log.read_text():
            assert time.monotonic() < deadline, "no new log file after SIGHUP"
            time.sleep(0.1)
        assert [os.readlink(p) for p in outputs] == [str(log)] * 2
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for_text(log, "stopped:")
