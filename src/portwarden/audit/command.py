"""`portwarden audit`: one audit, printed; the exit status tells the result."""

import json
import sys
import time

from portwarden.audit.check import run_audit, state_path
from portwarden.audit.report import as_json, as_lines
from portwarden.audit.state import AuditState
from portwarden.config import Settings

NO_FINDINGS, FINDINGS = 0, 1


def audit(settings: Settings, as_json_output: bool, keep_state: bool) -> int:
    """Audit against the state the last audit (command or daemon) left, then keep the new one."""
    path = state_path(settings)
    previous, warning = AuditState.load(path) if keep_state else (None, None)
    result = run_audit(settings, previous, time.time())
    warnings = [warning] if warning else []
    warnings += result.warnings
    if keep_state:
        try:
            result.state.save(path)
        except OSError as error:
            warnings.append(f"cannot keep the audit state in {path}: {error}")
    if as_json_output:
        print(json.dumps({**as_json(result), "warnings": warnings}, ensure_ascii=True))
    else:
        for line in as_lines(result):
            print(line)
    for line in warnings:
        print(f"portwarden: warning: {line}", file=sys.stderr)
    return FINDINGS if result.findings else NO_FINDINGS
