"""What the JSON log can tell of a scan: the summary lists the ports probed (capped, and says
when the list is cut), and each further scan type of an episode gets a `scan` event of its own,
as it gets syslog lines."""

import dataclasses
from pathlib import Path

from portwarden import limits
from portwarden.alert.dispatch import Alerts
from portwarden.alert.events import summary_event
from portwarden.config import load_settings
from portwarden.detect.engine import Engine, EngineConfig
from tests.unit.probes import syn_probe

XMAS = "TCP XMAS scan"


def summary_of(ports: list[int]) -> dict:
    engine = Engine(EngineConfig(scan_end_quiet_s=5))
    for n, port in enumerate(ports):
        engine.feed(syn_probe(port), n * 0.01)
    (summary,) = engine.tick(100.0)
    return summary_event(summary, "not blocked", 0.0)


def test_the_summary_lists_the_ports_in_the_order_first_probed() -> None:
    event = summary_of([79, 11, 15, 11, 79])
    assert event["port_list"] == [79, 11, 15] and event["port_list_cut"] is False
    assert event["ports"] == 3 and event["probes"] == 5


def test_the_list_stops_at_the_ports_tracked_and_says_it_was_cut() -> None:
    most = limits.PORTS_TRACKED_MAX
    exactly = summary_of(list(range(1, most + 1)))
    assert exactly["port_list"] == list(range(1, most + 1)) and not exactly["port_list_cut"]
    more = summary_of(list(range(1, most + 2)))
    assert more["port_list"] == list(range(1, most + 1)) and more["port_list_cut"] is True


def test_a_further_scan_type_of_the_episode_is_a_scan_event_too(tmp_path: Path) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nSYSLOG_SOCKET=""\n')
    settings = dataclasses.replace(load_settings(conf), event_log=tmp_path / "events.jsonl")
    engine, alerts = Engine(EngineConfig()), Alerts(settings)
    try:
        packets = [
            syn_probe(11),
            syn_probe(15),
            syn_probe(79, scan=XMAS, flags="FIN+PSH+URG"),
            syn_probe(1, scan=XMAS, flags="FIN"),
        ]
        for n, packet in enumerate(packets):
            for verdict in engine.feed(packet, n * 0.01):
                alerts.verdict(verdict, n * 0.01, "")
    finally:
        alerts.close()
    events = [line for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert len(events) == 2
    assert '"type":"TCP SYN/Normal scan"' in events[0] and '"port":11' in events[0]
    assert f'"type":"{XMAS}"' in events[1] and '"port":79' in events[1]
