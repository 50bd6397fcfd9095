"""PortSentry's and scandetd's wording, so that filters written for them keep matching.

The attack lines are PortSentry 1.2's, checked against its source (portsentry.c): the classic
modes write `Connect from host:` for TCP and UDP alike, the stealth ones name the packet as its
ReportPacketType() does, and "already blocked" has two forms. The `adminalert:` lines about the
daemon itself are worded for logwatch's portsentry script, which files as routine the lines
with `PortSentry is now active` (PortSentry 1.2's start line) or `portsentry shutdown`, and
shows any other among its unmatched entries (PortSentry 1.2's own "PortSentry is shutting down"
among them).
"""

import shlex

from portwarden import limits
from portwarden.alert.line import prefix_words
from portwarden.config.values import CLASSIC_MODES
from portwarden.detect.engine import Verdict
from portwarden.detect.probe import Probe
from portwarden.net.addresses import Proto
from portwarden.net.nftables import set_of
from portwarden.store.db import COMMAND, DONE, HOSTS_DENY, NFT, ROUTE, Action
from portwarden.text import one_line


def _host(probe: Probe, name: str | None) -> str:
    return f"{name or probe.src}/{probe.src}"


def packet_type(flags: str) -> str:
    """PortSentry 1.2's ReportPacketType() for a TCP segment, from our flag names (`FIN+SYN`):
    it looks at SYN FIN ACK PSH URG RST only; any packet with FIN, PSH and URG is an XMAS scan.
    The leading space of " TCP NULL scan" is PortSentry's (its line has two spaces there)."""
    seen = set(flags.split("+"))
    bits = {name: int(name in seen) for name in ("SYN", "FIN", "ACK", "PSH", "URG", "RST")}
    if not any(bits.values()):
        return " TCP NULL scan"
    if bits["FIN"] and bits["URG"] and bits["PSH"]:
        return "TCP XMAS scan"
    if sum(bits.values()) == 1 and (bits["FIN"] or bits["SYN"]):
        return "TCP FIN scan" if bits["FIN"] else "TCP SYN/Normal scan"
    return "Unknown Type: TCP Packet Flags: " + " ".join(f"{k}: {v}" for k, v in bits.items())


def attack_line(verdict: Verdict, name: str | None = None) -> str:
    """`attackalert: TCP SYN/Normal scan from host: name/ip to TCP port: 11`, and kin."""
    p = verdict.probe
    proto = p.proto.value.upper()
    if verdict.kind == "os-probe":
        what = f"OS fingerprinting probe ({p.os_tool})"  # ours: PortSentry has no such line
    elif p.mode in CLASSIC_MODES:
        what = "Connect"
    elif p.proto is Proto.TCP:
        what = packet_type(p.flags)
    else:
        what = "UDP scan"
    return f"attackalert: {what} from host: {_host(p, name)} to {proto} port: {p.dport}"


def detail_line(verdict: Verdict) -> str | None:
    """Our own name for a TCP packet whose PortSentry name differs (`Unknown Type: ...`, which
    leaves out ECE, CWR and reserved bits; or XMAS for FIN+PSH+URG with SYN): a line of its own,
    without `attackalert:`, so that filters counting PortSentry's lines count the probe once."""
    p = verdict.probe
    if verdict.kind != "scan" or p.mode in CLASSIC_MODES or p.proto is not Proto.TCP:
        return None
    if packet_type(p.flags).strip() == p.scan:
        return None
    return f"detail: {p.scan} from {p.src} to TCP port {p.dport}"


def ip_options_line(probe: Probe, name: str | None = None) -> str:
    return (
        f"attackalert: Packet from host: {_host(probe, name)} to {probe.proto.value.upper()}"
        f" port: {probe.dport} has IP options set (detection avoidance technique)."
    )


def connection_line(probe: Probe) -> str:
    """scandetd's LogConnections form."""
    return f"port {probe.dport} connection attempt from {probe.src}"


def details_line(probe: Probe) -> str:
    """scandetd's LogDetails form: `TCP src(port) -> dst(port)`."""
    proto = "TCP" if probe.proto is Proto.TCP else "UDP"
    return f"{proto} {probe.src}({probe.sport}) -> {probe.dst}({probe.dport})"


ONGOING = "still going"  # the words of an interim summary's lines and mail (Verdict.ongoing)


def summary_line(verdict: Verdict) -> str:
    """scandetd's scan summary, with the scan types seen; a source that is an IPv6 prefix
    named after the last probe's address; an interim one says the scan goes on (after
    scandetd's words, so that filters for them still match)."""
    p = verdict.probe
    if verdict.kind == "os-summary":
        line = f"Possible {'/'.join(verdict.types)} OS probe from {p.src}"
    else:
        line = f"Possible port scan from {p.src} to {p.dst} ({', '.join(verdict.types)})"
    prefix = prefix_words(verdict)
    if prefix:
        line += f", prefix {prefix}"
    return f"{line}, {ONGOING} ({verdict.probes} probes so far)" if verdict.ongoing else line


def action_lines(address: str, actions: tuple[Action, ...], nft_table: str) -> list[str]:
    """PortSentry 1.2's line for each action of a block that was done, in the order they were
    done: KillHostsDeny's, KillRoute's and KillRunCmd's words, with the hosts.deny line and the
    command as they were used (an argument with a blank quoted as a shell would need, anything
    unprintable escaped); our nftables blocker's in the same form."""
    lines = []
    for action in actions:
        if action.status != DONE:
            continue
        if action.kind == NFT:
            lines.append(
                f"attackalert: Host {address} has been blocked via nftables set inet "
                f"{nft_table} {set_of(address)}"
            )
        elif action.kind == HOSTS_DENY and len(action.do) == 2:
            lines.append(
                f"attackalert: Host {address} has been blocked via wrappers with string: "
                f'"{one_line(action.do[1])}"'
            )
        elif action.kind == ROUTE:
            lines.append(
                f"attackalert: Host {address} has been blocked via dropped route using "
                f'command: "{_command(action)}"'
            )
        elif action.kind == COMMAND:
            lines.append(
                f"attackalert: External command run for host: {address} using command: "
                f'"{_command(action)}"'
            )
    return lines


def _command(action: Action) -> str:
    return one_line(shlex.join(action.do))


def already_blocked_line(address: str, mode: str, name: str | None = None) -> str:
    """PortSentry 1.2's two forms: the classic modes name the address alone; the stealth ones
    `name/address`, with the source's name (escaped) when RESOLVE_HOST found one."""
    if mode in CLASSIC_MODES:
        return f"attackalert: Host: {address} is already blocked. Ignoring"
    return f"attackalert: Host: {name or address}/{address} is already blocked Ignoring"


def active_line(modes: str, reloaded: bool = False) -> str:
    """Ready (or reloaded): PortSentry's `adminalert: PortSentry is now active and listening.`"""
    what = f"configuration reloaded; {modes}" if reloaded else modes
    return f"adminalert: PortSentry is now active and listening (portwarden: {what})"


def shutdown_line(why: str) -> str:
    return f"adminalert: portsentry shutdown: portwarden is shutting down ({why})"


def reload_refused_line(error: str) -> str:
    """Not routine: logwatch shows it among its unmatched entries."""
    return f"adminalert: ERROR: reload refused, old configuration stays in force: {error}"


def reload_warning_line(warning: str) -> str:
    """A reload's warning (a missing ignore file, ...): not routine, so logwatch shows it among
    its unmatched entries. Whole, as the daemon's log has it (a warning that lists ports is
    longer than one_line's usual cut): only the syslog sender's cut applies
    (limits.SYSLOG_DATAGRAM_BYTES_MAX)."""
    return f"adminalert: WARNING: reload: {one_line(warning, limits.SYSLOG_DATAGRAM_BYTES_MAX)}"
