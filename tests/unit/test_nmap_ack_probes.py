"""nmap -O's T4 (to an open port) and T6 (to a closed one) are ACK segments: packet_probe names
them by their exact shape, to any port, as OS probes only, never as scan probes (a tripwire
too); any other ACK, however close to theirs, is part of a connection."""

import ipaddress

import pytest

from portwarden.detect.engine import Engine, EngineConfig
from portwarden.detect.probe import Probe, packet_probe
from portwarden.net.nmap_probes import NMAP_T_OPTIONS
from portwarden.net.packet import ACK, PSH, RST, parse_transport
from tests.unit.test_packet import DST4, DST6, LINUX_SYN_OPTIONS, SRC4, SRC6, tcp

TRIPWIRE, SERVICE, CLOSED = 11, 80, 5000
OTHER_TIMESTAMP = NMAP_T_OPTIONS.replace(
    bytes.fromhex("ffffffff00000000"), bytes.fromhex("1234567800000000")
)
TSECR_SET = NMAP_T_OPTIONS.replace(
    bytes.fromhex("ffffffff00000000"), bytes.fromhex("ffffffff00000001")
)


def is_tripwire(dst: bytes, port: int) -> bool:
    return port == TRIPWIRE


def is_open(dst: bytes, port: int) -> bool:
    return port == SERVICE


def seen(data: bytes, v6: bool = False) -> Probe | None:
    src, dst = (SRC6, DST6) if v6 else (SRC4, DST4)
    packet = parse_transport(6, data, src, dst)
    return packet_probe(packet, ipaddress.ip_address(dst), "atcp", is_tripwire, is_open, 0.0)


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize(("window", "name"), [(1024, "T4"), (32768, "T6")])
@pytest.mark.parametrize("port", [SERVICE, TRIPWIRE, CLOSED])
def test_t4_and_t6_are_nmap_os_probes_to_any_port_and_never_tripwire_probes(
    window: int, name: str, port: int, v6: bool
) -> None:
    probe = seen(tcp(dport=port, flags=ACK, window=window, options=NMAP_T_OPTIONS), v6)
    assert probe is not None
    assert (probe.os_tool, probe.os_probe, probe.os_pattern) == ("nmap", name, f"ACK/{name}")
    assert probe.tripwire is False


@pytest.mark.parametrize(
    "data",
    [
        tcp(flags=ACK, window=1024),  # a connection's ACK
        tcp(flags=ACK, window=1024, options=LINUX_SYN_OPTIONS),
        tcp(flags=ACK | PSH, window=1024, options=NMAP_T_OPTIONS),
        tcp(flags=RST, window=1024, options=NMAP_T_OPTIONS),
        tcp(flags=ACK, window=1024, options=NMAP_T_OPTIONS, reserved=1),
        tcp(flags=ACK, window=1025, options=NMAP_T_OPTIONS),  # not a window nmap uses
        tcp(flags=ACK, window=1024, options=OTHER_TIMESTAMP),
        tcp(flags=ACK, window=1024, options=TSECR_SET),
    ],
)
def test_any_other_ack_is_part_of_a_connection(data: bytes) -> None:
    assert seen(data[:2] + TRIPWIRE.to_bytes(2, "big") + data[4:]) is None
    assert seen(data) is None


def test_t6_to_a_tripwire_is_counted_as_an_os_probe_not_as_a_scan() -> None:
    """nmap sends T6 to the closed port it found, a tripwire here: an os-probe line and the
    OS-probe summary's pattern, but no scan verdict and no probe counted for SCAN_TRIGGER."""
    engine = Engine(EngineConfig(trigger=0))
    t6 = seen(tcp(dport=TRIPWIRE, flags=ACK, window=32768, options=NMAP_T_OPTIONS))
    assert t6 is not None
    verdicts = engine.feed(t6, 0.0)
    assert [(v.kind, v.patterns) for v in verdicts] == [("os-probe", ("ACK/T6",))]
    assert engine.probes == 0
    assert [(v.kind, v.patterns) for v in engine.tick(100.0)] == [("os-summary", ("ACK/T6",))]
