"""Commands that echo an argument, or cannot reach the daemon, say so on one clear line."""

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from portwarden import control, limits, statedir
from portwarden.cli import main
from portwarden.store.db import Store, store_path

HOSTILE = "198.18.0.11\nfoo\x1b[31m"


def configured(tmp_path: Path) -> Path:
    """A configuration whose STATE_DIR has a store (a daemon ran with it), blocking off."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    Store(store_path(state)).close()
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{state}"\nSYSLOG_SOCKET=""\nBLOCK_NFTABLES="0"\n')
    return conf


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["unblock", HOSTILE], "198.18.0.11\\nfoo\\x1b[31m"),
        (["unblock", f"[{HOSTILE}]"], "198.18.0.11\\nfoo\\x1b[31m"),
        (["check-config", "/nonexistent/x\ny\x1b"], "/nonexistent/x\\ny\\x1b"),
        (["replay", "/nonexistent/cap\ny"], "cap\\ny"),
    ],
)
def test_an_argument_echoed_in_an_error_stays_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], shown: str
) -> None:
    conf = [] if argv[0] == "check-config" else ["-c", str(configured(tmp_path))]
    status = main([*argv, *conf])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "\x1b" not in err, err
    assert shown in err


def test_a_capture_that_is_not_there_is_named_as_other_missing_files_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "scan.pcap"
    assert main(["replay", str(missing), "-c", str(configured(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err == f"portwarden: error: {missing}: cannot read: No such file or directory\n"


def test_no_active_block_matches_echoes_the_network_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["unblock", "198.18.0.0/24", "-c", str(configured(tmp_path))]) == 1
    assert capsys.readouterr().err == "portwarden: error: no active block matches 198.18.0.0/24\n"


def test_a_daemon_without_its_control_socket_is_named_not_another_instance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon holds STATE_DIR (its lock) but control.sock was removed: not "give each
    instance its own STATE_DIR" with the bad-arguments status, but what is wrong and what to
    do; nothing changed."""
    monkeypatch.setattr(limits, "DAEMON_START_WAIT_S", 0.2)
    conf = configured(tmp_path)
    with statedir.claim(tmp_path / "state"):  # as the running daemon does
        status = main(["unblock", "198.18.0.11", "-c", str(conf)])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1
    assert (
        f"holds STATE_DIR {tmp_path}/state, but its control socket "
        f"{tmp_path}/state/control.sock is missing: restart the daemon (nothing was "
        "changed)"
    ) in err
    assert "give each instance" not in err


def test_a_request_to_a_stopped_daemon_is_said_delivered(tmp_path: Path) -> None:
    """A daemon stopped with SIGSTOP: the kernel takes the connection and the request into the
    socket, nobody answers; when it goes on, it reads and carries out the request."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stopped:
        stopped.bind(str(statedir.socket_path(tmp_path)))
        stopped.listen(1)  # never accepts
        with pytest.raises(control.NoAnswer) as raised:
            control.ask(tmp_path, "unblock", 0.2, network="198.18.0.11/32")
    assert str(raised.value).endswith(
        "no answer in 0.2 s: the request was delivered, and the daemon may still carry it out "
        "when it goes on"
    )


def read_and_close(listening: socket.socket) -> None:
    """A daemon killed while it carries out the request: it read it, and answers nothing."""
    connection, _ = listening.accept()
    with connection:
        while connection.recv(65536):
            pass


def test_a_daemon_that_dies_with_an_unblock_is_said_so_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon took the request and closed the connection without a word (killed while it
    unblocked): not "the answer is not JSON", but what happened and how to finish."""
    conf = configured(tmp_path)
    path = statedir.socket_path(tmp_path / "state")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dying:
        dying.bind(str(path))
        dying.listen(1)
        server = threading.Thread(target=read_and_close, args=(dying,))
        server.start()
        status = main(["unblock", "--all", "-c", str(conf)])
        server.join()
    err = capsys.readouterr().err
    assert status == 1
    assert err == (
        f"portwarden: error: unblock: {path}: the daemon closed the connection "
        "without answering (it stopped or died while carrying out the request); the "
        "unblock may be partly done: running the same unblock again (or the next "
        "start of the daemon) finishes it\n"
    )


def test_the_effective_settings_header_escapes_the_files_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "we\nird\x1b[31m.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}/state"\n')
    assert main(["check-config", str(conf)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == f"# effective settings from {tmp_path}/we\\nird\\x1b[31m.conf"


def test_a_reader_that_has_enough_is_no_error(tmp_path: Path) -> None:
    """`check-config | head -1` (or `| grep -q`): the closed pipe ends the command quietly,
    exit status 0, no traceback."""
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run(
        [sys.executable, "-m", "portwarden", "check-config"],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    os.close(write)
    assert (done.returncode, done.stderr) == (0, "")
