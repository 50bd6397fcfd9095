"""The comparison with the previous audit: pure, so it is tested without sockets.

Findings follow samhain: a port in no list is ServiceNew when it was not in that state last
time (not open, or open and allowed then: an approval taken away is news); a required item that
is not open is ServiceMissing once, then ServiceRestarted when it is open again; an RPC program
on another port than last time is ServicePortSwitch instead of ServiceNew, whether its old port
has closed or not. Ignored ports give nothing and are not remembered.
"""

from collections.abc import Sequence
from typing import NamedTuple

from portwarden.audit.findings import Finding, Kind, OpenPort
from portwarden.audit.policy import Group, Item, Rule
from portwarden.audit.state import AuditState, Seen

ANY = "any"


class Severities(NamedTuple):
    missing: str
    new: str
    restarted: str
    port_switch: str

    def of(self, kind: Kind) -> str:
        return {Kind.MISSING: self.missing, Kind.NEW: self.new, Kind.RESTARTED: self.restarted,
                Kind.PORT_SWITCH: self.port_switch}[kind]  # fmt: skip


class Requirement(NamedTuple):
    """One item of AUDIT_REQUIRED and where it applies."""

    group: Group
    item: Item
    service: str  # what to call it in a ServiceMissing line

    @property
    def key(self) -> str:
        where = str(self.group.where) or ANY
        return f"{where}:{self.item}"


def compare(
    open_ports: Sequence[OpenPort], rpc_names: dict[int, frozenset[str]],
    requirements: Sequence[Requirement], previous: AuditState | None, severities: Severities,
    rpc_known: bool = True,
) -> tuple[list[Finding], AuditState]:  # fmt: skip
    """Findings for this check and the state to keep for the next one.

    `rpc_known` is False when the portmapper could not be asked: which program holds which port
    is then unknown, not "none". Requirements by RPC name keep their last state (no Missing,
    no Restarted), and a port an RPC program held last time keeps what was known of it, rather
    than turning into a ServiceNew because it has lost its name.
    """
    findings: list[Finding] = []
    before = previous or AuditState()
    seen_before = {(s.interface, s.port, s.proto): s for s in before.seen}
    listed = [p for p in open_ports if p.rule is not Rule.IGNORE]
    rpc_ports = _rpc_ports(listed)

    def found(kind: Kind, port: OpenPort, was: int | None = None) -> Finding:
        return Finding(kind, severities.of(kind), port.interface, port.port, port.proto.value,
                       port.service, port.program, port.pid, port.user, was,
                       guessed=port.rpc_program is None)  # fmt: skip

    seen: set[Seen] = set()
    for port in listed:
        last = seen_before.get((port.interface, port.port, port.proto.value))
        if not rpc_known and last is not None and last.rpc_program is not None:
            seen.add(last)  # its name is unknown this time, not gone
            continue
        was = _moved_from(port, before.seen, rpc_ports)
        unlisted = port.rule is Rule.UNLISTED
        if was is not None:
            findings.append(found(Kind.PORT_SWITCH, port, was))
        elif unlisted and not (last is not None and last.unlisted):
            findings.append(found(Kind.NEW, port))
        seen.add(Seen(port.interface, port.port, port.proto.value, port.rpc_program, unlisted))

    missing: set[str] = set()
    for need in requirements:
        if not rpc_known and need.item.rpc is not None:
            missing |= {need.key} & before.missing  # unknown: as it was
            continue
        match = next((p for p in open_ports if _satisfies(p, need, rpc_names)), None)
        if match is None:
            missing.add(need.key)
            if previous is None or need.key not in previous.missing:
                findings.append(Finding(Kind.MISSING, severities.missing,
                                        str(need.group.where) or ANY, need.item.port,
                                        need.item.proto.value, need.service,
                                        guessed=need.item.rpc is None))  # fmt: skip
        elif need.key in before.missing:
            findings.append(found(Kind.RESTARTED, match))
    return findings, AuditState(frozenset(seen), frozenset(missing))


_Program = tuple[str, str, int]  # interface, proto, RPC program


def _rpc_ports(ports: Sequence[OpenPort]) -> dict[_Program, set[int]]:
    """The ports each RPC program holds now, per interface and protocol."""
    held: dict[_Program, set[int]] = {}
    for port in ports:
        if port.rpc_program is not None:
            key = (port.interface, port.proto.value, port.rpc_program)
            held.setdefault(key, set()).add(port.port)
    return held


def _moved_from(port: OpenPort, seen: frozenset[Seen], now: dict[_Program, set[int]]) -> int | None:
    """The port this RPC program had on this interface last time and no longer has, if it has
    this port only since: whether the old port has closed or is now held by something else (two
    programs that swapped ports, or mountd gone from a port another service still holds)."""
    if port.rpc_program is None:
        return None
    key = (port.interface, port.proto.value, port.rpc_program)
    before = {s.port for s in seen if (s.interface, s.proto, s.rpc_program) == key}
    left = before - now.get(key, set())
    return min(left) if before and port.port not in before and left else None


def _satisfies(port: OpenPort, need: Requirement, rpc_names: dict[int, frozenset[str]]) -> bool:
    names = (
        frozenset() if port.rpc_program is None else rpc_names.get(port.rpc_program, frozenset())
    )
    return need.group.where.covers(port.interface, port.device) and need.item.matches(
        port.port, port.proto, names
    )
