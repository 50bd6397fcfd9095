"""Wiring only: build the parts from Settings, run the main loop, handle signals."""

import contextlib
import dataclasses
import errno
import logging
import math
import os
import selectors
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portwarden import control, limits, service, statedir, status
from portwarden.alert.dispatch import Alerts
from portwarden.audit.check import state_path
from portwarden.audit.periodic import Outcome, PeriodicAudit
from portwarden.audit.reporting import AuditReports
from portwarden.blame import blamed_on
from portwarden.claims import FileClaims
from portwarden.config import ConfigError, Modes, Settings, load_settings
from portwarden.config.load import error_at
from portwarden.config.values import CLASSIC_MODES, ListenAddress
from portwarden.descriptors import OUT_OF_DESCRIPTORS, raise_soft_limit
from portwarden.detect.config import engine_config
from portwarden.detect.engine import Engine, EngineConfig, Verdict
from portwarden.detect.probe import Probe
from portwarden.episode import Episode
from portwarden.loop_errors import LoopErrors
from portwarden.net.addresses import Proto
from portwarden.net.input_filters import input_filter_chains
from portwarden.respond.policy import ResponsePolicy
from portwarden.sensors.build import (
    Sensor,
    build_each,
    build_sensors,
    failure,
    late_reply_ports,
    sensor_inputs,
)
from portwarden.sensors.hostview import HostView
from portwarden.store.db import store_path
from portwarden.text import counted, one_line

if TYPE_CHECKING:
    from portwarden.metrics import MetricsServer

log = logging.getLogger("portwarden")


TICK_S = 0.5  # the longest the loop sleeps with nothing to read (summaries, refresh)
PUBLISH_S = 1.0  # how often the metrics page is rebuilt
# By default they end a process: a stray `kill -USR1` (logrotate scripts written for other
# daemons) would stop this one without its clean stop, leaving its pid file and control socket.
# A handler, not SIG_IGN, which the commands it runs (KILL_RUN_CMD) would inherit.
IGNORED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
SNAPSHOT_S = 30.0  # how often the status is saved in the store (for `status` after a stop)


class Daemon:
    """One process: one TCP mode and one UDP mode, one loop."""

    def __init__(
        self,
        settings: Settings,
        config_path: Path | None,
        cli_modes: Modes | None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """`settings`: loaded with `cli_modes`, which, when given, override TCP_MODE and
        UDP_MODE after every reload too. `on_ready` is called once the sensors watch
        (`--daemon` then detaches)."""
        # First of all: a second instance on this STATE_DIR must touch nothing in it.
        with blamed_on(settings, "STATE_DIR", settings.state_dir):
            self._lock = statedir.claim(settings.state_dir)
        # Then the files another instance with its own STATE_DIR may name too.
        self._claims = FileClaims()
        self._claims.claim(settings)
        # Next: a configured metrics page that cannot listen stops the start before anything
        # is made.
        self._metrics = _listen_metrics(settings)
        log.debug("open-files limit: %d", raise_soft_limit())
        self._on_ready = on_ready
        self._config_path = config_path
        self._cli_modes = cli_modes
        self.settings = settings
        self._signals: list[int] = []
        self._running = False  # the loop has started (its state is worth saving)
        self._stop_requested = False
        self._stopped_by = ""  # the signal's name, for the shutdown line said last
        self._host = HostView()
        self._host.refresh()
        self._late_reply_ports = self._ports_for_late_replies()[0]
        self._engine = Engine(self._engine_config())
        self._selector = selectors.DefaultSelector()
        self._sensors: list[Sensor] = []
        self._next_refresh = 0.0
        with blamed_on(settings, "EVENT_LOG", settings.event_log or Path()):
            self._alerts = Alerts(self.settings)
        path = store_path(self.settings.state_dir)
        with blamed_on(settings, "STATE_DIR", path):
            self._policy = ResponsePolicy(
                self.settings, path, self._alerts, lambda: self._host.addresses
            )
        self._packets_read = 0  # by sensors stopped since start (a reload makes new ones)
        self._verdicts = 0
        self._scans = 0
        self._os_probes = 0
        self._started = time.time()
        self._control: control.ControlServer | None = None
        self._next_publish = 0.0
        self._next_snapshot = 0.0
        self._audit: PeriodicAudit | None = None
        self._audit_reports = AuditReports(self._alerts, self._policy.store)
        self._watchdog_s = service.watchdog_interval()
        self._next_watchdog = 0.0
        self._quiet_until: dict[str, float] = {}
        self._summaries_dropped = 0  # not said yet
        self._summaries_dropped_total = 0
        self._evictions = Episode(limits.SOURCES_FULL_QUIET_S)
        self._packets_dropped = 0  # by sensors stopped since start
        self._drops = Episode(limits.SENSOR_DROPS_QUIET_S)
        self._loop_errors = LoopErrors()

    def run(self) -> int:
        """Run until SIGTERM or SIGINT. Returns the process exit status: 0, or 1 when every
        turn of the loop failed for limits.LOOP_ERRORS_FATAL_S."""
        status = 0
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(wake_read, selectors.EVENT_READ, None)
        previous_fd = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, *IGNORED_SIGNALS):
            signal.signal(signum, self._on_signal)
        try:
            # First, so that `status` waits for the answer during a long restore instead of
            # saying that no daemon runs.
            self._control = control.ControlServer(self.settings.state_dir, self._command)
            for fd in self._control.fds:
                self._selector.register(fd, selectors.EVENT_READ, self._control)
            self._policy.start()
            self._start_sensors(build_sensors(self.settings, self._host))
            self._publish_metrics()
            self._start_audit()
            self._running = True
            # The host view and the sensors were just built: the first refresh can wait, and a
            # probe in the first turns does not wait for it.
            self._next_refresh = time.monotonic() + limits.REFRESH_S
            self._announce_ready()
            while not self._stop_requested:
                if self._survived(self._turn, wake_read):
                    self._loop_errors.passed()
                    self._say_alive()
                # Apart from the turn: a SIGTERM stops the daemon also while every turn fails.
                self._survived(self._handle_signals)
                if self._loop_errors.fatal(time.monotonic()):
                    self._stopped_by = "every turn of the loop failed"
                    service.notify(f"STOPPING=1\nSTATUS=stopping: {self._stopped_by}")
                    status = 1
                    break
        finally:
            signal.set_wakeup_fd(previous_fd)
            self._stop()
            os.close(wake_read)
            os.close(wake_write)
            self._lock.close()
        log.info(
            "stopped: probes=%d packets=%d verdicts=%d sources=%d evicted=%d",
            self._engine.probes,
            self._packets_read,
            self._verdicts,
            len(self._engine),
            self._engine.evicted,
        )
        return status

    def _stop(self) -> None:
        """The stop, each step on its own (_guarded): one that fails (a bug; at a stop for a
        broken loop, the very code that broke it) is logged with its traceback and the steps
        after it run all the same: the mail queue, the last status, the sensors, the policy's
        stop (UNBLOCK_ON_STOP), the control socket, the shutdown line, the claimed files."""
        server, metrics, audit = self._control, self._metrics, self._audit
        if server is not None:

            def stop_listening() -> None:
                for fd in server.fds:
                    self._selector.unregister(fd)
                server.stop_listening()

            _guarded("stop: closing the control socket to new clients", stop_listening)
        if metrics is not None:
            _guarded("stop: closing the metrics page", metrics.close)
        if audit is not None:

            def stop_audit() -> None:
                audit.stop()
                while audit.results:  # checks done but not reported yet
                    self._report_audit(audit.results.popleft())

            _guarded("stop: stopping the audit", stop_audit)
        if self._running:  # scans still open end with the daemon: report them, mail them
            _guarded("stop: judging the probes the sensors hold", self._release_held)
            _guarded(
                "stop: reporting the scans still open",
                lambda: self._report(self._engine.tick(time.monotonic(), stopping=True)),
            )
            _guarded(
                "stop: saying the summaries dropped",
                lambda: self._say_summaries_dropped(stopping=True),
            )
        # Queued mail is sent now (or counted as not sent), so the last status counts it.
        _guarded("stop: sending the queued mail", self._alerts.stop_mail)
        if self._running:  # a start that failed must not overwrite the last good status
            self._save_snapshot()
        _guarded("stop: closing the sensors", self._stop_sensors)
        _guarded("stop: stopping the response policy", self._policy.stop)
        if server is not None:
            # What the worker finished before it stopped, then the socket goes.
            _guarded("stop: answering the control clients", server.send_ready)
            _guarded("stop: closing the control socket", server.close)
        if self._stopped_by:  # last, after the summaries and unblocks, as PortSentry's
            _guarded(
                "stop: saying the shutdown line", lambda: self._alerts.stopping(self._stopped_by)
            )
        _guarded("stop: closing the alert outputs", self._alerts.close)
        _guarded("stop: closing the selector", self._selector.close)
        _guarded("stop: letting go of the files claimed", self._claims.close)

    def _turn(self, wake_read: int) -> None:
        for key, _ in self._selector.select(self._wait_s()):
            sensor = key.data
            if sensor is None:
                _drain(wake_read)
                continue
            if isinstance(sensor, control.ControlServer):
                sensor.on_readable(key.fd)
                continue
            for probe in sensor.read(key.fd):
                self._feed(probe)
        now = time.monotonic()
        self._release_held(now)
        self._report(self._engine.tick(now))
        self._say_summaries_dropped()
        self._say_table_full(now)
        self._policy.tick(now)
        self._alerts.tick(now)
        if self._control is not None:
            self._control.send_ready()  # and drop clients that waited too long
        if now >= self._next_refresh:
            self._refresh()
            self._say_drops(now)
            self._next_refresh = now + limits.REFRESH_S
        if self._audit is not None and self._audit.results:
            self._report_audit(self._audit.results.popleft())
        if self._metrics is not None and now >= self._next_publish:
            self._publish_metrics()
            self._next_publish = now + PUBLISH_S
        if now >= self._next_snapshot:
            self._save_snapshot()
            self._next_snapshot = now + SNAPSHOT_S

    def _say_alive(self) -> None:
        """WATCHDOG=1 to systemd (every half of WatchdogSec), after a turn that did not fail
        on a bug: a loop whose every turn fails is stopped by LoopErrors, not the watchdog."""
        now = time.monotonic()
        if self._watchdog_s and now >= self._next_watchdog:
            service.notify("WATCHDOG=1")
            self._next_watchdog = now + self._watchdog_s / 2

    def _survived(self, step: Callable[..., None], *args: int) -> bool:
        """Run one step of the loop; False when it raised on a bug, which ends the turn, not
        the daemon (LoopErrors). Running out of descriptors is said as such, and is no bug:
        the turn was cut short, but the loop is alive (True)."""
        try:
            step(*args)
        except Exception as error:  # noqa: BLE001 - attacker data must never stop the loop
            if isinstance(error, OSError) and error.errno in OUT_OF_DESCRIPTORS:
                self._out_of_descriptors(error)
                return True
            self._loop_errors.failed(error, time.monotonic())
            time.sleep(TICK_S / 10)  # no spinning on what fails at once again
            return False
        return True

    def _say_summaries_dropped(self, stopping: bool = False) -> None:
        """Summaries the engine had to drop (a flood of sources): counted, and said on every
        alert path at most once a second (at stop, whatever is left)."""
        dropped = self._engine.take_summaries_dropped()
        self._summaries_dropped += dropped
        self._summaries_dropped_total += dropped
        if self._summaries_dropped and (stopping or self._say_now("summaries", every_s=1.0)):
            self._alerts.summaries_dropped(self._summaries_dropped)
            self._summaries_dropped = 0

    def _wait_s(self) -> float:
        """How long the loop may sleep: TICK_S, less while summaries wait for their turn
        (limits.SUMMARIES_TURN_S) or a sensor holds a probe (until its release)."""
        longest = limits.SUMMARIES_TURN_S if self._engine.summaries_waiting else TICK_S
        times = [at for at in (s.next_release() for s in self._sensors) if at is not None]
        return max(0.0, min([longest, *(at - time.monotonic() for at in times)]))

    def _say_table_full(self, now: float) -> None:
        """Once per episode of evictions from the full source table: again only after
        limits.SOURCES_FULL_QUIET_S without one."""
        if self._evictions.begins(self._engine.evicted, now):
            log.warning(
                "source table full (%d sources), evicting those seen least recently, "
                "stale sources first, then those with a single probe, then those "
                "with the fewest probes (a flood of spoofed sources?)",
                len(self._engine),
            )

    def _say_drops(self, now: float) -> None:
        """Once per episode of packets the kernel dropped for the sensors (their receive
        buffers were full): the probes among them were not seen."""
        grown = self._drops.begins(self._dropped(), now)
        if grown:
            log.warning(
                "sensors fall behind: the kernel dropped %d packets for them (receive "
                "buffers full: a flood?); probes among them are not seen, so a scan "
                "inside the flood may go unnoticed until it slows",
                grown,
            )

    def _dropped(self) -> int:
        return self._packets_dropped + sum(s.packets_dropped() for s in self._sensors)

    def _out_of_descriptors(self, error: OSError) -> None:
        """No file descriptor left (the open-files limit, or the system's): say so once a
        minute, go on with what is open, and keep the loop from spinning on a connection it
        cannot accept."""
        if self._say_now("descriptors"):
            log.error(
                "out of file descriptors (%s): this turn's work was cut short; raise "
                "LimitNOFILE= or watch fewer ports in classic mode",
                error.strerror,
            )
        time.sleep(TICK_S / 10)

    def _say_now(self, what: str, every_s: float = 60.0) -> bool:
        """True at most once every `every_s` for each `what`: for what repeats every turn."""
        now = time.monotonic()
        if now < self._quiet_until.get(what, 0.0):
            return False
        self._quiet_until[what] = now + every_s
        return True

    def _refresh(self) -> None:
        """Follow the live system: local addresses and which ports have a service."""
        old_addresses = self._host.addresses
        try:
            self._host.refresh()
            for sensor in self._sensors:
                sensor.refresh()
            self._policy.refresh()
        except OSError as error:  # out of descriptors, a netlink answer that never came
            if self._say_now("refresh"):
                log.warning(
                    "refresh failed (%s); the last view of addresses and ports stays",
                    error.strerror or error,
                )
            return
        if self._host.addresses != old_addresses:
            self._engine.reconfigure(self._engine_config())

    def _engine_config(self) -> EngineConfig:
        ignore = self.settings.ignore_list(self._host.addresses)
        return engine_config(self.settings, ignore, self._late_reply_ports)

    def _ports_for_late_replies(self) -> tuple[frozenset[int], str | None]:
        ports, warning = late_reply_ports(self.settings)
        if warning:
            log.warning("%s", warning)
        return ports, warning

    def _feed(self, probe: Probe) -> None:
        now = time.monotonic()
        if self._alerts.logs_probes and probe.tripwire and not self._engine.ignores(probe):
            self._alerts.probe(probe, now)  # every probe, before the threshold
        self._report(self._engine.feed(probe, now))

    def _report(self, verdicts: list[Verdict]) -> None:
        self._verdicts += len(verdicts)
        for verdict in verdicts:
            if verdict.kind == "scan" and verdict.first:
                self._scans += 1
            elif verdict.kind == "os-probe":
                self._os_probes += 1
            now = time.monotonic()
            with self._alerts.holding_lines():  # the policy's lines after the verdict's
                self._policy.on_verdict(verdict, now)  # the block first, then the words
                summary = verdict.kind in ("scan-summary", "os-summary")
                action = self._policy.describe(verdict) if summary else ""
                self._alerts.verdict(verdict, now, action)

    def _start_audit(self) -> None:
        if self.settings.audit_interval > 0:
            self._audit = PeriodicAudit(self.settings)
            self._audit.start()

    def _report_audit(self, outcome: Outcome) -> None:
        self._audit_reports.report(outcome, state_path(self.settings))

    def _counters(self) -> dict[str, int]:
        """The daemon's counters (the alert paths count for themselves: Alerts.delivered)."""
        return {
            "start_time": int(self._started),
            "packets_read": self._packets_read + sum(s.packets_read for s in self._sensors),
            "packets_dropped": self._dropped(),
            "probes": self._engine.probes,
            "scans": self._scans,
            "os_probes": self._os_probes,
            "blocks": self._policy.blocks_made,
            "blocks_active": self._policy.blocks_active,
            "sources_tracked": len(self._engine),
            "sources_evicted": self._engine.evicted,
            "summaries_dropped": self._summaries_dropped_total,
            "audit_findings": self._audit_reports.findings,
            "audit_last_run": int(self._audit_reports.last_run),
            "audit_error": self._audit_reports.error,
            "loop_errors": self._loop_errors.total,
        }

    def _publish_metrics(self) -> None:
        if self._metrics is not None:
            self._metrics.publish(self._counters(), self._alerts.delivered())

    def _status(self) -> dict[str, Any]:
        return status.collect(
            started=self._started,
            settings=self.settings,
            sensors=self._sensors,
            addresses=self._host.addresses,
            engine=self._engine,
            counters=self._counters(),
            alerts=self._alerts.delivered(),
            store=self._policy.store,
            blocked=self._policy.blocked_addresses(),
            audit=self._audit_reports.last,
        )

    def _command(self, request: dict[str, Any]) -> "dict[str, Any] | Future[dict[str, Any]]":
        """A request on the control socket."""
        command = request["command"]
        if command == "status":
            return self._status()
        if command in ("unblock", "reapply"):
            return self._policy.on_request(request)
        return {"error": f"unknown command {one_line(command)}"}

    def _save_snapshot(self) -> None:
        _guarded(
            "saving the status snapshot",
            lambda: self._policy.store.save_snapshot("status", time.time(), self._status()),
        )

    def _start_sensors(self, sensors: list[Sensor]) -> None:
        """Watch with `sensors` (made from self.settings), and say what each watches."""
        self._sensors = sensors
        for sensor in self._sensors:
            for fd in sensor.fds:
                self._selector.register(fd, selectors.EVENT_READ, sensor)
            ports = sorted(sensor.watched)
            shown = ",".join(map(str, ports[:20])) + (",..." if len(ports) > 20 else "")
            if not ports and sensor.mode not in CLASSIC_MODES:  # those said `in use`
                log.warning(
                    "%s: no %s port to watch now: a service has each of them (a port becomes "
                    "a tripwire when its service stops)",
                    sensor.mode,
                    sensor.proto.value,
                )
                continue
            log.info(
                "%s: watching %s: %s",
                sensor.mode,
                counted(len(ports), f"{sensor.proto.value} port"),
                shown,
            )
        self._warn_of_dropping_chains()

    def _warn_of_dropping_chains(self) -> None:
        """A packet that an input chain drops never reaches a sensor (raw sockets get it after
        the input hook, and a dropped SYN completes no connection): a default-drop firewall
        leaves them blind to every port it does not open. Said at start and reload."""
        if not self._sensors:
            return
        for chain in input_filter_chains(frozenset({("inet", self.settings.nft_table)})):
            if chain.closed:
                log.warning(
                    "%s drops what it does not accept before the sensors see it: probes "
                    "to the ports it drops are not reported (it stops them itself)",
                    chain,
                )

    def _release_held(self, now: float = math.inf) -> None:
        """The probes the sensors hold (RawSensor.release) whose time has come by `now`; all of
        them by default, before the sensors go."""
        for sensor in self._sensors:
            for probe in sensor.release(now):
                self._feed(probe)

    def _stop_sensors(self) -> None:
        for sensor in self._sensors:
            for fd in sensor.fds:
                self._selector.unregister(fd)
            self._packets_dropped += sensor.packets_dropped()
            sensor.close()
            self._packets_read += sensor.packets_read
        self._sensors = []

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGHUP:
                self._reload()
            elif signum in IGNORED_SIGNALS:
                log.info("%s ignored (SIGHUP reloads, SIGTERM stops)", signal.Signals(signum).name)
            else:
                name = signal.Signals(signum).name
                log.info("stopping on %s", name)
                self._stopped_by = name
                service.notify("STOPPING=1")
                self._stop_requested = True

    def _reload(self) -> None:
        """SIGHUP. A refused reload (a broken file, a busy METRICS_LISTEN) leaves the running
        configuration in force; any other exception is a bug: logged with its traceback, and
        the daemon goes on with what of the new configuration was in force by then. systemd
        hears READY=1 either way (it would wait for it until its reload timed out)."""
        service.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            outcome = self._reloaded()
        except Exception as error:  # noqa: BLE001 - a bug in a reload must not end the daemon
            self._claims.keep_only(self.settings)
            outcome = f"reload failed: {one_line(f'{type(error).__name__}: {error}')}"
            log.error(
                "%s (a bug: please report it with this traceback); the new configuration may "
                "be in force in part",
                outcome,
                exc_info=True,
            )
            self._alerts.reload_failed(outcome)
        service.notify(f"READY=1\nSTATUS={outcome}")

    def _reloaded(self) -> str:
        """The reload itself; what STATUS= says of it."""
        warnings: list[str] = []  # also to syslog: an administrator may read only that
        # A new metrics page is closed unless the reload gets as far as taking it into use.
        with contextlib.ExitStack() as unused:
            try:
                fresh = self._fresh_settings(warnings)
                metrics = self._metrics
                if fresh.metrics_listen != self.settings.metrics_listen:
                    # The new address first: the page keeps working when it cannot be bound.
                    metrics = _listen_metrics(fresh, self.settings.metrics_listen)
                    if metrics is not None:
                        unused.callback(metrics.close)
                self._policy.claim_table(fresh)  # blocking with nftables from now on: may refuse
                self._claims.claim(fresh)  # a new BLOCKED_FILE or EVENT_LOG: may refuse
                self._alerts.reconfigure(fresh)  # opens the new outputs first: may refuse
            except (ConfigError, OSError) as error:
                self._claims.keep_only(self.settings)
                log.error("reload refused, old configuration stays in force: %s", error)
                self._alerts.reopen()
                self._alerts.reload_refused(str(error))
                return f"reload refused: {error}"
            self._take(fresh, warnings)
            if metrics is not self._metrics:
                unused.pop_all()
                if self._metrics is not None:
                    self._metrics.close()
                self._metrics = metrics
                self._publish_metrics()
        if self._audit is None:
            self._start_audit()
        elif self.settings.audit_interval > 0:
            self._audit.reconfigure(self.settings)
        else:
            self._audit.stop(wait=False)
            self._audit = None
        log.info("configuration reloaded from %s", fresh.source)
        self._alerts.reload_warnings(warnings)
        self._alerts.active(self._modes(), reloaded=True)
        # It replaces a "reload refused" that `systemctl status` would keep showing.
        return f"reloaded; {self._modes()}"

    def _fresh_settings(self, warnings: list[str]) -> Settings:
        """The configuration file read again, for a reload. Raises ConfigError (the reload is
        refused) for a file with errors or a new STATE_DIR."""
        fresh = load_settings(self._config_path, self._cli_modes)
        if fresh.state_dir != self.settings.state_dir:
            # Refused, not kept: the file's other paths (EVENT_LOG, HISTORY_FILE, ...) may
            # follow the new STATE_DIR, which would split the state in two folders.
            raise error_at(
                fresh.source,
                "STATE_DIR",
                "changes only at a restart (the running "
                f"daemon's state is in {self.settings.state_dir})",
            )
        if fresh.nft_table != self.settings.nft_table:
            warnings.append(
                f"NFT_TABLE changes only at restart; table inet "
                f"{self.settings.nft_table} stays in use"
            )
            log.warning("reload: %s", warnings[-1])
            fresh = dataclasses.replace(fresh, nft_table=self.settings.nft_table)
        return fresh

    def _take(self, fresh: Settings, warnings: list[str]) -> None:
        """Settings from a reload into force: the sensors first, which may fall back to the
        old modes (_replace_sensors), so that what the engine and the policy are told is what
        the sensors watch."""
        for warning in fresh.warnings:
            log.warning("%s", warning)
        warnings[:0] = fresh.warnings
        old = self.settings
        self.settings = fresh
        self._claims.keep_only(fresh)
        if sensor_inputs(fresh) == sensor_inputs(old):
            # Kept: new sockets would lose what waits in the old ones and what comes between
            # (a SIGHUP from logrotate at every rotation of EVENT_LOG).
            self._warn_of_dropping_chains()
        else:
            self._replace_sensors(old, warnings)
        self._late_reply_ports, late_warning = self._ports_for_late_replies()
        warnings += [late_warning] if late_warning else []
        self._engine.reconfigure(self._engine_config())
        self._policy.reconfigure(self.settings)

    def _replace_sensors(self, old: Settings, warnings: list[str]) -> None:
        """New sensors for a reload that changed what they watch; if they cannot be made (a
        stealth mode without CAP_NET_RAW, more classic ports than descriptors, a bug), the old
        modes and ports again, each protocol on its own. One whose old sensors fail too (rare:
        they worked until now) is watched by nothing, said as an error, and turned off in
        self.settings: the modes said (status, the reloaded line) are what is watched, and the
        next reload whose file names that protocol's mode builds it again. A failed fallback
        must not end the daemon from its SIGHUP handling."""
        self._release_held()
        self._stop_sensors()
        try:
            sensors = build_sensors(self.settings, self._host)
        except Exception as error:  # noqa: BLE001 - a bug too: the old sensors, rather than none
            # The fallback is made outside this block: the error's traceback holds the frames
            # of the failed build (closed by now; see build_sensors) until the block ends.
            why = failure(error, "the sensors for the new configuration")
        else:
            self._start_sensors(sensors)
            return
        warnings.append(
            f"sensors for the new configuration failed ({why}); keeping the old modes and ports"
        )
        log.error("reload: %s", warnings[-1])
        fallback = dataclasses.replace(
            self.settings,
            tcp_mode=old.tcp_mode,
            udp_mode=old.udp_mode,
            tcp_ports=old.tcp_ports,
            udp_ports=old.udp_ports,
        )
        sensors, failed = build_each(fallback, self._host)
        self.settings = fallback.with_modes(
            None if Proto.TCP in failed else fallback.tcp_mode,
            None if Proto.UDP in failed else fallback.udp_mode,
        )
        self._start_sensors(sensors)
        for proto, reason in failed.items():
            warnings.append(
                f"{proto.value}: the old sensors failed too ({reason}); no {proto.value} port "
                f"is watched ({proto.value} mode off) until a reload or restart whose sensors "
                "work"
            )
            log.error("reload: %s", warnings[-1])

    def _modes(self) -> str:
        s = self.settings
        tcp = s.tcp_mode.value if s.tcp_mode else "off"
        udp = s.udp_mode.value if s.udp_mode else "off"
        return f"tcp mode {tcp}, udp mode {udp}"

    def _announce_ready(self) -> None:
        s = self.settings
        config = self._config_path.absolute() if self._config_path else s.source
        log.info("ready: %s, config %s, state %s", self._modes(), config, s.state_dir)
        self._alerts.active(self._modes())
        service.notify(f"READY=1\nSTATUS=watching; {self._modes()}")
        if self._on_ready is not None:
            self._on_ready()


def _listen_metrics(
    settings: Settings, in_force: ListenAddress | None = None
) -> "MetricsServer | None":
    """The metrics page on METRICS_LISTEN (None when unset). An address that cannot be bound is
    a ConfigError naming METRICS_LISTEN: an administrator who configured the page expects it.
    `in_force`: where the page listens now (a reload binds the new address first)."""
    listen = settings.metrics_listen
    if listen is None:
        return None
    # Imported only when wanted: http.server brings ssl, about 7 MiB of memory.
    from portwarden.metrics import MetricsServer

    host, port = listen
    try:
        server = MetricsServer(host, port)
    except OSError as error:
        reason = f"cannot listen on {host} port {port}: {error.strerror or error}"
        if error.errno == errno.EADDRINUSE and in_force is not None and in_force[1] == port:
            reason += " (by the page itself, maybe: another address on its port takes a restart)"
        raise error_at(settings.source, "METRICS_LISTEN", reason) from None
    log.info("metrics: http://%s:%d/metrics", f"[{host}]" if ":" in host else host, port)
    return server


def _guarded(what: str, step: Callable[[], object]) -> None:
    """Run `step`; should it raise, log `what` failed, with the traceback, and go on: for a
    step that must not keep the ones after it from running (the stop's), nor stop the daemon
    (a status snapshot)."""
    try:
        step()
    except Exception:  # noqa: BLE001 - the steps after it matter more than this one
        log.exception("%s failed; going on", what)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
