"""The state engine: per-source counts in a bounded table, thresholds over time windows.

feed(probe, now) -> verdicts. `now` is a monotonic clock reading passed in by the caller, so
the same engine runs live, on replayed captures and in tests.
"""

import heapq
import ipaddress
import itertools
import math
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Literal, NamedTuple, Protocol, TypeVar

from portwarden import limits
from portwarden.config.hostscan import HostScanRule, ignored
from portwarden.config.ignore import IgnoreList
from portwarden.detect.probe import Probe, os_probe_type
from portwarden.net.addresses import IPAddress, Proto

RAW_MODES = frozenset({"stcp", "atcp", "sudp", "audp"})


def port_key(tcp: bool, port: int) -> int:
    """A port of either protocol as one number: a TCP port as it is, a UDP port as ~port (-1
    for port 0), so that TCP and UDP port 0, both watched in the advanced modes, stay apart."""
    return port if tcp else ~port


def key_port(key: int) -> tuple[Proto, int]:
    """The protocol and port of a port_key."""
    return (Proto.TCP, key) if key >= 0 else (Proto.UDP, ~key)


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
    sources_max: int = limits.SOURCES_MAX  # fixed when the engine is made
    scan_end_quiet_s: float = 30.0  # SCAN_END_QUIET: a scan this quiet is over; summarise it
    # SCAN_REPORT_INTERVAL: a scan (or OS-probe run) going on this long is summarised as
    # ongoing at its next probe, which starts the next part of it
    scan_report_s: float = 300.0
    # OS_PROBE_QUIET: a run of OS probing this quiet is over; summarise it (one summary per
    # nmap -O, which waits about 2 s between its rounds of probes)
    os_probe_quiet_s: float = 10.0
    # IPV6_SOURCE_PREFIX: an IPv6 source is its prefix of this length (128: each address)
    ipv6_prefix: int = 128


# A source's key in the tables: an IPv4 address's 4 packed bytes, an IPv6 address's 16, or,
# for an IPv6 prefix (IPV6_SOURCE_PREFIX below 128), the prefix's 16 bytes (host bits zero)
# and its length: 17 bytes. So the key says what it stands for, and keys made before a reload
# that changed the prefix length never meet those made after it.
_PREFIX_KEY_BYTES = 17


def source_key(address: IPAddress, ipv6_prefix: int) -> bytes:
    """The key of the source that `address` belongs to (see _PREFIX_KEY_BYTES)."""
    packed = address.packed
    if ipv6_prefix >= 128 or len(packed) == 4:
        return packed
    host_bits = 128 - ipv6_prefix
    prefix = int.from_bytes(packed) >> host_bits << host_bits
    return prefix.to_bytes(16) + bytes((ipv6_prefix,))


def key_network(key: bytes) -> ipaddress.IPv6Network | None:
    """The IPv6 prefix a source key stands for; None for a key of one address."""
    if len(key) != _PREFIX_KEY_BYTES:
        return None
    return ipaddress.IPv6Network((key[:16], key[16]))


VerdictKind = Literal["scan", "os-probe", "scan-summary", "os-summary"]


class Verdict(NamedTuple):
    """A decision about one source, made on one probe.

    kind "scan": the source passed the threshold; this probe is part of its scan. `probes`,
    `ports` and `first_seen` count the source's current episode (both protocols).
    kind "os-probe": the source's first OS-fingerprinting probe of tool `probe.os_tool`;
    `patterns` the flag patterns of its OS probing so far.
    kind "scan-summary": one scan of one protocol is over (quiet for scan_end_quiet_s): `probe`
    is its last probe, `first_probe` its first, `types` every scan type seen, `patterns` every
    TCP flag combination seen ("SYN", "FIN+PSH+URG"; none for UDP and connections); `probes`,
    `ports` and `first_seen` count that scan only. The next probe of that protocol from that
    source starts a new scan, with a summary of its own.
    kind "os-summary": the same for a run of OS probing (quiet for os_probe_quiet_s):
    `probes` OS probes, `patterns` every flag pattern ("udp" for a UDP probe) with nmap's name
    for the probe when known ("SYN/SEQ1"), `types` the tools.
    A summary is `ongoing` when its scan (or run) is not over: a probe came scan_report_s or
    more after its first one. It covers the probes before that one, which starts the next part
    of the same scan, counted afresh: the next summary (ongoing or not) covers that part only.
    `modes`: the sensor modes of a summary's probes ("stcp", "sudp"), as first seen.
    `port_list`: a scan summary's distinct ports in the order first probed, at most
    limits.PORTS_TRACKED_MAX; `ports_cut`: more were probed than it lists.
    `new_type`: a "scan" verdict whose probe is the first of its scan type in the source's
    episode (an XMAS scan after a SYN scan; nmap -O's probes, typed by their tool).
    `first` is True for the first verdict of its kind in the source's current episode: act
    on that one; the later ones only report. Summaries are always first. A source that is an
    IPv6 prefix (`prefix`, IPV6_SOURCE_PREFIX below 128) is blocked address by address: its
    first "scan" verdict from each of its addresses is first (see Engine._first).
    `prefix`: the IPv6 prefix the source is (None: the source is the probe's address alone);
    the counts are the prefix's, `probe.src` the probe's real address. `addresses`: a
    summary's distinct addresses (at most limits.ADDRESSES_TRACKED_MAX), 1 unless `prefix`.
    """

    kind: VerdictKind
    probe: Probe
    first: bool
    probes: int
    ports: int  # distinct ports (at most limits.PORTS_TRACKED_MAX)
    first_seen: float  # monotonic
    patterns: tuple[str, ...] = ()  # OS probes, scan summaries: flag patterns seen
    first_probe: Probe | None = None  # summaries: the first probe
    types: tuple[str, ...] = ()  # summaries: scan types (scan) or tools (OS) seen
    ongoing: bool = False  # summaries: the scan goes on (see above)
    modes: tuple[str, ...] = ()  # summaries: the modes of its probes
    port_list: tuple[int, ...] = ()  # scan summaries: the ports, as first probed
    ports_cut: bool = False  # scan summaries: more ports than port_list holds
    new_type: bool = False  # scans: the first probe of its type in the episode
    prefix: ipaddress.IPv6Network | None = None  # the source, when it is an IPv6 prefix
    addresses: int = 1  # summaries: distinct addresses of `prefix`


class SourceView(NamedTuple):
    """What `status` shows of one tracked source. Times are monotonic."""

    address: IPAddress | ipaddress.IPv6Network  # a network: IPV6_SOURCE_PREFIX
    first_seen: float
    last_seen: float
    probes: int
    ports: int
    types: tuple[str, ...]  # scan types, then each other OS-probing tool's (see _types)


class _Run:
    """What a summary reports: one scan of one protocol from one source, or one run of OS
    probing, from its first probe until it has been quiet long enough to be summarised."""

    __slots__ = (
        "first_seen",
        "last_seen",
        "first_probe",
        "last_probe",
        "probes",
        "ports",
        "ports_cut",
        "kinds",
        "tools",
        "flags",
        "modes",
        "addresses",
    )

    def __init__(self, probe: Probe, now: float, by_prefix: bool) -> None:
        """`by_prefix`: the source is an IPv6 prefix, whose addresses the run counts."""
        # hash() of each distinct address's packed bytes, at most limits.ADDRESSES_TRACKED_MAX
        self.addresses: array | None = array("q") if by_prefix else None
        self.begin(probe, now)

    def begin(self, probe: Probe, now: float) -> None:
        """Count afresh from `probe` on (a new run, or the next part of one: see Verdict)."""
        self.first_seen = now
        self.last_seen = now
        self.first_probe = probe
        self.last_probe = probe
        self.probes = 0
        self.ports = array("H")  # as first probed
        self.ports_cut = False  # a port not in `ports` was probed: it was full
        self.kinds: tuple[str, ...] = ()  # scan types, or OS flag patterns
        self.tools: tuple[str, ...] = ()  # OS-probing tools
        self.flags: tuple[str, ...] = ()  # TCP flag combinations (a scan's)
        self.modes: tuple[str, ...] = ()  # sensor modes: at most six
        if self.addresses is not None:
            self.addresses = array("q")

    def add(self, probe: Probe, now: float, kind: str) -> None:
        self.last_seen = now
        self.last_probe = probe
        self.probes += 1
        if probe.dport not in self.ports:
            if len(self.ports) < limits.PORTS_TRACKED_MAX:
                self.ports.append(probe.dport)
            else:
                self.ports_cut = True
        if kind not in self.kinds and len(self.kinds) < limits.PATTERNS_TRACKED_MAX:
            self.kinds += (kind,)
        flags = probe.flags
        if flags and flags not in self.flags and len(self.flags) < limits.PATTERNS_TRACKED_MAX:
            self.flags += (flags,)
        if probe.os_tool is not None and probe.os_tool not in self.tools:
            self.tools += (probe.os_tool,)  # two tools at most: nmap, queso
        if probe.mode not in self.modes:
            self.modes += (probe.mode,)
        addresses = self.addresses
        if addresses is not None and len(addresses) < limits.ADDRESSES_TRACKED_MAX:
            address = hash(probe.src.packed)
            if address not in addresses:
                addresses.append(address)


class _Source:
    """Kept small on purpose (arrays and tuples, not sets and deques): there are many of these."""

    __slots__ = (
        "first_seen",
        "last_seen",
        "probes",
        "ports",
        "recent_tcp",
        "recent_udp",
        "run",
        "run_ports",
        "scan_reported",
        "tools_reported",
        "types",
        "tcp_scan",
        "udp_scan",
        "reported",
    )

    def __init__(self, now: float) -> None:
        self.first_seen = now
        self.last_seen = now
        self.probes = 0
        self.ports = array("i")  # port_key: TCP ports as they are, UDP ports below 0
        # SCAN_TRIGGER, per protocol (PortSentry ran one process, with its own count, for each):
        # start and probe count of each slice of the window that had probes, as pairs; at most
        # limits.TRIGGER_SLICES + 2 of them, whatever the trigger.
        self.recent_tcp = array("d")
        self.recent_udp = array("d")
        self.run = 0  # scandetd: ports (or probes) in the current run of short gaps
        self.run_ports: array | None = None  # scandetd: the run's distinct ports (port_key)
        self.scan_reported = False
        self.tools_reported: tuple[str, ...] = ()
        self.types: tuple[str, ...] = ()  # scan types of the episode, for status
        self.tcp_scan: _Run | None = None  # the current scan of each protocol
        self.udp_scan: _Run | None = None
        # An IPv6 prefix's addresses that had their first "scan" verdict (see Engine._first):
        # hash() of their packed bytes, the last limits.ADDRESSES_TRACKED_MAX. None until then.
        self.reported: array | None = None

    def scan(self, tcp: bool) -> _Run | None:
        """The current scan of TCP (or UDP), if the source has one."""
        return self.tcp_scan if tcp else self.udp_scan

    def set_scan(self, tcp: bool, run: _Run | None) -> None:
        if tcp:
            self.tcp_scan = run
        else:
            self.udp_scan = run


class _Timed(Protocol):
    last_seen: float  # monotonic


K = TypeVar("K")
V = TypeVar("V", bound=_Timed)


class _Bounded(Generic[K, V]):
    """At most `capacity` entries, each kept with a weight that only grows (`weight` of the
    value): the ports a run touched, or the probes a source made. When full, an entry makes
    room, in this order: the heavy one (weight two or more) seen least recently if it has
    been quiet for longer than `quiet_s` (it is stale: a source quiet for a whole window
    starts over anyway), else the one of weight one (or none) seen least recently, else the
    lightest of the limits.EVICTION_SAMPLE heavy ones seen least recently. So a flood of
    spoofed one-packet sources cannot push out a real scanner's count or its summary, neither
    can yesterday's sources that made two probes each, and spoofed sources that make two
    probes each push out only those with two. Every call but take() costs O(1). Keys should be
    cheap to hash (bytes, not address objects): there are several lookups per packet."""

    def __init__(
        self, capacity: int, weight: Callable[[V], int], quiet_s: float = math.inf
    ) -> None:
        self._capacity = capacity
        self._weight = weight
        self.quiet_s = quiet_s
        self._light: OrderedDict[K, V] = OrderedDict()  # least recently seen first
        self._heavy: OrderedDict[K, V] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._light) + len(self._heavy)

    def __contains__(self, key: K) -> bool:
        return key in self._heavy or key in self._light

    def get(self, key: K) -> V | None:
        value = self._heavy.get(key)
        return self._light.get(key) if value is None else value

    def items(self) -> Iterator[tuple[K, V]]:
        return itertools.chain(self._heavy.items(), self._light.items())

    def put(self, key: K, value: V, weight: int, now: float) -> None:
        """Add `key`, or mark it seen at `now`. An entry once heavy stays heavy, whatever
        `weight` says now (a run counted afresh for its next part: see Verdict)."""
        heavy = self._heavy
        if key in heavy:
            heavy.move_to_end(key)
        elif weight > 1:
            if self._light.pop(key, None) is None:
                self._make_room(now)
            heavy[key] = value
        elif key in self._light:
            self._light.move_to_end(key)
        else:
            self._make_room(now)
            self._light[key] = value

    def _make_room(self, now: float) -> None:
        """Evict an entry if the table is full (see the class)."""
        heavy = self._heavy
        if len(heavy) + len(self._light) < self._capacity:
            return
        if heavy and now - next(iter(heavy.values())).last_seen > self.quiet_s:
            heavy.popitem(last=False)
        elif self._light:
            self._light.popitem(last=False)
        else:  # the lightest of the sample, the stalest of those; 2 is as light as heavy gets
            sample = itertools.islice(heavy.items(), limits.EVICTION_SAMPLE)
            lightest, value = next(sample)
            least = self._weight(value)
            for key, value in sample:
                if least <= 2:
                    break
                if self._weight(value) < least:
                    lightest, least = key, self._weight(value)
            del heavy[lightest]
        self.evicted += 1

    def discard(self, key: K) -> None:
        self._light.pop(key, None)
        self._heavy.pop(key, None)

    def take(self, due: Callable[[K, V], bool]) -> list[tuple[K, V]]:
        """Remove and return every entry that is `due`."""
        found = [(k, v) for k, v in self.items() if due(k, v)]
        for key, _ in found:
            self.discard(key)
        return found


def _types(source: _Source) -> tuple[str, ...]:
    """The source's scan types, then each OS-probing tool it used as the scan type of its
    probes to tripwires, once: an OS probe to a tripwire has put it in the scan types already."""
    tools = (os_probe_type(tool) for tool in source.tools_reported)
    return source.types + tuple(kind for kind in tools if kind not in source.types)


def _probes(source: _Source) -> int:
    return source.probes


def _ports(run: _Run) -> int:
    return len(run.ports)


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        # Keyed by source_key (bytes: their hash is computed once, an IPv4Address's on every
        # lookup), scans by (TCP?, source_key). Sources weighed by their probes:
        # stale ones, then one-probe sources (a spoofed flood) go first.
        self._sources: _Bounded[bytes, _Source] = _Bounded(
            config.sources_max, _probes, config.window_s
        )
        # Runs waiting for their summary: OS probing per source, scans per source and protocol.
        # At most limits.OS_PROBE_PENDING_MAX each, so spoofed probes cannot grow them. A run
        # waits on its own: a source evicted from the table above keeps its summary. None is
        # stale: tick() summarises a quiet one.
        self._os_waiting: _Bounded[bytes, _Run] = _Bounded(limits.OS_PROBE_PENDING_MAX, _ports)
        self._scan_waiting: _Bounded[tuple[bool, bytes], _Run] = _Bounded(
            limits.OS_PROBE_PENDING_MAX, _ports
        )
        # Summaries made, waiting for their loop turn (at most limits.SUMMARIES_PER_TICK_MAX
        # go out per turn): the most ports first, at most limits.SUMMARIES_READY_MAX.
        self._ready: list[Verdict] = []
        self._ready_dropped = 0
        self.probes = 0  # tripwire probes from sources that are not ignored
        # Probes per port, by port_key: at most 2 x 65,536 keys.
        self.port_probes: Counter[int] = Counter()

    def reconfigure(self, config: EngineConfig) -> None:
        """New thresholds or ignore lists; per-source state is kept."""
        self.config = config
        self._sources.quiet_s = config.window_s

    def __len__(self) -> int:
        return len(self._sources)

    @property
    def evicted(self) -> int:
        """Sources pushed out of the full table since start."""
        return self._sources.evicted

    def feed(self, probe: Probe, now: float) -> list[Verdict]:
        if self.ignores(probe):
            return []
        source = source_key(probe.src, self.config.ipv6_prefix)
        state = self._state(source, probe.tripwire, now)
        gap = now - state.last_seen
        state.last_seen = now
        if not probe.tripwire:
            return [] if probe.os_tool is None else self._os_verdict(state, source, probe, now)
        state.probes += 1
        self.probes += 1
        tcp = probe.proto is Proto.TCP
        port = port_key(tcp, probe.dport)
        self.port_probes[port] += 1
        # The scan type summaries list it under: an OS probe's tool, not its flags' name (nmap
        # -O's T7 to a tripwire is a FIN+PSH+URG packet, but nobody ran an XMAS scan).
        kind = probe.scan if probe.os_tool is None else os_probe_type(probe.os_tool)
        new_type = kind not in state.types and len(state.types) < limits.PATTERNS_TRACKED_MAX
        if new_type:
            state.types += (kind,)
        if port not in state.ports and len(state.ports) < limits.PORTS_TRACKED_MAX:
            state.ports.append(port)
        # An OS probe to a tripwire is counted in its os-probe line's `probes`, as itself.
        verdicts = [] if probe.os_tool is None else self._os_verdict(state, source, probe, now)
        key = (tcp, source)
        # A scan still waiting for its summary goes on (after an eviction too).
        scan = state.scan(tcp) or self._scan_waiting.get(key)
        if scan is None:
            scan = _Run(probe, now, len(source) == _PREFIX_KEY_BYTES)
        elif key in self._scan_waiting:
            verdicts += self._interim(
                "scan-summary", scan, source, probe, now, self.config.scan_end_quiet_s
            )
        state.set_scan(tcp, scan)
        scan.add(probe, now, kind)
        if self._scanner(state, now, gap, port, tcp, probe.mode in RAW_MODES):
            verdicts.append(
                Verdict(
                    "scan",
                    probe,
                    self._first(state, source, probe),
                    state.probes,
                    len(state.ports),
                    state.first_seen,
                    new_type=new_type,
                    prefix=key_network(source),
                )
            )
            state.scan_reported = True
            self._scan_waiting.put(key, scan, len(scan.ports), now)
        elif key in self._scan_waiting:
            self._scan_waiting.put(key, scan, len(scan.ports), now)  # seen now
        return verdicts

    def _first(self, state: _Source, source: bytes, probe: Probe) -> bool:
        """Whether a "scan" verdict is the first of the source's episode; for an IPv6 prefix,
        the first for the probe's address, since blocks are made address by address: each of
        its addresses that probes once the prefix is past the trigger is acted on at its first
        probe. Of a prefix, the last limits.ADDRESSES_TRACKED_MAX addresses are remembered, so
        one of its addresses probing again after that many others is first again (blocked
        already, its verdict changes nothing)."""
        if len(source) != _PREFIX_KEY_BYTES:
            return not state.scan_reported
        if state.reported is None:
            state.reported = array("q")
        reported, address = state.reported, hash(probe.src.packed)
        if address in reported:
            return False
        if len(reported) >= limits.ADDRESSES_TRACKED_MAX:
            del reported[0]
        reported.append(address)
        return True

    def top_sources(self, count: int) -> list[SourceView]:
        """The `count` sources with the most probes (OS probing counts as one)."""
        best = heapq.nlargest(
            count,
            self._sources.items(),
            key=lambda item: item[1].probes + len(item[1].tools_reported),
        )
        return [
            SourceView(
                key_network(key) or ipaddress.ip_address(key),
                s.first_seen,
                s.last_seen,
                s.probes,
                len(s.ports),
                _types(s),
            )
            for key, s in best
            if s.probes or s.tools_reported
        ]

    def ignores(self, probe: Probe) -> bool:
        """The probe's source is ignored (IGNORE_FILE, this host, *_SCAN_IGNORE): no verdict."""
        if probe.src in self.config.ignore:
            return True
        rules = self.config.tcp_rules if probe.proto is Proto.TCP else self.config.udp_rules
        return bool(rules) and ignored(rules, probe.src, probe.sport, probe.dst, probe.dport)

    def _state(self, source: bytes, tripwire: bool, now: float) -> _Source:
        """The source whose key is `source`, new if it was not in the table or quiet for a
        whole window (a new episode); marked seen now, weighed with the probe it is making."""
        state = self._sources.get(source)
        if state is not None and now - state.last_seen > self.config.window_s:
            self._sources.discard(source)
            state = None
        if state is None:
            state = _Source(now)
        self._sources.put(source, state, state.probes + tripwire, now)
        return state

    def _scanner(
        self, state: _Source, now: float, gap: float, port: int, tcp: bool, raw: bool
    ) -> bool:
        model = self.config.scandetd if raw else None
        if model is None:
            return self._past_trigger(state.recent_tcp if tcp else state.recent_udp, now)
        if state.probes > 1 and gap > model.interval_s:
            state.run = 0  # a new run: the ports of the one before count again
            state.run_ports = None
        if model.flood:
            state.run += 1
        else:
            if state.run_ports is None:
                state.run_ports = array("i")
            if port not in state.run_ports and len(state.run_ports) < model.count:
                state.run_ports.append(port)
                state.run += 1
        return state.scan_reported or state.run >= model.count

    def _past_trigger(self, recent: array, now: float) -> bool:
        """SCAN_TRIGGER probes within SCAN_TRIGGER_WINDOW? Counted per slice of the window
        (`recent`: start, probes, ...), so memory does not grow with the trigger; a slice counts
        while any part of it is in the window, so a probe at most one slice older may count."""
        if self.config.trigger <= 1:
            return True
        window = self.config.window_s
        width = window / limits.TRIGGER_SLICES
        gone = 0
        while gone < len(recent) and recent[gone] + width <= now - window:
            gone += 2
        del recent[:gone]
        if recent and now - recent[-2] < width:
            recent[-1] += 1
        else:
            recent.extend((now, 1.0))
        return sum(recent[1::2]) >= self.config.trigger

    def tick(self, now: float, stopping: bool = False) -> list[Verdict]:
        """Summaries of OS probing quiet for os_probe_quiet_s, and of scans quiet for
        scan_end_quiet_s (each protocol's scan on its own); `stopping`: of every run still
        open, since they end with the daemon, and every summary still waiting. At most
        limits.SUMMARIES_PER_TICK_MAX per call otherwise, those that touched the most ports
        first; the rest wait for the next calls (a flood of sources that all went quiet at
        once goes out over several loop turns, not as a thousand lines in one). Past
        limits.SUMMARIES_READY_MAX waiting, those that touched the fewest ports are dropped
        (counted: take_summaries_dropped)."""
        os_quiet, scan_quiet = self.config.os_probe_quiet_s, self.config.scan_end_quiet_s
        if stopping:
            os_quiet = scan_quiet = 0.0
        due: list[tuple[VerdictKind, bytes, _Run]] = [
            ("os-summary", source, run)
            for source, run in self._os_waiting.take(lambda _, run: now - run.last_seen >= os_quiet)
        ]
        for (tcp, source), run in self._scan_waiting.take(
            lambda _, run: now - run.last_seen >= scan_quiet
        ):
            due.append(("scan-summary", source, run))
            state = self._sources.get(source)
            if state is not None and state.scan(tcp) is run:
                state.set_scan(tcp, None)  # its next probe starts a new scan
        ready = self._ready
        if due:
            ready += [self._summary(kind, source, run) for kind, source, run in due]
            ready.sort(key=lambda summary: summary.ports, reverse=True)  # stable: oldest first
            over = len(ready) - limits.SUMMARIES_READY_MAX
            if over > 0:
                self._ready_dropped += over
                del ready[-over:]
        count = len(ready) if stopping else limits.SUMMARIES_PER_TICK_MAX
        made, self._ready = ready[:count], ready[count:]
        return made

    @property
    def summaries_waiting(self) -> int:
        """Summaries made that wait for their turn (see tick)."""
        return len(self._ready)

    def take_summaries_dropped(self) -> int:
        """Summaries never made since the last call: pushed out of a full waiting table, or
        out of the full list of summaries waiting for their turn (a flood of sources)."""
        dropped = self._os_waiting.evicted + self._scan_waiting.evicted + self._ready_dropped
        self._os_waiting.evicted = self._scan_waiting.evicted = self._ready_dropped = 0
        return dropped

    def _os_verdict(self, state: _Source, source: bytes, probe: Probe, now: float) -> list[Verdict]:
        pattern = probe.os_pattern
        run = self._os_waiting.get(source)
        verdicts: list[Verdict] = []
        if run is None:
            run = _Run(probe, now, len(source) == _PREFIX_KEY_BYTES)
        else:
            verdicts = self._interim(
                "os-summary", run, source, probe, now, self.config.os_probe_quiet_s
            )
        run.add(probe, now, pattern)
        self._os_waiting.put(source, run, len(run.ports), now)
        tool = probe.os_tool or ""
        if tool in state.tools_reported:
            return verdicts
        state.tools_reported += (tool,)
        return [
            *verdicts,
            Verdict(
                "os-probe",
                probe,
                True,
                state.probes,
                len(state.ports),
                state.first_seen,
                run.kinds,
                prefix=key_network(source),
            ),
        ]

    def _interim(
        self,
        kind: VerdictKind,
        run: _Run,
        source: bytes,
        probe: Probe,
        now: float,
        quiet_s: float,
    ) -> list[Verdict]:
        """The ongoing summary of `run` if `probe` comes scan_report_s or more after its first
        one (a slow scan, one probe every 29 s, is never quiet for SCAN_END_QUIET); `run` then
        starts its next part. Else nothing: also for a run already quiet for `quiet_s`, which
        is over, not ongoing (tick() has not summarised it yet)."""
        if now - run.first_seen < self.config.scan_report_s or now - run.last_seen >= quiet_s:
            return []
        summary = self._summary(kind, source, run, ongoing=True)
        run.begin(probe, now)
        return [summary]

    @staticmethod
    def _summary(kind: VerdictKind, source: bytes, run: _Run, ongoing: bool = False) -> Verdict:
        if kind == "os-summary":
            patterns, types = run.kinds, run.tools
        else:
            patterns, types = run.flags, run.kinds
        addresses = 1 if run.addresses is None else len(run.addresses)
        return Verdict(
            kind,
            run.last_probe,
            True,
            run.probes,
            len(run.ports),
            run.first_seen,
            patterns,
            run.first_probe,
            types,
            ongoing,
            run.modes,
            tuple(run.ports),
            run.ports_cut,
            prefix=key_network(source),
            addresses=addresses,
        )
