"""Engine configuration from Settings: the late-reply exemption for UDP tripwires in this host's
local port range."""

import ipaddress
from pathlib import Path

import pytest

from portwarden.config import UdpMode, load_settings
from portwarden.detect.config import engine_config
from portwarden.detect.engine import Engine
from portwarden.detect.probe import UDP_SCAN, Probe
from portwarden.net import ports
from portwarden.net.addresses import Proto
from portwarden.net.ports import local_port_range, reserved_local_ports
from portwarden.sensors.build import late_reply_ports


def datagram(sport: int, dport: int, src: str = "198.18.0.53") -> Probe:
    dst = "2001:db8::1" if ":" in src else "198.18.0.1"
    return Probe(
        ipaddress.ip_address(src),
        ipaddress.ip_address(dst),
        Proto.UDP,
        sport,
        dport,
        "udp",
        UDP_SCAN,
    )


def test_a_late_dns_or_ntp_reply_to_a_tripwire_in_the_local_range_is_no_probe(
    tmp_path: Path,
) -> None:
    local = local_port_range()
    inside, outside = local.start + 3, local.start - 1
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'UDP_PORTS="{outside},{inside}"\n')
    settings = load_settings(conf).with_modes(None, UdpMode.STEALTH)
    ports, warning = late_reply_ports(settings)
    assert ports == {inside}
    assert (
        warning is not None
        and f": {inside}; datagrams to them from source ports 53,123,443,853,5353" in warning
    )
    engine = Engine(engine_config(settings, settings.ignore_list(()), ports))
    assert engine.feed(datagram(53, inside), 0) == []  # a DNS answer after the client gave up
    assert engine.feed(datagram(123, inside, src="2001:db8::7b"), 0) == []  # NTP, IPv6
    assert [v.kind for v in engine.feed(datagram(53, outside), 0)] == ["scan"]
    assert [v.kind for v in engine.feed(datagram(5300, inside, src="198.18.0.9"), 0)] == ["scan"]


def test_the_exemption_can_be_turned_off(tmp_path: Path) -> None:
    inside = local_port_range().start
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'UDP_PORTS="{inside}"\nUDP_REPLY_SOURCE_PORTS=""\n')
    settings = load_settings(conf).with_modes(None, UdpMode.STEALTH)
    ports, warning = late_reply_ports(settings)
    assert warning is not None and "a late reply to one of its clients there is reported" in warning
    engine = Engine(engine_config(settings, settings.ignore_list(()), ports))
    assert [v.kind for v in engine.feed(datagram(53, inside), 0)] == ["scan"]


def test_no_warning_without_tripwires_in_the_range(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text('UDP_PORTS="7,9"\n')
    assert late_reply_ports(load_settings(conf).with_modes(None, UdpMode.STEALTH)) == (
        frozenset(),
        None,
    )


def test_a_scan_interval_longer_than_the_window_is_said_to_be_capped(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text('SCAN_COUNT_THRESHOLD="5"\nSCAN_TRIGGER_WINDOW="60"\nSCAN_INTERVAL="90"\n')
    (warning,) = [w for w in load_settings(conf).warnings if "SCAN_INTERVAL" in w]
    assert warning.endswith(
        ":3: SCAN_INTERVAL (90 s) is longer than SCAN_TRIGGER_WINDOW (60 s), "
        "which caps it: a source quiet for SCAN_TRIGGER_WINDOW starts over"
    )
    conf.write_text('SCAN_COUNT_THRESHOLD="5"\nSCAN_TRIGGER_WINDOW="60"\nSCAN_INTERVAL="30"\n')
    assert not [w for w in load_settings(conf).warnings if "SCAN_INTERVAL" in w]


def test_the_classic_mode_has_no_late_replies(tmp_path: Path) -> None:
    """It binds its ports, so no client of this host is ever given one."""
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'UDP_PORTS="{local_port_range().start}"\n')
    assert late_reply_ports(load_settings(conf).with_modes(None, UdpMode.CLASSIC)) == (
        frozenset(),
        None,
    )


def test_reserved_ports_are_no_client_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ip_local_reserved_ports: the kernel never gives them to a client, so no late reply."""
    local = local_port_range()
    reserved = tmp_path / "ip_local_reserved_ports"
    reserved.write_text(f"{local.start}-{local.start + 1},{local.start + 5}\n")
    monkeypatch.setattr(ports, "_RESERVED_PORTS", reserved)
    assert reserved_local_ports() == {local.start, local.start + 1, local.start + 5}
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'UDP_PORTS="{local.start}-{local.start + 3}"\n')
    found, _ = late_reply_ports(load_settings(conf).with_modes(None, UdpMode.STEALTH))
    assert found == {local.start + 2, local.start + 3}
    reserved.write_text("\n")  # none reserved: the kernel's default
    assert reserved_local_ports() == frozenset()
