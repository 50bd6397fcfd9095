"""What the parts of respond/actions.py share: the settings in force, the store connection,
this boot's id, and the reverse lookups (RESOLVE_HOST) of blocked and noted addresses."""

import time

from portwarden import limits
from portwarden.config import Settings
from portwarden.net.addresses import IPAddress
from portwarden.net.resolve import Lookup, Resolver
from portwarden.store.db import Store
from portwarden.text import safe_hostname


class ActionContext:
    def __init__(self, settings: Settings, store: Store, boot: str) -> None:
        """`settings`: replaced at each reload (Actions.reconfigure); `boot`: store.db.boot_id,
        which the blocks record (routes and firewall rules do not survive a reboot)."""
        self.settings = settings
        self.store = store
        self.boot = boot
        self._resolver: Resolver | None = None

    def start_lookup(self, address: IPAddress) -> Lookup | None:
        if not self.settings.resolve_host:
            return None
        if self._resolver is None:
            self._resolver = Resolver()
        return self._resolver.start(address)


def hostname(lookup: Lookup | None, address: str, since: float) -> str:
    """The name `lookup` finds by RESOLVE_HOST_TIMEOUT_S after `since` (when the block or note
    was made), made safe for a line; else the address."""
    name = Resolver.name(lookup, since + limits.RESOLVE_HOST_TIMEOUT_S - time.time())
    return address if name is None else safe_hostname(name)
