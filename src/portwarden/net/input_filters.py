"""The nftables base chains that may drop a packet on its way in (ingress, prerouting, input),
iptables-nft's among them: what reaches port 111 for `portmap check`, and what the sensors can
see at all (a raw socket gets a packet only after the input hook has accepted it)."""

import json
from typing import Any, NamedTuple

from portwarden.net.nftables import Nft, NftError

_FILTER_HOOKS = {"ingress", "prerouting", "input"}


class FilterChain(NamedTuple):
    family: str
    table: str
    name: str
    hook: str
    policy: str  # accept or drop
    has_rules: bool
    ends_in: str | None  # drop or reject: its last rule drops whatever reaches it (firewalld)

    @property
    def closed(self) -> bool:
        """Whether it drops what it does not accept: by its policy or by its last rule."""
        return self.policy == "drop" or self.ends_in is not None

    def __str__(self) -> str:
        end = f", ends in {self.ends_in}" if self.ends_in else ""
        return (
            f"nftables: table {self.family} {self.table} chain {self.name} "
            f"(hook {self.hook}, policy {self.policy}{end})"
        )


def input_filter_chains(skip_tables: frozenset[tuple[str, str]] = frozenset()) -> list[FilterChain]:
    """Every base chain of type filter on those hooks, but those of `skip_tables` (family,
    table). Empty when the ruleset cannot be read (no libnftables)."""
    try:
        listing = json.loads(Nft().run("list ruleset", json_output=True)).get("nftables", [])
    except (NftError, ValueError):
        return []
    last_rules: dict[tuple[str, str, str], list[Any]] = {}
    for rule in (item["rule"] for item in listing if isinstance(item.get("rule"), dict)):
        key3 = (str(rule.get("family")), str(rule.get("table")), str(rule.get("chain")))
        last_rules[key3] = rule.get("expr") or []  # rules are listed in order
    found = []
    for chain in (item["chain"] for item in listing if isinstance(item.get("chain"), dict)):
        key = (str(chain.get("family")), str(chain.get("table")))
        if chain.get("type") != "filter" or chain.get("hook") not in _FILTER_HOOKS:
            continue
        if key in skip_tables:
            continue
        name, hook, policy = (str(chain.get(k, "accept")) for k in ("name", "hook", "policy"))
        last = last_rules.get((*key, name))
        found.append(FilterChain(*key, name, hook, policy, last is not None, _verdict_of(last)))
    return found


_NOT_A_MATCH = {"counter", "log"}  # statements that let every packet through to the verdict


def _verdict_of(expressions: list[Any] | None) -> str | None:
    """'drop' or 'reject' when the rule drops every packet that reaches it (no match before
    its verdict, as firewalld's last rule `reject with icmpx admin-prohibited`), else None."""
    if not expressions or not all(isinstance(e, dict) and len(e) == 1 for e in expressions):
        return None
    *before, verdict = (next(iter(e)) for e in expressions)
    if verdict not in ("drop", "reject") or not set(before) <= _NOT_A_MATCH:
        return None
    return str(verdict)
