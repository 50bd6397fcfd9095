"""The JSON event log's objects for detections and unblocks. Each kind always has the same
fields, listed in README's table ("JSON event log"); tests/unit/test_event_schema.py holds the
two together."""

from collections.abc import Iterable
from typing import Any

from portwarden import limits
from portwarden.alert.jsonlog import JsonLog
from portwarden.config import Settings
from portwarden.detect.engine import Verdict
from portwarden.text import utc_stamp


def stamp(epoch: float) -> str:
    return utc_stamp(epoch) if epoch else ""


def probe_event(verdict: Verdict) -> dict[str, Any]:
    """`scan` (a source's first probe past the trigger, and its first probe of each further
    scan type) or `os-probe` (its first probe of an OS-fingerprinting tool): the packet, and
    for a scan the episode's counts so far."""
    p = verdict.probe
    event: dict[str, Any] = {
        "time": stamp(p.seen_at),
        "event": verdict.kind,
        "src": str(p.src),
        "dst": str(p.dst),
        "proto": p.proto.value,
        "port": p.dport,
        "sport": p.sport,
        "mode": p.mode,
        "flags": p.flags,
        "ip_options": p.ip_options,
        "prefix": _prefix(verdict),
    }
    if verdict.kind == "os-probe":
        event.update(os_tool=p.os_tool, patterns=list(verdict.patterns))
    else:
        event.update(type=p.scan, probes=verdict.probes, ports=verdict.ports, os=p.os_match or None)
    return event


def summary_event(verdict: Verdict, action: str, now: float) -> dict[str, Any]:
    """`scan-summary` (one scan of one protocol) or `os-summary` (one run of OS probing);
    `ongoing`: an interim one, of the part so far of a scan that goes on."""
    p, first = verdict.probe, verdict.first_probe or verdict.probe
    event: dict[str, Any] = {
        "time": stamp(now),
        "event": verdict.kind,
        "src": str(p.src),
        "dst": str(p.dst),
        "started": stamp(first.seen_at),
        "last_seen": stamp(p.seen_at),
        "probes": verdict.probes,
        "ongoing": verdict.ongoing,
        "prefix": _prefix(verdict),
        "addresses": verdict.addresses,
    }
    if verdict.kind == "os-summary":
        event.update(tools=list(verdict.types), patterns=list(verdict.patterns))
    else:
        event.update(
            proto=p.proto.value,
            mode=p.mode,
            ports=verdict.ports,
            first_port=first.dport,
            last_port=p.dport,
            port_list=list(verdict.port_list),
            port_list_cut=verdict.ports_cut,
            types=list(verdict.types),
            flags=list(verdict.patterns),
        )
    event["action"] = action
    return event


def _prefix(verdict: Verdict) -> str | None:
    return None if verdict.prefix is None else str(verdict.prefix)


def unblock_event(address: str, by: str, when: float) -> dict[str, Any]:
    return {"time": stamp(when), "event": "unblock", "src": address, "by": by}


def write_unblocks(settings: Settings, ended: Iterable[tuple[str, float]], by: str) -> None:
    """`unblock` events for blocks ended while no daemon runs (it would write them otherwise):
    (address, when) pairs, at most limits.UNBLOCKS_REPORTED_MAX, then their number, as the
    daemon does. Raises OSError."""
    if settings.event_log is None:
        return
    log = JsonLog(settings.event_log, settings.event_log_max_bytes, settings.event_log_keep)
    ended = list(ended)
    try:
        for address, when in ended[: limits.UNBLOCKS_REPORTED_MAX]:
            log.write(unblock_event(address, by, when))
        if len(ended) > limits.UNBLOCKS_REPORTED_MAX:
            log.write(
                unblocks_not_shown_event(len(ended) - limits.UNBLOCKS_REPORTED_MAX, ended[-1][1])
            )
    finally:
        log.close()


def unblocks_not_shown_event(count: int, when: float) -> dict[str, Any]:
    return {"time": stamp(when), "event": "unblock-suppressed", "count": count}
