"""A syslog daemon that restarts (its socket closed, the path bound again) loses no line: the
sender reconnects and tries the line once more, as syslog(3) does. A daemon that stays away
costs one dropped line each, not a loop."""

from pathlib import Path

from portwarden.alert.syslog import Syslog
from tests.lab.syslogd import SyslogReceiver


def stopped_after_a_line(path: Path) -> tuple[Syslog, list[bool]]:
    """A Syslog that delivered its first line to a receiver at `path`, which then stopped (its
    path left behind, as a syslog daemon's); and what it counted (`sent` per line)."""
    receiver = SyslogReceiver(path)
    counted: list[bool] = []
    syslog = Syslog(path, "daemon", counted.append)
    syslog.send("before the restart")
    assert syslog.flush(5)
    receiver.wait_for("before the restart")
    receiver.close()  # our connected socket now gets ECONNREFUSED
    return syslog, counted


def test_the_first_line_after_a_syslog_restart_is_delivered(tmp_path: Path) -> None:
    path = tmp_path / "log"
    syslog, counted = stopped_after_a_line(path)
    syslog.send("while it is away")  # the path is still there, nobody reads it: dropped
    assert syslog.flush(5)
    path.unlink()
    after = SyslogReceiver(path)  # the daemon is back, bound at the same path
    syslog.send("after the restart")
    syslog.send("and the next")
    syslog.close()
    after.wait_for("and the next")
    assert [line.split(": ", 1)[1] for line in after.lines] == ["after the restart", "and the next"]
    assert counted == [True, False, True, True]
    assert syslog.outage.dropped == 1


def test_a_restart_between_lines_loses_none(tmp_path: Path) -> None:
    """The daemon restarted before the next line (the old socket says ECONNREFUSED): that line
    is delivered on a new connection, nothing is dropped."""
    path = tmp_path / "log"
    syslog, counted = stopped_after_a_line(path)
    path.unlink()
    after = SyslogReceiver(path)
    syslog.send("the first line after the restart")
    syslog.close()
    after.wait_for("the first line after the restart")
    assert counted == [True, True] and syslog.outage.dropped == 0
