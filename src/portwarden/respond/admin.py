"""`portwarden unblock` and `portwarden reapply`: what the administrator asks of the blocks.

While the daemon runs, its action worker does the work (it alone changes the firewall, routes,
hosts.deny and the files, but for the nftables elements an unblock removes at once: see
ResponsePolicy.on_request); the work comes before the blocks waiting their turn, which are then
not carried out if it ends them, and after the job the worker is doing. When no daemon runs,
the command does it on the store directly, holding STATE_DIR's lock meanwhile, so that no
daemon starts in the middle. What the command prints is admin_output's.
"""

import contextlib
import time
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict, TypeVar, cast

from portwarden import control, limits, statedir
from portwarden.alert.events import write_unblocks
from portwarden.claims import FileClaims
from portwarden.config import ConfigError, Settings
from portwarden.config.ignore import Network
from portwarden.net.nftables import NftError
from portwarden.respond.actions import Actions
from portwarden.respond.nft import claim_table
from portwarden.respond.old_tables import drop_old_tables
from portwarden.respond.recorded import kept_lines, left
from portwarden.store.db import UNBLOCK_COMMAND, BlockRecord, Store, store_path
from portwarden.text import one_line

# The answers as the control socket carries them (a JSON object each). A key that is not
# required is one the work may not reach (the nftables part), one only the command without a
# daemon writes, or one that the answer of a daemon started before it existed lacks.


class UnblockAnswer(TypedDict):
    unblocked: list[str]  # the addresses whose block ended
    left: list[str]  # what is still in force, one line per block: "ADDRESS: why"
    kept: NotRequired[list[str]]  # what was there before a block, left: "ADDRESS: line"
    table_removed: bool  # our nftables table (only `unblock --all` removes it)
    old_tables_removed: NotRequired[list[str]]  # tables of an earlier NFT_TABLE (--all)
    nft_error: NotRequired[str]  # why the table(s) of --all could not be removed
    swept: NotRequired[int]  # elements in our sets inside the network that the store did not list
    event_log_error: NotRequired[str]  # without a daemon: why its `unblock` events are unwritten


class ReapplyAnswer(TypedDict):
    reapplied: list[str]  # addresses whose KILL_ROUTE ran again
    failed: NotRequired[list[tuple[str, str]]]  # address, why (a list of two over JSON)
    not_reapplied: list[str]  # a KILL_ROUTE with no known undo: it may still be in force
    not_configured: NotRequired[list[str]]  # the configuration no longer has its KILL_ROUTE
    nft_blocks: NotRequired[int | None]  # the nftables blocks put back; None: no nftables
    nft_error: NotRequired[str]  # instead of nft_blocks: why they could not be put back
    nft_swept: NotRequired[int]  # elements removed from our sets that the store did not list


Answer = TypeVar("Answer", UnblockAnswer, ReapplyAnswer)


class NotDone(Exception):
    """The work was not done (or not known to be): why, on one line. From the daemon's answer
    `{"error": why}` too."""


def unblock_here(
    actions: Actions, network: Network | None
) -> tuple[list[BlockRecord], UnblockAnswer]:
    """Unblock what lies in `network` (every block and our nftables table when None), after
    another try at what earlier unblocks there left in force. The answer's `left` names what
    is still in force, one line per block. Our sets' elements inside `network` that the
    store does not list go too (NftTable.sweep); the nftables part only when this instance
    works with nftables (works_with_nft)."""
    cleared, still = actions.unblocks.retry_left(network, by_hand=True)
    undone = actions.unblocks.unblock_matching(network, UNBLOCK_COMMAND)
    still += [r for r in undone if left(r)]
    answer: UnblockAnswer = {
        "unblocked": [r.address for r in cleared + undone if not left(r)],
        "left": [f"{r.address}: {'; '.join(left(r))}" for r in still],
        "kept": [f"{r.address}: {line}" for r in undone for line in kept_lines(r)],
        "table_removed": False,
    }
    if not actions.nft.in_use():
        return undone, answer
    if network is not None:
        answer["swept"] = actions.nft.sweep(network, actions.restorer.in_nft_sets)
        return undone, answer
    try:
        answer["table_removed"] = actions.nft.drop_table()
        answer["old_tables_removed"] = drop_old_tables(actions.nft, actions.store)
    except NftError as error:
        answer["nft_error"] = one_line(str(error))
    return undone, answer


def _unblock_without_daemon(actions: Actions, network: Network | None) -> UnblockAnswer:
    """unblock_here, and the `unblock` events the daemon would have written."""
    undone, answer = unblock_here(actions, network)
    try:
        write_unblocks(
            actions.settings, [(r.address, time.time()) for r in undone], UNBLOCK_COMMAND
        )
    except OSError as error:
        answer["event_log_error"] = f"{error.strerror}"
    return answer


def reapply_here(actions: Actions) -> ReapplyAnswer:
    """KILL_ROUTE run again for every active block, and our nftables table made again (its
    chains and rules repaired) with every nftables block in it, and nothing else in its sets
    (an element the store does not list: see NftTable.sweep)."""
    routes = actions.restorer.reapply_routes()
    answer: ReapplyAnswer = {
        "reapplied": routes.done,
        "failed": routes.failed,
        "not_reapplied": routes.no_undo,
        "not_configured": routes.unconfigured,
    }
    if not actions.nft.in_use():
        answer["nft_blocks"] = None
        return answer
    try:
        answer["nft_blocks"] = actions.restorer.put_back_nft()
    except NftError as error:
        answer["nft_error"] = one_line(str(error))
    else:
        answer["nft_swept"] = actions.nft.sweep(None, actions.restorer.in_nft_sets)
    return answer


def unblock(settings: Settings, network: Network | None) -> UnblockAnswer:
    """Unblock what lies in `network` (every block and our nftables table when None), by the
    running daemon or here. Raises NotDone."""
    request = {"all": True} if network is None else {"network": str(network)}
    return _by_daemon_or_here(
        settings,
        "unblock",
        request,
        lambda actions: _unblock_without_daemon(actions, network),
        unanswered="the unblock may be partly done: running the same unblock again (or the "
        "next start of the daemon) finishes it",
    )


def reapply(settings: Settings) -> ReapplyAnswer:
    """reapply_here, by the running daemon or here. Raises NotDone."""
    return _by_daemon_or_here(settings, "reapply", {}, reapply_here)


def _not_listening(settings: Settings) -> str:
    """A daemon holds STATE_DIR, yet after DAEMON_START_WAIT_S still nobody listens on its
    control socket: it was removed (by hand, a cleanup of the directory), or the daemon is stuck."""
    path = statedir.socket_path(settings.state_dir)
    pid = statedir.holder(settings.state_dir) or "?"
    why = "is missing" if not path.exists() else "does not accept connections"
    return (
        f"the running daemon (pid {pid}) holds STATE_DIR {settings.state_dir}, but its "
        f"control socket {path} {why}: restart the daemon (nothing was changed)"
    )


def _by_daemon_or_here(
    settings: Settings,
    command: str,
    request: dict[str, Any],
    here: Callable[[Actions], Answer],
    unanswered: str = "",
) -> Answer:
    """The running daemon's answer; when none runs, `here`'s, done under STATE_DIR's lock.
    `unanswered`: what to add when the daemon died with the request (control.Unanswered).
    Raises NotDone."""
    deadline = time.monotonic() + limits.DAEMON_START_WAIT_S
    while True:
        try:
            answer = control.ask(
                settings.state_dir, command, limits.CONTROL_ACTION_WAIT_S, **request
            )
        except control.Unanswered as error:
            raise NotDone(f"{error}; {unanswered}" if unanswered else str(error)) from None
        except control.ControlError as error:
            raise NotDone(str(error)) from None
        if answer is not None:
            if "error" in answer:
                raise NotDone(answer["error"])
            return cast(Answer, answer)  # what the daemon's unblock_here or reapply_here made
        try:
            lock = statedir.claim(settings.state_dir, command)
        except statedir.StateDirBusy as busy:  # a daemon is starting: it will listen soon
            if time.monotonic() > deadline:
                raise NotDone(
                    str(busy) if busy.holder.command else _not_listening(settings)
                ) from None
            time.sleep(0.1)
            continue
        with lock:
            return _here(settings, command, here)


def _here(settings: Settings, command: str, here: Callable[[Actions], Answer]) -> Answer:
    """`here`'s answer, with what `run` would hold held as it holds it: NFT_TABLE when this
    instance works with nftables (another daemon here may block with a table of that name:
    removing that table or its elements would free its blocks), BLOCKED_FILE and EVENT_LOG.
    Raises NotDone when one of them is held by another."""
    with contextlib.ExitStack() as held:
        store = Store(store_path(settings.state_dir))
        held.callback(store.close)
        actions = Actions(settings, store)
        if actions.nft.in_use():
            try:
                claim = claim_table(settings.nft_table, settings.source)
            except ConfigError:
                raise NotDone(
                    f"another running portwarden in this network namespace blocks "
                    f"with nftables table inet {settings.nft_table}; nothing was "
                    "changed (use that daemon's configuration, or give each instance "
                    "its own NFT_TABLE)"
                ) from None
            held.callback(claim.close)
        files = FileClaims(command)
        try:
            files.claim(settings)
        except ConfigError as error:
            raise NotDone(f"{error}; nothing was changed") from None
        held.callback(files.close)
        return here(actions)
