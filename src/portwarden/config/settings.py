"""The typed, frozen Settings and their KEY="value" form (to_conf_lines). Reading a file into
them is config.load; what the host lacks for them is config.host_checks."""

import dataclasses
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path

from portwarden.config import values
from portwarden.config.audit_policy import Group
from portwarden.config.hostscan import HostScanRule
from portwarden.config.ignore import ALWAYS_IGNORED, IgnoreList, Network
from portwarden.config.kill import Command
from portwarden.config.values import BlockMode, ListenAddress, NftUse, TcpMode, UdpMode
from portwarden.net.addresses import IPAddress
from portwarden.text import port_ranges


@dataclass(frozen=True)
class Settings:
    """Everything the daemon needs to know, validated. Field docs are in README's reference."""

    source: str
    tcp_mode: TcpMode | None
    udp_mode: UdpMode | None
    tcp_ports: tuple[int, ...]
    udp_ports: tuple[int, ...]
    advanced_ports_tcp: int
    advanced_ports_udp: int
    advanced_exclude_tcp: frozenset[int]
    advanced_exclude_udp: frozenset[int]
    ignore_file: Path | None
    history_file: Path
    blocked_file: Path
    resolve_host: bool
    block_tcp: BlockMode
    block_udp: BlockMode
    kill_route: Command | None
    kill_hosts_deny: str | None
    kill_run_cmd: Command | None
    kill_run_cmd_first: bool
    scan_trigger: int
    port_banner: str | None
    state_dir: Path
    scan_trigger_window: float
    scan_count_threshold: int
    scan_interval: float
    scan_flood_detection: bool
    tcp_scan_ignore: tuple[HostScanRule, ...]
    udp_scan_ignore: tuple[HostScanRule, ...]
    block_nftables: NftUse
    block_forward: bool
    block_duration: float
    block_escalation: float
    block_duration_max: float
    blocks_per_minute: int
    hosts_deny_file: Path
    protect_gateways: bool
    protect_nameservers: bool
    kill_cmd_timeout: float
    unblock_on_stop: bool
    syslog_facility: str
    syslog_socket: Path | None
    log_connections: bool
    log_details: bool
    scan_end_quiet: float
    event_log: Path | None
    event_log_max_bytes: int
    mail_on_tcp_scan: bool
    mail_on_udp_scan: bool
    mail_on_os_probe: bool
    mail_on_audit: bool
    mail_from: str
    mail_to: tuple[str, ...]
    mail_subject: str | None  # None: the default subjects (alert.mail_text.subject_template)
    mail_per_hour: int
    smtp_relay: str
    smtp_port: int
    smtp_helo: str
    smtp_starttls: bool
    smtp_user: str | None
    smtp_password_file: Path | None
    smtp_timeout: float
    metrics_listen: ListenAddress | None
    audit_interval: float
    audit_interfaces: tuple[IPAddress, ...]
    audit_devices: tuple[str, ...]
    audit_min_port: int
    audit_max_port: int
    audit_udp: bool
    audit_required: tuple[Group, ...]
    audit_optional: tuple[Group, ...]
    audit_ignore: tuple[Group, ...]
    audit_skip: tuple[Group, ...]
    audit_severity_missing: str
    audit_severity_new: str
    audit_severity_restarted: str
    audit_severity_portswitch: str
    event_log_keep: int
    smtp_ca_file: Path | None
    udp_reply_source_ports: frozenset[int]
    nft_table: str
    service_gone_grace: float
    smtp_retry_delay: float
    audit_severity_portmapper: str
    blocks_max: int
    scan_report_interval: float
    smtp_give_up_after: float
    history_alert_only: bool
    os_probe_quiet: float
    ipv6_source_prefix: int
    ignored_networks: tuple[Network, ...]
    warnings: tuple[str, ...] = ()

    def ignore_list(self, addresses: Iterable[IPAddress]) -> IgnoreList:
        """The configured networks plus loopback and this host's `addresses`
        (net.local.local_addresses(), or none for a replay)."""
        return IgnoreList.build(ALWAYS_IGNORED, addresses, self.ignored_networks)

    def with_modes(self, tcp: TcpMode | None, udp: UdpMode | None) -> "Settings":
        """The same settings with other modes. Unchecked: load_settings(path, modes) also
        refuses a mode that has no port to watch."""
        return dataclasses.replace(self, tcp_mode=tcp, udp_mode=udp)


def nothing_to_do(settings: Settings, mode: BlockMode) -> str | None:
    """Why BLOCK_TCP / BLOCK_UDP `mode` would do nothing at all to a scanner, or None. PortSentry
    said nothing of it, and wrote such a source into its blocked file all the same."""
    if mode is BlockMode.RUN_CMD_ONLY and settings.kill_run_cmd is None:
        return "no KILL_RUN_CMD"
    if (
        mode is BlockMode.BLOCK
        and settings.block_nftables is NftUse.NEVER
        and not (settings.kill_route or settings.kill_hosts_deny or settings.kill_run_cmd)
    ):
        return 'BLOCK_NFTABLES="0" and no KILL_ROUTE, KILL_HOSTS_DENY or KILL_RUN_CMD'
    return None


_NOT_KEYS = {"source", "ignored_networks", "warnings"}
_FIELDS = tuple(f for f in dataclasses.fields(Settings) if f.name not in _NOT_KEYS)
KEYS = tuple(f.name.upper() for f in _FIELDS)  # every key the file may set


def to_conf_lines(settings: Settings) -> list[str]:
    """The effective settings as KEY="value" lines that load back to the same settings."""
    return [_line(f.name.upper(), _render(f.type, getattr(settings, f.name))) for f in _FIELDS]


def _line(key: str, text: str) -> str:
    """KEY="text", or KEY=text when the text holds a '"': such a value came from an unquoted
    line, so it has no blank at either end and no ' #', and loads back the same way."""
    return f"{key}={text}" if '"' in text else f'{key}="{text}"'


def _render(kind: object, value: object) -> str:
    """A value as its key takes it, chosen by the field's declared type (never by the value's
    shape: a two-port list is no listen address)."""
    if value is None:
        return values.MODE_OFF if kind in (TcpMode | None, UdpMode | None) else ""
    if isinstance(kind, types.UnionType):  # X | None
        (kind,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is bool:
        return "1" if value else "0"
    if kind is float and isinstance(value, float):
        return f"{Decimal(repr(value)).normalize():f}"  # exact (repr), never 1e-05 or 1E+3
    if isinstance(kind, type) and issubclass(kind, Enum) and isinstance(value, Enum):
        return str(value.value)
    if typing.get_origin(kind) in (tuple, frozenset) and isinstance(value, tuple | frozenset):
        item = typing.get_args(kind)[0]
        if item is int:
            return port_ranges(value)
        return ("; " if item in (HostScanRule, Group) else ",").join(str(v) for v in value)
    return str(value)
