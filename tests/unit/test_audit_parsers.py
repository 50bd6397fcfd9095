"""The audit's parsers: policy keys, /etc/services and /etc/rpc, /proc/net tables and the
saved state. Hostile or broken input gives a named error, never a crash."""

import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from portwarden.alert.syslog import SEVERITIES as SYSLOG_SEVERITIES
from portwarden.audit import check
from portwarden.audit.interfaces import (
    Interface,
    ambiguous_addresses,
    audited_interfaces,
    unaudited,
)
from portwarden.audit.names import Names, parse_rpc, parse_services
from portwarden.audit.sockets import Socket, owners, parse_table, proc_sockets
from portwarden.audit.state import AuditState, Seen
from portwarden.config import ConfigError, load_settings
from portwarden.config.audit_policy import (
    Item,
    Policy,
    Rule,
    Where,
    parse_groups,
    parse_skip_groups,
)
from portwarden.config.settings import to_conf_lines
from portwarden.config.values import SEVERITIES
from portwarden.net.addresses import Proto
from portwarden.net.local import IFA_F_TEMPORARY, InterfaceAddress
from tests.unit.config_error import load_error

TCP, UDP = Proto.TCP, Proto.UDP


def test_policy_interface_is_everything_before_the_last_colon() -> None:
    groups = parse_groups(
        "22/tcp; 2001:db8::1:80/tcp,443/tcp ;198.18.0.1: mountd/udp RPC_400111/tcp;eth0:53/udp"
    )
    assert [str(g.where) for g in groups] == ["", "2001:db8::1", "198.18.0.1", "eth0"]
    assert groups[1].items == (Item(TCP, 80, None), Item(TCP, 443, None))
    assert groups[2].items == (Item(UDP, None, "mountd"), Item(TCP, None, "RPC_400111"))
    assert groups[3].where == Where(device="eth0")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("22", "not port/proto"),
        ("22/icmp", "proto is tcp or udp"),
        ("0/tcp", "1-65535"),
        ("70000/tcp", "1-65535"),
        ("not an address:22/tcp", "neither an IP address nor a device"),
        ("198.18.0.1:", "lists no port"),
        ("bad name!/tcp", "not port/proto"),
    ],
)
def test_bad_policy_items_are_named(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_groups(text)


@pytest.mark.parametrize("item", ["80/sctp", "-1/tcp", "name!/tcp", "22", "mountd"])
def test_an_item_of_neither_form_is_said_in_one_wording(item: str) -> None:
    """A bad protocol and a bad name or port were worded two ways."""
    with pytest.raises(ValueError) as raised:
        parse_groups(f"198.18.0.1:{item}")
    assert str(raised.value) == (
        f"'{item}' is not port/proto or an RPC program name/proto (proto is tcp or udp)"
    )


def test_skip_takes_ports_only() -> None:
    assert parse_skip_groups("3306/tcp")[0].items == (Item(TCP, 3306, None),)
    with pytest.raises(ValueError, match="port/proto only"):
        parse_skip_groups("mountd/udp")


def test_ignore_beats_required_beats_optional_and_interfaces_must_match() -> None:
    policy = Policy(
        required=parse_groups("22/tcp; 198.18.0.1:80/tcp"),
        optional=parse_groups("80/tcp, 8080/tcp"),
        ignore=parse_groups("eth1:22/tcp; mountd/udp"),
    )
    assert policy.rule("198.18.0.1", "eth0", 22, TCP, frozenset()) is Rule.REQUIRED
    assert policy.rule("198.18.0.1", "eth1", 22, TCP, frozenset()) is Rule.IGNORE
    assert policy.rule("198.18.0.1", "eth0", 80, TCP, frozenset()) is Rule.REQUIRED
    assert policy.rule("198.18.0.2", "eth0", 80, TCP, frozenset()) is Rule.OPTIONAL
    assert policy.rule("198.18.0.2", "eth0", 81, TCP, frozenset()) is Rule.UNLISTED
    assert policy.rule("198.18.0.2", "eth0", 999, UDP, frozenset({"mountd"})) is Rule.IGNORE
    assert policy.rule("198.18.0.2", "eth0", 999, TCP, frozenset({"mountd"})) is Rule.UNLISTED


@given(st.text())
def test_any_policy_text_parses_or_raises_value_error(text: str) -> None:
    try:
        groups = parse_groups(text)
    except ValueError:
        return
    assert parse_groups("; ".join(str(g) for g in groups)) == groups


def test_policy_keys_load_render_and_load_back(tmp_path: Path) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text(
        'AUDIT_REQUIRED="22/tcp; 2001:db8::1:80/tcp,443/tcp"\nAUDIT_SKIP="3306/tcp"\n'
        'AUDIT_INTERFACES="198.18.0.1, 2001:db8::1"\nAUDIT_DEVICES="eth0"\nAUDIT_UDP="0"\n'
        'AUDIT_INTERVAL="0"\nAUDIT_SEVERITY_NEW="warning"\nAUDIT_MIN_PORT="10"\n'
    )
    first = load_settings(conf)
    assert first.audit_interfaces == (
        ipaddress.ip_address("198.18.0.1"),
        ipaddress.ip_address("2001:db8::1"),
    )
    assert first.audit_interval == 0 and not first.audit_udp and first.audit_min_port == 10
    again_path = tmp_path / "again.conf"
    again_path.write_text("\n".join(to_conf_lines(first)) + "\n")
    again = load_settings(again_path)
    keys = (
        "audit_required",
        "audit_skip",
        "audit_interfaces",
        "audit_devices",
        "audit_udp",
        "audit_interval",
        "audit_severity_new",
        "audit_min_port",
        "audit_max_port",
    )
    for name in keys:
        assert getattr(again, name) == getattr(first, name), name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('AUDIT_REQUIRED="22/tcp,foo"', "AUDIT_REQUIRED=\"22/tcp,foo\": 'foo' is not"),
        ('AUDIT_INTERFACES="eth0"', "'eth0' is not an IP address"),
        ('AUDIT_INTERFACES="::ffff:127.0.0.1"', "write the IPv4 address 127.0.0.1 itself"),
        ('AUDIT_SEVERITY_MISSING="loud"', "unknown severity"),
        ('AUDIT_MIN_PORT="100"\nAUDIT_MAX_PORT="99"', "AUDIT_MIN_PORT is above AUDIT_MAX_PORT"),
        ('AUDIT_SKIP="portmapper/tcp"', "port/proto only"),
        (
            'AUDIT_REQUIRED="22/tcp,portmapper/udp"\nAUDIT_UDP="0"',
            "AUDIT_REQUIRED=\"22/tcp,portmapper/udp\": 'portmapper/udp' is required, but AUDIT_UDP "
            "is 0: UDP is never checked",
        ),
        (
            'AUDIT_REQUIRED="8081/tcp"\nAUDIT_MAX_PORT="1000"',
            "AUDIT_REQUIRED=\"8081/tcp\": '8081/tcp' is required, but AUDIT_MAX_PORT is 1000: "
            "never "
            "checked",
        ),
        (
            'AUDIT_REQUIRED="eth0:80/tcp"\nAUDIT_MIN_PORT="1024"',
            "'80/tcp' is required, but AUDIT_MIN_PORT is 1024: never checked",
        ),
        (
            'AUDIT_REQUIRED="22/tcp, nfs/tcp"\nAUDIT_SKIP="111/tcp 111/udp"',
            "AUDIT_REQUIRED=\"22/tcp, nfs/tcp\": 'nfs/tcp' is required, but AUDIT_SKIP has 111/tcp "
            "and 111/udp: RPC names in AUDIT_REQUIRED need port 111 audited",
        ),
        (
            'AUDIT_REQUIRED="198.18.0.1:mountd/tcp"\nAUDIT_SKIP="111/tcp"\nAUDIT_UDP="0"',
            "'mountd/tcp' is required, but AUDIT_SKIP has 111/tcp and AUDIT_UDP is 0: RPC names in "
            "AUDIT_REQUIRED need port 111 audited",
        ),
    ],
)
def test_bad_audit_keys_give_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(text + "\n")
    shown = load_error(conf)
    assert message in shown and shown.startswith(f"{conf}:1")


@pytest.mark.parametrize("skip", ["111/tcp", "111/udp", "198.18.0.1:111/tcp,111/udp; eth0:111/tcp"])
def test_rpc_requirements_while_the_portmapper_is_still_asked(tmp_path: Path, skip: str) -> None:
    conf = tmp_path / "good.conf"
    conf.write_text(f'AUDIT_REQUIRED="nfs/tcp"\nAUDIT_SKIP="{skip}"\n')
    assert load_settings(conf).audit_skip


def test_a_skipped_portmapper_is_not_known_to_hold_nothing() -> None:
    """The portmapper is not asked where port 111 is skipped: which programs hold which ports
    is unknown (None), not "none" (()), so nothing is reported for lack of a name."""
    rpcbind = [Socket(proto, ipaddress.ip_address("0.0.0.0"), 111, 0, 1) for proto in (TCP, UDP)]
    skips = Policy(skip=parse_skip_groups("111/tcp,111/udp"))
    assert check._registrations(rpcbind, skips) == (None, [], None)
    assert check._registrations([], skips) == ((), [], None)  # no portmapper at all: no programs


def test_services_and_rpc_names() -> None:
    names = Names(
        parse_services("ssh 22/tcp # SSH\nbad line\nhttp\t80/tcp www\nx 99999/tcp\n"),
        parse_rpc("portmapper 100000 portmap sunrpc rpcbind\nmountd 100005 mount\n#x 1\n"),
    )
    assert names.service(22, TCP) == "ssh" and names.service(22, UDP) == "unknown"
    assert names.program(100005) == "mountd" and names.program(400111) == "RPC_400111"
    assert names.program_names(100000) == {
        "portmapper",
        "portmap",
        "sunrpc",
        "rpcbind",
        "RPC_100000",
    }


TABLE = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1
   1: 0100007F:0017 0200007F:9999 01 00000000:00000000 00:00000000 00000000     0        0 2222 1
   2: garbage
"""
TABLE6 = """  sl  local_address                         remote_address  st
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0 33 0 3333
   1: 0000000000000000FFFF00000100A8C0:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0 4444
"""


def test_proc_tables_keep_listening_sockets_and_unmap_ipv4_mapped() -> None:
    [sock] = parse_table(TABLE, TCP)
    assert (str(sock.address), sock.port, sock.inode) == ("127.0.0.1", 22, 1111)
    wildcard, mapped = parse_table(TABLE6, TCP)
    assert wildcard.wildcard and wildcard.port == 8080 and wildcard.uid == 33
    assert str(mapped.address) == "192.168.0.1" and not mapped.wildcard
    assert parse_table(TABLE.replace(" 0A ", " 07 "), UDP)[0].port == 22


# Words shaped like the table's fields, and what int() takes that the kernel never prints: a
# sign (a negative word made struct.pack raise struct.error, past `except ValueError`), `0x`,
# `_`, non-ASCII digits.
_WORDS = st.text("0123456789ABCDEFabcdef-+x_\u0663", min_size=1, max_size=34)
_LINES = st.builds(
    "   0: {}:{} 00000000:0000 {} 00000000:00000000 00:00000000 00000000 {} 0 {} 1".format,
    _WORDS,
    _WORDS,
    st.sampled_from(["07", "0A", "-7"]),
    _WORDS,
    _WORDS,
)


@given(st.one_of(st.text(), st.lists(_LINES).map("\n".join)))
@example("   0: -1000000:0050 00000000:0000 07 0 0 0 0 0 1")
@example("   0: 0100007F:-050 00000000:0000 07 0 0 0 -1 0 -1")
@example("   0: 0x00007F:0050 00000000:0000 07 0 0 0 \u0663 0 1_0")
def test_any_table_text_parses(text: str) -> None:
    """Bad lines are skipped: nothing but sockets comes out, and nothing is raised."""
    for proto in (TCP, UDP):
        for sock in parse_table("header\n" + text, proto):
            assert 0 < sock.port <= 65535 and sock.uid >= 0 and sock.inode >= 0


def test_state_round_trips_and_corrupt_state_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "state" / "audit.json"
    state = AuditState(
        frozenset(
            {
                Seen("198.18.0.1", 22, "tcp", (), unlisted=True),
                Seen("2001:db8::1", 900, "udp", (100005,)),
                Seen("198.18.0.1", 2049, "tcp", (100003, 100227)),
                Seen("198.18.0.1", 23, "tcp", (), unlisted=None),
            }
        ),
        frozenset({"any:22/tcp"}),
    )
    state.save(path)
    assert AuditState.load(path) == (state, None)
    assert AuditState.load(tmp_path / "none.json") == (None, None)
    for junk in (
        "{",
        "[]",
        '{"version": 1, "seen": [[1, 2]], "missing": []}',
        "[" * 100_000,
        '{"version": 2, "seen": [["198.18.0.1", 22, "tcp", null, 1]], "missing": []}',
        '{"version": 2, "seen": [["198.18.0.1", 22, "tcp", null, null]], "missing": []}',
        '{"version": 3, "seen": [["198.18.0.1", 22, "tcp", 100005, true]], "missing": []}',
        '{"version": 3, "seen": [["198.18.0.1", 22, "tcp", ["x"], true]], "missing": []}',
        '{"version": 4, "seen": [], "missing": []}',  # a later version's, after a downgrade
        # The right shape, wrong types or ranges: bool is no number, ports and programs have
        # their ranges, a string is no list (it would be read as its letters).
        '{"version": 3, "seen": [["198.18.50.1", true, "tcp", [], false]], "missing": []}',
        '{"version": 3, "seen": [["198.18.0.1", 0, "tcp", [], false]], "missing": []}',
        '{"version": 3, "seen": [["198.18.0.1", 65536, "tcp", [], false]], "missing": []}',
        '{"version": 3, "seen": [["198.18.0.1", 22.0, "tcp", [], false]], "missing": []}',
        '{"version": 3, "seen": [["198.18.0.1", 111, "tcp", [-1], false]], "missing": []}',
        '{"version": 3, "seen": [["198.18.0.1", 111, "tcp", [4294967296], false]], "missing": []}',
        '{"version": 3, "seen": [["198.18.0.1", 111, "tcp", [true], false]], "missing": []}',
        '{"version": 2, "seen": [["198.18.0.1", 111, "udp", -1, false]], "missing": []}',
        '{"version": true, "seen": [["198.18.0.1", 22, "tcp", null]], "missing": []}',
        '{"version": 3, "seen": [], "missing": "any:22/tcp"}',
        '{"version": 3, "seen": "tcp22", "missing": []}',
        '{"version": 3, "seen": [{"198.18.0.1": 1, "22": 2, "tcp": 3, "x": 4}], "missing": []}',
    ):
        path.write_text(junk)
        loaded, warning = AuditState.load(path)
        assert loaded is None and warning is not None and "\n" not in warning


def test_older_states_are_read() -> None:
    """Version 1 did not say whether a port was unlisted: not known (None), which the
    comparison takes as "as it is now". Versions 1 and 2 kept one program or null."""
    v1 = (
        '{"version": 1, "seen": [["198.18.0.1", 22, "tcp", null], ["a", 9, "udp", 7]], '
        '"missing": []}'
    )
    old = {Seen("198.18.0.1", 22, "tcp", (), unlisted=None), Seen("a", 9, "udp", (7,), None)}
    assert AuditState.from_json(v1) == AuditState(frozenset(old))
    v2 = (
        '{"version": 2, "seen": [["a", 22, "tcp", null, true], ["a", 9, "udp", 7, false]], '
        '"missing": ["k"]}'
    )
    old = {Seen("a", 22, "tcp", (), True), Seen("a", 9, "udp", (7,), False)}
    assert AuditState.from_json(v2) == AuditState(frozenset(old), frozenset({"k"}))


def test_ignore_and_skip_beat_required_so_nothing_is_reported_missing() -> None:
    policy = Policy(
        required=parse_groups("22/tcp,25/tcp,80/tcp; 198.18.0.1:443/tcp"),
        ignore=parse_groups("22/tcp; 198.18.0.1:443/tcp"),
        skip=parse_skip_groups("25/tcp"),
    )
    assert [str(item) for _, item in policy.requirements()] == ["80/tcp"]
    # An ignore on one address does not cancel a requirement for every address.
    policy = Policy(required=parse_groups("22/tcp"), ignore=parse_groups("198.18.0.1:22/tcp"))
    assert [str(item) for _, item in policy.requirements()] == ["22/tcp"]


def test_transient_ipv6_addresses_are_not_audited_unless_named() -> None:
    stable = InterfaceAddress("eth0", 2, ipaddress.ip_address("2001:db8::1"))
    privacy = InterfaceAddress("eth0", 2, ipaddress.ip_address("2001:db8::77"), IFA_F_TEMPORARY)
    chosen, _ = audited_interfaces([], [], [stable, privacy])
    assert [str(i) for i in chosen] == ["2001:db8::1"]
    chosen, _ = audited_interfaces([], ["eth0"], [stable, privacy])
    assert [str(i) for i in chosen] == ["2001:db8::1"]
    chosen, warnings = audited_interfaces([privacy.address], [], [stable, privacy])
    assert [str(i) for i in chosen] == ["2001:db8::77"] and warnings == []


def test_a_secondary_ipv4_address_is_audited() -> None:
    """IFA_F_SECONDARY has the value of IFA_F_TEMPORARY; it means nothing transient for IPv4."""
    secondary = InterfaceAddress("eth0", 2, ipaddress.ip_address("198.18.0.201"), IFA_F_TEMPORARY)
    assert [str(i) for i in audited_interfaces([], [], [secondary])[0]] == ["198.18.0.201"]


@pytest.mark.parametrize(
    "value",
    [
        "2001:db8::1%eth0:22/tcp",
        "198.18.0.1%eth0:22/tcp",
        "fe80::1%:22/tcp",
        "::ffff:198.18.0.1:22/tcp",
    ],
)
def test_policy_addresses_that_could_never_match_are_errors(tmp_path: Path, value: str) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nAUDIT_IGNORE="{value}"\n')
    with pytest.raises(ConfigError, match=rf"{conf}:2: AUDIT_IGNORE="):
        load_settings(conf)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (
            "ssh/tcp",
            "ssh/tcp is no RPC program in /etc/rpc and never matches; for the service, "
            "write 22/tcp",
        ),
        (
            "RPC_abc/tcp",
            "RPC_abc/tcp is no RPC_<number> (a program number, 0 to 4294967295, "
            "without leading zeros) and never matches",
        ),
        ("RPC_0100005/udp", "RPC_0100005/udp is no RPC_<number>"),
        ("RPC_4294967296/udp", "RPC_4294967296/udp is no RPC_<number>"),
    ],
)
def test_a_required_rpc_name_that_never_matches_is_an_error_elsewhere_a_warning(
    tmp_path: Path, item: str, reason: str
) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nAUDIT_REQUIRED="mountd/udp {item} RPC_300999/tcp"\n')
    shown = load_error(conf)
    assert shown.startswith(f"{conf}:2: AUDIT_REQUIRED=")
    assert reason in shown and "\n" not in shown
    conf.write_text(
        f'STATE_DIR="{tmp_path}"\nAUDIT_REQUIRED="mountd/udp RPC_300999/tcp"\n'
        f'AUDIT_OPTIONAL="{item}"\nAUDIT_IGNORE="{item}"\n'
    )
    warnings = [w for w in load_settings(conf).warnings if "AUDIT_" in w]
    assert [w.split(reason)[0] for w in warnings] == [
        f"{conf}:3: AUDIT_OPTIONAL: ",
        f"{conf}:4: AUDIT_IGNORE: ",
    ]


def test_unreadable_socket_tables_mean_nothing_was_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text("  sl  local_address rem_address   st\n")
    with pytest.raises(OSError, match=f"^cannot read {tmp_path}/net/udp: no such file$"):
        proc_sockets(UDP, proc=tmp_path)
    assert proc_sockets(TCP, proc=tmp_path) == []  # tcp6 may be absent: no IPv6

    def unreadable(protos: object, scope: object) -> None:
        raise OSError("cannot read /proc/net/tcp: Permission denied")

    monkeypatch.setattr(check, "open_sockets", unreadable)
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nAUDIT_INTERFACES="127.0.0.1"\n')
    with pytest.raises(check.NothingChecked) as caught:
        check.run_audit(load_settings(conf), None, 0.0, Names())
    assert str(caught.value) == (
        "the socket tables could not be read (cannot read /proc/net/tcp: Permission denied)"
    )


def test_a_required_item_that_is_also_skipped_is_no_contradiction(tmp_path: Path) -> None:
    """AUDIT_SKIP and AUDIT_IGNORE take items out of the requirements first (their precedent):
    what is left must be checkable."""
    conf = tmp_path / "portwarden.conf"
    conf.write_text('AUDIT_REQUIRED="22/tcp,53/udp"\nAUDIT_UDP="0"\nAUDIT_SKIP="53/udp"\n')
    assert load_settings(conf).audit_udp is False


def test_samhains_severity_names_are_syslog_severities(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        'AUDIT_SEVERITY_NEW="warn"\nAUDIT_SEVERITY_MISSING="ALERT"\n'
        'AUDIT_SEVERITY_RESTARTED="debug"\n'
    )
    settings = load_settings(conf)
    found = (
        settings.audit_severity_new,
        settings.audit_severity_missing,
        settings.audit_severity_restarted,
    )
    assert found == ("warning", "alert", "debug")
    assert [SYSLOG_SEVERITIES[name] for name in found] == [4, 1, 7]
    assert set(SEVERITIES) == set(SYSLOG_SEVERITIES)  # every name a finding may carry is sent
    assert 'AUDIT_SEVERITY_NEW="warning"' in to_conf_lines(settings)


def test_a_program_name_is_kept_raw_and_escaped_once_where_it_is_shown(tmp_path: Path) -> None:
    """/proc/<pid>/comm may hold a newline and a backslash: the text shows each escaped once
    (`\\n`, `\\\\`), the JSON holds the name itself."""
    (tmp_path / "4242" / "fd").mkdir(parents=True)
    (tmp_path / "4242" / "fd" / "3").symlink_to("socket:[99]")
    (tmp_path / "4242" / "comm").write_text("pw\nx\\y\n")
    owner = owners({99}, proc=tmp_path)[99]
    assert owner.program == "pw\nx\\y"
    interface = Interface(ipaddress.ip_address("198.18.0.1"), "eth0", 2)
    sock = Socket(TCP, interface.address, 8080, 0, 99)
    opened = check._named(interface, sock, (), owner, Names(), Policy())
    assert " program=pw\\nx\\\\y pid=4242 " in opened.line()
    assert json.loads(json.dumps(opened.fields()))["program"] == "pw\nx\\y"


def test_open_ports_come_by_port_then_protocol() -> None:
    interface = Interface(ipaddress.ip_address("198.18.0.1"), "eth0", 2)
    wildcard = ipaddress.ip_address("0.0.0.0")
    sockets = [
        Socket(proto, wildcard, port, 0, inode, device=0)
        for inode, (proto, port) in enumerate(
            [(UDP, 53), (TCP, 8080), (TCP, 53), (UDP, 22), (TCP, 22)]
        )
    ]
    opened = check._open_on(interface, sockets, Policy())
    assert [(s.port, s.proto.value) for s in opened] == [
        (22, "tcp"),
        (22, "udp"),
        (53, "tcp"),
        (53, "udp"),
        (8080, "tcp"),
    ]


LAB_NOW = (
    InterfaceAddress("lo", 1, ipaddress.ip_address("127.0.0.1")),
    InterfaceAddress("lo", 1, ipaddress.ip_address("::1")),
    InterfaceAddress("eth0", 2, ipaddress.ip_address("198.18.0.1")),
    InterfaceAddress("eth0", 2, ipaddress.ip_address("2001:db8::1")),
)
A4 = ipaddress.ip_address("198.18.0.1")


@pytest.mark.parametrize(
    ("group", "addresses", "devices", "never"),
    [
        ("2001:db8::1:8082/tcp", (A4,), (), True),  # the audit looks at 198.18.0.1 only
        ("127.0.0.1:8086/tcp", (), (), True),  # every address but loopback's
        ("127.0.0.1:8086/tcp", (A4,), ("eth0",), True),
        ("0.0.0.0:8084/tcp", (), (), True),
        (":::8084/tcp", (), (), True),
        ("lo:8086/tcp", (), (), True),
        ("ALL:22/tcp", (), (), True),  # no keyword: a group without interface is for all
        ("any:22/tcp", (A4,), (), True),  # as a ServiceMissing line says it
        ("eth0:22/tcp", (), ("eth1",), True),
        ("eth1:22/tcp", (A4,), (), True),  # 198.18.0.1 is eth0's
        ("198.18.0.1:22/tcp", (), ("eth1",), True),  # eth0's, not of eth1
        ("nosuchdev:22/tcp", (), (), False),  # absent now: may come (a VPN's tun0)
        ("198.18.0.99:22/tcp", (), (), False),
        ("198.18.0.99:22/tcp", (), ("eth0",), False),
        ("eth1:22/tcp", (ipaddress.ip_address("198.18.0.99"),), (), False),
    ],
)
def test_a_group_on_an_interface_the_audit_never_looks_at(
    group: str, addresses: tuple, devices: tuple[str, ...], never: bool
) -> None:
    (parsed,) = parse_groups(group)
    found = unaudited(parsed.where, addresses, devices, LAB_NOW)
    assert found is not None and found.never is never and "\n" not in found.reason


@pytest.mark.parametrize(
    ("group", "addresses", "devices"),
    [
        ("198.18.0.1:22/tcp", (), ()),
        ("eth0:22/tcp", (), ()),
        ("22/tcp", (A4,), ()),
        ("127.0.0.1:22/tcp", (ipaddress.ip_address("127.0.0.1"),), ()),
        ("lo:22/tcp", (), ("lo",)),
        ("::1:22/tcp", (), ("lo", "eth0")),
        ("eth0:22/tcp", (A4,), ()),  # 198.18.0.1 is eth0's
        ("2001:db8::1:22/tcp", (), ("eth0",)),
    ],
)
def test_a_group_on_an_audited_interface_is_fine(
    group: str, addresses: tuple, devices: tuple[str, ...]
) -> None:
    (parsed,) = parse_groups(group)
    assert unaudited(parsed.where, addresses, devices, LAB_NOW) is None


def test_a_requirement_never_checked_is_an_error_one_absent_now_a_warning(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}"\nAUDIT_INTERFACES="198.18.0.1"\n'
        'AUDIT_REQUIRED="22/tcp; 2001:db8::1:8082/tcp"\n'
    )
    shown = load_error(conf)
    assert shown == (
        f"{conf}:3: AUDIT_REQUIRED=\"22/tcp; 2001:db8::1:8082/tcp\": '2001:db8::1:8082/tcp': "
        "2001:db8::1 is not in AUDIT_INTERFACES, nor can it be an address of AUDIT_DEVICES: "
        "never checked"
    )
    conf.write_text(f'STATE_DIR="{tmp_path}"\nAUDIT_REQUIRED="pwnosuchdev0:22/tcp"\n')
    assert (
        f"{conf}:2: AUDIT_REQUIRED: 'pwnosuchdev0:22/tcp': device pwnosuchdev0 is absent or "
        "has no address now; reported missing while it is not checked"
    ) in load_settings(conf).warnings


def test_a_link_local_address_is_named_with_its_device() -> None:
    fe80 = ipaddress.ip_address("fe80::1")
    present = [InterfaceAddress(d, i, fe80, 0) for d, i in (("a", 5), ("b", 6))]
    chosen, _ = audited_interfaces([], ["a", "b"], present)
    assert [str(i) for i in chosen] == ["fe80::1%a", "fe80::1%b"]
    (scoped,) = parse_groups("fe80::1%b:22/tcp")
    bare_group = Where(fe80)
    assert str(scoped.where) == "fe80::1%b" and scoped.where.covers("fe80::1%b", "b")
    assert not scoped.where.covers("fe80::1%a", "a")
    assert bare_group.covers("fe80::1%a", "a") and bare_group.covers("fe80::1%b", "b")
    warnings = ambiguous_addresses(
        [("AUDIT_OPTIONAL", bare_group), ("AUDIT_IGNORE", scoped.where)], chosen
    )
    assert warnings == [
        "AUDIT_OPTIONAL: fe80::1 is on devices a, b: the group applies to it on "
        "each; write fe80::1%a to name one"
    ]
    # An IPv4 address on two devices cannot be named with one (only link-local IPv6 can)
    v4 = ipaddress.ip_address("198.18.0.1")
    twice = [InterfaceAddress(d, i, v4, 24) for d, i in (("a", 5), ("b", 6))]
    on_both, _ = audited_interfaces([], ["a", "b"], twice)
    assert ambiguous_addresses([("AUDIT_OPTIONAL", Where(v4))], on_both) == []
    assert unaudited(scoped.where, (), ("a",), present) is not None
    assert unaudited(scoped.where, (), ("b",), present) is None
    assert unaudited(scoped.where, (), (), present[:1]) == (
        ("fe80::1%b is not an address of this host now", False)
    )


def test_audit_interfaces_refuse_a_scope(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nAUDIT_INTERFACES="fe80::1%eth0"\n')
    with pytest.raises(ConfigError, match="no scope here; AUDIT_DEVICES names the device"):
        load_settings(conf)


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        (
            'AUDIT_UDP="0"\nAUDIT_SKIP="111/tcp"\nAUDIT_OPTIONAL="RPC_395811/udp"',
            ":3: AUDIT_OPTIONAL: 'RPC_395811/udp' never matches: AUDIT_SKIP has 111/tcp and "
            "AUDIT_UDP is 0: RPC names in AUDIT_OPTIONAL need port 111 audited",
        ),
        (
            'AUDIT_UDP="0"\nAUDIT_IGNORE="5353/udp"',
            ":2: AUDIT_IGNORE: '5353/udp' never matches: AUDIT_UDP is 0: UDP is never checked",
        ),
        (
            'AUDIT_MIN_PORT="1024"\nAUDIT_OPTIONAL="eth0:80/tcp"',
            ":2: AUDIT_OPTIONAL: '80/tcp' never matches: AUDIT_MIN_PORT is 1024: never checked",
        ),
    ],
)
def test_an_optional_or_ignored_item_that_never_matches_is_a_warning(
    tmp_path: Path, text: str, warning: str
) -> None:
    """The same item in AUDIT_REQUIRED is an error (above); here it is harmless but dead."""
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f"{text}\n")
    assert [w for w in load_settings(conf).warnings if "never matches" in w] == [f"{conf}{warning}"]
