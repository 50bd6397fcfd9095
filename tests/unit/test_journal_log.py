"""Under systemd, stderr is the journal: each line says its priority, journald adds the rest."""

import os
import re
import subprocess
from pathlib import Path

from tests.lab.daemon import daemon_command


def _first_log_line_of_run(tmp_path: Path, journal: bool) -> str:
    """The daemon's first log line: a warning about the file. `run --daemon` with a pid file in
    a folder that is not there stops right after (exit 2), before anything starts."""
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'FUTURE_KEY="1"\nSTATE_DIR="{tmp_path}/state"\n')
    err = tmp_path / "stderr"
    with err.open("wb") as out:
        stat = os.fstat(out.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}" if journal else ""}
        argv = daemon_command(conf, tmp_path / "no" / "pid")
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=out, env=env, check=False)
    assert done.returncode == 2
    return err.read_text().splitlines()[0]


def test_journal_lines_carry_the_syslog_priority_and_no_time_or_ident(tmp_path: Path) -> None:
    line = _first_log_line_of_run(tmp_path, journal=True)
    assert line.startswith("<4>WARNING ") and line.endswith("unknown key FUTURE_KEY ignored")
    assert "portwarden[" not in line


def test_a_terminal_or_file_gets_time_and_ident(tmp_path: Path) -> None:
    line = _first_log_line_of_run(tmp_path, journal=False)
    assert " portwarden[" in line and " WARNING " in line and not line.startswith("<")
    # Local time with its offset: unambiguous beside the UTC `time=...Z` of attack lines.
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} portwarden\[", line), line
