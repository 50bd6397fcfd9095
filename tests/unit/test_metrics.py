"""The metrics page over a real loopback socket: GET, HEAD, a wrong path, idle clients."""

import contextlib
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portwarden import __version__, limits
from portwarden.config import load_settings
from portwarden.metrics import MetricsServer, exposition
from tests.unit.config_error import load_error

ALERTS: dict[str, dict[str, Any]] = {
    "sent": {"syslog": 3},
    "dropped": {"mail": {"rate_limit": 1, "error": 0}},
}


# An idle client is dropped after this long in most tests here: a server that waited for one
# (the defects these tests guard) would take this long, far more than any bound they assert.
LONG_WAIT_S = 30.0


def serve(monkeypatch: pytest.MonkeyPatch, wait_s: float) -> MetricsServer:
    """A server on a free loopback port that drops an idle client after `wait_s`."""
    monkeypatch.setattr(limits, "METRICS_CLIENT_WAIT_S", wait_s)
    server = MetricsServer("127.0.0.1", 0)
    server.publish({"probes": 7, "blocks_active": 2}, ALERTS)
    return server


def address(server: MetricsServer) -> str:
    """The URL of a server that `serve` made."""
    return f"http://127.0.0.1:{server._http.server_address[1]}"


@pytest.fixture
def url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = serve(monkeypatch, LONG_WAIT_S)
    yield address(server)
    server.close()


def test_get_serves_the_exposition_with_build_info(url: str) -> None:
    page = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }
    assert samples[("portwarden_build_info", (("version", __version__),))] == 1
    assert samples[("portwarden_probes_total", ())] == 7
    assert (
        samples[("portwarden_alerts_dropped_total", (("path", "mail"), ("reason", "rate_limit")))]
        == 1
    )


def test_head_has_the_headers_and_no_body(url: str) -> None:
    request = urllib.request.Request(f"{url}/metrics", method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200 and int(response.headers["Content-Length"]) > 0
        assert response.read() == b""


def test_another_path_is_404(url: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{url}/", timeout=5)
    assert caught.value.code == 404


def test_the_audit_gauges_are_in_the_exposition() -> None:
    page = exposition(
        {"audit_findings": 3, "audit_last_run": 1767225600, "audit_error": 1},
        {"sent": {}, "dropped": {}},
    )
    families = {f.name: f for f in text_string_to_metric_families(page)}
    values = {
        name: (families[name].type, families[name].samples[0].value)
        for name in (
            "portwarden_audit_findings",
            "portwarden_audit_last_run_timestamp_seconds",
            "portwarden_audit_error",
        )
    }
    assert values == {
        "portwarden_audit_findings": ("gauge", 3),
        "portwarden_audit_last_run_timestamp_seconds": ("gauge", 1767225600),
        "portwarden_audit_error": ("gauge", 1),
    }


def _idle(url: str, count: int, timeout: float = 5) -> list[socket.socket]:
    """`count` connections that send nothing."""
    host, port = url.removeprefix("http://").split(":")
    return [socket.create_connection((host, int(port)), timeout=timeout) for _ in range(count)]


def test_idle_connections_do_not_delay_a_scrape(url: str) -> None:
    """One thread served one connection at a time, waiting (here LONG_WAIT_S) for each idle
    one."""
    idle = _idle(url, limits.METRICS_CLIENTS_MAX - 1)
    started = time.monotonic()
    with urllib.request.urlopen(f"{url}/metrics", timeout=LONG_WAIT_S) as response:
        assert b"portwarden_probes_total 7" in response.read()
        assert response.headers["Server"] == "portwarden"  # no Python version
    assert time.monotonic() - started < 5
    for sock in idle:
        sock.close()


def test_connections_past_the_cap_are_closed_at_once(url: str) -> None:
    """The one past limits.METRICS_CLIENTS_MAX is closed, not queued until an idle one is dropped
    (LONG_WAIT_S here). The listen queue is first in, first out: it is taken in after the
    others, whenever the server gets to them."""
    idle = _idle(url, limits.METRICS_CLIENTS_MAX)
    (extra,) = _idle(url, 1, timeout=LONG_WAIT_S / 3)
    started = time.monotonic()
    assert extra.recv(1) == b"" and time.monotonic() - started < 5  # closed, not queued
    for sock in [*idle, extra]:
        sock.close()
    wait_until_served(url)  # the slots of the closed ones are free again


def test_idle_connections_are_dropped_after_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    wait_s = 0.5
    server = serve(monkeypatch, wait_s)
    try:
        idle = _idle(address(server), limits.METRICS_CLIENTS_MAX, timeout=20)
        started = time.monotonic()
        assert [sock.recv(1) for sock in idle] == [b""] * len(idle)
        assert time.monotonic() - started < wait_s + 5  # never: recv's 20 s timeout
        wait_until_served(address(server))  # their slots are free again
        for sock in idle:
            sock.close()
    finally:
        server.close()


def publish_a_large_page(server: MetricsServer) -> None:
    """A page of some MiB, far larger than the socket buffers `_unread` leaves it."""
    server.publish({}, {"sent": {f"path{n}": n for n in range(100_000)}, "dropped": {}})


def _unread(url: str, count: int) -> list[socket.socket]:
    """`count` connections that ask for the page and never read it, with small receive
    buffers."""
    host, port = url.removeprefix("http://").split(":")
    clients = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect((host, int(port)))
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        clients.append(sock)
    return clients


@pytest.mark.parametrize("connect", [_idle, _unread], ids=["request trickled", "page unread"])
def test_slow_clients_free_their_slots_after_the_wait(
    monkeypatch: pytest.MonkeyPatch, connect: Callable[[str, int], list[socket.socket]]
) -> None:
    """The wait was a timeout per read: METRICS_CLIENTS_MAX clients that each sent a byte well
    within it were never dropped, and every scrape was closed at once for as long as they went
    on. Now a connection ends `wait_s` after it was taken in, whatever it sent, and whether it
    reads its page or not."""
    wait_s = 0.5
    server = serve(monkeypatch, wait_s)
    publish_a_large_page(server)
    slow = connect(address(server), limits.METRICS_CLIENTS_MAX)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(wait_s / 5):
            for sock in slow:
                with contextlib.suppress(OSError):  # closed by the server
                    sock.send(b"G")

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        started = time.monotonic()
        wait_until_served(address(server), timeout=5)  # before: "no scrape served"
        assert time.monotonic() - started < wait_s + 3
    finally:
        stop.set()
        sender.join()
        for sock in slow:
            sock.close()
        server.close()


def wait_until_served(url: str, timeout: float = 10.0) -> None:
    """A scrape answered 200 within `timeout` (one the server closed at once, its slots still
    taken by threads about to end, is tried again)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=timeout) as response:
                assert response.status == 200
                return
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "no scrape served"
            time.sleep(0.05)


def test_clients_that_reset_their_connections_leave_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """socketserver printed a traceback of some 20 lines on stderr (the daemon's log) for each
    connection reset during the request or the page: any client could flood it."""
    server = serve(monkeypatch, LONG_WAIT_S)
    threads = threading.active_count()  # the accepting thread's among them
    publish_a_large_page(server)
    url = address(server)
    for sock in _unread(url, 3):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, with the page not yet read
    for sock in _idle(url, 3):
        sock.sendall(b"GET /met")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, with the request not yet whole
    wait_until_served(url)  # taken in after the others: their threads have started
    deadline = time.monotonic() + 10
    while threading.active_count() > threads:
        assert time.monotonic() < deadline, "the clients' threads never ended"
        time.sleep(0.01)
    server.close()
    assert capsys.readouterr().err == ""


def test_close_is_quick_with_an_idle_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop does not wait for an idle client's thread (which lives LONG_WAIT_S here)."""
    threads = threading.active_count()
    server = serve(monkeypatch, LONG_WAIT_S)
    idle = _idle(address(server), 1)
    deadline = time.monotonic() + 10
    while threading.active_count() < threads + 2:  # the accepting thread and the client's
        assert time.monotonic() < deadline, "the idle client was never taken in"
        time.sleep(0.01)
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 5
    idle[0].close()


@pytest.mark.parametrize("value", ["::1:9918", "fe80::1:80", "::1", "::"])
def test_an_ipv6_listen_address_needs_brackets(tmp_path: Path, value: str) -> None:
    """'::1:9918' is an IPv6 address itself: it was read as [::1]:9918, a guess."""
    conf = tmp_path / "p.conf"
    conf.write_text(f'METRICS_LISTEN="{value}"\n')
    shown = load_error(conf)
    assert shown == (
        f'{conf}:1: METRICS_LISTEN="{value}": an IPv6 address needs '
        "brackets and a port: [IPV6]:PORT"
    )
    conf.write_text('METRICS_LISTEN="[::1]:9918"\n')
    assert load_settings(conf).metrics_listen == ("::1", 9918)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("[::1]", "no port after the brackets: use [IPV6]:PORT"),
        ("[::1]:", "'' is not a port number (1-65535)"),
        ("[]:9918", "empty brackets: use [IPV6]:PORT, or PORT for 127.0.0.1"),
        ("[127.0.0.1]:9918", "brackets are for IPv6 addresses: use 127.0.0.1:9918"),
        ("[::1", "an unclosed or misplaced ']': use [IPV6]:PORT"),
        ("[::1]9918", "an unclosed or misplaced ']': use [IPV6]:PORT"),
        ("[[::1]]:1", "an unclosed or misplaced ']': use [IPV6]:PORT"),
    ],
)
def test_a_bracketed_listen_address_is_ipv6_with_a_port(
    tmp_path: Path, value: str, reason: str
) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text(f'# metrics\nMETRICS_LISTEN="{value}"\n')
    shown = load_error(conf)
    assert shown == f'{conf}:2: METRICS_LISTEN="{value}": {reason}'
