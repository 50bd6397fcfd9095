"""The ignore file as PortSentry read it: where its inet_addr() read an entry otherwise than it
looks (`010.0.0.1` is 8.0.0.1, `1.2.3` is 1.2.0.3) the entry is refused with PortSentry's
reading; host bits masked off (`198.18.0.1/24` ignores all of 198.18.0.0/24) are said; a line
end of '\\r\\r\\n' is a line end; an entry PortSentry 1.2 did not honour (a dotted mask, a
blank, tab or byte-order mark before the address) is honoured with a warning."""

import ipaddress
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.config import load_settings
from portwarden.config.errors import ConfigError
from portwarden.config.ignore import parse_ignore_text
from portwarden.textfile import BOM


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (
            "1.2.3",
            "has 3 parts, not 4: PortSentry (inet_addr) read it as 1.2.0.3; write the four "
            "parts of the address meant",
        ),
        (
            "10",
            "has 1 part, not 4: PortSentry (inet_addr) read it as 0.0.0.10; write the four parts "
            "of the address meant",
        ),
        (
            "010.0.0.1",
            "is not four decimal numbers: PortSentry (inet_addr) read a leading 0 as octal "
            "(0x as hex), so it meant 8.0.0.1; write the address meant in decimal, without leading "
            "zeros",
        ),
        (
            "0x0a.0.0.1/8",
            "'0x0a.0.0.1' is not four decimal numbers: PortSentry (inet_addr) read a "
            "leading 0 as octal (0x as hex), so it meant 10.0.0.1; write the address meant in "
            "decimal, "
            "without leading zeros",
        ),
        ("a,b", "is not an IP address or network"),
        ("1.2.3.256", "is not an IP address or network"),
        ("09.1.1.1", "is not an IP address or network"),  # no octal digit: inet_addr failed too
        ("gateway.example.com", "is a host name: only addresses and networks are allowed"),
        ("2001:db8::g", "is not an IPv6 address"),
    ],
)
def test_an_entry_that_is_no_address_says_why_once(item: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_ignore_text(f"# hosts\n{item}\n", "/etc/pw.ignore")
    assert str(refused.value) == f'/etc/pw.ignore:2: "{item}": {reason}'


def test_host_bits_are_said() -> None:
    """(A mapped address is not: it means what its IPv4 form means, README says so.)"""
    networks, warnings = parse_ignore_text(
        "198.18.0.1/24\n198.18.1.0/24\n::ffff:198.18.2.1\n10.1.2.3/255.255.0.0\n", "i"
    )
    assert [str(n) for n in networks] == [
        "198.18.0.0/24",
        "198.18.1.0/24",
        "198.18.2.1/32",
        "10.1.0.0/16",
    ]
    assert warnings == [
        "i:1: 198.18.0.1/24: host bits are set; ignoring all of 198.18.0.0/24",
        "i:4: 10.1.2.3/255.255.0.0: host bits are set; ignoring all of 10.1.0.0/16",
        "i:4: 10.1.2.3/255.255.0.0: PortSentry 1.2 rejected this netmask and did not ignore "
        "these hosts; portwarden ignores 10.1.0.0/16",
    ]


def test_carriage_returns_before_the_newline_end_the_line() -> None:
    networks, warnings = parse_ignore_text("198.18.0.7\r\r\n198.18.0.8 # me\r\n", "i")
    assert networks == (ipaddress.ip_network("198.18.0.7"), ipaddress.ip_network("198.18.0.8"))
    assert warnings == []


@pytest.mark.parametrize(
    ("line", "why", "ignored"),
    [
        (
            "198.19.1.0/255.255.255.0",
            "rejected this netmask",
            "these hosts; portwarden ignores 198.19.1.0/24",
        ),
        (
            " 198.19.1.2",
            "read no address from a line that starts with a blank",
            "this host; portwarden ignores 198.19.1.2",
        ),
        (
            "\t198.19.1.2",
            "read no address from a line that starts with a tab",
            "this host; portwarden ignores 198.19.1.2",
        ),
        (
            "\t 198.19.1.0/24 # lab",
            "read no address from a line that starts with a tab",
            "these hosts; portwarden ignores 198.19.1.0/24",
        ),
        (
            "  10.1.0.0/255.255.0.0",
            "read no address from a line that starts with a blank",
            "these hosts; portwarden ignores 10.1.0.0/16",
        ),  # one warning: it never read the mask
    ],
)
def test_an_entry_portsentry_did_not_honour_is_honoured_with_a_warning(
    line: str, why: str, ignored: str
) -> None:
    """PortSentry 1.2's NeverBlock() read no address before a blank or a tab, and refused a
    dotted mask (atoi: 255 > 32): it went on alerting on and blocking these hosts."""
    networks, warnings = parse_ignore_text(f"198.19.9.9\n{line}\n", "/etc/pw.ignore")
    item = line.split("#")[0].strip()
    assert networks == (
        ipaddress.ip_network("198.19.9.9"),
        ipaddress.ip_network(ignored.rpartition(" ")[2]),
    )
    assert warnings == [
        f"/etc/pw.ignore:2: {item}: PortSentry 1.2 {why} and did not ignore {ignored}"
    ]


@pytest.mark.parametrize(
    "line",
    [
        "198.19.1.2",
        "198.19.1.0/24",
        "198.19.1.0/024",
        "  # a comment",
        "   ",
        "  2001:db8::/64",
        "\t2001:db8::1",
        "2001:db8::/64",
        "::ffff:198.19.1.2",
    ],
)
def test_an_entry_portsentry_honoured_or_never_watched_gets_no_such_warning(line: str) -> None:
    """PortSentry 1.2 watched IPv4 only: an indented IPv6 entry means what it meant to it."""
    assert parse_ignore_text(f"{line}\n", "i")[1] == []


def test_a_byte_order_mark_hides_the_first_entry_from_portsentry() -> None:
    _, warnings = parse_ignore_text("198.19.1.2\n198.19.1.3\n", "i", bom=True)
    assert warnings == [
        "i:1: 198.19.1.2: PortSentry 1.2 read no address from a line that starts "
        "with a byte-order mark and did not ignore this host; portwarden "
        "ignores 198.19.1.2"
    ]


def test_the_ignore_file_is_read_with_its_byte_order_mark(tmp_path: Path) -> None:
    ignore = tmp_path / "pw.ignore"
    ignore.write_bytes(BOM + b"198.19.1.2\n")
    conf = tmp_path / "pw.conf"
    conf.write_text(f'IGNORE_FILE="{ignore}"\nSTATE_DIR="{tmp_path}/state"\n')
    settings = load_settings(conf)
    assert settings.ignored_networks == (ipaddress.ip_network("198.19.1.2"),)
    assert settings.warnings == (
        f"{ignore}:1: 198.19.1.2: PortSentry 1.2 read no address from a line that starts with a "
        "byte-order mark and did not ignore this host; portwarden ignores 198.19.1.2",
    )


def test_entries_portsentry_did_not_honour_are_warned_about_up_to_the_cap() -> None:
    most = limits.WARNINGS_OF_A_KIND_MAX
    networks, warnings = parse_ignore_text(
        "".join(f" 198.19.0.{n}\n" for n in range(1, most + 6)), "i"
    )
    assert len(networks) == most + 5
    assert len(warnings) == most + 1
    assert warnings[-1] == (
        f"i: and 5 more entries PortSentry 1.2 did not honour (lines {most + 1}-{most + 5})"
    )
