"""bound_ports over sock_diag against /proc/net, on real sockets of every kind, in a network
namespace of its own (`unshare -n`: it vanishes with the process)."""

from tests.conftest import require_lab
from tests.lab.isolated import NEW_NETWORK, printed_json

SCRIPT = """
import json, socket, subprocess
from portwarden.net.addresses import Proto
from portwarden.net.ports import bound_ports, bound_ports_from_proc
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
keep = []
def bound(family, kind, address, port, v6only=None):
    s = socket.socket(family, kind)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((address, port))
    keep.append(s)
    return s
bound(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", 7001).listen()
bound(socket.AF_INET6, socket.SOCK_STREAM, "::", 7002, v6only=0).listen()
bound(socket.AF_INET6, socket.SOCK_STREAM, "::1", 7003, v6only=1).listen()
bound(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", 7004)  # bound, never listening
server = bound(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", 7005)
server.listen()
keep.append(socket.create_connection(("127.0.0.1", 7005)))
keep.append(server.accept()[0])  # an established pair: of these, only 7005 listens
bound(socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 7101)
bound(socket.AF_INET6, socket.SOCK_DGRAM, "::", 7102, v6only=0)
bound(socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", 7103).connect(("127.0.0.1", 7101))
result = {p.value: [sorted(bound_ports(p)), sorted(bound_ports_from_proc(p))] for p in Proto}
print(json.dumps(result))
"""


def test_sock_diag_finds_what_proc_lists() -> None:
    require_lab()
    result = printed_json(NEW_NETWORK, SCRIPT)
    assert result["tcp"] == [[7001, 7002, 7003, 7005]] * 2
    assert result["udp"] == [[7101, 7102]] * 2  # 7103 is connected: a client's, no service
