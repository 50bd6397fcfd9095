"""Real captures from the lab (tests/data/captures, recorded by tests/lab/captures.py), replayed
through the raw sensors' classification and the engine, against the verdicts written beside
them; and the pcap reader on every link type and on damaged files."""

import contextlib
import io
import ipaddress
import os
import shlex
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portwarden import limits
from portwarden.cli import main
from portwarden.config import TcpMode, UdpMode, load_settings
from portwarden.net.pcap import PcapError, frames, read_frames
from portwarden.replay import replay, services, watched_ports

CAPTURES = Path(__file__).parent.parent / "data" / "captures"
MODES = {
    "-stcp -sudp": (TcpMode.STEALTH, UdpMode.STEALTH),
    "-atcp -audp": (TcpMode.ADVANCED, UdpMode.ADVANCED),
}


def summaries(output: str) -> list[str]:
    """`kind src proto ports=N type [patterns]` for each summary verdict line."""
    found = []
    for line in output.splitlines():
        fields = dict(item.split("=", 1) for item in shlex.split(line.removeprefix("attack ")))
        if fields["kind"].endswith("-summary"):
            patterns = f" [{fields['patterns']}]" if "patterns" in fields else ""
            found.append(
                f"{fields['kind']} {fields['src']} {fields['proto']} "
                f"ports={fields['ports']} {fields['type']}{patterns}"
            )
    return sorted(found)


@pytest.mark.parametrize("modes", MODES)
@pytest.mark.parametrize("name", sorted(p.stem for p in CAPTURES.glob("*.pcap")))
def test_a_real_capture_gives_the_verdicts_written_beside_it(name: str, modes: str) -> None:
    expected = sorted(
        line.partition(": ")[2]
        for line in (CAPTURES / f"{name}.expected").read_text().splitlines()
        if line.startswith(f"{modes}: ")
    )
    out = io.StringIO()
    replay(load_settings(None).with_modes(*MODES[modes]), CAPTURES / f"{name}.pcap", out)
    assert summaries(out.getvalue()) == expected


def test_without_the_answers_a_benign_client_of_a_watched_port_would_look_like_a_scan(
    tmp_path: Path,
) -> None:
    """The replay's SmartVerify: drop the target's replies from the capture and the clients'
    SYNs to 143/tcp and datagrams to 69/udp become probes."""
    keep = [f for f in frames(CAPTURES / "benign.pcap") if not _from_target(f.ip)]
    path = tmp_path / "questions.pcap"
    path.write_bytes(pcap(101, [f.ip for f in keep]))
    out = io.StringIO()
    replay(load_settings(None).with_modes(TcpMode.STEALTH, UdpMode.STEALTH), path, out)
    # One summary per source and protocol: the TCP and the UDP probes are two scans.
    assert summaries(out.getvalue()) == [
        "scan-summary 198.18.0.20 tcp ports=1 TCP SYN/Normal scan",
        "scan-summary 198.18.0.20 udp ports=1 UDP scan",
        "scan-summary 2001:db8::14 tcp ports=1 TCP SYN/Normal scan",
        "scan-summary 2001:db8::14 udp ports=1 UDP scan",
    ]


def _from_target(ip: bytes) -> bool:
    source = ip[12:16] if ip[0] >> 4 == 4 else ip[8:24]
    return source in (bytes([198, 18, 0, 1]), bytes.fromhex("20010db8" + "0" * 23 + "1"))


def pcap(link: int, packets: list[bytes], order: str = "<", magic: int = 0xA1B2C3D4) -> bytes:
    data = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, link)
    for number, packet in enumerate(packets):
        data += struct.pack(order + "IIII", 1_700_000_000 + number, 5, len(packet), len(packet))
        data += packet
    return data


IPV4 = bytes([0x45]) + bytes(19)
IPV6 = bytes([0x60]) + bytes(39)


@pytest.mark.parametrize(
    ("link", "frame"),
    [
        (1, bytes(12) + b"\x08\x00" + IPV4),  # Ethernet
        (1, bytes(12) + b"\x81\x00\x00\x05" + b"\x86\xdd" + IPV6),  # 802.1Q tag
        (101, IPV4),  # raw IP
        (113, bytes(14) + b"\x86\xdd" + IPV6),  # Linux cooked v1
        (276, b"\x08\x00" + bytes(18) + IPV4),  # Linux cooked v2
    ],
)
def test_every_link_type_gives_the_ip_packet(tmp_path: Path, link: int, frame: bytes) -> None:
    for order in "<>":
        path = tmp_path / f"{link}{order}.pcap"
        path.write_bytes(pcap(link, [frame, bytes(12) + b"\x08\x06" + bytes(28)], order))
        (only,) = list(frames(path))  # the ARP frame (Ethernet) or garbage is skipped
        assert only.ip[0] >> 4 in (4, 6) and only.time == pytest.approx(1_700_000_000.000005)


def test_nanosecond_captures_keep_their_time(tmp_path: Path) -> None:
    path = tmp_path / "ns.pcap"
    path.write_bytes(pcap(101, [IPV4], magic=0xA1B23C4D))
    assert next(frames(path)).time == pytest.approx(1_700_000_000.000000005)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "too short for a pcap file (0 bytes)"),
        (b"\x0a\x0d\x0d\x0a" + bytes(28), "pcapng is not read; convert it: tcpdump -r"),
        (b"GIF89a" + bytes(30), "not a pcap file (magic 47494638)"),
        (pcap(105, []), "link type 105 is not read"),
        (pcap(101, [IPV4])[:-3], "truncated record at byte 24"),
        (pcap(101, [IPV4])[:30], "truncated record header at byte 24"),
        (pcap(101, []) + struct.pack("<IIII", 0, 0, 10**9, 10**9), "record of 1000000000 bytes"),
    ],
)
def test_damaged_files_give_one_line_naming_file_and_place(
    tmp_path: Path, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(PcapError, match=r"^.*bad\.pcap: .*") as error:
        list(frames(path))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert main(["replay", str(path), "-stcp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"portwarden: error: {error.value}"


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(link=st.sampled_from([1, 101, 113, 276]), frames_=st.lists(st.binary(max_size=80)))
def test_any_frames_replay_without_error(tmp_path: Path, link: int, frames_: list[bytes]) -> None:
    path = tmp_path / "any.pcap"
    path.write_bytes(pcap(link, frames_))
    counts = replay(
        load_settings(None).with_modes(TcpMode.ADVANCED, UdpMode.ADVANCED), path, io.StringIO()
    )
    assert counts["packets"] <= len(frames_)


@given(st.binary(max_size=200))
def test_any_file_reads_or_gives_a_pcap_error(content: bytes) -> None:
    with contextlib.suppress(PcapError):
        list(read_frames(io.BytesIO(content), "x.pcap"))


def udp4(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x") -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    addresses = ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
    return struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0) + addresses + udp


def replayed(path: Path, hosts: frozenset | None = None) -> list[str]:
    out = io.StringIO()
    settings = load_settings(None).with_modes(TcpMode.ADVANCED, UdpMode.ADVANCED)
    replay(settings, path, out, hosts)
    return summaries(out.getvalue())


def test_broadcast_and_multicast_are_not_probes_and_hosts_narrow_it(tmp_path: Path) -> None:
    path = tmp_path / "lan.pcap"
    path.write_bytes(
        pcap(
            101,
            [
                udp4("198.18.0.30", "255.255.255.255", 67, 68),  # a DHCP server
                udp4("198.18.0.31", "224.0.0.251", 5353, 123),  # multicast
                udp4("198.18.0.11", "198.18.0.1", 40000, 161),  # a probe
                udp4("198.18.0.12", "198.18.0.2", 40000, 161),  # a probe of another host
            ],
        )
    )
    assert [line.split()[1] for line in replayed(path)] == ["198.18.0.11", "198.18.0.12"]
    only = frozenset({ipaddress.ip_address("198.18.0.1")})
    assert [line.split()[1] for line in replayed(path, only)] == ["198.18.0.11"]


def test_a_truncated_capture_reports_what_came_before_the_damage(tmp_path: Path) -> None:
    whole = (CAPTURES / "nmap-syn.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(whole[:3000])
    out = io.StringIO()
    with pytest.raises(PcapError, match="truncated record"):
        replay(load_settings(None).with_modes(TcpMode.ADVANCED, None), path, out)
    assert summaries(out.getvalue())[0].startswith("scan-summary 198.18.0.11 tcp ports=")


def test_a_pipe_is_refused_with_the_way_out(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PcapError, match="not a regular file; .* save it to a file first"):
        replay(load_settings(None), fifo, io.StringIO())


def test_answering_services_remembered_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(limits, "REPLAY_SERVICES_MAX", 3)
    path = tmp_path / "flood.pcap"
    path.write_bytes(pcap(101, [udp4(f"198.18.1.{n}", "198.18.0.1", 53, 40000) for n in range(9)]))
    watched = watched_ports(load_settings(None).with_modes(None, UdpMode.ADVANCED))
    assert len(services(path, watched)) == 3
    assert "over 3 answering services" in caplog.text
    # Only watched ports: answers from 40000 (above ADVANCED_PORTS_UDP) are not kept at all.
    path.write_bytes(pcap(101, [udp4("198.18.1.1", "198.18.0.1", 40000, 53)]))
    assert services(path, watched) == set()
