"""The built-in blocker: one nftables table of ours, changed in-process through libnftables.

Table `inet portwarden` (NFT_TABLE) holds sets `blocked4` and `blocked6` (per-element timeouts)
and an input chain (and optionally a forward chain) that drops their sources. Nothing else in
the host's ruleset is touched. Commands go through libnftables in-process (net/nftables);
adding elements (one on the packet path, 100,000 at a restore) skips even that and goes
straight over netlink (nftlink).
"""

import contextlib
import errno
import ipaddress
import json
import socket
from collections.abc import Iterable
from typing import Any, NamedTuple

from portwarden.config.errors import ConfigError
from portwarden.config.ignore import Network
from portwarden.net.addresses import IPAddress
from portwarden.net.nftables import DEFAULT_TABLE, Nft, NftError, set_of
from portwarden.respond.nftlink import Element, NftLink, NftLinkError

_CHAIN_PRIORITY = "filter - 10"  # before the usual filter chains, so nothing lets them through
_RULES_PER_CHAIN = 2  # one drop rule per set


def claim_table(table: str, source: str) -> socket.socket:
    """Hold `table` while this daemon runs, so that a second daemon in this network namespace
    cannot take the same table (its start would empty our sets). The name of an abstract Unix
    socket belongs to the network namespace, as the table does, and the kernel frees it when
    the process ends, kill -9 included. Raises ConfigError naming NFT_TABLE."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(f"\0portwarden-nft-table-{table}")
    except OSError as error:
        sock.close()
        if error.errno != errno.EADDRINUSE:
            raise
        raise ConfigError(
            source,
            "another portwarden in this network namespace blocks with "
            f"nftables table inet {table}; give each instance its own NFT_TABLE",
            key="NFT_TABLE",
            value=table,
        ) from None
    return sock


_OUR_SETS = frozenset({"blocked4", "blocked6"})
_OUR_CHAINS = frozenset({"input", "forward"})
# What `nft -j list table` gives besides the table's objects.
_LISTING_HEADERS = frozenset({"metainfo", "table", "rule"})


class TableListing(NamedTuple):
    """What a table of ours holds (NftBlocker.listing)."""

    elements: frozenset[str]  # the addresses in its sets, as the store writes them
    ours_alone: bool  # nothing but our sets and chains (no other set, map, chain, ...)


def _address(element: str | dict[str, Any]) -> IPAddress:
    """A set element of `nft -j list`: its address alone, or an object with its timeout."""
    return ipaddress.ip_address(element["elem"]["val"] if isinstance(element, dict) else element)


def _by_set(blocks: Iterable[tuple[IPAddress | str, int | None]]) -> dict[str, list[Element]]:
    by_set: dict[str, list[Element]] = {"blocked4": [], "blocked6": []}
    for address, seconds in blocks:
        name = set_of(address)
        family = socket.AF_INET6 if name == "blocked6" else socket.AF_INET
        by_set[name].append((socket.inet_pton(family, str(address)), seconds))
    return by_set


class NftBlocker:
    """Our table and sets. Every change is one transaction (replace_all and put_back: one to
    make the table, one to fill its sets)."""

    def __init__(self, nft: Nft, forward: bool, table: str = DEFAULT_TABLE) -> None:
        self._nft = nft
        self._forward = forward
        self.table = table
        self._link: NftLink | None = None

    def ensure(self) -> None:
        """Create (or repair) the table, sets and rules; existing set elements are kept."""
        self._nft.run("\n".join(self._ensure_lines()) + "\n")

    def _chains(self) -> list[str]:
        return ["input", "forward"] if self._forward else ["input"]

    def _ensure_lines(self) -> list[str]:
        lines = [
            f"add table inet {self.table}",
            f"add set inet {self.table} blocked4 {{ type ipv4_addr; flags timeout; }}",
            f"add set inet {self.table} blocked6 {{ type ipv6_addr; flags timeout; }}",
        ]
        for chain in self._chains():
            lines += [
                f"add chain inet {self.table} {chain} {{ type filter hook {chain} priority "
                f"{_CHAIN_PRIORITY}; policy accept; }}",
                f"flush chain inet {self.table} {chain}",
                f"add rule inet {self.table} {chain} ip saddr @blocked4 drop",
                f"add rule inet {self.table} {chain} ip6 saddr @blocked6 drop",
            ]
        if not self._forward and self._has_chain("forward"):
            lines.append(f"delete chain inet {self.table} forward")
        return lines

    def _has_chain(self, chain: str) -> bool:
        try:
            return self._netlink().has(chain)
        except (OSError, NftLinkError) as error:
            raise NftError(f"looking for chain {chain} of table {self.table}: {error}") from None

    def add(self, address: IPAddress, seconds: int | None) -> bool:
        """Add one address with a timeout in seconds (None: until removed), straight over
        netlink: this is the block on the packet path (see nftlink). Returns whether our table
        was gone and has been made again (with this element alone)."""
        try:
            try:
                self._netlink().add(set_of(address), address, seconds)
            except NftLinkError as error:
                if error.code != errno.ENOENT:
                    raise
                self.ensure()  # our table was removed (`nft flush ruleset`): make it again
                self._netlink().add(set_of(address), address, seconds)
                return True
        except (OSError, NftLinkError) as error:
            raise NftError(f"adding {address} to {set_of(address)}: {error}") from None
        return False

    def has(self, address: IPAddress) -> bool:
        """Whether `address` is in our sets (one netlink request); raises NftError when the
        kernel cannot say."""
        try:
            return self._netlink().has_element(set_of(address), address)
        except (OSError, NftLinkError) as error:
            raise NftError(f"looking for {address} in {set_of(address)}: {error}") from None

    def damage(self) -> str | None:
        """What is missing: our table (a firewall reload that flushes the whole ruleset removes
        it), or a chain's drop rules (`nft flush chain`); None when all is there, or when the
        kernel cannot say (so that nothing is redone for nothing)."""
        try:
            link = self._netlink()
            if not link.has():
                return f"table inet {self.table}"
            for chain in self._chains():
                if link.rules(chain) < _RULES_PER_CHAIN:
                    return f"the rules of chain {chain} of table inet {self.table}"
        except (OSError, NftLinkError):
            return None
        return None

    def _netlink(self) -> NftLink:
        if self._link is None:
            self._link = NftLink(self.table)
        return self._link

    def remove(self, addresses: Iterable[IPAddress]) -> None:
        """Remove addresses; ones already gone (expired in the kernel) are not an error.

        One batch first; if nft refuses it because an element is missing, one by one. (Listing
        the set first is not reliable: a dump during a hash resize can miss elements.)
        """
        lines = [f"delete element inet {self.table} {set_of(a)} {{ {a} }}" for a in addresses]
        if not lines:
            return
        try:
            self._nft.run("\n".join(lines) + "\n")
        except NftError:
            for line in lines:
                with contextlib.suppress(NftError):  # not in the set any more
                    self._nft.run(line + "\n")

    def exists(self) -> bool:
        """Whether the table is there (one netlink request); NftError when the kernel cannot
        say."""
        try:
            return self._netlink().has()
        except (OSError, NftLinkError) as error:
            raise NftError(f"looking for table {self.table}: {error}") from None

    def listing(self) -> TableListing:
        """The table's elements, and whether it holds nothing but what we make in it (one
        listing: for a table an older NFT_TABLE left, see old_tables._leave_table)."""
        listed = self._nft.run(f"list table inet {self.table}", json_output=True)
        elements: set[str] = set()
        ours_alone = True
        for item in json.loads(listed)["nftables"]:
            kind, body = next(iter(item.items()))
            if kind == "set" and body.get("name") in _OUR_SETS:
                elements.update(str(_address(element)) for element in body.get("elem", []))
            elif kind == "chain" and body.get("name") in _OUR_CHAINS:
                continue
            elif kind not in _LISTING_HEADERS:
                ours_alone = False
        return TableListing(frozenset(elements), ours_alone)

    def elements_inside(self, network: Network | None) -> list[IPAddress]:
        """The elements of our sets inside `network` (all of them when None); none when the
        table is not there. One address is looked up (one netlink request); a network takes a
        listing of its family's set (of both sets for None)."""
        if network is not None and network.num_addresses == 1:
            address = network.network_address
            return [address] if self.has(address) else []
        if network is None:
            names = sorted(_OUR_SETS)
        else:
            names = ["blocked6" if network.version == 6 else "blocked4"]
        found = []
        for name in names:
            try:
                listed = self._nft.run(f"list set inet {self.table} {name}", json_output=True)
            except NftError:
                continue  # no table, or no such set in it
            for item in json.loads(listed)["nftables"]:
                for element in item.get("set", {}).get("elem", []):
                    address = _address(element)
                    if network is None or address in network:
                        found.append(address)
        return found

    def replace_all(self, blocks: Iterable[tuple[IPAddress | str, int | None]]) -> None:
        """Make the sets hold exactly `blocks` (start-up restore), in one transaction."""
        self.ensure()
        self._fill(blocks, flush=True)

    def put_back(self, blocks: Iterable[tuple[IPAddress | str, int | None]]) -> None:
        """Make the table again if it is gone and add `blocks` to the sets; nothing already
        there is removed (a block the loop has just added stays)."""
        self.ensure()
        self._fill(blocks, flush=False)

    def _fill(self, blocks: Iterable[tuple[IPAddress | str, int | None]], flush: bool) -> None:
        try:
            self._netlink().fill(_by_set(blocks), flush)
        except (OSError, NftLinkError) as error:
            raise NftError(f"filling the sets of table {self.table}: {error}") from None

    def drop_table(self) -> bool:
        """Remove our table and everything in it. Returns False if there was none."""
        try:
            self._nft.run(f"delete table inet {self.table}")
        except NftError:
            return False
        return True
