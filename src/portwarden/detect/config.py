"""Engine configuration from Settings."""

import ipaddress

from portwarden.config import Settings
from portwarden.config.hostscan import Endpoint, HostScanRule
from portwarden.config.ignore import IgnoreList
from portwarden.detect.engine import EngineConfig, ScandetdModel
from portwarden.net.ports import local_port_range, reserved_local_ports
from portwarden.sensors.build import udp_ports_in
from portwarden.text import port_ranges

_ANY = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


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


def late_reply_rules(sources: frozenset[int], ports: frozenset[int]) -> tuple[HostScanRule, ...]:
    """UDP_SCAN_IGNORE rules for datagrams from `sources` (DNS, NTP) to `ports`, the tripwires
    inside this host's local port range: a reply that comes after its client gave up and closed
    its socket (a slow DNS answer) lands on such a port and is no probe."""
    if not sources or not ports:
        return ()
    return tuple(HostScanRule(Endpoint(net, sources), Endpoint(net, ports)) for net in _ANY)


def engine_config(
    settings: Settings, ignore: IgnoreList, late_reply_ports: frozenset[int]
) -> EngineConfig:
    """`late_reply_ports`: the UDP tripwires inside this host's local port range."""
    scandetd = None
    if settings.scan_count_threshold:
        scandetd = ScandetdModel(
            settings.scan_count_threshold, settings.scan_interval, settings.scan_flood_detection
        )
    return EngineConfig(
        trigger=settings.scan_trigger,
        window_s=settings.scan_trigger_window,
        scandetd=scandetd,
        ignore=ignore,
        tcp_rules=settings.tcp_scan_ignore,
        udp_rules=settings.udp_scan_ignore
        + late_reply_rules(settings.udp_reply_source_ports, late_reply_ports),
        scan_end_quiet_s=settings.scan_end_quiet,
        scan_report_s=settings.scan_report_interval,
        os_probe_quiet_s=settings.os_probe_quiet,
        ipv6_prefix=settings.ipv6_source_prefix,
    )
