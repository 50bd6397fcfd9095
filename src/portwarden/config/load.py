"""Reading a configuration file into Settings: every key through its value parser, the keys
checked against each other, warnings for what may not mean what was meant."""

import contextlib
import dataclasses
import difflib
import socket
from pathlib import Path

from portwarden.config import kill, portsentry_reading, values
from portwarden.config.audit_policy import (
    Policy,
    parse_addresses,
    parse_devices,
    parse_groups,
    parse_skip_groups,
)
from portwarden.config.conffile import Entry, capped, parse_conf
from portwarden.config.defaults import DEFAULT_CONF, DEFAULT_SOURCE, default_state_dir
from portwarden.config.errors import ConfigError
from portwarden.config.hostscan import endpoint_warnings, parse_rules
from portwarden.config.ignore import Network, parse_ignore_text
from portwarden.config.reader import Reader
from portwarden.config.settings import KEYS, Settings, nothing_to_do
from portwarden.config.smtp import check_smtp, check_subject
from portwarden.config.values import BlockMode, Modes, NftUse, TcpMode, UdpMode
from portwarden.textfile import BOM, decoded, read_bytes, read_text

_LONGEST_KEY = max(len(key) for key in KEYS)


def state_dir_of(path: Path | None, fallback: bool) -> Path:
    """STATE_DIR alone, from a file that may have errors elsewhere (`status` needs nothing
    else): broken lines are skipped. An unreadable file or a bad STATE_DIR line gives the
    default with `fallback` (the file was not named: the system's), else raises ConfigError:
    a file named on purpose is not another instance's."""
    if path is None:
        return default_state_dir()
    try:
        entries, _ = parse_conf(
            decoded(_conf_bytes(path)), str(path), lenient=True, strict_for=frozenset({"STATE_DIR"})
        )
        read = Reader(str(path), entries, {}, path.parent.absolute())
        return read.required_path("STATE_DIR", default_state_dir())
    except ConfigError:
        if not fallback:
            raise
        return default_state_dir()


def error_at(source: str, key: str, reason: str) -> ConfigError:
    """A ConfigError at `key`'s entry in `source` (Settings.source), for a problem that shows
    only when a path is used (a STATE_DIR that cannot be made). The file is read again."""
    entries: dict[str, Entry] = {}
    if source != DEFAULT_SOURCE:
        with contextlib.suppress(
            ConfigError, ValueError
        ):  # moved, or a relative name after a chdir
            entries, _ = parse_conf(read_text(Path(source)), source, lenient=True)
    return Reader(source, entries, {}, Path()).error(key, reason)


def _conf_bytes(path: Path) -> bytes:
    try:
        return read_bytes(path)
    except ValueError as why:
        raise ConfigError(path, f"cannot read the configuration: {why}") from None


def load_settings(path: Path | None, modes: Modes | None = None, watching: bool = True) -> Settings:
    """Read `path` (or only the embedded defaults when None) into Settings. `modes`: the
    command line's mode flags, which replace TCP_MODE and UDP_MODE. `watching`: for the
    daemon and what checks for it, so a mode with no port to watch is an error; the commands
    that only read the state (blocked, unblock, status, ...) leave that to them, since the
    daemon may run with other mode flags. Raises ConfigError."""
    # Here, not at the top: the host checks read the host as the audit does (its interfaces,
    # /etc/rpc), which the many modules that only name Settings need not load.
    from portwarden.config import host_checks

    defaults, _ = parse_conf(DEFAULT_CONF, DEFAULT_SOURCE)
    if path is None:
        entries: dict[str, Entry] = {}
        warnings: list[str] = []
        source, base = DEFAULT_SOURCE, Path.cwd()
    else:
        data = _conf_bytes(path)
        entries, warnings = parse_conf(decoded(data), str(path), known=frozenset(KEYS))
        warnings += portsentry_reading.differences(data, str(path), entries, defaults)
        source, base = str(path), path.parent.absolute()
    read = Reader(source, entries, defaults, base)
    state_dir = read.required_path("STATE_DIR", default_state_dir())
    ignore_file = read.path("IGNORE_FILE", None)
    settings = Settings(
        source=source,
        tcp_mode=read.get("TCP_MODE", values.tcp_mode, None),
        udp_mode=read.get("UDP_MODE", values.udp_mode, None),
        tcp_ports=read.get("TCP_PORTS", values.port_list, ()),
        udp_ports=read.get("UDP_PORTS", values.port_list, ()),
        advanced_ports_tcp=read.get("ADVANCED_PORTS_TCP", values.ports_below, 1024),
        advanced_ports_udp=read.get("ADVANCED_PORTS_UDP", values.ports_below, 1024),
        advanced_exclude_tcp=read.get("ADVANCED_EXCLUDE_TCP", values.port_set, frozenset()),
        advanced_exclude_udp=read.get("ADVANCED_EXCLUDE_UDP", values.port_set, frozenset()),
        ignore_file=ignore_file,
        history_file=read.required_path("HISTORY_FILE", state_dir / "portsentry.history"),
        blocked_file=read.required_path("BLOCKED_FILE", state_dir / "portsentry.blocked"),
        resolve_host=read.get("RESOLVE_HOST", values.portsentry_flag, False),
        block_tcp=read.get("BLOCK_TCP", values.block_mode, BlockMode.ALERT_ONLY),
        block_udp=read.get("BLOCK_UDP", values.block_mode, BlockMode.ALERT_ONLY),
        kill_route=read.get("KILL_ROUTE", kill.route_command, None),
        kill_hosts_deny=read.get("KILL_HOSTS_DENY", kill.hosts_deny_line, None),
        kill_run_cmd=read.get("KILL_RUN_CMD", kill.command, None),
        kill_run_cmd_first=read.get("KILL_RUN_CMD_FIRST", values.portsentry_flag, False),
        scan_trigger=read.get("SCAN_TRIGGER", values.count, 0),
        port_banner=read.get("PORT_BANNER", values.optional_text, None),
        state_dir=state_dir,
        scan_trigger_window=read.get("SCAN_TRIGGER_WINDOW", values.seconds, 300.0),
        scan_count_threshold=read.get("SCAN_COUNT_THRESHOLD", values.scan_threshold, 0),
        scan_interval=read.get("SCAN_INTERVAL", values.seconds, 3.0),
        scan_flood_detection=read.get("SCAN_FLOOD_DETECTION", values.flag, False),
        tcp_scan_ignore=read.get("TCP_SCAN_IGNORE", parse_rules, ()),
        udp_scan_ignore=read.get("UDP_SCAN_IGNORE", parse_rules, ()),
        block_nftables=read.get("BLOCK_NFTABLES", values.nft_use, NftUse.AUTO),
        block_forward=read.get("BLOCK_FORWARD", values.flag, False),
        block_duration=read.get("BLOCK_DURATION", values.block_duration, 0.0),
        block_escalation=read.get("BLOCK_ESCALATION", values.factor, 1.0),
        block_duration_max=read.get("BLOCK_DURATION_MAX", values.block_duration, 0.0),
        blocks_per_minute=read.get("BLOCKS_PER_MINUTE", values.positive, 60),
        hosts_deny_file=read.required_path("HOSTS_DENY_FILE", Path("/etc/hosts.deny")),
        protect_gateways=read.get("PROTECT_GATEWAYS", values.flag, True),
        protect_nameservers=read.get("PROTECT_NAMESERVERS", values.flag, True),
        kill_cmd_timeout=read.get("KILL_CMD_TIMEOUT", values.seconds, 10.0),
        unblock_on_stop=read.get("UNBLOCK_ON_STOP", values.flag, False),
        syslog_facility=read.get("SYSLOG_FACILITY", values.facility, "daemon"),
        syslog_socket=read.path("SYSLOG_SOCKET", Path("/dev/log")),
        log_connections=read.get("LOG_CONNECTIONS", values.flag, False),
        log_details=read.get("LOG_DETAILS", values.flag, False),
        scan_end_quiet=read.get("SCAN_END_QUIET", values.seconds, 30.0),
        event_log=read.path("EVENT_LOG", state_dir / "events.jsonl"),
        event_log_max_bytes=read.get("EVENT_LOG_MAX_BYTES", values.log_size, 50_000_000),
        mail_on_tcp_scan=read.get("MAIL_ON_TCP_SCAN", values.flag, False),
        mail_on_udp_scan=read.get("MAIL_ON_UDP_SCAN", values.flag, False),
        mail_on_os_probe=read.get("MAIL_ON_OS_PROBE", values.flag, False),
        mail_on_audit=read.get("MAIL_ON_AUDIT", values.flag, False),
        mail_from=read.get("MAIL_FROM", values.mail_address, f"portwarden@{socket.gethostname()}"),
        mail_to=read.get("MAIL_TO", values.mail_addresses, ()),
        mail_subject=read.get("MAIL_SUBJECT", values.optional_header_text, None),
        mail_per_hour=read.get("MAIL_PER_HOUR", values.positive, 20),
        smtp_relay=read.get("SMTP_RELAY", values.host, "localhost"),
        smtp_port=read.get("SMTP_PORT", values.port, 25),
        smtp_helo=read.get("SMTP_HELO", values.host, socket.gethostname()),
        smtp_starttls=read.get("SMTP_STARTTLS", values.flag, False),
        smtp_user=read.get("SMTP_USER", values.optional_text, None),
        smtp_password_file=read.path("SMTP_PASSWORD_FILE", None),
        smtp_timeout=read.get("SMTP_TIMEOUT", values.seconds, 10.0),
        metrics_listen=read.get("METRICS_LISTEN", values.listen_address, None),
        audit_interval=read.get("AUDIT_INTERVAL", values.audit_interval, 300.0),
        audit_interfaces=read.get("AUDIT_INTERFACES", parse_addresses, ()),
        audit_devices=read.get("AUDIT_DEVICES", parse_devices, ()),
        audit_min_port=read.get("AUDIT_MIN_PORT", values.port, 1),
        audit_max_port=read.get("AUDIT_MAX_PORT", values.port, 65535),
        audit_udp=read.get("AUDIT_UDP", values.flag, True),
        audit_required=read.get("AUDIT_REQUIRED", parse_groups, ()),
        audit_optional=read.get("AUDIT_OPTIONAL", parse_groups, ()),
        audit_ignore=read.get("AUDIT_IGNORE", parse_groups, ()),
        audit_skip=read.get("AUDIT_SKIP", parse_skip_groups, ()),
        audit_severity_missing=read.get("AUDIT_SEVERITY_MISSING", values.severity, "crit"),
        audit_severity_new=read.get("AUDIT_SEVERITY_NEW", values.severity, "crit"),
        audit_severity_restarted=read.get("AUDIT_SEVERITY_RESTARTED", values.severity, "notice"),
        audit_severity_portswitch=read.get("AUDIT_SEVERITY_PORTSWITCH", values.severity, "crit"),
        event_log_keep=read.get("EVENT_LOG_KEEP", values.log_generations, 5),
        smtp_ca_file=read.path("SMTP_CA_FILE", None),
        udp_reply_source_ports=read.get(
            "UDP_REPLY_SOURCE_PORTS", values.port_set, frozenset({53, 123, 443, 853, 5353})
        ),
        nft_table=read.get("NFT_TABLE", values.nft_table, "portwarden"),
        service_gone_grace=read.get("SERVICE_GONE_GRACE", values.duration, 600.0),
        smtp_retry_delay=read.get("SMTP_RETRY_DELAY", values.retry_delay, 300.0),
        audit_severity_portmapper=read.get("AUDIT_SEVERITY_PORTMAPPER", values.severity, "err"),
        blocks_max=read.get("BLOCKS_MAX", values.count, 100_000),
        scan_report_interval=read.get("SCAN_REPORT_INTERVAL", values.seconds, 300.0),
        smtp_give_up_after=read.get("SMTP_GIVE_UP_AFTER", values.seconds, 86400.0),
        history_alert_only=read.get("HISTORY_ALERT_ONLY", values.flag, True),
        os_probe_quiet=read.get("OS_PROBE_QUIET", values.seconds, 10.0),
        ipv6_source_prefix=read.get("IPV6_SOURCE_PREFIX", values.ipv6_source_prefix, 128),
        ignored_networks=(),
    )
    warnings += _unknown_keys([entry for key, entry in entries.items() if key not in read.used])
    warnings += host_checks.rpc_name_warnings(read, settings)
    warnings += _shell_warnings(read, settings)
    warnings += host_checks.program_warnings(read, settings)
    warnings += _block_warnings(read, settings)
    if modes is not None:
        settings = settings.with_modes(*modes)
    if watching:
        _require_ports(read, settings, modes is not None)
    if modes is None and settings.tcp_mode is None and settings.udp_mode is None:
        warnings.append(
            f"{read.where('TCP_MODE')}TCP_MODE and UDP_MODE are both off: without "
            "a mode flag the daemon watches nothing"
        )
    warnings += [
        f"{read.where(key)}{key}: empty items in the port list skipped, as PortSentry did"
        for key in (
            "TCP_PORTS",
            "UDP_PORTS",
            "ADVANCED_EXCLUDE_TCP",
            "ADVANCED_EXCLUDE_UDP",
            "UDP_REPLY_SOURCE_PORTS",
        )
        if key in entries and values.has_empty_items(entries[key].value)
    ]
    warnings += _hostscan_warnings(read)
    if settings.scan_count_threshold and settings.scan_interval > settings.scan_trigger_window:
        interval, window = settings.scan_interval, settings.scan_trigger_window
        warnings.append(
            f"{read.where('SCAN_INTERVAL')}SCAN_INTERVAL ({interval:g} s) is longer "
            f"than SCAN_TRIGGER_WINDOW ({window:g} s), which caps it: a source quiet "
            "for SCAN_TRIGGER_WINDOW starts over"
        )
    if settings.scan_report_interval < settings.scan_end_quiet:
        report, quiet = settings.scan_report_interval, settings.scan_end_quiet
        raise (
            read.error(
                "SCAN_REPORT_INTERVAL",
                f"must be at least SCAN_END_QUIET ({quiet:g} "
                "s): a scan still going is reported at most that often",
            )
            if read.entry("SCAN_REPORT_INTERVAL")
            else read.error(
                "SCAN_END_QUIET",
                f"must be at most SCAN_REPORT_INTERVAL ({report:g} "
                "s): a scan still going is reported at most that often",
            )
        )
    if read.entry("OS_PROBE_QUIET") and settings.scan_report_interval < settings.os_probe_quiet:
        # Only when set: the default (10 s) stays valid with a SCAN_REPORT_INTERVAL below it,
        # as it was before the key existed.
        raise read.error(
            "OS_PROBE_QUIET",
            f"must be at most SCAN_REPORT_INTERVAL ({settings.scan_report_interval:g} s): a run "
            "of OS probing still going is reported at most that often",
        )
    if settings.smtp_give_up_after < settings.smtp_retry_delay:
        warnings.append(
            f"{read.where('SMTP_GIVE_UP_AFTER')}SMTP_GIVE_UP_AFTER "
            f"({settings.smtp_give_up_after:g} s) is shorter than SMTP_RETRY_DELAY "
            f"({settings.smtp_retry_delay:g} s): a mail turned away is tried again "
            "once, SMTP_RETRY_DELAY later, then given up"
        )
    mail_on = [
        key
        for key, on in (
            ("MAIL_ON_TCP_SCAN", settings.mail_on_tcp_scan),
            ("MAIL_ON_UDP_SCAN", settings.mail_on_udp_scan),
            ("MAIL_ON_OS_PROBE", settings.mail_on_os_probe),
            ("MAIL_ON_AUDIT", settings.mail_on_audit),
        )
        if on
    ]
    if mail_on and not settings.mail_to:
        raise read.error(mail_on[0], "mail is on but MAIL_TO names nobody to send it to")
    if "MAIL_TO" in entries:
        repeated = values.repeated_mail_addresses(entries["MAIL_TO"].value)
        if repeated:
            warnings.append(
                f"{read.where('MAIL_TO')}MAIL_TO names {', '.join(repeated)} more "
                "than once: each gets the mail once"
            )
    warnings += check_smtp(
        read.where,
        read.error,
        relay=settings.smtp_relay,
        starttls=settings.smtp_starttls,
        user=settings.smtp_user,
        password_file=settings.smtp_password_file,
        ca_file=settings.smtp_ca_file,
    )
    warnings += check_subject(read.where, settings.mail_subject)
    host_checks.check_paths(read, settings, watching)
    if settings.audit_min_port > settings.audit_max_port:
        raise read.error(
            "AUDIT_MIN_PORT", "AUDIT_MIN_PORT is above AUDIT_MAX_PORT", str(settings.audit_min_port)
        )
    policy = Policy(
        settings.audit_required, settings.audit_optional, settings.audit_ignore, settings.audit_skip
    )
    unseeable = policy.unseeable(
        settings.audit_udp, settings.audit_min_port, settings.audit_max_port
    )
    if unseeable is not None:
        raise read.error("AUDIT_REQUIRED", unseeable)
    warnings += [
        f"{read.where(key)}{key}: {why}"
        for key, why in policy.never_matched(
            settings.audit_udp, settings.audit_min_port, settings.audit_max_port
        )
    ]
    warnings += host_checks.unaudited_requirement_warnings(read, settings, policy)
    ignored: tuple[Network, ...] = ()
    if ignore_file is not None:
        if not host_checks.exists(ignore_file):
            warnings.append(
                f"{read.where('IGNORE_FILE')}IGNORE_FILE {ignore_file} does not "
                "exist; only loopback and this host's own addresses are "
                "ignored"
            )
        else:
            try:
                data = read_bytes(ignore_file)
            except ValueError as why:
                raise read.error("IGNORE_FILE", f"cannot read the ignore file: {why}") from None
            ignored, ignore_warnings = parse_ignore_text(
                decoded(data), str(ignore_file), bom=data.startswith(BOM)
            )
            warnings += ignore_warnings
    return dataclasses.replace(settings, ignored_networks=ignored, warnings=tuple(warnings))


def _unknown_keys(unknown: list[Entry]) -> list[str]:
    """A warning for each unknown key, at most WARNINGS_OF_A_KIND_MAX (conffile.capped)."""
    if not unknown:
        return []
    return capped(
        unknown,
        lambda e: e.line,
        lambda e: f"{e.source}:{e.line}: unknown key {e.key} ignored{_did_you_mean(e.key)}",
        unknown[0].source,
        "unknown keys ignored",
    )


def _did_you_mean(key: str) -> str:
    """' (did you mean KEY?)' for an unknown key close to a known one (TCP_PORT, tcp_ports).
    A key much longer than any we know is close to none: not compared (difflib's work grows
    with the length)."""
    if len(key) > 2 * _LONGEST_KEY:
        return ""
    close = difflib.get_close_matches(key.upper(), KEYS, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _require_ports(read: Reader, settings: Settings, from_flags: bool) -> None:
    """A classic or stealth mode watches TCP_PORTS / UDP_PORTS: with none it would watch nothing
    and say so nowhere. PortSentry aborted ("No TCP ports supplied in config file"); so do we.
    `from_flags`: the modes came from the command line."""
    for key, mode_key, mode, ports in (
        ("TCP_PORTS", "TCP_MODE", settings.tcp_mode, settings.tcp_ports),
        ("UDP_PORTS", "UDP_MODE", settings.udp_mode, settings.udp_ports),
    ):
        if mode is None or mode in (TcpMode.ADVANCED, UdpMode.ADVANCED) or ports:
            continue
        if from_flags:
            chosen, off = f"the flag -{mode.value}", f"leave out -{mode.value}"
        else:
            entry = read.entry(mode_key)
            default = " (the default)" if entry and entry.source == DEFAULT_SOURCE else ""
            chosen, off = f'{mode_key}="{mode.value}"{default}', f'set {mode_key}="none"'
        raise read.error(
            key,
            f"names no port, but {chosen} watches it; list ports or {off} "
            "(PortSentry refused to start too)",
        )


def _block_warnings(read: Reader, settings: Settings) -> list[str]:
    """Blocking set up to do nothing, a KILL_ROUTE we cannot undo, block durations that
    contradict each other. Warnings: PortSentry took all of these silently."""
    found = []
    for key, mode in (("BLOCK_TCP", settings.block_tcp), ("BLOCK_UDP", settings.block_udp)):
        why = nothing_to_do(settings, mode)
        if why:
            found.append(
                f"{read.where(key)}{key}={int(mode)} but {why}: nothing will be done; "
                "its scans are only alerted"
            )
    route = settings.kill_route
    blocks = BlockMode.BLOCK in (settings.block_tcp, settings.block_udp)
    if route and blocks and kill.route_undo(route.argv) is None:
        found.append(
            f"{read.where('KILL_ROUTE')}KILL_ROUTE: no known way to undo it (only "
            "`... add ...`, undone with `del`, `nft add element`, undone with `delete "
            "element`, and iptables -I/-A, undone with -D): "
            "unblock and expiry leave it in force, and reapply does not run it "
            "again"
        )
    if (
        route
        and blocks
        and settings.block_nftables is not values.NftUse.ALWAYS
        and kill.ipv4_only(route.argv)
    ):
        found.append(
            f"{read.where('KILL_ROUTE')}KILL_ROUTE: {route.argv[0]} cannot block an IPv6 "
            "source: IPv6 scanners are blocked only by KILL_HOSTS_DENY's line (TCP Wrappers "
            'services), if set; set BLOCK_NFTABLES="1" or use a KILL_ROUTE for both '
            'families ("/sbin/ip route add blackhole $TARGET$")'
        )
    if settings.kill_hosts_deny:
        found += [
            f"{read.where('KILL_HOSTS_DENY')}KILL_HOSTS_DENY {problem}"
            for problem in kill.hosts_deny_problems(settings.kill_hosts_deny)
        ]
    duration, longest = settings.block_duration, settings.block_duration_max
    where = read.where("BLOCK_DURATION_MAX")
    if longest and not duration:
        found.append(
            f'{where}BLOCK_DURATION_MAX does nothing: BLOCK_DURATION="0" makes every '
            "block last forever"
        )
    elif longest and longest < duration:
        found.append(
            f"{where}BLOCK_DURATION_MAX ({longest:g} s) is shorter than BLOCK_DURATION "
            f"({duration:g} s): every block lasts {longest:g} s"
        )
    return found


def _shell_warnings(read: Reader, settings: Settings) -> list[str]:
    """PortSentry ran KILL_ROUTE and KILL_RUN_CMD through a shell; we do not: say so when a
    command relies on one."""
    found = []
    for key, command in (
        ("KILL_ROUTE", settings.kill_route),
        ("KILL_RUN_CMD", settings.kill_run_cmd),
    ):
        syntax = command.shell_syntax if command else ()
        if syntax:
            found.append(
                f"{read.where(key)}{key} has shell syntax ({' '.join(syntax)}): it runs "
                "without a shell, so these reach the program as literal arguments; "
                "put a pipeline or list in a script and name the script"
            )
    return found


def _hostscan_warnings(read: Reader) -> list[str]:
    """What in *_SCAN_IGNORE may not mean what was meant (hostscan.endpoint_warnings)."""
    found = []
    for key in ("TCP_SCAN_IGNORE", "UDP_SCAN_IGNORE"):
        entry = read.entry(key)
        if entry is not None:
            found += [
                f"{entry.source}:{entry.line}: {key}: {why}"
                for why in endpoint_warnings(entry.value)
            ]
    return found
