"""The comparison with the previous audit, as scenarios: one check after another, the findings
expected after each (samhain's ServiceNew, ServiceMissing, ServiceRestarted,
ServicePortSwitch)."""

import ipaddress

from portwarden.audit.compare import Requirement, Severities, compare
from portwarden.audit.findings import Finding, Kind, OpenPort
from portwarden.audit.interfaces import Interface, device_of
from portwarden.audit.state import AuditState
from portwarden.config.audit_policy import Policy, Rule, parse_groups
from portwarden.net.addresses import Proto

SEVERITIES = Severities("crit", "err", "notice", "warning", "err")
MOUNTD = 100005
NFS = 100003
NFS_ACL = 100227
RPC_NAMES = {
    MOUNTD: frozenset({"mountd", "mount", f"RPC_{MOUNTD}"}),
    NFS: frozenset({"nfs", f"RPC_{NFS}"}),
    NFS_ACL: frozenset({"nfs_acl", f"RPC_{NFS_ACL}"}),
}
NAME = {MOUNTD: "mountd", NFS: "nfs", NFS_ACL: "nfs_acl"}
A, B = "198.18.0.1", "2001:db8::1"


def port(
    interface: str,
    number: int,
    proto: Proto = Proto.TCP,
    *programs: int,
    rule: Rule = Rule.UNLISTED,
) -> OpenPort:
    """An open port; `programs` in the order the portmapper lists them (the audit sorts them)."""
    held = tuple(sorted(programs))
    services = tuple(NAME[p] for p in held) or ("svc",)
    return OpenPort(interface, "eth0", number, proto, services, held, "prog", 42, "root", rule)


class Auditor:
    """Runs checks one after another, carrying the state, as the daemon does."""

    def __init__(self, required: str = "", optional: str = "") -> None:
        groups = parse_groups(required)
        self.policy = Policy(required=groups, optional=parse_groups(optional))
        number = {name: p for p, names in RPC_NAMES.items() for name in names}
        self.requirements = [
            Requirement(g, i, i.rpc or "svc", number.get(i.rpc or ""))
            for g in groups
            for i in g.items
        ]
        self.state: AuditState | None = None

    def check(
        self, *ports: OpenPort, rpc_known: bool = True, cut: frozenset[Proto] = frozenset()
    ) -> list[tuple[Kind, str]]:
        ruled = [p._replace(rule=self._rule(p)) for p in ports]
        findings, self.state = compare(
            ruled, RPC_NAMES, self.requirements, self.state, SEVERITIES, rpc_known, cut
        )
        return [(f.kind, f.line().split(" program=")[0]) for f in findings]

    def _rule(self, p: OpenPort) -> Rule:
        if p.rule is Rule.IGNORE:
            return p.rule
        names = frozenset(n for program in p.rpc_programs for n in RPC_NAMES[program])
        return self.policy.rule(p.interface, p.device, p.port, p.proto, names)


def test_new_port_is_reported_once_then_again_after_it_went_away() -> None:
    audit = Auditor()
    assert audit.check(port(A, 8080)) == [(Kind.NEW, "ServiceNew: 198.18.0.1:8080/tcp (maybe_svc)")]
    assert audit.check(port(A, 8080)) == []
    assert audit.check() == []
    assert audit.check(port(A, 8080)) == [(Kind.NEW, "ServiceNew: 198.18.0.1:8080/tcp (maybe_svc)")]


def test_required_port_missing_once_then_restarted() -> None:
    audit = Auditor("22/tcp; 2001:db8::1:80/tcp")
    assert audit.check(port(A, 22), port(B, 80)) == []
    assert audit.check(port(A, 22)) == [
        (Kind.MISSING, "ServiceMissing: 2001:db8::1:80/tcp (maybe_svc)")
    ]
    assert audit.check(port(A, 22)) == []
    assert audit.check(port(A, 22), port(A, 80)) == [
        (Kind.NEW, "ServiceNew: 198.18.0.1:80/tcp (maybe_svc)")  # required on B, not on A
    ]
    assert audit.check(port(A, 22), port(B, 80)) == [
        (Kind.RESTARTED, "ServiceRestarted: 2001:db8::1:80/tcp (maybe_svc)")
    ]


def test_requirement_without_interface_is_met_on_any_interface() -> None:
    audit = Auditor("22/tcp")
    assert audit.check(port(B, 22)) == []
    assert audit.check() == [(Kind.MISSING, "ServiceMissing: any:22/tcp (maybe_svc)")]


def test_required_rpc_service_by_name() -> None:
    audit = Auditor("mountd/udp")
    assert audit.check() == [(Kind.MISSING, "ServiceMissing: any:mountd/udp (mountd)")]
    assert audit.check(port(A, 20048, Proto.UDP, MOUNTD)) == [
        (Kind.RESTARTED, "ServiceRestarted: any:20048/udp (mountd)")
    ]


def test_rpc_service_on_another_port_is_a_port_switch_not_new_and_missing() -> None:
    audit = Auditor()
    assert [k for k, _ in audit.check(port(A, 900, Proto.UDP, MOUNTD))] == [Kind.NEW]
    assert audit.check(port(A, 901, Proto.UDP, MOUNTD)) == [
        (Kind.PORT_SWITCH, "ServicePortSwitch: 198.18.0.1:901/udp (mountd), was 900/udp")
    ]
    assert audit.check(port(A, 901, Proto.UDP, MOUNTD)) == []


def test_ignored_ports_give_nothing_and_are_not_remembered() -> None:
    audit = Auditor()
    assert audit.check(port(A, 7, rule=Rule.IGNORE)) == []
    assert audit.state is not None and not audit.state.seen


def test_first_check_without_state_reports_everything() -> None:
    audit = Auditor("22/tcp")
    assert [k for k, _ in audit.check(port(A, 1234))] == [Kind.NEW, Kind.MISSING]


def test_finding_line_and_event_are_one_line_with_stable_fields() -> None:
    finding = Finding(
        Kind.NEW, "crit", A, 8080, "tcp", "http-alt", "evil\nname", 7, "root", rpc_program=400111
    )
    assert "\n" not in finding.line()
    assert finding.line() == (
        "ServiceNew: 198.18.0.1:8080/tcp (http-alt) program=evil\\nname pid=7 user=root"
    )
    assert set(finding.event()) == {
        "event",
        "kind",
        "severity",
        "interface",
        "port",
        "proto",
        "service",
        "services",
        "rpc_program",
        "program",
        "pid",
        "user",
        "was_port",
        "reason",
        "device",
    }


def test_a_renamed_process_cannot_forge_fields_of_a_finding_line() -> None:
    """A local process can name itself anything (prctl PR_SET_NAME): its name is one field."""
    forged = "x pid=1 user=root"
    finding = Finding(
        Kind.NEW, "crit", A, 8080, "tcp", "http-alt", forged, 7, 'a"b c', rpc_program=400111
    )
    assert finding.line() == (
        'ServiceNew: 198.18.0.1:8080/tcp (http-alt) program="x pid=1 user=root" pid=7 user="a\'b c"'
    )
    opened = OpenPort(A, "eth0", 8080, Proto.TCP, ("svc",), (), forged, 7, "root", Rule.UNLISTED)
    assert ' program="x pid=1 user=root" pid=7 user=root ' in opened.line()


def test_a_required_port_that_is_also_ignored_is_not_missing() -> None:
    audit = Auditor("22/tcp")
    assert audit.check(port(A, 22, rule=Rule.IGNORE)) == []


def test_a_name_from_etc_services_is_a_guess_as_samhain_writes_it() -> None:
    """samhain: `(maybe_ssh)` for the /etc/services name of a port, `(nfs)` for the name the
    portmapper gave; `unknown` is no guess."""
    ssh = OpenPort(A, "eth0", 22, Proto.TCP, ("ssh",), (), "sshd", 7, "root", Rule.UNLISTED)
    mountd = ssh._replace(port=20048, services=("mountd",), rpc_programs=(MOUNTD,))
    odd = ssh._replace(port=40000, services=("unknown",))
    lines = [p.line().split(" program=")[0] for p in (ssh, mountd, odd)]
    assert lines == [
        f"{A}:22/tcp (maybe_ssh)",
        f"{A}:20048/tcp (mountd)",
        f"{A}:40000/tcp (unknown)",
    ]
    assert ssh.fields()["service"] == "ssh"  # JSON keeps the name itself
    audit = Auditor("22/tcp,mountd/udp")
    assert audit.check() == [
        (Kind.MISSING, "ServiceMissing: any:22/tcp (maybe_svc)"),
        (Kind.MISSING, "ServiceMissing: any:mountd/udp (mountd)"),
    ]


def test_a_port_that_loses_its_approval_is_new() -> None:
    """111/udp allowed, then taken out of AUDIT_OPTIONAL while it stays open: ServiceNew once."""
    audit = Auditor(optional="111/tcp,111/udp")
    assert audit.check(port(A, 111), port(A, 111, Proto.UDP)) == []
    audit.policy = Policy(optional=parse_groups("111/tcp"))
    assert audit.check(port(A, 111), port(A, 111, Proto.UDP)) == [
        (Kind.NEW, "ServiceNew: 198.18.0.1:111/udp (maybe_svc)")
    ]
    assert audit.check(port(A, 111), port(A, 111, Proto.UDP)) == []
    audit.policy = Policy(optional=parse_groups("111/tcp,111/udp"))
    assert audit.check(port(A, 111), port(A, 111, Proto.UDP)) == []
    audit.policy = Policy(optional=parse_groups("111/tcp"))
    assert [k for k, _ in audit.check(port(A, 111), port(A, 111, Proto.UDP))] == [Kind.NEW]


def test_a_port_that_loses_its_rpc_name_while_still_open_is_new() -> None:
    """mountd, allowed by name, moves off 900 while another program keeps 900 open."""
    audit = Auditor(optional="mountd/udp")
    assert audit.check(port(A, 900, Proto.UDP, MOUNTD)) == []
    moved = audit.check(port(A, 900, Proto.UDP), port(A, 901, Proto.UDP, MOUNTD))
    assert sorted(moved, key=str) == [
        (Kind.NEW, "ServiceNew: 198.18.0.1:900/udp (maybe_svc)"),
        (Kind.PORT_SWITCH, "ServicePortSwitch: 198.18.0.1:901/udp (mountd), was 900/udp"),
    ]


def test_programs_that_swap_ports_are_two_port_switches() -> None:
    other = NFS
    audit = Auditor(optional="mountd/udp,nfs/udp")
    assert audit.check(port(A, 900, Proto.UDP, MOUNTD), port(A, 901, Proto.UDP, other)) == []
    swapped = audit.check(port(A, 901, Proto.UDP, MOUNTD), port(A, 900, Proto.UDP, other))
    assert sorted(swapped, key=str) == [
        (Kind.PORT_SWITCH, "ServicePortSwitch: 198.18.0.1:900/udp (nfs), was 901/udp"),
        (Kind.PORT_SWITCH, "ServicePortSwitch: 198.18.0.1:901/udp (mountd), was 900/udp"),
    ]
    assert audit.check(port(A, 901, Proto.UDP, MOUNTD), port(A, 900, Proto.UDP, other)) == []


def test_a_program_that_adds_a_port_and_keeps_the_old_one_did_not_switch() -> None:
    audit = Auditor()
    assert [k for k, _ in audit.check(port(A, 900, Proto.UDP, MOUNTD))] == [Kind.NEW]
    assert audit.check(port(A, 900, Proto.UDP, MOUNTD), port(A, 901, Proto.UDP, MOUNTD)) == [
        (Kind.NEW, "ServiceNew: 198.18.0.1:901/udp (mountd)")
    ]


def test_without_the_portmapper_rpc_requirements_and_ports_keep_their_last_state() -> None:
    """A portmapper that could not be asked: no false Missing, no Restarted after, no New for
    ports that only lost their names; a plain requirement is still judged."""
    audit = Auditor("mountd/udp,22/tcp")
    assert audit.check(port(A, 22), port(A, 900, Proto.UDP, MOUNTD)) == []
    assert audit.check(port(A, 900, Proto.UDP), rpc_known=False) == [
        (Kind.MISSING, "ServiceMissing: any:22/tcp (maybe_svc)")
    ]
    assert audit.check(port(A, 22), port(A, 900, Proto.UDP, MOUNTD)) == [
        (Kind.RESTARTED, "ServiceRestarted: any:22/tcp (maybe_svc)")
    ]
    # Missing before the portmapper went quiet: still missing, reported once, back once.
    assert audit.check(port(A, 22)) == [(Kind.MISSING, "ServiceMissing: any:mountd/udp (mountd)")]
    assert audit.check(port(A, 22), rpc_known=False) == []
    assert audit.check(port(A, 22), port(A, 900, Proto.UDP, MOUNTD)) == [
        (Kind.RESTARTED, "ServiceRestarted: any:900/udp (mountd)")
    ]


def test_after_an_upgrade_a_port_still_unlisted_is_not_new_again() -> None:
    """A version 1 state did not keep whether a port was unlisted: not known, taken as it is
    now, so the first check after the upgrade reports nothing for the ports it knew."""
    audit = Auditor()
    v1 = (
        '{"version": 1, "seen": [["198.18.0.1", 8080, "tcp", null], '
        '["198.18.0.1", 900, "udp", 100005]], "missing": []}'
    )
    audit.state = AuditState.from_json(v1)
    assert audit.check(port(A, 8080), port(A, 900, Proto.UDP, MOUNTD), port(A, 8081)) == [
        (Kind.NEW, "ServiceNew: 198.18.0.1:8081/tcp (maybe_svc)")
    ]
    assert audit.check(port(A, 8080), port(A, 900, Proto.UDP, MOUNTD), port(A, 8081)) == []
    assert audit.state is not None and all(s.unlisted for s in audit.state.seen)


def test_a_port_ignored_by_rpc_name_stays_quiet_while_the_portmapper_is_silent() -> None:
    """AUDIT_IGNORE="mountd/udp": remembered, not reported, so that it is not new each time
    the portmapper cannot be asked (then it has no name, and no rule but its number's)."""
    audit = Auditor()
    audit.policy = Policy(ignore=parse_groups("mountd/udp"))
    for _ in range(2):
        assert audit.check(port(A, 20048, Proto.UDP, MOUNTD)) == []
        assert audit.check(port(A, 20048, Proto.UDP), rpc_known=False) == []
    # A port ignored by number holds no program: not remembered.
    audit.policy = Policy(ignore=parse_groups("20048/udp"))
    audit.check(port(A, 20048, Proto.UDP))
    assert audit.state is not None and not audit.state.seen


def test_two_programs_on_one_port_each_name_it() -> None:
    """nfs and nfs_acl on 2049: a requirement of either is met, the line names both, and no
    change in the order rpcbind lists them changes anything."""
    audit = Auditor("nfs/tcp,nfs_acl/tcp")
    assert audit.check(port(A, 2049, Proto.TCP, NFS_ACL, NFS)) == []
    assert audit.check(port(A, 2049, Proto.TCP, NFS, NFS_ACL)) == []
    assert port(A, 2049, Proto.TCP, NFS_ACL, NFS).line().startswith(f"{A}:2049/tcp (nfs,nfs_acl) ")
    audit = Auditor(optional="nfs/tcp")  # nfs_acl comes with it, and is allowed with it
    assert audit.check(port(A, 2049, Proto.TCP, NFS, NFS_ACL)) == []


def test_programs_sharing_a_port_are_followed_each_on_its_own() -> None:
    """nfs_acl moves from 3000 to nfs's 2049: a switch for nfs_acl alone; both move: one line
    naming both."""
    audit = Auditor(optional="nfs/tcp,nfs_acl/tcp")
    assert audit.check(port(A, 2049, Proto.TCP, NFS), port(A, 3000, Proto.TCP, NFS_ACL)) == []
    assert audit.check(port(A, 2049, Proto.TCP, NFS, NFS_ACL)) == [
        (Kind.PORT_SWITCH, "ServicePortSwitch: 198.18.0.1:2049/tcp (nfs_acl), was 3000/tcp")
    ]
    assert audit.check(port(A, 2050, Proto.TCP, NFS_ACL, NFS)) == [
        (Kind.PORT_SWITCH, "ServicePortSwitch: 198.18.0.1:2050/tcp (nfs,nfs_acl), was 2049/tcp")
    ]
    (finding,), _ = compare(
        [port(A, 2050, Proto.TCP, NFS_ACL, NFS)], RPC_NAMES, [], None, SEVERITIES
    )
    assert (finding.event()["service"], finding.event()["services"]) == ("nfs", ["nfs", "nfs_acl"])


def test_missing_and_restarted_name_the_item_where_the_policy_puts_it() -> None:
    """The events of one policy item pair up by interface: `any` for an item without one, the
    device for an item on a device; each says which RPC program it is about, if any."""
    audit = Auditor("8091/udp; eth0:mountd/udp")
    audit.check()
    assert audit.state is not None
    findings, _ = compare(
        [
            port(A, 8091, Proto.UDP, rule=Rule.REQUIRED),
            port(A, 20048, Proto.UDP, MOUNTD, rule=Rule.REQUIRED),
        ],
        RPC_NAMES,
        audit.requirements,
        audit.state,
        SEVERITIES,
    )
    events = [
        (f.event()["interface"], f.event()["port"], f.event()["rpc_program"]) for f in findings
    ]
    assert events == [("any", 8091, None), ("eth0", 20048, MOUNTD)]
    missing, _ = compare([], RPC_NAMES, audit.requirements, None, SEVERITIES)
    missed = [
        (f.event()["interface"], f.event()["service"], f.event()["rpc_program"]) for f in missing
    ]
    assert missed == [("any", "svc", None), ("eth0", "mountd", MOUNTD)]


def test_a_port_without_a_name_has_a_null_service_in_json_and_unknown_in_text() -> None:
    nameless = port(A, 5300, Proto.UDP)._replace(services=("unknown",))
    (finding,), _ = compare([nameless], RPC_NAMES, [], None, SEVERITIES)
    assert "(unknown)" in finding.line() and "(unknown)" in nameless.line()
    for fields in (finding.event(), nameless.fields()):
        assert (fields["service"], fields["services"], fields["rpc_program"]) == (None, [], None)


def test_an_unusable_portmapper_line_carries_its_reason_as_one_field() -> None:
    finding = Finding(
        Kind.PORTMAPPER,
        "err",
        "127.0.0.1",
        111,
        "tcp",
        "portmapper",
        "rpcbind",
        812,
        "_rpc",
        rpc_program=100000,
        reason="tcp: connected, no RPC answer within 2 s",
    )
    assert finding.line() == (
        "PortmapperUnusable: 127.0.0.1:111/tcp (portmapper) program=rpcbind "
        'pid=812 user=_rpc reason="tcp: connected, no RPC answer within 2 '
        's"'
    )
    assert finding.event()["reason"] == "tcp: connected, no RPC answer within 2 s"


def test_one_link_local_address_on_two_devices_is_two_places() -> None:
    """fe80::1 on a NIC and on its VLAN: a port on the second is news, not the first one's."""
    audit = Auditor()
    on_a = port("fe80::1%a", 20010)._replace(device="a")
    on_b = port("fe80::1%b", 20010)._replace(device="b")
    assert audit.check(on_a) == [(Kind.NEW, "ServiceNew: fe80::1%a:20010/tcp (maybe_svc)")]
    assert audit.check(on_b) == [(Kind.NEW, "ServiceNew: fe80::1%b:20010/tcp (maybe_svc)")]


def test_a_state_with_bare_link_local_addresses_is_read_as_every_device() -> None:
    """A state written before link-local addresses had their device: no ServiceNew for a port
    it already knew, on whichever device."""
    old = AuditState.from_json(
        '{"version": 3, "seen": [["fe80::1", 22, "tcp", [], true]], "missing": []}'
    )
    findings, state = compare([port("fe80::1%eth0", 22)], RPC_NAMES, [], old, SEVERITIES)
    assert findings == [] and {s.interface for s in state.seen} == {"fe80::1%eth0"}


def test_link_local_requirement_names_its_device() -> None:
    audit = Auditor("fe80::1%b:22/tcp; fe80::2:23/tcp")
    on_a = port("fe80::1%a", 22)._replace(device="a", rule=Rule.IGNORE)
    findings, _ = compare([on_a], RPC_NAMES, audit.requirements, None, SEVERITIES)
    assert [(f.line(), f.device) for f in findings] == [
        ("ServiceMissing: fe80::1%b:22/tcp (maybe_svc)", "b"),
        ("ServiceMissing: fe80::2:23/tcp (maybe_svc)", None),
    ]
    assert audit.check(on_a._replace(rule=Rule.UNLISTED), port("fe80::2%c", 23)) == [
        (Kind.NEW, "ServiceNew: fe80::1%a:22/tcp (maybe_svc)"),
        (Kind.MISSING, "ServiceMissing: fe80::1%b:22/tcp (maybe_svc)"),
    ]


def test_a_missing_finding_has_no_owner_in_json() -> None:
    missing = Finding(Kind.MISSING, "crit", "any", 22, "tcp", "ssh")
    event = missing.event()
    assert (event["program"], event["pid"], event["user"]) == (None, None, None)
    assert missing.line() == "ServiceMissing: any:22/tcp (maybe_ssh)"


def test_a_protocol_not_read_in_full_keeps_its_last_state() -> None:
    """More sockets than AUDIT_SOCKETS_MAX: what was not read may be open, so a required UDP
    port not seen is not reported missing, nor a port seen before reported new next time."""
    audit = Auditor(required="39148/udp, 22/tcp")
    assert audit.check(port(A, 22), port(A, 39148, Proto.UDP), port(A, 55531, Proto.UDP)) == [
        (Kind.NEW, "ServiceNew: 198.18.0.1:55531/udp (maybe_svc)")
    ]
    cut = frozenset({Proto.UDP})
    assert audit.check(port(A, 22), cut=cut) == []
    assert audit.check(port(A, 22), port(A, 39148, Proto.UDP), port(A, 55531, Proto.UDP)) == []
    assert audit.check(port(A, 22), cut=cut) == []
    assert sorted(audit.check()) == [
        (Kind.MISSING, "ServiceMissing: any:22/tcp (maybe_svc)"),
        (Kind.MISSING, "ServiceMissing: any:39148/udp (maybe_svc)"),
    ]
    assert audit.check(cut=cut) == []  # reported missing once, and still so
    assert audit.check(port(A, 39148, Proto.UDP), cut=cut) == [
        (Kind.RESTARTED, "ServiceRestarted: any:39148/udp (maybe_svc)")
    ]


def test_missing_and_restarted_name_the_same_device() -> None:
    """The JSON `device` of a ServiceMissing for an item on an address was null, and that of
    its ServiceRestarted the port's device: both say where the item applies now, the device
    of its address; neither names one for an item on every interface."""
    groups = parse_groups("198.18.50.1:8081/tcp; 8091/udp; eth1:22/tcp")
    on = {"198.18.50.1": "eth9"}
    needs = [Requirement(g, i, "svc", None, on.get(str(g.where))) for g in groups for i in g.items]
    missing, state = compare([], RPC_NAMES, needs, None, SEVERITIES)
    back = [
        port("198.18.50.1", 8081, rule=Rule.REQUIRED)._replace(device="eth9"),
        port(A, 8091, Proto.UDP, rule=Rule.REQUIRED),
        port("198.18.0.9", 22, rule=Rule.REQUIRED)._replace(device="eth1"),
    ]
    restarted, _ = compare(back, RPC_NAMES, needs, state, SEVERITIES)
    said = [("198.18.50.1", "eth9"), ("any", None), ("eth1", "eth1")]
    assert [(f.kind, f.event()["interface"], f.event()["device"]) for f in missing] == [
        (Kind.MISSING, *where) for where in said
    ]
    assert [(f.kind, f.event()["interface"], f.event()["device"]) for f in restarted] == [
        (Kind.RESTARTED, *where) for where in said
    ]


def test_the_device_of_an_address_is_the_one_it_is_on_now() -> None:
    found = [
        Interface(ipaddress.ip_address(a), d, n)
        for a, d, n in [("198.18.50.1", "eth9", 9), ("fe80::1", "a", 3), ("fe80::1", "b", 4)]
    ]
    wheres = parse_groups(
        "198.18.50.1:1/tcp; fe80::1:1/tcp; fe80::1%b:1/tcp; eth0:1/tcp; 198.18.50.2:1/tcp; 1/tcp"
    )
    assert [device_of(g.where, found) for g in wheres] == ["eth9", None, "b", None, None, None]
