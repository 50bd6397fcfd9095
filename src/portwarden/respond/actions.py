"""Doing and undoing blocks: nftables, KILL_ROUTE, hosts.deny, KILL_RUN_CMD, and the files.

Used by the daemon's loop (it records a block and adds its nftables element), its action
worker thread (the rest) and, when no daemon runs, by the `unblock` and `reapply` commands,
each with its own Store connection. The store is the one source of truth: every action of a
block is recorded (planned, with how to do and undo it) before anything is done, an external
command is marked running while it runs, and each action is updated once it is done or
failed. So an unblock undoes everything that was, or may have been, done, and a start after a
kill at any moment finishes exactly what was interrupted. An undo that fails is recorded on
the ended block (a leftover) and tried again at the next unblock of its address and at start.

The work is shared among parts with one context (the settings in force, the store, this boot):
making blocks (respond/block.py), unblocking them (respond/unblock.py), putting them back in
force (respond/restore.py), our nftables table (respond/nft_table.py, with the tables of an
earlier NFT_TABLE in respond/old_tables.py) and the PortSentry files
(respond/portsentry_writer.py). What a block's recorded actions say: respond/recorded.py.
"""

import threading

from portwarden.config import Settings
from portwarden.respond.block import BlockMaker
from portwarden.respond.context import ActionContext
from portwarden.respond.nft_table import NftTable
from portwarden.respond.portsentry_writer import PortSentryWriter
from portwarden.respond.restore import Restorer
from portwarden.respond.unblock import Unblocker
from portwarden.store.db import Store, boot_id


class Actions:
    def __init__(
        self, settings: Settings, store: Store, stopping: threading.Event | None = None
    ) -> None:
        """`stopping`: set when the daemon stops; from then on no KILL_RUN_CMD is started (see
        BlockMaker._carry_out)."""
        self.context = ActionContext(settings, store, boot_id())
        self.nft = NftTable(self.context)
        self.files = PortSentryWriter(self.context)
        self.unblocks = Unblocker(self.context, self.nft, self.files)
        self.blocks = BlockMaker(self.context, self.nft, self.unblocks, self.files, stopping)
        self.restorer = Restorer(self.context, self.nft, self.unblocks, self.files)

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self.context.settings = settings

    @property
    def store(self) -> Store:
        return self.context.store

    def reconfigure(self, settings: Settings) -> bool:
        """Take new settings (SIGHUP). Returns whether the nftables blocker changed shape
        (BLOCK_FORWARD): if it was in use, it is rebuilt at once, its table not yet changed
        (`nft.reshape()` makes the table right; so nft.damage goes on watching the new shape;
        the action worker reshapes the table right after)."""
        reshaped = settings.block_forward != self.settings.block_forward
        self.settings = settings
        if reshaped:
            self.nft.rebuild()
        return reshaped
