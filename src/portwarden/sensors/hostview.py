"""What the sensors need to know about this host, refreshed by the daemon every REFRESH_S."""

import os
import socket
from dataclasses import dataclass, field

from portwarden.net.addresses import IPAddress, Proto
from portwarden.net.local import local_addresses
from portwarden.net.ports import Service, services
from portwarden.sensors.closedclients import ClosedClients


@dataclass
class HostView:
    """Local addresses and services (port and address served, see net.ports), as of the last
    refresh(); and when each was last seen (SERVICE_GONE_GRACE), kept here because the daemon
    keeps this view for its whole life while a reload replaces the sensors; so are the connected UDP
    client sockets that closed lately (their replies are no probes). Nothing survives a
    restart."""

    addresses: frozenset[IPAddress] = field(default_factory=frozenset)
    tcp_bound: frozenset[Service] = field(default_factory=frozenset)
    udp_bound: frozenset[Service] = field(default_factory=frozenset)
    # Protocol -> service -> the last time (monotonic) it was seen: as many keys as this host's
    # programs made services within the grace (only they can add one).
    served_at: dict[Proto, dict[Service, float]] = field(
        default_factory=lambda: {Proto.TCP: {}, Proto.UDP: {}}
    )
    closed_clients: ClosedClients = field(default_factory=ClosedClients)
    # The inodes of the classic modes' sockets (see `own`).
    _own: set[int] = field(default_factory=set, init=False, repr=False)

    def own(self, sock: socket.socket) -> None:
        """`sock` is one of the daemon's own tripwires (a classic mode's port), no service,
        though the kernel lists it as one: left out of the services until `disown`. Were it
        counted, a reload to a stealth or advanced mode would find the port "served" a moment
        ago and keep it out of the tripwires for SERVICE_GONE_GRACE."""
        self._own.add(os.fstat(sock.fileno()).st_ino)

    def disown(self, sock: socket.socket) -> None:
        """`sock`, about to close, is ours no more (its inode may go to another socket)."""
        self._own.discard(os.fstat(sock.fileno()).st_ino)

    def refresh(self) -> bool:
        """Re-read everything. Returns True when the services changed."""
        self.addresses = local_addresses()
        tcp = services(Proto.TCP, leave_out=self._own)
        udp = services(Proto.UDP, leave_out=self._own)
        changed = (tcp, udp) != (self.tcp_bound, self.udp_bound)
        self.tcp_bound, self.udp_bound = tcp, udp
        return changed

    def bound(self, proto: Proto) -> frozenset[Service]:
        return self.tcp_bound if proto is Proto.TCP else self.udp_bound
