"""SmartVerify's look at one port asks the kernel for that port's sockets alone (a sock_diag
filter), and finds what the look at every port finds for it."""

import socket

from portwarden.net import ports
from portwarden.net.addresses import Proto


def test_the_services_of_one_port_are_those_of_every_port_on_it() -> None:
    held = []
    for _ in range(3):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        held.append(udp)
    connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a client: no service
    connected.connect(("127.0.0.1", held[0].getsockname()[1]))
    held.append(connected)
    try:
        everything = ports.services(Proto.UDP)
        for sock in held:
            port = sock.getsockname()[1]
            mine = ports.services(Proto.UDP, port)
            assert mine == {s for s in everything if s[0] == port}
            assert ((port, socket.inet_aton("127.0.0.1")) in mine) == (sock is not connected)
    finally:
        for sock in held:
            sock.close()
