"""`portwarden audit`: one audit, printed; the exit status tells the result."""

import json
import sys
import time

from portwarden import statedir
from portwarden.audit.check import audit_and_keep
from portwarden.audit.report import as_json, as_lines, summary
from portwarden.config import Settings
from portwarden.store.db import Store, store_path

NO_FINDINGS, FINDINGS = 0, 1


def audit(settings: Settings, as_json_output: bool, keep_state: bool) -> int:
    """Audit against the state the last audit (command or daemon) left, then keep the new one.
    While a daemon runs on this STATE_DIR its state is only read: a changed port is then still
    new to the daemon's next check, which alerts on it."""
    daemon_runs = statedir.in_use(settings.state_dir)
    result, warnings = audit_and_keep(settings, keep_state, time.time(), save=not daemon_runs)
    if keep_state:  # `portwarden status` shows the last audit, whoever made it
        Store(store_path(settings.state_dir)).save_snapshot("audit", result.time,
                                                            summary(result, warnings))  # fmt: skip
    if as_json_output:
        print(json.dumps({**as_json(result), "warnings": warnings}, ensure_ascii=True))
    else:
        for line in as_lines(result):
            print(line)
    for line in warnings:
        print(f"portwarden: warning: {line}", file=sys.stderr)
    return FINDINGS if result.findings else NO_FINDINGS
