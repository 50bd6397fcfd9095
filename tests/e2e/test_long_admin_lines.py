"""A reload warning longer than a short line (a long path, a list of ports) reaches syslog
whole, as the daemon's own log has it."""

import re
import signal
from pathlib import Path

from tests.e2e.conftest import StartDaemon
from tests.lab.syslogd import SyslogReceiver


def test_a_long_reload_warning_reaches_syslog_whole(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    syslog = SyslogReceiver(tmp_path / "log")
    try:
        daemon = start_daemon(
            "-stcp", conf=(f'UDP_MODE="none"\nSYSLOG_SOCKET="{syslog.path}"\nAUDIT_INTERVAL="0"\n')
        )
        syslog.wait_for(r"adminalert: PortSentry is now active")
        gone = tmp_path / ("d" * 150) / ("e" * 150) / "gone.ignore"
        conf = daemon.log_path.with_suffix(".conf")
        conf.write_text(conf.read_text() + f'IGNORE_FILE="{gone}"\n')
        daemon.proc.send_signal(signal.SIGHUP)
        warning = syslog.wait_for(r"adminalert: WARNING: reload: .*IGNORE_FILE")
        logged = re.search(r"WARNING .*(IGNORE_FILE .*)", daemon.log())
        assert logged is not None, daemon.log()
        whole = logged.group(1)
        assert len(whole) > 400 and str(gone) in whole
        assert warning.endswith(whole), (warning, whole)
    finally:
        syslog.close()
