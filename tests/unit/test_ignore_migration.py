"""The ignore file as PortSentry read it: where its inet_addr() read an entry otherwise than it
looks (`010.0.0.1` is 8.0.0.1, `1.2.3` is 1.2.0.3) the entry is refused with PortSentry's
reading; host bits masked off (`198.18.0.1/24` ignores all of 198.18.0.0/24) are said; a line
end of '\\r\\r\\n' is a line end."""

import ipaddress

import pytest

from portwarden.config.errors import ConfigError
from portwarden.config.ignore import parse_ignore_text


@pytest.mark.parametrize(("item", "reason"), [
    ("1.2.3", "has 3 parts, not 4: PortSentry (inet_addr) read it as 1.2.0.3; write the four "
     "parts of the address meant"),
    ("10", "has 1 part, not 4: PortSentry (inet_addr) read it as 0.0.0.10; write the four parts "
     "of the address meant"),
    ("010.0.0.1", "is not four decimal numbers: PortSentry (inet_addr) read a leading 0 as octal "
     "(0x as hex), so it meant 8.0.0.1; write the address meant in decimal, without leading "
     "zeros"),
    ("0x0a.0.0.1/8", "'0x0a.0.0.1' is not four decimal numbers: PortSentry (inet_addr) read a "
     "leading 0 as octal (0x as hex), so it meant 10.0.0.1; write the address meant in decimal, "
     "without leading zeros"),
    ("a,b", "is not an IP address"),
    ("1.2.3.256", "is not an IP address"),
    ("09.1.1.1", "is not an IP address"),  # no octal digit: inet_addr failed too
    ("gateway.example.com", "is a host name: only addresses and networks are allowed"),
    ("2001:db8::g", "is not an IPv6 address"),
])  # fmt: skip
def test_an_entry_that_is_no_address_says_why_once(item: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_ignore_text(f"# hosts\n{item}\n", "/etc/pw.ignore")
    assert str(refused.value) == f'/etc/pw.ignore:2: "{item}": {reason}'


def test_host_bits_are_said() -> None:
    """(A mapped address is not: it means what its IPv4 form means, README says so.)"""
    networks, warnings = parse_ignore_text(
        "198.18.0.1/24\n198.18.1.0/24\n::ffff:198.18.2.1\n10.1.2.3/255.255.0.0\n", "i"
    )
    assert [str(n) for n in networks] == ["198.18.0.0/24", "198.18.1.0/24", "198.18.2.1/32",
                                          "10.1.0.0/16"]  # fmt: skip
    assert warnings == [
        "i:1: 198.18.0.1/24: host bits are set; ignoring all of 198.18.0.0/24",
        "i:4: 10.1.2.3/255.255.0.0: host bits are set; ignoring all of 10.1.0.0/16",
    ]


def test_carriage_returns_before_the_newline_end_the_line() -> None:
    networks, warnings = parse_ignore_text("198.18.0.7\r\r\n198.18.0.8 # me\r\n", "i")
    assert networks == (ipaddress.ip_network("198.18.0.7"), ipaddress.ip_network("198.18.0.8"))
    assert warnings == []
