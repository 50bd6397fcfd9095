"""A reload that would watch nothing or hang is refused, and the daemon goes on (issue 2 review)."""

import os
import re
import sys
from pathlib import Path

from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon


def test_reload_refuses_an_empty_port_list_and_a_fifo_ignore_file(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    daemon = start_daemon("-stcp")
    conf = daemon.log_path.with_suffix(".conf")
    good = conf.read_text()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad, shown in (
        (re.sub(r'(?m)^TCP_PORTS=".*"$', 'TCP_PORTS=""', good),
         r'TCP_PORTS="": names no port, but the flag -stcp watches it'),
        (good + f'IGNORE_FILE="{fifo}"\n',
         r"IGNORE_FILE=.*: cannot read the ignore file: not a regular file but a FIFO"),
    ):  # fmt: skip
        conf.write_text(bad)
        mark = daemon.mark()
        daemon.proc.send_signal(1)  # SIGHUP
        where = re.escape(str(conf))
        daemon.wait_for(rf"reload refused, old configuration stays in force: {where}:\d+: {shown}",
                        since=mark)  # fmt: skip
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
        checked = lab.target.run([sys.executable, "-m", "portwarden", "check-config", str(conf)],
                                 check=False)  # fmt: skip
        assert checked.returncode == 2
        error = checked.stderr.strip().removeprefix("portwarden: error: ")
        mark = daemon.mark()
        daemon.proc.send_signal(1)  # SIGHUP
        daemon.wait_for(r"(?m)reload refused, old configuration stays in force: "
                        + re.escape(error) + "$", since=mark)  # fmt: skip
    assert "symbolic link refused" in daemon.log()
    assert "Too many levels" not in daemon.log()
