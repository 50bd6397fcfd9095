"""Engine configuration from Settings."""

import ipaddress

from portwarden.config import Settings
from portwarden.config.hostscan import Endpoint, HostScanRule
from portwarden.config.ignore import IgnoreList
from portwarden.detect.engine import EngineConfig, ScandetdModel

_ANY = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


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
