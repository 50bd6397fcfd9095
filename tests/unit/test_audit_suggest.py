"""`portwarden audit --suggest`: what is open and in no list, as an AUDIT_OPTIONAL line that
the policy parser takes back and that then names every open port."""

from portwarden.audit.check import AuditResult
from portwarden.audit.findings import Finding, Kind, OpenPort
from portwarden.audit.report import as_lines, summary
from portwarden.audit.state import AuditState
from portwarden.audit.suggest import suggestion
from portwarden.config.audit_policy import Policy, Rule, parse_groups
from portwarden.net.addresses import Proto

A4, A6, LL = "198.18.0.1", "2001:db8::1", "fe80::1"


def _open(address: str, port: int, proto: Proto, rule: Rule, rpc: str = "") -> OpenPort:
    names, programs = ((rpc,), (100005,)) if rpc else (("unknown",), ())
    return OpenPort(address, "eth0", port, proto, names, programs, "prog", 7, "root", rule)


def test_the_suggested_line_keeps_the_configured_groups_and_adds_what_is_unlisted() -> None:
    opened = [
        *(_open(a, 22, Proto.TCP, Rule.REQUIRED) for a in (A4, A6, LL)),  # listed: not again
        *(_open(a, 8080, Proto.TCP, Rule.UNLISTED) for a in (A4, A6, LL)),  # a wildcard socket
        *(_open(a, 20048, Proto.UDP, Rule.UNLISTED, "mountd") for a in (A4, A6, LL)),
        _open(A4, 8081, Proto.TCP, Rule.UNLISTED),  # one address only
        _open(A6, 5301, Proto.UDP, Rule.UNLISTED),
        _open(A6, 8081, Proto.TCP, Rule.UNLISTED),
        _open(A4, 5300, Proto.UDP, Rule.OPTIONAL),
    ]
    result = AuditResult(0.0, (A4, A6, LL), tuple(opened), (), (), AuditState())
    configured = parse_groups("5300/udp")
    comment, line = suggestion(result, configured)
    assert comment.startswith(f"# what is open now on {A4}, {A6}, {LL} (5 items added)")
    assert line == (
        f'AUDIT_OPTIONAL="5300/udp; 8080/tcp,mountd/udp; {A4}:8081/tcp; {A6}:8081/tcp,5301/udp"'
    )
    value = parse_groups(line.split("=", 1)[1].strip('"'))
    policy = Policy(parse_groups("22/tcp"), value, (), ())
    rules = {
        policy.rule(p.interface, p.device, p.port, p.proto, frozenset(p.services[:1]))
        for p in opened
    }
    assert Rule.UNLISTED not in rules


def test_nothing_to_add_gives_the_configured_line_back() -> None:
    result = AuditResult(
        0.0, (A4,), (_open(A4, 22, Proto.TCP, Rule.OPTIONAL),), (), (), AuditState()
    )
    comment, line = suggestion(result, parse_groups("22/tcp"))
    assert "nothing added: every open port is listed" in comment
    assert line == 'AUDIT_OPTIONAL="22/tcp"'


def test_counts_are_in_the_right_number() -> None:
    """One item, one open port, one finding: no plural (`(1 item added)`, `1 finding`)."""
    one = _open(A4, 8081, Proto.TCP, Rule.UNLISTED)
    finding = Finding(Kind.NEW, "crit", A4, 8081, "tcp", "unknown")
    result = AuditResult(0.0, (A4,), (one,), (finding,), (), AuditState())
    assert "(1 item added)" in suggestion(result, ())[0]
    assert as_lines(result)[0].endswith(": 1 open, 1 finding")
    assert summary(result, [])["summary"].endswith(f": 1 open port on {A4}, 1 finding")
    nothing = AuditResult(0.0, (A4,), (), (), (), AuditState())
    assert as_lines(nothing)[0].endswith(": 0 open, 0 findings")
    assert summary(nothing, [])["summary"].endswith(f": 0 open ports on {A4}, 0 findings")
