"""Values taken exactly as README documents them, and what check-config says about the rest
(found by a second review of issue 2): numbers of seconds in ASCII digits, the mode words of
/etc/default/portsentry, files that cannot be written, a hint for a mistyped key, a missing
libnftables, and warnings as the command's own lines."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden.cli import main
from portwarden.config import TcpMode, UdpMode, load_settings, values
from portwarden.config.settings import to_conf_lines
from portwarden.net import nftables
from tests.conftest import require_lab
from tests.unit.config_error import load_error

SECONDS_KEYS = (
    "SCAN_TRIGGER_WINDOW",
    "SCAN_INTERVAL",
    "KILL_CMD_TIMEOUT",
    "SCAN_END_QUIET",
    "SMTP_TIMEOUT",
    "BLOCK_DURATION",
    "BLOCK_DURATION_MAX",
    "AUDIT_INTERVAL",
    "SERVICE_GONE_GRACE",
    "SCAN_REPORT_INTERVAL",
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.conf"
    path.write_text(text)
    return path


# 1. Numbers of seconds (and BLOCK_ESCALATION): ASCII digits, maybe a fraction; nothing else.

NOT_PLAIN = [
    "\u0663",
    "1_000",
    "+1",
    "1e3",
    " 3",
    "3 ",
    "inf",
    "nan",
    ".5",
    "5.",
    "1.2.3",
    "\uff11",
    "-0",
    "0x10",
    "1,5",
]


@pytest.mark.parametrize("key", [*SECONDS_KEYS, "BLOCK_ESCALATION"])
@pytest.mark.parametrize("text", NOT_PLAIN)
def test_numbers_other_than_plain_digits_are_one_line_errors(
    tmp_path: Path, key: str, text: str
) -> None:
    path = write(tmp_path, f'\n{key}="{text}"\n')
    shown = load_error(path)
    assert shown.startswith(f'{path}:2: {key}="') and "\n" not in shown
    assert "in ASCII digits, with a fraction if need be (30, 0.5)" in shown


@pytest.mark.parametrize(("text", "seconds"), [("30", 30.0), ("0.5", 0.5), ("0030.250", 30.25)])
def test_plain_digits_with_a_fraction_are_seconds(
    tmp_path: Path, text: str, seconds: float
) -> None:
    assert load_settings(write(tmp_path, f'SCAN_INTERVAL="{text}"\n')).scan_interval == seconds


_PIECES = st.sampled_from(
    [
        "0",
        "1",
        "9",
        ".",
        "_",
        "+",
        "-",
        "e",
        "E",
        " ",
        "\t",
        "\u0663",
        "\uff11",
        "\u00b2",
        "inf",
        "nan",
        "x",
    ]
)


@given(st.one_of(st.lists(_PIECES, max_size=8).map("".join), st.text(max_size=8)))
def test_only_ascii_digits_with_an_optional_fraction_are_read(text: str) -> None:
    """Whatever the text, the number parser reads it only if it is plain digits, maybe with a
    fraction, and then reads it as float() does."""
    plain = re.fullmatch(r"[0-9]+(\.[0-9]+)?", text, re.ASCII) is not None
    assert values.plain_number(text) == (float(text) if plain else None)
    for parse in (values.seconds, values.duration, values.factor):
        try:
            parse(text)
        except ValueError as error:
            assert "\n" not in str(error)
        else:
            assert plain


def test_a_tiny_fraction_is_shown_without_an_exponent(tmp_path: Path) -> None:
    """check-config prints what the key takes back: 0.00001, never 1e-05."""
    settings = load_settings(write(tmp_path, 'KILL_CMD_TIMEOUT="0.00001"\n'))
    assert 'KILL_CMD_TIMEOUT="0.00001"' in to_conf_lines(settings)


# 2. TCP_MODE / UDP_MODE: exactly Debian's words, and `none` (or "") for off.


@pytest.mark.parametrize("text", ["-", "off", "--stcp", "-stcp", "STCP", " stcp", "stcp "])
def test_undocumented_mode_words_are_errors(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, f'TCP_MODE="{text}"\n')
    shown = load_error(path)
    assert shown == (
        f'{path}:1: TCP_MODE="{text}": unknown TCP mode; use one of tcp, stcp, atcp, none or ""'
    )


@pytest.mark.parametrize(("text", "mode"), [("stcp", TcpMode.STEALTH), ("none", None), ("", None)])
def test_documented_mode_words_load(tmp_path: Path, text: str, mode: TcpMode | None) -> None:
    assert load_settings(write(tmp_path, f'TCP_MODE="{text}"\n')).tcp_mode is mode


@pytest.mark.parametrize("off", ["none", ""])
def test_check_config_shows_an_unused_mode_as_none_and_it_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], off: str
) -> None:
    path = write(tmp_path, f'TCP_MODE="atcp"\nUDP_MODE="{off}"\n')
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'UDP_MODE="none"' in out.splitlines()
    again = write(tmp_path, out)
    assert load_settings(again).udp_mode is None
    assert load_settings(again, (None, UdpMode.STEALTH)).udp_mode is UdpMode.STEALTH


# 3. HISTORY_FILE and BLOCKED_FILE that cannot be written: errors at load, as EVENT_LOG's.


@pytest.mark.parametrize("key", ["HISTORY_FILE", "BLOCKED_FILE", "EVENT_LOG"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("adir", "adir: a directory, not a file"),
        ("afile/x", "afile exists and is not a directory"),
    ],
)
def test_a_file_that_cannot_be_written_is_a_placed_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, reason: str
) -> None:
    """`run` loads the file as check-config does (and would stop there, exit 2)."""
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    path = write(tmp_path, f'STATE_DIR="state"\n{key}="{value}"\n')
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f'portwarden: error: {path}:2: {key}="{value}": {tmp_path}/{reason}\n'
    )
    assert not (tmp_path / "state").exists()  # refused before anything started


def test_a_file_on_a_read_only_file_system_is_an_error(tmp_path: Path) -> None:
    """As root (who runs the daemon) a folder the daemon may not write is found at load."""
    require_lab()
    folder = tmp_path / "ro"
    folder.mkdir()
    path = write(tmp_path, f'HISTORY_FILE="{folder}/portsentry.history"\n')
    script = (
        "import subprocess, sys\n"
        f"subprocess.run(['mount', '--bind', '-o', 'ro', {str(folder)!r}, {str(folder)!r}],"
        " check=True)\n"
        "from portwarden.cli import main\n"
        f"sys.exit(main(['check-config', {str(path)!r}]))\n"
    )
    argv = ["unshare", "-m", "--propagation", "private", sys.executable, "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (
        2,
        (
            f'portwarden: error: {path}:1: HISTORY_FILE="{folder}/portsentry.history": '
            f"{folder} is not writable\n"
        ),
    )


# 5. A mistyped key: a hint.


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("TCP_PORT", " (did you mean TCP_PORTS?)"),
        ("tcp_ports", " (did you mean TCP_PORTS?)"),
        ("BLOCK_DURATON", " (did you mean BLOCK_DURATION?)"),
        ("FUTURE_FEATURE", ""),
    ],
)
def test_an_unknown_key_close_to_a_known_one_gets_a_hint(
    tmp_path: Path, key: str, hint: str
) -> None:
    path = write(tmp_path, f'{key}="1"\n')
    assert load_settings(path).warnings == (f"{path}:1: unknown key {key} ignored{hint}",)


# 6 and 8. check-config's warnings: its own lines; libnftables that cannot be loaded.


def test_check_config_prints_warnings_as_its_own_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, 'TCP_PORT="1"\n')
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().err == (
        f"portwarden: warning: {path}:1: unknown key TCP_PORT ignored (did you mean TCP_PORTS?)\n"
    )


@pytest.mark.parametrize(
    ("conf", "warned"),
    [
        ('BLOCK_TCP="1"\n', True),
        ('BLOCK_UDP="1"\nBLOCK_NFTABLES="1"\nKILL_ROUTE="/bin/true $TARGET$"\n', True),
        ('BLOCK_TCP="1"\nKILL_ROUTE="/bin/true $TARGET$"\n', False),  # auto: not with KILL_ROUTE
        ('BLOCK_TCP="1"\nBLOCK_NFTABLES="0"\n', False),
        ('BLOCK_TCP="2"\n', False),
    ],
)
def test_check_config_warns_when_the_nftables_blocker_cannot_load_its_library(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    conf: str,
    warned: bool,
) -> None:
    monkeypatch.setattr(nftables, "_LIBRARY", "libnftables-missing.so.1")
    assert main(["check-config", str(write(tmp_path, conf))]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "libnftables" in line]
    expected = (
        "portwarden: warning: blocking uses the built-in nftables blocker "
        "(BLOCK_NFTABLES), but libnftables-missing.so.1 not found (install "
        "libnftables1): "
    )
    assert len(said) == int(warned) and all(line.startswith(expected) for line in said)
