"""RESOLVE_HOST for syslog lines: lines wait, in order, for their source's name at most
RESOLVE_HOST_TIMEOUT_S, and names are kept for the next probes."""

import ipaddress
from concurrent.futures import Future

from portwarden import limits
from portwarden.alert.hostnames import HostNames
from portwarden.net.resolve import Lookup, Resolver
from portwarden.text import safe_hostname

A, B = ipaddress.ip_address("198.18.0.11"), ipaddress.ip_address("2001:db8::b")


class Lookups(Resolver):
    """A resolver whose answers the test gives (a unit test: no name server here)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, Lookup] = {}

    def start(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Lookup | None:
        lookup: Lookup = Future()  # waiting in the resolver's queue: a give-up cancels it
        self.started[str(address)] = lookup
        return lookup


def test_lines_wait_in_order_for_the_name_and_the_name_is_kept() -> None:
    lookups = Lookups()
    names: HostNames[str] = HostNames(lookups)
    assert names.submit(A, "a1", 0.0) and names.submit(B, "b1", 0.1) and names.submit(A, "a2", 0.2)
    assert list(names.ready(0.3)) == []  # nothing known yet: all wait
    lookups.started[str(B)].set_result("b.example")
    assert list(names.ready(0.4)) == []  # b1 is known but waits behind a1
    lookups.started[str(A)].set_result("evil name/\x1b")
    assert list(names.ready(0.5)) == [
        ("a1", "evil\\x20name\\x2f\\x1b"),
        ("b1", "b.example"),
        ("a2", "evil\\x20name\\x2f\\x1b"),
    ]
    assert names.submit(A, "a3", 1.0) and list(names.ready(1.0)) == [
        ("a3", "evil\\x20name\\x2f\\x1b")
    ]
    assert len(lookups.started) == 2  # the kept name was not looked up again


def test_a_slow_lookup_is_given_up_at_its_deadline_and_a_failure_is_kept_briefly() -> None:
    lookups = Lookups()
    names: HostNames[str] = HostNames(lookups)
    names.submit(A, "a1", 0.0)
    assert list(names.ready(limits.RESOLVE_HOST_TIMEOUT_S - 0.01)) == []
    assert list(names.ready(limits.RESOLVE_HOST_TIMEOUT_S)) == [("a1", None)]
    assert lookups.started[str(A)].cancelled()
    names.submit(A, "a2", 2.0)
    assert list(names.ready(2.0)) == [("a2", None)]  # the failure is kept: no new lookup
    later = 2.0 + limits.HOSTNAME_FAILED_KEPT_S
    names.submit(A, "a3", later)
    assert list(names.ready(later)) == []  # looked up again
    lookups.started[str(A)].set_exception(OSError("unknown host"))
    assert list(names.ready(later)) == [("a3", None)]


def test_a_flood_does_not_wait_and_stopping_sends_everything() -> None:
    lookups = Lookups()
    names: HostNames[int] = HostNames(lookups)
    for i in range(limits.HOSTNAMES_WAITING_MAX):
        assert names.submit(ipaddress.ip_address(0xC6120000 + i), i, 0.0)
    assert not names.submit(A, -1, 0.0)  # the caller sends it at once, with the address
    assert len(list(names.ready(0.0, stopping=True))) == limits.HOSTNAMES_WAITING_MAX


def test_lines_that_need_no_name_keep_their_place_behind_those_that_wait() -> None:
    """`Host ... has been blocked` (the action worker's) after the attack line it follows."""
    lookups = Lookups()
    names: HostNames[str] = HostNames(lookups)
    assert len(names) == 0
    names.submit(A, "attack", 0.0)
    names.submit(None, "blocked", 0.1)
    assert len(names) == 2 and list(names.ready(0.2)) == []
    lookups.started[str(A)].set_result("a.example")
    assert list(names.ready(0.3)) == [("attack", "a.example"), ("blocked", None)]
    names.submit(None, "alone", 0.4)
    assert list(names.ready(0.4)) == [("alone", None)]


def test_a_hostile_name_is_made_safe_by_the_text_module() -> None:
    """safe_hostname lives with the other renderers of untrusted text (alert used to import it
    from respond.actions): no line break, no blank, no `/` (PortSentry's files write
    `name/address`), cut at HOSTNAME_MAX."""
    shown = safe_hostname("evil host/\n" + "x" * 300)
    assert shown.startswith("evil\\x20host\\x2f\\n") and shown.endswith("...")
    assert " " not in shown and "/" not in shown and len(shown) < limits.HOSTNAME_MAX + 20
