"""`portwarden unblock` and `portwarden reapply`: what the administrator asks of the blocks.

While the daemon runs, its action worker does the work (it alone changes the firewall, routes,
hosts.deny and the files, but for the nftables elements an unblock removes at once: see
ResponsePolicy.on_request); the work comes before the blocks waiting their turn, which are then
not carried out if it ends them, and after the job the worker is doing. When no daemon runs,
the command does it on the store directly, holding STATE_DIR's lock meanwhile, so that no
daemon starts in the middle.
"""

import sys
import time
from collections.abc import Callable
from typing import Any

from portwarden import control, statedir
from portwarden.alert.events import write_unblocks
from portwarden.claims import FileClaims
from portwarden.config import ConfigError, Settings
from portwarden.config.ignore import Network, parse_network, read_otherwise
from portwarden.net.nftables import NftError
from portwarden.respond.actions import Actions, kept_lines, left
from portwarden.respond.nft import claim_table
from portwarden.store.db import UNBLOCK_COMMAND, BlockRecord, Store, store_path
from portwarden.text import one_line

START_WAIT_S = 10.0  # a daemon that holds STATE_DIR but does not listen yet is starting up

Answer = dict[str, Any]


def unblock_here(actions: Actions, network: Network | None) -> tuple[list[BlockRecord], Answer]:
    """Unblock what lies in `network` (every block and our nftables table when None), after
    another try at what earlier unblocks there left in force. The answer's `left` names what
    is still in force, one line per block."""
    cleared, still = actions.retry_left(network, by_hand=True)
    undone = actions.unblock_matching(network, UNBLOCK_COMMAND)
    still += [r for r in undone if left(r)]
    answer: Answer = {
        "unblocked": [r.address for r in cleared + undone if not left(r)],
        "left": [f"{r.address}: {'; '.join(left(r))}" for r in still],
        "kept": [f"{r.address}: {line}" for r in undone for line in kept_lines(r)],
        "table_removed": False,
    }
    if network is None:
        try:
            answer["table_removed"] = actions.drop_table()
            answer["old_tables_removed"] = actions.drop_old_tables()
        except NftError as error:
            answer["nft_error"] = one_line(str(error))
    return undone, answer


def _unblock_without_daemon(actions: Actions, network: Network | None) -> Answer:
    """unblock_here, and the `unblock` events the daemon would have written. Our sets'
    elements inside `network` go too, also one the store does not know: added by a daemon
    killed before it recorded the block (see Actions.record)."""
    undone, answer = unblock_here(actions, network)
    if network is not None:
        answer["swept"] = actions.sweep_nft(network)
    try:
        write_unblocks(actions.settings, [(r.address, time.time()) for r in undone],
                       UNBLOCK_COMMAND)  # fmt: skip
    except OSError as error:
        print(f"portwarden: warning: event log {actions.settings.event_log}: {error.strerror}",
              file=sys.stderr)  # fmt: skip
    return answer


def reapply_here(actions: Actions) -> Answer:
    """KILL_ROUTE run again for every block, and our nftables table made again (its chains
    and rules repaired) with every nftables block in it."""
    routes = actions.reapply_routes()
    answer: Answer = {"reapplied": routes.done, "failed": routes.failed,
                      "not_reapplied": routes.no_undo,
                      "not_configured": routes.unconfigured}  # fmt: skip
    try:
        answer["nft_blocks"] = actions.put_back_nft()
    except NftError as error:
        answer["nft_error"] = one_line(str(error))
    return answer


def unblock(settings: Settings, target: str | None) -> int:
    """`unblock ADDR|NET` or, with None, `unblock --all`. Returns the exit status."""
    try:
        network = None if target is None else parse_network(_unbracketed(target))
    except ValueError as error:
        print(f"portwarden: error: unblock: {one_line(str(error))}", file=sys.stderr)
        return 2
    said = None
    if target is not None and network is not None:  # said, not refused: the block ends
        said = read_otherwise(_unbracketed(target), network)
        if said:
            print(f'portwarden: warning: unblock "{one_line(target)}": {said}; unblocking '
                  f"{network}", file=sys.stderr)  # fmt: skip
    request = {"all": True} if network is None else {"network": str(network)}
    answer = _by_daemon_or_here(
        settings,
        "unblock",
        request,
        lambda actions: _unblock_without_daemon(actions, network),
        unanswered="the unblock may be partly done: running the same unblock again (or the "
        "next start of the daemon) finishes it",
    )
    if "error" in answer:
        print(f"portwarden: error: unblock: {answer['error']}", file=sys.stderr)
        return 1
    for address in answer["unblocked"]:
        print(f"unblocked {address}")
    for line in answer.get("kept", ()):
        print(f"left as it is: {line}: it was there before the block (not ours); remove it by "
              "hand if wanted")  # fmt: skip
    if answer["table_removed"]:
        print(f"removed nftables table inet {settings.nft_table}")
    for table in answer.get("old_tables_removed", ()):
        print(f"removed nftables table inet {table} (an earlier NFT_TABLE)")
    if "nft_error" in answer:
        print(f"portwarden: nftables: {answer['nft_error']}", file=sys.stderr)
    for line in answer["left"]:
        print(f"portwarden: error: unblock: left in force: {line}; fix it and run "
              "unblock again", file=sys.stderr)  # fmt: skip
    if answer.get("swept"):
        print(f"removed {answer['swept']} nftables elements inside {network} that the store "
              "did not list")  # fmt: skip
    if answer["left"]:
        return 1
    if not answer["unblocked"] and not answer.get("swept") and target is not None:
        shown = one_line(target) if said is None else network  # the form it was read as
        print(f"no active block matches {shown}", file=sys.stderr)
        return 1
    return 0


def reapply(settings: Settings) -> int:
    answer = _by_daemon_or_here(settings, "reapply", {}, reapply_here)
    if "error" in answer:
        print(f"portwarden: error: reapply: {answer['error']}", file=sys.stderr)
        return 1
    for address in answer["reapplied"]:
        print(f"KILL_ROUTE run again for {address}")
    for address in answer.get("not_configured", ()):
        print(f"KILL_ROUTE not run again for {address}: the configuration no longer has the "
              "KILL_ROUTE its block ran")  # fmt: skip
    for address, why in answer.get("failed", ()):
        print(f"portwarden: error: reapply: KILL_ROUTE failed for {address} ({why})",
              file=sys.stderr)  # fmt: skip
    for address in answer["not_reapplied"]:
        print(f"portwarden: error: reapply: KILL_ROUTE not run again for {address}: it has no "
              "known undo, so it may still be in force; run it by hand if it is gone",
              file=sys.stderr)  # fmt: skip
    if "nft_error" in answer:
        print(f"portwarden: error: reapply: nftables: {answer['nft_error']}", file=sys.stderr)
        return 1
    if answer.get("nft_blocks") is not None:
        print(f"nftables: {answer['nft_blocks']} blocks in table inet {settings.nft_table}")
    return 1 if answer["not_reapplied"] or answer.get("failed") else 0


def _unbracketed(target: str) -> str:
    """`[2001:db8::31]` and `[2001:db8::]/64`, the forms of hosts.deny (tcpd), without the
    brackets."""
    inside, bracket, rest = target[1:].partition("]")
    if not target.startswith("[") or not bracket or rest[:1] not in ("", "/"):
        return target
    return inside + rest


def _not_listening(settings: Settings) -> str:
    """A daemon holds STATE_DIR, yet after START_WAIT_S still nobody listens on its control
    socket: it was removed (by hand, a cleanup of the directory), or the daemon is stuck."""
    path = control.socket_path(settings.state_dir)
    pid = statedir.holder(settings.state_dir) or "?"
    why = "is missing" if not path.exists() else "does not accept connections"
    return (f"the running daemon (pid {pid}) holds STATE_DIR {settings.state_dir}, but its "
            f"control socket {path} {why}: restart the daemon (nothing was changed)")  # fmt: skip


def _by_daemon_or_here(settings: Settings, command: str, request: Answer,
                       here: Callable[[Actions], Answer],
                       unanswered: str = "") -> Answer:  # fmt: skip
    """The running daemon's answer; when none runs, `here`'s, done under STATE_DIR's lock.
    `unanswered`: what to add when the daemon died with the request (control.Unanswered)."""
    deadline = time.monotonic() + START_WAIT_S
    while True:
        try:
            answer = control.ask(settings.state_dir, command, control.ACTION_WAIT_S, **request)
        except control.Unanswered as error:
            return {"error": f"{error}; {unanswered}" if unanswered else str(error)}
        except control.ControlError as error:
            return {"error": str(error)}
        if answer is not None:
            return answer
        try:
            lock = statedir.claim(settings.state_dir, command)
        except statedir.StateDirBusy as busy:  # a daemon is starting: it will listen soon
            if time.monotonic() > deadline:
                return {"error": str(busy) if busy.holder.command else _not_listening(settings)}
            time.sleep(0.1)
            continue
        with lock:
            try:  # as `run` does: another daemon here may block with a table of that name
                claim = claim_table(settings.nft_table, settings.source)
            except ConfigError:
                return {"error": f"another running portwarden in this network namespace blocks "
                        f"with nftables table inet {settings.nft_table}; nothing was changed "
                        "(use that daemon's configuration, or give each instance its own "
                        "NFT_TABLE)"}  # fmt: skip
            files = FileClaims(command)  # BLOCKED_FILE, EVENT_LOG: as `run` holds them
            try:
                files.claim(settings)
            except ConfigError as error:
                claim.close()
                return {"error": f"{error}; nothing was changed"}
            store = Store(store_path(settings.state_dir))
            try:
                return here(Actions(settings, store))
            finally:
                store.close()
                files.close()
                claim.close()
