"""The engine's cost per probe (Engine.feed), no packets, no privileges.

Run from the repository root:  .venv/bin/python -m benchmarks.engine [SRC_DIR ...]

Each SRC_DIR is the src/ of another checkout (a worktree of an older commit, say): its engine is
timed in a process of its own, in turns with this checkout's, and printed in a column beside it.
Each figure is the best of several runs, in microseconds per probe.
"""

import argparse
import ipaddress
import json
import os
import random
import subprocess
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

PROBES = 20_000
REPEAT = 5
ROUNDS = 3
HERE = Path(__file__).resolve().parents[1] / "src"


def cases() -> dict[str, Callable[[], None]]:
    """What is timed: each case feeds PROBES probes to a new engine."""
    from portwarden.detect.engine import Engine, EngineConfig
    from portwarden.detect.probe import Probe
    from portwarden.net.addresses import Proto

    rnd = random.Random(1)
    target = ipaddress.ip_address("198.18.0.1")

    def syn(src: ipaddress.IPv4Address) -> Probe:
        return Probe(
            src,
            target,
            Proto.TCP,
            40000,
            rnd.randrange(1, 65536),
            "stcp",
            "TCP SYN/Normal scan",
            "SYN",
        )

    base = int(ipaddress.ip_address("198.19.0.0"))
    spoofed = [syn(ipaddress.IPv4Address(base + rnd.randrange(65536))) for _ in range(PROBES)]
    scanner = [syn(ipaddress.IPv4Address("198.18.0.11")) for _ in range(PROBES)]

    def feed(config: EngineConfig, probes: list[Probe], scanner_every: int = 0) -> None:
        engine = Engine(config)
        for i, probe in enumerate(probes):
            engine.feed(probe, i * 1e-4)
            if scanner_every and i % scanner_every == 0:
                engine.feed(scanner[i], i * 1e-4)

    return {
        "spoofed flood, trigger 0 (20k sources, 16k table)": lambda: feed(EngineConfig(), spoofed),
        "one source, 20k probes, trigger 3": lambda: feed(EngineConfig(trigger=3), scanner),
        "spoofed flood, trigger 3, 4k table (evicting)": lambda: feed(
            EngineConfig(trigger=3, sources_max=4096), spoofed
        ),
        "same, a scanner's probe every 50": lambda: feed(
            EngineConfig(trigger=3, sources_max=4096), spoofed, 50
        ),
    }


def measure() -> dict[str, float]:
    """Microseconds per probe, each case's best of REPEAT."""
    return {
        name: min(timeit.repeat(run, number=1, repeat=REPEAT)) / PROBES * 1e6
        for name, run in cases().items()
    }


def measure_in(src: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.engine", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("others", nargs="*", type=Path, metavar="SRC_DIR")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one run
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure()))
        return
    trees = [HERE, *(path.resolve() for path in args.others)]
    best: list[dict[str, float]] = [{} for _ in trees]
    for _ in range(ROUNDS):  # in turns, so a busy moment of the machine hits every tree alike
        for column, tree in zip(best, trees, strict=True):
            for name, us in measure_in(tree).items():
                column[name] = min(us, column.get(name, us))
    width = max(len(name) for name in best[0])
    print(f"{'us per probe':{width}s}" + "".join(f" {str(t)[-22:]:>22s}" for t in trees))
    for name in best[0]:
        print(f"{name:{width}s}" + "".join(f" {column[name]:22.2f}" for column in best))


if __name__ == "__main__":
    main()
