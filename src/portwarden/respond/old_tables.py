"""The tables an earlier NFT_TABLE named: once NFT_TABLE changed, the elements of the blocks made
before are moved to the table now in use (at start), and the old tables removed when nothing
else is in them (at start, and at `unblock --all`)."""

import ipaddress
import logging

from portwarden.net.nftables import NftError
from portwarden.respond.nft import TableListing
from portwarden.respond.nft_table import NftTable
from portwarden.respond.recorded import table_of
from portwarden.store.db import NFT, Action, BlockRecord, Store
from portwarden.text import counted, one_line

log = logging.getLogger("portwarden")


def _not_ours(listing: TableListing, addresses: set[str]) -> str:
    """What keeps a table of an earlier NFT_TABLE from being removed, with `addresses` (the
    store's) taken out of it."""
    others = len(listing.elements - addresses)
    if others:
        return f"{counted(others, 'element')} the store does not know"
    return "sets, chains or rules that are not ours"


def leave_old_tables(nft: NftTable, store: Store, active: list[BlockRecord]) -> list[BlockRecord]:
    """At start, once the sets of NFT_TABLE hold every active block: the blocks whose
    element went into the table of an earlier NFT_TABLE are taken out of it, and that
    table is removed if it holds nothing else (else it is left, and the log says how to
    remove it); their actions then name the table now in use. Returns `active` so
    changed. A table that another running portwarden holds is left as it is; one that
    cannot be changed keeps its blocks' actions as they were (the next start tries again,
    and an unblock removes their elements from both tables)."""
    now = nft.name
    by_table: dict[str, set[str]] = {}
    for record in active:
        for action in record.actions:
            if action.kind == NFT and table_of(action) != now:
                by_table.setdefault(table_of(action), set()).add(record.address)
    left = {table for table, addresses in by_table.items() if _leave_table(nft, table, addresses)}
    if not left:
        return active
    moved: dict[int, tuple[Action, ...]] = {}
    for record in active:
        actions = tuple(
            a._replace(do=(now,)) if a.kind == NFT and table_of(a) in left else a
            for a in record.actions
        )
        if actions != record.actions:
            moved[record.id] = actions
    store.set_actions_many(list(moved.items()))
    return [r._replace(actions=moved[r.id]) if r.id in moved else r for r in active]


def _leave_table(nft: NftTable, old: str, addresses: set[str]) -> bool:
    """leave_old_tables for one table; whether its blocks are left (False: it could not
    be changed)."""
    now = nft.name
    moved = f"NFT_TABLE was {old}, now {now}: {counted(len(addresses), 'active block')}"
    with nft.other_table(old) as blocker:
        if blocker is None:
            return True  # another daemon's now: nothing of it is ours to change
        try:
            if not blocker.exists():  # a reboot or a flush took it
                return True
            listing = blocker.listing()
            if listing.ours_alone and listing.elements <= addresses:
                blocker.drop_table()
                log.warning(
                    "nftables: %s moved to table inet %s; table inet %s removed", moved, now, old
                )
                return True
            blocker.remove([ipaddress.ip_address(a) for a in listing.elements & addresses])
        except NftError as error:
            log.error(
                "nftables: %s: they are in table inet %s, but could not be taken out "
                "of table inet %s (%s): it still drops them; tried again at the next "
                "start",
                moved,
                now,
                old,
                one_line(str(error)),
            )
            return False
    log.warning(
        "nftables: %s moved to table inet %s; table inet %s is left as it is: it "
        "holds %s (`nft delete table inet %s` removes it)",
        moved,
        now,
        old,
        _not_ours(listing, addresses),
        old,
    )
    return True


def drop_old_tables(nft: NftTable, store: Store) -> list[str]:
    """For `unblock --all`, once every block has ended: each table of an earlier NFT_TABLE
    that the store's blocks (ended ones too) name is removed, as at start
    (leave_old_tables), if it is there and ours alone, holds no element, and no other
    running portwarden holds it; else it is left, and the log says why. Returns the
    tables removed."""
    recorded = {table_of(Action(NFT, do=do)) for do in store.dos_of(NFT)}
    removed = []
    for old in sorted(recorded - {nft.name}):
        with nft.other_table(old) as blocker:
            if blocker is None or not blocker.exists():
                continue
            listing = blocker.listing()
            if listing.ours_alone and not listing.elements:
                blocker.drop_table()
                removed.append(old)
                continue
        log.warning(
            "nftables: table inet %s (an earlier NFT_TABLE) is left as it is: it "
            "holds %s (`nft delete table inet %s` removes it)",
            old,
            _not_ours(listing, set()),
            old,
        )
    return removed
