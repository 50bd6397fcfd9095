"""The engine as scenarios: probes in, verdicts expected after each, time passed in."""

import functools
import ipaddress
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden import limits
from portwarden.config.hostscan import parse_rules
from portwarden.config.ignore import IgnoreList
from portwarden.detect.engine import Engine, EngineConfig, ScandetdModel, Verdict
from portwarden.detect.probe import Probe, packet_probe, part_of_a_connection
from portwarden.net.addresses import Proto
from portwarden.net.packet import IPPROTO_TCP, IPPROTO_UDP, Packet

TARGET = ipaddress.ip_address("198.18.0.1")
TARGET6 = ipaddress.ip_address("2001:db8::1")

OS_QUIET = EngineConfig().os_probe_quiet_s  # OS_PROBE_QUIET by default


def probe(
    src: str = "198.18.0.11",
    port: int = 11,
    mode: str = "stcp",
    proto: Proto = Proto.TCP,
    os_tool: str | None = None,
    tripwire: bool = True,
    flags: str = "SYN",
    sport: int = 40000,
    seen_at: float = 0.0,
) -> Probe:
    scan = "TCP SYN/Normal scan" if proto is Proto.TCP else "UDP scan"
    return Probe(
        ipaddress.ip_address(src),
        TARGET,
        proto,
        sport,
        port,
        mode,
        scan,
        flags if proto is Proto.TCP else "",
        os_tool,
        tripwire=tripwire,
        seen_at=seen_at,
    )


def kinds(engine: Engine, p: Probe, now: float) -> list[tuple[str, bool]]:
    return [(v.kind, v.first) for v in engine.feed(p, now)]


def test_trigger_zero_reacts_on_the_first_probe_and_marks_only_it_first() -> None:
    engine = Engine(EngineConfig(trigger=0))
    assert kinds(engine, probe(port=1), 0.0) == [("scan", True)]
    assert kinds(engine, probe(port=2), 1.0) == [("scan", False)]


def test_trigger_n_counts_per_source_within_the_window() -> None:
    engine = Engine(EngineConfig(trigger=3, window_s=60))
    assert kinds(engine, probe(port=1), 0) == []
    assert kinds(engine, probe(port=2), 10) == []
    # Another host's probes do not flush or advance this one's count (PortSentry's ring did).
    for i in range(100):
        engine.feed(probe(src=f"198.19.0.{i}", port=5), 11)
    assert kinds(engine, probe(port=3), 20) == [("scan", True)]


def test_trigger_counts_each_protocol_on_its_own_as_portsentrys_two_processes_did() -> None:
    """PortSentry ran -tcp and -udp as two processes, each with its own count: two TCP probes
    and one UDP probe never reached SCAN_TRIGGER=3."""
    engine = Engine(EngineConfig(trigger=3, window_s=60))
    assert kinds(engine, probe(port=1), 0) == []
    assert kinds(engine, probe(port=2), 1) == []
    assert kinds(engine, probe(port=7, mode="sudp", proto=Proto.UDP), 2) == []
    assert kinds(engine, probe(port=3), 3) == [("scan", True)]
    assert kinds(engine, probe(port=8, mode="sudp", proto=Proto.UDP), 4) == []
    assert kinds(engine, probe(port=9, mode="sudp", proto=Proto.UDP), 5) == [("scan", False)]


def test_probes_spread_beyond_the_window_never_trigger() -> None:
    engine = Engine(EngineConfig(trigger=3, window_s=60))
    assert [kinds(engine, probe(port=p), p * 40.0) for p in range(1, 8)] == [[]] * 7


def test_quiet_source_starts_a_new_episode() -> None:
    engine = Engine(EngineConfig(trigger=0, window_s=60))
    assert kinds(engine, probe(), 0) == [("scan", True)]
    assert kinds(engine, probe(), 500) == [("scan", True)]


def test_ignore_list_and_hostscan_rules() -> None:
    config = EngineConfig(
        ignore=IgnoreList.build([ipaddress.ip_network("198.18.0.0/28")]),
        tcp_rules=parse_rules("198.19.0.0/16:1-1024 -> 198.18.0.1/32:1-100"),
    )
    engine = Engine(config)
    assert engine.feed(probe(src="198.18.0.5"), 0) == []
    assert engine.feed(probe(src="198.19.1.1", sport=80, port=11), 0) == []
    assert kinds(engine, probe(src="198.19.1.1", sport=2000, port=11), 0) == [("scan", True)]
    assert kinds(engine, probe(src="198.19.1.2", sport=80, port=200), 0) == [("scan", True)]
    # The rule is for TCP only.
    assert kinds(engine, probe(src="198.19.1.3", sport=80, proto=Proto.UDP), 0) == [("scan", True)]


def test_scandetd_model_distinct_ports_with_short_gaps() -> None:
    engine = Engine(EngineConfig(scandetd=ScandetdModel(count=3, interval_s=2, flood=False)))
    assert kinds(engine, probe(port=1), 0) == []
    assert kinds(engine, probe(port=1), 1) == []  # a repeat does not count without flood
    assert kinds(engine, probe(port=2), 2) == []
    assert kinds(engine, probe(port=4), 10) == []  # gap too long: the run restarts
    assert kinds(engine, probe(port=5), 11) == []
    assert kinds(engine, probe(port=6), 12) == [("scan", True)]


def test_scandetd_flood_counts_repeats_and_applies_to_raw_modes_only() -> None:
    engine = Engine(EngineConfig(scandetd=ScandetdModel(count=3, interval_s=2, flood=True)))
    assert [kinds(engine, probe(port=1), t) for t in (0, 1, 2)] == [[], [], [("scan", True)]]
    # Classic mode keeps PortSentry's trigger (0: first probe).
    assert kinds(engine, probe(src="198.18.0.99", mode="tcp"), 0) == [("scan", True)]


def test_os_probe_first_then_one_summary_with_every_pattern() -> None:
    engine = Engine(EngineConfig())
    assert kinds(engine, probe(os_tool="nmap", tripwire=False, flags="NULL"), 0) == [
        ("os-probe", True)
    ]
    assert engine.feed(probe(os_tool="nmap", tripwire=False, flags="FIN+PSH+URG"), 0.5) == []
    assert engine.tick(1.0) == []
    (summary,) = engine.tick(0.5 + OS_QUIET)
    assert summary.kind == "os-summary" and summary.patterns == ("NULL", "FIN+PSH+URG")
    assert engine.tick(10.0) == []


def summary(v: Verdict) -> tuple:
    """What a summary reports: protocol, probes, distinct ports, first and last port and the
    wall times of the first and the last probe, scan types."""
    assert v.first_probe is not None
    return (
        v.kind,
        v.probe.proto.value,
        v.probes,
        v.ports,
        v.first_probe.dport,
        v.probe.dport,
        v.first_probe.seen_at,
        v.probe.seen_at,
        v.types,
    )


def test_each_scan_is_summarised_on_its_own_and_counting_starts_afresh() -> None:
    """A second scan from the same source after the first one's summary is reported with its
    own probes, ports and start, not with the first one's."""
    engine = Engine(EngineConfig(scan_end_quiet_s=20))
    for t, port in ((0, 1), (1, 2), (2, 3)):
        assert kinds(engine, probe(port=port, seen_at=100 + t), t) == [("scan", t == 0)]
    assert engine.tick(21) == []
    (first,) = engine.tick(22)
    assert summary(first) == ("scan-summary", "tcp", 3, 3, 1, 3, 100, 102, ("TCP SYN/Normal scan",))
    # 21 s later, the same source scans again: still the same episode (no new "first" scan
    # verdict, so blocking is unchanged), but a new summary of its own.
    for t, port in ((23, 3), (24, 4)):
        assert kinds(engine, probe(port=port, seen_at=100 + t), t) == [("scan", False)]
    (second,) = engine.tick(44)
    assert summary(second) == (
        "scan-summary",
        "tcp",
        2,
        2,
        3,
        4,
        123,
        124,
        ("TCP SYN/Normal scan",),
    )
    # The scan verdicts themselves still count the whole episode, as the trigger does.
    (verdict,) = engine.feed(probe(port=9), 50)
    assert (verdict.probes, verdict.ports) == (6, 5)


def test_a_source_scanning_udp_then_tcp_gets_one_summary_per_protocol() -> None:
    engine = Engine(EngineConfig(scan_end_quiet_s=20))
    engine.feed(probe(port=7, proto=Proto.UDP, seen_at=100), 0)
    engine.feed(probe(port=9, proto=Proto.UDP, seen_at=101), 1)
    engine.feed(probe(port=11, seen_at=105), 5)
    engine.feed(probe(port=15, seen_at=106), 6)
    engine.feed(probe(port=79, seen_at=107), 7)
    (udp,) = engine.tick(21)  # the UDP scan is over; the TCP one is not yet
    assert summary(udp) == ("scan-summary", "udp", 2, 2, 7, 9, 100, 101, ("UDP scan",))
    (tcp,) = engine.tick(27)
    assert summary(tcp) == ("scan-summary", "tcp", 3, 3, 11, 79, 105, 107, ("TCP SYN/Normal scan",))
    assert engine.tick(100) == []


def test_each_run_of_os_probing_is_summarised_on_its_own() -> None:
    engine = Engine(EngineConfig())
    os_probe = functools.partial(probe, os_tool="nmap", tripwire=False)
    assert kinds(engine, os_probe(port=80, flags="NULL", seen_at=100), 0) == [("os-probe", True)]
    engine.feed(os_probe(port=81, proto=Proto.UDP, seen_at=100.5), 0.5)
    (first,) = engine.tick(0.5 + OS_QUIET)
    assert (first.kind, first.probes, first.ports, first.patterns, first.types) == (
        "os-summary",
        2,
        2,
        ("NULL", "udp"),
        ("nmap",),
    )
    assert first.first_probe is not None and first.first_probe.seen_at == 100
    later = 1 + OS_QUIET
    engine.feed(os_probe(port=80, flags="FIN+PSH+URG", seen_at=120), later)  # same tool: no verdict
    (second,) = engine.tick(later + OS_QUIET)
    assert (second.probes, second.patterns) == (1, ("FIN+PSH+URG",))


def test_table_is_bounded_and_evicts_the_stalest() -> None:
    engine = Engine(EngineConfig(trigger=2, sources_max=100))
    engine.feed(probe(src="198.18.1.1", port=1), 0)
    for i in range(200):
        engine.feed(probe(src=f"2001:db8::{i:x}"), 1 + i / 1000)
    assert len(engine) == 100 and engine.evicted == 101
    # The first source was evicted: its next probe is a first probe again.
    assert engine.feed(probe(src="198.18.1.1", port=2), 2) == []


def test_a_flood_of_one_packet_sources_cannot_push_a_real_scanner_out() -> None:
    """1,100 spoofed SYNs, a source each, fill the table of scans waiting for their summary;
    then a real scan of three ports: the stalest one-port source makes room for it. All go
    quiet together: the summaries of one tick are capped, the real scan's made first; the
    others go out in the next ticks, none lost but those the full table pushed out."""
    engine = Engine(EngineConfig(scan_end_quiet_s=30))
    for i in range(1_100):
        engine.feed(probe(src=f"198.19.{i // 256}.{i % 256}", port=11), i / 1000)
    for port in (1, 11, 15):
        engine.feed(probe(src="198.18.0.66", port=port), 2.0)
    summaries = engine.tick(40.0)
    assert len(summaries) == limits.SUMMARIES_PER_TICK_MAX
    assert (str(summaries[0].probe.src), summaries[0].ports) == ("198.18.0.66", 3)
    waiting = limits.OS_PROBE_PENDING_MAX
    assert engine.take_summaries_dropped() == 1_100 + 1 - waiting  # evicted from the table
    turns = 1
    while made := engine.tick(40.0 + turns):
        assert len(made) <= limits.SUMMARIES_PER_TICK_MAX
        summaries += made
        turns += 1
    assert len(summaries) == waiting and turns == -(-waiting // limits.SUMMARIES_PER_TICK_MAX)
    assert engine.summaries_waiting == 0
    assert len({s.probe.src for s in summaries}) == waiting
    assert engine.take_summaries_dropped() == 0


def test_summaries_past_the_waiting_bound_are_dropped_and_counted() -> None:
    """Sources that go quiet faster than the ticks send their summaries: at most
    limits.SUMMARIES_READY_MAX wait, those that touched the fewest ports are dropped (and
    counted); a stop sends every one still waiting."""
    engine = Engine(EngineConfig(scan_end_quiet_s=1, sources_max=100_000))
    extra = 50
    count = limits.SUMMARIES_READY_MAX + limits.SUMMARIES_PER_TICK_MAX + extra
    for i in range(count):  # a batch of sources per tick, each gone quiet by the next
        engine.feed(probe(src=str(ipaddress.IPv4Address(0xC6130000 + i))), i // 1000 * 2)
        if i % 1000 == 999:
            engine.tick(i // 1000 * 2 + 1.5)
    for port in (1, 11):
        engine.feed(probe(src="198.18.0.66", port=port), 9.0)
    made = engine.tick(20.0)
    assert (str(made[0].probe.src), made[0].ports) == ("198.18.0.66", 2)
    sent = count // 1000 * limits.SUMMARIES_PER_TICK_MAX  # by the ticks before this one
    dropped = count + 1 - limits.SUMMARIES_READY_MAX - sent
    assert engine.take_summaries_dropped() == dropped > 0
    rest = engine.tick(21.0, stopping=True)
    assert len(rest) == limits.SUMMARIES_READY_MAX - limits.SUMMARIES_PER_TICK_MAX
    assert engine.tick(22.0) == [] and engine.take_summaries_dropped() == 0


def test_a_spoofed_flood_between_probes_cannot_reset_a_scanners_count() -> None:
    """SCAN_TRIGGER 3: a scanner's two probes, then more spoofed one-probe sources than the
    source table holds (hping3 --flood --rand-source), then its third probe: reported, and
    summarised. The flood pushed out its own sources, those with a single probe."""
    engine = Engine(EngineConfig(trigger=3))
    scanner = functools.partial(probe, src="198.18.0.66")
    assert engine.feed(scanner(port=1), 0.0) == engine.feed(scanner(port=11), 0.1) == []
    flood = limits.SOURCES_MAX + 1_000
    for i in range(flood):
        engine.feed(probe(src=str(ipaddress.IPv4Address(0xC6130000 + i))), 0.2 + i / 1e6)
    assert engine.evicted == flood + 1 - limits.SOURCES_MAX
    assert kinds(engine, scanner(port=15), 1.0) == [("scan", True)]
    (summary,) = engine.tick(40.0)
    assert (str(summary.probe.src), summary.probes, summary.ports) == ("198.18.0.66", 3, 3)


def test_sources_quiet_for_a_window_make_room_before_new_ones() -> None:
    """A table filled a day ago by sources that made two probes each (background scanning,
    or spoofed pairs of packets), and one such source active a minute ago. Then a scanner
    (SCAN_TRIGGER 3) with another new source between its probes: the stale sources make room,
    not the scanner (with one-probe sources always first, each new source pushed out the one
    before it, and the scanner was never reported), nor the source still within the window."""
    engine = Engine(EngineConfig(trigger=3, window_s=300, sources_max=100))
    for i in range(99):
        for port in (1, 2):
            engine.feed(probe(src=f"198.19.0.{i}", port=port), i)
    day = 86_400.0
    for port in (1, 2):
        engine.feed(probe(src="198.18.0.70", port=port), day - 60)
    scanner = functools.partial(probe, src="198.18.0.66")
    found = []
    for k in range(3):
        found += kinds(engine, scanner(port=10 + k), day + k)
        found += kinds(engine, probe(src=f"198.18.1.{k}"), day + k + 0.5)
    assert found == [("scan", True)]
    assert engine.evicted == 4 and len(engine) == 100
    tracked = {str(s.address) for s in engine.top_sources(100)}
    assert {"198.18.0.70", "198.18.0.66"} <= tracked
    assert "198.19.0.3" not in tracked and "198.19.0.4" in tracked  # the oldest first


class CountedAddress(ipaddress.IPv4Address):
    hashes = 0

    def __hash__(self) -> int:
        CountedAddress.hashes += 1
        return super().__hash__()


def test_the_tables_never_hash_an_address_object() -> None:
    """An IPv4Address hashes in Python, on every lookup: with the tables keyed on addresses,
    feed() hashed one about 10 times per probe under a flood (a fifth of its time). Keyed on
    the packed bytes, only the ignore list's lookup is left, once per probe."""
    engine = Engine(EngineConfig(sources_max=1_000))  # trigger 0: every probe is a scan
    flood = [
        probe(src="198.19.0.0")._replace(src=CountedAddress(0xC6130000 + i)) for i in range(2_000)
    ]
    CountedAddress.hashes = 0
    for i, spoofed in enumerate(flood):
        engine.feed(spoofed, i / 1000)
    engine.tick(100.0)
    assert engine.evicted == 1_000 and CountedAddress.hashes <= len(flood)


def test_a_scanner_evicted_after_its_scan_keeps_its_summary() -> None:
    """A scan reported and waiting for its summary, then a flood of spoofed sources that make
    three probes each (as many as the scanner), more than the source table holds: the scanner
    is evicted from it, but not its summary. When it comes back, its scan goes on; the summary
    counts every probe."""
    engine = Engine(EngineConfig(sources_max=100, scan_end_quiet_s=30))
    scanner = functools.partial(probe, src="198.18.0.66")
    for port in (1, 11, 15):
        engine.feed(scanner(port=port), 0.0)
    for i in range(200):
        for port in (1, 11, 15):
            engine.feed(probe(src=f"198.19.0.{i}", port=port), 1 + i / 1000)
    assert "198.18.0.66" not in {str(s.address) for s in engine.top_sources(100)}
    assert kinds(engine, scanner(port=79), 2.0) == [("scan", True)]  # a new episode
    summaries = engine.tick(40.0)
    assert len(summaries) == limits.SUMMARIES_PER_TICK_MAX  # the rest: three ports each
    scan = summaries[0]
    assert (str(scan.probe.src), scan.probes, scan.ports, scan.first_probe) == (
        "198.18.0.66",
        4,
        4,
        scanner(port=1),
    )


def test_a_flood_of_spoofed_os_probes_cannot_push_out_a_real_os_scan() -> None:
    engine = Engine(EngineConfig())
    os_probe = functools.partial(probe, os_tool="queso", tripwire=False, flags="FIN+SYN")
    for i in range(1_100):
        engine.feed(os_probe(src=f"198.19.{i // 256}.{i % 256}", port=80), i / 1000)
    nmap = functools.partial(probe, src="198.18.0.67", os_tool="nmap", tripwire=False)
    engine.feed(nmap(port=80, flags="NULL"), 2.0)
    engine.feed(nmap(port=44, flags="FIN+PSH+URG"), 2.1)
    summaries = engine.tick(2.1 + OS_QUIET)
    assert str(summaries[0].probe.src) == "198.18.0.67" and summaries[0].types == ("nmap",)


# The TCP flag patterns a probe may carry (none part of a connection), 17 of them: more than a
# source or a run keeps (limits.PATTERNS_TRACKED_MAX).
ODD_FLAGS = [flags for flags in range(256) if not part_of_a_connection(flags)][:17]


@pytest.mark.parametrize("trigger", [5, 20_000])
def test_memory_per_source_is_bounded_whatever_the_trigger(trigger: int) -> None:
    """The worst case: a full table of IPv6 sources that each touched every tracked port of
    both protocols, spread over the whole window (every SCAN_TRIGGER slice used), with more
    TCP flag patterns (and reserved bits) than are kept, each a scan type of its own, probes
    made from packets as the sensors make them; see limits.SOURCES_MAX. A trigger of 20,000
    used to keep 20,000 times per source (643 KiB); names made per probe kept a string per
    pattern per source (4.6 KiB a source). Then as many again, which evict the first: a source
    evicted with a reported scan leaves that scan (of each protocol) waiting for its summary,
    in a table capped on its own."""
    sources, window = 150, 300.0
    engine = Engine(EngineConfig(trigger=trigger, window_s=window, sources_max=sources))
    each = limits.PORTS_TRACKED_MAX + 10

    def packets(src: bytes, n: int) -> tuple[Packet, Packet]:
        flags = ODD_FLAGS[n % len(ODD_FLAGS)]
        return (
            Packet(src, TARGET6.packed, IPPROTO_TCP, 40000, n + 1, flags, reserved=n % 16),
            Packet(src, TARGET6.packed, IPPROTO_UDP, 40000, n + 1),
        )

    def feed(first: int) -> int:
        """Bytes allocated for `sources` more sources, each an episode of its own."""
        before = tracemalloc.get_traced_memory()[0]
        for i in range(first, first + sources):
            src, start = ipaddress.ip_address(f"2001:db8::{i:x}").packed, i * 2 * window
            for n in range(each):
                now = start + n * window / each
                for packet in packets(src, n):
                    mode = "atcp" if packet.proto == IPPROTO_TCP else "audp"
                    made = packet_probe(
                        packet,
                        ipaddress.ip_address(packet.dst),
                        mode,
                        lambda _, __: True,
                        lambda _, __: False,
                        now,
                    )
                    assert made is not None
                    engine.feed(made, now)
        return tracemalloc.get_traced_memory()[0] - before

    tracemalloc.start()
    per_source = feed(0) / sources
    left_behind = feed(sources)
    tracemalloc.stop()
    assert len(engine) == sources and engine.evicted == sources
    assert per_source < 4.5 * 1024, per_source
    reported = trigger <= 2 * each  # then each evicted source leaves two scans waiting
    per_run = left_behind / sources / 2
    assert per_run < (1.75 if reported else 0.1) * 1024, per_run
    waiting = 2 * limits.OS_PROBE_PENDING_MAX  # OS runs; TCP and UDP scans
    full_mib = (per_source * limits.SOURCES_MAX + per_run * waiting) / 2**20
    print(
        f"trigger {trigger}: {per_source:.0f} bytes per source, {per_run:.0f} per run left "
        f"waiting; full tables ~{full_mib:.0f} MiB"
    )


def test_a_large_trigger_is_still_counted_within_the_window() -> None:
    engine = Engine(EngineConfig(trigger=1_000, window_s=60))
    for n in range(999):
        assert engine.feed(probe(port=n % 100 + 1), n * 0.05) == []
    assert kinds(engine, probe(port=7), 50.0) == [("scan", True)]
    # 1,000 probes spread over twice the window never make it.
    engine = Engine(EngineConfig(trigger=1_000, window_s=60))
    assert all(engine.feed(probe(port=9), n * 0.12) == [] for n in range(1_000))


def test_scandetd_counts_distinct_ports_per_run() -> None:
    """Ports 1 and 2, a pause longer than the interval, then 1, 2, 3 quickly: the pause
    started a new run, in which 1 and 2 are new again."""
    engine = Engine(EngineConfig(scandetd=ScandetdModel(count=3, interval_s=3, flood=False)))
    assert [kinds(engine, probe(port=p), t) for p, t in ((1, 0), (2, 1), (1, 11), (2, 12))] == [
        [],
        [],
        [],
        [],
    ]
    assert kinds(engine, probe(port=3), 13) == [("scan", True)]


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(1, 30), st.floats(0, 5)), max_size=60),
    st.integers(0, 5),
)
def test_a_source_is_marked_first_at_most_once_per_episode(script: list, trigger: int) -> None:
    engine = Engine(EngineConfig(trigger=trigger, window_s=1000, sources_max=8))
    now = 0.0
    firsts: dict[str, int] = {}
    for host, port, step in script:
        now += step
        for verdict in engine.feed(probe(src=f"198.18.0.{host}", port=port), now):
            firsts[str(verdict.probe.src)] = firsts.get(str(verdict.probe.src), 0) + verdict.first
    assert len(engine) <= 8
    # With eviction a source may start over, but never more often than it was evicted.
    assert sum(firsts.values()) <= len(firsts) + engine.evicted


def test_at_stop_every_open_scan_and_os_run_is_summarised() -> None:
    """A scan still going on (or quiet for less than SCAN_END_QUIET) when the daemon stops is
    summarised then, so its summary and mail are not lost with the process."""
    engine = Engine(EngineConfig(scan_end_quiet_s=30))
    engine.feed(probe(port=1), 0.0)
    engine.feed(probe(src="198.18.0.12", port=7, proto=Proto.UDP, mode="sudp"), 0.5)
    engine.feed(probe(src="198.18.0.13", port=80, os_tool="nmap", tripwire=False), 0.6)
    assert engine.tick(1.0) == []
    ended = sorted((v.kind, str(v.probe.src)) for v in engine.tick(1.0, stopping=True))
    assert ended == [
        ("os-summary", "198.18.0.13"),
        ("scan-summary", "198.18.0.11"),
        ("scan-summary", "198.18.0.12"),
    ]
    assert engine.tick(100.0, stopping=True) == []  # each once


def test_a_slow_scan_is_reported_as_ongoing_and_then_its_next_part() -> None:
    """One probe every 29 s is never quiet for SCAN_END_QUIET (30 s): at the first probe
    SCAN_REPORT_INTERVAL or more after its start, the scan so far is summarised as ongoing, and
    that probe starts the next part, which the next summary covers alone."""
    engine = Engine(EngineConfig(scan_end_quiet_s=30, scan_report_s=100))
    for n in range(4):  # 0, 29, 58, 87 s: not quiet, not yet 100 s long
        assert kinds(engine, probe(port=n + 1, seen_at=1000 + 29 * n), 29 * n) == [("scan", n == 0)]
        assert engine.tick(29 * n + 28) == []
    verdicts = engine.feed(probe(port=5, seen_at=1116), 116)
    assert [(v.kind, v.ongoing) for v in verdicts] == [("scan-summary", True), ("scan", False)]
    assert summary(verdicts[0]) == (
        "scan-summary",
        "tcp",
        4,
        4,
        1,
        4,
        1000,
        1087,
        ("TCP SYN/Normal scan",),
    )
    assert verdicts[0].modes == ("stcp",)
    engine.feed(probe(port=6, seen_at=1145), 145)
    assert engine.tick(174) == []
    (final,) = engine.tick(175)
    assert not final.ongoing
    assert summary(final) == (
        "scan-summary",
        "tcp",
        2,
        2,
        5,
        6,
        1116,
        1145,
        ("TCP SYN/Normal scan",),
    )
    assert engine.tick(1000) == []


def test_a_scan_below_the_trigger_gets_no_interim_summary() -> None:
    """Only a scan that will be summarised (past the trigger) is; probes below it are not."""
    engine = Engine(EngineConfig(trigger=3, window_s=1000, scan_report_s=10))
    assert engine.feed(probe(port=1), 0) == []
    assert engine.feed(probe(port=2), 20) == []
    verdicts = engine.feed(probe(port=3), 40)  # past the trigger now: its scan began at 0
    assert [(v.kind, v.ongoing) for v in verdicts] == [("scan", False)]
    (interim, scan) = engine.feed(probe(port=4), 50)
    assert (interim.kind, interim.ongoing, interim.probes, scan.kind) == (
        "scan-summary",
        True,
        3,
        "scan",
    )


def test_a_long_os_probe_run_is_reported_as_ongoing() -> None:
    """OS probing from both protocols: the summary lists the modes of its probes."""
    engine = Engine(EngineConfig(scan_report_s=20))
    os_probe = functools.partial(probe, os_tool="nmap", tripwire=False)
    assert kinds(engine, os_probe(port=80), 0) == [("os-probe", True)]
    engine.feed(os_probe(port=81, proto=Proto.UDP, mode="sudp"), 9)
    assert engine.feed(os_probe(port=82), 18) == []  # 18 s: not yet SCAN_REPORT_INTERVAL
    (interim,) = engine.feed(os_probe(port=83), 24)
    assert (interim.kind, interim.ongoing, interim.probes, interim.modes) == (
        "os-summary",
        True,
        3,
        ("stcp", "sudp"),
    )
    (final,) = engine.tick(24 + OS_QUIET)
    assert (final.ongoing, final.probes, final.modes) == (False, 1, ("stcp",))


def test_spoofed_sources_of_two_probes_each_cannot_reset_a_scanners_count() -> None:
    """SCAN_TRIGGER 4: a scanner's three probes, then 1,000 spoofed sources of two probes each
    (ten times the table), then its fourth probe: reported. The stalest source makes room only
    when it is among the lightest of the limits.EVICTION_SAMPLE stalest; with the stalest
    first, the scanner was the first pushed out. Spoofed sources of three probes each would
    still push it out: the README says so."""
    engine = Engine(EngineConfig(trigger=4, window_s=300, sources_max=100))
    scanner = functools.partial(probe, src="198.18.0.66")
    for k in range(3):
        assert engine.feed(scanner(port=k + 1), k * 0.1) == []
    for i in range(1_000):
        for port in (1, 2):
            engine.feed(
                probe(src=str(ipaddress.IPv4Address(0xC6130000 + i)), port=port), 1 + i / 1e3
            )
    assert engine.evicted == 1_000 + 1 - 100
    assert kinds(engine, scanner(port=9), 2.5) == [("scan", True)]


def test_os_probes_to_tripwires_are_summarised_under_their_tool_not_their_flags() -> None:
    """nmap -O's T7 to a tripwire is a FIN+PSH+URG packet: its own line says `TCP XMAS scan`
    (os=nmap/T7), but the scan summary (syslog, mail, JSON) lists it under the tool: nobody
    ran an XMAS scan. Its os-probe line counts it: probes=1 ports=1, not 0."""
    engine = Engine(EngineConfig(scan_end_quiet_s=30))
    t7 = probe(port=11, os_tool="nmap", flags="FIN+PSH+URG")._replace(
        scan="TCP XMAS scan", os_probe="T7"
    )
    found = engine.feed(t7, 0.0)
    assert [(v.kind, v.probe.scan, v.probes, v.ports) for v in found] == [
        ("os-probe", "TCP XMAS scan", 1, 1),
        ("scan", "TCP XMAS scan", 1, 1),
    ]
    engine.feed(probe(port=15), 0.5)
    summaries = {v.kind: v for v in engine.tick(100.0)}
    assert summaries["scan-summary"].types == (
        "OS fingerprinting probe (nmap)",
        "TCP SYN/Normal scan",
    )
    assert summaries["scan-summary"].patterns == ("FIN+PSH+URG", "SYN")
    (view,) = engine.top_sources(1)
    assert "TCP XMAS scan" not in view.types


def test_status_names_each_os_probing_tool_once_as_reports_do() -> None:
    """`hping3 -S -X -Y` to a service (queso's shape), then nmap -O, whose probes to a closed
    tripwire already put `OS fingerprinting probe (nmap)` in the scan types: `status` lists
    each tool once, under the name every report uses."""
    engine = Engine(EngineConfig())
    engine.feed(probe(port=80, os_tool="queso", tripwire=False, flags="SYN+ECE+CWR"), 0.0)
    engine.feed(probe(port=111), 1.0)
    engine.feed(probe(port=80, os_tool="nmap", tripwire=False)._replace(os_probe="SEQ1"), 2.0)
    engine.feed(
        probe(port=111, os_tool="nmap", flags="FIN+PSH+URG")._replace(
            scan="TCP XMAS scan", os_probe="T7"
        ),
        3.0,
    )
    (view,) = engine.top_sources(1)
    assert view.types == (
        "TCP SYN/Normal scan",
        "OS fingerprinting probe (nmap)",
        "OS fingerprinting probe (queso)",
    )


def test_os_probe_quiet_is_the_engines_not_a_constant() -> None:
    """OS_PROBE_QUIET="2": the run's summary comes 2 s after its last OS probe, not before."""
    engine = Engine(EngineConfig(os_probe_quiet_s=2.0))
    engine.feed(probe(os_tool="nmap", flags="SYN+FIN+PSH+URG"), 0.0)
    assert [v.kind for v in engine.tick(1.9)] == []
    assert [v.kind for v in engine.tick(2.0)] == ["os-summary"]
