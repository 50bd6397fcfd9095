"""Classic BPF filters for the raw sensors, so that only possible probes reach Python.

TCP: drop non-first fragments and anything with ACK or RST (established traffic, replies)
unless it carries SYN with RST or FIN, which no TCP stack sends (detect.probe.
part_of_a_connection; SYN+ACK is dropped: it may be a late answer to this host's own connection),
or is ACK alone with the data offset and timestamp of nmap -O's T4 and T6 probes (to any port;
the first comparison, of the data offset and flags, already fails for a connection's segments);
pass a SYN (plain, or with ECE+CWR from a client negotiating ECN) only to a tripwire port,
unless it looks like an OS-fingerprinting probe: the window of one of nmap's SYN probes, nmap's
ECN probe, queso's; pass every other flag combination (FIN, NULL, XMAS, odd flags) to any port,
since OS-fingerprinting probes go to open ports too.
UDP: pass datagrams to tripwire ports, and to any port a datagram of the length of nmap's U1
OS probe (which goes to a closed port of nmap's choosing).

Conditional jumps in classic BPF reach at most 255 instructions, so each port range ends in
its own `ret` instead of jumping to a shared one.
"""

import ctypes
import socket
import struct
from collections.abc import Iterable

from portwarden import limits
from portwarden.net.nmap_probes import (
    NMAP_ECN_URGENT,
    NMAP_SYN_WINDOWS,
    NMAP_T_OPTIONS,
    NMAP_TSVAL,
    NMAP_U1_LEN,
)
from portwarden.net.packet import ACK, CWR, ECE, FIN, RST, SYN
from portwarden.text import port_spans

SO_ATTACH_FILTER = 26

# opcodes
_LDB_ABS, _LDH_ABS, _LDW_ABS, _LDB_IND, _LDH_IND, _LDW_IND = 0x30, 0x28, 0x20, 0x50, 0x48, 0x40
_LDXB_MSH = 0xB1
_JA, _JEQ_K, _JGT_K, _JGE_K, _JSET_K = 0x05, 0x15, 0x25, 0x35, 0x45
_RET_K = 0x06

_INSN = struct.Struct("HBBI")
_UDP_HEADER = 8
_TCP_HEADER = 20
# nmap's T4 and T6: the TCP header's bytes 12-13 (data offset, reserved bits, flags) and where
# their TSval sits, followed by TSecr 0.
_NMAP_ACK_HEAD = (_TCP_HEADER + len(NMAP_T_OPTIONS)) // 4 << 12 | ACK
_NMAP_TSVAL_AT = _TCP_HEADER + NMAP_T_OPTIONS.index(bytes((8, 10))) + 2

Insn = tuple[int, int, int, int]


def _port_test(load_dport: Insn, ports: Iterable[int], accept: Insn) -> list[Insn]:
    """Load the destination port; `accept` if it is in `ports`; otherwise drop."""
    ranges = port_spans(ports)
    if len(ranges) > limits.FILTER_RANGES_MAX:
        return [accept]  # too fragmented for the kernel: Python checks the port
    code = [load_dport]
    for low, high in ranges:
        if low == high:
            code += [(_JEQ_K, 0, 1, low), accept]
        else:
            code += [(_JGE_K, 0, 2, low), (_JGT_K, 1, 0, high), accept]
    return [*code, (_RET_K, 0, 0, 0)]


def tcp_filter(ports: Iterable[int], with_ip_header: bool) -> list[Insn]:
    """For a raw TCP socket; `with_ip_header` is True for IPv4 (the header comes first)."""
    ports = list(ports)
    drop: Insn = (_RET_K, 0, 0, 0)
    accept: Insn = (_RET_K, 0, 0, limits.CAPTURE_BYTES)
    if with_ip_header:
        head = [
            (_LDH_ABS, 0, 0, 6),
            (_JSET_K, 0, 1, 0x1FFF),  # non-first fragment
            drop,
            (_LDXB_MSH, 0, 0, 0),  # X = IPv4 header length
        ]
        load_b, load_h, load_w = _LDB_IND, _LDH_IND, _LDW_IND
    else:
        head = []
        load_b, load_h, load_w = _LDB_ABS, _LDH_ABS, _LDW_ABS
    windows = [(_JEQ_K, len(NMAP_SYN_WINDOWS) - i, 0, w) for i, w in enumerate(NMAP_SYN_WINDOWS)]
    # A plain SYN: to a tripwire, or with the window of one of nmap's SYN probes (any port).
    syn = [(load_h, 0, 0, 14), *windows, (_JA, 0, 0, 1), accept]
    # SYN+ECE+CWR: nmap's ECN probe (urgent pointer 0xF7F5) or queso's (no TCP options) go
    # anywhere; with options it is a client negotiating ECN: a plain SYN.
    ecn = [
        (load_h, 0, 0, 18),
        (_JEQ_K, 0, 1, NMAP_ECN_URGENT),
        accept,
        (load_b, 0, 0, 12),  # data offset, in the high four bits
        (_JGE_K, 1, 0, 6 << 4),
        accept,
    ]
    # ACK or RST without SYN: part of a connection, unless it is ACK alone with nmap's T options
    # (nmap -O's T4 and T6, any port; detect.probe.nmap_ack_probe checks the rest).
    nmap_ack = [
        (load_h, 0, 0, 12),
        (_JEQ_K, 0, 5, _NMAP_ACK_HEAD),
        (load_w, 0, 0, _NMAP_TSVAL_AT),
        (_JEQ_K, 0, 3, NMAP_TSVAL),
        (load_w, 0, 0, _NMAP_TSVAL_AT + 4),
        (_JEQ_K, 0, 1, 0),
        accept,
        drop,
    ]
    flags = [
        (load_b, 0, 0, 13),
        (_JSET_K, 0, 3 + len(nmap_ack), ACK | RST),
        (_JSET_K, 0, 2, SYN),
        (_JSET_K, 0, len(nmap_ack), RST | FIN),
        accept,  # SYN with RST or FIN: forged, to any port
        *nmap_ack,  # ends in the drop of SYN+ACK, which may be a late answer
        (_JEQ_K, len(ecn) + 2, 0, SYN),
        (_JEQ_K, 1, 0, SYN | ECE | CWR),
        accept,  # any other flag combination: FIN, NULL, XMAS, odd flags, nmap's T2 and T3
    ]
    return head + flags + ecn + syn + _port_test((load_h, 0, 0, 2), ports, accept)


def udp_filter(ports: Iterable[int], with_ip_header: bool) -> list[Insn]:
    if with_ip_header:
        head: list[Insn] = [
            (_LDH_ABS, 0, 0, 6),
            (_JSET_K, 0, 1, 0x1FFF),
            (_RET_K, 0, 0, 0),
            (_LDXB_MSH, 0, 0, 0),
        ]
        length, dport = (_LDH_IND, 0, 0, 4), (_LDH_IND, 0, 0, 2)
    else:
        head, length, dport = [], (_LDH_ABS, 0, 0, 4), (_LDH_ABS, 0, 0, 2)
    # Kept whole, not cut to CAPTURE_BYTES (the sensor still reads no more than that of it):
    # an IPv6 raw socket delivers no IP header, so the datagram's own size is the only check
    # on the length its UDP header claims.
    whole: Insn = (_RET_K, 0, 0, 0xFFFF)
    u1 = [length, (_JEQ_K, 0, 1, _UDP_HEADER + NMAP_U1_LEN), whole]
    return head + u1 + _port_test(dport, ports, whole)


def attach(sock: socket.socket, program: list[Insn]) -> None:
    """Replace the socket's filter atomically with `program`."""
    code = b"".join(_INSN.pack(*insn) for insn in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
