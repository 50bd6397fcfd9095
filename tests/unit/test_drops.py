"""Drops the kernel counts for a socket whose receive queue is full, and the once-per-episode
rule by which the daemon says so."""

import socket

from portwarden.episode import Episode
from portwarden.net.drops import dropped


def test_a_full_receive_queue_counts_the_datagrams_dropped() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel's minimum
        receiver.bind(("127.0.0.1", 0))
        assert dropped([receiver]) == 0
        for _ in range(500):
            sender.sendto(b"x" * 100, receiver.getsockname())
        received = 0
        receiver.setblocking(False)
        try:
            while receiver.recv(200):
                received += 1
        except BlockingIOError:
            pass
        assert 0 < received < 500
        assert dropped([receiver]) == 500 - received


def test_a_closed_socket_counts_nothing() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.close()
    assert dropped([sock]) == 0


def test_an_episode_is_said_when_it_begins_and_again_only_after_a_quiet_spell() -> None:
    episode = Episode(quiet_s=60)
    assert episode.begins(0, now=0) == 0  # nothing yet
    assert episode.begins(100, now=1) == 100
    assert episode.begins(150, now=30) == 0  # the same episode
    assert episode.begins(150, now=200) == 0  # no growth
    assert episode.begins(170, now=40 + 60) == 20  # 70 s after the last growth: a new one
