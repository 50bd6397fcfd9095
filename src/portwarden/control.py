"""The local control socket: `portwarden status` asks the running daemon here.

A Unix stream socket in STATE_DIR, mode 0600 in a 0700 directory, so only root (the daemon's
user) can talk to it. One request per connection: a JSON object on one line, e.g.
{"command": "status"}; one JSON object back. The daemon serves it from its loop, so a request
is bounded in size and time: a client that sends nothing for a moment is dropped.
"""

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("portwarden")

SOCKET_NAME = "control.sock"
REQUEST_MAX_BYTES = 4096  # a request is one small JSON object
CLIENT_WAIT_S = 0.5  # the longest the loop spends on one client, whatever it sends
ANSWER_WAIT_S = 10.0  # the longest `status` waits for the daemon's answer

Handler = Callable[[str], dict[str, Any]]


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


class ControlServer:
    """Listens in STATE_DIR; `serve_one()` when the loop sees the listening socket readable."""

    def __init__(self, state_dir: Path, handler: Handler) -> None:
        self._path = socket_path(state_dir)
        self._handler = handler
        self._path.unlink(missing_ok=True)  # a leftover of a killed daemon (we hold the lock)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old_mask = os.umask(0o177)
        try:
            self.sock.bind(str(self._path))
        finally:
            os.umask(old_mask)
        self.sock.listen(8)
        self.sock.setblocking(False)

    def serve_one(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        deadline = time.monotonic() + CLIENT_WAIT_S
        with conn:
            try:
                line = _read_line(conn, deadline)
                try:
                    reply = json.dumps(self._answer(line)).encode() + b"\n"
                except Exception as error:  # a failing answer must never stop the daemon
                    log.exception("control request failed")
                    reply = json.dumps({"error": f"internal error: {error}"}).encode() + b"\n"
                _set_timeout(conn, deadline)
                conn.sendall(reply)
            except OSError:
                pass  # the client went away or was too slow: its loss, not the loop's

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            command = request["command"]
            if not isinstance(command, str):
                raise TypeError(command)
        except (ValueError, KeyError, TypeError, RecursionError):
            return {"error": 'bad request: expected {"command": "..."}'}
        return self._handler(command)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


def _set_timeout(conn: socket.socket, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("control client too slow")
    conn.settimeout(left)


def _read_line(conn: socket.socket, deadline: float) -> bytes:
    """The request line, read within `deadline` (one byte at a time cannot hold the loop)."""
    data = b""
    while b"\n" not in data and len(data) < REQUEST_MAX_BYTES:
        _set_timeout(conn, deadline)
        chunk = conn.recv(REQUEST_MAX_BYTES - len(data))
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


class ControlError(Exception):
    """The daemon could not be asked (not allowed, too slow, garbled answer)."""


def ask(state_dir: Path, command: str) -> dict[str, Any] | None:
    """The daemon's answer, or None when no daemon listens on this STATE_DIR.
    Raises ControlError when one may listen but did not answer usefully."""
    path = socket_path(state_dir)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(ANSWER_WAIT_S)
            sock.connect(str(path))
            sock.sendall(json.dumps({"command": command}).encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except PermissionError:
        raise ControlError(f"{path}: permission denied (the control socket is root's)") from None
    except OSError as error:
        raise ControlError(f"{path}: {error.strerror or 'no answer in time'}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError(f"{path}: the daemon's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError(f"{path}: the daemon's answer is not a JSON object")
    return answer
