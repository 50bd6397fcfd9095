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


def test_each_protocol_is_built_on_its_own(
    tmp_path: Path, ports: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    tcp, udp = ports
    settings = settings_of(
        tmp_path, f'TCP_MODE="tcp"\nTCP_PORTS="{tcp}"\nUDP_MODE="sudp"\nUDP_PORTS="{udp}"\n'
    )
    monkeypatch.setattr(build, "RawSensor", refused)
    sensors, failed = build_each(settings, HostView())
    try:
        assert [(s.proto, s.watched) for s in sensors] == [(Proto.TCP, frozenset({tcp}))]
        assert failed == {Proto.UDP: "[Errno 1] Operation not permitted"}
    finally:
        close_all(sensors)


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
        daemon._stop_sensors()
        daemon._policy.stop()
        daemon._alerts.close()
        daemon._selector.close()
        daemon._claims.close()
        daemon._lock.close()


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
    settings = settings_of(
        tmp_path, f'TCP_MODE="tcp"\nTCP_PORTS="{tcp}"\nUDP_MODE="udp"\nUDP_PORTS="{udp}"\n'
    )
    daemon = make_daemon(settings)
    daemon._start_sensors(build_sensors(daemon.settings, daemon._host))
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
    settings = settings_of(
        tmp_path, f'TCP_MODE="tcp"\nTCP_PORTS="{tcp}"\nUDP_MODE="udp"\nUDP_PORTS="{udp}"\n'
    )
    daemon = make_daemon(settings)
    daemon._start_sensors(build_sensors(daemon.settings, daemon._host))

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
        "watched until a reload or restart whose sensors work"
    )
    assert warnings[1:] == [last]
    assert [r.message for r in caplog.records if r.levelno == logging.ERROR][-1] == (
        f"reload: {last}"
    )
