"""The comparison with the previous audit: pure, so it is tested without sockets.

Findings follow samhain: a port in no list is ServiceNew when first seen; a required item that
is not open is ServiceMissing once, then ServiceRestarted when it is open again; an RPC program
seen on another port last time is ServicePortSwitch instead of ServiceNew. Ignored ports give
nothing and are not remembered.
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
) -> tuple[list[Finding], AuditState]:  # fmt: skip
    """Findings for this check and the state to keep for the next one."""
    findings: list[Finding] = []
    before = previous or AuditState()
    seen_before = {(s.interface, s.port, s.proto) for s in before.seen}
    listed = [p for p in open_ports if p.rule is not Rule.IGNORE]
    now = {(p.interface, p.port, p.proto.value) for p in listed}

    def found(kind: Kind, port: OpenPort, was: int | None = None) -> Finding:
        return Finding(kind, severities.of(kind), port.interface, port.port, port.proto.value,
                       port.service, port.program, port.pid, port.user, was,
                       guessed=port.rpc_program is None)  # fmt: skip

    for port in listed:
        if (port.interface, port.port, port.proto.value) in seen_before:
            continue
        was = _moved_from(port, before.seen, now)
        if was is not None:
            findings.append(found(Kind.PORT_SWITCH, port, was))
        elif port.rule is Rule.UNLISTED:
            findings.append(found(Kind.NEW, port))

    missing: set[str] = set()
    for need in requirements:
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
    seen = frozenset(Seen(p.interface, p.port, p.proto.value, p.rpc_program) for p in listed)
    return findings, AuditState(seen, frozenset(missing))


def _moved_from(
    port: OpenPort, seen: frozenset[Seen], now: set[tuple[str, int, str]]
) -> int | None:
    """The port this RPC program had on this interface last time, if it is gone from there."""
    if port.rpc_program is None:
        return None
    gone = [s.port for s in seen
            if (s.interface, s.proto, s.rpc_program) == (port.interface, port.proto.value,
                                                            port.rpc_program)
            and (s.interface, s.port, s.proto) not in now]  # fmt: skip
    return min(gone) if gone else None


def _satisfies(port: OpenPort, need: Requirement, rpc_names: dict[int, frozenset[str]]) -> bool:
    names = (
        frozenset() if port.rpc_program is None else rpc_names.get(port.rpc_program, frozenset())
    )
    return need.group.where.covers(port.interface, port.device) and need.item.matches(
        port.port, port.proto, names
    )
