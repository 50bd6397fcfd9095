"""`status` with a broken configuration: the file's own STATE_DIR, never another instance's.
Only when no file was named (the system's is broken) does it fall back to the default."""

import json
from pathlib import Path

import pytest

from portwarden import cli
from portwarden.cli import main
from portwarden.config import load


@pytest.mark.parametrize("as_json", [False, True])
def test_a_named_file_that_cannot_be_read_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    missing = tmp_path / "nonexistent.conf"
    assert main(["status", "-c", str(missing), *(["--json"] if as_json else [])]) == 2
    out, err = capsys.readouterr()
    line = f"{missing}: cannot read the configuration: No such file or directory"
    assert err == f"portwarden: error: {line}\n"
    assert (json.loads(out) if as_json else out) == ({"error": line} if as_json else "")


def test_a_named_file_with_a_broken_state_dir_line_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text('TCP_PORTS="1"\nSTATE_DIR="/var/lib/other\n')
    assert main(["status", "-c", str(conf), "--json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["error"] == f'{conf}:2: STATE_DIR="/var/lib/other: missing closing quote'
    assert err.count("\n") == 1


def test_a_named_file_broken_elsewhere_uses_its_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text(f'SCAN_TRIGGER="lots"\nSTATE_DIR="{tmp_path}/state"\nnot a line\n')
    assert main(["status", "-c", str(conf), "--json"]) == 3  # no daemon ever ran there
    out, err = capsys.readouterr()
    assert "status read from STATE_DIR" in err.splitlines()[0]
    assert json.loads(out)["error"].startswith(f"no state in STATE_DIR {tmp_path}/state: ")


def test_a_broken_system_file_falls_back_to_the_default_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "portwarden.conf"
    system.write_text('STATE_DIR="/var/lib/other\n')
    monkeypatch.setattr(cli, "SYSTEM_CONFIG", system)
    monkeypatch.setattr(load, "default_state_dir", lambda: tmp_path / "default")
    assert main(["status", "--json"]) == 3
    out, err = capsys.readouterr()
    assert err.startswith(f"portwarden: warning: {system}:1: ")
    assert f"(status read from STATE_DIR {tmp_path}/default)" in err
