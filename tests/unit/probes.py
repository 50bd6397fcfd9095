"""Probes for unit tests, as the stcp sensor reports them."""

import ipaddress

from portwarden.detect.probe import SYN_SCAN, Probe
from portwarden.net.addresses import Proto


def syn_probe(
    port: int = 11,
    src: str = "198.18.0.11",
    seen_at: float = 0.0,
    scan: str = SYN_SCAN,
    flags: str = "SYN",
) -> Probe:
    """A TCP probe of `port` from `src` (the lab's first attacker) to the lab's target."""
    return Probe(
        ipaddress.ip_address(src),
        ipaddress.ip_address("198.18.0.1"),
        Proto.TCP,
        40000,
        port,
        "stcp",
        scan,
        flags,
        seen_at=seen_at,
    )
