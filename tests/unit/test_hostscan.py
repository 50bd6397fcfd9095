"""scandetd's HostScanIgnore rules: an IPv6 address written without brackets whose last group
could be a port is loaded as an address, with a warning that says how to write the port."""

from pathlib import Path

import pytest

from portwarden.config import load_settings
from portwarden.config.hostscan import endpoint_warnings, parse_rules


@pytest.mark.parametrize(
    ("text", "ambiguous"),
    [
        ("2001:db8::1:53", ["2001:db8::1:53"]),  # 2001:db8::1 port 53, or the address?
        ("2001:db8::/64 -> 2001:db8::1:443", ["2001:db8::1:443"]),
        ("[2001:db8::1]:53", []),  # brackets: the port is clear
        ("2001:db8::/32:53", []),  # a prefix length: so is this
        ("2001:db8::53", []),  # '2001:db8:' is no address: it can only be one
        ("2001:db8:0:0:0:0:1:53", []),  # all eight groups: an address
        ("2001:db8::1:ab", []),  # 'ab' is no port number
        ("198.18.0.1:53", []),
    ],
)
def test_ambiguous_ipv6_endpoints(text: str, ambiguous: list[str]) -> None:
    parse_rules(text)  # loads either way
    found = endpoint_warnings(text)
    assert [line.split("'")[1] for line in found] == ambiguous


def test_the_warning_names_file_line_key_and_the_bracketed_form(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text('# rules\nUDP_SCAN_IGNORE="2001:db8::1:53"\n')
    settings = load_settings(conf)
    assert (
        f"{conf}:2: UDP_SCAN_IGNORE: '2001:db8::1:53' is taken as the address 2001:db8::1:53;"
        " for port 53 of 2001:db8::1, write [2001:db8::1]:53" in settings.warnings
    )
    assert str(settings.udp_scan_ignore[0]) == "2001:db8::1:53/128"


@pytest.mark.parametrize("text", ["198.18.0.0/24 -> 2001:db8::/32", "2001:db8::1 -> 0.0.0.0/0"])
def test_a_rule_that_mixes_families_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="mixes IPv4 and IPv6"):
        parse_rules(f"198.18.0.9; {text}")


def test_an_ipv4_mapped_end_is_ipv4() -> None:
    (rule,) = parse_rules("[::ffff:198.18.0.11]:53 -> 198.18.0.1")
    assert str(rule) == "198.18.0.11/32:53 -> 198.18.0.1/32"


@pytest.mark.parametrize(
    ("text", "wide"),
    [
        ("198.18.0.1/24", ["'198.18.0.1/24': host bits are set; it matches all of 198.18.0.0/24"]),
        (
            "10.0.0.0/8 -> 198.18.0.9/30:1-1024",
            ["'198.18.0.9/30:1-1024': host bits are set; it matches all of 198.18.0.8/30"],
        ),
        (
            "[2001:db8::1/64]:53",
            ["'[2001:db8::1/64]:53': host bits are set; it matches all of 2001:db8::/64"],
        ),
        ("198.18.0.1", []),
    ],
)
def test_a_network_written_with_host_bits_is_a_warning(text: str, wide: list[str]) -> None:
    """As in the ignore file: `198.18.0.1/24` means all of 198.18.0.0/24, which may not be what
    was meant (one host?)."""
    parse_rules(text)
    assert endpoint_warnings(text) == wide
