"""Checks of the settings against this host as it is now: paths that cannot be used, programs
and RPC names that are not there, interfaces the audit does not look at. Most are warnings, as
the host may change (a tool installed later); what can never work is a ConfigError."""

import shutil
from pathlib import Path

from portwarden.audit.interfaces import unaudited
from portwarden.audit.names import Names
from portwarden.config.audit_policy import Policy
from portwarden.config.reader import Reader
from portwarden.config.settings import Settings
from portwarden.config.values import BlockMode
from portwarden.net.local import InterfaceAddress, interface_addresses
from portwarden.statedir import (
    socket_path_problem,
    unusable_directory,
    unusable_event_log,
    unusable_file,
)
from portwarden.text import one_line


def check_paths(read: Reader, settings: Settings, watching: bool) -> None:
    """STATE_DIR, EVENT_LOG, HISTORY_FILE and BLOCKED_FILE that cannot be used here (statedir's
    checks; `watching`: for the daemon). Raises ConfigError at the first such key."""
    state_dir = settings.state_dir
    for key, problem in (
        ("STATE_DIR", unusable_directory(state_dir, watching) or socket_path_problem(state_dir)),
        ("EVENT_LOG", settings.event_log and unusable_event_log(settings.event_log, watching)),
        ("HISTORY_FILE", unusable_file(settings.history_file, watching)),
        ("BLOCKED_FILE", unusable_file(settings.blocked_file, watching)),
    ):
        if problem:
            raise read.error(key, problem)


def rpc_name_warnings(read: Reader, settings: Settings) -> list[str]:
    """RPC names in the audit policy that can never match: a configuration error in
    AUDIT_REQUIRED (it would be a ServiceMissing at every check), a warning elsewhere."""
    names = Names.read()
    found = []
    for key, groups in (
        ("AUDIT_REQUIRED", settings.audit_required),
        ("AUDIT_OPTIONAL", settings.audit_optional),
        ("AUDIT_IGNORE", settings.audit_ignore),
    ):
        for item in (i for g in groups for i in g.items if i.rpc is not None):
            why = names.why_never_matches(item.rpc or "", item.proto)
            if why is None:
                continue
            if key == "AUDIT_REQUIRED":
                raise read.error(key, f"{why}: a requirement that can never be met")
            found.append(f"{read.where(key)}{key}: {why}")
    return found


def unaudited_requirement_warnings(read: Reader, settings: Settings, policy: Policy) -> list[str]:
    """A requirement on an interface the audit never looks at would be a ServiceMissing at
    every check: a configuration error. One on a device or address absent now is a warning."""
    groups = dict.fromkeys(group for group, _ in policy.requirements() if str(group.where))
    if not groups:
        return []
    try:
        present: tuple[InterfaceAddress, ...] | None = interface_addresses()
    except OSError:
        present = None  # not known: only what can never be checked is judged
    found = []
    for group in groups:
        why = unaudited(
            group.where, settings.audit_interfaces, settings.audit_devices, present or ()
        )
        if why is not None and why.never:
            raise read.error("AUDIT_REQUIRED", f"'{group}': {why.reason}")
        if why is not None and present is not None:
            found.append(
                f"{read.where('AUDIT_REQUIRED')}AUDIT_REQUIRED: '{group}': {why.reason}; "
                "reported missing while it is not checked"
            )
    return found


def program_warnings(read: Reader, settings: Settings) -> list[str]:
    """KILL_ROUTE / KILL_RUN_CMD whose program is not there (Debian's /sbin/route without
    net-tools): every block would fail, and the built-in blocker is off while KILL_ROUTE is set
    (BLOCK_NFTABLES="auto"). A warning, not an error: the tool may be installed later."""
    modes = (settings.block_tcp, settings.block_udp)
    found = []
    for key, command, used, hint in (
        (
            "KILL_ROUTE",
            settings.kill_route,
            BlockMode.BLOCK in modes,
            "; install it, or leave KILL_ROUTE unset to block with the built-in nftables blocker, "
            'or use KILL_ROUTE="/sbin/ip route add blackhole $TARGET$"',
        ),
        ("KILL_RUN_CMD", settings.kill_run_cmd, any(modes), "; every block will fail to run it"),
    ):
        program = command.argv[0] if command else ""
        if not used or not program or "$" in program:
            continue
        missing = _missing_program(program)
        if missing:
            found.append(f"{read.where(key)}{key}: {one_line(program)} {missing}{hint}")
    return found


def _missing_program(program: str) -> str | None:
    """Why `program` cannot be run as the blocking commands run it (found in PATH unless it
    has a '/'), or None."""
    if "/" not in program:
        return None if shutil.which(program) else "is not found in PATH"
    if shutil.which(program):
        return None
    return "is not executable" if exists(Path(program)) else "does not exist"


def exists(path: Path) -> bool:
    """Whether something is at `path`. One that cannot even be checked (a name too long, a
    folder that may not be searched) counts as there, so that reading it says why it cannot be
    read."""
    try:
        return path.exists()
    except OSError:
        return True
