"""The local control socket: `portwarden status`, `unblock` and `reapply` ask the running daemon
here.

A Unix stream socket in STATE_DIR, mode 0600 in a 0700 directory, so only root (the daemon's
user) can talk to it. One request per connection: a JSON object on one line, e.g.
{"command": "status"}, {"command": "unblock", "network": "198.18.0.0/24"} (or "all": true),
{"command": "reapply"}; one JSON object back. The daemon serves it from its loop, so reading
a request is bounded in size and time: a client that sends nothing for a moment is dropped. An
answer that takes work off the loop (an unblock, done by the action worker once the job it is
doing is done) is a Future: the connection waits, at most CONTROL_ACTION_WAIT_S (limits.py), and
the answer is sent from the loop once it is there.
"""

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NamedTuple

from portwarden import limits
from portwarden.net.deadline import time_left
from portwarden.statedir import socket_path, socket_path_problem

log = logging.getLogger("portwarden")

Answer = dict[str, Any]
Handler = Callable[[Answer], "Answer | Future[Answer]"]


class _Waiting(NamedTuple):
    conn: socket.socket
    answer: "Future[Answer]"
    deadline: float


class ControlServer:
    """Listens in STATE_DIR. The loop watches `fds` and calls `on_readable(fd)`: a new client on
    the listening socket, or an answer that has become ready (a byte on the wake pipe)."""

    def __init__(self, state_dir: Path, handler: Handler) -> None:
        self._path = socket_path(state_dir)
        self._handler = handler
        self._path.unlink(missing_ok=True)  # a leftover of a killed daemon (we hold the lock)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            old_mask = os.umask(0o177)
            try:
                self.sock.bind(str(self._path))
            finally:
                os.umask(old_mask)
            self.sock.listen(8)
            self.sock.setblocking(False)
            self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except BaseException:
            self.stop_listening()  # the socket closed, and its name gone if it was bound
            raise
        self._waiting: list[_Waiting] = []

    @property
    def fds(self) -> tuple[int, int]:
        return self.sock.fileno(), self._wake_read

    def on_readable(self, fd: int) -> None:
        if fd == self._wake_read:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 512)
        else:
            self._serve_one()
        self.send_ready()

    def send_ready(self) -> None:
        """Send the answers that are ready; drop the clients that waited too long."""
        now = time.monotonic()
        still = []
        for waiting in self._waiting:
            if waiting.answer.done():
                self._reply(
                    waiting.conn, _result(waiting.answer), now + limits.CONTROL_CLIENT_WAIT_S
                )
            elif now >= waiting.deadline:
                late = {"error": "no answer in time; the daemon goes on with the request"}
                self._reply(waiting.conn, late, now + limits.CONTROL_CLIENT_WAIT_S)
            else:
                still.append(waiting)
        self._waiting = still

    def _serve_one(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        deadline = time.monotonic() + limits.CONTROL_CLIENT_WAIT_S
        try:
            answer = self._answer(_read_line(conn, deadline))
        except OSError:
            conn.close()  # the client went away or was too slow: its loss, not the loop's
            return
        if isinstance(answer, dict):
            self._reply(conn, answer, deadline)
        elif len(self._waiting) >= limits.CONTROL_WAITING_MAX:
            self._reply(conn, {"error": "too many requests waiting; try again"}, deadline)
        else:
            self._waiting.append(
                _Waiting(conn, answer, time.monotonic() + limits.CONTROL_ACTION_WAIT_S)
            )
            answer.add_done_callback(self._wake)

    def _wake(self, _answer: "Future[Answer]") -> None:
        """Called in the thread that set the answer: the loop sends it at once."""
        with contextlib.suppress(OSError):  # a full pipe is already a wake-up
            os.write(self._wake_write, b"!")

    @staticmethod
    def _reply(conn: socket.socket, answer: Answer, deadline: float) -> None:
        with conn:
            try:
                conn.settimeout(time_left(deadline))
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                pass  # the client went away or was too slow: its loss, not the loop's

    def _answer(self, line: bytes) -> "Answer | Future[Answer]":
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise TypeError(request)
        except (ValueError, TypeError, RecursionError):
            return {"error": 'bad request: expected {"command": "..."}'}
        try:
            return self._handler(request)
        except Exception as error:  # a failing answer must never stop the daemon
            log.exception("control request failed")
            return {"error": f"internal error: {error}"}

    def stop_listening(self) -> None:
        """No new clients (at stop); the waiting ones get their answers from `close`."""
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def close(self) -> None:
        for waiting in self._waiting:
            self._reply(
                waiting.conn,
                {"error": "the daemon stopped before it was done"},
                time.monotonic() + limits.CONTROL_CLIENT_WAIT_S,
            )
        self._waiting = []
        os.close(self._wake_read)
        os.close(self._wake_write)


def _result(answer: "Future[Answer]") -> Answer:
    try:
        return answer.result(0)
    except Exception as error:  # noqa: BLE001 - reported to the client, not raised in the loop
        log.error("control request failed: %s", error)
        return {"error": f"internal error: {error}"}


def _read_line(conn: socket.socket, deadline: float) -> bytes:
    """The request line, read within `deadline` (one byte at a time cannot hold the loop)."""
    data = b""
    while b"\n" not in data and len(data) < limits.CONTROL_REQUEST_BYTES_MAX:
        conn.settimeout(time_left(deadline))
        chunk = conn.recv(limits.CONTROL_REQUEST_BYTES_MAX - len(data))
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


class ControlError(Exception):
    """The daemon could not be asked (not allowed, too slow, garbled answer)."""


class NoAnswer(ControlError):
    """A daemon listens but did not answer in time (stopped, stuck, or busy for that long)."""


class Unanswered(ControlError):
    """The daemon took the request, then closed the connection without an answer: it stopped
    or died while carrying it out, which may have been partly done."""


_UNANSWERED = (
    "{path}: the daemon closed the connection without answering (it stopped or died "
    "while carrying out the request)"
)


def ask(
    state_dir: Path, command: str, wait: float = limits.CONTROL_ANSWER_WAIT_S, **fields: Any
) -> dict[str, Any] | None:
    """The daemon's answer to `command` (with `fields`), waited for at most `wait` seconds, or
    None when no daemon listens on this STATE_DIR. Raises ControlError when one may listen but
    did not answer usefully."""
    path = socket_path(state_dir)
    if socket_path_problem(state_dir):
        return None  # no daemon can listen there
    sent = False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(wait)
            sock.connect(str(path))
            sock.sendall(json.dumps({"command": command, **fields}).encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            sent = True
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except PermissionError:
        raise ControlError(f"{path}: permission denied (the control socket is root's)") from None
    except TimeoutError:
        # Sent, the request waits in the socket for a daemon that is stopped (SIGSTOP) or
        # busy: it reads it when it goes on, and carries it out then.
        later = (
            ": the request was delivered, and the daemon may still carry it out when it goes on"
            if sent
            else " (the request was not delivered)"
        )
        raise NoAnswer(f"{path}: no answer in {wait:g} s{later}") from None
    except ConnectionResetError as error:
        if sent:
            raise Unanswered(_UNANSWERED.format(path=path)) from None
        raise ControlError(f"{path}: {error.strerror or error}") from None
    except OSError as error:
        raise ControlError(f"{path}: {error.strerror or error}") from None
    if not data:
        raise Unanswered(_UNANSWERED.format(path=path))
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError(f"{path}: the daemon's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError(f"{path}: the daemon's answer is not a JSON object")
    return answer
