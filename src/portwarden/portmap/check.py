"""`portwarden portmap check`: is rpcbind running, what does it expose, what protects it.

The report reads the kernel's socket tables, asks the portmapper itself over loopback, reads
the TCP Wrappers files (which count only if the process on port 111 maps libwrap) and the
firewall, and, given a local source address outside the allowed networks, probes for real:
PMAPPROC_DUMP over TCP and UDP from that address.

What it can judge, and what it cannot: our own lines and rules it reads and judges (down to
the networks they allow, and the administrator's lines that let outsiders in before ours).
Rules that are not ours it does not judge: it says that they exist, and the verdict is
`unknown` unless something of ours protects the portmapper or a probe decides. A probe from a
local address travels over the loopback interface; it stands for a caller outside only when
every rule on the way matches by address, which ours do and others' need not (`iif lo accept`).
"""

import dataclasses
import ipaddress
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from portwarden.audit.names import Names
from portwarden.config.ignore import ALWAYS_IGNORED, Network, shown, within
from portwarden.net.addresses import PORTMAPPER_PORT, Proto
from portwarden.net.local import interface_addresses
from portwarden.net.portmapper import Mapping, PortmapperError, dump
from portwarden.net.ports import bound_ports
from portwarden.portmap import wrappers
from portwarden.portmap.firewall import FirewallError, IptablesFirewall, NftFirewall, other_filters
from portwarden.portmap.owner import Owner, port_owners, servers, unread_files
from portwarden.text import counted, one_line
from portwarden.textfile import lines_with_ends

Outcome = Literal["reachable", "refused", "silent"]
Verdict = Literal["protected", "exposed", "not running", "unknown", "locked out"]
FirewallState = Literal["protects", "does not protect", "unknown"]
_DENIED = "the portmapper denied it"
_PROTOCOL_NUMBERS = {Proto.TCP: socket.IPPROTO_TCP, Proto.UDP: socket.IPPROTO_UDP}
_NOT_JUDGED = (
    "rules that are not ours filter incoming traffic; they are not judged. To see what a caller "
    "outside meets, run on a host outside the allowed networks `rpcinfo -p <this host>` or "
    "`portwarden portmap check --from <its address> --to <this host>`"
)
UNKNOWN_FIREWALL = (
    "unknown (not ours; the probe from a local address stands for a remote caller only when "
    "rules match by address)"
)


@dataclass(frozen=True)
class Probe:
    """One real PMAPPROC_DUMP from `source` to `target` and what came back."""

    source: str
    target: str
    proto: str  # tcp, udp
    outcome: Outcome
    detail: str

    @property
    def denied(self) -> bool:
        """The portmapper itself refused the call (TCP Wrappers, for one)."""
        return self.detail.startswith(_DENIED)


@dataclass(frozen=True)
class WrappersView:
    protected: bool  # in_files, and the portmapper uses TCP Wrappers
    in_files: bool  # our blocks in both files, and nothing lets a caller outside them in
    uses_libwrap: bool | None  # every server on port 111 maps libwrap; None: no server found
    owners: tuple[Owner, ...]  # the processes with a socket on port 111
    note: str  # whether the portmapper uses TCP Wrappers, and what defeats our lines, for people
    lines: tuple[str, ...]  # every line that applies to the portmapper, as file:line: text
    allowed: tuple[str, ...] = ()  # the networks our hosts.allow block lets in
    leaks: tuple[str, ...] = ()  # the administrator's lines that let outsiders in
    # Positions in `lines` of those that reach the portmapper only as `ALL: <addresses>`, none
    # of them in question (fail2ban's bans): the text counts them instead of listing hundreds.
    single_address_lines: tuple[int, ...] = ()
    # Why the portmapper's user cannot read hosts.allow or hosts.deny, one line per file (none
    # when the portmapper answered the loopback query while our hosts.deny block was in force:
    # it read them).
    unreadable: tuple[str, ...] = ()
    # hosts.deny's bans of addresses inside the allowed networks, each `file:line: "text":` and
    # whether it is in effect for rpcbind or our hosts.allow lines, read first, override it.
    bans: tuple[str, ...] = ()
    # EXCEPT entries of our hosts.allow lines that no ban in hosts.deny covers any longer (the
    # ban ended): our line still refuses them rpcbind until protect runs again.
    stale_excepts: tuple[str, ...] = ()
    # The addresses and networks the administrator's hosts.deny lines refuse the portmapper
    # (without EXCEPT): our hosts.allow lines may leave them out where the firewall does not.
    refused: tuple[str, ...] = ()


@dataclass(frozen=True)
class FirewallView:
    protected: bool  # our rules drop port 111 from outside the networks they allow
    lines: tuple[str, ...]  # our rules
    state: FirewallState = "does not protect"
    note: str = ""  # why, for people
    allowed: tuple[str, ...] = ()  # the networks our rules let through
    others: tuple[str, ...] = ()  # rules that are not ours and may filter port 111
    # What each firewall with our rules in force lets through: (nftables or iptables, networks).
    allowed_by: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Report:
    listening: tuple[str, ...]  # "tcp", "udp": port 111 is bound in this network namespace
    programs: tuple[Mapping, ...]  # from a dump over loopback
    local_error: str | None  # why the loopback dump failed, if it did
    wrappers: WrappersView
    firewall: FirewallView
    probes: tuple[Probe, ...]
    probes_here: bool = True  # the probes went to this host (over loopback), not another
    # Here: why the probes do not decide the verdict, if they do not; to another host: that
    # they alone decide it.
    notes: tuple[str, ...] = ()
    # Callers the rules allow (the loopback query, a probe from inside the allowed networks)
    # that the portmapper denied: TCP Wrappers lock it, they do not protect it.
    denied_allowed: tuple[str, ...] = ()
    # Where our rules (each firewall's, our hosts.allow lines) disagree on the networks allowed:
    # a caller one of them lets in, another refuses.
    disagreements: tuple[str, ...] = ()

    @property
    def verdict(self) -> Verdict:
        reachable = any(p.outcome == "reachable" for p in self.probes)
        if self.probes and not self.probes_here:
            return "exposed" if reachable else "protected"  # the real network decided
        if not self.listening:
            return "not running"
        if self.denied_allowed:
            return "locked out"
        # Kept out, outsiders are; but where our rules disagree, so are some allowed callers.
        kept_out: Verdict = "locked out" if self.disagreements else "protected"
        if self.probes and not self.notes:
            return "exposed" if reachable else kept_out
        if self.wrappers.protected or self.firewall.protected:
            return kept_out
        return "unknown" if self.firewall.state == "unknown" else "exposed"

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
        said = protection[self.wrappers.protected]
        if self.denied_allowed:
            said = "deny callers they should allow (see the notes): they lock the portmapper"
        lines.append(f"wrappers: {said}")
        lines.append(f"  {self.wrappers.note}")
        lines += self._wrappers_lines()
        lines += [f"  ban {ban}" for ban in self.wrappers.bans]
        lines += [f"  stale {stale}" for stale in self.wrappers.stale_excepts]
        wall = self.firewall
        said = UNKNOWN_FIREWALL if wall.state == "unknown" else protection[wall.protected]
        lines.append(f"firewall: {said}")
        lines += [f"  {line}" for line in (wall.note, *wall.lines, *wall.others) if line]
        for p in self.probes:
            lines.append(
                f"probe: {p.proto} from {p.source} to {p.target} port 111: {p.outcome} ({p.detail})"
            )
        notes = (*self.notes, *self.denied_allowed, *self.disagreements)
        lines += [f"note: {note}" for note in notes]
        lines.append(f"verdict: {self.verdict}")
        return lines

    def _wrappers_lines(self) -> list[str]:
        singles = set(self.wrappers.single_address_lines)
        shown = [f"  {line}" for n, line in enumerate(self.wrappers.lines) if n not in singles]
        if not singles:
            return shown or ["  no line names rpcbind, portmap or ALL"]
        count = f"{len(singles)} {'other ' if shown else ''}line{'s' * (len(singles) > 1)}"
        return [
            *shown,
            f"  {'and ' if shown else ''}{count} for single addresses "
            "(`ALL: <address>`; --json lists them)",
        ]


def _libwrap_note(owners: tuple[Owner, ...], serving: tuple[Owner, ...]) -> str:
    if owners and not serving:
        return (
            f"rpcbind is not started: only the service manager (pid 1) holds port "
            f"{PORTMAPPER_PORT}, for socket activation"
        )
    if not serving:
        why = "" if os.geteuid() == 0 else " (only root sees other users' processes)"
        return (
            "cannot tell whether rpcbind uses TCP Wrappers: no process found with a socket on "
            f"port {PORTMAPPER_PORT}{why}"
        )
    without = [o for o in serving if not o.libwrap]
    named = ", ".join(f"pid {o.pid} ({one_line(o.name)})" for o in without or serving)
    if without:
        return f"rpcbind does not use TCP Wrappers: no libwrap.so in the memory map of {named}"
    return f"rpcbind uses TCP Wrappers: libwrap.so is mapped by {named}"


def read_wrappers(
    hosts_allow: Path,
    hosts_deny: Path,
    owners: tuple[Owner, ...],
    source: str | None = None,
    answered: bool = False,
) -> WrappersView:
    """The TCP Wrappers lines for the portmapper; they protect it only if the processes that
    serve port 111 (from `owners`) map libwrap (rpcbind built without it never reads the files)
    and can read both files, if our hosts.allow lines do not allow everyone, and if no line of
    the administrator's lets a caller outside them in first. A line for single addresses is in
    question when it lets an outsider in or names an address of the allowed networks or the
    probes' `source`. `answered`: the portmapper answered the loopback query; with our `ALL`
    in hosts.deny in force, that proves libwrap read both files (Debian's libwrap denies every
    caller when it cannot open one). Raises WrappersError for a file that is there but is not
    a regular file (a symbolic link, a FIFO, a device), as protect does."""
    lines: list[str] = []
    singles: dict[tuple[Path, int], tuple[int, tuple[Network, ...]]] = {}  # (file, line): ...
    files: list[tuple[list[str], wrappers.Block | None]] = []
    for path in (hosts_allow, hosts_deny):
        text = wrappers.read(path) or ""  # raises WrappersError: not a regular file
        found = lines_with_ends(text)
        try:
            block = wrappers.find_block(path, found)
        except wrappers.WrappersError as error:  # edited by hand: said, and not ours
            lines.append(one_line(str(error)))
            continue
        files.append((found, block))
        warning = wrappers.unterminated(path, text, denies=path == hosts_deny)
        lines += [warning] if warning else []
        ours = range(block.start, block.stop) if block else range(0)
        for number, line in wrappers.logical_lines(found):
            if wrappers.is_comment(line) or ":" not in line:
                continue
            if wrappers.applies_to_portmapper(line):
                mark = " (portwarden-portmap)" if number in ours else ""
                addresses = () if mark else wrappers.single_addresses(line)
                if addresses:
                    singles[path, number + 1] = (len(lines), addresses)
                lines.append(f"{path}:{number + 1}: {one_line(line)}{mark}")
    allowed: tuple[Network, ...] = ()
    leaks: tuple[wrappers.Leak, ...] = ()
    bans: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    refused: tuple[Network, ...] = ()
    everyone = None
    in_place = len(files) == 2 and all(block for _, block in files)
    if in_place:
        (allow_lines, allow_block), (deny_lines, _) = files
        assert allow_block is not None
        allowed = wrappers.block_networks(allow_lines, allow_block)
        everyone = wrappers.covers_everyone(allowed)
        leaks = wrappers.leaks(hosts_allow, allow_lines, hosts_deny, deny_lines, allowed)
        banned = wrappers.bans(hosts_deny, deny_lines, allowed)
        refused = wrappers.refused(hosts_deny, deny_lines)
        bans = tuple(_ban_effect(ban, hosts_allow, allow_lines) for ban in banned)
        stale = tuple(
            _stale_effect(entry, hosts_allow, hosts_deny)
            for entry in wrappers.stale_excepts(allow_lines, allow_block, banned)
        )
    serving = servers(owners)
    uses_libwrap = all(o.libwrap for o in serving) if serving else None
    note = _libwrap_note(owners, serving)
    blind, doubts = unread_files((hosts_allow, hosts_deny), serving)
    if answered and uses_libwrap and len(files) == 2 and files[1][1]:
        blind = []  # it answered with our `ALL` in hosts.deny: it read both files
    note += "".join(f"; but {why}: TCP Wrappers cannot read the lines there" for why in blind)
    note += "".join(f"; but {doubt}" for doubt in doubts)
    if everyone is not None:
        note += f"; but our {hosts_allow} lines allow every address ({everyone})"
    note += "".join(f"; but {leak}" for leak in leaks)
    if len(files) == 2 and files[1][1] and not files[0][1]:
        note += (
            f"; but our {hosts_deny} block stands without our {hosts_allow} block: it "
            "denies every caller, loopback included (run `portwarden portmap protect` "
            "again, or `unprotect`)"
        )
    in_files = in_place and everyone is None and not leaks and not blind
    probed = [ipaddress.ip_network(source.partition("%")[0])] if source else []
    in_question = [*allowed, *probed]
    leaked = {(leak.path, leak.number) for leak in leaks}
    minor = tuple(
        sorted(
            position
            for where, (position, addresses) in singles.items()
            if where not in leaked
            and not any(a.overlaps(q) for a in addresses for q in in_question)
        )
    )
    return WrappersView(
        in_files and bool(uses_libwrap),
        in_files,
        uses_libwrap,
        owners,
        note,
        tuple(lines),
        tuple(map(str, allowed)),
        tuple(f"{leak.path}:{leak.number}" for leak in leaks),
        minor,
        tuple(blind),
        bans,
        stale,
        tuple(map(str, refused)),
    )


def _stale_effect(entry: wrappers.StaleExcept, hosts_allow: Path, hosts_deny: Path) -> str:
    """An EXCEPT entry whose ban has ended, and what to do."""
    unbanned = " ".join(map(shown, entry.unbanned))
    part = "" if entry.unbanned == (entry.excepted,) else f"{unbanned} of it "
    excepted = wrappers.pattern(entry.excepted)
    return (
        f"{hosts_allow}:{entry.number}: EXCEPT {excepted}: {part}no longer banned in "
        f"{hosts_deny}, but our line still refuses it rpcbind (run 'portwarden portmap protect' "
        "again to drop it)"
    )


def _ban_effect(ban: wrappers.Ban, hosts_allow: Path, allow_lines: list[str]) -> str:
    """Whether a ban in hosts.deny holds for rpcbind, or a hosts.allow line, read first,
    overrides it: one of ours, or one of the administrator's."""
    grant = wrappers.ban_allowed_by(hosts_allow, allow_lines, ban)
    if grant is None:
        return f"{ban}: in effect for rpcbind (our {hosts_allow} lines except {shown(ban.network)})"
    if not grant.ours:
        return f"{ban}: overridden for rpcbind: {grant.lets_in(ban.network)}"
    if within(ban.inside, ban.network):
        why = f"it bans all of {ban.inside}, which --allow lets in"
    elif not ban.carried:
        why = "protect does not carry over a ban with EXCEPT"
    else:
        why = "run 'portwarden portmap protect' again to carry the ban over"
    return (
        f"{ban}: overridden for rpcbind: {hosts_allow}:{grant.number} (ours), read first, lets "
        f"{shown(ban.network)} reach it ({why})"
    )


def read_firewall() -> FirewallView:
    """Our rules (nftables and iptables), what they let through, and, when they do not protect
    the portmapper, whether rules that are not ours filter incoming traffic at all."""
    lines: list[str] = []
    ours: list[tuple[Network, ...]] = []  # what each of our rule sets in place allows
    names: list[str] = []
    for backend in (NftFirewall, IptablesFirewall):
        try:
            wall = backend()
            lines += wall.describe()
            if wall.active():
                ours.append(wall.allowed())
                names.append(wall.name)
        except FirewallError as error:
            lines.append(one_line(str(error)))
    allowed = tuple(dict.fromkeys(str(n) for networks in ours for n in networks))
    allowed_by = tuple(
        (name, tuple(map(str, networks))) for name, networks in zip(names, ours, strict=True)
    )
    if any(wrappers.covers_everyone(networks) is None for networks in ours):
        return FirewallView(
            True,
            tuple(lines),
            "protects",
            "our rules drop port 111 from outside the networks they allow",
            allowed,
            allowed_by=allowed_by,
        )
    opened = [
        f"our rules let every address in ({n})"
        for n in map(wrappers.covers_everyone, ours)
        if n is not None
    ]
    others = tuple(other_filters())
    if others:
        note = "; ".join([*opened, _NOT_JUDGED])
        return FirewallView(False, tuple(lines), "unknown", note, allowed, others, allowed_by)
    note = "; ".join(opened) or "no rules of ours, and no firewall rules filter incoming traffic"
    return FirewallView(False, tuple(lines), "does not protect", note, allowed, (), allowed_by)


def disagreements(hosts_allow: Path, view: WrappersView, wall: FirewallView) -> tuple[str, ...]:
    """Where our rules disagree on the networks allowed: each firewall's rules in force, and
    our hosts.allow lines unless the portmapper does not use TCP Wrappers. What one refuses and
    another lets in is refused (all of them must let a caller in): run protect with one
    `--firewall` and `--no-wrappers` after another, and they differ. Our hosts.allow lines
    leave out a part of an allowed network that hosts.deny bans: no disagreement. One note, or
    none."""
    # Each layer: what it allows, and what it is fine for it to refuse that others allow.
    layers: list[tuple[str, tuple[Network, ...], tuple[Network, ...]]] = [
        (f"our {name} rules", _networks(nets), ()) for name, nets in wall.allowed_by
    ]
    if view.allowed and view.uses_libwrap is not False:
        layers.append(
            (f"our {hosts_allow} lines", _networks(view.allowed), _networks(view.refused))
        )
    found = []
    for name, networks, banned in layers:
        for other, theirs, _ in layers:
            cover = (*networks, *banned)
            left_out = [part for n in theirs for part in wrappers.uncovered(n, cover)]
            if other != name and left_out:
                found.append(f"{name} refuse {' '.join(map(shown, left_out))}, which {other} allow")
    if not found:
        return ()
    return (
        "our rules disagree on the networks allowed, and a caller must pass all of them: "
        + "; ".join(found)
        + " (run 'portwarden portmap protect' again with the --allow and --firewall meant)",
    )


def _networks(texts: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


def probe(source: str, target: str, proto: Proto, timeout: float) -> Probe:
    """A real dump from `source`. Raises PortmapperError when the call cannot be made from there
    (an address that is not local or not an address, no route): an error, not an outcome."""
    try:
        found = dump(target, proto, timeout, source=source)
    except PortmapperError as error:
        outcome: Outcome
        match error.reason:
            case "denied":
                outcome, detail = "refused", f"{_DENIED}: {error}"
            case "refused":
                outcome, detail = "refused", "connection refused"
            case "silent":
                outcome, detail = "silent", f"no answer in {timeout:g} s"
            case "unanswered":  # the connection was accepted: the portmapper is reachable
                outcome, detail = "reachable", f"connected, no RPC answer in {timeout:g} s"
            case "malformed":
                outcome, detail = "reachable", f"answered: {error}"
            case "failed":
                raise
        return Probe(source, target, proto.value, outcome, one_line(detail))
    return Probe(
        source, target, proto.value, "reachable", f"listed {counted(len(found), 'registration')}"
    )


def _local_programs(timeout: float) -> tuple[tuple[Mapping, ...], str | None, bool]:
    """The portmapper's list over loopback, or why neither 127.0.0.1 nor ::1 gave it, and
    whether the portmapper denied it (loopback is always allowed: TCP Wrappers locked it)."""
    errors = []
    denied = False
    for address in ("127.0.0.1", "::1"):
        try:
            return dump(address, Proto.TCP, timeout), None, False
        except PortmapperError as failure:
            errors.append(one_line(f"{address}: {failure}"))
            denied = denied or failure.reason == "denied"
    return (), "; ".join(errors), denied


def _is_here(address: str) -> bool:
    """Whether `address` is one of this host's (a probe to it goes over loopback): on the device
    its scope names, if it has one (`fe80::1%eth0`). The unspecified address is this host's
    too, for the kernel."""
    plain, _, scope = address.partition("%")
    found = ipaddress.ip_address(plain)
    return (
        found.is_loopback
        or found.is_unspecified
        or any(
            a.address == found and (not scope or scope in (a.device, str(a.ifindex)))
            for a in interface_addresses()
        )
    )


def _inside(source: str, view: WrappersView, wall: FirewallView) -> Network | None:
    """The allowed network (loopback's, or one our lines or rules allow) holding `source`."""
    address = ipaddress.ip_address(source)
    allowed = [*ALWAYS_IGNORED, *map(ipaddress.ip_network, view.allowed + wall.allowed)]
    return next((n for n in allowed if address in n), None)


def _doubts(source: str, view: WrappersView, wall: FirewallView) -> tuple[str, ...]:
    """Why probes from `source` to this host say nothing about a caller outside, if they do
    not: the source is inside the allowed networks (loopback is, always), or the probes went
    over loopback through rules that are not ours."""
    inside = _inside(source, view, wall)
    if inside is not None:
        return (
            f"--from {source} is inside the allowed networks ({inside}): its probes say "
            "nothing about a caller outside them, so they do not decide the verdict; give "
            "a local address outside them",
        )
    if wall.state == "unknown":
        return (
            f"the probes from {source} went over the loopback interface, and rules that are "
            "not ours may let that through and drop a caller outside (or the reverse), so "
            "they do not decide the verdict",
        )
    return ()


def build_report(
    hosts_allow: Path, hosts_deny: Path, source: str | None, target: str | None, timeout: float
) -> Report:
    listening = tuple(p.value for p in (Proto.TCP, Proto.UDP) if PORTMAPPER_PORT in bound_ports(p))
    programs, local_error, denied = _local_programs(timeout) if listening else ((), None, False)
    # After the loopback call: with socket activation, that call has started rpcbind.
    owners = port_owners(PORTMAPPER_PORT)
    answered = bool(listening) and local_error is None
    view = read_wrappers(hosts_allow, hosts_deny, owners, source, answered)
    wall = read_firewall()
    locked = [f"the loopback query was denied ({local_error})"] if denied else []
    differ = disagreements(hosts_allow, view, wall)
    if source is None:
        report = Report(listening, programs, local_error, view, wall, (), disagreements=differ)
        return _locked(report, locked)
    to = target or source
    probes = tuple(probe(source, to, proto, timeout) for proto in (Proto.TCP, Proto.UDP))
    if not _is_here(to):
        note = (
            f"the probes went to {to}, another host: they alone decide the verdict; the "
            "lines above describe this host"
        )
        return Report(
            listening, programs, local_error, view, wall, probes, False, (note,), (), differ
        )
    if _inside(source, view, wall):
        locked += [
            f"the {p.proto} probe from {source}, inside the allowed networks, was denied "
            f"({p.detail})"
            for p in probes
            if p.denied
        ]
    doubts = _doubts(source, view, wall)
    report = Report(
        listening, programs, local_error, view, wall, probes, True, doubts, disagreements=differ
    )
    return _locked(report, locked)


def _locked(report: Report, denied: list[str]) -> Report:
    """The report with the allowed callers the portmapper denied, if any: then the wrappers
    protect nothing (they lock it), whatever their lines say. The note says why when it can
    be told: a file the portmapper's user cannot read; else the lines, or a file unread."""
    if not denied:
        return report
    why = "; ".join(denied)
    view = dataclasses.replace(report.wrappers, protected=False)
    if view.unreadable:
        cause = (
            "TCP Wrappers cannot read "
            + " and ".join(line.partition(":")[0] for line in view.unreadable)
            + " (see above)"
        )
    else:
        cause = (
            "a line of hosts.allow or hosts.deny denies them (one of the administrator's, "
            "or ours in hosts.deny without our hosts.allow lines), or TCP Wrappers cannot "
            "read one of the files"
        )
    return dataclasses.replace(
        report,
        wrappers=view,
        denied_allowed=(f"{why}: the portmapper refuses callers the rules allow: {cause}",),
    )
