"""Port 0 in the advanced modes: watched from 0, as PortSentry 1.2's advanced loop, since no
service can have it (`nmap -p0`, `hping3 -p 0` probe it); TCP and UDP port 0 are two ports."""

import ipaddress
from pathlib import Path

import pytest

from portwarden.config import TcpMode, UdpMode, load_settings
from portwarden.config.errors import ConfigError
from portwarden.detect.engine import Engine, EngineConfig, key_port, port_key
from portwarden.detect.probe import SYN_SCAN, UDP_SCAN, Probe
from portwarden.net.addresses import Proto
from portwarden.net.ports import Owner, verify
from portwarden.sensors.build import watch_list

LOOPBACK = bytes([127, 0, 0, 1])


def test_the_advanced_modes_watch_every_port_from_0_below_the_limit(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        'ADVANCED_PORTS_TCP="1024"\nADVANCED_PORTS_UDP="10"\n'
        'ADVANCED_EXCLUDE_TCP="113,139"\nADVANCED_EXCLUDE_UDP=""\n'
    )
    settings = load_settings(conf).with_modes(TcpMode.ADVANCED, UdpMode.ADVANCED)
    (tcp_proto, tcp_mode, tcp), (udp_proto, udp_mode, udp) = watch_list(settings)
    assert (tcp_proto, tcp_mode, udp_proto, udp_mode) == (Proto.TCP, "atcp", Proto.UDP, "audp")
    assert tcp[0] == 0 and len(tcp) == 1024 - 2 and 113 not in tcp and tcp[-1] == 1023
    assert udp == tuple(range(10))


def test_65536_watches_every_port_and_more_is_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text('ADVANCED_PORTS_TCP="65536"\n')
    settings = load_settings(conf).with_modes(TcpMode.ADVANCED, None)
    ((_, _, tcp),) = watch_list(settings)
    assert len(tcp) == 65536 - 2 and tcp[-1] == 65535  # ADVANCED_EXCLUDE_TCP: 113, 139
    conf.write_text('ADVANCED_PORTS_TCP="65537"\n')
    with pytest.raises(ConfigError) as error:
        load_settings(conf)
    assert str(error.value) == (
        f"{conf}:1: ADVANCED_PORTS_TCP=\"65537\": '65537' must be a "
        "number from 1 to 65536 (every port below it is watched: 65536 "
        "watches all)"
    )


def test_port_0_never_has_a_service() -> None:
    """A bind to port 0 picks a free port: that is no answer about port 0."""
    assert verify(Proto.TCP, LOOPBACK, 0) is Owner.NOBODY
    assert verify(Proto.UDP, LOOPBACK, 0) is Owner.NOBODY


def test_tcp_and_udp_port_0_are_two_ports() -> None:
    assert [
        key_port(port_key(tcp, port))
        for tcp, port in ((True, 0), (False, 0), (True, 65535), (False, 65535))
    ] == [(Proto.TCP, 0), (Proto.UDP, 0), (Proto.TCP, 65535), (Proto.UDP, 65535)]
    engine = Engine(EngineConfig(trigger=0))
    src, dst = ipaddress.ip_address("198.18.0.11"), ipaddress.ip_address("198.18.0.1")
    engine.feed(Probe(src, dst, Proto.TCP, 40000, 0, "atcp", SYN_SCAN, "SYN"), 0.0)
    (verdict,) = engine.feed(Probe(src, dst, Proto.UDP, 40000, 0, "audp", UDP_SCAN), 1.0)
    assert (verdict.kind, verdict.probes, verdict.ports) == ("scan", 2, 2)
    assert {key_port(key) for key in engine.port_probes} == {(Proto.TCP, 0), (Proto.UDP, 0)}
