"""Sensors that fail half-made let go of what they took, and a reload whose new sensors fail
watches with the old ones again (review: the fallback found the old TCP ports still bound by the
failed build's classic sensor, "in use by a service", and watched none of them; a fallback that
failed too ended the daemon from its SIGHUP handling)."""

import errno
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portwarden.config import Settings, UdpMode, load_settings
from portwarden.daemon import Daemon
from portwarden.net.addresses import Proto
from portwarden.sensors import build, raw
from portwarden.sensors.build import build_each, build_sensors
from portwarden.sensors.hostview import HostView
from portwarden.sensors.listener import ListenerSensor
from portwarden.sensors.raw import RawSensor

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets take CAP_NET_RAW")


def free_port(kind: socket.SocketKind) -> int:
    """A port no socket of this kind has now (bound with no port, then closed)."""
    with socket.socket(socket.AF_INET6, kind) as sock:
        sock.bind(("::", 0))
        port: int = sock.getsockname()[1]
        return port


def can_listen(port: int) -> bool:
    """Whether a classic TCP sensor could bind `port` now (SO_REUSEADDR, as it binds)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("::", port))
            sock.listen()
        except OSError as error:
            assert error.errno == errno.EADDRINUSE
            return False
        return True


def refused(*_args: object, **_kwargs: object) -> Any:
    """What opening a raw socket without CAP_NET_RAW raises."""
    raise PermissionError(errno.EPERM, "Operation not permitted")


def bug(*_args: object, **_kwargs: object) -> Any:
    raise ValueError("bug while building")


def settings_of(folder: Path, text: str) -> Settings:
    conf = folder / "p.conf"
    conf.write_text(f'STATE_DIR="{folder}/state"\nSYSLOG_SOCKET=""\nAUDIT_INTERVAL="0"\n{text}')
    return load_settings(conf, None)


def close_all(sensors: list[build.Sensor]) -> None:
    for sensor in sensors:
        sensor.close()


@pytest.fixture
def ports() -> tuple[int, int]:
    """A free TCP port and a free UDP port, for classic sensors."""
    return free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)


def test_a_failed_build_lets_go_of_the_ports_it_bound(
    tmp_path: Path, ports: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    tcp, udp = ports
    settings = settings_of(
        tmp_path, f'TCP_MODE="tcp"\nTCP_PORTS="{tcp}"\nUDP_MODE="sudp"\nUDP_PORTS="{udp}"\n'
    )
    monkeypatch.setattr(build, "RawSensor", refused)
    with pytest.raises(PermissionError) as failed:
        build_sensors(settings, HostView())
    # The traceback (with the failed build's frames) is alive here, as in the daemon's except
    # block: the TCP sensor made before the failure must be closed all the same.
    assert failed.value.__traceback__ is not None
    assert can_listen(tcp)


@pytest.mark.parametrize(
    ("failure", "why"),
    [("refused", "[Errno 1] Operation not permitted"), ("bug", "ValueError: bug while building")],
)
def test_each_protocol_is_built_on_its_own(
    tmp_path: Path,
    ports: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
    why: str,
) -> None:
    """UDP's build fails (no CAP_NET_RAW, or a bug): TCP's sensor is kept, its port bound by
    it alone (review: the TCP sensors made before UDP's bug were lost, their port bound for
    good)."""
    tcp, udp = ports
    settings = settings_of(
        tmp_path, f'TCP_MODE="tcp"\nTCP_PORTS="{tcp}"\nUDP_MODE="sudp"\nUDP_PORTS="{udp}"\n'
    )
    monkeypatch.setattr(build, "RawSensor", refused if failure == "refused" else bug)
    sensors, failed = build_each(settings, HostView())
    try:
        assert [(s.proto, s.watched) for s in sensors] == [(Proto.TCP, frozenset({tcp}))]
        assert failed == {Proto.UDP: why}
    finally:
        close_all(sensors)
    assert can_listen(tcp)


@needs_root
@pytest.mark.parametrize("step", ["IPv6 receive buffer", "kernel filter"])
def test_a_raw_sensor_that_fails_half_made_closes_its_sockets(
    step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its IPv4 socket stayed open when a later step failed."""
    made: list[socket.socket] = []
    real_make_room = raw.make_room

    def make_room(sock: socket.socket) -> None:
        made.append(sock)
        if step == "IPv6 receive buffer" and sock.family == socket.AF_INET6:
            refused()
        real_make_room(sock)

    monkeypatch.setattr(raw, "make_room", make_room)
    if step == "kernel filter":
        monkeypatch.setattr(raw.bpf, "attach", refused)
    with pytest.raises(PermissionError):
        RawSensor(Proto.UDP, "sudp", frozenset({7}), HostView(), 0.0)
    assert [sock.family for sock in made] == [socket.AF_INET, socket.AF_INET6]
    assert [sock.fileno() for sock in made] == [-1, -1]  # closed


@pytest.fixture
def make_daemon() -> Iterator[Callable[[Settings], Daemon]]:
    """Daemons made here (not run), let go of at the end as their stop would."""
    made: list[Daemon] = []

    def make(settings: Settings) -> Daemon:
        made.append(Daemon(settings, Path(settings.source), None))
        return made[-1]

    yield make
    for daemon in made:
        if daemon._metrics is not None:
            daemon._metrics.close()
        daemon._stop_sensors()
        daemon._policy.stop()
        daemon._alerts.close()
        daemon._selector.close()
        daemon._claims.close()
        daemon._lock.close()


def classic_daemon(
    folder: Path, ports: tuple[int, int], make_daemon: Callable[[Settings], Daemon]
) -> Daemon:
    """A daemon watching `ports` (TCP, UDP) in the classic modes, its sensors started."""
    tcp, udp = ports
    text = f'TCP_MODE="tcp"\nTCP_PORTS="{tcp}"\nUDP_MODE="udp"\nUDP_PORTS="{udp}"\n'
    daemon = make_daemon(settings_of(folder, text))
    daemon._start_sensors(build_sensors(daemon.settings, daemon._host))
    return daemon


def reload_to_sudp(daemon: Daemon) -> list[str]:
    """A reload that turns UDP to the stealth mode: the sensors are replaced. Its warnings."""
    old = daemon.settings
    daemon.settings = old.with_modes(old.tcp_mode, UdpMode.STEALTH)
    warnings: list[str] = []
    daemon._replace_sensors(old, warnings)
    return warnings


def watched(daemon: Daemon) -> list[tuple[str, frozenset[int]]]:
    return [(sensor.mode, sensor.watched) for sensor in daemon._sensors]


def test_a_reload_whose_new_sensors_fail_watches_the_old_ports_again(
    tmp_path: Path,
    ports: tuple[int, int],
    make_daemon: Callable[[Settings], Daemon],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tcp, udp = ports
    daemon = classic_daemon(tmp_path, ports, make_daemon)
    monkeypatch.setattr(build, "RawSensor", refused)
    warnings = reload_to_sudp(daemon)
    assert watched(daemon) == [("tcp", frozenset({tcp})), ("udp", frozenset({udp}))]
    assert warnings == [
        "sensors for the new configuration failed ([Errno 1] Operation not permitted); "
        "keeping the old modes and ports"
    ]
    assert daemon.settings.udp_mode is UdpMode.CLASSIC
    assert "in use by a service" not in caplog.text


def test_a_reload_whose_old_sensors_fail_too_goes_on_with_what_works(
    tmp_path: Path,
    ports: tuple[int, int],
    make_daemon: Callable[[Settings], Daemon],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The old UDP sensor cannot be made again either (its port taken meanwhile by something
    that fails it): the daemon watches TCP, says loudly that nothing watches UDP, and lives."""
    tcp, udp = ports
    daemon = classic_daemon(tmp_path, ports, make_daemon)

    def tcp_only(proto: Proto, *args: Any) -> ListenerSensor:
        if proto is Proto.UDP:
            refused()
        return ListenerSensor(proto, *args)

    monkeypatch.setattr(build, "RawSensor", refused)
    monkeypatch.setattr(build, "ListenerSensor", tcp_only)
    with caplog.at_level(logging.ERROR, "portwarden"):
        warnings = reload_to_sudp(daemon)
    assert watched(daemon) == [("tcp", frozenset({tcp}))]
    last = (
        "udp: the old sensors failed too ([Errno 1] Operation not permitted); no udp port is "
        "watched (udp mode off) until a reload or restart whose sensors work"
    )
    assert warnings[1:] == [last]
    assert [r.message for r in caplog.records if r.levelno == logging.ERROR][-1] == (
        f"reload: {last}"
    )


def test_a_bug_in_the_new_sensors_falls_back_to_the_old_ones(
    tmp_path: Path,
    ports: tuple[int, int],
    make_daemon: Callable[[Settings], Daemon],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As when they cannot be made (review: the ValueError left the daemon with no sensor, its
    settings in the new mode, and systemd waiting for READY=1)."""
    tcp, udp = ports
    daemon = classic_daemon(tmp_path, ports, make_daemon)
    monkeypatch.setattr(build, "RawSensor", bug)
    with caplog.at_level(logging.ERROR, "portwarden"):
        warnings = reload_to_sudp(daemon)
    assert watched(daemon) == [("tcp", frozenset({tcp})), ("udp", frozenset({udp}))]
    assert daemon.settings.udp_mode is UdpMode.CLASSIC
    assert warnings == [
        "sensors for the new configuration failed (ValueError: bug while building); keeping "
        "the old modes and ports"
    ]
    logged = caplog.records[0]
    assert logged.getMessage() == (
        "building the sensors for the new configuration failed (a bug: please report it "
        "with this traceback)"
    )
    assert logged.exc_info is not None and logged.exc_info[0] is ValueError


def test_a_protocol_nothing_watches_after_a_reload_is_off_and_built_again_by_the_next(
    tmp_path: Path,
    ports: tuple[int, int],
    make_daemon: Callable[[Settings], Daemon],
    monkeypatch: pytest.MonkeyPatch,
    notes: list[str],
) -> None:
    """(review: the settings still said the old UDP mode, so reloading the old file, once the
    cause was gone, kept the sensors as they were: "reloaded", and no UDP port watched.)"""
    tcp, udp = ports
    text = f'TCP_MODE="tcp"\nTCP_PORTS="{tcp}"\nUDP_PORTS="{udp}"\n'
    daemon = make_daemon(settings_of(tmp_path, text + 'UDP_MODE="udp"\n'))
    daemon._start_sensors(build_sensors(daemon.settings, daemon._host))

    def tcp_only(proto: Proto, *args: Any) -> ListenerSensor:
        if proto is Proto.UDP:
            refused()
        return ListenerSensor(proto, *args)

    with monkeypatch.context() as failing:
        failing.setattr(build, "RawSensor", refused)
        failing.setattr(build, "ListenerSensor", tcp_only)
        settings_of(tmp_path, text + 'UDP_MODE="sudp"\n')
        daemon._reload()
    assert watched(daemon) == [("tcp", frozenset({tcp}))]
    assert daemon.settings.udp_mode is None
    assert notes[-1] == "READY=1\nSTATUS=reloaded; tcp mode tcp, udp mode off"
    settings_of(tmp_path, text + 'UDP_MODE="udp"\n')  # back to the file that worked
    daemon._reload()
    assert watched(daemon) == [("tcp", frozenset({tcp})), ("udp", frozenset({udp}))]
    assert notes[-1] == "READY=1\nSTATUS=reloaded; tcp mode tcp, udp mode udp"


@pytest.mark.parametrize("step", ["opening the new outputs", "reconfiguring the engine"])
def test_a_bug_in_a_reload_is_logged_and_said_to_systemd(
    step: str,
    tmp_path: Path,
    make_daemon: Callable[[Settings], Daemon],
    monkeypatch: pytest.MonkeyPatch,
    notes: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before the new configuration is taken and after: the metrics page bound for it is let
    go of, the daemon goes on, and systemd hears READY=1 (review: the exception left the
    reload with the new page bound for good and systemd in RELOADING=1)."""
    old_port, new_port = (free_port(socket.SOCK_STREAM) for _ in range(2))
    daemon = make_daemon(settings_of(tmp_path, f'METRICS_LISTEN="127.0.0.1:{old_port}"\n'))
    page = daemon._metrics
    target = daemon._alerts if step == "opening the new outputs" else daemon._engine
    monkeypatch.setattr(target, "reconfigure", bug)
    alerted: list[str] = []
    monkeypatch.setattr(daemon._alerts, "reload_failed", alerted.append)  # to syslog
    settings_of(tmp_path, f'METRICS_LISTEN="127.0.0.1:{new_port}"\n')
    with caplog.at_level(logging.ERROR, "portwarden"):
        daemon._reload()
    assert notes[-1] == "READY=1\nSTATUS=reload failed: ValueError: bug while building"
    assert alerted == ["reload failed: ValueError: bug while building"]
    assert caplog.records[-1].getMessage() == (
        "reload failed: ValueError: bug while building (a bug: please report it with this "
        "traceback); the new configuration may be in force in part"
    )
    assert caplog.records[-1].exc_info is not None
    assert daemon._metrics is page
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", new_port))  # the new page is closed
