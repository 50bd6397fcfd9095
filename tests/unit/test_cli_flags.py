"""Flags are compared exactly, as PortSentry compared them: a typo is an error, not a mode."""

import pytest

from portwarden.cli import _parser, main


@pytest.mark.parametrize("argv", [["run", "-tc"], ["run", "-u"], ["run", "-st"], ["run", "-sud"],
                                  ["run", "--dae"], ["status", "--js"], ["run", "--conf"],
                                  ["portmap", "check", "--fro"]])  # fmt: skip
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
