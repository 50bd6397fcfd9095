"""queso probes an open port: packet_probe names a queso-shaped packet (SYN+FIN, a lone PSH,
SYN+ECE+CWR, all without TCP options) queso only there. To a closed tripwire it is a scan named
by its flags (`hping3 -S -F` against tripwires, `nmap --scanflags PSH`), to a closed port that
is not watched it is nothing."""

import ipaddress

import pytest

from portwarden.detect.probe import packet_probe
from portwarden.net.packet import CWR, ECE, FIN, PSH, SYN, parse_transport
from tests.unit.test_packet import DST4, SRC4, tcp

TARGET = ipaddress.ip_address(DST4)
TRIPWIRE, SERVICE, CLOSED = 11, 80, 5000


def is_tripwire(dst: bytes, port: int) -> bool:
    return port == TRIPWIRE


def is_open(dst: bytes, port: int) -> bool:
    return port == SERVICE


@pytest.mark.parametrize("flags", [SYN | FIN, PSH, SYN | ECE | CWR])
def test_queso_is_named_only_to_an_open_port(flags: int) -> None:
    def seen(port: int) -> tuple[str, str | None, bool] | None:
        packet = parse_transport(6, tcp(dport=port, flags=flags), SRC4, DST4)
        probe = packet_probe(packet, TARGET, "stcp", is_tripwire, is_open, 0.0)
        return None if probe is None else (probe.scan, probe.os_tool, probe.tripwire)

    name = seen(TRIPWIRE)
    assert name is not None and name[1:] == (None, True)
    assert seen(SERVICE) == (name[0], "queso", False)
    assert seen(CLOSED) is None
