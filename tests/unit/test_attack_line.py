"""The attack line: distinct ports stop being counted at limits.PORTS_TRACKED_MAX and say so."""

import ipaddress

from portwarden import limits
from portwarden.alert.line import verdict_line
from portwarden.detect.engine import Verdict
from portwarden.detect.probe import Probe, Proto

PROBE = Probe(ipaddress.ip_address("198.18.0.11"), ipaddress.ip_address("198.18.0.1"), Proto.TCP,
              40000, 1080, "atcp", "TCP SYN/Normal scan", "SYN", seen_at=1.7e9)  # fmt: skip


def test_ports_past_the_tracked_maximum_are_shown_as_at_least_that_many() -> None:
    full = verdict_line(Verdict("scan", PROBE, False, 900, limits.PORTS_TRACKED_MAX, 0.0))
    assert f" probes=900 ports={limits.PORTS_TRACKED_MAX}+ first=no " in full
    some = verdict_line(Verdict("scan", PROBE, True, 3, 3, 0.0))
    assert " probes=3 ports=3 first=yes " in some
