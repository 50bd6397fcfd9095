"""The PortSentry file format, our keys, defaults and one-line errors."""

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden import cli
from portwarden.cli import main
from portwarden.config import BlockMode, ConfigError, Settings, TcpMode, UdpMode, load_settings
from portwarden.config.conffile import parse_conf
from portwarden.config.settings import to_conf_lines
from tests.unit.config_error import load_error

DEBIAN = Path(__file__).parent.parent / "data" / "debian"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "portwarden.conf"
    path.write_text(text)
    return path


def test_debian_portsentry_conf_means_what_it_meant(tmp_path: Path) -> None:
    s = load_settings(DEBIAN / "portsentry.conf")
    assert s.tcp_ports == (
        1,
        11,
        15,
        79,
        111,
        119,
        143,
        540,
        635,
        1080,
        1524,
        2000,
        5742,
        6667,
        12345,
        12346,
        20034,
        27665,
        31337,
        32771,
        32772,
        32773,
        32774,
        40421,
        49724,
        54320,
    )
    assert s.udp_ports == (
        1,
        7,
        9,
        69,
        161,
        162,
        513,
        635,
        640,
        641,
        700,
        31335,
        31337,
        32770,
        32771,
        32772,
        32773,
        32774,
        34555,
        37444,
        54321,
    )
    assert s.advanced_ports_tcp == 1024 and s.advanced_ports_udp == 1024
    assert s.advanced_exclude_tcp == {113, 139}
    assert s.advanced_exclude_udp == {520, 138, 137, 67}
    assert s.ignore_file == Path("/etc/portsentry/portsentry.ignore")
    assert s.history_file == Path("/var/lib/portsentry/portsentry.history")
    assert s.blocked_file == Path("/var/lib/portsentry/portsentry.blocked")
    assert s.resolve_host is False  # written as RESOLVE_HOST = "0", spaces around '='
    assert s.block_tcp is BlockMode.ALERT_ONLY and s.block_udp is BlockMode.ALERT_ONLY
    assert s.kill_route is not None
    assert s.kill_route.argv == ("/sbin/route", "add", "-host", "$TARGET$", "reject")
    assert s.kill_hosts_deny == "ALL: $TARGET$ : DENY"
    assert s.kill_run_cmd is None  # commented out in Debian's file
    assert s.kill_run_cmd_first is False
    assert s.scan_trigger == 0
    assert s.port_banner is None
    # Debian's /etc/default/portsentry modes are our embedded defaults.
    assert s.tcp_mode is TcpMode.CLASSIC and s.udp_mode is UdpMode.CLASSIC
    assert not any("unknown key" in w for w in s.warnings)


def test_debian_default_file_modes_are_keys(tmp_path: Path) -> None:
    text = (DEBIAN / "default-portsentry").read_text().replace('"tcp"', '"atcp"')
    s = load_settings(write(tmp_path, text))
    assert s.tcp_mode is TcpMode.ADVANCED and s.udp_mode is UdpMode.CLASSIC


def test_embedded_defaults_are_log_only() -> None:
    s = load_settings(None)
    assert s.block_tcp is BlockMode.ALERT_ONLY and s.block_udp is BlockMode.ALERT_ONLY
    assert s.kill_route is None and s.kill_hosts_deny is None
    assert s.history_file.parent == s.state_dir


def test_first_occurrence_wins_as_in_portsentry(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, 'SCAN_TRIGGER="2"\nSCAN_TRIGGER="5"\n'))
    assert s.scan_trigger == 2
    assert any(":2: SCAN_TRIGGER is set again; line 1 wins" in w for w in s.warnings)


def test_ranges_and_more_than_64_ports(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, 'TCP_PORTS="1-100, 200"\nUDP_PORTS=""\nUDP_MODE="audp"\n'))
    assert s.tcp_ports == (*range(1, 101), 200)
    assert s.udp_ports == ()


def test_unknown_key_is_a_warning(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, 'TCP_PORTS="1"\nFUTURE_KEY="x"\n'))
    assert any(":2: unknown key FUTURE_KEY ignored" in w for w in s.warnings)


def test_unquoted_value_and_trailing_comment(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '  BLOCK_TCP = 1   # block\nBLOCK_UDP="2" # cmd\n'))
    assert s.block_tcp is BlockMode.BLOCK and s.block_udp is BlockMode.RUN_CMD_ONLY


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, 'STATE_DIR="state"\nHISTORY_FILE="h"\n'))
    assert s.state_dir == tmp_path / "state"
    assert s.history_file == tmp_path / "h"
    assert s.blocked_file == tmp_path / "state" / "portsentry.blocked"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('TCP_PORTS="1,2,x"\n', ":1: TCP_PORTS=\"1,2,x\": 'x' is not a port number"),
        ('\n\nBLOCK_TCP="3"\n', ':3: BLOCK_TCP="3": must be 0 (alert only)'),
        ('TCP_PORTS="9-2"\n', ":1: TCP_PORTS=\"9-2\": range '9-2' runs backwards"),
        ('UDP_PORTS="70000"\n', "'70000' is not a port number"),
        ('TCP_MODE="xtcp"\n', ':1: TCP_MODE="xtcp": unknown TCP mode'),
        ('RESOLVE_HOST="yes"\n', ':1: RESOLVE_HOST="yes": must be 0 or 1'),
        ('SCAN_TRIGGER="-1"\n', ':1: SCAN_TRIGGER="-1": must be a whole number'),
        ('PORT_BANNER="a\x1bb"\n', ':1: PORT_BANNER="a\\x1bb": value has control characters'),
        (
            'TCP_SCAN_IGNORE="198.18.0.1; 198.18.0.0/24 -> 2001:db8::/32"\n',
            ':1: TCP_SCAN_IGNORE="198.18.0.1; 198.18.0.0/24 -> 2001:db8::/32": \'198.18.0.0/24 -> '
            "2001:db8::/32' mixes IPv4 and IPv6, so it can never match a packet",
        ),
    ],
)
def test_bad_values_name_file_line_key_value(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    shown = load_error(path)
    assert shown.startswith(str(path) + ":")
    assert message in shown
    assert "\n" not in shown


def test_check_config_output_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    original = load_settings(DEBIAN / "portsentry.conf")
    again = load_settings(write(tmp_path, "\n".join(to_conf_lines(original)) + "\n"))
    for name in (
        "tcp_ports",
        "udp_ports",
        "advanced_exclude_udp",
        "kill_route",
        "block_tcp",
        "scan_trigger",
        "tcp_mode",
        "udp_mode",
        "port_banner",
        "history_file",
    ):
        assert getattr(again, name) == getattr(original, name), name


@given(st.text())
def test_any_text_parses_or_gives_one_line_error(text: str) -> None:
    try:
        parse_conf(text, "f.conf")
    except ConfigError as error:
        assert "\n" not in str(error) and "\r" not in str(error)
        assert str(error).startswith("f.conf:")


# Characters str.splitlines() breaks on besides \n and \r: fgets (PortSentry) does not.
NOT_LINE_ENDS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", NOT_LINE_ENDS)
def test_only_newline_ends_a_line(tmp_path: Path, char: str) -> None:
    path = write(tmp_path, f'# a comment{char}with an odd character\nSCAN_TRIGGER="x"\n')
    with pytest.raises(ConfigError, match=r"portwarden\.conf:2: SCAN_TRIGGER=\"x\""):
        load_settings(path)


def test_crlf_line_ends_are_read(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, 'SCAN_TRIGGER="2"\r\nBLOCK_TCP = 1 # on\r\n'))
    assert s.scan_trigger == 2 and s.block_tcp is BlockMode.BLOCK


def test_cp1252_file_reads_as_latin1_with_right_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "p.conf"
    path.write_bytes(b'# caf\xe9 \x85 and more\nSCAN_TRIGGER="3"\nBLOCK_TCP="x"\n')
    with pytest.raises(ConfigError, match=r"p\.conf:3: BLOCK_TCP=\"x\""):
        load_settings(path)


def loads_back(tmp_path: Path, settings: Settings) -> Settings:
    """Load what check-config prints; the source and warnings aside, it must be `settings`."""
    again = load_settings(write(tmp_path, "\n".join(to_conf_lines(settings)) + "\n"))
    return dataclasses.replace(again, source=settings.source, warnings=settings.warnings)


@pytest.mark.parametrize("key", ["TCP_PORTS", "UDP_PORTS", "ADVANCED_EXCLUDE_TCP"])
def test_check_config_with_two_ports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    path = write(tmp_path, f'{key}="1,2"\n')
    assert main(["check-config", str(path)]) == 0
    assert f'{key}="1-2"' in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    ("text", "name", "value"),
    [
        ('BLOCK_DURATION="1234567"\n', "block_duration", 1234567.0),
        ('BLOCK_DURATION="0.0"\n', "block_duration", 0.0),  # forever, however written
        ('SCAN_INTERVAL="0.1"\n', "scan_interval", 0.1),
        ('BLOCK_ESCALATION="1.0000001"\n', "block_escalation", 1.0000001),
        ('SMTP_TIMEOUT="31622399.999"\n', "smtp_timeout", 31622399.999),
        ('PORT_BANNER=Go "away"\n', "port_banner", 'Go "away"'),
        ('PORT_BANNER=" # not a comment "\n', "port_banner", " # not a comment "),
        ('METRICS_LISTEN="[::1]:9100"\n', "metrics_listen", ("::1", 9100)),
        ('METRICS_LISTEN="9100"\n', "metrics_listen", ("127.0.0.1", 9100)),
    ],
)
def test_values_load_back_exactly(tmp_path: Path, text: str, name: str, value: object) -> None:
    original = load_settings(write(tmp_path, text))
    assert getattr(original, name) == value
    assert loads_back(tmp_path, original) == original


@pytest.mark.parametrize(
    ("value", "ports"), [("1,2,3,", (1, 2, 3)), (",1,2", (1, 2)), ("1,,2", (1, 2)), (",", ())]
)
@pytest.mark.parametrize("key", ["TCP_PORTS", "UDP_PORTS", "ADVANCED_EXCLUDE_UDP"])
def test_empty_port_list_items_are_skipped_with_a_warning(
    tmp_path: Path, key: str, value: str, ports: tuple[int, ...]
) -> None:
    path = write(tmp_path, f'\n{key}="{value}"\nTCP_MODE="atcp"\nUDP_MODE="audp"\n')
    s = load_settings(path)
    assert tuple(sorted(getattr(s, key.lower()))) == ports
    (warning,) = [w for w in s.warnings if key in w]
    assert warning.startswith(f"{path}:2: {key}: empty item")


def test_a_port_list_without_empty_items_gives_no_warning(tmp_path: Path) -> None:
    """(A range has a warning of its own: tests/unit/test_portsentry_reading.py.)"""
    s = load_settings(write(tmp_path, 'TCP_PORTS="1, 2,4"\nUDP_PORTS=""\nUDP_MODE="none"\n'))
    assert s.warnings == ()


@pytest.mark.parametrize(
    ("text", "name", "value"),
    [
        ('BLOCK_TCP="01"', "block_tcp", BlockMode.BLOCK),
        ('BLOCK_UDP="002"', "block_udp", BlockMode.RUN_CMD_ONLY),
        ('BLOCK_TCP=" 00 "', "block_tcp", BlockMode.ALERT_ONLY),
        ('RESOLVE_HOST="01"', "resolve_host", True),
        ('RESOLVE_HOST="000"', "resolve_host", False),
        ('KILL_RUN_CMD_FIRST="01"', "kill_run_cmd_first", True),
        ('SCAN_TRIGGER="03"', "scan_trigger", 3),
    ],
)
def test_portsentrys_number_keys_take_leading_zeros_as_its_atoi_did(
    tmp_path: Path, text: str, name: str, value: object
) -> None:
    assert getattr(load_settings(write(tmp_path, f"{text}\n")), name) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('BLOCK_TCP="yes"', 'BLOCK_TCP="yes": must be 0 (alert only), 1 (block) or 2'),
        ('BLOCK_UDP="1x"', 'BLOCK_UDP="1x": must be 0 (alert only)'),
        ('BLOCK_TCP=""', 'BLOCK_TCP="": must be 0 (alert only)'),
        ('BLOCK_TCP="03"', 'BLOCK_TCP="03": must be 0 (alert only)'),
        ('BLOCK_TCP="+1"', 'BLOCK_TCP="+1": must be 0 (alert only)'),
        ('RESOLVE_HOST="01x"', 'RESOLVE_HOST="01x": must be 0 or 1'),
        ('KILL_RUN_CMD_FIRST=""', 'KILL_RUN_CMD_FIRST="": must be 0 or 1'),
        ('SCAN_TRIGGER="0x1"', 'SCAN_TRIGGER="0x1": must be a whole number >= 0'),
    ],
)
def test_portsentrys_number_keys_still_refuse_what_is_no_number(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, f"{text}\n")
    assert load_error(path).startswith(f"{path}:1: {message}")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "TCP_PORTS='1,2,3'",
            "TCP_PORTS=\"'1,2,3'\": ''1' is not a port number (1-65535); single "
            'quotes are not quotes in this file: use double quotes: TCP_PORTS="..."',
        ),
        (
            "BLOCK_TCP = '1'  # on",
            "BLOCK_TCP=\"'1'\": must be 0 (alert only), 1 (block) or 2 (run "
            "KILL_RUN_CMD only); single quotes are not quotes in this file: use double quotes: "
            'BLOCK_TCP="..."',
        ),
    ],
)
def test_a_value_in_single_quotes_is_an_error_that_says_they_are_no_quotes(
    tmp_path: Path, text: str, shown: str
) -> None:
    path = write(tmp_path, f"{text}\n")
    assert load_error(path) == f"{path}:1: {shown}"


def test_single_quotes_inside_a_value_get_no_quote_hint(tmp_path: Path) -> None:
    assert load_error(write(tmp_path, "TCP_PORTS=1,'2'\n")).endswith(
        "''2'' is not a port number (1-65535)"
    )


def test_scan_trigger_has_no_cap_of_50(tmp_path: Path) -> None:
    """The engine counts in slices of the window, so memory does not grow with the trigger."""
    assert load_settings(write(tmp_path, 'SCAN_TRIGGER="5000"\n')).scan_trigger == 5000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('TCP_PORTS="1,\uff18\uff10"\n', r"'\uff18\uff10' is not a port number"),  # fullwidth 80
        ('UDP_PORTS="\u00b2"\n', r"'\xb2' is not a port number"),
        ('SMTP_PORT="\u0662\u0665"\n', "is not a port number"),  # Arabic-Indic 25
        ('SCAN_TRIGGER="\u00b3"\n', "must be a whole number"),
        (
            f'EVENT_LOG_MAX_BYTES="{"9" * 5000}"\n',
            "is too large (at most 18 digits)",
        ),
        (f'TCP_PORTS="{"8" * 30}"\n', "is not a port number"),
        ('BLOCKS_PER_MINUTE="\uff15"\n', "must be a whole number"),
        ('AUDIT_REQUIRED="\uff12\uff12/tcp"\n', "is not port/proto"),
        ('AUDIT_REQUIRED="\u00b2/tcp"\n', "is not port/proto"),
    ],
)
def test_numbers_are_ascii_digits(tmp_path: Path, text: str, message: str) -> None:
    shown = load_error(write(tmp_path, text))
    assert message in shown


def test_line_shape_errors_show_the_line_as_written(tmp_path: Path) -> None:
    for text, shown in [
        ('TCP_PORTS="1\n', 'TCP_PORTS="1: missing closing quote'),
        ('TCP_PORTS="1" 2\n', 'TCP_PORTS="1" 2: unexpected text after the closing quote'),
        ("  TCP_PORTS 1\n", 'TCP_PORTS 1: line is not KEY="value"'),
    ]:
        path = write(tmp_path, text)
        assert load_error(path) == f"{path}:1: {shown}"


def test_a_line_that_starts_with_no_key_is_skipped_with_a_warning_as_portsentry_did(
    tmp_path: Path,
) -> None:
    """PortSentry skipped any line that did not start with one of its keys: a comment an editor
    wrapped onto a second line must not stop a migrated host's scan detection."""
    path = write(
        tmp_path,
        '# the sensitive ports, a comment\n wrapped by an editor\n}\nFOO "bar\nTCP_PORTS="1,2"\n',
    )
    settings = load_settings(path)
    assert settings.tcp_ports == (1, 2)
    skipped = "; it starts with no key portwarden knows, so it is skipped (as PortSentry did)"
    assert settings.warnings == (
        f'{path}:2: wrapped by an editor: line is not KEY="value"{skipped}',
        f'{path}:3: }}: line is not KEY="value"{skipped}',
        f'{path}:4: FOO "bar: missing closing quote{skipped}',
    )
    path.write_text(path.read_text() + "UDP_PORTS 1,2\n")
    assert load_error(path) == f'{path}:6: UDP_PORTS 1,2: line is not KEY="value"'


@pytest.mark.parametrize("form", [["-c"], ["--config"], []])
def test_check_config_takes_the_file_like_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: list[str]
) -> None:
    path = write(tmp_path, 'SCAN_TRIGGER="7"\n')
    assert main(["check-config", *form, str(path)]) == 0
    assert 'SCAN_TRIGGER="7"' in capsys.readouterr().out.splitlines()


def test_check_config_refuses_two_files(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(SystemExit) as caught:
        main(["check-config", "-c", str(path), str(path)])
    assert caught.value.code == 2


def test_both_modes_off_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, 'TCP_MODE="none"\nUDP_MODE=""\n')
    warnings = load_settings(path).warnings
    assert [w for w in warnings if "watches nothing" in w] == [
        f"{path}:1: TCP_MODE and UDP_MODE are both off: without a mode flag the daemon watches "
        "nothing"
    ]
    assert not load_settings(write(tmp_path, 'TCP_MODE="none"\n')).warnings


def test_run_help_explains_the_mode_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "-h"])
    shown = " ".join(capsys.readouterr().out.split())
    for flag in ("-tcp", "-stcp", "-atcp", "-udp", "-sudp", "-audp"):
        assert f" {flag} " in shown
    assert "classic" in shown and "stealth" in shown and "advanced" in shown
    assert "turns the other protocol off" in shown


@pytest.mark.parametrize(
    ("flags", "modes"),
    [
        (["-stcp"], (TcpMode.STEALTH, None)),  # portsentry -stcp: TCP only
        (["-audp"], (None, UdpMode.ADVANCED)),
        (["-atcp", "-sudp"], (TcpMode.ADVANCED, UdpMode.STEALTH)),
        ([], None),  # TCP_MODE and UDP_MODE
    ],
)
def test_one_protocols_flag_turns_the_other_off(flags: list[str], modes: object) -> None:
    assert cli._modes(cli._parser().parse_args(["run", *flags])) == modes
