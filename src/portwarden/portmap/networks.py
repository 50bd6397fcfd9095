"""The networks allowed to reach the portmapper: the administrator's, plus loopback, always."""

import ipaddress
import re
from collections.abc import Iterable

from portwarden.config.errors import ConfigError
from portwarden.config.ignore import (
    ALWAYS_IGNORED,
    WRITE_DECIMAL,
    InetForm,
    Network,
    parse_network,
    read_otherwise,
)
from portwarden.portmap.wrappers import covers_everyone
from portwarden.text import counted

_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)\](/[0-9]+)?")  # [2001:db8::]/64


_ARGUMENT = "--allow"  # what the texts are given with (`portwarden portmap protect`)


def allowed_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """Parse `texts` (addresses or networks, never names) and add loopback.

    Overlapping networks are merged (nftables refuses overlapping intervals), IPv4 first, in
    address order, so the same arguments always give the same rules. Raises ConfigError naming
    the argument and the value: for a bad value, and for values the rules could not honour or
    that protect nothing (a scope, every address of a family). An IPv4-mapped address is taken
    as its IPv4 address (parse_network), the form IPv4 callers come in.
    """
    texts = list(texts)
    parsed: list[Network] = list(ALWAYS_IGNORED)
    for text in texts:
        parsed.append(_network(text))
    v4 = [n for n in parsed if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in parsed if isinstance(n, ipaddress.IPv6Network)]
    merged: tuple[Network, ...] = (
        *ipaddress.collapse_addresses(v4),
        *ipaddress.collapse_addresses(v6),
    )
    everyone = covers_everyone(merged)
    if everyone is not None:
        together = ", ".join(
            t for t in texts if parse_network(_plain(t)).version == everyone.version
        )
        raise ConfigError(
            _ARGUMENT,
            f"together they allow every address ({everyone}): the "
            "portmapper would not be protected at all",
            value=together,
        )
    return merged


def _network(text: str) -> Network:
    if "%" in text:
        raise ConfigError(
            _ARGUMENT,
            "a scope (%device) has no place in TCP Wrappers or firewall "
            "rules: give the address without it",
            value=text,
        )
    try:
        network = parse_network(_plain(text))
    except InetForm as error:
        raise ConfigError(_ARGUMENT, _as_libwrap_reads(error), value=text) from None
    except ValueError as error:
        raise ConfigError(_ARGUMENT, str(error), value=text) from None
    if network.prefixlen == 0:
        raise ConfigError(
            _ARGUMENT,
            "allows every address: the portmapper would not be protected at all",
            value=text,
        )
    return network


def _as_libwrap_reads(form: InetForm) -> str:
    """What libwrap (TCP Wrappers), which the address is meant for here, makes of a form that
    inet_addr() reads. Measured with Debian 12's: in `net/mask` it reads each part as
    inet_addr() does (`198.18.050.0/255.255.255.0` lets 198.18.40.1 in), but wants four parts
    (`198.18.0/255.255.255.0` matches no one); an address alone it compares as text, so
    `198.18.050.1` matches no caller at all."""
    if form.parts != 4:
        return (
            f"'{form.text}' has {counted(form.parts, 'part')}, not 4: libwrap (TCP "
            "Wrappers) takes it for no address and it would match no caller; write the "
            "four parts of the address meant"
        )
    return (
        f"'{form.text}' is not four decimal numbers: libwrap (TCP Wrappers) reads a leading "
        f"0 as octal (0x as hex), so it reads {form.meant}; {WRITE_DECIMAL}"
    )


def host_bits_warnings(texts: Iterable[str]) -> list[str]:
    """A warning for each network written with host bits (198.18.0.17/28), which are dropped:
    the administrator may have meant a host, or another network. An IPv4-mapped address or
    network (::ffff:198.18.1.0/120) is taken as its IPv4 form, which is said too: the rules are
    written for IPv4 callers, as that is how they come."""
    warnings = []
    for text in texts:
        network = parse_network(_plain(text))
        said = read_otherwise(_plain(text), network)
        if said:
            warnings.append(f'{_ARGUMENT} "{text}": {said}; the network allowed is {network}')
    return warnings


def _plain(text: str) -> str:
    """An IPv6 address or network as hosts.allow writes it (`[2001:db8::]/64`, `[2001:db8::14]`)
    without its brackets; any other text as it is."""
    bracketed = _BRACKETED.fullmatch(text)
    return text if bracketed is None else bracketed[1] + (bracketed[2] or "")
