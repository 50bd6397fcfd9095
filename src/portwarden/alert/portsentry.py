"""PortSentry's and scandetd's wording, so that filters written for them keep matching."""

from portwarden.detect.engine import Verdict
from portwarden.detect.probe import CONNECT_SCAN, Probe, Proto


def _host(probe: Probe, name: str | None) -> str:
    return f"{name or probe.src}/{probe.src}"


def attack_line(verdict: Verdict, name: str | None = None) -> str:
    """`attackalert: TCP SYN/Normal scan from host: name/ip to TCP port: 11`, and kin."""
    p = verdict.probe
    proto = p.proto.value.upper()
    if verdict.kind == "os-probe":
        return (f"attackalert: OS fingerprinting probe ({p.os_tool}) from host: "
                f"{_host(p, name)} to {proto} port: {p.dport}")  # fmt: skip
    what = "Connect" if p.scan == CONNECT_SCAN else p.scan
    return f"attackalert: {what} from host: {_host(p, name)} to {proto} port: {p.dport}"


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


def summary_line(verdict: Verdict) -> str:
    """scandetd's scan summary, with the scan types seen."""
    p = verdict.probe
    if verdict.kind == "os-summary":
        return f"Possible {'/'.join(verdict.types)} OS probe from {p.src}"
    return f"Possible port scan from {p.src} to {p.dst} ({', '.join(verdict.types)})"


def blocked_line(address: str, how: str) -> str:
    return f"attackalert: Host {address} has been blocked via {how}"


def already_blocked_line(address: str) -> str:
    return f"attackalert: Host: {address} is already blocked Ignoring"
