"""UDP sockets of this host as they close: sock_diag's destroy broadcasts.

A client that takes its reply and closes its socket at once (SNMP, RADIUS, Kerberos, OpenVPN)
has often closed before the daemon reads its copy of the reply, so SmartVerify finds the port
free. The kernel tells every member of the groups SKNLGRP_INET_UDP_DESTROY and
SKNLGRP_INET6_UDP_DESTROY (of the socket's network namespace; no capability needed on 6.18,
root's sockets included) of each UDP socket it frees, with the socket's addresses: the port,
and the peer if it was connected.
The message leaves from a workqueue, some microseconds after the close (tens of them measured
on an idle host; see limits.UDP_CLOSE_NOTICE_S).

Layout from linux/sock_diag.h and linux/inet_diag.h.
"""

import ipaddress
import socket
import struct
from typing import NamedTuple

from portwarden import limits
from portwarden.net import netlink
from portwarden.net.addresses import IPAddress
from portwarden.net.buffers import make_room
from portwarden.net.local import unmapped
from portwarden.net.sockdiag import NETLINK_SOCK_DIAG

_SKNLGRP_INET_UDP_DESTROY = 2
_SKNLGRP_INET6_UDP_DESTROY = 4
_GROUPS = (1 << (_SKNLGRP_INET_UDP_DESTROY - 1)) | (1 << (_SKNLGRP_INET6_UDP_DESTROY - 1))
_SOCK_DIAG_BY_FAMILY = 20
# inet_diag_msg: family, state, timer, retrans; id: source port, destination port (network
# order), source and destination address (16 bytes each).
_MESSAGE = struct.Struct("!BBBBHH16s16s")
_COOKIE = struct.Struct("=II")  # idiag_cookie: the socket's cookie (SO_COOKIE), low half first
_COOKIE_AT = _MESSAGE.size + 4  # after the device index
_SO_COOKIE = 57  # not in Python's socket module


class UdpClose(NamedTuple):
    """A UDP socket of this host that closed: its local port, and its peer if it was
    connected (None: it was not, it could send to and hear from anyone)."""

    port: int
    peer: IPAddress | None
    peer_port: int
    cookie: int  # the kernel's id of the socket


def parse_close(payload: bytes) -> UdpClose | None:
    """One destroy message's inet_diag_msg; None if cut short or of another family."""
    if len(payload) < _COOKIE_AT + _COOKIE.size:
        return None
    family, _, _, _, port, peer_port, _, peer = _MESSAGE.unpack_from(payload)
    low, high = _COOKIE.unpack_from(payload, _COOKIE_AT)
    cookie = low | high << 32
    if family == socket.AF_INET:
        address: IPAddress = ipaddress.IPv4Address(peer[:4])
    elif family == socket.AF_INET6:
        address = unmapped(ipaddress.IPv6Address(peer))
    else:
        return None
    if peer_port == 0 or address.is_unspecified:
        return UdpClose(port, None, 0, cookie)
    return UdpClose(port, address, peer_port, cookie)


class UdpCloses:
    """A netlink socket subscribed to the UDP destroy broadcasts of this network namespace.
    Raises OSError when the kernel refuses (no sock_diag).

    The daemon's own sockets (SmartVerify's bind test binds the port it checks, and closes
    it) are left out: `own` them before they close. Every one of them must be known until its
    notice is read: one taken for a client's close would make any datagram held for its port
    a "reply" (a burst of probes to many free ports would hide itself). So up to
    limits.OWN_TESTS_MAX cookies are kept (more bind tests than a burst of that many ports,
    far more than the loop reads between two reads of the notices), and the notices are read
    to the end before held datagrams are judged (`read(drain=True)`)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        try:
            self.sock.bind((0, _GROUPS))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        make_room(self.sock)  # a burst of closes must not lose notices (ENOBUFS)
        self._own: dict[int, None] = {}  # cookies, oldest first
        self.lost = False  # notices were lost (ENOBUFS) since this was last cleared

    def own(self, sock: socket.socket) -> None:
        """`sock` is ours: its notice is not reported."""
        try:
            cookie = struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, _SO_COOKIE, 8))[0]
        except OSError:
            return
        self._own[cookie] = None
        if len(self._own) > limits.OWN_TESTS_MAX:  # notices lost (ENOBUFS): cookies stay
            del self._own[next(iter(self._own))]

    def read(self, drain: bool = False) -> list[UdpClose]:
        """What closed since the last read: up to UDP_CLOSES_RECEIVES_MAX receives' worth, or
        with `drain` up to UDP_CLOSES_DRAIN_RECEIVES_MAX (all that is queued, unless local
        programs close sockets without pause). A socket never bound (port 0) is left out:
        nothing replies to it."""
        found: list[UdpClose] = []
        most = limits.UDP_CLOSES_DRAIN_RECEIVES_MAX if drain else limits.UDP_CLOSES_RECEIVES_MAX
        for _ in range(most):
            try:
                data = self.sock.recv(limits.UDP_CLOSES_RECEIVE_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ENOBUFS: notices were lost (a burst of closes); go on
                self.lost = True
                continue
            try:
                for message in netlink.messages(data):
                    if message.kind == _SOCK_DIAG_BY_FAMILY:
                        close = parse_close(message.payload)
                        if close is None or close.port == 0:
                            continue
                        if close.cookie in self._own:
                            del self._own[close.cookie]
                        else:
                            found.append(close)
            except OSError:  # malformed: the kernel's own, so never expected
                continue
        return found

    def close(self) -> None:
        self.sock.close()
