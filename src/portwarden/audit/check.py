"""One audit: the open ports on the audited addresses, named, judged by the policy and compared
with the previous audit. Used by `portwarden audit` and by the daemon's periodic check."""

import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from portwarden import limits
from portwarden.audit import confirm
from portwarden.audit.compare import ANY, Requirement, Severities, compare
from portwarden.audit.findings import Finding, Kind, OpenPort
from portwarden.audit.interfaces import (
    Interface,
    ambiguous_addresses,
    audited_interfaces,
    device_of,
)
from portwarden.audit.names import UNKNOWN, Names
from portwarden.audit.sockets import (
    PROC,
    Owner,
    Scope,
    Socket,
    open_sockets,
    owners,
    user_name,
)
from portwarden.audit.state import STATE_NAME, AuditState
from portwarden.config import Settings
from portwarden.config.audit_policy import Item, Policy
from portwarden.net.addresses import PORTMAPPER_PORT, IPAddress, Proto
from portwarden.net.portmapper import (
    PORTMAPPER_PROGRAM,
    PortmapperError,
    Registration,
    registrations,
)
from portwarden.statedir import LOCK_NAME
from portwarden.text import counted, one_line

_SUPERUSER = "superuser"  # rpcbind's owner for a registration made by uid 0
# Where users may bind ports from, per network namespace; ports below _RESERVED_PORTS_END are
# root's unless it is lower.
_UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
_RESERVED_PORTS_END = 1024


@dataclass(frozen=True)
class AuditResult:
    time: float
    interfaces: tuple[str, ...]
    open_ports: tuple[OpenPort, ...]
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...]
    state: AuditState


class Unusable(NamedTuple):
    """A portmapper that listens but gave no list of registrations."""

    address: IPAddress  # where it was asked first
    sock: Socket  # its socket for that transport
    reasons: tuple[str, ...]  # `tcp: <why>`, one per transport asked


class NothingChecked(Exception):
    """No address could be audited, or the socket tables could not be read: a report of no
    open ports would pass for a clean one. str() is one line saying why."""


def state_path(settings: Settings) -> Path:
    return settings.state_dir / STATE_NAME


def policy_of(settings: Settings) -> Policy:
    return Policy(
        settings.audit_required, settings.audit_optional, settings.audit_ignore, settings.audit_skip
    )


def run_audit(
    settings: Settings, previous: AuditState | None, now: float, names: Names | None = None
) -> AuditResult:
    """Audit now. Blocks for at most a few seconds (portmapper and connect time limits).
    Raises NothingChecked."""
    names = names or Names.read()
    policy = policy_of(settings)
    interfaces, warnings = audited_interfaces(settings.audit_interfaces, settings.audit_devices)
    if not interfaces:
        reason = "; ".join(warnings) or "this host has no address but loopback"
        raise NothingChecked(f"no address to check ({reason})")
    warnings += ambiguous_addresses(policy.wheres(), interfaces)
    protos = (Proto.TCP, Proto.UDP) if settings.audit_udp else (Proto.TCP,)
    try:
        sockets, cut = open_sockets(protos, _scope(settings, interfaces, policy))
    except OSError as error:
        raise NothingChecked(f"the socket tables could not be read ({error})") from None
    ours = _portwarden_pids(settings.state_dir)
    owned = owners({s.inode for s in sockets})
    own_ports = {Proto.TCP: set(settings.tcp_ports), Proto.UDP: set(settings.udp_ports)}
    if settings.metrics_listen is not None:
        own_ports[Proto.TCP].add(settings.metrics_listen.port)
    sockets = [
        s
        for s in sockets
        if owned.get(s.inode, Owner(0, "")).pid not in ours or s.port not in own_ports[s.proto]
    ]
    registered, rpc_warnings, unusable = _registrations(sockets, policy)
    in_range = [s for s in sockets if settings.audit_min_port <= s.port <= settings.audit_max_port]
    audited = [
        (interface, sock)
        for interface in interfaces
        for sock in _open_on(interface, in_range, policy)
    ]
    programs, refused = rpc_programs(registered or (), [(i.address, s) for i, s in audited])
    warnings += rpc_warnings + refused
    open_ports = [
        _named(
            interface,
            sock,
            programs.get((interface.address, sock), ()),
            owned.get(sock.inode),
            names,
            policy,
        )
        for interface, sock in audited
    ]
    requirements = [
        Requirement(
            group,
            item,
            _item_service(item, names),
            names.program_number(item.rpc) if item.rpc else None,
            device_of(group.where, interfaces),
        )
        for group, item in policy.requirements()
    ]
    rpc_names = {p: names.program_names(p) for held in programs.values() for p in held}
    findings, state = compare(
        open_ports,
        rpc_names,
        requirements,
        previous,
        _severities(settings),
        rpc_known=registered is not None,
        cut=frozenset(cut),
    )
    findings += [
        _cut_finding(proto, count, settings.audit_severity_missing) for proto, count in cut.items()
    ]
    if unusable is not None and policy.names_rpc:  # said at every check, while it lasts
        findings.append(
            _unusable_finding(
                unusable, owned.get(unusable.sock.inode), names, settings.audit_severity_portmapper
            )
        )
    return AuditResult(
        now,
        tuple(str(i) for i in interfaces),
        tuple(open_ports),
        tuple(findings),
        tuple(warnings),
        state,
    )


def audit_and_keep(
    settings: Settings, keep_state: bool, now: float, save: bool = True
) -> tuple[AuditResult, list[str]]:
    """Audit against the state the last audit left (unless not `keep_state`), and keep the new
    state (if `save`); the warnings include any about the state file. Raises NothingChecked."""
    path = state_path(settings)
    previous, warning = AuditState.load(path) if keep_state else (None, None)
    result = run_audit(settings, previous, now)
    warnings = [warning] if warning else []
    warnings += result.warnings
    if keep_state and save:
        try:
            result.state.save(path)
        except OSError as error:
            warnings.append(f"cannot keep the audit state in {path}: {error}")
    return result, warnings


def _named(
    interface: Interface,
    sock: Socket,
    programs: tuple[int, ...],
    owner: Owner | None,
    names: Names,
    policy: Policy,
) -> OpenPort:
    """The open port with its names, owner and what the policy says of it: an item by RPC
    name matches when it names any of the programs on the port. Its user is the one the owning
    process runs as (rpcbind makes its sockets as root, then becomes _rpc); the socket's owner
    when no process was found."""
    services = tuple(names.program(p) for p in programs)
    rpc_names = frozenset(name for p in programs for name in names.program_names(p))
    rule = policy.rule(str(interface), interface.device, sock.port, sock.proto, rpc_names)
    return OpenPort(
        str(interface),
        interface.device,
        sock.port,
        sock.proto,
        services or (names.service(sock.port, sock.proto),),
        programs,
        *_owned_by(sock, owner),
        rule,
    )


def _owned_by(sock: Socket, owner: Owner | None) -> tuple[str, int | None, str]:
    """Program, pid and user of the socket's owner: the user the process runs as (rpcbind
    makes its sockets as root, then becomes _rpc); the socket's when no process was found."""
    uid = sock.uid if owner is None or owner.uid is None else owner.uid
    return (owner.program if owner else "?", owner.pid if owner else None, user_name(uid))


def _unusable_finding(
    unusable: Unusable, owner: Owner | None, names: Names, severity: str
) -> Finding:
    return Finding(
        Kind.PORTMAPPER,
        severity,
        str(unusable.address),
        PORTMAPPER_PORT,
        unusable.sock.proto.value,
        names.program(PORTMAPPER_PROGRAM),
        *_owned_by(unusable.sock, owner),
        rpc_program=PORTMAPPER_PROGRAM,
        reason="; ".join(unusable.reasons),
    )


def _scope(settings: Settings, interfaces: Sequence[Interface], policy: Policy) -> Scope:
    """The sockets this audit looks at: on the audited addresses or a wildcard, in the port
    range, and not skipped on every audited address."""
    listed = {
        (item.proto, item.port)
        for group in policy.skip
        for item in group.items
        if item.port is not None
    }
    skipped = frozenset(
        (proto, port)
        for proto, port in listed
        if all(policy.skips(str(i), i.device, port, proto) for i in interfaces)
    )
    return Scope(
        frozenset(i.address for i in interfaces),
        settings.audit_min_port,
        settings.audit_max_port,
        skipped,
    )


def _cut_finding(proto: Proto, count: int, severity: str) -> Finding:
    """The check of `proto` was incomplete: it stands in for the ServiceMissing it could not
    give (hence that severity), and for the ServiceNew of what was left out."""
    reason = (
        f"{count} {proto.value} sockets are open on the audited addresses and ports, "
        f"more than the {limits.AUDIT_SOCKETS_MAX} distinct ones an audit reads (a local user's "
        f"flood?): {proto.value} ports may be open unseen, and no {proto.value} "
        "requirement was reported missing"
    )
    return Finding(Kind.INCOMPLETE, severity, ANY, None, proto.value, UNKNOWN, reason=reason)


def _item_service(item: Item, names: Names) -> str:
    return names.service(item.port, item.proto) if item.port is not None else str(item.rpc)


def _severities(settings: Settings) -> Severities:
    return Severities(
        settings.audit_severity_missing,
        settings.audit_severity_new,
        settings.audit_severity_restarted,
        settings.audit_severity_portswitch,
        settings.audit_severity_portmapper,
    )


def _open_on(interface: Interface, sockets: Sequence[Socket], policy: Policy) -> list[Socket]:
    """The sockets that take traffic on this address, one per port and protocol, by port
    and then protocol (the interfaces come by address, so the report is in that order).

    The kernel's tables answer without touching the service: a socket bound to this address,
    to its family's wildcard, or to the IPv6 wildcard without IPV6_V6ONLY for an IPv4 address,
    takes traffic here unless it is bound to another device. Only tables read from /proc (no
    sock_diag) lack the device and V6ONLY; then wildcard sockets are confirmed on the address
    (`_confirmed`). Skipped ports are never looked at.
    """
    chosen: dict[tuple[Proto, int], Socket] = {}
    version = interface.address.version
    ranked = sorted(
        (s for s in sockets if _rank(s, version) is not None), key=lambda s: _rank(s, version) or 0
    )
    for sock in ranked:
        key = (sock.proto, sock.port)
        if key in chosen or policy.skips(str(interface), interface.device, sock.port, sock.proto):
            continue
        if _serves(interface, sock):
            chosen[key] = sock
    return [chosen[key] for key in sorted(chosen, key=lambda key: (key[1], key[0].value))]


def _serves(interface: Interface, sock: Socket) -> bool:
    if sock.device is None:  # from /proc: the device and V6ONLY are not known
        return sock.address == interface.address or _confirmed(interface, sock)
    if sock.device not in (0, interface.ifindex):
        return False  # SO_BINDTODEVICE: it takes only what arrives on that device
    if not sock.wildcard:
        return sock.address == interface.address
    return sock.address.version == interface.address.version or not sock.v6only


def _rank(sock: Socket, version: int) -> int | None:
    """Exact address first, then the family's wildcard, then the IPv6 wildcard for IPv4."""
    if not sock.wildcard:
        return 0
    if sock.address.version == version:
        return 1
    return 2 if version == 4 else None


def _confirmed(interface: Interface, sock: Socket) -> bool:
    """Whether a wildcard socket from /proc takes traffic on this address: a wildcard TCP
    listener may be bound to another device, so it is asked by connect(); an IPv6 wildcard
    socket takes IPv4 only without IPV6_V6ONLY, which UDP answers to a bind test."""
    if not sock.wildcard:
        return False  # bound to another address
    if sock.proto is Proto.TCP:
        answer = confirm.tcp_accepts(interface, sock.port)
    elif sock.address.version == interface.address.version:
        return True  # a UDP wildcard of the same family receives on every address
    else:
        answer = confirm.udp_taken(interface, sock.port)
    return answer is not False  # unknown: trust the table


def rpc_programs(
    registered: Iterable[Registration], audited: Iterable[tuple[IPAddress, Socket]]
) -> tuple[dict[tuple[IPAddress, Socket], tuple[int, ...]], list[str]]:
    """(address, socket) -> the RPC programs that name the socket on that address, ascending
    (every NFS server has nfs and nfs_acl on 2049, in whatever order rpcbind lists them):
    those with a registration for its port and protocol, at that address or a wildcard one,
    that root made for a socket of root's (see `_refusal`). Other registrations for these
    sockets name nothing; each is a warning line."""
    by_port: dict[tuple[Proto, int], list[Registration]] = {}
    for registration in registered:
        by_port.setdefault((registration.proto, registration.port), []).append(registration)
    programs: dict[tuple[IPAddress, Socket], tuple[int, ...]] = {}
    refused: list[str] = []
    for address, sock in audited:
        held: set[int] = set()
        for registration in by_port.get((sock.proto, sock.port), []):
            # An IPv6 socket that takes this IPv4 address is a dual-stack one (see _serves)
            if not registration.serves(address, dual_stack=sock.address.version == 6):
                continue
            why = _refusal(registration, sock)
            if why is None:
                held.add(registration.program)
            else:
                where = f"{registration.port}/{registration.proto.value}"
                refused.append(
                    f"RPC program {registration.program} for port {where} {why}: the "
                    "port is not named by it"
                )
        if held:
            programs[address, sock] = tuple(sorted(held))
    lines = list(dict.fromkeys(refused))  # once for all versions, and for IPv4 and IPv6 sockets
    if len(lines) > limits.AUDIT_RPC_WARNINGS_MAX:
        more = len(lines) - limits.AUDIT_RPC_WARNINGS_MAX
        lines[limits.AUDIT_RPC_WARNINGS_MAX :] = [
            f"{counted(more, 'more RPC registration')} not known to be root's did not name ports"
        ]
    return programs, lines


def _refusal(registration: Registration, sock: Socket) -> str | None:
    """Why this registration may not name this socket, if it may not: only one root made
    (rpcbind's owner `superuser`) names a socket, and only a socket that root made (uid 0 in
    the kernel's tables). rpcbind lets any local user register any program, so trusting
    another user's registration would let them give a listener (their own, or another's) the
    name of a real RPC service, which an RPC name in the policy would then hide or accept.
    rpcbind records "superuser" for uid 0 on its Unix socket, the uid of any other local user
    there, "unknown" over UDP or TCP, except from a reserved source port: "superuser" again
    (where any user may bind one, nothing is asked: `_superuser_forgeable`), or from a program
    with CAP_NET_BIND_SERVICE, that is not root; hence the socket's owner too. A portmapper
    that speaks only version 2 does not say who registered: its registrations name only root's
    sockets."""
    owner = registration.owner
    if owner is not None and owner != _SUPERUSER:
        return f"was registered by owner {one_line(owner)}, not known to be root"
    if sock.uid != 0:
        told = "not told (a version 2 portmapper)" if owner is None else owner
        return (
            f"was registered by owner {told}, for a socket of "
            f"{one_line(user_name(sock.uid))} (uid {sock.uid}), not root's"
        )
    return None


def _registrations(
    sockets: Sequence[Socket], policy: Policy
) -> tuple[tuple[Registration, ...] | None, list[str], Unusable | None]:
    """The portmapper's registrations with their owners, if root listens on port 111; None
    when it listens but could not be asked (then also why: Unusable), or was not because port
    111 is skipped (then which program holds which port is unknown, not "none"); and warnings.

    Asked over TCP, else (or if that fails) over UDP, at loopback when it listens on a wildcard
    address, else at its own address. Never asked where port 111 is skipped, nor when a socket
    on port 111 is not root's: wherever unprivileged ports start at 0 (Docker's default in a
    container), any user can listen there and answer that root registered whatever they like;
    nor, for the same reason, when any user can register from a reserved port.
    """
    strangers = _not_roots(s for s in sockets if s.port == PORTMAPPER_PORT)
    if strangers:
        return (), [strangers], None
    asked: list[tuple[IPAddress, Socket]] = []
    skipped = False
    for proto in (Proto.TCP, Proto.UDP):
        sock = next((s for s in sockets if s.port == PORTMAPPER_PORT and s.proto is proto), None)
        if sock is None:
            continue
        address = sock.address
        if sock.wildcard:
            address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
        if policy.skips(str(address), "", PORTMAPPER_PORT, proto):
            skipped = True
        else:
            asked.append((address, sock))
    if not asked:
        return (None if skipped else ()), [], None
    forgeable = _superuser_forgeable()
    if forgeable:
        return (), [forgeable], None
    failed: list[tuple[IPAddress, Socket, str]] = []  # where it was asked, and why it failed
    for address, sock in asked:
        try:
            return registrations(address, sock.proto, limits.PORTMAP_TIMEOUT_S), [], None
        except PortmapperError as error:
            failed.append((address, sock, one_line(str(error))))
    warnings = [
        f"portmapper at {address} port {PORTMAPPER_PORT}/{sock.proto.value}: {why}; RPC "
        "services are not named by it, and requirements by RPC name keep their last "
        "state"
        for address, sock, why in failed
    ]
    reasons = tuple(f"{sock.proto.value}: {why}" for _, sock, why in failed)
    return None, warnings, Unusable(failed[0][0], failed[0][1], reasons)


def _superuser_forgeable() -> str | None:
    """A warning line if any user may bind a reserved port (below 1024) in this network
    namespace (the daemon's, which is the audited one): then anyone can register with the
    portmapper from one, and rpcbind records that as `superuser`, so no registration is known
    to be root's. A setting that cannot be read counts as low; a kernel without it (before
    4.11) reserves ports below 1024 for root."""
    setting = "net.ipv4.ip_unprivileged_port_start"
    try:
        start = int(_UNPRIVILEGED_PORT_START.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        found = f"cannot be read ({one_line(str(error))})"
    else:
        if start >= _RESERVED_PORTS_END:
            return None
        found = f"is {start}"
    return (
        f"{setting} {found}: any user may register an RPC program as superuser from a "
        f"port below {_RESERVED_PORTS_END}, so port {PORTMAPPER_PORT} was not asked and no "
        f"port is named by an RPC program (set {setting}={_RESERVED_PORTS_END}, then "
        "restart rpcbind and the RPC services, to name them)"
    )


def _not_roots(held: Iterable[Socket]) -> str | None:
    """A warning line if any of these port-111 sockets belongs to another user than root."""
    held = list(held)
    uids = sorted({s.uid for s in held if s.uid != 0})
    if not uids:
        return None
    protos = ", ".join(sorted({s.proto.value for s in held}))
    users = ", ".join(f"{one_line(user_name(uid))} (uid {uid})" for uid in uids)
    return (
        f"port {PORTMAPPER_PORT} ({protos}) is held by {users}, not by root: it was not "
        "asked, so no port is named by an RPC program"
    )


def _portwarden_pids(state_dir: Path) -> frozenset[int]:
    """This process and the daemon holding STATE_DIR: their sockets on tripwire ports (classic
    modes) and on the METRICS_LISTEN port (the daemon's own page, reported at every start
    otherwise) are not services; any other socket of theirs is."""
    pids = {os.getpid()}
    try:
        pid = int((state_dir / LOCK_NAME).read_text().strip())
        if b"portwarden" in (PROC / str(pid) / "cmdline").read_bytes():
            pids.add(pid)  # not a stale pid now used by another program
    except (OSError, ValueError):
        pass
    return frozenset(pids)
