"""A real syslog receiver for the tests: a datagram socket bound where the daemon sends."""

import re
import socket
import threading
import time
from pathlib import Path


class SyslogReceiver:
    """A datagram socket bound where the daemon sends its syslog lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(8192)
            except OSError:
                return
            if not data:  # shut down (close)
                return
            self.lines.append(data.decode())

    def close(self) -> None:
        """Stop as a syslog daemon does: the socket is gone once this returns (a socket closed
        while a thread waits in recv() lives on until that returns), its path left behind."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(5)
        self.sock.close()

    def wait_for(self, pattern: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no syslog line matched {pattern!r}: {self.lines}")


def serve_slowly(path: str, out: str, delay_s: float) -> None:
    """A slow syslog daemon, run as a process in a lab namespace (whose net.unix.max_dgram_qlen
    sizes the socket's queue): one datagram every `delay_s`, each written to `out` as a line."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    print("listening", flush=True)
    with open(out, "a", buffering=1) as lines:
        while True:
            lines.write(sock.recv(8192).decode() + "\n")
            time.sleep(delay_s)


if __name__ == "__main__":
    import sys

    serve_slowly(sys.argv[1], sys.argv[2], float(sys.argv[3]))
