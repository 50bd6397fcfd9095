"""UDP sockets of this host that closed lately: what a datagram that reached a free port may
have been the reply to."""

from portwarden import limits
from portwarden.net.addresses import IPAddress

_Key = tuple[int, IPAddress | None, int]  # local port, peer address and port (None, 0: none)


class ClosedClients:
    """The UDP sockets that closed within limits.CLOSED_UDP_CLIENT_S, each as (local port,
    the peer it was connected to or None) and when we heard of it (wall clock, as the kernel
    stamps packets). At most limits.CLOSED_UDP_CLIENTS_MAX, the oldest dropped first."""

    def __init__(self) -> None:
        self._closed_at: dict[_Key, float] = {}  # in the order we heard of them

    def __len__(self) -> int:
        return len(self._closed_at)

    def add(self, port: int, peer: IPAddress | None, peer_port: int, at: float) -> None:
        key = (port, peer, peer_port)
        self._closed_at.pop(key, None)  # to the end: the newest
        self._closed_at[key] = at
        while len(self._closed_at) > limits.CLOSED_UDP_CLIENTS_MAX:
            del self._closed_at[next(iter(self._closed_at))]

    def replied(
        self,
        port: int,
        src: IPAddress,
        sport: int,
        arrived: float,
        now: float,
        reply_sources: frozenset[int] = frozenset(),
    ) -> bool:
        """Whether a datagram from `src`:`sport` to `port` that `arrived` then is a reply to a
        socket that has closed: one connected to that peer that closed lately (a reply, late
        or not); or an unconnected one that was still open when it arrived (so the port was
        not free: it took the datagram), or that closed lately when `sport` is one of
        `reply_sources` (UDP_REPLY_SOURCE_PORTS: a late answer to a one-shot client such as
        ntpdate on 123, whatever the port range; an unconnected socket does not say whom it
        asked, so from any other source port it is a probe)."""
        connected = self._closed_at.get((port, src, sport))
        if connected is not None and now - connected < limits.CLOSED_UDP_CLIENT_S:
            return True
        unconnected = self._closed_at.get((port, None, 0))
        if unconnected is None:
            return False
        return unconnected >= arrived or (
            sport in reply_sources and now - unconnected < limits.CLOSED_UDP_CLIENT_S
        )

    def expire(self, now: float) -> None:
        """Forget what closed longer than CLOSED_UDP_CLIENT_S ago."""
        while self._closed_at:
            key, at = next(iter(self._closed_at.items()))
            if now - at < limits.CLOSED_UDP_CLIENT_S:
                break
            del self._closed_at[key]
