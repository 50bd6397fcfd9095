"""Which sensors a Settings asks for."""

from portwarden.config import Settings, TcpMode, UdpMode
from portwarden.detect.probe import Proto
from portwarden.sensors.hostview import HostView
from portwarden.sensors.listener import ListenerSensor
from portwarden.sensors.raw import RawSensor

Sensor = ListenerSensor | RawSensor


def advanced_ports(below: int, exclude: frozenset[int]) -> frozenset[int]:
    """PortSentry's inverse mode: every port below `below`, minus the excluded ones."""
    return frozenset(range(1, below)) - exclude


def build_sensors(settings: Settings, host: HostView) -> list[Sensor]:
    """Raises OSError (e.g. EPERM without CAP_NET_RAW) if a sensor cannot be opened."""
    sensors: list[Sensor] = []
    s = settings
    if s.tcp_mode is TcpMode.CLASSIC:
        sensors.append(ListenerSensor(Proto.TCP, s.tcp_ports, s.port_banner))
    elif s.tcp_mode is TcpMode.STEALTH:
        sensors.append(RawSensor(Proto.TCP, "stcp", frozenset(s.tcp_ports), host))
    elif s.tcp_mode is TcpMode.ADVANCED:
        ports = advanced_ports(s.advanced_ports_tcp, s.advanced_exclude_tcp)
        sensors.append(RawSensor(Proto.TCP, "atcp", ports, host))
    if s.udp_mode is UdpMode.CLASSIC:
        sensors.append(ListenerSensor(Proto.UDP, s.udp_ports, None))
    elif s.udp_mode is UdpMode.STEALTH:
        sensors.append(RawSensor(Proto.UDP, "sudp", frozenset(s.udp_ports), host))
    elif s.udp_mode is UdpMode.ADVANCED:
        ports = advanced_ports(s.advanced_ports_udp, s.advanced_exclude_udp)
        sensors.append(RawSensor(Proto.UDP, "audp", ports, host))
    return sensors
