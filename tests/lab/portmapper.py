"""A real rpcbind in a lab host, with its own /run and its own view of /etc; and a stand-in.

rpcbind runs in a private mount namespace where /run is a fresh tmpfs and /etc is an overlay:
the host's /etc below, a test folder on top. Files the test (or portwarden, run in the same
namespaces with `portwarden()`) writes to /etc land in that folder, so the host's own
/etc/hosts.allow and /etc/hosts.deny are never touched, and atomic renames work as on a real
host (a file bind-mounted over /etc/hosts.allow could not be renamed over).
"""

import pwd
import subprocess
import sys
import time
from pathlib import Path

from portwarden.lab.network import Host
from tests.lab.isolated import NEW_MOUNTS

# A program registered with the portmapper, so a dump lists more than rpcbind itself.
PROGRAM, VERSION, PORT = 395811, 1, 4711
# The target's own hosts.allow and hosts.deny, before any protect: the administrator's lines.
HOSTS_ALLOW = b"# lab hosts.allow\nsshd: 198.18.0.0/255.255.255.0\n"
HOSTS_DENY = b"# lab hosts.deny\nin.fingerd: ALL\n"

_REGISTER = """
import socket, struct, sys
prog, vers, port = map(int, sys.argv[1:])
call = struct.pack(">IIIIII", 0x5057, 0, 2, 100000, 2, 1) + bytes(16)
call += struct.pack(">IIII", prog, vers, 6, port)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("127.0.0.1", 888))  # a reserved port: rpcbind takes SET only from privileged callers
    s.settimeout(5)
    s.sendto(call, ("127.0.0.1", 111))
    reply = s.recv(100)
sys.exit(0 if reply[-4:] == struct.pack(">I", 1) else 1)
"""


_APPEND = "import sys\nwith open(sys.argv[1], 'a') as f:\n    f.write(sys.stdin.read())\n"


class Portmapper:
    """rpcbind (`proc`) in a private mount namespace of `host`, held by a process of its own,
    so that the namespace (its /etc) is there before rpcbind starts (`start=False`: not yet)."""

    proc: subprocess.Popen

    def __init__(
        self, host: Host, folder: Path, hosts_allow: bytes, hosts_deny: bytes, start: bool = True
    ) -> None:
        self.host = host
        upper, work = folder / "etc", folder / "work"
        upper.mkdir()
        work.mkdir()
        (upper / "hosts.allow").write_bytes(hosts_allow)
        (upper / "hosts.deny").write_bytes(hosts_deny)
        script = (
            "mount -t tmpfs tmpfs /run && "
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc && "
            "echo ready && exec cat"  # lives until its stdin closes
        )
        self._namespace = host.popen(
            [*NEW_MOUNTS, "sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._namespace.stdout is not None
        if self._namespace.stdout.readline() != "ready\n":
            raise RuntimeError("the mount namespace for rpcbind could not be made")
        if start:
            self.start()

    def start(self) -> None:
        """rpcbind -f -w, as Debian starts it (it switches to _rpc), with a program registered."""
        self.proc = subprocess.Popen(self._inside(["rpcbind", "-f", "-w"]))
        self._wait_ready()
        subprocess.run(
            self._inside([sys.executable, "-c", _REGISTER, str(PROGRAM), str(VERSION), str(PORT)]),
            check=True,
            timeout=20,
        )

    def _inside(self, args: list[str]) -> list[str]:
        """A command in rpcbind's network and mount namespaces (its /etc, its /run)."""
        return ["nsenter", "-t", str(self._namespace.pid), "-m", "-n", "--", *args]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            probe = self.host.run(["rpcinfo", "-p", "127.0.0.1"], check=False, timeout=10)
            if probe.returncode == 0:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rpcbind did not start: {probe.stderr.strip()}")
            time.sleep(0.05)

    def portwarden(self, *args: str) -> subprocess.CompletedProcess:
        """`portwarden ARGS` on the target, seeing the same /etc as rpcbind."""
        command = self._inside([sys.executable, "-m", "portwarden", *args])
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    def read(self, name: str) -> bytes | None:
        """/etc/NAME as rpcbind sees it; None if it does not exist."""
        result = subprocess.run(
            self._inside(["cat", f"/etc/{name}"]), capture_output=True, timeout=20, check=False
        )
        return result.stdout if result.returncode == 0 else None

    def append(self, name: str, text: str) -> None:
        """Append `text` to /etc/NAME as rpcbind sees it (as fail2ban adds a ban)."""
        subprocess.run(
            self._inside([sys.executable, "-c", _APPEND, f"/etc/{name}"]),
            input=text,
            text=True,
            check=True,
            timeout=20,
        )

    def status_user(self) -> str:
        """rpcbind's effective user as `name (uid N)`, from /proc/<pid>/status."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        uid = int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[2])
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"

    def libwrap_note(self) -> str:
        return f"rpcbind uses TCP Wrappers: libwrap.so is mapped by pid {self.proc.pid} (rpcbind)"

    def stop(self) -> None:
        if hasattr(self, "proc"):
            self.proc.kill()
            self.proc.wait(timeout=10)
        assert self._namespace.stdin is not None
        self._namespace.stdin.close()
        self._namespace.wait(timeout=10)


# Not rpcbind: a plain listener on TCP and UDP port 111, linked with nothing like libwrap, as
# rpcbind built without TCP Wrappers would be. It answers nothing and lives until stdin closes.
_STAND_IN = """
import socket, sys
tcp = socket.create_server(("", 111))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("", 111))
print("ready", flush=True)
sys.stdin.read()
"""


class StandIn:
    """A process on port 111 of `host` that does not use TCP Wrappers."""

    def __init__(self, host: Host) -> None:
        self.proc = host.popen(
            [sys.executable, "-c", _STAND_IN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != "ready\n":
            raise RuntimeError("the stand-in could not listen on port 111")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
