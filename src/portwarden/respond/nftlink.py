"""The nftables requests that must be fast, straight over netfilter's netlink socket: add one
element to one of our sets (the block on the packet path), fill the sets with every active
block (the restore at start: 100,000 elements), and ask whether our table is still there
(every REFRESH_S).

libnftables parses the command and fetches its cache of tables and sets from the kernel before
it sends anything: about 0.1 ms when warm and 0.3-0.4 ms after an idle spell, which at 10,000
packets a second is three or four more packets let through, and most of a second for 100,000
elements written as text. A prepared message is one send and one acknowledgement. Everything
else (creating the table, removing elements) stays with libnftables.

Message layout from linux/netlink.h, linux/netfilter/nfnetlink.h and nf_tables.h.
"""

import contextlib
import errno
import functools
import os
import socket
import struct
from collections.abc import Callable

from portwarden import limits
from portwarden.net import netlink
from portwarden.net.addresses import IPAddress

NETLINK_NETFILTER = 12
_NFNL_SUBSYS_NFTABLES = 10
_BATCH_BEGIN, _BATCH_END = 16, 17  # NFNL_MSG_BATCH_*
_GETTABLE = _NFNL_SUBSYS_NFTABLES << 8 | 1  # NFT_MSG_GETTABLE
_GETCHAIN = _NFNL_SUBSYS_NFTABLES << 8 | 4  # NFT_MSG_GETCHAIN
_GETRULE = _NFNL_SUBSYS_NFTABLES << 8 | 7  # NFT_MSG_GETRULE
_NEWSETELEM = _NFNL_SUBSYS_NFTABLES << 8 | 12  # NFT_MSG_NEWSETELEM
_GETSETELEM = _NFNL_SUBSYS_NFTABLES << 8 | 13  # NFT_MSG_GETSETELEM
_DELSETELEM = _NFNL_SUBSYS_NFTABLES << 8 | 14  # NFT_MSG_DELSETELEM: with no elements, a flush
_NLM_F_CREATE = 0x400
_NFPROTO_INET = 1
_NLA_F_NESTED = 0x8000
_SO_SNDBUFFORCE = 32  # socket.SO_SNDBUFFORCE, which Python does not name
_SOL_NETLINK, _NETLINK_CAP_ACK = 270, 10  # linux/socket.h, linux/netlink.h
# Attribute numbers: NFTA_TABLE_NAME, NFTA_CHAIN_TABLE and _NAME, NFTA_SET_ELEM_LIST_*,
# NFTA_LIST_ELEM, NFTA_SET_ELEM_*, NFTA_DATA_VALUE.
_TABLE_NAME = 1
_CHAIN_TABLE, _CHAIN_NAME = 1, 3
_RULE_TABLE, _RULE_CHAIN = 1, 2
_LIST_TABLE, _LIST_SET, _LIST_ELEMENTS = 1, 2, 3
_LIST_ELEM = 1
_ELEM_KEY, _ELEM_TIMEOUT = 1, 4
_DATA_VALUE = 1


class NftLinkError(RuntimeError):
    """The kernel refused the request, or did not answer. `code` is the errno, if any."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


def _attr(kind: int, payload: bytes, nested: bool = False) -> bytes:
    header = struct.pack("=HH", 4 + len(payload), kind | (_NLA_F_NESTED if nested else 0))
    return header + payload + bytes(-len(payload) % 4)


def _name(kind: int, name: str) -> bytes:
    return _attr(kind, name.encode() + b"\0")


def _nfgenmsg(family: int, resource: int = 0) -> bytes:
    """The header every nf_tables message starts with: family, version, resource id."""
    return struct.pack("=BB", family, 0) + struct.pack("!H", resource)


def _message(
    kind: int, flags: int, sequence: int, family: int, resource: int, payload: bytes = b""
) -> bytes:
    return netlink.message(kind, flags, sequence, _nfgenmsg(family, resource) + payload)


def _marker(kind: int, sequence: int) -> bytes:
    """The start or end of a batch (one nf_tables transaction)."""
    return _message(kind, netlink.NLM_F_REQUEST, sequence, socket.AF_UNSPEC, _NFNL_SUBSYS_NFTABLES)


# Elements per NEWSETELEM message: their list is one attribute, whose length is 16 bits (an
# IPv6 element with a timeout is 40 bytes).
_CHUNK = 1000

Element = tuple[bytes, int | None]  # the packed address, and its timeout in seconds or None


def _element(packed: bytes, seconds: int | None) -> bytes:
    timeout = _attr(_ELEM_TIMEOUT, struct.pack("!Q", seconds * 1000)) if seconds else b""
    return _element_head(len(packed), len(timeout)) + packed + timeout


@functools.cache
def _element_head(key_size: int, timeout_size: int) -> bytes:
    """The three attribute headers in front of an element's key, which depend on the lengths
    alone (keys of 4 and 16 bytes need no padding): 100,000 elements at a restore."""
    key = _attr(_DATA_VALUE, bytes(key_size))
    return _attr(_LIST_ELEM, _attr(_ELEM_KEY, key, nested=True) + bytes(timeout_size), nested=True)[
        :12
    ]


def elements_batch(
    table: str, sets: dict[str, list[Element]], flush: bool, sequence: int
) -> tuple[bytes, int]:
    """The batch (one transaction) that adds the elements to the sets of inet `table`, after
    emptying those sets if `flush`. Its messages are numbered from `sequence` (the batch's
    begin) on; only the last one before the batch's end asks for an acknowledgement. Returns
    the batch (empty when there is nothing to do) and the number of its end."""
    parts: list[tuple[int, str, bytes]] = []
    for set_name, elements in sets.items():
        if flush:
            parts.append((_DELSETELEM, set_name, b""))
        for start in range(0, len(elements), _CHUNK):
            chunk = elements[start : start + _CHUNK]
            parts.append((_NEWSETELEM, set_name, b"".join(_element(*e) for e in chunk)))
    if not parts:
        return b"", sequence
    end = sequence + len(parts) + 1
    messages = [_marker(_BATCH_BEGIN, sequence)]
    for number, (kind, set_name, listed) in enumerate(parts, sequence + 1):
        payload = _name(_LIST_TABLE, table) + _name(_LIST_SET, set_name)
        if listed:
            payload += _attr(_LIST_ELEMENTS, listed, nested=True)
        flags = netlink.NLM_F_REQUEST | (_NLM_F_CREATE if kind == _NEWSETELEM else 0)
        flags |= netlink.NLM_F_ACK if number == end - 1 else 0
        messages.append(_message(kind, flags, number, _NFPROTO_INET, 0, payload))
    messages.append(_marker(_BATCH_END, end))
    return b"".join(messages), end


def get_request(table: str, chain: str | None, sequence: int) -> bytes:
    """Ask for inet `table`, or for its chain `chain` (not their rules, sets or elements): the
    answer, then an acknowledgement."""
    flags = netlink.NLM_F_REQUEST | netlink.NLM_F_ACK
    if chain is None:
        return _message(_GETTABLE, flags, sequence, _NFPROTO_INET, 0, _name(_TABLE_NAME, table))
    payload = _name(_CHAIN_TABLE, table) + _name(_CHAIN_NAME, chain)
    return _message(_GETCHAIN, flags, sequence, _NFPROTO_INET, 0, payload)


def element_request(table: str, set_name: str, packed: bytes, sequence: int) -> bytes:
    """Ask for one element (its key: `packed`) of a set of inet `table`: the element, then an
    acknowledgement; ENOENT when it is not there."""
    payload = _name(_LIST_TABLE, table) + _name(_LIST_SET, set_name)
    payload += _attr(_LIST_ELEMENTS, _element(packed, None), nested=True)
    flags = netlink.NLM_F_REQUEST | netlink.NLM_F_ACK
    return _message(_GETSETELEM, flags, sequence, _NFPROTO_INET, 0, payload)


def errors_in(data: bytes) -> list[tuple[int, int]]:
    """(sequence, errno) of every NLMSG_ERROR message in `data`, up to any damage; errno 0 is an
    acknowledgement."""
    found = []
    with contextlib.suppress(OSError):
        for answer in netlink.messages(data):
            if answer.kind == netlink.NLMSG_ERROR and len(answer.payload) >= 4:
                found.append((answer.sequence, netlink.error_code(answer)))
    return found


class NftLink:
    """A netfilter netlink socket of the current network namespace, for our table only. One
    thread uses it: the loop and the action worker each have their own."""

    def __init__(self, table: str) -> None:
        self._table = table
        self._sock = self._open()
        self._sequence = 0

    @staticmethod
    def _open() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        # An error answer without a copy of the failed message: a refused batch of 1,000
        # elements would otherwise echo 40 KB per message and overflow the receive buffer.
        sock.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)
        sock.bind((0, 0))
        sock.settimeout(limits.NETLINK_ANSWER_WAIT_S)
        return sock

    def add(self, set_name: str, address: IPAddress, seconds: int | None) -> None:
        """Add one element (an existing one is no error); raises NftLinkError."""
        self.fill({set_name: [(address.packed, seconds)]}, flush=False)

    def fill(self, sets: dict[str, list[Element]], flush: bool) -> None:
        """Add the elements to the sets, after emptying them if `flush`, in one transaction;
        raises NftLinkError (and then nothing was changed)."""
        for elements in sets.values():
            for _, seconds in elements:
                if seconds is not None and not 0 < seconds <= limits.BLOCK_SECONDS_MAX:
                    raise NftLinkError(f"timeout of {seconds} s is out of range")
        first = self._first()
        batch, end = elements_batch(self._table, sets, flush, first)
        self._sequence = end
        if batch:
            self._ask(batch, first, end)

    def has(self, chain: str | None = None) -> bool:
        """Whether our table (or its chain `chain`) exists; raises NftLinkError when the kernel
        cannot say. (`nft list chain` would fetch every set element first: 0.3 s for 100,000.)"""
        return self._exists(lambda sequence: get_request(self._table, chain, sequence))

    def has_element(self, set_name: str, address: IPAddress) -> bool:
        """Whether `address` is in our set `set_name` (False also when the set or table is
        gone, or the element has timed out); raises NftLinkError when the kernel cannot say."""
        return self._exists(
            lambda sequence: element_request(self._table, set_name, address.packed, sequence)
        )

    def _exists(self, request: Callable[[int], bytes]) -> bool:
        """Whether the kernel has what `request(sequence)` asks for (ENOENT: it has not)."""
        sequence = self._first()
        self._sequence = sequence
        try:
            self._ask(request(sequence), sequence, sequence + 1)
        except NftLinkError as error:
            if error.code == errno.ENOENT:
                return False
            raise
        return True

    def rules(self, chain: str) -> int:
        """How many rules our chain `chain` holds (0 when it is not there): a dump of that
        chain's rules alone (they name our sets; no element comes with them). Raises
        OSError."""
        names = _name(_RULE_TABLE, self._table) + _name(_RULE_CHAIN, chain)
        body = _nfgenmsg(_NFPROTO_INET) + names
        return len(netlink.dump(NETLINK_NETFILTER, [(_GETRULE, body)], "nftables rules"))

    def _first(self) -> int:
        """The number of a request's first message: past every earlier one (a late answer to
        an earlier request must not be taken for this one's)."""
        return self._sequence + 1 if self._sequence < 0x7F000000 else 1

    def _ask(self, request: bytes, first: int, end: int) -> None:
        """Send, then wait for the acknowledgement of message end - 1; an error on any message
        from `first` to `end` is the request's. After an error the socket is opened afresh:
        answers still on their way to the old one (one per refused message of a batch) must
        not meet the next request."""
        try:
            self._exchange(request, first, end)
        except NftLinkError as error:
            if error.code != errno.ENOENT:  # ENOENT: a table or chain looked for is not there
                self._sock.close()
                self._sock = self._open()
            raise

    def _exchange(self, request: bytes, first: int, end: int) -> None:
        try:
            if len(request) > self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2:
                # A batch must go in one send (the kernel reads a transaction from one buffer).
                self._sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, len(request) + 65536)
            self._sock.send(request)
            while True:
                for number, code in errors_in(self._sock.recv(65536)):
                    if not first <= number <= end:
                        continue  # the late answer to an earlier request
                    if code:
                        raise NftLinkError(os.strerror(code), code)
                    if number == end - 1:
                        return
        except TimeoutError:
            raise NftLinkError("no answer from the kernel") from None
        except OSError as error:
            code = error.errno or errno.EIO
            raise NftLinkError(os.strerror(code), code) from None
