"""What the configuration refuses or warns about beyond single values: a mode with no port, files
that are not files, a KILL_* program that is not there; and what it accepts as PortSentry did
(`KEY "value"`, a BOM). Found by the review of issue 2."""

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from portwarden import daemon, limits
from portwarden.cli import main
from portwarden.config import ConfigError, TcpMode, UdpMode, load_settings
from portwarden.config.hostscan import parse_rules
from portwarden.config.settings import nothing_to_do, to_conf_lines
from portwarden.respond.actions import Actions
from portwarden.store.db import Store
from tests.unit.config_error import load_error


def write(tmp_path: Path, text: str, name: str = "p.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# 1. A classic or stealth mode with no port to watch: PortSentry aborted.


@pytest.mark.parametrize(
    ("key", "mode"),
    [("TCP_PORTS", "tcp"), ("TCP_PORTS", "stcp"), ("UDP_PORTS", "udp"), ("UDP_PORTS", "sudp")],
)
def test_a_mode_with_an_empty_port_list_is_an_error(tmp_path: Path, key: str, mode: str) -> None:
    mode_key = f"{key[:3]}_MODE"
    path = write(tmp_path, f'{mode_key}="{mode}"\n{key}=""\n')
    assert load_error(path) == (
        f'{path}:2: {key}="": names no port, but {mode_key}="{mode}" watches it; list ports or '
        f'set {mode_key}="none" (PortSentry refused to start too)'
    )


def test_the_default_mode_is_named_as_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, 'TCP_PORTS="1"\nUDP_PORTS=",,"\n')
    assert load_error(path).startswith(
        f'{path}:2: UDP_PORTS=",,": names no port, but UDP_MODE="udp" (the default) watches it'
    )


def test_the_mode_flags_decide_which_lists_must_have_ports(tmp_path: Path) -> None:
    path = write(tmp_path, 'TCP_MODE="tcp"\nUDP_MODE="udp"\nTCP_PORTS=""\nUDP_PORTS="9"\n')
    assert load_error(path, (TcpMode.STEALTH, None)).startswith(
        f'{path}:3: TCP_PORTS="": names no port, but the flag -stcp watches it; list ports or '
        "leave out -stcp"
    )
    # -sudp alone turns TCP off, so the empty TCP list does not matter
    assert load_settings(path, (None, UdpMode.STEALTH)).udp_ports == (9,)
    assert load_settings(path, (TcpMode.ADVANCED, UdpMode.CLASSIC)).tcp_mode is TcpMode.ADVANCED


def test_advanced_and_off_modes_need_no_port_list(tmp_path: Path) -> None:
    path = write(tmp_path, 'TCP_MODE="atcp"\nUDP_MODE="none"\nTCP_PORTS=""\nUDP_PORTS=""\n')
    assert load_settings(path).tcp_ports == ()


def test_run_and_check_config_refuse_a_mode_without_ports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    started = []
    monkeypatch.setattr(daemon, "Daemon", lambda *args: started.append(args))
    path = write(tmp_path, 'TCP_MODE="none"\nTCP_PORTS=""\n')
    assert main(["check-config", str(path)]) == 0
    assert main(["run", "-c", str(path), "-stcp"]) == 2
    assert started == []
    assert capsys.readouterr().err.strip() == (
        f'portwarden: error: {path}:2: TCP_PORTS="": names no port, but the flag -stcp watches '
        "it; list ports or leave out -stcp (PortSentry refused to start too)"
    )
    path.write_text('TCP_MODE="stcp"\nTCP_PORTS=""\n')
    assert main(["check-config", str(path)]) == 2
    assert f'{path}:2: TCP_PORTS="": names no port' in capsys.readouterr().err


# 2. `KEY "value"`: PortSentry took a key followed by '=' or a space.


@pytest.mark.parametrize(
    "line",
    ['SCAN_TRIGGER "3"', 'SCAN_TRIGGER  "3"  # three', 'SCAN_TRIGGER\t"3"', '  SCAN_TRIGGER "3"'],
)
def test_a_key_a_blank_and_a_quoted_value_sets_the_key(tmp_path: Path, line: str) -> None:
    assert load_settings(write(tmp_path, line + "\n")).scan_trigger == 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("SCAN_TRIGGER 3", 'SCAN_TRIGGER 3: line is not KEY="value"'),  # PortSentry: quotes missing
        ('SCAN_TRIGGER "3', 'SCAN_TRIGGER "3: missing closing quote'),
        ('SCAN_TRIGGER "3" 4', 'SCAN_TRIGGER "3" 4: unexpected text after the closing quote'),
    ],
)
def test_without_equals_the_value_must_be_quoted(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, line + "\n")
    assert load_error(path) == f"{path}:1: {reason}"


# 3. Only regular files are read, and only so much of them.


def load_in_time(path: Path) -> str:
    """The error loading `path` gives, within 5 s (a FIFO used to block for ever)."""
    found: list[BaseException] = []
    worker = threading.Thread(
        target=lambda: found.append(pytest.raises(ConfigError, load_settings, path).value),
        daemon=True,
    )
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "loading hung"
    return str(found[0])


def test_an_ignore_file_that_is_a_device_or_fifo_is_a_one_line_error(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, kind in (
        ("/dev/zero", "a character device"),
        (fifo, "a FIFO"),
        (tmp_path, "a directory"),
    ):
        path = write(tmp_path, f'SCAN_TRIGGER="1"\nIGNORE_FILE="{target}"\n')
        assert load_in_time(path) == (
            f'{path}:2: IGNORE_FILE="{target}": cannot read the '
            f"ignore file: not a regular file but {kind}"
        )


def test_dev_null_is_an_empty_ignore_file(tmp_path: Path) -> None:
    """PortSentry read /dev/null as an empty file; old configurations say "no ignore file" so."""
    settings = load_settings(write(tmp_path, 'IGNORE_FILE="/dev/null"\n'))
    assert settings.ignore_file == Path("/dev/null")
    assert settings.ignored_networks == ()


def test_a_configuration_that_is_a_fifo_is_a_one_line_error(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.conf"
    os.mkfifo(fifo)
    assert load_in_time(fifo) == (
        f"{fifo}: cannot read the configuration: not a regular file but a FIFO"
    )


def test_files_larger_than_the_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "CONFIG_FILE_BYTES_MAX", 2**20)
    (tmp_path / "ignore").write_text("198.18.0.1\n" * 100_000)
    path = write(tmp_path, 'IGNORE_FILE="ignore"\n')
    assert load_error(path) == (
        f'{path}:1: IGNORE_FILE="ignore": cannot read the ignore file: larger than 1 MiB'
    )
    path.write_text("# padding\n" * 110_000)
    assert load_error(path) == f"{path}: cannot read the configuration: larger than 1 MiB"


def test_a_password_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    path = write(tmp_path, f'SMTP_USER="u"\nSMTP_PASSWORD_FILE="{fifo}"\n')
    assert load_in_time(path).endswith(f"cannot read {fifo}: not a regular file but a FIFO")


# 4. Every message names its line.


def test_mail_without_recipients_names_the_mail_key_that_is_on(tmp_path: Path) -> None:
    path = write(tmp_path, 'MAIL_TO=""\nMAIL_ON_UDP_SCAN="1"\n')
    assert load_error(path) == (
        f'{path}:2: MAIL_ON_UDP_SCAN="1": mail is on but MAIL_TO names nobody to send it to'
    )


def test_a_missing_ignore_file_warning_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'SCAN_TRIGGER="1"\nIGNORE_FILE="nothing"\n')
    (warning,) = load_settings(path).warnings
    assert warning.startswith(f"{path}:2: IGNORE_FILE {tmp_path / 'nothing'} does not exist")


# 5. A byte-order mark before the first line.


def test_a_bom_is_not_part_of_the_first_line(tmp_path: Path) -> None:
    (tmp_path / "ignore").write_bytes(b"\xef\xbb\xbf198.18.0.7\n")
    path = tmp_path / "p.conf"
    path.write_bytes(b'\xef\xbb\xbfSCAN_TRIGGER="4"\nIGNORE_FILE="ignore"\n')
    settings = load_settings(path)
    assert settings.scan_trigger == 4 and [str(n) for n in settings.ignored_networks] == [
        "198.18.0.7/32"
    ]
    path.write_bytes(b'\xef\xbb\xbfSCAN_TRIGGER="4"\nBANNER="\xe9"\n')  # Latin-1 further on
    assert load_settings(path).scan_trigger == 4


# 6. Port lists of any length load fast.


def test_a_huge_port_list_loads_fast(tmp_path: Path) -> None:
    ports = ",".join(["1-65535"] * 20_000 + ["80-90"] * 20_000 + [str(p) for p in range(1, 60000)])
    path = write(tmp_path, f'UDP_PORTS="{ports}"\nTCP_PORTS="{ports}"\n')
    started = time.monotonic()
    settings = load_settings(path)
    assert time.monotonic() - started < 5  # was 34 s for the ranges of one key
    assert settings.udp_ports == tuple(range(1, 65536)) == settings.tcp_ports


def test_overlapping_ranges_mean_what_they_meant(tmp_path: Path) -> None:
    path = write(tmp_path, 'TCP_PORTS="5, 1-3 ,2-4,7-7,9,8,100-200,150-160,201"\n')
    assert load_settings(path).tcp_ports == (1, 2, 3, 4, 5, 7, 8, 9, *range(100, 202))


# 7. and 8. check-config's output: short and the same every time.


def test_a_scan_ignore_rule_is_shown_with_ranges(tmp_path: Path) -> None:
    rule = "198.18.0.0/24:1-1024 -> 198.18.0.1/32:22,1024-65535"
    (parsed,) = parse_rules(rule)
    assert str(parsed) == rule
    path = write(tmp_path, f'TCP_SCAN_IGNORE="{rule}"\n')
    assert f'TCP_SCAN_IGNORE="{rule}"' in to_conf_lines(load_settings(path))


def test_the_ignored_networks_are_shown_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ignore").write_text("2001:db8::5\n198.18.0.9\n10.0.0.0/8\n198.18.0.10\n::/0\n")
    path = write(tmp_path, 'IGNORE_FILE="ignore"\n')
    assert main(["check-config", str(path)]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("# ignored")]
    shown = line.split(": ", 1)[1].split(", ")
    v4 = [n for n in shown if ":" not in n]
    assert shown[: len(v4)] == v4  # IPv4 first
    for wanted in ("10.0.0.0/8", "127.0.0.0/8", "198.18.0.9/32", "198.18.0.10/32"):
        assert wanted in v4
    assert v4.index("198.18.0.9/32") < v4.index("198.18.0.10/32")  # by value, not as text
    assert shown[len(v4)] == "::/0"


# 9. A KILL_* program that is not there.


def test_a_kill_route_program_that_is_not_there_is_a_warning(tmp_path: Path) -> None:
    not_executable = write(tmp_path, "", "blackhole")
    not_executable.chmod(stat.S_IRUSR | stat.S_IWUSR)
    for program, why in (
        (tmp_path / "none", "does not exist"),
        (not_executable, "is not executable"),
    ):
        path = write(tmp_path, f'BLOCK_UDP="1"\nKILL_ROUTE="{program} add $TARGET$"\n')
        (warning,) = load_settings(path).warnings
        assert warning.startswith(
            f"{path}:2: KILL_ROUTE: {program} {why}; install it, or leave KILL_ROUTE unset to "
            "block with the built-in nftables blocker"
        )
        assert "ip route add blackhole $TARGET$" in warning


def test_kill_programs_are_checked_only_when_used(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'BLOCK_TCP="2"\nKILL_ROUTE="/nonexistent/route $TARGET$"\n'
        'KILL_RUN_CMD="no-such-program-f1 $TARGET$"\n',
    )
    (warning,) = load_settings(path).warnings  # no route in mode 2, but the command
    assert warning == (
        f"{path}:3: KILL_RUN_CMD: no-such-program-f1 is not found in PATH; every "
        "block will fail to run it"
    )
    path.write_text('KILL_ROUTE="/nonexistent/route $TARGET$"\nKILL_RUN_CMD="nope $TARGET$"\n')
    assert load_settings(path).warnings == ()  # alert only: nothing runs
    path.write_text('BLOCK_TCP="1"\nKILL_ROUTE="true add $TARGET$"\nKILL_RUN_CMD="/bin/true"\n')
    assert load_settings(path).warnings == ()


# 10. Blocking that does nothing, and a KILL_ROUTE that cannot be undone (review of issue 4).


@pytest.mark.parametrize(
    ("lines", "warning"),
    [
        ('BLOCK_TCP="2"\n', "BLOCK_TCP=2 but no KILL_RUN_CMD"),
        (
            'BLOCK_UDP="1"\nBLOCK_NFTABLES="0"\n',
            'BLOCK_UDP=1 but BLOCK_NFTABLES="0" and no KILL_ROUTE, KILL_HOSTS_DENY or KILL_RUN_CMD',
        ),
    ],
)
def test_blocking_that_does_nothing_is_a_warning(tmp_path: Path, lines: str, warning: str) -> None:
    """PortSentry took it silently (and wrote the source into its blocked file)."""
    path = write(tmp_path, lines)
    (found,) = load_settings(path).warnings
    assert found == f"{path}:1: {warning}: nothing will be done; its scans are only alerted"


@pytest.mark.parametrize("block", ["0", "1", "2"])
@pytest.mark.parametrize("nftables", ["auto", "1", "0"])
@pytest.mark.parametrize(
    "kill",
    [
        "",
        'KILL_ROUTE="true add $TARGET$"\n',
        'KILL_HOSTS_DENY="ALL: $TARGET$"\n',
        'KILL_RUN_CMD="true"\n',
    ],
)
def test_the_warning_is_given_exactly_when_a_block_would_do_nothing(
    tmp_path: Path, block: str, nftables: str, kill: str
) -> None:
    path = write(tmp_path, f'BLOCK_TCP="{block}"\nBLOCK_NFTABLES="{nftables}"\n{kill}')
    settings = load_settings(path)
    actions = Actions(settings, Store(tmp_path / "store.db"))
    idle = block != "0" and not actions.blocks.steps(settings.block_tcp)
    assert idle == (nothing_to_do(settings, settings.block_tcp) is not None)
    assert idle == any("nothing will be done" in w for w in settings.warnings)


def test_a_kill_route_with_no_known_undo_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, 'BLOCK_TCP="1"\nKILL_ROUTE="/bin/true $TARGET$"\n')
    (found,) = load_settings(path).warnings
    assert found.startswith(f"{path}:2: KILL_ROUTE: no known way to undo it")
    assert "unblock and expiry leave it in force, and reapply does not run it again" in found
    path.write_text(
        'BLOCK_TCP="1"\nKILL_ROUTE="nft add rule inet f input ip saddr $TARGET$ drop"\n'
    )
    (found,) = load_settings(path).warnings
    assert "no known way to undo it" in found
    for known in (
        "/sbin/ip route add blackhole $TARGET$",
        "ip6tables -I INPUT -s $TARGET$ -j DROP",
        "/usr/sbin/nft add element inet f blocked { $TARGET$ }",
    ):
        path.write_text(f'BLOCK_TCP="1"\nKILL_ROUTE="{known}"\n')
        assert load_settings(path).warnings == ()


@pytest.mark.parametrize(
    "route",
    [
        "/sbin/route add -host $TARGET$ reject",
        "/usr/sbin/iptables -I INPUT -s $TARGET$ -j DROP",
        "iptables-nft -A INPUT -s $TARGET$ -j DROP",
        "iptables -6 -I INPUT -s $TARGET$ -j DROP",
    ],
)
def test_a_kill_route_for_ipv4_only_is_a_warning_unless_nftables_blocks_too(
    tmp_path: Path, route: str
) -> None:
    """Debian's file blocks with net-tools' route, which says `Unknown host` to an IPv6
    address: migrating administrators are told before the first IPv6 scan."""
    path = write(tmp_path, f'BLOCK_UDP="1"\nKILL_ROUTE="{route}"\n')
    (found,) = load_settings(path).warnings
    assert found.startswith(f"{path}:2: KILL_ROUTE: {route.split()[0]} cannot block an IPv6 source")
    assert 'set BLOCK_NFTABLES="1"' in found
    for quiet in ('BLOCK_UDP="1"\nBLOCK_NFTABLES="1"\n', 'BLOCK_UDP="0"\n'):
        path.write_text(f'KILL_ROUTE="{route}"\n{quiet}')
        assert load_settings(path).warnings == (), quiet
    path.write_text('BLOCK_UDP="1"\nKILL_ROUTE="/sbin/route -A inet6 add $TARGET$ reject"\n')
    assert load_settings(path).warnings == ()


def test_only_run_and_check_config_say_the_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """`blocked`, `unblock`, `reapply` and `status` are run often, by hand and by scripts: the
    configuration's warnings are for `run` (its log) and `check-config`."""
    (tmp_path / "state").mkdir()
    path = write(tmp_path, f'STATE_DIR="{tmp_path}/state"\nNO_SUCH_KEY="1"\nBLOCK_TCP="2"\n')
    for command in (["blocked"], ["status"], ["unblock", "198.18.0.11"], ["reapply"]):
        main([*command, "-c", str(path)])
        assert "warning" not in capsys.readouterr().err.lower(), command
        assert not caplog.records, command
    assert main(["check-config", str(path)]) == 0
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 2 and "unknown key NO_SUCH_KEY ignored" in said[0]
    assert "BLOCK_TCP=2 but no KILL_RUN_CMD" in said[1]
