"""A syslog daemon that restarts (its socket closed, the path bound again) loses no line: the
sender reconnects and tries the line once more, as syslog(3) does. A daemon that stays away
costs one dropped line each, not a loop."""

from pathlib import Path

from portwarden.alert.syslog import Syslog
from tests.lab.syslogd import SyslogReceiver


def test_the_first_line_after_a_syslog_restart_is_delivered(tmp_path: Path) -> None:
    path = tmp_path / "log"
    before = SyslogReceiver(path)
    counted: list[bool] = []
    syslog = Syslog(path, "daemon", counted.append)
    syslog.send("before the restart")
    assert syslog.flush(5)
    before.wait_for("before the restart")
    before.close()  # the daemon stops: our connected socket now gets ECONNREFUSED
    syslog.send("while it is away")  # the path is still there, nobody reads it: dropped
    assert syslog.flush(5)
    path.unlink()
    after = SyslogReceiver(path)  # the daemon is back, bound at the same path
    syslog.send("after the restart")
    syslog.send("and the next")
    syslog.close()
    after.wait_for("and the next")
    assert [line.split(": ", 1)[1] for line in after.lines] == ["after the restart",
                                                                "and the next"]  # fmt: skip
    assert counted == [True, False, True, True]
    assert syslog.outage.dropped == 1


def test_a_restart_between_lines_with_the_path_gone_and_back(tmp_path: Path) -> None:
    """The path removed and bound again before the next line (ENOENT was never seen; the old
    socket says ECONNREFUSED): that line is delivered too, nothing is dropped."""
    path = tmp_path / "log"
    before = SyslogReceiver(path)
    counted: list[bool] = []
    syslog = Syslog(path, "daemon", counted.append)
    syslog.send("one")
    assert syslog.flush(5)
    before.wait_for("one")
    before.close()
    path.unlink()
    after = SyslogReceiver(path)
    syslog.send("two")
    syslog.close()
    after.wait_for("two")
    assert counted == [True, True] and syslog.outage.dropped == 0
