"""What `portwarden audit` prints: lines for people, one JSON object for programs."""

from typing import Any

from portwarden import limits
from portwarden.audit.check import AuditResult
from portwarden.text import counted, utc_stamp


def as_json(result: AuditResult) -> dict[str, Any]:
    """Stable fields, documented in README ("Port audit")."""
    return {
        "time": utc_stamp(result.time),
        "interfaces": list(result.interfaces),
        "open_ports": [port.fields() for port in result.open_ports],
        "findings": [finding.event() for finding in result.findings],
        "warnings": list(result.warnings),
    }


def summary(result: AuditResult, warnings: list[str]) -> dict[str, Any]:
    """The last audit as `portwarden status` shows it."""
    checked = ", ".join(result.interfaces) or "no address"
    return {
        "time": utc_stamp(result.time),
        "summary": f"{utc_stamp(result.time)}: {counted(len(result.open_ports), 'open port')} "
        f"on {checked}, {counted(len(result.findings), 'finding')}",
        "open_ports": len(result.open_ports),
        "findings": [
            finding.line() for finding in result.findings[: limits.AUDIT_FINDINGS_REPORTED_MAX]
        ],
        "warnings": warnings,
        "error": None,
    }


def unchecked_summary(when: float, reason: str) -> dict[str, Any]:
    """An audit that checked nothing, as `portwarden status` shows it."""
    return {
        "time": utc_stamp(when),
        "summary": f"{utc_stamp(when)}: nothing was checked: {reason}",
        "open_ports": 0,
        "findings": [],
        "warnings": [],
        "error": reason,
    }


def as_lines(result: AuditResult) -> list[str]:
    checked = ", ".join(result.interfaces) or "no address"
    lines = [
        f"# audit of {checked} at {utc_stamp(result.time)}: {len(result.open_ports)} open, "
        f"{counted(len(result.findings), 'finding')}"
    ]
    lines += [f"open {port.line()}" for port in result.open_ports]
    lines += [finding.line() for finding in result.findings]
    return lines
