"""The ignore file: addresses, /bits, the old /dotted.mask form, IPv6, one-line errors."""

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden.config import ConfigError, load_settings
from portwarden.config.ignore import (
    IgnoreList,
    Network,
    outermost,
    parse_ignore_text,
    parse_network,
)
from portwarden.net.local import local_addresses


def read_ignore_text(text: str) -> tuple[tuple[Network, ...], list[str]]:
    return parse_ignore_text(text, "i")


DEBIAN = Path(__file__).parent.parent / "data" / "debian"


def test_debian_static_ignore_file() -> None:
    nets, warnings = parse_ignore_text((DEBIAN / "portsentry.ignore.static").read_text(), "x")
    assert [str(n) for n in nets] == ["127.0.0.1/32", "0.0.0.0/32"]
    assert warnings == []


def test_all_forms() -> None:
    text = """# comment
198.18.5.7
198.18.0.0/16  # trailing comment
10.1.2.3/255.255.255.0
2001:db8:1::/48
2001:db8::9
"""
    nets, warnings = parse_ignore_text(text, "x")
    assert [str(n) for n in nets] == [
        "198.18.5.7/32",
        "198.18.0.0/16",
        "10.1.2.0/24",
        "2001:db8:1::/48",
        "2001:db8::9/128",
    ]
    assert warnings == [
        "x:4: 10.1.2.3/255.255.255.0: host bits are set; ignoring all of 10.1.2.0/24",
        "x:4: 10.1.2.3/255.255.255.0: PortSentry 1.2 rejected this netmask and "
        "did not ignore these hosts; portwarden ignores 10.1.2.0/24",
    ]
    ignore = IgnoreList.build(nets)
    assert ipaddress.ip_address("10.1.2.200") in ignore
    assert ipaddress.ip_address("10.1.3.1") not in ignore
    assert ipaddress.ip_address("::ffff:198.18.200.1") in ignore  # IPv4-mapped IPv6
    assert ipaddress.ip_address("2001:db8:1:ffff::1") in ignore


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("gateway.example.com", "is a host name: only addresses and networks are allowed"),
        ("10.0.0.0/33", "prefix /33 is longer than 32 bits"),
        ("10.0.0.0/255.0.255.0", "netmask '255.0.255.0' is not contiguous"),
        ("2001:db8::/ffff::", "is not a prefix length"),
        ("10.0.0.0/\uff12\uff14", "is neither a prefix length nor a dotted netmask"),  # fullwidth
        ("2001:db8::/\u00b2", "is not a prefix length"),
    ],
)
def test_bad_lines(line: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_ignore_text(f"127.0.0.1\n{line}\n", "/etc/pw.ignore")
    assert str(caught.value).startswith("/etc/pw.ignore:2:")
    assert reason in str(caught.value)


def test_ignore_file_from_config_and_local_addresses(tmp_path: Path) -> None:
    (tmp_path / "ignore").write_text("198.19.0.0/16\n")
    conf = tmp_path / "p.conf"
    conf.write_text('IGNORE_FILE="ignore"\n')
    ignore = load_settings(conf).ignore_list(local_addresses())
    assert ipaddress.ip_address("198.19.3.4") in ignore
    assert ipaddress.ip_address("127.5.5.5") in ignore
    assert ipaddress.ip_address("::1") in ignore
    for address in local_addresses():
        assert address in ignore


def test_bad_ignore_file_stops_loading(tmp_path: Path) -> None:
    (tmp_path / "ignore").write_text("198.19.0.0/16\nnot-an-ip\n")
    conf = tmp_path / "p.conf"
    conf.write_text('IGNORE_FILE="ignore"\n')
    with pytest.raises(ConfigError, match=r"ignore:2: \"not-an-ip\""):
        load_settings(conf)


@given(st.text())
def test_any_text_parses_or_gives_one_line_error(text: str) -> None:
    try:
        parse_ignore_text(text, "i")
    except ConfigError as error:
        assert "\n" not in str(error) and "\r" not in str(error)


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
def test_only_newline_ends_a_line(char: str) -> None:
    with pytest.raises(ConfigError, match=r"^i:3: \"bad\""):
        parse_ignore_text(f"# comment{char}more\n198.18.0.1\nbad\n", "i")


def test_crlf_lines() -> None:
    nets, _ = read_ignore_text("198.18.0.1\r\n198.19.0.0/16 # lab\r\n")
    assert [str(n) for n in nets] == ["198.18.0.1/32", "198.19.0.0/16"]


def test_latin1_ignore_file_loads_and_errors_name_the_line(tmp_path: Path) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text('IGNORE_FILE="ignore"\n')
    (tmp_path / "ignore").write_bytes(b"# r\xe9seau du labo\n198.19.0.0/16\n")
    assert ipaddress.ip_network("198.19.0.0/16") in load_settings(conf).ignored_networks
    (tmp_path / "ignore").write_bytes(b"# r\xe9seau\n198.19.0.0/16\nrouteur-\xe9\n")
    with pytest.raises(ConfigError, match=r"ignore:3: \"routeur-\\xe9\""):
        load_settings(conf)


@pytest.mark.parametrize(
    ("line", "network", "inside", "outside"),
    [
        ("::ffff:198.18.0.6", "198.18.0.6/32", "198.18.0.6", "198.18.0.7"),
        ("::ffff:1.2.3.0/120", "1.2.3.0/24", "1.2.3.200", "1.2.4.1"),
        ("::ffff:198.18.0.6/128", "198.18.0.6/32", "::ffff:198.18.0.6", "198.18.0.5"),
        ("::ffff:0:0/96", "0.0.0.0/0", "203.0.113.9", "2001:db8::9"),
    ],
)
def test_ipv4_mapped_entries_are_ipv4_networks(
    line: str, network: str, inside: str, outside: str
) -> None:
    (parsed,), _ = read_ignore_text(line + "\n")
    assert str(parsed) == network
    ignore = IgnoreList.build([parsed])
    assert ipaddress.ip_address(inside) in ignore
    assert ipaddress.ip_address(outside) not in ignore


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("fe80::1%eth0", '"fe80::1%eth0": has a zone (%eth0)'),
        ("fe80::%2/64", "'fe80::%2' has a zone (%2)"),
        ("::ffff:1.2.3.4/64", "an IPv4-mapped address needs a prefix of /96 or longer"),
    ],
)
def test_scoped_and_short_mapped_entries_are_refused(line: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_ignore_text(f"# x\n{line}\n", "/etc/pw.ignore")
    assert str(caught.value).startswith(f'/etc/pw.ignore:2: "{line}": ')
    assert reason in str(caught.value)


def test_text_after_the_address_is_a_warning() -> None:
    """PortSentry read a line up to the first character that cannot be part of an address."""
    nets, warnings = read_ignore_text("# lab\n198.18.0.1 router\n198.19.0.0/16\tlab net # x\n")
    assert [str(n) for n in nets] == ["198.18.0.1/32", "198.19.0.0/16"]
    assert warnings == [
        'i:2: "router" after the address is ignored',
        'i:3: "lab net" after the address is ignored',
    ]


@pytest.mark.parametrize("line", ["198.18.0.1x", "198.18.0.1/24x", "198.18.0.1,router"])
def test_text_glued_to_the_address_is_an_error(line: str) -> None:
    with pytest.raises(ConfigError, match=r"^i:1: "):
        read_ignore_text(f"{line}\n")


@pytest.mark.parametrize(
    ("line", "version"),
    [("0.0.0.0/0", 4), ("::/0", 6), ("0.0.0.0/0.0.0.0", 4), ("::ffff:0:0/96", 4)],
)
def test_ignoring_everything_is_a_warning(line: str, version: int) -> None:
    _, warnings = read_ignore_text(f"198.18.0.1\n{line}\n")
    assert warnings == [
        f"i:2: {line} ignores every IPv{version} source: no detection, no blocking for IPv{version}"
    ]


def test_ignore_file_warnings_are_settings_warnings(tmp_path: Path) -> None:
    (tmp_path / "ignore").write_text("198.19.0.1 router\n::/0\n")
    conf = tmp_path / "p.conf"
    conf.write_text('IGNORE_FILE="ignore"\n')
    warnings = load_settings(conf).warnings
    assert f'{tmp_path / "ignore"}:1: "router" after the address is ignored' in warnings
    assert any(w.startswith(f"{tmp_path / 'ignore'}:2: ::/0 ignores every IPv6") for w in warnings)


def test_an_ignore_file_name_too_long_is_a_one_line_error(tmp_path: Path) -> None:
    """Found by the grammar property test: Path.exists() raised ENAMETOOLONG."""
    conf = tmp_path / "p.conf"
    conf.write_text(f'IGNORE_FILE="{"a" * 300}"\n')
    error = r':1: IGNORE_FILE="a+\.\.\.": cannot read the ignore file: File name too long$'
    with pytest.raises(ConfigError, match=error):
        load_settings(conf)


def test_outermost_leaves_out_what_another_network_holds() -> None:
    nets = [
        parse_network(t)
        for t in (
            "127.0.0.0/8",
            "127.0.0.1",
            "::1",
            "198.18.0.1",
            "::/0",
            "198.18.0.1",
            "10.0.0.0/8",
        )
    ]
    assert [str(n) for n in outermost(nets)] == [
        "127.0.0.0/8",
        "198.18.0.1/32",
        "::/0",
        "10.0.0.0/8",
    ]
