"""Reaction time: attacker packets that still reach an open service after the tripwire probe.

Run as root from the repository root:  .venv/bin/python -m benchmarks.reaction [--rounds 20]

Each round a fresh attacker address sends one SYN to a tripwire port and then a SYN to a real
open service every INTERVAL microseconds; the count of SYN+ACKs it gets back is how many
packets slipped through before the block held. No daemon (the baseline: every SYN must be
answered, or the probe itself loses packets), portwarden (-stcp, built-in nftables blocker) and
PortSentry 1.2 (-stcp, KILL_ROUTE="ip route add blackhole $TARGET$") take turns on the same
target in the same run; after each round the source must be in the daemon's set or routes
(a round where it is not counts as a failure, not as a fast reaction). Also: restoring 100,000
active blocks at start, and (--unblock 5000,100000) unblocking that many hosts.deny blocks at
once.
"""

import argparse
import ipaddress
import json
import statistics
import sys
import tempfile
from pathlib import Path

from tests.lab.services import tcp_echo_server

from benchmarks.detection import BENCH_PREFIX, OurDaemon, PortSentry
from portwarden.lab.network import Lab

SERVICE, TRIPWIRE = 8080, 11
KILL_ROUTE = 'KILL_ROUTE="/sbin/ip route add blackhole $TARGET$"\n'
PROBE = Path(__file__).with_name("synprobe.py")


BASELINE, OURS, THEIRS = "no daemon (baseline)", "portwarden (nftables)", "PortSentry (KILL_ROUTE)"


def round_trip(lab: Lab, source: str, count: int, interval_us: int) -> int:
    attacker = lab.attackers[0]
    attacker.run(["ip", "addr", "add", f"{source}/24", "dev", "eth0"])
    try:
        out = attacker.run(
            [
                sys.executable,
                str(PROBE),
                source,
                lab.target.ipv4,
                str(TRIPWIRE),
                str(SERVICE),
                str(count),
                str(interval_us),
            ],
            timeout=60,
        )
        return int(out.stdout)
    finally:
        attacker.run(["ip", "addr", "del", f"{source}/24", "dev", "eth0"])


def blocked_at_end(lab: Lab, name: str, source: str) -> bool:
    """Whether the daemon `name` holds a block of `source` (the baseline: that none does)."""
    if name == OURS:
        command = ["nft", "get", "element", "inet", "portwarden", "blocked4", f"{{ {source} }}"]
        return lab.target.run(command, check=False).returncode == 0
    routes = lab.target.run(["ip", "route", "show", "type", "blackhole"]).stdout.split()
    return source in routes if name == THEIRS else source not in routes


HOSTS_DENY_CONFIG = "nft + hosts.deny (Debian's KILL_HOSTS_DENY)"
# Configurations timed at restore: ours with the built-in blocker only, and Debian's
# portsentry.conf with its KILL_HOSTS_DENY line (its KILL_ROUTE left out: the blocker is nft).
RESTORE_CONFIGS = {
    "nft": ("", '[{"kind": "nft", "undo": [], "status": "done"}]'),
    HOSTS_DENY_CONFIG: (
        'KILL_HOSTS_DENY="ALL: $TARGET$ : DENY"\n',
        '[{"kind": "nft", "undo": [], "status": "done"}, {"kind": "hosts.deny", "undo": '
        '["DENY", "ALL: ADDR : DENY"], "status": "done", "do": ["DENY", "ALL: ADDR : DENY"]}]',
    ),
}


def restore_seconds(lab: Lab, work: Path, blocks: int, config: str) -> float:
    """Time Actions.restore() for `blocks` active rows made with `config`, in the target
    namespace. hosts.deny starts empty (the worst case: every line is put back)."""
    return _timed(lab, work, blocks, config, "restore")


def unblock_seconds(lab: Lab, work: Path, blocks: int) -> float:
    """Time `portwarden unblock 198.18.0.0/15` with no daemon (admin.unblock_here) of `blocks`
    active blocks with Debian's KILL_HOSTS_DENY, restored first (not timed)."""
    return _timed(lab, work, blocks, HOSTS_DENY_CONFIG, "unblock")


# In the target namespace: fill the store, then time the restore or the unblock.
_TIMED = """
import ipaddress, sqlite3, sys, time
from pathlib import Path
from portwarden.config import load_settings
from portwarden.respond.actions import Actions
from portwarden.respond.admin import unblock_here
from portwarden.store.db import Store, store_path
work, blocks, actions, what = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
settings = load_settings(Path(work, "portwarden.conf"))
store = Store(store_path(settings.state_dir))
db = sqlite3.connect(store_path(settings.state_dir))
deny = str(settings.hosts_deny_file)
rows = []
for i in range(blocks):
    address = str(ipaddress.ip_address(0xC6120000 + i))
    made = actions.replace("ADDR", address).replace("DENY", deny)
    rows.append((address, "tcp", 11, "stcp", "bench", "x", time.time(), None, 1, made))
with db:
    db.executemany("INSERT INTO blocks (address, proto, port, mode, reason, hostname, since,"
                   " until, offence, actions) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
start = time.perf_counter()
done = Actions(settings, store).restorer.restore()
if what == "unblock":
    start = time.perf_counter()
    done = len(unblock_here(Actions(settings, store), ipaddress.ip_network("198.18.0.0/15"))[0])
print(done, time.perf_counter() - start)
"""


def _timed(lab: Lab, work: Path, blocks: int, config: str, what: str) -> float:
    extra, actions = RESTORE_CONFIGS[config]
    work.mkdir(parents=True, exist_ok=True)
    conf = (
        f'STATE_DIR="{work}/state"\nBLOCK_TCP="1"\nAUDIT_INTERVAL="0"\n'
        f'HOSTS_DENY_FILE="{work}/hosts.deny"\n{extra}'
    )
    (work / "portwarden.conf").write_text(conf)
    out = lab.target.run(
        [sys.executable, "-c", _TIMED, str(work), str(blocks), actions, what], timeout=7200
    ).stdout.split()
    assert int(out[0]) == blocks, out
    elements = lab.target.run(["nft", "-j", "list", "set", "inet", "portwarden", "blocked4"])
    listed = [x for x in json.loads(elements.stdout)["nftables"] if "set" in x][0]["set"]
    lab.target.run(["nft", "delete", "table", "inet", "portwarden"])
    denied = (work / "hosts.deny").read_text().count("\n") if extra else 0
    print(
        f"({what}, {config}: {len(listed.get('elem', []))} elements listed in the set "
        f"afterwards, {denied} hosts.deny lines)",
        flush=True,
    )
    return float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--count", type=int, default=200, help="SYNs to the service per round")
    parser.add_argument("--interval", type=int, default=100, help="microseconds between SYNs")
    parser.add_argument("--restore", type=int, default=100_000, help="blocks restored (0: none)")
    parser.add_argument(
        "--unblock",
        default="",
        help="blocks unblocked at once, comma-separated (e.g. 5000,100000; default: none)",
    )
    args = parser.parse_args()
    lab = Lab(prefix=BENCH_PREFIX, attackers=1).create()
    results: dict[str, list[int]] = {BASELINE: [], OURS: [], THEIRS: []}
    failed: dict[str, int] = dict.fromkeys(results, 0)
    try:
        tcp_echo_server(lab.target, SERVICE)
        with tempfile.TemporaryDirectory() as tmp:
            for number in range(args.rounds):
                work = Path(tmp, str(number))
                # A fresh source each time, so no daemon has seen it; they take turns.
                counts = []
                for index, name in enumerate(results):
                    source = str(ipaddress.ip_address("198.18.0.100") + 3 * number + index)
                    daemon: OurDaemon | PortSentry | None = None
                    if name == OURS:
                        daemon = OurDaemon(lab, work / "ours", 'BLOCK_TCP="1"\n')
                    elif name == THEIRS:
                        daemon = PortSentry(lab, work / "theirs", KILL_ROUTE)
                    try:
                        count = round_trip(lab, source, args.count, args.interval)
                        held = blocked_at_end(lab, name, source)
                        if held:
                            results[name].append(count)
                        else:
                            failed[name] += 1
                        counts.append(f"{name.split()[0]} {count}{'' if held else ' (FAILED)'}")
                    finally:
                        if daemon is not None:
                            daemon.stop()
                print(f"round {number + 1}: {', '.join(counts)}", flush=True)
            lab.target.run(["ip", "route", "flush", "type", "blackhole"], check=False)
            restores = {
                config: [
                    restore_seconds(lab, Path(tmp, f"restore{i}{n}"), args.restore, config)
                    for i in range(3)
                ]
                for n, config in enumerate(RESTORE_CONFIGS)
                if args.restore
            }
            unblocks = {
                int(n): unblock_seconds(lab, Path(tmp, f"unblock{n}"), int(n))
                for n in filter(None, args.unblock.split(","))
            }
        print(
            f"\nreaction: SYNs to an open service answered after the tripwire probe "
            f"({args.count} sent, one every {args.interval} us; {args.rounds} rounds)"
        )
        print(f"{'daemon':<26}{'median':>8}{'worst':>8}{'best':>8}{'failed':>8}")
        for name, answered in results.items() if args.rounds else ():
            if answered:
                print(
                    f"{name:<26}{statistics.median(answered):>8g}{max(answered):>8}"
                    f"{min(answered):>8}{failed[name]:>8}"
                )
            else:
                print(f"{name:<26}{'-':>8}{'-':>8}{'-':>8}{failed[name]:>8}")
        if restores:
            print(
                f"\nrestore: {args.restore} active blocks re-applied at start (store read, "
                "nftables set filled, hosts.deny lines put back, BLOCKED_FILE.stcp written)"
            )
        for config, runs in restores.items():
            print(
                f"  {config}: median {statistics.median(runs):.2f} s,"
                f" runs {', '.join(f'{r:.2f}' for r in runs)}"
            )
        if unblocks:
            print(
                f"\nunblock 198.18.0.0/15 without a daemon ({HOSTS_DENY_CONFIG}): nftables "
                "elements and hosts.deny lines removed, blocks ended, BLOCKED_FILE.stcp written"
            )
        for count, seconds in unblocks.items():
            print(f"  {count} blocks: {seconds:.2f} s ({count / seconds:,.0f} unblocks/s)")
    finally:
        lab.destroy()


if __name__ == "__main__":
    main()
