"""The `portwarden portmap` sub-commands: protect, unprotect, check."""

import argparse
import errno
import ipaddress
import json
import math
import sys
from contextlib import nullcontext
from pathlib import Path

from portwarden.config.errors import ConfigError
from portwarden.net.addresses import IPAddress
from portwarden.net.local import scope_index, unmapped
from portwarden.net.portmapper import PortmapperError, SourceAddressError
from portwarden.portmap import lock, wrappers
from portwarden.portmap.check import build_report
from portwarden.portmap.firewall import Backend, FirewallError, may_read
from portwarden.portmap.protect import Plan, plan_protect, plan_unprotect
from portwarden.text import one_line

HOSTS_ALLOW = Path("/etc/hosts.allow")
HOSTS_DENY = Path("/etc/hosts.deny")
# `check --timeout`: each probe waits this long at most, so a typo cannot hang the command; and
# at least this long, so that a real answer (well under a millisecond on a LAN) has time to come
# and a silly value cannot turn every probe into "silent", i.e. "protected".
TIMEOUT_S_MIN, TIMEOUT_S_MAX = 0.1, 60.0
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
EXIT_STATUS = {"protected": 0, "not running": 0, "exposed": 1, "unknown": 3, "locked out": 4}


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    portmap = commands.add_parser(
        "portmap", help="protect the portmapper (rpcbind) with TCP Wrappers and firewall rules"
    )
    actions = portmap.add_subparsers(dest="portmap_command", required=True, metavar="ACTION")
    protect = actions.add_parser("protect", help="allow only these networks and loopback")
    protect.add_argument(
        "--allow",
        action="append",
        required=True,
        metavar="NET",
        help="an address or network allowed to reach the portmapper (repeat)",
    )
    unprotect = actions.add_parser("unprotect", help="remove exactly what protect added")
    check = actions.add_parser("check", help="report what is exposed and what protects it")
    check.add_argument(
        "--from",
        dest="source",
        metavar="ADDR",
        help="probe for real from this local address (outside the allowed networks)",
    )
    check.add_argument(
        "--to",
        dest="target",
        metavar="ADDR",
        help="the address to probe (default: the --from address)",
    )
    check.add_argument(
        "--timeout",
        default="2",
        metavar="S",
        help=f"seconds to wait for each answer, more than 0, at most {TIMEOUT_S_MAX:g} (default 2)",
    )
    check.add_argument("--json", action="store_true", help="print the report as one JSON object")
    for action in (protect, unprotect, check):
        action.add_argument("--hosts-allow", type=Path, default=HOSTS_ALLOW, metavar="FILE")
        action.add_argument("--hosts-deny", type=Path, default=HOSTS_DENY, metavar="FILE")
    firewall_help = {
        protect: "which firewall to add the rules to; our rules are removed from the other "
        "(none: from both) if an earlier protect put them there (default nft)",
        unprotect: "which firewall to clean first: our rules are removed from both nft and "
        "iptables (this one must work; the other is passed over when its tool is missing); "
        "none: leave the firewalls alone (default nft)",
    }
    for action in (protect, unprotect):
        action.add_argument(
            "--firewall",
            choices=["nft", "iptables", "none"],
            default="nft",
            help=firewall_help[action],
        )
        action.add_argument(
            "--no-wrappers", action="store_true", help="leave hosts.allow and hosts.deny alone"
        )
        action.add_argument(
            "--dry-run", action="store_true", help="print the exact changes without making them"
        )


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 done (check: protected or not running), 1 check: exposed, 2 error,
    3 check: unknown (rules that are not ours, not judged), 4 check: locked out (allowed
    callers denied)."""
    try:
        if args.portmap_command == "check":
            return _check(args)
        return _change(args)
    except (wrappers.WrappersError, FirewallError, lock.Busy) as error:
        print(f"portwarden: error: {one_line(str(error), 1000)}", file=sys.stderr)
        return 2


def _change(args: argparse.Namespace) -> int:
    """Protect or unprotect, holding the lock from the first read to the last write (a dry
    run changes nothing and needs none). `protect --firewall none` looks for our rules in the
    firewalls too, to remove them, where it may (CAP_NET_ADMIN); where it may not, it says so
    and leaves them."""
    readable = may_read()
    if args.firewall != "none" and not readable:
        raise PermissionError(
            errno.EPERM,
            "the firewall (nftables, iptables) needs CAP_NET_ADMIN; nothing was changed",
        )
    with nullcontext() if args.dry_run else lock.held():
        return _plan_and_apply(args, readable)


def _plan_and_apply(args: argparse.Namespace, firewalls: bool) -> int:
    allow, deny = (None, None) if args.no_wrappers else (args.hosts_allow, args.hosts_deny)
    plan: Plan
    unseen: list[str] = []
    if args.portmap_command == "protect":
        plan = plan_protect(args.allow, allow, deny, args.firewall if firewalls else None)
        unseen = [] if firewalls else [NOT_LOOKED_AT]
    else:
        backend: Backend | None = None if args.firewall == "none" else args.firewall
        plan = plan_unprotect(allow, deny, backend)
    for warning in (*unseen, *plan.warnings):  # each made of values escaped already (one_line)
        print(f"portwarden: warning: {one_line(warning, 1000, backslashes=False)}", file=sys.stderr)
    if not plan.changed:
        _print_notes(args, [note.done for note in plan.notes])
        print(f"portmap {args.portmap_command}: nothing to change")
        return 0
    if args.dry_run:
        _print_notes(args, [note.planned for note in plan.notes])
        sys.stdout.write(plan.show())
        print("# dry run: nothing was changed")
        return 0
    plan.apply()  # the notes say what was done: only once it was
    _print_notes(args, [note.done for note in plan.notes])
    for line in plan.summary():
        print(line)
    return 0


NOT_LOOKED_AT = (
    "--firewall none: the firewalls (nftables, iptables) were not looked at, as that needs "
    "CAP_NET_ADMIN: rules an earlier protect put there, if any, are left as they are"
)


def _print_notes(args: argparse.Namespace, notes: list[str]) -> None:
    for note in notes:
        print(f"portmap {args.portmap_command}: {one_line(note, 1000, backslashes=False)}")


def parse_timeout(text: str) -> float:
    """`--timeout`: a number of seconds in [TIMEOUT_S_MIN, TIMEOUT_S_MAX]. Less would give up
    on probes before their answer can come, and so report "protected"; raises ConfigError."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not TIMEOUT_S_MIN <= value <= TIMEOUT_S_MAX:  # also false for nan
        reason = f"must be a number of seconds from {TIMEOUT_S_MIN:g} to {TIMEOUT_S_MAX:g}"
        raise ConfigError("--timeout", reason, value=text)
    return value


def check_addresses(source: str | None, target: str | None) -> None:
    """`--from` and `--to`: IP addresses (never names: a look-up would escape the time limit)
    of one family, `--to` only with `--from`, each one host's (see _not_a_host). Raises
    ConfigError naming the option."""
    if target is not None and source is None:
        raise ConfigError("--to", "needs --from, the local address to probe from", value=target)
    found = {}
    for option, text in (("--from", source), ("--to", target)):
        if text is not None:
            try:
                found[option] = ipaddress.ip_address(text)
            except ValueError:
                raise ConfigError(option, "not an IP address", value=text) from None
            why = _not_a_host(found[option])
            if why is not None:
                raise ConfigError(option, why, value=text)
    if len({address.version for address in found.values()}) > 1:
        raise ConfigError("--to", f"not of the same IP version as --from {source}", value=target)


def _not_a_host(address: IPAddress) -> str | None:
    """Why `address` cannot be one end of a probe, if it cannot: the unspecified address
    (the kernel would take it for this host, and a probe to it would go over loopback, where
    every caller is allowed), a multicast or the broadcast address (many hosts, none of them
    a portmapper's caller), a link-local IPv6 address without its device (unique on its link
    only), or with a device this host does not have; a scope on any other address."""
    plain = unmapped(address)
    if plain.is_unspecified:
        return (
            "the unspecified address names no host (a probe to it stays on this one, over "
            "loopback, always allowed): give one host's address"
        )
    if plain.is_multicast or plain == _BROADCAST:
        kind = "a multicast" if plain.is_multicast else "the broadcast"
        return f"{kind} address names no one host: give one host's address"
    scope = address.scope_id if isinstance(address, ipaddress.IPv6Address) else None
    if address.is_link_local and address.version == 6 and not scope:
        return f"a link-local address needs its device: {address}%eth0, for one"
    if scope and not address.is_link_local:
        return "a scope (%device) goes only with a link-local address: give it without one"
    if scope:
        try:
            scope_index(scope)
        except ValueError as error:
            return str(error)
    return None


def _check(args: argparse.Namespace) -> int:
    timeout = parse_timeout(args.timeout)
    check_addresses(args.source, args.target)
    for path in (args.hosts_allow, args.hosts_deny):  # as protect: anything but a regular
        wrappers.read(path)  # file is an error (WrappersError), before anything is asked
    if not may_read():  # the caller says it in one line, as for the other commands that read
        raise PermissionError(
            errno.EPERM,
            "reading the firewall (nftables, iptables) needs CAP_NET_ADMIN; nothing was checked",
        )
    try:
        report = build_report(args.hosts_allow, args.hosts_deny, args.source, args.target, timeout)
    except PortmapperError as error:  # the probe could not be made from --from, or to --to
        blamed = isinstance(error, SourceAddressError) or args.target is None
        option, value = ("--from", args.source) if blamed else ("--to", args.target)
        raise ConfigError(option, str(error), value=value) from None
    if args.json:
        print(json.dumps(report.as_json(), sort_keys=True))
    else:
        for line in report.text():
            print(line)
    return EXIT_STATUS[report.verdict]
