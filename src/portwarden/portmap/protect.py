"""Protect and unprotect as plans: computed first, shown or applied, all or nothing.

Everything is read and checked before anything is written. Files are changed first, then the
firewalls, one atomic step at a time (a table, a family); when a step fails, the steps already
run are put back, last first, and then the files, so a failed command leaves the host as it
found it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from portwarden.config.ignore import shown, within
from portwarden.net.addresses import PORTMAPPER_PORT
from portwarden.portmap import wrappers
from portwarden.portmap.firewall import (
    Backend,
    Choice,
    Firewall,
    FirewallError,
    Step,
    Undo,
    protect_steps,
    unprotect_steps,
)
from portwarden.portmap.networks import allowed_networks, host_bits_warnings
from portwarden.portmap.owner import port_owners, servers, unread_files
from portwarden.textfile import lines_with_ends


class Note(NamedTuple):
    """What a plan does about the administrator's lines or an earlier protect's rules, for
    people: as it is once done, and as a dry run (or a plan not yet applied) says it."""

    done: str
    planned: str


@dataclass(frozen=True)
class Plan:
    files: tuple[wrappers.FileChange, ...]  # in the order they are changed
    steps: tuple[tuple[Firewall, Step], ...]  # in the order they run
    warnings: tuple[str, ...] = ()  # what the administrator should know, changed or not
    notes: tuple[Note, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.steps) or any(change.changed for change in self.files)

    def show(self) -> str:
        """The exact changes: a unified diff per file, the script per firewall step."""
        return "".join([c.diff() for c in self.files] + [s.show() for _, s in self.steps])

    def summary(self) -> list[str]:
        verbs = {(True, True): "changed", (False, True): "created", (True, False): "removed"}
        lines = [
            f"{verbs[c.before is not None, c.after is not None]} {c.path}"
            for c in self.files
            if c.changed
        ]
        return lines + [f"ran {step.show().splitlines()[0][2:]}" for _, step in self.steps]

    def apply(self) -> None:
        for change in self.files:
            wrappers.check_writable(change)
        done: list[wrappers.FileChange] = []
        undo: list[Undo] = []
        try:
            for change in self.files:
                done.append(change.apply())
            for wall, step in self.steps:
                undo.append(wall.run(step))
        except BaseException as error:
            notes = [put_back() for put_back in reversed(undo)]
            notes += [_put_back(change) for change in reversed(done) if change.changed]
            if isinstance(error, OSError):  # e.g. a full disk, after check_writable
                where = error.filename or "portmap"
                error = wrappers.WrappersError(f"{where}: {error.strerror or error}")
            if isinstance(error, FirewallError | wrappers.WrappersError) and notes:
                # what was undone, firewalls first, then every file, by name: it matters
                raise type(error)(f"{'; '.join(notes)}, after {error}") from None
            if isinstance(error, wrappers.WrappersError):
                raise error from None
            raise


def _put_back(change: wrappers.FileChange) -> str:
    """Put a changed file back as it was (byte for byte), and say how that went."""
    try:
        change.undo()
    except wrappers.WrappersError as error:
        return f"putting {change.path} back failed, check it by hand ({error})"
    except OSError as error:
        return f"putting {change.path} back failed, check it by hand ({error.strerror or error})"
    return f"{change.path} was put back as it was"


def plan_protect(
    allow: Iterable[str], hosts_allow: Path | None, hosts_deny: Path | None, choice: Choice | None
) -> Plan:
    """The changes that protect the portmapper; None for the paths or for the firewall
    `choice` leaves that part alone. hosts.allow is changed before hosts.deny, so that our
    `ALL` in hosts.deny never applies without our allow lines (loopback's among them). The bans
    in hosts.deny of addresses inside the allowed networks go into our hosts.allow lines as
    `EXCEPT`, since those lines are read first and would override them (`notes` names them; a
    ban that cannot be carried over, or that a line of the administrator's in hosts.allow
    overrides all the same, is a warning). Our rules go into the firewall chosen, and out of
    the other one (both for `none`), where an earlier protect may have left them with other
    networks (`notes` says so). Warns about host bits in `allow`, about the administrator's
    lines that would let outsiders in all the same, and about a last line without a newline (as
    check does)."""
    texts = list(allow)
    networks = allowed_networks(texts)
    warnings = host_bits_warnings(texts)
    notes: list[Note] = []
    files: tuple[wrappers.FileChange, ...] = ()
    if hosts_allow is not None and hosts_deny is not None:
        warnings += _refuse_unreadable((hosts_allow, hosts_deny))
        deny = wrappers.protect_change(hosts_deny, wrappers.deny_rules())
        bans = wrappers.bans(hosts_deny, lines_with_ends(deny.after or ""), networks)
        refused = [ban.network for ban in bans if ban.carried]
        files = (
            wrappers.protect_change(hosts_allow, wrappers.allow_rules(networks, refused)),
            deny,
        )
        after = [lines_with_ends(c.after or "") for c in files]
        for ban in (ban for ban in bans if ban.carried):
            grant = wrappers.ban_allowed_by(hosts_allow, after[0], ban)
            if grant is None:
                notes.append(_carried(ban, hosts_allow))
            else:
                warnings.append(
                    f"{ban} does not refuse {shown(ban.network)} to rpcbind, though our "
                    f"{hosts_allow} line excepts it: {grant.lets_in(ban.network)}"
                )
        warnings += [_uncarried(ban, hosts_allow) for ban in bans if not ban.carried]
        warnings += [
            f"{leak}; our lines do not protect it until that line is removed or narrowed"
            for leak in wrappers.leaks(hosts_allow, after[0], hosts_deny, after[1], networks)
        ]
        unterminated = (
            wrappers.unterminated(c.path, c.before, denies)
            for c, denies in zip(files, (False, True), strict=True)
        )
        warnings += [warning for warning in unterminated if warning]
        closed = wrappers.denies_everyone(hosts_deny, files[1].before)
        warnings += [closed] if closed else []
    steps: list[tuple[Firewall, Step]] = []
    if choice is not None:
        added, removed = protect_steps(choice, networks)
        notes += [_removed(wall, choice) for wall in _distinct(wall for wall, _ in removed)]
        steps = added + removed
        warnings += _foreign(wall for wall, _ in added)
        warnings += _foreign((wall for wall, _ in removed), f"protect --firewall {choice}")
    return Plan(files, tuple(steps), tuple(warnings), tuple(notes))


def _carried(ban: wrappers.Ban, hosts_allow: Path) -> Note:
    where = f"our {hosts_allow} line as EXCEPT"
    return Note(
        f"{ban} still refuses {shown(ban.network)} (carried over to {where})",
        f"{ban} still refuses {shown(ban.network)} (would be carried over to {where})",
    )


def _removed(wall: Firewall, choice: Choice) -> Note:
    """Our rules taken out of a firewall other than the one chosen."""
    what = f"our rules from {wall.name}, where an earlier protect put them"
    what += f" (--firewall {choice} now)"
    return Note(f"removed {what}", f"would remove {what}")


def _uncarried(ban: wrappers.Ban, hosts_allow: Path) -> str:
    """Why a ban in hosts.deny of addresses in an allowed network no longer applies to the
    portmapper, and what to do."""
    if within(ban.inside, ban.network):
        return (
            f"{ban} refuses all of the allowed network {ban.inside}, but our {hosts_allow} "
            "line, read first, lets it reach rpcbind, as --allow asks: narrow --allow, or "
            "remove the ban"
        )
    return (
        f"{ban} refuses {shown(ban.network)}, inside the allowed network {ban.inside}, with an "
        f"EXCEPT that protect does not carry over: our {hosts_allow} line, read first, lets "
        "it reach rpcbind; write the ban without EXCEPT and run protect again"
    )


def _refuse_unreadable(paths: Iterable[Path]) -> list[str]:
    """Raises WrappersError, before anything is changed, when the portmapper (as the user it
    runs as, or, not running, the user it will run as) cannot read one of the files: libwrap
    would not see our lines, and denies every caller then, loopback and the allowed networks
    included. The file's mode is the administrator's to change, never ours. When that user
    cannot be known, the warnings about files not readable by all."""
    unread, doubts = unread_files(paths, servers(port_owners(PORTMAPPER_PORT)))
    if unread:
        raise wrappers.WrappersError(
            f"{unread[0]}: TCP Wrappers would not read our lines there, and the portmapper would "
            "refuse every caller, loopback and the allowed networks included; nothing was "
            "changed: make the file readable by that user, then run protect again"
        )
    return doubts


def plan_unprotect(
    hosts_allow: Path | None, hosts_deny: Path | None, backend: Backend | None
) -> Plan:
    """The changes that remove exactly what plan_protect added: hosts.deny first, so that our
    `ALL` there never applies once our allow lines are gone (not even to loopback); then our
    rules in both firewalls, `backend` first."""
    paths = [] if hosts_allow is None or hosts_deny is None else [hosts_deny, hosts_allow]
    steps = () if backend is None else tuple(unprotect_steps(backend))
    return Plan(
        tuple(wrappers.unprotect_change(p) for p in paths),
        steps,
        tuple(_foreign(wall for wall, _ in steps)),
    )


def _foreign(walls: Iterable[Firewall], deleted_by: str | None = None) -> list[str]:
    """A warning for each firewall about to be changed (once each: see _distinct) whose table
    or chain holds what we did not put there; `deleted_by`: the command that takes our rules
    out of these firewalls, deleting the table or chain."""
    found = (wall.foreign(deleted_by) for wall in _distinct(walls))
    return [line for line in found if line is not None]


def _distinct(walls: Iterable[Firewall]) -> list[Firewall]:
    """Each firewall once, in order (one may have a step per family)."""
    distinct: list[Firewall] = []
    for wall in walls:
        if all(wall is not other for other in distinct):
            distinct.append(wall)
    return distinct
