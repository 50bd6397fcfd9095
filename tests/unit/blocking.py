"""Settings for unit tests of blocking: everything in a temporary folder, nothing sent."""

import time
from pathlib import Path

from portwarden.config import Settings, load_settings
from portwarden.respond.actions import Actions
from portwarden.respond.block import BlockRequest
from portwarden.store.db import BlockRecord


def blocking_settings(folder: Path, extra: str = "") -> Settings:
    """BLOCK_TCP=1 without the nftables blocker (no privileges), hosts.deny in `folder`, no
    syslog or event log; `extra` is more configuration lines."""
    conf = folder / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{folder}/state"\nSYSLOG_SOCKET=""\nEVENT_LOG=""\n'
        f'HOSTS_DENY_FILE="{folder}/hosts.deny"\nBLOCK_TCP="1"\n'
        f'BLOCK_NFTABLES="0"\n{extra}'
    )
    return load_settings(conf)


def block(actions: Actions, request: BlockRequest) -> BlockRecord | None:
    """Record and carry out a block, as the daemon's loop and worker do between them."""
    now = time.time()
    record = actions.blocks.record(
        request, now, actions.blocks.until_for(str(request.address), now)
    )
    return None if record is None else actions.blocks.carry_out(record)
