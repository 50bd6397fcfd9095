"""IPV6_SOURCE_PREFIX: an IPv6 scanner that takes a new address of its /64 for every probe is
one source, counted, summarised and shown as its prefix; each of its addresses is still
reported and blocked on its own."""

import ipaddress
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.alert.events import probe_event, summary_event
from portwarden.alert.line import verdict_line
from portwarden.alert.mail_text import body
from portwarden.alert.portsentry import attack_line, summary_line
from portwarden.config import load_settings
from portwarden.config.settings import to_conf_lines
from portwarden.detect.config import engine_config
from portwarden.detect.engine import Engine, EngineConfig, ScandetdModel, Verdict, source_key
from portwarden.net.addresses import Proto
from portwarden.status import _holding_blocks
from tests.unit.config_error import load_error
from tests.unit.test_engine import probe

PREFIX = ipaddress.ip_network("2001:db8:1:2::/64")


def feed(engine: Engine, sources: list[str], start: float = 0.0) -> list[Verdict]:
    """One probe from each source in turn, to ports 1, 2, ..., a second apart."""
    verdicts = []
    for n, src in enumerate(sources):
        verdicts += engine.feed(probe(src=src, port=n + 1, seen_at=start + n), start + n)
    return verdicts


def scans(verdicts: list[Verdict]) -> list[tuple[str, bool]]:
    return [(str(v.probe.src), v.first) for v in verdicts if v.kind == "scan"]


ONE_64 = ["2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:2:ffff::c"]
THREE_64S = ["2001:db8:1:2::a", "2001:db8:1:3::a", "2001:db8:1:4::a"]


def test_three_addresses_of_one_64_reach_a_trigger_of_three() -> None:
    engine = Engine(EngineConfig(trigger=3, ipv6_prefix=64))
    verdicts = feed(engine, ONE_64)
    assert scans(verdicts) == [("2001:db8:1:2:ffff::c", True)]  # the real address
    (verdict,) = verdicts
    assert verdict.prefix == PREFIX and verdict.probes == 3 and verdict.ports == 3
    assert len(engine) == 1


def test_three_different_64s_stay_three_sources_below_the_trigger() -> None:
    engine = Engine(EngineConfig(trigger=3, ipv6_prefix=64))
    assert feed(engine, THREE_64S) == []
    assert len(engine) == 3


def test_by_default_each_ipv6_address_is_a_source_of_its_own_as_with_portsentry() -> None:
    engine = Engine(EngineConfig(trigger=3))
    assert feed(engine, ONE_64) == []
    assert len(engine) == 3


def test_a_reload_counts_afresh_under_a_new_length_and_takes_up_the_old_counts_again() -> None:
    """64 -> 128: each address counts alone; back to 64 within SCAN_TRIGGER_WINDOW: the /64's
    two probes made before are still counted (README, IPV6_SOURCE_PREFIX)."""
    engine = Engine(EngineConfig(trigger=3, ipv6_prefix=64))
    assert feed(engine, ONE_64[:2]) == []
    engine.reconfigure(EngineConfig(trigger=3, ipv6_prefix=128))
    assert feed(engine, ONE_64[2:], start=2.0) == []  # an address alone: one probe
    engine.reconfigure(EngineConfig(trigger=3, ipv6_prefix=64))
    (verdict,) = feed(engine, ["2001:db8:1:2::d"], start=3.0)
    assert (verdict.kind, verdict.probes, verdict.prefix) == ("scan", 3, PREFIX)


def test_the_scandetd_model_counts_the_prefix_as_one_source() -> None:
    model = ScandetdModel(count=3, interval_s=2, flood=False)
    engine = Engine(EngineConfig(scandetd=model, ipv6_prefix=64))
    assert scans(feed(engine, ONE_64)) == [("2001:db8:1:2:ffff::c", True)]
    engine = Engine(EngineConfig(scandetd=model, ipv6_prefix=64))
    assert feed(engine, THREE_64S) == []
    engine = Engine(EngineConfig(scandetd=model))  # IPV6_SOURCE_PREFIX=128
    assert feed(engine, ONE_64) == []


def test_ipv4_is_counted_by_address_whatever_the_prefix() -> None:
    for model in (None, ScandetdModel(count=3, interval_s=2, flood=False)):
        engine = Engine(EngineConfig(trigger=3, scandetd=model, ipv6_prefix=32))
        assert feed(engine, ["198.18.0.11", "198.18.0.12", "198.18.0.13"]) == []
        verdicts = feed(engine, ["198.18.0.11"] * 3, start=3)
        assert scans(verdicts)[0] == ("198.18.0.11", True) and verdicts[0].prefix is None


def test_each_address_past_the_trigger_is_first_once_so_each_is_blocked() -> None:
    """The policy blocks on every "scan" verdict of an address it has not blocked; `first`
    (JSON `scan` event, the scans counter) comes once per address of the prefix."""
    engine = Engine(EngineConfig(trigger=3, ipv6_prefix=64))
    sources = [*ONE_64, "2001:db8:1:2::d", "2001:db8:1:2::a", "2001:db8:1:2::d", "2001:db8:1:2::e"]
    assert scans(feed(engine, sources)) == [
        ("2001:db8:1:2:ffff::c", True),
        ("2001:db8:1:2::d", True),
        ("2001:db8:1:2::a", True),  # it probed before the trigger: this is its first verdict
        ("2001:db8:1:2::d", False),
        ("2001:db8:1:2::e", True),
    ]


def test_the_prefix_is_summarised_once_per_protocol_naming_its_last_address() -> None:
    engine = Engine(EngineConfig(trigger=3, ipv6_prefix=64, scan_end_quiet_s=5))
    feed(engine, [*ONE_64, "2001:db8:1:2::a"])
    (summary,) = engine.tick(10)
    assert summary.kind == "scan-summary" and summary.probes == 4 and summary.ports == 4
    assert str(summary.probe.src) == "2001:db8:1:2::a" and summary.addresses == 3
    assert summary.prefix == PREFIX
    assert summary_line(summary) == (
        "Possible port scan from 2001:db8:1:2::a to 198.18.0.1 (TCP SYN/Normal scan), "
        "prefix 2001:db8:1:2::/64 (3 addresses)"
    )
    assert " prefix=2001:db8:1:2::/64 addresses=3 " in verdict_line(summary, "blocked")
    event = summary_event(summary, "blocked", 0.0)
    assert event["src"] == "2001:db8:1:2::a" and event["prefix"] == "2001:db8:1:2::/64"
    assert event["addresses"] == 3
    text = body(summary, None, "blocked", "target")
    assert (
        "Source:          2001:db8:1:2::a\nSource prefix:   2001:db8:1:2::/64 (3 addresses)\n"
        in (text)
    )


def test_a_scan_verdict_names_its_real_address_and_its_prefix() -> None:
    engine = Engine(EngineConfig(ipv6_prefix=64))
    (verdict,) = engine.feed(probe(src="2001:db8:1:2::7"), 0)
    assert attack_line(verdict) == (
        "attackalert: TCP SYN/Normal scan from host: 2001:db8:1:2::7/2001:db8:1:2::7 "
        "to TCP port: 11"
    )
    assert "src=2001:db8:1:2::7 " in verdict_line(verdict)
    assert " prefix=2001:db8:1:2::/64 " in verdict_line(verdict)
    event = probe_event(verdict)
    assert event["src"] == "2001:db8:1:2::7" and event["prefix"] == "2001:db8:1:2::/64"


def test_an_address_alone_has_no_prefix_in_any_report() -> None:
    engine = Engine(EngineConfig(scan_end_quiet_s=5))
    (verdict,) = engine.feed(probe(src="2001:db8:1:2::7"), 0)
    (summary,) = engine.tick(10)
    assert "prefix" not in verdict_line(verdict) and "prefix" not in verdict_line(summary)
    assert summary_line(summary).endswith("(TCP SYN/Normal scan)")
    assert probe_event(verdict)["prefix"] is None
    assert summary_event(summary, "", 0.0)["prefix"] is None
    assert summary_event(summary, "", 0.0)["addresses"] == 1
    assert "Source prefix" not in body(summary, None, "", "target")


def test_os_probing_from_several_addresses_is_one_run() -> None:
    engine = Engine(EngineConfig(ipv6_prefix=64))
    first = engine.feed(
        probe(src="2001:db8:1:2::a", flags="NULL", os_tool="nmap", tripwire=False), 0
    )
    again = engine.feed(
        probe(src="2001:db8:1:2::b", flags="ACK", os_tool="nmap", tripwire=False), 1
    )
    assert [v.kind for v in first] == ["os-probe"] and again == []
    (summary,) = engine.tick(1 + EngineConfig().os_probe_quiet_s)
    assert summary.patterns == ("NULL", "ACK") and summary.addresses == 2
    assert summary_line(summary) == (
        "Possible nmap OS probe from 2001:db8:1:2::b, prefix 2001:db8:1:2::/64 (2 addresses)"
    )


def test_status_shows_the_prefix_as_the_source() -> None:
    engine = Engine(EngineConfig(ipv6_prefix=48))
    feed(engine, ["2001:db8:1:2::a", "2001:db8:1:3::a", "198.18.0.11"])
    shown = {str(view.address): view.probes for view in engine.top_sources(10)}
    assert shown == {"2001:db8:1::/48": 2, "198.18.0.11": 1}


def test_a_prefix_key_never_meets_an_address_key() -> None:
    """A /32 prefix's key is not an IPv4 address's, nor a /128's its ::-address's."""
    v6 = ipaddress.ip_address("2001:db8::")
    assert source_key(v6, 32) != source_key(ipaddress.ip_address("32.1.13.184"), 32)
    assert source_key(v6, 64) != source_key(v6, 128) != source_key(v6, 63)


def test_many_addresses_of_a_prefix_are_counted_up_to_the_limit() -> None:
    engine = Engine(EngineConfig(ipv6_prefix=64, scan_end_quiet_s=5))
    feed(engine, [f"2001:db8:1:2::{n:x}" for n in range(1, 201)])
    (summary,) = engine.tick(300)
    assert summary.addresses == 64 and summary.probes == 200
    assert "(64+ addresses)" in summary_line(summary)


@pytest.mark.parametrize("value", ["31", "129", "0", "64x", "-64", "6 4", ""])
def test_a_bad_prefix_is_a_one_line_error_naming_file_line_and_value(
    tmp_path: Path, value: str
) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'SCAN_TRIGGER="3"\nIPV6_SOURCE_PREFIX="{value}"\n')
    error = load_error(conf)
    assert error == (
        f'{conf}:2: IPV6_SOURCE_PREFIX="{value}": must be a whole number from 32 to 128'
    )
    assert "\n" not in error


def test_check_config_prints_the_error(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text('IPV6_SOURCE_PREFIX="200"\n')
    done = subprocess.run(
        [sys.executable, "-m", "portwarden", "check-config", "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert f'{conf}:1: IPV6_SOURCE_PREFIX="200": must be a whole number from 32 to 128' in (
        done.stderr
    )


def test_the_key_reaches_the_engine_and_round_trips(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text('IPV6_SOURCE_PREFIX="56"\n')
    settings = load_settings(conf)
    assert settings.ipv6_source_prefix == 56
    assert engine_config(settings, settings.ignore_list(()), frozenset()).ipv6_prefix == 56
    assert 'IPV6_SOURCE_PREFIX="56"' in to_conf_lines(settings)
    conf.write_text("")
    assert load_settings(conf).ipv6_source_prefix == 128


def test_status_says_blocked_when_an_address_of_the_prefix_is() -> None:
    prefix = ipaddress.IPv6Network("2001:db8:1::/48")
    assert _holding_blocks([prefix], {"198.18.0.1", "2001:db8:1:ff::9"}) == {prefix}
    assert _holding_blocks([prefix], {"2001:db8:2::9"}) == set()


def test_memory_of_a_prefix_source_is_bounded_whatever_its_addresses() -> None:
    """Sources that are /64s, each probe from a new address (every port slot of both protocols
    used): the addresses remembered are capped (limits.ADDRESSES_TRACKED_MAX)."""
    sources, window, each = 150, 300.0, limits.PORTS_TRACKED_MAX + 10
    engine = Engine(EngineConfig(trigger=3, window_s=window, sources_max=sources, ipv6_prefix=64))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(sources):
        for n in range(each):
            for proto in (Proto.TCP, Proto.UDP):
                src = f"2001:db8:{i:x}::{n:x}:{proto is Proto.TCP:d}"
                engine.feed(
                    probe(src=src, port=n + 1, proto=proto), i * 2 * window + n * window / each
                )
    per_source = (tracemalloc.get_traced_memory()[0] - before) / sources
    tracemalloc.stop()
    assert len(engine) == sources
    assert per_source < 5.2 * 1024, per_source
