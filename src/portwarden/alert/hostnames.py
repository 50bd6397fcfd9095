"""RESOLVE_HOST for the syslog attack lines: PortSentry wrote `name/ip`, looking the name up on
its packet path before it logged. Ours never waits on the packet path: a probe's lines wait,
in arrival order, until its source's name is known or RESOLVE_HOST_TIMEOUT_S has passed (then
the address stands in for the name, as in PortSentry when a lookup fails), and go out from the
loop's next turn. Names found are kept for the source's next probes, for a while and for a
bounded number of sources.
"""

from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Generic, TypeVar

from portwarden import limits
from portwarden.net.addresses import IPAddress
from portwarden.net.resolve import Lookup, Resolver
from portwarden.text import safe_hostname

T = TypeVar("T")


class HostNames(Generic[T]):
    def __init__(self, resolver: Resolver | None = None) -> None:
        self._resolver = resolver or Resolver()
        self._names: OrderedDict[str, tuple[str | None, float]] = OrderedDict()  # name, until
        self._lookups: dict[str, tuple[Lookup | None, float]] = {}
        self._waiting: deque[tuple[str, T]] = deque()

    def __len__(self) -> int:
        """How many items wait."""
        return len(self._waiting)

    def submit(self, address: IPAddress | None, item: T, now: float) -> bool:
        """Queue `item` until `address`'s name is known (None: an item that needs no name, kept
        in line behind those that wait); False when too many wait already (a flood: the item
        is the caller's to send at once, without a name)."""
        if len(self._waiting) >= limits.HOSTNAMES_WAITING_MAX:
            return False
        key = "" if address is None else str(address)
        if address is not None and self._name(key, now) is None and key not in self._lookups:
            started = self._resolver.start(address)
            self._lookups[key] = (started, now + limits.RESOLVE_HOST_TIMEOUT_S)
        self._waiting.append((key, item))
        return True

    def ready(self, now: float, stopping: bool = False) -> Iterator[tuple[T, str | None]]:
        """The items whose source's name is known or given up on (`stopping`: all of them), in
        the order they came, each with the name (escaped for a log line) or None."""
        while self._waiting:
            key, item = self._waiting[0]
            found = self._name(key, now) if key else (None, 0.0)
            if found is None:
                lookup, deadline = self._lookups.get(key, (None, now))
                if lookup is not None and not lookup.done() and now < deadline and not stopping:
                    return  # the first in line waits: later ones keep their place
                self._lookups.pop(key, None)
                found = self._keep(key, Resolver.name(lookup, 0.0), now)
            self._waiting.popleft()
            yield item, found[0]

    def _name(self, key: str, now: float) -> tuple[str | None, float] | None:
        known = self._names.get(key)
        return None if known is None or now >= known[1] else known

    def _keep(self, key: str, name: str | None, now: float) -> tuple[str | None, float]:
        kept = limits.HOSTNAME_KEPT_S if name else limits.HOSTNAME_FAILED_KEPT_S
        found = (None if name is None else safe_hostname(name), now + kept)
        self._names[key] = found
        self._names.move_to_end(key)
        while len(self._names) > limits.HOSTNAMES_KEPT_MAX:
            self._names.popitem(last=False)
        return found
