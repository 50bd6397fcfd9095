"""Flags are compared exactly, as PortSentry compared them: a typo is an error, not a mode."""

import subprocess
import sys
from pathlib import Path

import pytest

from portwarden.cli import _parser, main


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-tc"],
        ["run", "-u"],
        ["run", "-st"],
        ["run", "-sud"],
        ["run", "--dae"],
        ["status", "--js"],
        ["run", "--conf"],
        ["portmap", "check", "--fro"],
    ],
)
def test_an_abbreviated_flag_is_a_one_line_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("portwarden") and "unrecognized arguments: " + argv[-1] in err


@pytest.mark.parametrize(("flag", "tcp", "udp"), [("-tcp", "tcp", None), ("-sudp", None, "sudp")])
def test_the_exact_flags_still_work(flag: str, tcp: str | None, udp: str | None) -> None:
    args = _parser().parse_args(["run", flag, "-cFILE"])
    assert (getattr(args.tcp, "value", None), getattr(args.udp, "value", None)) == (tcp, udp)
    assert str(args.config) == "FILE"


@pytest.mark.parametrize("flag", ["--pid-file", "--log-file"])
def test_daemon_files_without_daemon_are_a_one_line_usage_error(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """They were silently ignored: the administrator looked for a pid file that never came."""
    with pytest.raises(SystemExit) as stopped:
        main(["run", flag, "/run/pw.pid", "-c", "/nonexistent.conf"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--pid-file and --log-file go with --daemon" in err, err


def test_check_config_quiet_prints_only_errors_and_warnings(tmp_path: Path) -> None:
    """For ExecStartPre and ExecReload: the effective settings (about 85 lines) would fill the
    journal at every start and reload."""

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "portwarden", "check-config", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    conf = tmp_path / "p.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\nNO_SUCH_KEY="1"\n')
    quiet = check("--quiet", str(conf))
    assert (quiet.returncode, quiet.stdout) == (0, "")
    assert quiet.stderr.count("\n") == 1 and "p.conf:2: unknown key NO_SUCH_KEY ignored" in (
        quiet.stderr
    )
    assert len(check(str(conf)).stdout.splitlines()) > 50
    conf.write_text('SCAN_TRIGGER="many"\n')
    broken = check("-q", str(conf))
    assert (broken.returncode, broken.stdout, broken.stderr) == (
        2,
        "",
        (f'portwarden: error: {conf}:1: SCAN_TRIGGER="many": must be a whole number >= 0\n'),
    )
