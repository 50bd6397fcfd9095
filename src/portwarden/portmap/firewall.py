"""Firewall rules that drop TCP and UDP port 111 from everyone but the allowed networks.

Two backends, chosen by the administrator:

- nftables: table `inet portwarden_portmap` with one input chain, changed in one libnftables
  transaction. A table of its own, not the blocker's `inet portwarden`, which
  `portwarden unblock --all` deletes.
- iptables: chain PORTWARDEN_PORTMAP in the filter table of iptables and ip6tables, jumped to
  first from INPUT, loaded with `iptables-restore --noflush` (one atomic commit per family; if
  the second family fails, the first is put back as it was, so both change or neither does).
  Within one chain the first rule that accepts decides, so a rule above our jump (another
  tool's `-I INPUT 1 ... -j ACCEPT`) can let port 111 through: our rules protect only while
  the jump is first, and protect moves it back there. (nftables has no such order between
  tables: an accept ends only its own base chain, and a drop in any base chain is final, so a
  table that accepts port 111 earlier on the input hook does not undo our drop.)

Sources are matched by address, not by interface: a probe from a local address outside the
allowed networks travels over `lo` and must be dropped too. Each change is a list of Steps, so
`--dry-run` prints exactly what would run; an empty list means the rules are already in place.
Each step, once run, can be put back (`Undo`), so that a command that fails half-way through
leaves the firewalls as it found them.
"""

import hashlib
import ipaddress
import json
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from portwarden import limits
from portwarden.config.ignore import Network
from portwarden.config.values import PORTMAP_TABLE
from portwarden.net.addresses import PORTMAPPER_PORT
from portwarden.net.input_filters import input_filter_chains
from portwarden.net.nftables import DEFAULT_TABLE, Nft, NftError
from portwarden.text import one_line

Backend = Literal["nft", "iptables"]
Choice = Literal["nft", "iptables", "none"]  # `--firewall`
BACKENDS: tuple[Backend, ...] = ("nft", "iptables")
TABLE = PORTMAP_TABLE
CHAIN = "PORTWARDEN_PORTMAP"
_PRIORITY = "filter - 10"
_JUMP = f"-A INPUT -j {CHAIN}"
_COMMENT = "portwarden-portmap "  # then a digest of the rules: on every rule we write


class FirewallError(Exception):
    """A firewall tool failed or is missing; str() is one line."""


class ToolMissing(FirewallError):
    """The firewall's tool is not installed (no libnftables, no iptables): none of our rules
    can be in it."""


@dataclass(frozen=True)
class Step:
    """One atomic change: a script for `tool` (nft, or an iptables-restore variant)."""

    tool: str
    script: str

    def show(self) -> str:
        command = self.tool if self.tool == "nft" else f"{self.tool} --noflush"
        return f"# {command}\n{self.script}"


# Puts back what one step changed; returns how that went, for the error message.
Undo = Callable[[], str]


class Firewall(Protocol):
    name: str  # for people: nftables, iptables

    def protect(self, networks: tuple[Network, ...]) -> list[Step]: ...
    def unprotect(self) -> list[Step]: ...
    def foreign(self, deleted_by: str | None = None) -> str | None: ...
    def describe(self) -> list[str]: ...
    def active(self) -> bool: ...
    def allowed(self) -> tuple[Network, ...]: ...
    def run(self, step: Step) -> Undo: ...


def _not_ours(
    place: str, kind: str, replaced: str, found: list[str], deleted_by: str | None
) -> str | None:
    """The one warning, for either firewall, when our table or chain (`place`, a `kind`)
    holds `found`, things we did not put there: protect replaces `replaced` and unprotect
    deletes the whole, so they would go silently; `deleted_by`: the command about to delete
    the whole now (a protect that takes our rules out of this firewall). None when `found` is
    empty."""
    if not found:
        return None
    fate = (
        f"and {deleted_by} deletes it, with all it holds"
        if deleted_by
        else f"protect replaces {replaced} and unprotect deletes it"
    )
    return one_line(
        f"{place} holds what portwarden did not put there ({'; '.join(found)}): "
        f"the {kind} is portwarden's alone, {fate}; keep your own rules in a {kind} "
        "of your own",
        600,
    )


def _by_family(networks: tuple[Network, ...], version: int) -> list[Network]:
    return [n for n in networks if n.version == version]


class NftFirewall:
    """Our own nftables table; a rule comment carries a digest of what we wrote."""

    name = "nftables"

    def __init__(self) -> None:
        try:
            self._nft = Nft()
        except NftError as error:
            raise ToolMissing(f"nftables: {error}") from None

    def _nft_run(self, script: str, json_output: bool = False) -> str:
        try:
            return self._nft.run(script, json_output=json_output)
        except NftError as error:
            raise FirewallError(f"nftables: {error}") from None

    def _rules(self) -> list[dict] | None:
        """Our chain's rules as nft JSON objects; None when the table or chain is missing."""
        try:
            output = self._nft_run(f"list chain inet {TABLE} input", json_output=True)
        except FirewallError:
            return None
        items = json.loads(output).get("nftables", [])
        return [item["rule"] for item in items if "rule" in item]

    def protect(self, networks: tuple[Network, ...]) -> list[Step]:
        rules = []
        for match, version in (("ip", 4), ("ip6", 6)):
            sources = ", ".join(str(n) for n in _by_family(networks, version))
            rules.append(
                f"{match} saddr != {{ {sources} }} meta l4proto {{ tcp, udp }} "
                f"th dport {PORTMAPPER_PORT} drop"
            )
        digest = hashlib.sha256("\n".join(rules).encode()).hexdigest()[:16]
        comment = f"{_COMMENT}{digest}"
        current = self._rules()
        if current is not None and [r.get("comment") for r in current] == [comment] * len(rules):
            return []
        lines = [
            f"add table inet {TABLE}",
            f"add chain inet {TABLE} input {{ type filter hook input priority {_PRIORITY}; "
            "policy accept; }",
            f"flush chain inet {TABLE} input",
            *(f'add rule inet {TABLE} input {rule} comment "{comment}"' for rule in rules),
        ]
        return [Step("nft", "\n".join(lines) + "\n")]

    def unprotect(self) -> list[Step]:
        try:
            self._nft_run(f"list table inet {TABLE}")
        except FirewallError:
            return []
        return [Step("nft", f"delete table inet {TABLE}\n")]

    def foreign(self, deleted_by: str | None = None) -> str | None:
        """A warning line if our table holds anything we did not put there (a rule added by
        hand, another chain, a set): protect flushes our chain and unprotect deletes the
        table, so it would go silently (see _not_ours)."""
        try:
            output = self._nft_run(f"list table inet {TABLE}", json_output=True)
        except FirewallError:
            return None
        found = []
        for item in json.loads(output).get("nftables", []):
            kind, body = next(iter(item.items()), ("", {}))
            if not isinstance(body, dict) or kind in ("metainfo", "table"):
                continue
            if kind == "rule" and str(body.get("comment", "")).startswith(_COMMENT):
                continue
            if kind == "chain" and body.get("name") == "input":
                continue
            where = f" in chain {body.get('chain')}" if kind == "rule" else ""
            name = f"handle {body.get('handle')}" if kind == "rule" else body.get("name")
            found.append(f"{kind} {name}{where}")
        place = f"nftables table inet {TABLE}"
        return _not_ours(place, "table", "its chain's rules", found, deleted_by)

    def active(self) -> bool:
        """Both drop rules (IPv4 and IPv6) are in our chain."""
        comments = [str(r.get("comment", "")) for r in self._rules() or []]
        return sum(c.startswith(_COMMENT) for c in comments) == 2

    def allowed(self) -> tuple[Network, ...]:
        """The sources our rules let through (the sets after `saddr !=`)."""
        found: list[Network] = []
        for rule in self._rules() or []:
            for expression in rule.get("expr", []):
                match = expression.get("match") if isinstance(expression, dict) else None
                if isinstance(match, dict) and match.get("op") == "!=" and _is_source(match):
                    found += _networks(match.get("right"))
        return tuple(found)

    def describe(self) -> list[str]:
        try:
            listing = self._nft_run(f"list chain inet {TABLE} input")
        except FirewallError:
            return [f"nftables: no table inet {TABLE}"]
        rules = [line.strip() for line in listing.splitlines() if "dport" in line]
        return [f"nftables: table inet {TABLE}:", *(f"  {rule}" for rule in rules)]

    def run(self, step: Step) -> Undo:
        try:
            before: str | None = self._nft_run(f"list table inet {TABLE}")
        except FirewallError:
            before = None  # no table
        self._nft_run(step.script)
        return lambda: self._put_back(before)

    def _put_back(self, before: str | None) -> str:
        """Our table as it was (`before`: its listing; None: there was none)."""
        script = f"add table inet {TABLE}\ndelete table inet {TABLE}\n{before or ''}"
        try:
            self._nft_run(script)
        except FirewallError as error:
            return f"putting nftables back failed, check table inet {TABLE} by hand ({error})"
        return "nftables was put back as it was"


class _Saved(NamedTuple):
    """One family's chain and jumps as they were before a step: what putting it back restores."""

    tool: str  # iptables, ip6tables
    rules: list[str] | None  # `-S CHAIN` lines; None: there was no chain
    jumps: list[int]  # the numbers of the INPUT rules that jumped to the chain


class IptablesFirewall:
    """Chain PORTWARDEN_PORTMAP in iptables and ip6tables, first in INPUT."""

    name = "iptables"

    _TOOLS = (("iptables", 4), ("ip6tables", 6))

    def _list(self, tool: str, chain: str) -> list[str] | None:
        """`tool -S chain` lines; None when the chain does not exist."""
        result = _iptables([tool, "-w", "-S", chain])
        return result.stdout.splitlines() if result.returncode == 0 else None

    def _input(self, tool: str) -> list[str]:
        """The INPUT chain's rules, in order."""
        return [r for r in self._list(tool, "INPUT") or [] if r.startswith("-A INPUT ")]

    def _jumps(self, tool: str) -> list[int]:
        """The numbers of the INPUT rules that jump to our chain."""
        return [number for number, rule in enumerate(self._input(tool), 1) if rule == _JUMP]

    def _above(self, tool: str) -> list[str]:
        """The INPUT rules above our first jump: any of them may accept port 111 first."""
        rules = self._input(tool)
        return rules[: rules.index(_JUMP)] if _JUMP in rules else []

    def protect(self, networks: tuple[Network, ...]) -> list[Step]:
        steps = []
        for tool, version in self._TOOLS:
            wanted = [f"-A {CHAIN} -s {n} -j RETURN" for n in _by_family(networks, version)]
            wanted += [
                f"-A {CHAIN} -p {p} -m {p} --dport {PORTMAPPER_PORT} -j DROP"
                for p in ("tcp", "udp")
            ]
            jumps = self._jumps(tool)
            first = jumps[:1] == [1]
            if self._list(tool, CHAIN) == [f"-N {CHAIN}", *wanted] and first:
                continue
            # The jump goes first in INPUT, moved back there when a rule was put above it.
            jump = (
                [] if first else [*[f"-D INPUT -j {CHAIN}"] * len(jumps), f"-I INPUT 1 -j {CHAIN}"]
            )
            lines = ["*filter", f":{CHAIN} - [0:0]", *wanted, *jump, "COMMIT"]
            steps.append(Step(f"{tool}-restore", "\n".join(lines) + "\n"))
        return steps

    def unprotect(self) -> list[Step]:
        steps = []
        for tool, _ in self._TOOLS:
            if self._list(tool, CHAIN) is None:
                continue
            jumps = [f"-D INPUT -j {CHAIN}"] * len(self._jumps(tool))
            lines = ["*filter", *jumps, f"-F {CHAIN}", f"-X {CHAIN}", "COMMIT"]
            steps.append(Step(f"{tool}-restore", "\n".join(lines) + "\n"))
        return steps

    def foreign(self, deleted_by: str | None = None) -> str | None:
        """A warning line if our chain holds a rule of a form we never write (added by hand):
        protect replaces the chain's rules and unprotect deletes it (see _not_ours)."""
        drops = {
            f"-A {CHAIN} -p {p} -m {p} --dport {PORTMAPPER_PORT} -j DROP" for p in ("tcp", "udp")
        }
        found = [
            f"{tool}: {rule}"
            for tool, _ in self._TOOLS
            for rule in self._list(tool, CHAIN) or []
            if rule != f"-N {CHAIN}"
            and rule not in drops
            and not (
                rule.startswith(f"-A {CHAIN} -s ")
                and rule.endswith(" -j RETURN")
                and rule.count(" ") == 5
            )
        ]
        return _not_ours(f"chain {CHAIN}", "chain", "its rules", found, deleted_by)

    def active(self) -> bool:
        """Both chains exist, end in the drop rules and are jumped to first from INPUT."""
        for tool, _ in self._TOOLS:
            rules = self._list(tool, CHAIN) or []
            if self._jumps(tool)[:1] != [1] or not any(r.endswith("-j DROP") for r in rules):
                return False
        return True

    def allowed(self) -> tuple[Network, ...]:
        """The sources our chains return early for (a RETURN without -s: all of the family)."""
        found: list[Network] = []
        for tool, version in self._TOOLS:
            for rule in self._list(tool, CHAIN) or []:
                words = rule.split()
                if words[-2:] != ["-j", "RETURN"]:
                    continue
                source = words[words.index("-s") + 1] if "-s" in words else None
                everyone = "0.0.0.0/0" if version == 4 else "::/0"
                found += _networks(source or everyone)
        return tuple(found)

    def describe(self) -> list[str]:
        lines = []
        for tool, _ in self._TOOLS:
            rules = self._list(tool, CHAIN)
            if rules is None:
                lines.append(f"{tool}: no chain {CHAIN}")
                continue
            above = self._above(tool)
            state = "jumped to from INPUT" if self._jumps(tool) else "NOT jumped to from INPUT"
            state += ", but not first: a rule above may accept port 111" if above else ""
            lines += [f"{tool}: chain {CHAIN} ({state}):", *(f"  {r}" for r in rules[1:])]
            lines += [f"{tool}: above our jump in INPUT: {rule}" for rule in above]
        return lines

    def run(self, step: Step) -> Undo:
        """Commit `step`: one family, atomically."""
        tool = step.tool.removesuffix("-restore")
        saved = _Saved(tool, self._list(tool, CHAIN), self._jumps(tool))
        self._commit(step)
        return lambda: self._put_back(saved)

    def _put_back(self, saved: _Saved) -> str:
        """Return `saved.tool`'s chain and jumps to the saved state; says how that went."""
        lines = ["*filter", *[f"-D INPUT -j {CHAIN}"] * len(self._jumps(saved.tool))]
        if saved.rules is not None:
            lines += [f":{CHAIN} - [0:0]", *saved.rules[1:]]
            lines += [f"-I INPUT {number} -j {CHAIN}" for number in saved.jumps]
        elif self._list(saved.tool, CHAIN) is not None:
            lines += [f"-F {CHAIN}", f"-X {CHAIN}"]
        try:
            self._commit(Step(f"{saved.tool}-restore", "\n".join([*lines, "COMMIT"]) + "\n"))
        except FirewallError as error:
            return f"putting {saved.tool} back failed, check chain {CHAIN} by hand ({error})"
        return f"{saved.tool} was put back as it was"

    def _commit(self, step: Step) -> None:
        result = _iptables([step.tool, "-w", "--noflush"], step.script)
        if result.returncode != 0:
            said = " ".join(result.stderr.split()) or f"status {result.returncode}"
            raise FirewallError(f"{step.tool}: {said}")


def _is_source(match: dict[str, Any]) -> bool:
    left = match.get("left")
    payload = left.get("payload") if isinstance(left, dict) else None
    return isinstance(payload, dict) and payload.get("field") == "saddr"


def _networks(value: Any) -> list[Network]:
    """The networks in an nft JSON value (an address, a prefix, a range or a set of them) or
    in iptables' `-s` text; what cannot be read is left out."""
    try:
        if isinstance(value, str):
            return [ipaddress.ip_network(value, strict=False)]
        if isinstance(value, dict) and isinstance(value.get("set"), list):
            return [n for item in value["set"] for n in _networks(item)]
        if isinstance(value, dict) and isinstance(value.get("prefix"), dict):
            prefix = value["prefix"]
            return [ipaddress.ip_network(f"{prefix.get('addr')}/{prefix.get('len')}", strict=False)]
        if isinstance(value, dict) and isinstance(value.get("range"), list):
            first, last = map(ipaddress.ip_address, value["range"])
            return list(ipaddress.summarize_address_range(first, last))
    except (ValueError, TypeError):
        pass
    return []


_OURS = frozenset(
    {
        ("inet", TABLE),
        ("inet", DEFAULT_TABLE),
    }
)  # the blocker drops by source address only


def other_filters() -> list[str]:
    """Rules that are not ours and may filter what reaches port 111, one line each: every nft
    base chain of type filter on ingress, prerouting or input with a rule or a drop policy
    (iptables-nft's chains among them), and legacy iptables' INPUT chains (which nft does not
    see). Without them, nothing filters incoming traffic."""
    found = [
        str(chain)
        for chain in input_filter_chains(_OURS)
        if chain.policy != "accept" or chain.has_rules
    ]
    return found + _legacy_iptables_filters()


def _legacy_iptables_filters() -> list[str]:
    found = []
    for tool in ("iptables", "ip6tables"):
        try:
            version = _iptables([tool, "-V"]).stdout
            if "legacy" not in version:
                continue  # the nf_tables build: its chains are in the nft ruleset
            rules = _iptables([tool, "-w", "-S", "INPUT"]).stdout.splitlines()
        except FirewallError:
            continue
        theirs = [r for r in rules if r not in ("-P INPUT ACCEPT", _JUMP)]
        if theirs:
            found.append(f"{tool} (legacy): chain INPUT ({len(theirs)} rules or policy)")
    return found


_CAP_NET_ADMIN = 12  # linux/capability.h


def may_read() -> bool:
    """Whether this process may read the firewall: nftables and iptables need CAP_NET_ADMIN
    (root has it), and libnftables, refused, writes its complaint to our stderr itself."""
    try:
        status = Path("/proc/self/status").read_text()
        effective = next(line for line in status.splitlines() if line.startswith("CapEff:"))
        return bool(int(effective.split()[1], 16) >> _CAP_NET_ADMIN & 1)
    except (OSError, StopIteration, IndexError, ValueError):
        return os.geteuid() == 0


def firewall(backend: Backend) -> Firewall:
    return NftFirewall() if backend == "nft" else IptablesFirewall()


Steps = list[tuple[Firewall, Step]]


def unprotect_steps(named: Backend) -> Steps:
    """The steps that remove our rules from both firewalls: the one `named` (which must
    work), then the other unless its tool is missing. Our table and chains hold nothing but
    what protect put there, so unprotect removes them wherever they are, whichever
    `--firewall` protect was given: an administrator who ran unprotect believes the host is
    as it was before."""
    other: Backend = "iptables" if named == "nft" else "nft"
    return _removals((named, other), named)


def protect_steps(choice: Choice, networks: tuple[Network, ...]) -> tuple[Steps, Steps]:
    """The steps that put our rules for `networks` into the firewall `choice` (its tool
    missing is an error), and those that then take ours out of the other one, or both for
    `none` (unless its tool is missing): rules an earlier protect with another `--firewall`
    left there would go on dropping, by their own allowed networks, what these let in."""
    added: Steps = []
    if choice != "none":
        wall = firewall(choice)
        added = [(wall, step) for step in wall.protect(networks)]
    return added, _removals([b for b in BACKENDS if b != choice])


def _removals(backends: Iterable[Backend], required: Backend | None = None) -> Steps:
    """The steps that remove our rules from `backends`, in order; a missing tool (none of our
    rules can be there) is passed over, but for the backend `required`."""
    found: Steps = []
    for backend in backends:
        try:
            wall = firewall(backend)
        except ToolMissing:
            if backend == required:
                raise
            continue
        found += [(wall, step) for step in wall.unprotect()]
    return found


def _iptables(argv: list[str], script: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one iptables tool (no shell), with a time limit."""
    try:
        return subprocess.run(
            argv,
            input=script,
            capture_output=True,
            text=True,
            timeout=limits.IPTABLES_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise ToolMissing(f"{argv[0]} not found (install iptables)") from None
    except subprocess.TimeoutExpired:
        raise FirewallError(
            f"{argv[0]}: no answer in {limits.IPTABLES_TIMEOUT_S} s (is another program holding "
            "the xtables lock?)"
        ) from None
