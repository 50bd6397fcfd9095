"""The nftables table this process blocks with (NFT_TABLE, the built-in blocker): made right at
its first use, reshaped after a reload, its elements added and removed; also the tables an
earlier NFT_TABLE named, which hold elements of blocks made before it changed (see
respond/old_tables.py)."""

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from portwarden import limits
from portwarden.config import BlockMode, ConfigError, Settings
from portwarden.config.ignore import Network
from portwarden.config.values import NftUse
from portwarden.net.addresses import IPAddress
from portwarden.net.nftables import Nft, NftError, load_library
from portwarden.respond.context import ActionContext
from portwarden.respond.nft import NftBlocker, claim_table
from portwarden.respond.recorded import table_of
from portwarden.store.db import DONE, FAILED, NFT, Action, Store
from portwarden.text import one_line

log = logging.getLogger("portwarden")


def uses_nft(settings: Settings) -> bool:
    """Whether new blocks go into our nftables sets."""
    if BlockMode.BLOCK not in (settings.block_tcp, settings.block_udp):
        return False
    use = settings.block_nftables
    return use is NftUse.ALWAYS or (use is NftUse.AUTO and settings.kill_route is None)


def works_with_nft(settings: Settings, store: Store) -> bool:
    """Whether this instance has our nftables table to look after, and so holds NFT_TABLE
    (nft.claim_table): it blocks with nftables, or did (its store has blocks with an
    nftables action, ended ones too: an element of theirs may still be there, put back by a
    ruleset saved earlier, or added by a daemon killed before it recorded its block). One
    that never did leaves the table alone: another instance may block with it."""
    return uses_nft(settings) or store.has_action(NFT)


def nft_warning(settings: Settings) -> str | None:
    """For check-config: the built-in blocker is on but libnftables cannot be loaded here."""
    if not uses_nft(settings):
        return None
    try:
        load_library()
    except NftError as error:
        return (
            f"blocking uses the built-in nftables blocker (BLOCK_NFTABLES), but {error}; "
            "every block's nftables step would fail"
        )
    return None


def seconds_left(until: float | None, now: float) -> int | None:
    """An element's kernel timeout for a block ending at `until` (None: never): at least a
    second, and at most limits.BLOCK_SECONDS_MAX (the kernel's range), also when the clock was
    set back after a block of that length."""
    if until is None:
        return None
    return min(limits.BLOCK_SECONDS_MAX, max(1, round(until - now)))


class NftTable:
    def __init__(self, context: ActionContext) -> None:
        self._context = context
        self._blocker: NftBlocker | None = None
        self._nft: Nft | None = None  # kept when ensure() fails, for the next try
        self.remade = False  # the last `add` found our table gone and made it again

    @property
    def name(self) -> str:
        """NFT_TABLE now."""
        return self._context.settings.nft_table

    def in_use(self) -> bool:
        """works_with_nft, for the settings in force."""
        return works_with_nft(self._context.settings, self._context.store)

    def blocker(self) -> NftBlocker:
        if self._blocker is None:
            blocker = self._unchecked()
            blocker.ensure()  # only a table and sets that are ours and right are used
            self._blocker = blocker
        return self._blocker

    def _unchecked(self) -> NftBlocker:
        return NftBlocker(self._library(), self._context.settings.block_forward, self.name)

    def rebuild(self) -> None:
        """After a reload that changed the table's shape (BLOCK_FORWARD): if it was in use, a
        blocker of the new shape at once, its table not yet changed (so `damage` watches the
        new shape; `reshape` makes the table right)."""
        if self._blocker is not None:
            self._blocker = self._unchecked()

    def reshape(self) -> NftBlocker:
        """Make our table match the settings (after Actions.reconfigure said it changed shape)."""
        self._blocker = None
        return self.blocker()

    def _library(self) -> Nft:
        if self._nft is None:
            self._nft = Nft()
        return self._nft

    def drop_table(self) -> bool:
        """Remove our nftables table; False if there was none (it is not made to be removed).
        The next block makes it again."""
        self._blocker = None
        return self._unchecked().drop_table()

    def sweep(self, network: Network | None, listed: Callable[[], set[str]]) -> int:
        """Remove the elements of our sets inside `network` (all when None) that `listed()`,
        the addresses of the store's active nftables blocks, does not hold: one added by a
        daemon killed before it recorded its block (see BlockMaker.record), or one of an ended
        block that a ruleset saved earlier brought back (`nft -f`). Returns how many.

        The store is read after the sets: while a daemon runs, its loop records a block a
        fraction of a millisecond after it adds the element, so only an element added in
        that last fraction could be taken for one the store does not list; it comes back at
        its source's next probe (ResponsePolicy._put_element_back)."""
        blocker = self._blocker or self._unchecked()
        try:
            found = blocker.elements_inside(network)
            if not found:
                return 0
            keep = listed()
            stale = [a for a in found if str(a) not in keep]
            blocker.remove(stale)
        except NftError as error:
            log.error("nftables: %s", one_line(str(error)))
            return 0
        return len(stale)

    def add(self, address: IPAddress, until: float | None) -> Action:
        """Add the element, its kernel timeout ending at `until` as the store's block does."""
        try:
            self.remade = self.blocker().add(address, seconds_left(until, time.time()))
        except NftError as error:
            log.error("nftables block of %s failed: %s", address, one_line(str(error)))
            return self.action(f"{FAILED}: {one_line(str(error))}")
        return self.action(DONE)

    def action(self, status: str) -> Action:
        """An nftables action, with the table its element goes in (see recorded.table_of)."""
        return Action(NFT, (), status, (self.name,))

    def tables_of(self, action: Action) -> list[str]:
        """Where an undo removes an nftables action's element: the table it was added to (see
        recorded.table_of) and, if NFT_TABLE has changed since, the one now in use, which the
        start filled (old_tables.leave_old_tables)."""
        return sorted({table_of(action), self.name})

    def remove_from(self, elements: list[tuple[str, IPAddress]]) -> None:
        """Remove each (table, address): one batch per table. A table of an earlier NFT_TABLE
        is left alone when it is not there, or when another running portwarden holds it (it
        is that daemon's now); one that is not there (yet) is not made to remove nothing."""
        by_table: dict[str, list[IPAddress]] = {}
        for table, address in elements:
            by_table.setdefault(table, []).append(address)
        for table, addresses in by_table.items():
            if table == self.name:
                (self._blocker or self._unchecked()).remove(addresses)
                continue
            with self.other_table(table) as blocker:
                if blocker is not None and blocker.exists():
                    blocker.remove(addresses)

    @contextlib.contextmanager
    def other_table(self, table: str) -> Iterator[NftBlocker | None]:
        """A table that an earlier NFT_TABLE named, held (nft.claim_table) while it is used;
        None when another running portwarden holds it."""
        try:
            claim = claim_table(table, self._context.settings.source)
        except ConfigError:
            log.warning(
                "nftables: table inet %s (an earlier NFT_TABLE) is held by another "
                "running portwarden: left as it is",
                table,
            )
            yield None
            return
        with contextlib.closing(claim):
            yield NftBlocker(self._library(), False, table)

    def damage(self) -> str | None:
        """What is missing of our nftables table (NftBlocker.damage), if this process has been
        using it."""
        return None if self._blocker is None else self._blocker.damage()
