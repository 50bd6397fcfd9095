"""A one-shot UDP client of this host on a port below 1024 (ntpdate's 123 to an NTP server's
123) that gives up and closes its unconnected socket before the answer: the answer, 0.6 s
later from 123 (one of UDP_REPLY_SOURCE_PORTS), is no probe in the advanced mode, outside the
local port range too (the kernel's notice of the socket closing says the port was a client's a
moment ago). A datagram to a port no socket had is still a probe from the same host; one from a
port that is no reply source is a probe too (tests/e2e/test_late_replies.py)."""

import sys
from collections.abc import Iterator

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon
from tests.lab.services import udp_echo_server

NTP = 123

_ASK_AND_GIVE_UP = """
import socket, sys, time
server, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in server else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
s.settimeout(0.1)
s.sendto(b"query", (server, port))
try:
    s.recv(100)
    print("answered in time")
except TimeoutError:
    print("gave up")
s.close()
time.sleep(0.8)  # the late answer comes meanwhile
"""

_SEND = """
import socket, sys
server, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in server else socket.AF_INET
socket.socket(family, socket.SOCK_DGRAM).sendto(b"x", (server, port))
"""


@pytest.fixture
def slow_server(lab: Lab) -> Iterator[None]:
    # 0.5 s after the client gives up: it has the time to close on a loaded machine.
    server = udp_echo_server(lab.client, NTP, delay_s=0.6)
    yield
    server.kill()
    server.wait()


def test_a_late_reply_to_a_oneshot_client_below_1024_is_no_probe(
    lab: Lab, start_daemon: StartDaemon, slow_server: None
) -> None:
    # No grace: a client socket that a refresh or SmartVerify saw open would be a service, and
    # its port kept out of the tripwires for SERVICE_GONE_GRACE; only the close notice is left.
    daemon = start_daemon("-audp", conf='SERVICE_GONE_GRACE="0"\n')
    for server in (lab.client.ipv4, lab.client.ipv6):
        asked = lab.target.run([sys.executable, "-c", _ASK_AND_GIVE_UP, server, str(NTP)])
        assert asked.stdout.strip() == "gave up"
    # Each reply came 0.6 s after its query, before the client's program ended; the daemon
    # reads in order, so by the control datagram's line a reply taken for a probe would have
    # been reported.
    mark = daemon.mark()
    lab.client.run([sys.executable, "-c", _SEND, lab.target.ipv4, str(NTP + 1)])
    found = daemon.wait_for_attack(mark, src=lab.client.ipv4, port=str(NTP + 1))
    assert found["mode"] == "audp"
    assert daemon.attacks(port=str(NTP)) == []
