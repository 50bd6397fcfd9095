"""The state engine: per-source counts in a bounded table, thresholds over time windows.

feed(probe, now) -> verdicts. `now` is a monotonic clock reading passed in by the caller, so
the same engine runs live, on replayed captures and in tests.
"""

import heapq
from array import array
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from portwarden import limits
from portwarden.config.hostscan import HostScanRule, ignored
from portwarden.config.ignore import IgnoreList
from portwarden.detect.probe import IPAddress, Probe, Proto

RAW_MODES = frozenset({"stcp", "atcp", "sudp", "audp"})


@dataclass(frozen=True, slots=True)
class ScandetdModel:
    """A source is a scanner after `count` distinct ports (every probe when `flood`), each no
    more than `interval_s` after the one before."""

    count: int
    interval_s: float
    flood: bool


@dataclass(frozen=True, slots=True)
class EngineConfig:
    trigger: int = 0  # SCAN_TRIGGER: 0 and 1 react on the first probe, N on the Nth
    window_s: float = 300.0  # SCAN_TRIGGER_WINDOW: the N probes must fall within this time
    scandetd: ScandetdModel | None = None  # replaces the trigger in the raw modes when set
    ignore: IgnoreList = field(default_factory=lambda: IgnoreList(()))
    tcp_rules: tuple[HostScanRule, ...] = ()
    udp_rules: tuple[HostScanRule, ...] = ()
    sources_max: int = limits.SOURCES_MAX
    scan_end_quiet_s: float = 30.0  # SCAN_END_QUIET: a scan this quiet is over; summarise it


class Verdict(NamedTuple):
    """A decision about one source, made on one probe.

    kind "scan": the source passed the threshold; this probe is part of its scan.
    kind "os-probe": the source's first OS-fingerprinting probe of tool `probe.os_tool`.
    kind "os-summary": that source's OS probing went quiet; `patterns` has every flag pattern.
    kind "scan-summary": the scan is over (quiet for scan_end_quiet_s); `probe` is its last
    probe, `first_probe` its first, `types` every scan type seen.
    `first` is True for the first verdict of its kind in the source's current episode: act
    on that one; the later ones only report.
    """

    kind: str
    probe: Probe
    first: bool
    probes: int  # probes from this source in the current episode
    ports: int  # distinct ports touched (at most limits.PORTS_TRACKED_MAX)
    first_seen: float  # monotonic time of the episode's first probe
    patterns: tuple[str, ...] = ()  # flag patterns seen, for OS-probe reports
    first_probe: Probe | None = None  # scan-summary: the scan's first probe
    types: tuple[str, ...] = ()  # scan-summary: scan types seen


class SourceView(NamedTuple):
    """What `status` shows of one tracked source. Times are monotonic."""

    address: IPAddress
    first_seen: float
    last_seen: float
    probes: int
    ports: int
    types: tuple[str, ...]  # scan types, then OS-probe tools


class _Source:
    """Kept small on purpose (arrays and tuples, not sets and deques): there are many of these."""

    __slots__ = ("first_seen", "last_seen", "probes", "ports", "recent", "run", "scan_reported",
                 "tools_reported", "patterns", "first_probe", "types")  # fmt: skip

    def __init__(self, now: float) -> None:
        self.first_seen = now
        self.last_seen = now
        self.probes = 0
        self.ports = array("i")  # TCP ports positive, UDP ports negative
        self.recent: list[float] = []  # times of the last `trigger` probes
        self.run = 0  # scandetd: ports (or probes) in the current run of short gaps
        self.scan_reported = False
        self.tools_reported: tuple[str, ...] = ()
        self.patterns: tuple[str, ...] = ()
        self.first_probe: Probe | None = None
        self.types: tuple[str, ...] = ()


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._sources: OrderedDict[IPAddress, _Source] = OrderedDict()
        self._os_pending: dict[IPAddress, tuple[Probe, _Source]] = {}
        self._scan_pending: dict[IPAddress, tuple[Probe, _Source]] = {}
        self.evicted = 0
        self.probes = 0  # tripwire probes from sources that are not ignored
        # Probes per port, TCP ports positive and UDP negative: at most 2 x 65,535 keys.
        self.port_probes: Counter[int] = Counter()

    def reconfigure(self, config: EngineConfig) -> None:
        """New thresholds or ignore lists; per-source state is kept."""
        self.config = config

    def __len__(self) -> int:
        return len(self._sources)

    def feed(self, probe: Probe, now: float) -> list[Verdict]:
        if self._ignored(probe):
            return []
        state = self._state(probe.src, now)
        gap = now - state.last_seen
        state.last_seen = now
        verdicts: list[Verdict] = []
        if probe.os_tool is not None:
            verdicts += self._os_verdict(state, probe)
        if not probe.tripwire:
            return verdicts
        state.probes += 1
        self.probes += 1
        port = probe.dport if probe.proto is Proto.TCP else -probe.dport  # UDP ports negative
        self.port_probes[port] += 1
        if state.first_probe is None:
            state.first_probe = probe
        if probe.scan not in state.types and len(state.types) < limits.PATTERNS_TRACKED_MAX:
            state.types += (probe.scan,)
        new_port = port not in state.ports
        if new_port and len(state.ports) < limits.PORTS_TRACKED_MAX:
            state.ports.append(port)
        if self._scanner(state, now, gap, new_port, probe.mode in RAW_MODES):
            verdicts.append(self._verdict("scan", probe, state, not state.scan_reported))
            state.scan_reported = True
            if (
                len(self._scan_pending) < limits.OS_PROBE_PENDING_MAX
                or probe.src in self._scan_pending
            ):
                self._scan_pending[probe.src] = (probe, state)
        return verdicts

    def top_sources(self, count: int) -> list[SourceView]:
        """The `count` sources with the most probes (OS probing counts as one)."""
        best = heapq.nlargest(
            count,
            self._sources.items(),
            key=lambda item: item[1].probes + len(item[1].tools_reported),
        )
        return [SourceView(address, s.first_seen, s.last_seen, s.probes, len(s.ports),
                           s.types + tuple(f"OS probe ({t})" for t in s.tools_reported))
                for address, s in best if s.probes or s.tools_reported]  # fmt: skip

    def _ignored(self, probe: Probe) -> bool:
        if probe.src in self.config.ignore:
            return True
        rules = self.config.tcp_rules if probe.proto is Proto.TCP else self.config.udp_rules
        return bool(rules) and ignored(rules, probe.src, probe.sport, probe.dst, probe.dport)

    def _state(self, src: IPAddress, now: float) -> _Source:
        state = self._sources.get(src)
        if state is not None and now - state.last_seen > self.config.window_s:
            state = None  # quiet for a whole window: a new episode
        if state is None:
            if len(self._sources) >= self.config.sources_max and src not in self._sources:
                stalest, _ = self._sources.popitem(last=False)
                self._os_pending.pop(stalest, None)  # its summaries go with it
                self._scan_pending.pop(stalest, None)
                self.evicted += 1
            state = _Source(now)
            self._sources[src] = state
        self._sources.move_to_end(src)
        return state

    def _scanner(self, state: _Source, now: float, gap: float, new_port: bool, raw: bool) -> bool:
        model = self.config.scandetd if raw else None
        if model is None:
            state.recent.append(now)
            del state.recent[: -max(1, self.config.trigger)]
            full = len(state.recent) == max(1, self.config.trigger)
            return full and now - state.recent[0] <= self.config.window_s
        if state.probes > 1 and gap > model.interval_s:
            state.run = 0
        if new_port or model.flood:
            state.run += 1
        return state.scan_reported or state.run >= model.count

    def tick(self, now: float) -> list[Verdict]:
        """Summaries of OS probing quiet for limits.OS_PROBE_QUIET_S, and of scans quiet for
        scan_end_quiet_s."""
        verdicts = []
        for kind, pending, quiet in (
            ("os-summary", self._os_pending, limits.OS_PROBE_QUIET_S),
            ("scan-summary", self._scan_pending, self.config.scan_end_quiet_s),
        ):
            done = [src for src, (_, state) in pending.items() if now - state.last_seen >= quiet]
            for src in done:
                probe, state = pending.pop(src)
                verdicts.append(self._verdict(kind, probe, state, True))
        return verdicts

    def _os_verdict(self, state: _Source, probe: Probe) -> list[Verdict]:
        pattern = probe.flags or probe.proto.value
        if pattern not in state.patterns and len(state.patterns) < limits.PATTERNS_TRACKED_MAX:
            state.patterns += (pattern,)
        if len(self._os_pending) < limits.OS_PROBE_PENDING_MAX or probe.src in self._os_pending:
            self._os_pending[probe.src] = (probe, state)
        tool = probe.os_tool or ""
        if tool in state.tools_reported:
            return []
        state.tools_reported += (tool,)
        return [self._verdict("os-probe", probe, state, True)]

    @staticmethod
    def _verdict(kind: str, probe: Probe, state: _Source, first: bool) -> Verdict:
        return Verdict(kind, probe, first, state.probes, len(state.ports), state.first_seen,
                       state.patterns, state.first_probe, state.types)  # fmt: skip
