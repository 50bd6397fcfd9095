"""`portwarden audit --suggest`: an AUDIT_OPTIONAL line that lists what is open now.

For a first policy (after a migration from PortSentry the audit is on, and reports every open
port): the configured AUDIT_OPTIONAL plus the ports no list names, so that the line can replace
it; the administrator moves what must stay open to AUDIT_REQUIRED.
"""

import ipaddress

from portwarden.audit.check import AuditResult
from portwarden.audit.findings import OpenPort
from portwarden.config.audit_policy import Group, Item, Rule, Where
from portwarden.text import counted


def _item(port: OpenPort) -> Item:
    """An RPC service by its name (its port changes at every start), any other by its port."""
    if port.rpc_programs:
        return Item(port.proto, None, port.services[0])
    return Item(port.proto, port.port, None)


def unlisted_groups(result: AuditResult) -> tuple[Group, ...]:
    """The open ports no list names: those open on every audited address in one group without
    an interface, the others in a group per address."""
    where_open: dict[Item, set[str]] = {}
    for port in result.open_ports:
        if port.rule is Rule.UNLISTED:
            where_open.setdefault(_item(port), set()).add(port.interface)
    everywhere = set(result.interfaces)
    groups = [Group(Where(), tuple(i for i, seen in where_open.items() if seen == everywhere))]
    for address in result.interfaces:
        only_some = [i for i, seen in where_open.items() if seen != everywhere and address in seen]
        where = Where(ipaddress.ip_address(address))  # fe80::1%eth0 with its device
        groups.append(Group(where, tuple(only_some)))
    return tuple(group for group in groups if group.items)


def suggestion(result: AuditResult, configured: tuple[Group, ...]) -> list[str]:
    """A comment line and the AUDIT_OPTIONAL line."""
    added = unlisted_groups(result)
    count = sum(len(group.items) for group in added)
    said = (
        f"{counted(count, 'item')} added" if added else "nothing added: every open port is listed"
    )
    value = "; ".join(str(group) for group in (*configured, *added))
    return [
        f"# what is open now on {', '.join(result.interfaces)} ({said}); move what must "
        "stay open to AUDIT_REQUIRED",
        f'AUDIT_OPTIONAL="{value}"',
    ]
