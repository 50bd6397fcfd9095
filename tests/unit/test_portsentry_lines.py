"""Syslog lines word for word as PortSentry 1.2 writes them (portsentry.c: PortSentryModeTCP,
PortSentryModeUDP, the stealth modes, ReportPacketType), so filters written for it match."""

import ipaddress

import pytest

from portwarden.alert import portsentry
from portwarden.detect.engine import Verdict, VerdictKind
from portwarden.detect.probe import CONNECT_SCAN, UDP_SCAN, Probe, flag_names, tcp_scan_type
from portwarden.net.addresses import Proto
from portwarden.net.packet import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG
from portwarden.store.db import DONE, Action

HOST = "198.18.0.11/198.18.0.11"


def verdict(
    mode: str,
    proto: Proto,
    scan: str,
    flags: str = "",
    kind: VerdictKind = "scan",
    os_tool: str | None = None,
) -> Verdict:
    probe = Probe(
        ipaddress.ip_address("198.18.0.11"),
        ipaddress.ip_address("198.18.0.1"),
        proto,
        40000,
        11,
        mode,
        scan,
        flags,
        os_tool,
    )
    return Verdict(kind, probe, True, 1, 1, 0.0)


def stealth(bits: int, reserved: int = 0) -> Verdict:
    return verdict("stcp", Proto.TCP, tcp_scan_type(bits), flag_names(bits, reserved))


def test_classic_modes_say_connect_for_tcp_and_udp() -> None:
    assert portsentry.attack_line(verdict("tcp", Proto.TCP, CONNECT_SCAN)) == (
        f"attackalert: Connect from host: {HOST} to TCP port: 11"
    )
    assert portsentry.attack_line(verdict("udp", Proto.UDP, UDP_SCAN)) == (
        f"attackalert: Connect from host: {HOST} to UDP port: 11"
    )
    assert portsentry.attack_line(verdict("sudp", Proto.UDP, UDP_SCAN)) == (
        f"attackalert: UDP scan from host: {HOST} to UDP port: 11"
    )


@pytest.mark.parametrize(
    ("bits", "reserved", "said", "detail"),
    [
        (SYN, 0, "TCP SYN/Normal scan", None),
        (SYN | ECE | CWR, 1, "TCP SYN/Normal scan", None),  # PortSentry does not look at these
        (FIN, 0, "TCP FIN scan", None),
        (0, 0, " TCP NULL scan", None),  # two spaces after "attackalert:", as PortSentry writes
        (FIN | PSH | URG, 0, "TCP XMAS scan", None),
        (SYN | FIN | PSH | URG, 0, "TCP XMAS scan", "TCP odd-flags scan (FIN+SYN+PSH+URG)"),
        (
            SYN | FIN,
            0,
            "Unknown Type: TCP Packet Flags: SYN: 1 FIN: 1 ACK: 0 PSH: 0 URG: 0 RST: 0",
            "TCP odd-flags scan (FIN+SYN)",
        ),
        (
            PSH | ECE,
            0,
            "Unknown Type: TCP Packet Flags: SYN: 0 FIN: 0 ACK: 0 PSH: 1 URG: 0 RST: 0",
            "TCP odd-flags scan (PSH+ECE)",
        ),
    ],
)
def test_stealth_tcp_lines_name_the_packet_as_report_packet_type_does(
    bits: int, reserved: int, said: str, detail: str | None
) -> None:
    v = stealth(bits, reserved)
    assert portsentry.attack_line(v) == f"attackalert: {said} from host: {HOST} to TCP port: 11"
    assert portsentry.detail_line(v) == (
        None if detail is None else f"detail: {detail} from 198.18.0.11 to TCP port 11"
    )


def test_ack_and_rst_are_reported_like_portsentry_if_they_ever_come() -> None:
    assert portsentry.packet_type(flag_names(ACK | RST | SYN)) == (
        "Unknown Type: TCP Packet Flags: SYN: 1 FIN: 0 ACK: 1 PSH: 0 URG: 0 RST: 1"
    )


def test_already_blocked_has_portsentrys_two_forms() -> None:
    assert portsentry.already_blocked_line("198.18.0.11", "stcp") == (
        f"attackalert: Host: {HOST} is already blocked Ignoring"
    )
    assert portsentry.already_blocked_line("198.18.0.11", "udp") == (
        "attackalert: Host: 198.18.0.11 is already blocked. Ignoring"
    )


def test_os_probe_line_is_ours_in_portsentrys_shape() -> None:
    v = verdict("stcp", Proto.TCP, tcp_scan_type(SYN | FIN), "FIN+SYN", "os-probe", "queso")
    assert portsentry.attack_line(v) == (
        f"attackalert: OS fingerprinting probe (queso) from host: {HOST} to TCP port: 11"
    )
    assert portsentry.detail_line(v) is None


def test_each_action_done_has_portsentrys_line_with_its_string_or_command() -> None:
    """KillHostsDeny, KillRoute and KillRunCmd's words; ours for the nftables set; nothing for
    an action that failed; a command argument with a blank quoted, a control escaped."""
    actions = (
        Action("nft"),
        Action(
            "hosts.deny",
            ("/etc/hosts.deny", "ALL: 198.18.0.11"),
            DONE,
            ("/etc/hosts.deny", "ALL: 198.18.0.11"),
        ),
        Action("route", (), DONE, ("/sbin/route", "add", "-host", "198.18.0.11", "reject")),
        Action("command", (), "failed: exit status 1", ("/bin/false",)),
        Action("command", (), DONE, ("/usr/local/bin/tell", "198.18.0.11", "a b\x1b")),
    )
    assert portsentry.action_lines("198.18.0.11", actions, "portwarden") == [
        "attackalert: Host 198.18.0.11 has been blocked via nftables set inet portwarden blocked4",
        "attackalert: Host 198.18.0.11 has been blocked via wrappers with string: "
        '"ALL: 198.18.0.11"',
        "attackalert: Host 198.18.0.11 has been blocked via dropped route using command: "
        '"/sbin/route add -host 198.18.0.11 reject"',
        "attackalert: External command run for host: 198.18.0.11 using command: "
        "\"/usr/local/bin/tell 198.18.0.11 'a b\\x1b'\"",
    ]
    assert portsentry.action_lines("2001:db8::b", (Action("nft"),), "pw") == [
        "attackalert: Host 2001:db8::b has been blocked via nftables set inet pw blocked6"
    ]


def test_a_reload_warning_is_one_adminalert_line() -> None:
    assert portsentry.reload_warning_line("IGNORE_FILE /x does not\nexist") == (
        "adminalert: WARNING: reload: IGNORE_FILE /x does not\\nexist"
    )
