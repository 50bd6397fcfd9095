"""Classic BPF filters for the raw sensors, so that only possible probes reach Python.

TCP: drop non-first fragments and anything with ACK or RST (established traffic, replies);
pass a plain SYN only to a tripwire port; pass every other flag combination (FIN, NULL, XMAS,
odd flags, reserved bits) to any port, since OS-fingerprinting probes go to open ports too.
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
from portwarden.detect.probe import NMAP_U1_LEN
from portwarden.net.packet import ACK, RST, SYN

SO_ATTACH_FILTER = 26

# opcodes
_LDB_ABS, _LDH_ABS, _LDB_IND, _LDH_IND = 0x30, 0x28, 0x50, 0x48
_LDXB_MSH = 0xB1
_JEQ_K, _JGT_K, _JGE_K, _JSET_K = 0x15, 0x25, 0x35, 0x45
_RET_K = 0x06

_INSN = struct.Struct("HBBI")
_UDP_HEADER = 8

Insn = tuple[int, int, int, int]


def _ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if ranges and ranges[-1][1] == port - 1:
            ranges[-1] = (ranges[-1][0], port)
        else:
            ranges.append((port, port))
    return ranges


def _port_test(load_dport: Insn, ports: Iterable[int]) -> list[Insn]:
    """Load the destination port; accept if it is in `ports`; otherwise drop."""
    accept: Insn = (_RET_K, 0, 0, limits.CAPTURE_BYTES)
    ranges = _ranges(ports)
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
        flags, reserved, dport = (_LDB_IND, 0, 0, 13), (_LDB_IND, 0, 0, 12), (_LDH_IND, 0, 0, 2)
    else:
        head = []
        flags, reserved, dport = (_LDB_ABS, 0, 0, 13), (_LDB_ABS, 0, 0, 12), (_LDH_ABS, 0, 0, 2)
    body = [
        flags,
        (_JSET_K, 0, 1, ACK | RST),
        drop,
        (_JEQ_K, 1, 0, SYN),  # a plain SYN goes on to the reserved-bit and port tests
        accept,  # any other flag combination
        reserved,
        (_JSET_K, 0, 1, 0x0F),
        accept,  # reserved bits set (nmap's ECN probe, queso)
    ]
    return head + body + _port_test(dport, ports)


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
    # Kept whole, not cut to CAPTURE_BYTES: an IPv6 raw socket delivers no IP header, so the
    # datagram's own size is the only check on the length its UDP header claims.
    whole: Insn = (_RET_K, 0, 0, 0xFFFF)
    u1 = [length, (_JEQ_K, 0, 1, _UDP_HEADER + NMAP_U1_LEN), whole]
    return head + u1 + _port_test(dport, ports)


def attach(sock: socket.socket, program: list[Insn]) -> None:
    """Replace the socket's filter atomically with `program`."""
    code = b"".join(_INSN.pack(*insn) for insn in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
