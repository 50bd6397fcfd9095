"""A long admin line (a reload warning that lists ports) reaches syslog whole, up to rsyslog's
default maxMessageSize; past it, the datagram is cut to that size and says so."""

from pathlib import Path

from portwarden import limits
from portwarden.alert import portsentry
from portwarden.alert.syslog import Syslog
from tests.lab.syslogd import SyslogReceiver


def received(tmp_path: Path, message: str) -> str:
    receiver = SyslogReceiver(tmp_path / "log")
    syslog = Syslog(tmp_path / "log", "daemon")
    syslog.send(message)
    syslog.close()
    return receiver.wait_for("adminalert")


def test_a_reload_warning_of_a_thousand_characters_arrives_whole(tmp_path: Path) -> None:
    ports = ",".join(str(port) for port in range(32768, 33768, 7))
    warning = (
        f"udp: 143 tripwire ports are in this host's local port range 32768-60999 "
        f"(net.ipv4.ip_local_port_range), where replies to its own clients arrive: "
        f"{ports}; a late reply to one of its clients there is reported as a probe"
    )
    assert len(warning) > 1000
    line = received(tmp_path, portsentry.reload_warning_line(warning))
    assert line.endswith(f"]: adminalert: WARNING: reload: {warning}")


def test_a_line_past_the_datagram_limit_is_cut_to_it(tmp_path: Path) -> None:
    line = received(tmp_path, "adminalert: WARNING: reload: " + "x" * 20_000)
    assert len(line.encode()) == limits.SYSLOG_DATAGRAM_BYTES_MAX
    assert line.endswith("x...")
