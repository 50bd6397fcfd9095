"""An interim summary (a scan still going after SCAN_REPORT_INTERVAL) says so in every report:
the syslog line, the log line, the JSON event and the mail; the final one does not."""

from portwarden.alert.events import summary_event
from portwarden.alert.line import verdict_line
from portwarden.alert.mail_text import body, subject, subject_template
from portwarden.alert.portsentry import summary_line
from portwarden.detect.engine import Engine, EngineConfig, Verdict
from tests.unit.probes import syn_probe


def slow_scan() -> tuple[Verdict, Verdict]:
    """A probe every 20 s for 80 s (SCAN_END_QUIET 30, SCAN_REPORT_INTERVAL 60): the interim
    summary, then the final one."""
    engine = Engine(EngineConfig(scan_end_quiet_s=30, scan_report_s=60))
    found = []
    for n in range(5):
        found += [
            v
            for v in engine.feed(syn_probe(n + 1, seen_at=1.7e9 + 20 * n), 20 * n)
            if v.kind == "scan-summary"
        ]
    found += engine.tick(80 + 30)
    interim, final = found
    return interim, final


def test_the_interim_summary_says_the_scan_is_still_going_and_the_final_one_does_not() -> None:
    interim, final = slow_scan()
    assert (interim.probes, final.probes) == (3, 2)  # 0, 20, 40 s; then 60, 80 s
    line = "Possible port scan from 198.18.0.11 to 198.18.0.1 (TCP SYN/Normal scan)"
    assert summary_line(interim) == f"{line}, still going (3 probes so far)"
    assert summary_line(final) == line
    assert " ongoing=yes time=" in verdict_line(interim, "not blocked")
    assert "ongoing" not in verdict_line(final, "not blocked")
    first, second = (summary_event(v, "not blocked", 1.7e9) for v in (interim, final))
    assert (first["ongoing"], first["probes"], first["first_port"], first["last_port"]) == (
        True,
        3,
        1,
        3,
    )
    assert (second["ongoing"], second["probes"], second["first_port"], second["last_port"]) == (
        False,
        2,
        4,
        5,
    )
    assert second["started"] == "2023-11-14T22:14:20Z"  # the next part began with its probe


def test_the_interim_mail_says_so_in_its_subject_and_body() -> None:
    interim, final = slow_scan()
    lines = body(interim, None, "not blocked", "target.example").splitlines()
    assert lines[-1] == (
        "Status:          still going: this report covers the scan so far; "
        "the next covers what comes after"
    )
    assert "Probes:          3" in lines
    assert not any(line.startswith("Status:") for line in body(final, None, "x", "t").splitlines())
    assert subject(subject_template(None, interim), interim) == (
        "portwarden: TCP scan from 198.18.0.11 to 198.18.0.1 (still going)"
    )
    assert subject(subject_template(None, final), final) == (
        "portwarden: TCP scan from 198.18.0.11 to 198.18.0.1"
    )
