"""Reverse DNS for RESOLVE_HOST, with a deadline.

The system resolver has no time limit of its own that we can set: a dead name server makes a
lookup take several seconds, and a scanner controls the answers of its own PTR records. So the
lookup runs on one resolver thread of ours and the block waits for it at most
RESOLVE_HOST_TIMEOUT_S; a name that comes later is not used. A lookup still waiting when its time
is up is cancelled, so a dead name server cannot pile up work.
"""

import queue
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from portwarden import limits
from portwarden.net.addresses import IPAddress

Lookup = Future[str]


class Resolver:
    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[str, Lookup]] = queue.Queue(limits.RESOLVE_QUEUE_MAX)
        self._thread: threading.Thread | None = None

    def start(self, address: IPAddress) -> Lookup | None:
        """Begin looking up `address`'s name; None when too many lookups wait already."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="portwarden-dns", daemon=True)
            self._thread.start()
        lookup: Lookup = Future()
        try:
            self._jobs.put_nowait((str(address), lookup))
        except queue.Full:
            return None
        return lookup

    @staticmethod
    def name(lookup: Lookup | None, timeout: float) -> str | None:
        """The name found within `timeout` seconds, else None (the lookup is cancelled)."""
        if lookup is None:
            return None
        try:
            return lookup.result(max(0.0, timeout))
        except (FutureTimeout, OSError, UnicodeError):
            lookup.cancel()
            return None

    def _run(self) -> None:
        while True:
            address, lookup = self._jobs.get()
            if not lookup.set_running_or_notify_cancel():
                continue  # its block stopped waiting
            try:
                lookup.set_result(socket.gethostbyaddr(address)[0])
            except (OSError, UnicodeError) as error:
                lookup.set_exception(error)
