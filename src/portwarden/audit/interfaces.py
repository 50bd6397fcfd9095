"""Which addresses the audit checks: AUDIT_INTERFACES and AUDIT_DEVICES, read anew each time."""

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

from portwarden.config.audit_policy import Where
from portwarden.net.addresses import IPAddress
from portwarden.net.local import InterfaceAddress, interface_addresses

_LOOPBACK = "lo"
_NO_LOOPBACK = "AUDIT_INTERFACES and AUDIT_DEVICES are empty: every address but loopback's"
# What a group's interface may be mistaken for: samhain's keyword, and our own label for a
# requirement without an interface (`any:22/tcp` in a ServiceMissing line).
_NOT_DEVICES = {"all", "any"}


class Interface(NamedTuple):
    """An audited address and its device (the device's index is a link-local scope)."""

    address: IPAddress
    device: str
    ifindex: int

    def __str__(self) -> str:
        """The address; a link-local IPv6 one with its device (`fe80::1%eth0`): it is unique
        only on its link, and a NIC and its VLANs, or bridge ports, often share one."""
        return scoped(self.address, self.device)

    def sockaddr(self, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
        if self.address.version == 4:
            return (str(self.address), port)
        scope = self.ifindex if self.address.is_link_local else 0
        return (str(self.address), port, 0, scope)


def scoped(address: IPAddress, device: str) -> str:
    """`address` as the audit names it: `fe80::1%eth0` for a link-local IPv6 address."""
    if address.version == 6 and address.is_link_local:
        return f"{address}%{device}"
    return str(address)


def ambiguous_addresses(
    groups: Iterable[tuple[str, Where]], interfaces: Iterable[Interface]
) -> list[str]:
    """Warnings for policy groups (`key`, where) with a link-local IPv6 address written without
    its device while that address is on more than one audited device: the group applies to it
    on each of them."""
    devices: dict[IPAddress, list[str]] = {}
    for interface in interfaces:
        devices.setdefault(interface.address, []).append(interface.device)
    found = []
    for key, where in dict.fromkeys(groups):
        on = devices.get(where.address) if where.address is not None else None
        address = where.address
        if (
            on
            and len(on) > 1
            and isinstance(address, ipaddress.IPv6Address)
            and address.is_link_local
            and not address.scope_id
        ):
            found.append(
                f"{key}: {where.address} is on devices {', '.join(sorted(on))}: the "
                f"group applies to it on each; write {where.address}%{min(on)} to "
                "name one"
            )
    return found


def device_of(where: Where, interfaces: Iterable[Interface]) -> str | None:
    """The device the address of a group on an address is on now, among `interfaces`; None for
    another group, or an address on none of them or on several (a link-local address written
    without its device)."""
    if where.address is None:
        return None
    on = {i.device for i in interfaces if where.covers(str(i), i.device)}
    return on.pop() if len(on) == 1 else None


def _scope(address: IPAddress) -> str | None:
    return address.scope_id if isinstance(address, ipaddress.IPv6Address) else None


def audited_interfaces(
    addresses: Iterable[IPAddress],
    devices: Iterable[str],
    present: Iterable[InterfaceAddress] | None = None,
) -> tuple[list[Interface], list[str]]:
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
        warnings += [
            f"AUDIT_INTERFACES: {a} is not an address of this host now; not checked"
            for a in wanted_addresses
            if a not in found_addresses
        ]
        warnings += [
            f"AUDIT_DEVICES: device {d} is absent or has no address now; not checked"
            for d in wanted_devices
            if d not in found_devices
        ]
    unique = {Interface(e.address, e.device, e.ifindex): None for e in chosen}
    return sorted(unique, key=lambda i: (i.address.version, i.address)), warnings


class Unaudited(NamedTuple):
    """Why a policy group's interface is not among the audited ones: `never` (a contradiction
    in the settings), or not now (absent at the moment)."""

    reason: str
    never: bool


def unaudited(
    where: Where,
    addresses: tuple[IPAddress, ...],
    devices: tuple[str, ...],
    present: Iterable[InterfaceAddress],
) -> Unaudited | None:
    """Why the audit does not look at `where` (audited: AUDIT_INTERFACES `addresses`, the
    addresses of AUDIT_DEVICES `devices`, or with neither every address but loopback's), if
    it does not; `present`: this host's addresses now."""
    present = tuple(present)
    if where.address is not None and (device := _scope(where.address)) is not None:
        return _unaudited_scoped(where.address, device, addresses, devices, present)
    if where.address is not None:
        return _unaudited_address(where.address, addresses, devices, present)
    if where.device is not None:
        return _unaudited_device(where.device, addresses, devices, present)
    return None


def _unaudited_address(
    address: IPAddress,
    addresses: tuple[IPAddress, ...],
    devices: tuple[str, ...],
    present: tuple[InterfaceAddress, ...],
) -> Unaudited | None:
    if address.is_unspecified:
        return Unaudited(
            f"{address} is a wildcard, not an address the audit checks (a group "
            "without an interface applies to every address)",
            True,
        )
    if address in addresses:
        return None
    on = {e.device for e in present if e.address == address}
    if not addresses and not devices:
        if address.is_loopback or _LOOPBACK in on:
            return Unaudited(f"{address} is loopback's, never checked ({_NO_LOOPBACK})", True)
        return None if on else Unaudited(f"{address} is not an address of this host now", False)
    if not devices or (address.is_loopback and _LOOPBACK not in devices):
        return Unaudited(
            f"{address} is not in AUDIT_INTERFACES, nor can it be an address of "
            "AUDIT_DEVICES: never checked",
            True,
        )
    if on & set(devices):
        return None
    if on:
        return Unaudited(
            f"{address} is not in AUDIT_INTERFACES, and is an address of "
            f"{', '.join(sorted(on))}, not of AUDIT_DEVICES: never checked",
            True,
        )
    return Unaudited(
        f"{address} is not in AUDIT_INTERFACES, nor now an address of AUDIT_DEVICES", False
    )


def _unaudited_scoped(
    address: IPAddress,
    device: str,
    addresses: tuple[IPAddress, ...],
    devices: tuple[str, ...],
    present: tuple[InterfaceAddress, ...],
) -> Unaudited | None:
    """`fe80::1%eth0`: audited when the bare address is in AUDIT_INTERFACES, the device in
    AUDIT_DEVICES, or with neither set; checked when the device has the address now."""
    bare = ipaddress.ip_address(str(address).partition("%")[0])
    if addresses or devices:
        if bare not in addresses and device not in devices:
            return Unaudited(
                f"{address}: {bare} is not in AUDIT_INTERFACES, nor {device} in "
                "AUDIT_DEVICES: never checked",
                True,
            )
    elif device == _LOOPBACK:
        return Unaudited(f"device {device} is never checked ({_NO_LOOPBACK})", True)
    if any(e.address == bare and e.device == device for e in present):
        return None
    return Unaudited(f"{address} is not an address of this host now", False)


def _unaudited_device(
    device: str,
    addresses: tuple[IPAddress, ...],
    devices: tuple[str, ...],
    present: tuple[InterfaceAddress, ...],
) -> Unaudited | None:
    if device in devices:
        return None
    known = {e.device for e in present}
    if device.lower() in _NOT_DEVICES and device not in known:
        return Unaudited(
            f"{device} is no device of this host (a group without an interface "
            "applies to every address)",
            True,
        )
    if not addresses and not devices:
        if device == _LOOPBACK:
            return Unaudited(f"device {device} is never checked ({_NO_LOOPBACK})", True)
        return (
            None
            if device in known
            else Unaudited(f"device {device} is absent or has no address now", False)
        )
    if any(e.device == device and e.address in addresses for e in present):
        return None
    found = {e.address for e in present}
    if all(a in found for a in addresses):  # each is on another device: this one is not audited
        return Unaudited(
            f"device {device} is not in AUDIT_DEVICES and holds none of "
            "AUDIT_INTERFACES: never checked",
            True,
        )
    return Unaudited(
        f"device {device} is not in AUDIT_DEVICES, and holds none of AUDIT_INTERFACES now", False
    )
