"""The lab itself: hosts reach each other over IPv4 and IPv6 and teardown leaves nothing."""

import sys

from portwarden.lab.network import Lab, lab_namespaces, namespaces, run
from tests.conftest import require_lab
from tests.lab.prefix import PREFIX


def test_hosts_reach_the_target(clean_lab: Lab) -> None:
    for host in (clean_lab.client, *clean_lab.attackers):
        for address in (clean_lab.target.ipv4, clean_lab.target.ipv6):
            assert host.run(["ping", "-c1", "-W2", address], check=False).returncode == 0


def test_nothing_in_the_machines_own_namespace(clean_lab: Lab) -> None:
    assert clean_lab.target.run(["ip", "-4", "addr"]).stdout.count("198.18.0.1/24") == 1
    assert "198.18.0." not in run(["ip", "-4", "addr"]).stdout


def test_stale_lab_is_removed_and_teardown_is_complete() -> None:
    require_lab()
    stale = Lab(prefix=f"{PREFIX}stale-", attackers=1)
    stale.create()
    stale.target.popen(["sleep", "60"])
    again = Lab(prefix=f"{PREFIX}stale-", attackers=1)
    try:
        again.create()  # must clear the first one's leftovers, not fail on them
    finally:
        again.destroy()
    assert lab_namespaces(f"{PREFIX}stale-") == []
    assert stale.target.processes[0].wait(timeout=5) == -9  # killed with its namespace


def test_root_without_cap_sys_admin_is_told_why_the_lab_cannot_run() -> None:
    """Root alone is not enough (a container, a dropped capability): the reason is ip's own,
    so that the tests are skipped with it instead of erring in the fixture."""
    require_lab()
    code = (
        "import sys; from portwarden.lab.network import lab_unavailable_reason; "
        "print(lab_unavailable_reason(sys.argv[1]))"
    )
    result = run(
        [
            "setpriv",
            "--inh-caps=-sys_admin",
            "--bounding-set=-sys_admin",
            sys.executable,
            "-c",
            code,
            PREFIX,
        ]
    )
    assert result.stdout.startswith("the lab cannot make a network namespace: ip netns add: ")
    assert "Operation not permitted" in result.stdout
    assert result.stdout.count("\n") == 1
    assert [name for name in namespaces() if name.startswith(f"{PREFIX}probe")] == []
