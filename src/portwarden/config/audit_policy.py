"""The audit policy: AUDIT_REQUIRED, AUDIT_OPTIONAL, AUDIT_IGNORE and AUDIT_SKIP.

Each key holds groups separated by ';', each `[interface:]item,item,...`. As in samhain the
interface is everything before the last colon, so an IPv6 address needs no brackets
(`2001:db8::1:80/tcp`). The interface is an address or a device name; without one the group
applies to every audited interface. An item is `port/proto`, an RPC program name from /etc/rpc
(`mountd/udp`) or `RPC_<number>/proto` for a program without a name.

The keys of the addresses the audit checks, AUDIT_INTERFACES and AUDIT_DEVICES, are parsed here
too. This is config's, not the audit's: Settings hold these groups, and the audit imports them
from here, so reading the settings loads nothing of the audit.
"""

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from portwarden.net.addresses import PORTMAPPER_PORT, IPAddress, Proto

_DEVICE = re.compile(r"[A-Za-z0-9_.@-]{1,15}")
_RPC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.+-]{0,63}|RPC_[0-9]{1,10}")
_ITEM_SEPARATORS = re.compile(r"[,\s]+")
# One wording for every item that is neither form (a bad protocol, a bad name, a negative port).
_NOT_AN_ITEM = "'{}' is not port/proto or an RPC program name/proto (proto is tcp or udp)"


class Rule(Enum):
    """What the policy says about an open port, strongest first."""

    IGNORE = "ignore"
    REQUIRED = "required"
    OPTIONAL = "optional"
    UNLISTED = "unlisted"


class Item(NamedTuple):
    """One `port/proto` (rpc is None) or `rpcname/proto` (port is None)."""

    proto: Proto
    port: int | None
    rpc: str | None

    def __str__(self) -> str:
        return f"{self.port if self.rpc is None else self.rpc}/{self.proto.value}"

    def matches(self, port: int, proto: Proto, rpc_names: frozenset[str]) -> bool:
        if proto is not self.proto:
            return False
        return port == self.port if self.rpc is None else self.rpc in rpc_names


class Where(NamedTuple):
    """Where a group applies: one address, every address of one device, or (both None) all."""

    address: IPAddress | None = None
    device: str | None = None

    def __str__(self) -> str:
        return str(self.address or self.device or "")

    def covers(self, address: str, device: str) -> bool:
        """Whether the group applies to `address` (in ipaddress's canonical text, a link-local
        IPv6 address with `%device`) on `device`. A link-local address written without its
        device applies to it on every device."""
        if self.address is not None:
            mine = str(self.address)
            return mine == address or ("%" not in mine and mine == address.partition("%")[0])
        return self.device is None or self.device == device


@dataclass(frozen=True, slots=True)
class Group:
    where: Where
    items: tuple[Item, ...]

    def __str__(self) -> str:
        listed = ",".join(str(item) for item in self.items)
        return f"{self.where}:{listed}" if str(self.where) else listed


def parse_groups(text: str) -> tuple[Group, ...]:
    """Parse a policy key's value. Raises ValueError naming the bad part."""
    groups = []
    for part in text.split(";"):
        if not part.strip():
            continue
        where_text, colon, items_text = part.strip().rpartition(":")
        where = _where(where_text.strip()) if colon else Where()
        items = tuple(_item(word) for word in _ITEM_SEPARATORS.split(items_text) if word)
        if not items:
            raise ValueError(f"'{part.strip()}' lists no port/proto or RPC program name/proto")
        groups.append(Group(where, items))
    return tuple(groups)


def parse_skip_groups(text: str) -> tuple[Group, ...]:
    """AUDIT_SKIP: like the other keys, but ports only (an RPC service has no fixed port)."""
    groups = parse_groups(text)
    for group in groups:
        for item in group.items:
            if item.rpc is not None:
                raise ValueError(f"'{item}': skip takes port/proto only, an RPC name has no port")
    return groups


def parse_devices(text: str) -> tuple[str, ...]:
    """AUDIT_DEVICES: comma-separated device names. Raises ValueError."""
    devices = tuple(text.replace(",", " ").split())
    for device in devices:
        if not _DEVICE.fullmatch(device):
            raise ValueError(f"'{device}' is not a device name")
    return devices


def parse_addresses(text: str) -> tuple[IPAddress, ...]:
    """AUDIT_INTERFACES: comma-separated IPv4/IPv6 addresses. Raises ValueError."""
    found: list[IPAddress] = []
    for word in text.replace(",", " ").split():
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            raise ValueError(f"'{word}' is not an IP address") from None
        if address.version == 6 and address.ipv4_mapped:  # as in _where (a host has none)
            raise ValueError(f"'{word}': write the IPv4 address {address.ipv4_mapped} itself")
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            raise ValueError(
                f"'{word}': no scope here; AUDIT_DEVICES names the device (the "
                "policy may name fe80::1%eth0)"
            )
        found.append(address)
    return tuple(found)


def _where(text: str) -> Where:
    """An address, `fe80::1%eth0` (a link-local IPv6 address on one device), or a device."""
    bare, percent, device = text.partition("%")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        if address.version == 6 and address.ipv4_mapped:
            raise ValueError(f"'{text}': write the IPv4 address {address.ipv4_mapped} itself")
        if not percent:
            return Where(address=address)
        if not (address.version == 6 and address.is_link_local):
            raise ValueError(
                f"'{text}': a scope (%device) goes only with a link-local IPv6 "
                f"address; write {bare}"
            )
        if not _DEVICE.fullmatch(device):
            raise ValueError(f"'{text}': '{device}' is not a device name")
        return Where(address=ipaddress.IPv6Address(text))
    if not _DEVICE.fullmatch(text):
        raise ValueError(f"'{text}' is neither an IP address nor a device name")
    return Where(device=text)


def _item(word: str) -> Item:
    name, slash, proto_text = word.rpartition("/")
    try:
        proto = Proto(proto_text.lower())
    except ValueError:
        proto = None
    if not slash or proto is None:
        raise ValueError(_NOT_AN_ITEM.format(word))
    if name.isascii() and name.isdigit():  # not '²' or '１
        if not 1 <= int(name) <= 65535:
            raise ValueError(f"'{word}': port must be 1-65535")
        return Item(proto, int(name), None)
    if not _RPC_NAME.fullmatch(name):
        raise ValueError(_NOT_AN_ITEM.format(word))
    return Item(proto, None, name)


@dataclass(frozen=True, slots=True)
class Policy:
    required: tuple[Group, ...] = ()
    optional: tuple[Group, ...] = ()
    ignore: tuple[Group, ...] = ()
    skip: tuple[Group, ...] = ()

    @property
    def names_rpc(self) -> bool:
        """Whether an item of the policy is an RPC program (which only the portmapper tells)."""
        groups = self.required + self.optional + self.ignore
        return any(item.rpc is not None for group in groups for item in group.items)

    def wheres(self) -> list[tuple[str, Where]]:
        """(key, where) for each group with an interface."""
        keys = {
            "AUDIT_REQUIRED": self.required,
            "AUDIT_OPTIONAL": self.optional,
            "AUDIT_IGNORE": self.ignore,
            "AUDIT_SKIP": self.skip,
        }
        return [(key, g.where) for key, groups in keys.items() for g in groups if str(g.where)]

    def skips(self, address: str, device: str, port: int, proto: Proto) -> bool:
        return _listed(self.skip, address, device, port, proto, frozenset())

    def requirements(self) -> list[tuple[Group, Item]]:
        """The required items that are not also ignored or skipped there: ignore and skip beat
        required, so such an item is never reported missing."""
        return [
            (group, item)
            for group in self.required
            for item in group.items
            if not any(
                _overrides(other, group.where) and item in other.items
                for other in self.ignore + self.skip
            )
        ]

    def unseeable(self, udp: bool, min_port: int, max_port: int) -> str | None:
        """Why a requirement can never be met, if one cannot: a UDP item while UDP is not
        checked, a port outside the range checked, or an RPC name while the portmapper is never
        asked. It would be reported missing whatever is open: a contradiction in the
        settings, not a finding."""
        for _, item in self.requirements():
            why = self._unseen(item, "AUDIT_REQUIRED", udp, min_port, max_port)
            if why is not None:
                return f"'{item}' is required, but {why}"
        return None

    def never_matched(self, udp: bool, min_port: int, max_port: int) -> list[tuple[str, str]]:
        """(key, warning) for each item of AUDIT_OPTIONAL and AUDIT_IGNORE that can never match,
        for the reasons of `unseeable`: harmless to the check, but the administrator who wrote
        it expects it to take effect."""
        found = []
        for key, groups in (("AUDIT_OPTIONAL", self.optional), ("AUDIT_IGNORE", self.ignore)):
            for item in dict.fromkeys(item for group in groups for item in group.items):
                why = self._unseen(item, key, udp, min_port, max_port)
                if why is not None:
                    found.append((key, f"'{item}' never matches: {why}"))
        return found

    def _unseen(self, item: Item, key: str, udp: bool, min_port: int, max_port: int) -> str | None:
        """Why `item` (of `key`) is never seen open, if it is not."""
        portmapper = self._portmapper_unasked(udp)
        if item.rpc is not None and portmapper:
            return f"{portmapper}: RPC names in {key} need port {PORTMAPPER_PORT} audited"
        if item.proto is Proto.UDP and not udp:
            return "AUDIT_UDP is 0: UDP is never checked"
        if item.port is not None and item.port < min_port:
            return f"AUDIT_MIN_PORT is {min_port}: never checked"
        if item.port is not None and item.port > max_port:
            return f"AUDIT_MAX_PORT is {max_port}: never checked"
        return None

    def _portmapper_unasked(self, udp: bool) -> str | None:
        """Why the portmapper is never asked which program holds which port, if it is not:
        port 111 skipped everywhere over TCP, and over UDP too or UDP not checked."""

        def skipped(proto: Proto) -> bool:
            return any(
                group.where == Where() and Item(proto, PORTMAPPER_PORT, None) in group.items
                for group in self.skip
            )

        if not skipped(Proto.TCP):
            return None
        if not udp:
            return f"AUDIT_SKIP has {PORTMAPPER_PORT}/tcp and AUDIT_UDP is 0"
        if skipped(Proto.UDP):
            return f"AUDIT_SKIP has {PORTMAPPER_PORT}/tcp and {PORTMAPPER_PORT}/udp"
        return None

    def rule(
        self, address: str, device: str, port: int, proto: Proto, rpc_names: frozenset[str]
    ) -> Rule:
        """Ignore beats required, which beats optional."""
        for rule, groups in (
            (Rule.IGNORE, self.ignore),
            (Rule.REQUIRED, self.required),
            (Rule.OPTIONAL, self.optional),
        ):
            if _listed(groups, address, device, port, proto, rpc_names):
                return rule
        return Rule.UNLISTED


def _overrides(group: Group, where: Where) -> bool:
    """Whether `group` applies everywhere `where` does."""
    return group.where == Where() or group.where == where


def _listed(
    groups: tuple[Group, ...],
    address: str,
    device: str,
    port: int,
    proto: Proto,
    rpc_names: frozenset[str],
) -> bool:
    return any(
        group.where.covers(address, device) and item.matches(port, proto, rpc_names)
        for group in groups
        for item in group.items
    )
