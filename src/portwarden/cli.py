"""The `portwarden` command and its sub-commands."""

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

from portwarden import (
    __version__,
    admin_output,
    background,
    control,
    limits,
    service,
    statedir,
    status,
)
from portwarden.blame import blamed_on
from portwarden.config import ConfigError, Modes, Settings, TcpMode, UdpMode, load_settings
from portwarden.config.defaults import SYSTEM_CONFIG
from portwarden.config.ignore import outermost
from portwarden.config.load import state_dir_of
from portwarden.config.settings import to_conf_lines
from portwarden.descriptors import DescriptorShortage
from portwarden.net.local import local_addresses
from portwarden.portmap import command as portmap_command
from portwarden.respond.nft_table import nft_warning
from portwarden.statedir import StateDirBusy
from portwarden.store.db import Store, StoreError, store_path
from portwarden.text import one_line

log = logging.getLogger("portwarden")

# What the daemon and the commands make (database, logs, pid file, event log, audit state) is
# for root's eyes only, also without a service manager's UMask=0077 (`run --daemon` from an init
# script, `audit` from a shell whose umask is 022). Edited files keep their own mode, and those
# made for others to read get theirs (hosts.deny, hosts.allow, HISTORY_FILE, BLOCKED_FILE: 0644).
UMASK = 0o077


class _ExactParser(argparse.ArgumentParser):
    """Flags are compared exactly, as PortSentry compared them: argparse's prefix matching made
    `-tc` mean -tcp and `-u` mean -udp, so a typo silently picked a mode. (allow_abbrev=False
    alone still lets a single-dash option be abbreviated.) Sub-parsers are of this class too.
    An error is one line, as every other error of the command is."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "allow_abbrev": False})

    def _get_option_tuples(self, option_string: str) -> list[Any]:
        # Only a one-letter option with its value attached (`-cFILE`) is kept; no abbreviation.
        return [found for found in super()._get_option_tuples(option_string) if len(found[1]) == 2]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


class _OneLineMessages(logging.Formatter):
    """`lines`' format, with every message on one line: what a message quotes (a configuration
    path given with a newline, in a warning or the ready line) is escaped here, once for every
    log line, and cannot split it. A traceback after the message stays as it is."""

    def __init__(self, lines: logging.Formatter) -> None:
        super().__init__()
        self._lines = lines

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not (message.isascii() and message.isprintable()):
            record = logging.makeLogRecord(
                {
                    **record.__dict__,
                    "args": None,
                    "msg": one_line(message, len(message), backslashes=False),
                }
            )
        return self._lines.format(record)


def _parser() -> argparse.ArgumentParser:
    parser = _ExactParser(
        prog="portwarden", description="Detect port scans and probes; alert and optionally block."
    )
    parser.add_argument("--version", action="version", version=f"portwarden {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run the daemon (in the foreground; --daemon for the old style)"
    )
    _config_option(run)
    run.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    run.add_argument(
        "--daemon",
        action="store_true",
        help="go to the background once ready (old style; not under systemd)",
    )
    run.add_argument(
        "--pid-file", type=Path, help="with --daemon (default STATE_DIR/portwarden.pid)"
    )
    run.add_argument(
        "--log-file", type=Path, help="with --daemon (default STATE_DIR/portwarden.log)"
    )
    _mode_flags(run)

    check = commands.add_parser(
        "check-config", help="validate a configuration and print the effective settings"
    )
    given = check.add_mutually_exclusive_group()
    _config_option(given)
    given.add_argument("file", nargs="?", type=Path, help="configuration file (the same as -c)")
    check.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors and warnings (for a journal)"
    )
    _mode_flags(check)  # as for run: which port lists must name ports
    state = commands.add_parser(
        "status", help="what the daemon sees: scanners, ports, blocks, counters, last audit"
    )
    _config_option(state)
    state.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    commands.add_parser(
        "lab", help="demo: build a throw-away lab of namespaces, scan, show, remove everything"
    )
    blocked = commands.add_parser("blocked", help="list the active blocks")
    _config_option(blocked)
    blocked.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    unblock = commands.add_parser(
        "unblock", help="undo blocks: firewall set element, route, hosts.deny line"
    )
    _config_option(unblock)
    target = unblock.add_mutually_exclusive_group(required=True)
    target.add_argument("address", nargs="?", help="an address or network (addr/bits)")
    target.add_argument(
        "--all", action="store_true", help="every block, and remove portwarden's nftables table"
    )
    reapply = commands.add_parser(
        "reapply", help="run KILL_ROUTE again for every active block (after a flush by hand)"
    )
    _config_option(reapply)
    portmap_command.add_parser(
        cast("argparse._SubParsersAction[argparse.ArgumentParser]", commands)
    )
    audit = commands.add_parser(
        "audit", help="check open ports against the AUDIT_* policy (exit 1 on findings)"
    )
    _config_option(audit)
    audit.add_argument("--json", action="store_true", help="print one JSON object")
    audit.add_argument(
        "--no-state",
        action="store_true",
        help="compare with nothing and keep nothing: report every unlisted "
        "port and every missing required one",
    )
    audit.add_argument(
        "--suggest",
        action="store_true",
        help="print an AUDIT_OPTIONAL line that adds every open port in no list "
        "(the state is neither read nor kept)",
    )
    replay = commands.add_parser(
        "replay", help="run detection over a pcap capture offline and print the verdicts"
    )
    replay.add_argument("capture", type=Path, help="a pcap file (tcpdump -w)")
    _config_option(replay)
    replay.add_argument(
        "--host",
        action="append",
        type=ipaddress.ip_address,
        metavar="ADDR",
        help="an address of the host the capture was taken on; only packets to "
        "these count (default: every unicast destination)",
    )
    _mode_flags(replay)
    return parser


_MODE_HELP = {
    TcpMode.CLASSIC: "classic: bind every TCP_PORTS port, report completed connections",
    TcpMode.STEALTH: "stealth: watch TCP_PORTS on a raw socket (SYN, FIN, NULL, XMAS scans)",
    TcpMode.ADVANCED: "advanced: watch every port below ADVANCED_PORTS_TCP with no service",
    UdpMode.CLASSIC: "classic: bind every UDP_PORTS port, report datagrams",
    UdpMode.STEALTH: "stealth: watch UDP_PORTS on a raw socket",
    UdpMode.ADVANCED: "advanced: watch every port below ADVANCED_PORTS_UDP with no service",
}


def _mode_flags(parser: argparse.ArgumentParser) -> None:
    """PortSentry's -tcp -stcp -atcp and -udp -sudp -audp: one of each at most."""
    modes = parser.add_argument_group(
        "modes",
        "PortSentry's flags, at most one TCP and one UDP mode. Without any, the modes come "
        "from TCP_MODE and UDP_MODE; a flag for one protocol alone turns the other protocol "
        "off (as 'portsentry -stcp' watched TCP only).",
    )
    tcp = modes.add_mutually_exclusive_group()
    udp = modes.add_mutually_exclusive_group()
    for mode in TcpMode:
        tcp.add_argument(
            f"-{mode.value}", dest="tcp", action="store_const", const=mode, help=_MODE_HELP[mode]
        )
    for umode in UdpMode:
        udp.add_argument(
            f"-{umode.value}", dest="udp", action="store_const", const=umode, help=_MODE_HELP[umode]
        )


def _modes(args: argparse.Namespace) -> Modes | None:
    """The modes given on the command line, or None: then the configuration's."""
    return None if args.tcp is None and args.udp is None else (args.tcp, args.udp)


def _config_option(parser: "argparse._ActionsContainer") -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        help=f"configuration file (default {SYSTEM_CONFIG} if it exists, else "
        "the embedded defaults)",
    )


def _config_path(given: Path | None) -> Path | None:
    """The file named on the command line, else the system file if present, else none."""
    if given is not None:
        return given
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def _load(
    path: Path | None, modes: Modes | None = None, watching: bool = False, daemon: bool = False
) -> Settings:
    """`watching`: for `run` and what checks for it (see load_settings), which also say the
    configuration's warnings (log lines for the `daemon`, else the command's own lines); the
    commands that only look at or undo the blocks do not repeat them every time."""
    settings = load_settings(path, modes, watching)
    for warning in settings.warnings if watching else ():
        if daemon:
            log.warning("%s", warning)
        else:
            _warn(warning)
    return settings


def _warn(warning: str) -> None:
    print(f"portwarden: warning: {_shown(warning)}", file=sys.stderr)


def _shown(message: str) -> str:
    """A message on one line whatever the arguments it quotes (a path or an address given
    with a newline or an escape sequence); backslashes stay, the parts are escaped already."""
    return one_line(message, 4000, backslashes=False)


def _run(args: argparse.Namespace) -> int:
    from portwarden.daemon import Daemon

    # Until the daemon's own handler takes over: a reload asked for this early is moot (the
    # file is read next), and SIGHUP's default would end the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    path = _config_path(args.config)
    if path is not None:
        # Once, here: the ready line, `status`, errors and reloads (after --daemon's change
        # to /) all name the file the same way.
        path = path.absolute()
    cli_modes = _modes(args)
    settings = _load(path, cli_modes, watching=True, daemon=True)
    on_ready = None
    if args.daemon:
        # Said here, on the caller's stderr: the daemon's own log file would be the other
        # instance's (and the one holding STATE_DIR says nothing of it).
        statedir.refuse_if_held(settings.state_dir)
        log_file = (args.log_file or settings.state_dir / "portwarden.log").absolute()
        # The default log file is STATE_DIR's: a problem with it is STATE_DIR's.
        blame = (
            contextlib.nullcontext()
            if args.log_file
            else blamed_on(settings, "STATE_DIR", settings.state_dir)
        )
        with blame:
            on_ready = background.detach(
                (args.pid_file or background.default_pid_file(settings.state_dir)).absolute(),
                log_file,
                settings.state_dir.absolute(),
            )
    return Daemon(settings, path, cli_modes, on_ready).run()


def _check_config(args: argparse.Namespace) -> int:
    settings = _load(_config_path(args.config or args.file), _modes(args), watching=True)
    nft = nft_warning(settings)
    if nft:
        _warn(nft)
    if args.quiet:
        return 0
    print(
        f"# effective settings from {one_line(str(settings.source), limits.PATH_SHOWN_CHARS_MAX)}"
    )
    for line in to_conf_lines(settings):
        print(line)
    networks = ", ".join(
        str(n) for n in outermost(settings.ignore_list(local_addresses()).networks)
    )
    print(f"# ignored (never alerted on or blocked): {networks}")
    return 0


def _no_state(state_dir: Path, as_json: bool = False) -> bool:
    """Commands that read the state make none: a STATE_DIR that is not there (a typo?), or that
    has no store (no daemon ever started with it), has no state to show, and must not become
    an empty one. True (and says so) when there is none."""
    if not state_dir.is_dir():
        why = "no such directory"
    elif not store_path(state_dir).exists():
        why = f"no {store_path(state_dir).name} in it"
    else:
        return False
    _error(
        f"no state in STATE_DIR {state_dir}: {why} (no portwarden ran with this configuration)",
        as_json,
    )
    return True


def _error(why: str, as_json: bool = False) -> None:
    """An error on stderr; with --json, as a JSON object on stdout too, for scripts."""
    print(f"portwarden: error: {_shown(why)}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": why}, indent=2))


def _blocked(args: argparse.Namespace) -> int:
    settings = _load(_config_path(args.config))
    if _no_state(settings.state_dir, args.json):
        return 1
    now = time.time()
    listed = status.blocked_listing(Store(store_path(settings.state_dir), read_only=True), now)
    if args.json:
        print(json.dumps({"blocks": status.blocked_json(listed, now)}, indent=2))
    else:
        print(status.render_blocked(listed), end="")
    return 0


def _status(args: argparse.Namespace) -> int:
    """Ask the running daemon; when none runs, or it does not answer, show the store's last
    status and the blocks. Exit status 0 when the daemon runs, 3 when it does not (as
    `systemctl status`), 4 when it runs but does not answer (as LSB's "unknown"). A broken
    configuration does not stop it (that is when it is needed most): only STATE_DIR is used."""
    path = _config_path(args.config)
    try:
        state_dir = _load(path).state_dir
    except ConfigError as error:
        try:
            state_dir = state_dir_of(path, fallback=args.config is None)
        except ConfigError:  # not the file's STATE_DIR: it would be another instance's status
            _error(str(error), args.json)
            return 2
        _warn(f"{error} (status read from STATE_DIR {state_dir})")
    if _no_state(state_dir, args.json):
        return 3
    pid = None
    try:
        found = control.ask(state_dir, "status")
    except control.NoAnswer:
        found, pid = None, statedir.holder(state_dir)  # None: it has just stopped
    except control.ControlError as error:
        _error(f"status: {error}", args.json)
        return 1
    if found is None:
        found = status.from_store(Store(store_path(state_dir), read_only=True))
    if pid is not None:
        found.update(running=True, pid=int(pid) if pid.isdigit() else None)
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print(status.render(found), end="")
    if not found.get("running"):
        return 3
    return 0 if found.get("answering", True) else 4


def _lab(_args: argparse.Namespace) -> int:
    from portwarden.lab.demo import run_demo

    return run_demo()


def _unblock(args: argparse.Namespace) -> int:
    settings = _load(_config_path(args.config))
    if _no_state(settings.state_dir):
        return 1
    return admin_output.unblock(settings, None if args.all else args.address)


def _reapply(args: argparse.Namespace) -> int:
    settings = _load(_config_path(args.config))
    return 1 if _no_state(settings.state_dir) else admin_output.reapply(settings)


def _audit(args: argparse.Namespace) -> int:
    from portwarden.audit.command import audit, suggest

    settings = load_settings(_config_path(args.config), watching=False)  # audit prints its warnings
    if args.suggest:
        return suggest(settings)
    return audit(settings, as_json_output=args.json, keep_state=not args.no_state)


def _replay(args: argparse.Namespace) -> int:
    from portwarden.net.pcap import PcapError
    from portwarden.replay import replay

    settings = _load(_config_path(args.config), _modes(args), watching=True)
    hosts = frozenset(args.host) if args.host else None
    try:
        counts = replay(settings, args.capture, sys.stdout, hosts)
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # not an OSError to report here: main() tells a reader that has enough
    except PcapError as error:
        sys.stdout.flush()
        _error(str(error))
        return 2
    except OSError as error:
        sys.stdout.flush()
        path = error.filename or args.capture
        _error(f"{one_line(str(path))}: cannot read: {error.strerror or error}")
        return 2
    log.info(
        "replay: %d packets (%d neither TCP nor UDP, fragments or malformed), %d probes, "
        "%d scans, %d OS probers",
        counts["packets"],
        counts["skipped"],
        counts["probes"],
        counts["scan-summary"],
        counts["os-summary"],
    )
    return 0


def _failed(why: str, status: int, as_json: bool = False) -> int:
    """Say why on stderr (the log file, with --daemon, where the waiting command hears it too),
    and with --json on stdout too."""
    _error(why, as_json)
    background.stopped_because(why, status)
    return status


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe (or socket) whose reader has closed it: a BrokenPipeError
    from elsewhere (the control socket) is a real error."""
    poll = select.poll()
    poll.register(sys.stdout.fileno(), select.POLLOUT)
    return any(events & select.POLLERR for _, events in poll.poll(0))


def _reader_has_enough() -> int:
    """`check-config | head -1`: the reader has all it wanted, which is no error (exit 0, no
    traceback, and nothing more is written: the flush at exit would fail again)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    os.umask(UMASK)
    if args.command == "run" and not args.daemon and (args.pid_file or args.log_file):
        parser.error(
            "run: --pid-file and --log-file go with --daemon (without it the daemon "
            "logs to stderr and writes no pid file)"
        )
    stderr = logging.StreamHandler(sys.stderr)
    if service.stderr_is_journal():
        lines: logging.Formatter = service.JournalFormatter("%(levelname)s %(message)s")
    else:
        lines = logging.Formatter(
            "%(asctime)s portwarden[%(process)d]: %(levelname)s %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    stderr.setFormatter(_OneLineMessages(lines))  # --daemon's log file takes it over
    logging.basicConfig(
        handlers=[stderr], level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    )
    handlers = {
        "run": _run,
        "check-config": _check_config,
        "status": _status,
        "lab": _lab,
        "blocked": _blocked,
        "unblock": _unblock,
        "reapply": _reapply,
        "portmap": portmap_command.run,
        "audit": _audit,
        "replay": _replay,
    }
    try:
        return handlers[args.command](args)
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise
        return _reader_has_enough()
    except (ConfigError, StateDirBusy, StoreError) as error:
        return _failed(str(error), 2, getattr(args, "json", False))
    except DescriptorShortage as error:
        return _failed(str(error), 1)
    except PermissionError as error:
        if args.command == "run":
            return _failed(
                f"{error.strerror}: the sensors need root (CAP_NET_RAW and CAP_NET_BIND_SERVICE)", 1
            )
        # E.g. the daemon's state: STATE_DIR is 0700; the firewall for `portmap check`. Exit 1,
        # but 2 for audit, whose 1 says "findings", and portmap, whose 1 says "exposed" (for
        # both, 2 is "nothing was checked").
        where = f"{error.filename}: " if error.filename else ""
        command = " ".join(filter(None, (args.command, getattr(args, "portmap_command", None))))
        _error(
            f"{where}{error.strerror or error} (run 'portwarden {command}' as root)",
            getattr(args, "json", False),
        )
        return 2 if args.command in ("audit", "portmap") else 1
