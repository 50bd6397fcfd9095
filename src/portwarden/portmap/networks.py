"""The networks allowed to reach the portmapper: the administrator's, plus loopback, always."""

import ipaddress
from collections.abc import Iterable

from portwarden.config.errors import ConfigError
from portwarden.config.ignore import ALWAYS_IGNORED, Network, parse_network


def allowed_networks(texts: Iterable[str], argument: str = "--allow") -> tuple[Network, ...]:
    """Parse `texts` (addresses or networks, never names) and add loopback.

    Overlapping networks are merged (nftables refuses overlapping intervals), IPv4 first, in
    address order, so the same arguments always give the same rules. Raises ConfigError naming
    the argument and the value.
    """
    parsed: list[Network] = list(ALWAYS_IGNORED)
    for text in texts:
        try:
            parsed.append(parse_network(text))
        except ValueError as error:
            raise ConfigError(argument, str(error), value=text) from None
    v4 = [n for n in parsed if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in parsed if isinstance(n, ipaddress.IPv6Network)]
    return (*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6))
