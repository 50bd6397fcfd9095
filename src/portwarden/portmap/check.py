"""`portwarden portmap check`: is rpcbind running, what does it expose, what protects it.

The report reads the kernel's socket tables, asks the portmapper itself over loopback, reads
the TCP Wrappers files (which count only if the process on port 111 maps libwrap) and our
firewall rules, and, given a local source address outside the allowed networks, probes for
real: PMAPPROC_DUMP over TCP and UDP from that address.
"""

import re
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from portwarden.audit.names import Names
from portwarden.detect.probe import Proto
from portwarden.net.portmapper import PORTMAPPER_PORT, Mapping, PortmapperError, dump
from portwarden.net.ports import bound_ports
from portwarden.portmap import wrappers
from portwarden.portmap.firewall import FirewallError, IptablesFirewall, NftFirewall
from portwarden.portmap.owner import Owner, port_owners
from portwarden.respond.files import read_if_exists
from portwarden.text import one_line

Outcome = Literal["reachable", "refused", "silent"]
Verdict = Literal["protected", "exposed", "not running"]
_PORTMAPPER_DAEMONS = {"rpcbind", "portmap", "all"}
_PROTOCOL_NUMBERS = {Proto.TCP: socket.IPPROTO_TCP, Proto.UDP: socket.IPPROTO_UDP}
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Probe:
    """One real PMAPPROC_DUMP from `source` to `target` and what came back."""

    source: str
    target: str
    proto: str  # tcp, udp
    outcome: Outcome
    detail: str


@dataclass(frozen=True)
class WrappersView:
    protected: bool  # in_files, and the portmapper uses TCP Wrappers
    in_files: bool  # our block in both files and no other hosts.allow line for the portmapper
    uses_libwrap: bool | None  # every server on port 111 maps libwrap; None: no server found
    owners: tuple[Owner, ...]  # the processes with a socket on port 111
    note: str  # whether the portmapper uses TCP Wrappers, and how we know, for people
    lines: tuple[str, ...]  # every line that applies to the portmapper, as file:line: text


@dataclass(frozen=True)
class FirewallView:
    protected: bool
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    listening: tuple[str, ...]  # "tcp", "udp": port 111 is bound in this network namespace
    programs: tuple[Mapping, ...]  # from a dump over loopback
    local_error: str | None  # why the loopback dump failed, if it did
    wrappers: WrappersView
    firewall: FirewallView
    probes: tuple[Probe, ...]

    @property
    def verdict(self) -> Verdict:
        if self.probes:
            exposed = any(p.outcome == "reachable" for p in self.probes)
            return "exposed" if exposed else "protected"
        if not self.listening:
            return "not running"
        return "protected" if self.wrappers.protected or self.firewall.protected else "exposed"

    def as_json(self) -> dict[str, Any]:
        names = Names.read()
        programs = [
            {
                "prog": m.program,
                "name": names.program(m.program),
                "vers": m.version,
                "proto": _PROTOCOL_NUMBERS[m.proto],
                "port": m.port,
            }
            for m in self.programs
        ]
        return {**asdict(self), "programs": programs, "verdict": self.verdict}

    def text(self) -> list[str]:
        state = (
            f"listening on port 111 ({', '.join(self.listening)})"
            if self.listening
            else "not listening"
        )
        lines = [f"rpcbind: {state}"]
        if self.local_error:
            lines.append(f"programs: unknown, the loopback query failed: {self.local_error}")
        elif self.programs:
            names = Names.read()
            lines.append("programs (program version protocol port name):")
            lines += [
                f"  {m.program} {m.version} {m.proto.value} {m.port} {names.program(m.program)}"
                for m in self.programs
            ]
        protection = {True: "protects the portmapper", False: "does not protect it alone"}
        lines.append(f"wrappers: {protection[self.wrappers.protected]}")
        lines.append(f"  {self.wrappers.note}")
        lines += [f"  {line}" for line in self.wrappers.lines] or [
            "  no line names rpcbind, portmap or ALL"
        ]
        lines.append(f"firewall: {protection[self.firewall.protected]}")
        lines += [f"  {line}" for line in self.firewall.lines]
        for p in self.probes:
            lines.append(
                f"probe: {p.proto} from {p.source} to {p.target} port 111: {p.outcome} ({p.detail})"
            )
        lines.append(f"verdict: {self.verdict}")
        return lines


def _applies(rule: str) -> bool:
    """Whether a hosts.allow/deny line's daemon list names the portmapper (or ALL)."""
    daemons = _SEPARATORS.split(rule.split(":", 1)[0].strip().lower())
    named, _, excepted = " ".join(daemons).partition(" except ")
    listed = set(named.split())
    return bool(listed & _PORTMAPPER_DAEMONS) and "rpcbind" not in excepted.split()


def _servers(owners: tuple[Owner, ...]) -> tuple[Owner, ...]:
    """The owners that answer on the port. With socket activation (Debian's rpcbind.socket) the
    service manager, pid 1, holds the sockets too, but only hands them to rpcbind."""
    return tuple(o for o in owners if o.pid != 1) or owners


def _libwrap_note(owners: tuple[Owner, ...]) -> str:
    if not owners:
        return (
            "cannot tell whether rpcbind uses TCP Wrappers: no process found with a socket on "
            f"port {PORTMAPPER_PORT} (only root sees other users' processes)"
        )
    without = [o for o in owners if not o.libwrap]
    named = ", ".join(f"pid {o.pid} ({one_line(o.name)})" for o in without or owners)
    if without:
        return f"rpcbind does not use TCP Wrappers: no libwrap.so in the memory map of {named}"
    return f"rpcbind uses TCP Wrappers: libwrap.so is mapped by {named}"


def read_wrappers(hosts_allow: Path, hosts_deny: Path, owners: tuple[Owner, ...]) -> WrappersView:
    """The TCP Wrappers lines for the portmapper; they protect it only if the processes that
    serve port 111 (from `owners`) map libwrap: rpcbind built without it never reads the files."""
    lines: list[str] = []
    blocks: list[wrappers.Block | None] = []
    others_allow = False
    for path in (hosts_allow, hosts_deny):
        try:
            text = read_if_exists(path)
            block = wrappers.find_block(path, (text or "").splitlines(keepends=True))
        except (OSError, wrappers.WrappersError) as error:
            lines.append(one_line(f"{path}: {error}"))
            blocks.append(None)
            continue
        blocks.append(block)
        if path == hosts_deny and text and not text.endswith("\n"):
            lines.append(f"{path}: the last line has no newline: libwrap counts that as an error "
                         "and denies every caller")  # fmt: skip
        ours = range(block.start, block.stop) if block else range(0)
        for number, line in enumerate((text or "").splitlines()):
            if line.lstrip().startswith("#") or ":" not in line or not _applies(line):
                continue
            mark = " (portwarden-portmap)" if number in ours else ""
            lines.append(f"{path}:{number + 1}: {one_line(line)}{mark}")
            others_allow |= path == hosts_allow and number not in ours
    in_files = all(blocks) and not others_allow
    servers = _servers(owners)
    uses_libwrap = all(o.libwrap for o in servers) if servers else None
    return WrappersView(
        in_files and bool(uses_libwrap),
        in_files,
        uses_libwrap,
        owners,
        _libwrap_note(servers),
        tuple(lines),
    )


def read_firewall() -> FirewallView:
    lines: list[str] = []
    protected = False
    for backend in (NftFirewall, IptablesFirewall):
        try:
            wall = backend()
            lines += wall.describe()
            protected |= wall.active()
        except FirewallError as error:
            lines.append(one_line(str(error)))
    return FirewallView(protected, tuple(lines))


def probe(source: str, target: str, proto: Proto, timeout: float) -> Probe:
    """A real dump from `source`. Raises PortmapperError when the call cannot be made from there
    (an address that is not local or not an address, no route): an error, not an outcome."""
    try:
        found = dump(target, proto, timeout, source=source)
    except PortmapperError as error:
        outcome: Outcome
        match error.reason:
            case "denied":
                outcome, detail = "refused", f"the portmapper denied it: {error}"
            case "refused":
                outcome, detail = "refused", "connection refused"
            case "silent":
                outcome, detail = "silent", f"no answer in {timeout:g} s"
            case "malformed":
                outcome, detail = "reachable", f"answered: {error}"
            case "failed":
                raise
        return Probe(source, target, proto.value, outcome, one_line(detail))
    return Probe(source, target, proto.value, "reachable", f"listed {len(found)} registrations")


def _local_programs(timeout: float) -> tuple[tuple[Mapping, ...], str | None]:
    error = ""
    for address in ("127.0.0.1", "::1"):
        try:
            return dump(address, Proto.TCP, timeout), None
        except PortmapperError as failure:
            error = one_line(f"{address}: {failure}")
    return (), error


def build_report(
    hosts_allow: Path, hosts_deny: Path, source: str | None, target: str | None, timeout: float
) -> Report:
    listening = tuple(p.value for p in (Proto.TCP, Proto.UDP) if PORTMAPPER_PORT in bound_ports(p))
    programs, local_error = _local_programs(timeout) if listening else ((), None)
    # After the loopback call: with socket activation, that call has started rpcbind.
    owners = port_owners(PORTMAPPER_PORT)
    probes: tuple[Probe, ...] = ()
    if source is not None:
        to = target or source
        probes = tuple(probe(source, to, proto, timeout) for proto in (Proto.TCP, Proto.UDP))
    return Report(
        listening,
        programs,
        local_error,
        read_wrappers(hosts_allow, hosts_deny, owners),
        read_firewall(),
        probes,
    )
