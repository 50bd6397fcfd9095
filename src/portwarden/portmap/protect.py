"""Protect and unprotect as plans: computed first, shown or applied, all or nothing.

Everything is read and checked before anything is written. Files are changed first, then the
firewall (one atomic step per tool; iptables puts back a family it changed when the next one
fails); if the firewall fails, the files are put back, so a failed command leaves the host as
it found it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from portwarden.portmap import wrappers
from portwarden.portmap.firewall import Backend, Firewall, Step, firewall
from portwarden.portmap.networks import allowed_networks


@dataclass(frozen=True)
class Plan:
    files: tuple[wrappers.FileChange, ...]
    firewall: Firewall | None
    steps: tuple[Step, ...]

    @property
    def changed(self) -> bool:
        return bool(self.steps) or any(change.changed for change in self.files)

    def show(self) -> str:
        """The exact changes: a unified diff per file, the script per firewall step."""
        return "".join([c.diff() for c in self.files] + [s.show() for s in self.steps])

    def summary(self) -> list[str]:
        lines = [
            f"changed {c.path}" if c.after is not None else f"removed {c.path}"
            for c in self.files
            if c.changed
        ]
        return lines + [f"ran {step.show().splitlines()[0][2:]}" for step in self.steps]

    def apply(self) -> None:
        for change in self.files:
            wrappers.check_writable(change)
        done: list[wrappers.FileChange] = []
        try:
            for change in self.files:
                change.apply()
                done.append(change)
            if self.firewall is not None:
                self.firewall.run(list(self.steps))
        except BaseException:
            for change in reversed(done):
                change.undo()
            raise


def plan_protect(
    allow: Iterable[str], hosts_allow: Path | None, hosts_deny: Path | None, backend: Backend | None
) -> Plan:
    """The changes that protect the portmapper; None for a path or backend skips that part."""
    networks = allowed_networks(allow)
    files = []
    if hosts_allow is not None:
        files.append(wrappers.protect_change(hosts_allow, wrappers.allow_rules(networks)))
    if hosts_deny is not None:
        files.append(wrappers.protect_change(hosts_deny, wrappers.deny_rules()))
    wall = None if backend is None else firewall(backend)
    steps = () if wall is None else tuple(wall.protect(networks))
    return Plan(tuple(files), wall, steps)


def plan_unprotect(paths: Iterable[Path], backend: Backend | None) -> Plan:
    """The changes that remove exactly what plan_protect added."""
    wall = None if backend is None else firewall(backend)
    steps = () if wall is None else tuple(wall.unprotect())
    return Plan(tuple(wrappers.unprotect_change(p) for p in paths), wall, steps)
