"""The attack line: distinct ports stop being counted at limits.PORTS_TRACKED_MAX and say so."""

import ipaddress

from portwarden import limits
from portwarden.alert.line import verdict_line
from portwarden.detect.engine import Verdict
from portwarden.detect.probe import Probe
from portwarden.net.addresses import Proto

PROBE = Probe(
    ipaddress.ip_address("198.18.0.11"),
    ipaddress.ip_address("198.18.0.1"),
    Proto.TCP,
    40000,
    1080,
    "atcp",
    "TCP SYN/Normal scan",
    "SYN",
    seen_at=1.7e9,
)


def test_ports_past_the_tracked_maximum_are_shown_as_at_least_that_many() -> None:
    full = verdict_line(Verdict("scan", PROBE, False, 900, limits.PORTS_TRACKED_MAX, 0.0))
    assert f" probes=900 ports={limits.PORTS_TRACKED_MAX}+ first=no " in full
    some = verdict_line(Verdict("scan", PROBE, True, 3, 3, 0.0))
    assert " probes=3 ports=3 first=yes " in some


def test_a_tripwire_probe_that_is_an_os_probe_says_which() -> None:
    """nmap -O's T7 to a closed port that is a tripwire: named by its flags, tagged as T7."""
    t7 = PROBE._replace(scan="TCP XMAS scan", flags="FIN+PSH+URG", os_tool="nmap", os_probe="T7")
    line = verdict_line(Verdict("scan", t7, True, 1, 1, 0.0))
    assert ' type="TCP XMAS scan" mode=atcp flags=FIN+PSH+URG probes=1 ports=1 first=yes' in line
    assert " first=yes os=nmap/T7 time=" in line
    queso = verdict_line(Verdict("scan", PROBE._replace(os_tool="queso"), True, 1, 1, 0.0))
    assert " first=yes os=queso time=" in queso
    assert " os=" not in verdict_line(Verdict("scan", PROBE, True, 1, 1, 0.0))
