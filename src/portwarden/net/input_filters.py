"""The nftables base chains that may drop a packet on its way in (ingress, prerouting, input),
iptables-nft's among them: what reaches port 111 for `portmap check`, and what the sensors can
see at all (a raw socket gets a packet only after the input hook has accepted it)."""

import json
from typing import NamedTuple

from portwarden.respond.nft import Nft, NftError

_FILTER_HOOKS = {"ingress", "prerouting", "input"}


class FilterChain(NamedTuple):
    family: str
    table: str
    name: str
    hook: str
    policy: str  # accept or drop
    has_rules: bool

    def __str__(self) -> str:
        return (f"nftables: table {self.family} {self.table} chain {self.name} "
                f"(hook {self.hook}, policy {self.policy})")  # fmt: skip


def input_filter_chains(skip_tables: frozenset[tuple[str, str]] = frozenset()) -> list[FilterChain]:
    """Every base chain of type filter on those hooks, but those of `skip_tables` (family,
    table). Empty when the ruleset cannot be read (no libnftables)."""
    try:
        listing = json.loads(Nft().run("list ruleset", json_output=True)).get("nftables", [])
    except (NftError, ValueError):
        return []
    ruled = {
        (r.get("family"), r.get("table"), r.get("chain"))
        for r in (item["rule"] for item in listing if isinstance(item.get("rule"), dict))
    }
    found = []
    for chain in (item["chain"] for item in listing if isinstance(item.get("chain"), dict)):
        key = (str(chain.get("family")), str(chain.get("table")))
        if chain.get("type") != "filter" or chain.get("hook") not in _FILTER_HOOKS:
            continue
        if key in skip_tables:
            continue
        name, hook, policy = (str(chain.get(k, "accept")) for k in ("name", "hook", "policy"))
        found.append(FilterChain(*key, name, hook, policy, (*key, name) in ruled))
    return found
