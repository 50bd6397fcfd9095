"""A service that stops or restarts in the advanced modes: its clients reconnecting are not
scanners (SERVICE_GONE_GRACE), while a port that never had a service is still a tripwire."""

import sys
import time
from collections.abc import Iterator

import pytest

from portwarden import limits
from portwarden.lab.network import Host, Lab
from tests.e2e.conftest import StartDaemon
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect, echo_client, tcp_echo_server, udp_echo_server

TCP_SERVICE, UDP_SERVICE = 80, 69  # inside the advanced range (below 1024)
NEVER_SERVED_TCP, NEVER_SERVED_UDP = 81, 70

_KNOCK = """
import socket, sys
host, proto, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if proto == "tcp":
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        pass  # refused: the service is gone
else:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"hello again", (host, port))
"""


def knock(client: Host, target: str, proto: str, port: int) -> None:
    """What a client of a service does: connect (TCP) or send a request (UDP)."""
    client.run([sys.executable, "-c", _KNOCK, target, proto, str(port)])


@pytest.fixture
def daemon(lab: Lab, start_daemon: StartDaemon) -> Iterator[RunningDaemon]:
    """For one test (clean_firewall stops it after): a daemon left running would make bind
    tests of its own (SmartVerify) on the UDP ports below 1024 while the next tests' daemons
    watch them, and its test sockets' closes are, to them, this host's clients closing."""
    yield start_daemon("-atcp", "-audp")


def test_clients_of_a_stopped_service_are_not_scanners(lab: Lab, daemon: RunningDaemon) -> None:
    servers = [tcp_echo_server(lab.target, TCP_SERVICE), udp_echo_server(lab.target, UDP_SERVICE)]
    time.sleep(limits.REFRESH_S + 1)  # the daemon has seen the services
    assert echo_client(lab.client, lab.target.ipv4, TCP_SERVICE, UDP_SERVICE, 2) == 4
    for server in servers:
        server.kill()
        server.wait()
    time.sleep(limits.REFRESH_S + 1)  # and that they are gone (without grace: tripwires)
    mark = daemon.mark()
    knock(lab.client, lab.target.ipv4, "tcp", TCP_SERVICE)
    knock(lab.client, lab.target.ipv4, "udp", UDP_SERVICE)
    # Ports that never had a service are tripwires still; their lines come after any line for
    # the ports above would have.
    knock(lab.client, lab.target.ipv4, "tcp", NEVER_SERVED_TCP)
    knock(lab.client, lab.target.ipv4, "udp", NEVER_SERVED_UDP)
    daemon.wait_for_attack(mark, src=lab.client.ipv4, port=str(NEVER_SERVED_TCP), mode="atcp")
    daemon.wait_for_attack(mark, src=lab.client.ipv4, port=str(NEVER_SERVED_UDP), mode="audp")
    assert daemon.attacks(mark, port=str(TCP_SERVICE)) == []
    assert daemon.attacks(mark, port=str(UDP_SERVICE)) == []


GRACE_PORT, NEVER_SERVED = 540, 79  # tripwires of the stealth modes (tests/e2e/conftest.py)


def test_a_reload_keeps_the_grace_of_a_stopped_service(lab: Lab, start_daemon: StartDaemon) -> None:
    """SIGHUP makes new sensors: the times a port last had a service must outlive them, or the
    first client to reconnect after a reload is blocked (and loses every service)."""
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    server = tcp_echo_server(lab.target, GRACE_PORT)
    time.sleep(limits.REFRESH_S + 1)  # the daemon has seen the service
    assert can_connect(lab.client, lab.target.ipv4, GRACE_PORT)
    server.kill()
    server.wait()
    time.sleep(limits.REFRESH_S + 1)  # and that it is gone
    mark = daemon.mark()
    daemon.proc.send_signal(1)  # SIGHUP
    daemon.wait_for("configuration reloaded", since=mark)
    knock(lab.client, lab.target.ipv4, "tcp", GRACE_PORT)
    # A port that never had a service is a tripwire still; its line comes after any line for
    # the port above would have.
    knock(lab.attackers[0], lab.target.ipv4, "tcp", NEVER_SERVED)
    daemon.wait_for_attack(mark, src=lab.attackers[0].ipv4, port=str(NEVER_SERVED), mode="stcp")
    assert daemon.attacks(mark, src=lab.client.ipv4) == []
    back = tcp_echo_server(lab.target, GRACE_PORT)
    assert can_connect(lab.client, lab.target.ipv4, GRACE_PORT)  # not blocked
    back.kill()
    back.wait()


CLIENT_PORT = 31337  # a tripwire of the stealth modes, TCP and UDP (tests/e2e/conftest.py)
MARKER_UDP = 9  # another one, UDP, never served
PEER_PORT = 7000

_CLIENT_FROM_TRIPWIRE = """
import socket, sys
own, peer, proto = sys.argv[1], sys.argv[2], sys.argv[3]
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.bind((own, int(sys.argv[4])))
s.connect((peer, int(sys.argv[5])))
s.settimeout(5)
s.send(b"question")
assert s.recv(100) == b"question"  # the peer's answer came to the tripwire port
print("connected", flush=True)
sys.stdin.readline()
s.close()  # TCP: this side closes first, so the port stays in TIME_WAIT here
print("closed", flush=True)
"""


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_client_socket_on_a_tripwire_port_is_no_service(
    lab: Lab, start_daemon: StartDaemon, proto: str
) -> None:
    """The target's own client uses a tripwire port as its source port (an outbound TCP
    connection; a connected UDP socket, as for a DNS query): while it lasts, its peer's
    answers are no probes; anyone else's SYN is (the port is closed to them), a datagram is
    left alone (PortSentry's way: a reply cannot be told reliably from a probe); once it is
    closed, the port is a tripwire at once, with no SERVICE_GONE_GRACE (which only a service
    starts)."""
    daemon = start_daemon("-stcp", "-sudp")
    peer, during, after = lab.client, lab.attackers[0], lab.attackers[1]
    serve = tcp_echo_server if proto == "tcp" else udp_echo_server
    server = serve(peer, PEER_PORT)
    mark = daemon.mark()
    client = lab.target.popen(
        [
            sys.executable,
            "-c",
            _CLIENT_FROM_TRIPWIRE,
            lab.target.ipv4,
            peer.ipv4,
            proto,
            str(CLIENT_PORT),
            str(PEER_PORT),
        ],
        stdin=-1,
        stdout=-1,
        text=True,
    )
    assert client.stdin is not None and client.stdout is not None
    assert client.stdout.readline() == "connected\n"
    time.sleep(limits.REFRESH_S + 1)  # the daemon's socket table view has seen the client
    knock(during, lab.target.ipv4, proto, CLIENT_PORT)
    if proto == "udp":
        # A datagram to a tripwire after it: the daemon reads in order, so by its line the
        # one above was read (and judged) while the client was still open.
        knock(during, lab.target.ipv4, proto, MARKER_UDP)
        daemon.wait_for_attack(mark, src=during.ipv4, port=str(MARKER_UDP), mode="sudp")
    else:
        daemon.wait_for_attack(mark, src=during.ipv4, port=str(CLIENT_PORT), mode="stcp")
    client.stdin.write("close\n")
    client.stdin.flush()
    assert client.stdout.readline() == "closed\n"
    assert client.wait(timeout=5) == 0
    time.sleep(limits.PORT_FREE_CACHE_S)  # what SmartVerify found during the exchange is old
    knock(after, lab.target.ipv4, proto, CLIENT_PORT)
    daemon.wait_for_attack(mark, src=after.ipv4, port=str(CLIENT_PORT), mode="s" + proto)
    assert daemon.attacks(mark, src=peer.ipv4) == []
    if proto == "udp":
        assert daemon.attacks(mark, src=during.ipv4, port=str(CLIENT_PORT)) == []
    server.kill()
    server.wait()
