"""Which sensors a Settings asks for."""

import logging

from portwarden.config import Settings, TcpMode, UdpMode
from portwarden.config.values import CLASSIC_MODES
from portwarden.descriptors import ensure_free
from portwarden.net.addresses import Proto
from portwarden.net.ports import local_port_range, reserved_local_ports
from portwarden.sensors.hostview import HostView
from portwarden.sensors.listener import ListenerSensor
from portwarden.sensors.raw import RawSensor
from portwarden.text import one_line, port_ranges

log = logging.getLogger("portwarden")

Sensor = ListenerSensor | RawSensor


def watch_list(settings: Settings) -> list[tuple[Proto, str, tuple[int, ...]]]:
    """Each protocol's mode as PortSentry names it (tcp, stcp, atcp, udp, sudp, audp) and its
    ports: the configured list, or in the advanced (inverse) modes every port below
    ADVANCED_PORTS_* minus the excluded ones, from 0 as PortSentry 1.2's loop: no service can
    have port 0, and `nmap -p0` and `hping3 -p 0` probe it."""
    s = settings
    found = []
    for proto, mode, ports, below, exclude in (
        (Proto.TCP, s.tcp_mode, s.tcp_ports, s.advanced_ports_tcp, s.advanced_exclude_tcp),
        (Proto.UDP, s.udp_mode, s.udp_ports, s.advanced_ports_udp, s.advanced_exclude_udp),
    ):
        if mode in (TcpMode.ADVANCED, UdpMode.ADVANCED):
            ports = tuple(port for port in range(below) if port not in exclude)
        if mode is not None:
            found.append((proto, mode.value, ports))
    return found


def udp_ports_in(ports: range, settings: Settings) -> frozenset[int]:
    """The UDP ports watched on raw packets (before SmartVerify) that lie in `ports`. The
    classic mode has none: it binds its ports, so the kernel never gives them to a client."""
    return frozenset(
        port
        for proto, mode, watched in watch_list(settings)
        if proto is Proto.UDP and mode not in CLASSIC_MODES
        for port in watched
        if port in ports
    )


def sensor_inputs(settings: Settings) -> tuple[object, ...]:
    """Every setting build_sensors reads: equal for two configurations, their sensors would
    be the same."""
    return (
        watch_list(settings),
        settings.port_banner,
        settings.service_gone_grace,
        settings.udp_reply_source_ports,
    )


def build_sensors(settings: Settings, host: HostView) -> list[Sensor]:
    """Raises OSError (e.g. EPERM without CAP_NET_RAW) if a sensor cannot be opened, and
    DescriptorShortage before binding anything if the classic modes' ports cannot all be bound
    within the open-files limit. A failure closes the sensors made before it: a classic mode's
    bound ports are free again for the sensors tried next (a reload's fallback)."""
    watched = watch_list(settings)
    classic = [(proto, ports) for proto, mode, ports in watched if mode in CLASSIC_MODES]
    if classic:
        counts = " and ".join(f"{len(ports)} {proto.name}" for proto, ports in classic)
        ensure_free(sum(len(ports) for _, ports in classic), f"the classic modes' {counts} ports")
    sensors: list[Sensor] = []
    try:
        for proto, mode, ports in watched:
            if mode in CLASSIC_MODES:
                banner = settings.port_banner if proto is Proto.TCP else None
                sensors.append(ListenerSensor(proto, ports, banner, host))
            else:
                sensors.append(
                    RawSensor(
                        proto,
                        mode,
                        frozenset(ports),
                        host,
                        settings.service_gone_grace,
                        settings.udp_reply_source_ports,
                    )
                )
    except BaseException:
        for sensor in sensors:
            sensor.close()
        raise
    return sensors


def build_each(settings: Settings, host: HostView) -> tuple[list[Sensor], dict[Proto, str]]:
    """Each protocol's sensor on its own (build_sensors with the other protocol off): those
    that could be made, and why each of the others could not. A protocol that fails, also on
    a bug, leaves the other watched (and its sensors made, not lost half-registered)."""
    sensors: list[Sensor] = []
    failed: dict[Proto, str] = {}
    for proto in Proto:
        alone = settings.with_modes(
            settings.tcp_mode if proto is Proto.TCP else None,
            settings.udp_mode if proto is Proto.UDP else None,
        )
        try:
            sensors += build_sensors(alone, host)
        except Exception as error:  # noqa: BLE001 - a bug in one protocol's build included
            failed[proto] = failure(error, f"the {proto.value} sensors")
    return sensors, failed


def failure(error: Exception, what: str) -> str:
    """Why building `what` raised `error`, on one line. An OSError is the system's answer (no
    CAP_NET_RAW, too few descriptors); anything else is a bug, logged here with its traceback."""
    if isinstance(error, OSError):
        return str(error)
    log.error(
        "building %s failed (a bug: please report it with this traceback)", what, exc_info=error
    )
    return one_line(f"{type(error).__name__}: {error}")


def late_reply_ports(settings: Settings) -> tuple[frozenset[int], str | None]:
    """The UDP tripwires in this host's local port range, where replies to its own clients
    arrive, and a warning line that says so (None when there are none). A reserved port
    (ip_local_reserved_ports) is never a client's. TCP has no such trouble: a reply carries
    ACK or RST, never a probe."""
    local = local_port_range()
    ports = udp_ports_in(local, settings) - reserved_local_ports()
    if not ports:
        return ports, None
    sources = settings.udp_reply_source_ports
    how = (
        f"datagrams to them from source ports {port_ranges(sources)} "
        "(UDP_REPLY_SOURCE_PORTS) are taken for late replies, not probes"
        if sources
        else "a late reply to one of its clients there is reported as a probe"
    )
    listed = port_ranges(ports)
    return ports, (
        f"udp: {len(ports)} tripwire ports are in this host's local port range "
        f"{local.start}-{local.stop - 1} (net.ipv4.ip_local_port_range), where "
        f"replies to its own clients arrive: {listed}; {how}"
    )
