"""`portwarden audit`: one audit, printed; the exit status tells the result."""

import json
import sqlite3
import sys
import time
from collections.abc import Iterable
from typing import Any

from portwarden import statedir
from portwarden.audit.check import NothingChecked, audit_and_keep
from portwarden.audit.report import as_json, as_lines, summary, unchecked_summary
from portwarden.audit.suggest import suggestion
from portwarden.config import Settings
from portwarden.store.db import Store, StoreError, store_path
from portwarden.text import one_line

NO_FINDINGS, FINDINGS, NOTHING_CHECKED = 0, 1, 2


def audit(settings: Settings, as_json_output: bool, keep_state: bool) -> int:
    """Audit against the state the last audit (command or daemon) left, then keep the new one.
    While a daemon runs on this STATE_DIR its state is only read: a changed port is then still
    new to the daemon's next check, which alerts on it. The report is printed before anything
    is recorded, so a STATE_DIR that cannot be written costs a warning, not the report."""
    _warn(settings.warnings)  # as the command's own warnings, not as the daemon logs them
    daemon_runs = statedir.in_use(settings.state_dir)
    now = time.time()
    try:
        result, warnings = audit_and_keep(settings, keep_state, now, save=not daemon_runs)
    except NothingChecked as error:
        _nothing_checked(error, as_json_output)
        problem = _record(settings, now, unchecked_summary(now, str(error))) if keep_state else None
        _warn([problem] if problem else [])
        return NOTHING_CHECKED
    if as_json_output:
        print(json.dumps({**as_json(result), "warnings": warnings}, ensure_ascii=True))
    else:
        for line in as_lines(result):
            print(line)
    sys.stdout.flush()
    if keep_state:  # `portwarden status` shows the last audit, whoever made it
        problem = _record(settings, result.time, summary(result, warnings))
        warnings += [problem] if problem else []
    _warn(warnings)
    return FINDINGS if result.findings else NO_FINDINGS


def suggest(settings: Settings) -> int:
    """`--suggest`: a policy line for what is open now; 0, or 2 when nothing was checked."""
    _warn(settings.warnings)
    try:
        result, warnings = audit_and_keep(settings, keep_state=False, now=time.time())
    except NothingChecked as error:
        _nothing_checked(error)
        return NOTHING_CHECKED
    for line in suggestion(result, settings.audit_optional):
        print(line)
    sys.stdout.flush()
    _warn(warnings)
    return NO_FINDINGS


def _warn(lines: Iterable[str]) -> None:
    for line in lines:
        print(f"portwarden: warning: {line}", file=sys.stderr)


def _nothing_checked(error: NothingChecked, as_json_output: bool = False) -> None:
    """One line on stderr; with --json also `{"error": ...}` on stdout, as other commands do."""
    why = f"audit: nothing was checked: {error}"
    print(f"portwarden: error: {why}", file=sys.stderr)
    if as_json_output:
        print(json.dumps({"error": why}, indent=2))


def _record(settings: Settings, when: float, body: dict[str, Any]) -> str | None:
    """Keep the audit for `portwarden status`; a warning line when that cannot be done (a
    read-only STATE_DIR, a corrupt database)."""
    path = store_path(settings.state_dir)
    try:
        store = Store(path)
        try:
            store.save_snapshot("audit", when, body)
        finally:
            store.close()
    except StoreError as error:  # names the file itself
        return f"the audit was not recorded for `portwarden status` in {one_line(str(error))}"
    except (OSError, sqlite3.Error) as error:
        reason = one_line(str(error))
        return f"the audit was not recorded for `portwarden status` in {path}: {reason}"
    return None
