"""A real SMTP server (aiosmtpd) for a lab host: each message is saved as a .eml file.

usage: smtp.py ADDRESS PORT FOLDER [--tls CERT KEY] [--auth USER PASSWORD] [--refuse ADDRESS]
               [--defer-data N]
           a working relay; with --tls it requires STARTTLS, with --auth a login (after
           STARTTLS), and writes the login name of each message beside it (NNNN.login);
           --refuse: that recipient is refused (550); --defer-data: the first N messages
           are refused for now (451) at the end of DATA
       smtp.py --hang ADDRESS PORT          accepts connections and never says a word
       smtp.py --trickle ADDRESS PORT       greets one byte a second, without end
"""

import argparse
import asyncio
import contextlib
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class SaveHandler:
    def __init__(
        self,
        folder: Path,
        refuse: frozenset[str] = frozenset(),
        defer: frozenset[str] = frozenset(),
        defer_data: int = 0,
    ) -> None:
        self.folder = folder
        self.refuse = refuse  # recipients refused at RCPT TO
        self.defer = set(defer)  # recipients refused for now (450) at their first RCPT TO
        self.defer_data = defer_data  # DATA commands refused for now (451) before one is taken
        self.count = 0

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,  # noqa: N802
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        if address in self.defer:
            self.defer.discard(address)
            return f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self,
        server: SMTP,
        session: Session,  # noqa: N802 - aiosmtpd's name
        envelope: Envelope,
    ) -> str:
        if self.defer_data:
            self.defer_data -= 1
            return "451 4.3.0 Try again later"
        # aiosmtpd takes DATA only after HELO or EHLO, and hands us the message it read
        assert envelope.original_content is not None and session.host_name is not None
        self.count += 1
        path = self.folder / f"{self.count:04d}.eml"
        if session.auth_data is not None:
            (self.folder / f"{self.count:04d}.login").write_text(session.auth_data)
        path.with_suffix(".tmp").write_bytes(envelope.original_content)
        path.with_suffix(".tmp").rename(path)
        (self.folder / f"{self.count:04d}.rcpt").write_text("\n".join(envelope.rcpt_tos))
        (self.folder / f"{self.count:04d}.helo").write_text(session.host_name)
        return "250 OK"


def relay(
    address: str,
    port: int,
    folder: Path,
    tls: tuple[Path, Path] | None = None,
    login: tuple[str, str] | None = None,
    refuse: frozenset[str] = frozenset(),
    defer: frozenset[str] = frozenset(),
    defer_data: int = 0,
) -> Controller:
    """A started relay; with `tls` (certificate, key) STARTTLS is required, with `login`
    (user, password) so is AUTH, and only that exact pair is accepted; the `refuse` recipients
    are refused (550), the `defer` ones refused for now (450) the first time; the first
    `defer_data` messages are refused for now (451) at the end of DATA."""
    options: dict[str, Any] = {}
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        options.update(tls_context=context, require_starttls=True)
    if login is not None:

        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                login[0].encode(),
                login[1].encode(),
            )
            return AuthResult(success=ok, auth_data=login[0] if ok else None)

        options.update(authenticator=authenticate, auth_required=True)
    # server_hostname: no getfqdn() (a reverse lookup) at each connection
    controller = Controller(
        SaveHandler(folder, refuse, defer, defer_data),
        hostname=address,
        port=port,
        server_hostname="relay.test",
        **options,
    )
    controller.start()
    return controller


class SilentRelay:
    """Accepts connections and never finishes a line: says nothing at all, or (trickle) one
    byte every `every_s`, each of which resets a per-read timeout."""

    def __init__(
        self, address: str, port: int, trickle: bool = False, every_s: float = 1.0
    ) -> None:
        self.listener = socket.create_server((address, port))
        self.port = self.listener.getsockname()[1]
        self.trickle, self.every_s = trickle, every_s
        self.held: list[socket.socket] = []

    def serve_forever(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.held.append(connection)
            self._serve(connection)

    def _serve(self, connection: socket.socket) -> None:
        if self.trickle:
            threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def start(self) -> "SilentRelay":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # ends the accept() in serve_forever
        self.listener.close()
        for connection in self.held:
            connection.close()

    def _trickle(self, connection: socket.socket) -> None:
        try:
            while True:
                connection.send(b"2")
                time.sleep(self.every_s)
        except OSError:
            return


class GreetingRelay(SilentRelay):
    """Greets with the reply `greeting` (`554 5.7.1 no SMTP service here`, `421 4.3.2 ...`),
    then closes the connection (`answer` None) or answers `answer` to every command but QUIT
    (221, then it closes). `commands`: what the client sent, in order."""

    def __init__(self, address: str, port: int, greeting: str, answer: str | None = None) -> None:
        super().__init__(address, port)
        self.greeting, self.answer = greeting, answer
        self.commands: list[str] = []

    def _serve(self, connection: socket.socket) -> None:
        threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection, connection.makefile("rb") as lines:
            connection.sendall(f"{self.greeting}\r\n".encode())
            if self.answer is None:
                return
            for line in lines:
                command = line.decode("ascii", "replace").rstrip("\r\n")
                self.commands.append(command)
                if command.upper() == "QUIT":
                    connection.sendall(b"221 2.0.0 Bye\r\n")
                    return
                connection.sendall(f"{self.answer}\r\n".encode())


class StartTlsCutRelay(SilentRelay):
    """Offers STARTTLS and answers it `220`, then `cut`s: "close" at once, "handshake" in the
    middle of the TLS handshake, "plain" by answering in clear text as if
    there were no TLS. Every connection so (a relay restarting, a broken TLS proxy in front)."""

    def __init__(self, address: str, port: int, cut: str) -> None:
        super().__init__(address, port)
        self.cut = cut

    def _serve(self, connection: socket.socket) -> None:
        threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection:
            lines = connection.makefile("rb", buffering=0)  # nothing read ahead of the TLS
            connection.sendall(b"220 relay ESMTP\r\n")
            while line := lines.readline():
                command = line.decode("ascii", "replace").strip().upper()
                if command.startswith("EHLO"):
                    connection.sendall(b"250-relay\r\n250 STARTTLS\r\n")
                elif command == "STARTTLS":
                    connection.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                    if self.cut == "handshake":  # the ClientHello, then half a ServerHello
                        connection.recv(4096)
                        connection.sendall(b"\x16\x03\x03\x00\x40\x02\x00")
                    elif self.cut == "plain":
                        connection.recv(4096)
                        connection.sendall(b"421 4.3.0 relay busy\r\n")
                    else:  # an end of stream, never a reset: the ClientHello is read, not dropped
                        connection.shutdown(socket.SHUT_WR)
                        connection.settimeout(5)
                        while connection.recv(4096):
                            pass
                    return
                else:
                    connection.sendall(b"502 5.5.2 unexpected\r\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--trickle", action="store_true")
    parser.add_argument("--tls", nargs=2, type=Path, metavar=("CERT", "KEY"))
    parser.add_argument("--auth", nargs=2, metavar=("USER", "PASSWORD"))
    parser.add_argument("--refuse", action="append", default=[])
    parser.add_argument("--defer-data", type=int, default=0)
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("folder", type=Path, nargs="?")
    args = parser.parse_args()
    if args.hang or args.trickle:
        silent = SilentRelay(args.address, args.port, args.trickle)
        print("listening", flush=True)
        silent.serve_forever()
    relay(
        args.address,
        args.port,
        args.folder,
        args.tls,
        args.auth,
        frozenset(args.refuse),
        defer_data=args.defer_data,
    )
    print("listening", flush=True)
    asyncio.run(asyncio.sleep(3600))


if __name__ == "__main__":
    main()
