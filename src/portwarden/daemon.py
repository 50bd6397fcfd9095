"""Wiring only: build the parts from Settings, run the main loop, handle signals."""

import logging
import os
import selectors
import signal
from pathlib import Path

from portwarden import service, statedir
from portwarden.config import ConfigError, Settings, TcpMode, UdpMode, load_settings

log = logging.getLogger("portwarden")

Modes = tuple[TcpMode | None, UdpMode | None]

TICK_S = 1.0  # how often the loop wakes up with nothing to read (expiry, housekeeping)


class Daemon:
    """One process: one TCP mode and one UDP mode, one loop."""

    def __init__(
        self, settings: Settings, config_path: Path | None, cli_modes: Modes | None
    ) -> None:
        """`cli_modes`, when given, override TCP_MODE and UDP_MODE now and after every reload."""
        self._config_path = config_path
        self._cli_modes = cli_modes
        self.settings = settings if cli_modes is None else settings.with_modes(*cli_modes)
        self._signals: list[int] = []
        self._running = False

    def run(self) -> int:
        """Run until SIGTERM or SIGINT. Returns the process exit status."""
        lock = statedir.claim(self.settings.state_dir)
        selector = selectors.DefaultSelector()
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        selector.register(wake_read, selectors.EVENT_READ)
        previous_fd = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        try:
            self._running = True
            self._announce_ready()
            while self._running:
                for key, _ in selector.select(TICK_S):
                    if key.fd == wake_read:
                        _drain(wake_read)
                self._handle_signals()
        finally:
            signal.set_wakeup_fd(previous_fd)
            selector.close()
            os.close(wake_read)
            os.close(wake_write)
            lock.close()
        log.info("stopped")
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGHUP:
                self._reload()
            else:
                log.info("stopping on %s", signal.Signals(signum).name)
                service.notify("STOPPING=1")
                self._running = False

    def _reload(self) -> None:
        try:
            fresh = load_settings(self._config_path)
        except ConfigError as error:
            log.error("reload refused, old configuration stays in force: %s", error)
            return
        if self._cli_modes is not None:
            fresh = fresh.with_modes(*self._cli_modes)
        for warning in fresh.warnings:
            log.warning("%s", warning)
        self.settings = fresh
        log.info("configuration reloaded from %s", fresh.source)

    def _announce_ready(self) -> None:
        s = self.settings
        tcp = s.tcp_mode.value if s.tcp_mode else "off"
        udp = s.udp_mode.value if s.udp_mode else "off"
        log.info(
            "ready: tcp mode %s, udp mode %s, config %s, state %s", tcp, udp, s.source, s.state_dir
        )
        service.notify("READY=1")


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
