"""A PortSentry key whose value PortSentry 1.2 would have read otherwise than portwarden does is
applied our way, with a warning at load naming the line, the key and both values: a migrated
file may no longer mean what it meant (e.g. turn blocking on). The model of PortSentry's
reading (portsentry_reading) is checked against the real binary in tests/lab."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden.config import BlockMode, load_settings
from portwarden.config.conffile import parse_conf
from portwarden.config.defaults import DEFAULT_CONF
from portwarden.config.portsentry_reading import (
    PORTSENTRY_KEYS,
    PortSentryReading,
    differences,
    portsentry_reading,
)

DEBIAN_CONF = Path(__file__).parent.parent / "data" / "debian" / "portsentry.conf"


def warned(text: str) -> list[str]:
    entries, _ = parse_conf(text, "p.conf")
    defaults, _ = parse_conf(DEFAULT_CONF, "defaults")
    return differences(text.encode(), "p.conf", entries, defaults)


@pytest.mark.parametrize(
    ("text", "line", "value"),
    [
        ('TCP_PORTS="7"\n', 1, "7"),
        ('TCP_PORTS = "7"\n', 1, "7"),
        ('TCP_PORTS "7" # "8"\n', 1, "7"),
        ('          TCP_PORTS="7"\n', 1, "7"),  # as many blanks as the key is long: column 9 is ' '
        ('  TCP_PORTS="7"\n', None, None),  # column 9 is 'R'
        ('TCP_PORTS\t"7"\n', None, None),
        ('TCP_PORTS=7 # "8"\n', 1, "8"),  # the first quote in the line
        ('TCP_PORTS=7\nTCP_PORTS="8"\n', 1, None),  # "Quotes missing": the search ends there
        ('  TCP_PORTS="7"\nTCP_PORTS="8"\n', 2, "8"),  # a line that does not match is passed over
        ('TCP_PORTS="7"\nTCP_PORTS="8"\n', 1, "7"),  # the first wins
        ('BLOCK_UDP="1" #TCP_PORTS="9"\nTCP_PORTS="8"\n', 1, "1"),  # column 9 of BLOCK_UDP is '='
        ('# TCP_PORTS="7"\n', None, None),
        ('          # TCP_PORTS="7"\n', 1, "7"),  # a comment only in column 0
        ('TCP_PORTS="7\t8"\n', 1, "7"),  # up to the first unprintable character
        ('TCP_PORTS="7\r\n', 1, "7"),
        ('TCP_PORTS="7', 1, "7"),  # no closing quote, no newline
        ('TCP_PORTS="7é"\n', 1, "7"),
        ('TCP_PORTS="7\0"\nTCP_PORTS="8"\n', 1, "7"),
        ('TCP_PORTS="7"\r\r\n', 1, "7"),
        ('\ufeffTCP_PORTS="7"\nTCP_PORTS="8"\n', 2, "8"),  # the BOM's 3 bytes: column 9 is 'O'
        ('é TCP_PORTS="7"\n', None, None),  # 'é' is 2 bytes: column 9 is 'S', not the blank
    ],
)
def test_the_model_reads_as_portsentry_did(text: str, line: int | None, value: str | None) -> None:
    assert portsentry_reading(text.encode(), "TCP_PORTS") == PortSentryReading(line, value)


def test_a_long_line_comes_in_pieces_of_1023_characters() -> None:
    """fgets() into a 1024-byte buffer: the value is cut, and the rest is a line of its own."""
    head = 'TCP_PORTS="7001' + "," * (1023 - 15 - 2)
    assert len(head) == 1021
    assert portsentry_reading(f'{head}7777"\n'.encode(), "TCP_PORTS").value == head[11:] + "77"
    rest = "#" * 1023 + '          TCP_PORTS="5"\n'  # not a comment in its second piece
    assert portsentry_reading(rest.encode(), "TCP_PORTS") == PortSentryReading(1, "5")


@given(st.text(st.sampled_from('TCP_ORS=" #\t\n\r\0xé1'), max_size=60))
def test_the_model_never_raises_and_takes_printable_ascii(text: str) -> None:
    reading = portsentry_reading(text.encode(), "TCP_PORTS")
    if reading.value is not None:
        assert '"' not in reading.value
        assert all(" " <= ch <= "~" for ch in reading.value)


def test_debians_file_means_the_same_to_both() -> None:
    text = DEBIAN_CONF.read_text()
    assert warned(text) == []
    entries, _ = parse_conf(text, "p.conf")
    for key in PORTSENTRY_KEYS:
        ours = entries[key].value if key in entries else None
        assert portsentry_reading(text.encode(), key).value == ours, key


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        (
            'TCP_PORTS=7777 # "8888"\n',
            'p.conf:1: TCP_PORTS: PortSentry 1.2 read "8888" (line 1); portwarden applies "7777" '
            "(line 1)",
        ),
        (
            'BLOCK_UDP="1" #TCP_PORTS="9999"\nTCP_PORTS="8888"\n',
            'p.conf:2: TCP_PORTS: PortSentry 1.2 read "1" (line 1); portwarden applies "8888" '
            "(line 2)",
        ),
        (
            'BLOCK_UDP="1" #TCP_PORTS="9999"\n',
            'p.conf:1: TCP_PORTS: PortSentry 1.2 read "1" (line 1); portwarden applies its default '
            '"1,11,15,79,111,119,143,540,635,1080,1524,2000,5742,6667,12345,12346,20034,27665,31337,'
            '32771,32772,32773,32774,40421,49724,54320"',
        ),
        (
            'BLOCK_TCP=1\nBLOCK_TCP="0"\n',
            "p.conf:1: BLOCK_TCP: PortSentry 1.2 skipped it at line 1 (no quotes) and left it "
            "unset; "
            'portwarden applies "1" (line 1)',
        ),
        (
            ' BLOCK_UDP="1"\nBLOCK_UDP="0"\n',
            'p.conf:1: BLOCK_UDP: PortSentry 1.2 read "0" (line 2); portwarden applies "1" (line '
            "1)",
        ),
        (
            'PORT_BANNER="Zugriff verweigert – Ende"\n',  # up to the first non-ASCII character
            'p.conf:1: PORT_BANNER: PortSentry 1.2 read "Zugriff verweigert " (line 1); portwarden '
            'applies "Zugriff verweigert – Ende" (line 1)',
        ),
    ],
)
def test_a_value_portsentry_read_otherwise_is_warned_about(text: str, warning: str) -> None:
    assert warned(text) == [warning]


def test_a_line_can_set_two_keys_for_portsentry() -> None:
    """Its first quote is TCP_PORTS's, not BLOCK_UDP's; and column 9 is '=' for TCP_PORTS."""
    assert warned('BLOCK_UDP=1 #TCP_PORTS="9"\n')[1] == (
        'p.conf:1: BLOCK_UDP: PortSentry 1.2 read "9" (line 1); portwarden applies "1" (line 1)'
    )


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('  BLOCK_TCP="1"', "a blank before the key"),
        ('\tBLOCK_TCP="1"', "a blank before the key"),
        (" BLOCK_TCP=1", "a blank before the key"),
        ('BLOCK_TCP\t= "1"', "a tab after the key"),
        ('BLOCK_TCP\t"1"', "a tab after the key"),
        ('\ufeffBLOCK_TCP="1"', "a byte-order mark before the key"),
    ],
)
def test_a_line_portsentry_did_not_read_is_applied_with_a_warning(
    tmp_path: Path, line: str, why: str
) -> None:
    """A byte-order mark is read by PortSentry as part of the first line: the first line."""
    conf = tmp_path / "p.conf"
    first = line.startswith("\ufeff")
    conf.write_text(
        f'{line}\nKILL_RUN_CMD="/bin/true"\n'
        if first
        else f'# migrated\n{line}\nKILL_RUN_CMD="/bin/true"\n'
    )
    settings = load_settings(conf)
    assert settings.block_tcp == BlockMode.BLOCK
    n = 1 if first else 2
    assert settings.warnings == (
        f"{conf}:{n}: BLOCK_TCP: PortSentry 1.2 did not read line {n} ({why}) and left it unset; "
        f'portwarden applies "1" (line {n})',
    )


def test_crlf_converted_twice_reads_as_portsentry_read_it(tmp_path: Path) -> None:
    """'\\r\\r\\n' (a CRLF file through unix2dos again): PortSentry's value ended at the quote."""
    conf = tmp_path / "p.conf"
    conf.write_bytes(b'BLOCK_TCP="1"\r\r\nKILL_RUN_CMD="/bin/true"\r\r\n')
    settings = load_settings(conf)
    assert settings.block_tcp == BlockMode.BLOCK and settings.warnings == ()


@pytest.mark.parametrize(
    "line",
    [
        'BLOCK_TCP="1"',
        'BLOCK_TCP = "1"',
        'BLOCK_TCP "1"',
        'BLOCK_TCP="1" # on',
        '          BLOCK_TCP="1"',
        '            BLOCK_TCP = "1"  # on',
        "TCP_MODE=stcp",
        '  TCP_MODE="stcp"',  # our keys: PortSentry never read them
    ],
)
def test_a_line_portsentry_read_alike_is_not_warned_about(line: str) -> None:
    assert warned(f"{line}\n") == []


def test_a_key_set_again_is_warned_about_once_more_only_if_portsentry_differs() -> None:
    _, warnings = parse_conf('BLOCK_TCP="1"\nBLOCK_TCP="0"\n', "p.conf")
    assert warnings == ["p.conf:2: BLOCK_TCP is set again; line 1 wins"]
    assert warned('BLOCK_TCP="1"\nBLOCK_TCP="0"\n') == []


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        (
            'TCP_PORTS="1,100-200, 300-400"\n',
            'p.conf:1: TCP_PORTS: PortSentry 1.2 read only the first port of a range ("100-200" '
            "as port "
            "100); portwarden watches every port of each range",
        ),
        (
            '# udp\nUDP_PORTS = " 0099 - 0200 "\n',
            'p.conf:2: UDP_PORTS: PortSentry 1.2 read only the first port of a range ("0099 - '
            '0200" as '
            "port 99); portwarden watches every port of each range",
        ),
        (
            'ADVANCED_EXCLUDE_TCP="113,137-139"\n',
            "p.conf:1: ADVANCED_EXCLUDE_TCP: PortSentry 1.2 read only the first port of a range "
            '("137-139" as port 137); portwarden excludes every port of each range',
        ),
        (
            'ADVANCED_EXCLUDE_UDP="67-68"\n',
            "p.conf:1: ADVANCED_EXCLUDE_UDP: PortSentry 1.2 read only the first port of a range "
            '("67-68" '
            "as port 67); portwarden excludes every port of each range",
        ),
    ],
)
def test_a_range_portsentry_read_as_its_first_port_is_warned_about_once(
    text: str, warning: str
) -> None:
    """PortSentry cut a port list at ',' and read each item with atoi(): "100-200" was 100."""
    assert warned(text) == [warning]


@pytest.mark.parametrize(
    "text",
    [
        'UDP_REPLY_SOURCE_PORTS="1-100"\n',  # our key: PortSentry never read it
        '  TCP_PORTS="100-200"\n',  # PortSentry did not read the line: the warning says so instead
        'TCP_PORTS="100,200"\n',
    ],
)
def test_a_range_warning_only_where_portsentry_read_the_same_list(text: str) -> None:
    assert not [w for w in warned(text) if "first port of a range" in w]


def test_the_range_warning_comes_with_the_file_at_load(tmp_path: Path) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text('TCP_PORTS="1-3"\n')
    assert load_settings(conf).warnings == (
        f'{conf}:1: TCP_PORTS: PortSentry 1.2 read only the first port of a range ("1-3" as port '
        "1); portwarden watches every port of each range",
    )
