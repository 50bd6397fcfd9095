"""Which addresses the audit checks: AUDIT_INTERFACES and AUDIT_DEVICES, read anew each time."""

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

from portwarden.detect.probe import IPAddress
from portwarden.net.local import InterfaceAddress, interface_addresses


class Interface(NamedTuple):
    """An audited address and its device (the device's index is a link-local scope)."""

    address: IPAddress
    device: str
    ifindex: int

    def __str__(self) -> str:
        return str(self.address)

    def sockaddr(self, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
        if self.address.version == 4:
            return (str(self.address), port)
        scope = self.ifindex if self.address.is_link_local else 0
        return (str(self.address), port, 0, scope)


def audited_interfaces(
    addresses: Iterable[IPAddress], devices: Iterable[str],
    present: Iterable[InterfaceAddress] | None = None,
) -> tuple[list[Interface], list[str]]:  # fmt: skip
    """The configured addresses and every current address of the configured devices; with
    neither, every address of every device except loopback. Transient IPv6 addresses (privacy,
    tentative, deprecated) are left out unless named: each new privacy address would otherwise
    bring every unlisted port up as new. Also warnings for what is absent."""
    wanted_addresses, wanted_devices = list(addresses), list(devices)
    every = interface_addresses() if present is None else present
    current = [e for e in every if not e.transient or e.address in wanted_addresses]
    warnings: list[str] = []
    if not wanted_addresses and not wanted_devices:
        chosen = [e for e in current if e.device != "lo" and not e.address.is_loopback]
    else:
        chosen = [e for e in current if e.address in wanted_addresses or e.device in wanted_devices]
        found_addresses = {e.address for e in current}
        found_devices = {e.device for e in current}
        warnings += [f"AUDIT_INTERFACES: {a} is not an address of this host now; not checked"
                     for a in wanted_addresses if a not in found_addresses]  # fmt: skip
        warnings += [f"AUDIT_DEVICES: device {d} is absent or has no address now; not checked"
                     for d in wanted_devices if d not in found_devices]  # fmt: skip
    unique = {Interface(e.address, e.device, e.ifindex): None for e in chosen}
    return sorted(unique, key=lambda i: (i.address.version, i.address)), warnings


def parse_addresses(text: str) -> tuple[IPAddress, ...]:
    """AUDIT_INTERFACES: comma-separated IPv4/IPv6 addresses. Raises ValueError."""
    found: list[IPAddress] = []
    for word in text.replace(",", " ").split():
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            raise ValueError(f"'{word}' is not an IP address") from None
        if address.version == 6 and address.ipv4_mapped:  # as the policy says (a host has none)
            raise ValueError(f"'{word}': write the IPv4 address {address.ipv4_mapped} itself")
        found.append(address)
    return tuple(found)
