"""`portwarden unblock` and `portwarden reapply` on the command line: the argument read, the
work asked of respond.admin (of the daemon, or done here when none runs), and its answer shown,
what was done on stdout and what was not on stderr, in the answer's order."""

import sys
from collections.abc import Callable, Iterable
from typing import NamedTuple

from portwarden.config import Settings
from portwarden.config.ignore import Network, parse_network, read_otherwise, shown
from portwarden.respond import admin
from portwarden.respond.admin import Answer, NotDone, ReapplyAnswer, UnblockAnswer
from portwarden.text import counted, one_line


class Line(NamedTuple):
    text: str
    failure: bool = False  # said on stderr


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
            print(
                f'portwarden: warning: unblock "{one_line(target)}": {said}; unblocking {network}',
                file=sys.stderr,
            )
    answer = _asked("unblock", lambda: admin.unblock(settings, network))
    if answer is None:
        return 1
    _show(unblock_lines(answer, settings, network))
    if answer["left"]:
        return 1
    if not answer["unblocked"] and not answer.get("swept") and target is not None:
        shown = one_line(target) if said is None else network  # the form it was read as
        print(f"portwarden: error: no active block matches {shown}", file=sys.stderr)
        return 1
    return 0


def reapply(settings: Settings) -> int:
    """`reapply`. Returns the exit status."""
    answer = _asked("reapply", lambda: admin.reapply(settings))
    if answer is None:
        return 1
    _show(reapply_lines(answer, settings))
    if "nft_error" in answer or answer["not_reapplied"] or answer.get("failed"):
        return 1
    return 0


def unblock_lines(answer: UnblockAnswer, settings: Settings, network: Network | None) -> list[Line]:
    lines: list[Line] = []
    if "event_log_error" in answer:
        lines.append(
            Line(
                f"portwarden: warning: event log {settings.event_log}: {answer['event_log_error']}",
                failure=True,
            )
        )
    lines += [Line(f"unblocked {address}") for address in answer["unblocked"]]
    lines += [
        Line(
            f"left as it is: {line}: it was there before the block (not ours); remove it "
            "by hand if wanted"
        )
        for line in answer.get("kept", ())
    ]
    if answer["table_removed"]:
        lines.append(Line(f"removed nftables table inet {settings.nft_table}"))
    lines += [
        Line(f"removed nftables table inet {table} (an earlier NFT_TABLE)")
        for table in answer.get("old_tables_removed", ())
    ]
    if "nft_error" in answer:
        lines.append(Line(f"portwarden: nftables: {answer['nft_error']}", failure=True))
    lines += [
        Line(
            f"portwarden: error: unblock: left in force: {line}; fix it and run unblock again",
            failure=True,
        )
        for line in answer["left"]
    ]
    if answer.get("swept") and network is not None:
        lines.append(Line(_swept(answer.get("swept", 0), network)))
    return lines


def reapply_lines(answer: ReapplyAnswer, settings: Settings) -> list[Line]:
    lines = [Line(f"KILL_ROUTE run again for {address}") for address in answer["reapplied"]]
    lines += [
        Line(
            f"KILL_ROUTE not run again for {address}: the configuration no longer has "
            "the KILL_ROUTE its block ran"
        )
        for address in answer.get("not_configured", ())
    ]
    lines += [
        Line(f"portwarden: error: reapply: KILL_ROUTE failed for {address} ({why})", failure=True)
        for address, why in answer.get("failed", ())
    ]
    lines += [
        Line(
            f"portwarden: error: reapply: KILL_ROUTE not run again for {address}: it has "
            "no known undo, so it may still be in force; run it by hand if it is gone",
            failure=True,
        )
        for address in answer["not_reapplied"]
    ]
    if "nft_error" in answer:
        lines.append(
            Line(f"portwarden: error: reapply: nftables: {answer['nft_error']}", failure=True)
        )
    elif answer.get("nft_blocks") is not None:
        blocks = counted(answer.get("nft_blocks") or 0, "block")
        lines.append(Line(f"nftables: {blocks} in table inet {settings.nft_table}"))
    if answer.get("nft_swept"):
        lines.append(Line(_swept(answer.get("nft_swept", 0))))
    return lines


def _swept(count: int, network: Network | None = None) -> str:
    """Elements our sets held that the store did not list, removed (NftTable.sweep); for an
    unblock's `network`, `inside NET`, or `for A` when it is one address (written as
    `unblocked A` writes it)."""
    where = ""
    if network is not None:
        where = f" {'for' if network.num_addresses == 1 else 'inside'} {shown(network)}"
    return f"removed {counted(count, 'nftables element')}{where} that the store did not list"


def _asked(command: str, ask: Callable[[], Answer]) -> Answer | None:
    """`ask`'s answer, or None when the work was not done (said on stderr)."""
    try:
        return ask()
    except NotDone as error:
        print(f"portwarden: error: {command}: {error}", file=sys.stderr)
        return None


def _show(lines: Iterable[Line]) -> None:
    for line in lines:
        print(line.text, file=sys.stderr if line.failure else sys.stdout)


def _unbracketed(target: str) -> str:
    """`[2001:db8::31]` and `[2001:db8::]/64`, the forms of hosts.deny (tcpd), without the
    brackets."""
    inside, bracket, rest = target[1:].partition("]")
    if not target.startswith("[") or not bracket or rest[:1] not in ("", "/"):
        return target
    return inside + rest
