"""The comparison with the previous audit: pure, so it is tested without sockets.

Findings follow samhain: a port in no list is ServiceNew when it was not in that state last
time (not open, or open and allowed then: an approval taken away is news); a required item that
is not open is ServiceMissing once, then ServiceRestarted when it is open again; an RPC program
on another port than last time is ServicePortSwitch instead of ServiceNew, whether its old port
has closed or not; with several programs on one port (nfs and nfs_acl on 2049) each program
is followed on its own. Ignored ports give nothing; they are remembered only when an RPC program
holds them, so that they keep what was known of them when the portmapper cannot be asked (rather
than turning into a ServiceNew each time it does not answer).
"""

import ipaddress
from collections.abc import Sequence
from typing import NamedTuple

from portwarden.audit.findings import Finding, Kind, OpenPort
from portwarden.audit.state import AuditState, Seen
from portwarden.config.audit_policy import Group, Item, Rule
from portwarden.net.addresses import Proto

ANY = "any"


class Severities(NamedTuple):
    missing: str
    new: str
    restarted: str
    port_switch: str
    portmapper: str

    def of(self, kind: Kind) -> str:
        return {
            Kind.MISSING: self.missing,
            Kind.NEW: self.new,
            Kind.RESTARTED: self.restarted,
            Kind.PORT_SWITCH: self.port_switch,
            Kind.PORTMAPPER: self.portmapper,
        }[kind]


class Requirement(NamedTuple):
    """One item of AUDIT_REQUIRED and where it applies."""

    group: Group
    item: Item
    service: str  # what to call it in a ServiceMissing line
    rpc_program: int | None = None  # the number of the program an item by RPC name names
    # For a group on an address: the device that address is on now (None: on no audited
    # device, or on several, as a link-local address without its device may be).
    address_device: str | None = None

    @property
    def where(self) -> str:
        """Where it applies, as its findings say: an address, a device, or `any`."""
        return str(self.group.where) or ANY

    @property
    def device(self) -> str | None:
        """The one device it applies on, if it does on one: a device group, `fe80::1%eth0`, an
        address on one device now. Its ServiceMissing and ServiceRestarted both say it."""
        address = self.group.where.address
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            return address.scope_id
        return self.group.where.device or self.address_device

    @property
    def key(self) -> str:
        return f"{self.where}:{self.item}"


def compare(
    open_ports: Sequence[OpenPort],
    rpc_names: dict[int, frozenset[str]],
    requirements: Sequence[Requirement],
    previous: AuditState | None,
    severities: Severities,
    rpc_known: bool = True,
    cut: frozenset[Proto] = frozenset(),
) -> tuple[list[Finding], AuditState]:
    """Findings for this check and the state to keep for the next one.

    `rpc_known` is False when the portmapper could not be asked: which program holds which port
    is then unknown, not "none". Requirements by RPC name keep their last state (no Missing,
    no Restarted), and a port an RPC program held last time keeps what was known of it, rather
    than turning into a ServiceNew because it has lost its name, whatever its policy was then.
    A port whose `unlisted` was not known (a version 1 state) is taken to be as it is now.

    `cut` are the protocols whose sockets were not all read (AUDIT_SOCKETS_MAX): what was not
    seen of them may still be open, so a requirement not met keeps its last state, as do the
    ports seen last time and not now (no ServiceMissing, and no ServiceNew next time for a port
    that was only left out).
    """
    findings: list[Finding] = []
    before = previous or AuditState()
    seen_before = {(s.interface, s.port, s.proto): s for s in before.seen}
    rpc_ports = _rpc_ports(open_ports)

    def found(
        kind: Kind, port: OpenPort, was: int | None = None, programs: Sequence[int] = ()
    ) -> Finding:
        """A finding about `port`, named by `programs` (the ones that moved) or by all its
        names."""
        named = dict(zip(port.rpc_programs, port.services, strict=False))
        programs = programs or port.rpc_programs
        first, *more = [named[p] for p in programs] or port.services
        return Finding(
            kind,
            severities.of(kind),
            port.interface,
            port.port,
            port.proto.value,
            first,
            port.program,
            port.pid,
            port.user,
            was,
            tuple(more),
            programs[0] if programs else None,
            device=port.device,
        )

    seen: set[Seen] = set()
    for port in open_ports:
        last = seen_before.get((port.interface, port.port, port.proto.value)) or seen_before.get(
            (_unscoped(port.interface), port.port, port.proto.value)
        )
        if not rpc_known and last is not None and last.rpc_programs:
            seen.add(last)  # its names are unknown this time, not gone
            continue
        if port.rule is Rule.IGNORE:
            if port.rpc_programs:
                seen.add(Seen(port.interface, port.port, port.proto.value, port.rpc_programs))
            continue
        moves = _moves(port, before.seen, rpc_ports)
        unlisted = port.rule is Rule.UNLISTED
        for was, programs in sorted(moves.items()):
            findings.append(found(Kind.PORT_SWITCH, port, was, programs))
        if not moves and unlisted and not (last is not None and last.unlisted is not False):
            findings.append(found(Kind.NEW, port))
        seen.add(Seen(port.interface, port.port, port.proto.value, port.rpc_programs, unlisted))

    now = {(s.interface, s.port, s.proto) for s in seen}
    seen |= {s for s in before.seen if Proto(s.proto) in cut and s[:3] not in now}
    missing: set[str] = set()
    for need in requirements:
        if not rpc_known and need.item.rpc is not None:
            missing |= {need.key} & before.missing  # unknown: as it was
            continue
        match = next((p for p in open_ports if _satisfies(p, need, rpc_names)), None)
        if match is None and need.item.proto in cut:
            missing |= {need.key} & before.missing  # perhaps open, unseen: as it was
        elif match is None:
            missing.add(need.key)
            if previous is None or need.key not in previous.missing:
                findings.append(
                    Finding(
                        Kind.MISSING,
                        severities.missing,
                        need.where,
                        need.item.port,
                        need.item.proto.value,
                        need.service,
                        rpc_program=need.rpc_program,
                        device=need.device,
                    )
                )
        elif need.key in before.missing:  # said where the item applies, as its ServiceMissing
            findings.append(
                found(Kind.RESTARTED, match)._replace(interface=need.where, device=need.device)
            )
    return findings, AuditState(frozenset(seen), frozenset(missing))


_Program = tuple[str, str, int]  # interface, proto, RPC program


def _rpc_ports(ports: Sequence[OpenPort]) -> dict[_Program, set[int]]:
    """The ports each RPC program holds now, per interface and protocol."""
    held: dict[_Program, set[int]] = {}
    for port in ports:
        for program in port.rpc_programs:
            held.setdefault((port.interface, port.proto.value, program), set()).add(port.port)
    return held


def _moves(
    port: OpenPort, seen: frozenset[Seen], now: dict[_Program, set[int]]
) -> dict[int, list[int]]:
    """The RPC programs of this port that moved here, by the port each came from: the one it had
    on this interface last time and no longer has, if it has this port only since, whether the
    old port has closed or is now held by something else (two programs that swapped ports, or
    mountd gone from a port another service still holds). Each program is followed on its own:
    nfs_acl may join nfs on 2049."""
    moved: dict[int, list[int]] = {}
    for program in port.rpc_programs:
        key = (port.interface, port.proto.value, program)
        before = {
            s.port
            for s in seen
            if s.proto == key[1]
            and program in s.rpc_programs
            and s.interface in (port.interface, _unscoped(port.interface))
        }
        left = before - now.get(key, set())
        if before and port.port not in before and left:
            moved.setdefault(min(left), []).append(program)
    return moved


def _unscoped(interface: str) -> str:
    """`fe80::1` for `fe80::1%eth0`: how a state written before link-local addresses had
    their device named it; read as that address on every device."""
    return interface.partition("%")[0]


def _satisfies(port: OpenPort, need: Requirement, rpc_names: dict[int, frozenset[str]]) -> bool:
    names = frozenset(n for p in port.rpc_programs for n in rpc_names.get(p, frozenset()))
    return need.group.where.covers(port.interface, port.device) and need.item.matches(
        port.port, port.proto, names
    )
