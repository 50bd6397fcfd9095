"""The two nftables requests the daemon makes all the time, straight over netfilter's netlink
socket: add one element to one of our sets (the block on the packet path), and ask whether our
table is still there (every REFRESH_S).

libnftables parses the command and fetches its cache of tables and sets from the kernel before
it sends anything: about 0.1 ms when warm and 0.3-0.4 ms after an idle spell, which at 10,000
packets a second is three or four more packets let through. A prepared message is one send and
one acknowledgement. Everything else (creating the table, removing elements, the restore at
start) stays with libnftables.

Message layout from linux/netlink.h, linux/netfilter/nfnetlink.h and nf_tables.h.
"""

import contextlib
import errno
import os
import socket
import struct

from portwarden import limits
from portwarden.config.ignore import Address
from portwarden.net import netlink

NETLINK_NETFILTER = 12
_NFNL_SUBSYS_NFTABLES = 10
_BATCH_BEGIN, _BATCH_END = 16, 17  # NFNL_MSG_BATCH_*
_GETTABLE = _NFNL_SUBSYS_NFTABLES << 8 | 1  # NFT_MSG_GETTABLE
_NEWSETELEM = _NFNL_SUBSYS_NFTABLES << 8 | 12  # NFT_MSG_NEWSETELEM
_NLM_F_CREATE = 0x400
_NFPROTO_INET = 1
_NLA_F_NESTED = 0x8000
# Attribute numbers: NFTA_TABLE_NAME, NFTA_SET_ELEM_LIST_*, NFTA_LIST_ELEM, NFTA_SET_ELEM_*,
# NFTA_DATA_VALUE.
_TABLE_NAME = 1
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


def _message(kind: int, flags: int, sequence: int, family: int, resource: int,
             payload: bytes = b"") -> bytes:  # fmt: skip
    nfgenmsg = struct.pack("=BB", family, 0) + struct.pack("!H", resource)
    return netlink.message(kind, flags, sequence, nfgenmsg + payload)


def _marker(kind: int, sequence: int) -> bytes:
    """The start or end of a batch (one nf_tables transaction)."""
    return _message(kind, netlink.NLM_F_REQUEST, sequence, socket.AF_UNSPEC, _NFNL_SUBSYS_NFTABLES)


def add_element_batch(table: str, set_name: str, address: Address, seconds: int | None,
                      sequence: int) -> bytes:  # fmt: skip
    """The batch that adds `address` (with a timeout, or none) to inet `table` `set_name`.
    Only the NEWSETELEM message (number `sequence`) asks for an acknowledgement."""
    element = _attr(_ELEM_KEY, _attr(_DATA_VALUE, address.packed), nested=True)
    if seconds:
        element += _attr(_ELEM_TIMEOUT, struct.pack("!Q", seconds * 1000))
    payload = (
        _name(_LIST_TABLE, table)
        + _name(_LIST_SET, set_name)
        + _attr(_LIST_ELEMENTS, _attr(_LIST_ELEM, element, nested=True), nested=True)
    )
    flags = netlink.NLM_F_REQUEST | _NLM_F_CREATE | netlink.NLM_F_ACK
    return (
        _marker(_BATCH_BEGIN, sequence - 1)
        + _message(_NEWSETELEM, flags, sequence, _NFPROTO_INET, 0, payload)
        + _marker(_BATCH_END, sequence + 1)
    )


def get_table_request(table: str, sequence: int) -> bytes:
    """Ask for inet `table` (not its sets or elements): the answer, then an acknowledgement."""
    flags = netlink.NLM_F_REQUEST | netlink.NLM_F_ACK
    return _message(_GETTABLE, flags, sequence, _NFPROTO_INET, 0, _name(_TABLE_NAME, table))


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
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._sock.bind((0, 0))
        self._sock.settimeout(netlink.ANSWER_WAIT_S)
        self._sequence = 0

    def add(self, set_name: str, address: Address, seconds: int | None) -> None:
        """Add one element (an existing one is no error); raises NftLinkError."""
        if seconds is not None and not 0 < seconds <= limits.BLOCK_SECONDS_MAX:
            raise NftLinkError(f"timeout of {seconds} s is out of range")
        sequence = self._next()
        self._ask(add_element_batch(self._table, set_name, address, seconds, sequence),
                  sequence)  # fmt: skip

    def has_table(self) -> bool:
        """Whether our table exists; raises NftLinkError when the kernel cannot say."""
        sequence = self._next()
        try:
            self._ask(get_table_request(self._table, sequence), sequence)
        except NftLinkError as error:
            if error.code == errno.ENOENT:
                return False
            raise
        return True

    def _next(self) -> int:
        self._sequence = (self._sequence + 3) % 0x7FFFFFF0
        return self._sequence + 1

    def _ask(self, request: bytes, sequence: int) -> None:
        """Send, then wait for the acknowledgement of message `sequence` (a batch's begin and
        end are sequence - 1 and sequence + 1; an error on them is the batch's)."""
        try:
            self._sock.send(request)
            while True:
                for number, code in errors_in(self._sock.recv(65536)):
                    if not sequence - 1 <= number <= sequence + 1:
                        continue  # the late answer to an earlier request
                    if code:
                        raise NftLinkError(os.strerror(code), code)
                    if number == sequence:
                        return
        except TimeoutError:
            raise NftLinkError("no answer from the kernel") from None
        except OSError as error:
            code = error.errno or errno.EIO
            raise NftLinkError(os.strerror(code), code) from None
