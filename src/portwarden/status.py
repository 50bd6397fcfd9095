"""`portwarden status`: what the daemon knows, as a JSON-ready dict and as tables for people.

The running daemon builds the dict in its loop (`collect`) and serves it on the control socket;
it also saves it in the store now and then, so `status` has something to show when the daemon is
not running.
"""

import ipaddress
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from portwarden import limits
from portwarden.config import Settings
from portwarden.detect.engine import Engine, key_port
from portwarden.respond.recorded import left, via
from portwarden.sensors.build import Sensor
from portwarden.store.db import UNDO_FAILED, BlockRecord, Store
from portwarden.text import (
    local_stamp,
    one_line,
    port_count,
    port_ranges,
    utc_stamp,
)


def _stamp(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return utc_stamp(epoch)


def blocks_part(store: Store, now: float) -> dict[str, Any]:
    """Active blocks: the exact count and the most recent ones with the time left."""
    return {
        "active": store.active_count(now),
        "latest": [
            _block(r, now) for r in store.latest_active(limits.STATUS_BLOCKS_SHOWN_MAX, now)
        ],
    }


EXPIRED = "expired, removed at next start"  # time up while no daemon ran: still in force
UNBLOCKING = "unblocking"  # its unblock began: in progress, or a kill or a crash stopped it


def blocked_listing(store: Store, now: float) -> list[tuple[BlockRecord, str]]:
    """`portwarden blocked`: every block in force, each with its state: `active`; UNBLOCKING
    for one whose unblock was interrupted (part of it may be undone: the same unblock again, or
    the next start, ends it); EXPIRED for one whose time is up while no daemon ran (its
    nftables element has timed out, but its route and hosts.deny line stay until a start ends
    it); or, for an unblocked block whose undo failed, `left in force: ...` naming what."""
    unblocking = {r.id for r, _ in store.unblocking()}
    listed = [(r, _state(r, now, unblocking)) for r in store.active()]
    # A leftover's `via`: only what its unblock left in force.
    listed += [
        (
            r._replace(actions=tuple(a for a in r.actions if a.status.startswith(UNDO_FAILED))),
            f"left in force: {'; '.join(left(r))}",
        )
        for r in store.leftovers()
    ]
    return listed


def _state(record: BlockRecord, now: float, unblocking: set[int]) -> str:
    if record.id in unblocking:
        return UNBLOCKING
    return EXPIRED if record.until is not None and record.until <= now else "active"


def blocked_json(listed: list[tuple[BlockRecord, str]], now: float) -> list[dict[str, Any]]:
    return [_block(record, now) | {"state": state} for record, state in listed]


def render_blocked(listed: list[tuple[BlockRecord, str]]) -> str:
    rows = [("address", "since", "until", "reason", "count", "via", "state")]
    for r, state in listed:
        until = "forever" if r.until is None else local_stamp(r.until)
        rows.append(
            (
                r.address,
                local_stamp(r.since),
                until,
                f"{r.reason} ({r.proto} {r.port})",
                str(r.offence),
                ",".join(via(r.actions)) or "nothing",
                state,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in rows
    )


def _block(record: BlockRecord, now: float) -> dict[str, Any]:
    return {
        "address": record.address,
        "since": _stamp(record.since),
        "until": _stamp(record.until),
        "left_s": None if record.until is None else max(0, round(record.until - now)),
        "reason": f"{record.reason} ({record.proto} {record.port})",
        "count": record.offence,
        "via": via(record.actions),
    }


def collect(
    *,
    started: float,
    settings: Settings,
    sensors: Sequence[Sensor],
    addresses: Iterable[object],
    engine: Engine,
    counters: dict[str, int],
    alerts: dict[str, dict[str, Any]],
    store: Store,
    blocked: set[str],
    audit: dict[str, Any] | None,
) -> dict[str, Any]:
    """The whole status. `counters` are the daemon's; the rest is read from the parts."""
    now, mono = time.time(), time.monotonic()

    def wall(monotonic: float) -> str | None:
        return _stamp(now - (mono - monotonic))

    top = engine.top_sources(limits.STATUS_TOP_MAX)
    prefixes = [s.address for s in top if isinstance(s.address, ipaddress.IPv6Network)]
    blocked_prefixes = _holding_blocks(prefixes, blocked) if prefixes else set()
    scanners = [
        {
            "address": str(s.address),
            "first_seen": wall(s.first_seen),
            "last_seen": wall(s.last_seen),
            "probes": s.probes,
            "ports": s.ports,
            "types": list(s.types),
            "blocked": str(s.address) in blocked or s.address in blocked_prefixes,
        }
        for s in top
    ]
    ports = []
    for key, count in engine.port_probes.most_common(limits.STATUS_TOP_MAX):
        proto, port = key_port(key)
        ports.append({"proto": proto.value, "port": port, "probes": count})
    return {
        "running": True,
        "answering": True,
        "pid": os.getpid(),
        "started": _stamp(started),
        "uptime_s": round(now - started),
        "config": settings.source,
        "state_dir": str(settings.state_dir),
        "modes": [
            {
                "mode": s.mode,
                "proto": s.proto.value,
                "ports": len(s.watched),
                "port_list": port_ranges(s.watched),
            }
            for s in sensors
        ],
        "addresses": sorted(str(a) for a in addresses),
        "counters": _shown_counters(counters),
        "alerts": alerts,
        "scanners": scanners,
        "ports": ports,
        "blocks": blocks_part(store, now),
        "audit": audit,
        "audit_interval_s": settings.audit_interval,
    }


def _holding_blocks(
    prefixes: list[ipaddress.IPv6Network], blocked: set[str]
) -> set[ipaddress.IPv6Network]:
    """Those of `prefixes` (sources that are IPv6 prefixes: IPV6_SOURCE_PREFIX) holding a
    blocked address: each address is blocked on its own, never the prefix."""
    wanted = {(p.prefixlen, int(p.network_address) >> (128 - p.prefixlen)): p for p in prefixes}
    lengths = {length for length, _ in wanted}
    found = set()
    for text in blocked:
        try:
            address = int(ipaddress.IPv6Address(text))
        except ValueError:  # an IPv4 address
            continue
        for length in lengths:
            prefix = wanted.get((length, address >> (128 - length)))
            if prefix is not None:
                found.add(prefix)
    return found


def _shown_counters(counters: dict[str, int]) -> dict[str, Any]:
    """The counters for people and scripts: the start time is shown apart, and the last audit
    as a time like the others (None before the first)."""
    shown: dict[str, Any] = {key: value for key, value in counters.items() if key != "start_time"}
    shown["audit_last_run"] = _stamp(counters.get("audit_last_run") or None)
    return shown


def from_store(store: Store) -> dict[str, Any]:
    """The status when the daemon does not answer: the last saved one, with blocks as now."""
    saved = store.snapshot("status")
    status: dict[str, Any] = saved[1] if saved else {}
    status.update(
        running=False,
        answering=False,
        saved=_stamp(saved[0]) if saved else None,
        blocks=blocks_part(store, time.time()),
    )
    audit = store.snapshot("audit")
    if audit is not None:
        status["audit"] = audit[1]
    return status


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _left(seconds: int | None) -> str:
    if seconds is None:
        return "forever"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _alerts_table(alerts: Any) -> list[str]:
    """Delivered and dropped per alert path (a status saved by an older version, in another
    shape, is left out)."""
    try:
        rows = [
            (
                path,
                str(sent),
                str(alerts["dropped"][path]["rate_limit"]),
                str(alerts["dropped"][path]["error"]),
            )
            for path, sent in alerts["sent"].items()
        ]
    except (KeyError, TypeError):
        return []
    header = ("path", "sent", "dropped (rate limit)", "dropped (error)")
    return ["", "Alerts (syslog lines, JSON events, mails)", *_table([header, *rows])]


def render(status: dict[str, Any]) -> str:
    """Tables for people."""
    out: list[str] = []
    saved = status.get("saved")
    if not status.get("running"):
        out.append("portwarden is NOT running" + (f"; last status saved {saved}" if saved else ""))
    elif not status.get("answering", True):
        pid = status.get("pid") or "?"
        out.append(
            f"portwarden: daemon pid {pid} not answering; last saved status"
            + (f" ({saved}):" if saved else ": none yet")
        )
    else:
        out.append(
            f"portwarden is running (pid {status['pid']}) since {status['started']}, "
            f"config {one_line(status['config'], limits.PATH_SHOWN_CHARS_MAX)}"
        )
    for mode in status.get("modes", []):
        out.append(f"  {mode['mode']}: {mode['ports']} {mode['proto']} ports ({mode['port_list']})")
    if status.get("addresses"):
        out.append(f"  addresses: {', '.join(status['addresses'])}")
    counters = status.get("counters")
    if counters:
        out += ["", "Counters"]
        out += _table(
            [(key, "never" if value is None else str(value)) for key, value in counters.items()]
        )
    out += _alerts_table(status.get("alerts"))
    scanners = status.get("scanners")
    if scanners:
        out += ["", "Top scanners"]
        rows: list[tuple[str, ...]] = [
            ("address", "first seen", "last seen", "probes", "ports", "types", "blocked")
        ]
        rows += [
            (
                s["address"],
                s["first_seen"],
                s["last_seen"],
                str(s["probes"]),
                port_count(s["ports"]),
                ", ".join(s["types"]),
                "yes" if s["blocked"] else "no",
            )
            for s in scanners
        ]
        out += _table(rows)
    ports = status.get("ports")
    if ports:
        out += ["", "Top probed ports"]
        rows = [("port", "probes")]
        rows += [(f"{p['port']}/{p['proto']}", str(p["probes"])) for p in ports]
        out += _table(rows)
    blocks = status["blocks"]
    out += ["", f"Active blocks: {blocks['active']}"]
    if blocks["latest"]:
        rows = [("address", "since", "time left", "reason", "count")]
        rows += [
            (b["address"], b["since"], _left(b["left_s"]), b["reason"], str(b["count"]))
            for b in blocks["latest"]
        ]
        out += _table(rows)
    audit = status.get("audit")
    if audit:
        last = audit["summary"]
    elif status.get("audit_interval_s") == 0:
        last = "none (the periodic audit is off: AUDIT_INTERVAL=0)"
    else:
        last = "none yet"
    out += ["", f"Last audit: {last}"]
    if audit:
        out += [f"  {line}" for line in audit["findings"] + audit["warnings"]]
    return "\n".join(out) + "\n"
