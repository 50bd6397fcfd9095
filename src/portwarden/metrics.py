"""Prometheus metrics over HTTP (opt-in: METRICS_LISTEN).

The loop publishes a finished snapshot once a second; the HTTP threads only render the latest
one, so a scraper never touches the loop's state and a slow scraper never slows the loop.
"""

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from portwarden import __version__, limits
from portwarden.net.deadline import time_left

# name, type, help, the key in the daemon's counters
_PLAIN = (
    (
        "portwarden_start_time_seconds",
        "gauge",
        "Start time of the daemon since the epoch.",
        "start_time",
    ),
    (
        "portwarden_packets_read_total",
        "counter",
        "Packets and connections read by the sensors.",
        "packets_read",
    ),
    (
        "portwarden_packets_dropped_total",
        "counter",
        "Packets the kernel dropped before the sensors read them (receive buffers full).",
        "packets_dropped",
    ),
    (
        "portwarden_probes_total",
        "counter",
        "Probes to tripwire ports from sources not ignored.",
        "probes",
    ),
    ("portwarden_scans_total", "counter", "Sources found scanning.", "scans"),
    ("portwarden_os_probes_total", "counter", "OS-fingerprinting tools detected.", "os_probes"),
    ("portwarden_blocks_total", "counter", "Blocks made since start.", "blocks"),
    ("portwarden_blocks_active", "gauge", "Blocks in force.", "blocks_active"),
    ("portwarden_sources_tracked", "gauge", "Sources in the detection table.", "sources_tracked"),
    (
        "portwarden_sources_evicted_total",
        "counter",
        "Sources evicted from the full detection table.",
        "sources_evicted",
    ),
    (
        "portwarden_summaries_dropped_total",
        "counter",
        "Scan and OS-probe summaries dropped in a flood of sources (tables full).",
        "summaries_dropped",
    ),
    (
        "portwarden_loop_errors_total",
        "counter",
        "Turns of the main loop that failed on a bug (logged with a traceback).",
        "loop_errors",
    ),
    (
        "portwarden_audit_findings",
        "gauge",
        "Findings of the last port audit that checked something.",
        "audit_findings",
    ),
    (
        "portwarden_audit_last_run_timestamp_seconds",
        "gauge",
        "When the last port audit ran, since the epoch, whether it could check or not.",
        "audit_last_run",
    ),
    (
        "portwarden_audit_error",
        "gauge",
        "1 if the last port audit could check nothing (or failed), else 0.",
        "audit_error",
    ),
)


def exposition(counters: dict[str, Any], alerts: dict[str, dict[str, Any]]) -> str:
    """The Prometheus text format (version 0.0.4). `alerts` as Alerts.delivered() gives it."""
    name = "portwarden_build_info"
    lines = [
        f"# HELP {name} The running version, as a label; always 1.",
        f"# TYPE {name} gauge",
        f'{name}{{version="{__version__}"}} 1',
    ]
    for name, kind, text, key in _PLAIN:
        if key in counters:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {counters[key]}"]
    name = "portwarden_alerts_sent_total"
    lines += [
        f"# HELP {name} Alerts delivered, by path (syslog lines, JSON events, mails).",
        f"# TYPE {name} counter",
    ]
    lines += [f'{name}{{path="{path}"}} {count}' for path, count in alerts["sent"].items()]
    name = "portwarden_alerts_dropped_total"
    lines += [
        f"# HELP {name} Alerts not delivered, by path and reason (rate_limit, error).",
        f"# TYPE {name} counter",
    ]
    lines += [
        f'{name}{{path="{path}",reason="{reason}"}} {count}'
        for path, reasons in alerts["dropped"].items()
        for reason, count in reasons.items()
    ]
    return "\n".join(lines) + "\n"


class _Connection(socket.socket):
    """A client's connection whose reads and writes all end by one deadline: a timeout per
    operation never dropped a client that sent a byte every 0.8 s, and METRICS_CLIENTS_MAX of
    those shut every scrape out. recv_into and sendall are all the handler's rfile and wfile
    use; past the deadline they raise TimeoutError, which ends the request."""

    deadline = 0.0

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self.settimeout(time_left(self.deadline))
        return super().recv_into(buffer, nbytes, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.settimeout(time_left(self.deadline))
        super().sendall(data, flags)


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most METRICS_CLIENTS_MAX at once: one more is closed at once
    rather than queued behind idle ones."""

    block_on_close = False  # a stop does not wait for a client's thread
    request_queue_size = limits.METRICS_CLIENTS_MAX  # listen()'s backlog: 5 made a burst wait 1 s

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._slots = threading.BoundedSemaphore(limits.METRICS_CLIENTS_MAX)
        super().__init__((host, port), handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """The next connection, which must be done METRICS_CLIENT_WAIT_S after it is taken in."""
        sock, client_address = self.socket.accept()
        conn = _Connection(sock.family, sock.type, sock.proto, fileno=sock.detach())
        conn.deadline = time.monotonic() + limits.METRICS_CLIENT_WAIT_S
        return conn, client_address

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()  # no thread was started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class MetricsServer:
    """Serves /metrics from the latest published snapshot: one daemon thread accepts, one per
    connection serves. Raises OSError when the address cannot be bound."""

    def __init__(self, host: str, port: int) -> None:
        self._page = b""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def handle(self) -> None:
                """A client that went away mid-exchange (a reset, a broken pipe) is its loss:
                socketserver printed a traceback on stderr, the daemon's log, for each one."""
                with contextlib.suppress(OSError):
                    super().handle()

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                page = server._page  # one snapshot: publish() may replace it meanwhile
                if self._headers(page):
                    self.wfile.write(page)

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
                self._headers(server._page)

            def _headers(self, page: bytes) -> bool:
                """Status and headers; whether /metrics was asked for."""
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return False
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                return True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # scrapes are not events

            def version_string(self) -> str:
                return "portwarden"  # not http.server's and Python's versions

        self._http = _Server(host, port, Handler)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            args=(limits.METRICS_SHUTDOWN_POLL_S,),
            name="portwarden-metrics",
            daemon=True,
        )
        self._thread.start()

    def publish(self, counters: dict[str, Any], alerts: dict[str, dict[str, Any]]) -> None:
        self._page = exposition(counters, alerts).encode()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
