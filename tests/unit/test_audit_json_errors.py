"""`portwarden audit --json` when it cannot report: the error on stdout too, as JSON."""

import json
from pathlib import Path

import pytest

from portwarden.cli import main


def test_audit_json_says_the_error_on_stdout_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As status, blocked and portmap check do: a script reading stdout gets {"error": ...}."""
    conf = tmp_path / "portwarden.conf"
    for text, said in [
        (f'STATE_DIR="{tmp_path}"\nAUDIT_MIN_PORT="x"\n', "AUDIT_MIN_PORT"),
        (
            f'STATE_DIR="{tmp_path}"\nAUDIT_DEVICES="h5nosuchdev"\n',
            "audit: nothing was checked: no address to check",
        ),
    ]:
        conf.write_text(text)
        assert main(["audit", "--json", "--no-state", "-c", str(conf)]) == 2
        out, err = capsys.readouterr()
        assert said in json.loads(out)["error"] and err.startswith("portwarden: error: ")
        assert json.loads(out)["error"] in err
