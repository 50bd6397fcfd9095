"""Real services and clients for lab hosts, written as small Python programs run in a namespace."""

import sys
from subprocess import Popen

from portwarden.lab.network import Host

_TCP_SERVER = """
import socket, sys, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1]))); s.listen(512)
print("listening", flush=True)
def serve(c):
    with c:
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

_UDP_SERVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
delay = float(sys.argv[2])
print("listening", flush=True)
while True:
    data, peer = s.recvfrom(65536)
    time.sleep(delay)
    s.sendto(data, peer)
"""

_CLIENT = """
import socket, sys
host, tcp_port, udp_port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
ok = 0
for i in range(rounds):
    with socket.create_connection((host, tcp_port), timeout=5) as c:
        c.sendall(b"hello %d" % i)
        ok += c.recv(100) == b"hello %d" % i
    with socket.socket(family, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(b"ping %d" % i, (host, udp_port))
        ok += u.recvfrom(100)[0] == b"ping %d" % i
print(ok)
"""


def _wait_listening(proc: Popen) -> Popen:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening" in line, line
    return proc


def tcp_echo_server(host: Host, port: int) -> Popen:
    """A real TCP echo service on `port`, IPv4 and IPv6; returns when it listens."""
    return _wait_listening(
        host.popen([sys.executable, "-c", _TCP_SERVER, str(port)], stdout=-1, text=True)
    )


def udp_echo_server(host: Host, port: int, delay_s: float = 0.0) -> Popen:
    """Echoes each datagram back, `delay_s` after it came (a server that takes its time)."""
    return _wait_listening(
        host.popen(
            [sys.executable, "-c", _UDP_SERVER, str(port), str(delay_s)], stdout=-1, text=True
        )
    )


def echo_client(host: Host, address: str, tcp_port: int, udp_port: int, rounds: int) -> int:
    """Normal TCP connections and UDP exchanges; returns how many got their echo back."""
    result = host.run(
        [sys.executable, "-c", _CLIENT, address, str(tcp_port), str(udp_port), str(rounds)],
        timeout=120,
    )
    return int(result.stdout)


_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError:
    sys.exit(1)
"""


def can_connect(host: Host, address: str, port: int, timeout: float = 1.5) -> bool:
    """Whether `host` can open a TCP connection to `address`:`port` right now."""
    result = host.run(
        [sys.executable, "-c", _CONNECT, address, str(port), str(timeout)],
        check=False,
        timeout=timeout + 20,
    )
    return result.returncode == 0
