"""The actions a block records, and what they say: their kinds and statuses, whether the block
took effect (and lasts a restart), what holds it in force, and what its unblock leaves.

Every action of a block is recorded (store.db.Action) before anything is done, and updated
once it is done or failed: see respond/actions.py.
"""

from portwarden.net.nftables import DEFAULT_TABLE
from portwarden.store.db import (
    COMMAND,
    DONE,
    FAILED,
    HOSTS_DENY,
    ROUTE,
    UNDO_FAILED,
    Action,
    BlockRecord,
)

NOT_RUN = f"{FAILED}: not run (the daemon stopped before its turn)"
# A hosts.deny line or a KILL_ROUTE route that was there before the block (PortSentry's
# leftover, the administrator's own): it denies the host, but it is not ours, so no unblock
# removes it.
PRESENT = "present"
IN_FORCE = (DONE, PRESENT)
IGNORED = "ignored"  # the `ended_by` of a block whose address is now in the ignore file
# The `ended_by` of a block whose address became one never blocked (a gateway, a name server, a
# local address) after its block.
PROTECTED = "protected"


def table_of(action: Action) -> str:
    """The nftables table an nftables action's element went into: the NFT_TABLE of its day,
    recorded since NFT_TABLE can change between runs; a record made before it was recorded
    names none: the default's (nft.DEFAULT_TABLE)."""
    return action.do[0] if action.do else DEFAULT_TABLE


def enforced(actions: tuple[Action, ...]) -> bool:
    """Whether a block took effect: one of its blocking actions (nftables, route, hosts.deny)
    is done; for a block that only runs KILL_RUN_CMD, the command. (A block with nothing to do
    is never made: see ResponsePolicy.on_verdict.)"""
    blocking = [a for a in actions if a.kind != COMMAND] or actions
    return any(a.status in IN_FORCE for a in blocking)


def not_ours(action: Action) -> bool:
    """A hosts.deny line in force that was there before the block (recorded `present`; before
    that status existed, `done` without an undo), or a KILL_ROUTE route that was (`present`:
    its undo is kept, for a run after a reboot that finds it gone and adds it)."""
    if action.kind == ROUTE:
        return action.status == PRESENT
    return action.kind == HOSTS_DENY and action.status in IN_FORCE and len(action.undo) != 2


def via(actions: tuple[Action, ...]) -> list[str]:
    """What holds a block in force (`blocked`): the kinds of its actions in force (or whose
    undo failed), a hosts.deny line that is not ours marked so."""
    return [
        f"{a.kind} (not ours)" if not_ours(a) else a.kind
        for a in actions
        if a.status in IN_FORCE or a.status.startswith(UNDO_FAILED)
    ]


def kept_lines(record: BlockRecord) -> list[str]:
    """The hosts.deny lines and KILL_ROUTE routes an unblock of `record` leaves as they are
    (not ours), one phrase each."""
    return [
        _what(a) if a.kind == ROUTE else f'hosts.deny line "{a.do[1]}" in {a.do[0]}'
        for a in record.actions
        if not_ours(a) and (a.kind == ROUTE or len(a.do) == 2)
    ]


def left(record: BlockRecord) -> list[str]:
    """What an ended block left in force (its actions whose undo failed), one phrase each."""
    return [
        f"{_what(a)} ({a.status.partition(': ')[2]})"
        for a in record.actions
        if a.status.startswith(UNDO_FAILED)
    ]


def _what(action: Action) -> str:
    if action.kind == HOSTS_DENY and len(action.undo) == 2:
        return f'hosts.deny line "{action.undo[1]}" in {action.undo[0]}'
    if action.kind == ROUTE:
        return f"KILL_ROUTE {' '.join(action.do)}"
    return f"{action.kind} element"


def lasting(actions: tuple[Action, ...]) -> bool:
    """Whether the block has something in force across a restart. One that only ran
    KILL_RUN_CMD is forgotten at restart, as PortSentry forgot every block at its start, so the
    next scan from the source runs the command again."""
    return any(a.kind != COMMAND for a in actions)


def lasting_steps(steps: list[str]) -> bool:
    """Whether a plan of `steps` (BlockMaker.steps) makes a block that enforces (see `lasting`),
    not one that only runs KILL_RUN_CMD."""
    return any(step != COMMAND for step in steps)
