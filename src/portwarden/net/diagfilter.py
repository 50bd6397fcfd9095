"""Filter programs for sock_diag (INET_DIAG_REQ_BYTECODE): the kernel runs one on each socket of
a dump and sends only those it accepts, so a caller that wants a few sockets among a local
user's flood of thousands neither receives nor parses the rest.

A program is a list of ops, each `code, yes, no` (u8, u8, u16) and its operand. The kernel starts
at the first op and goes `yes` bytes on when the op's test holds, `no` bytes on when it does not
(a jump, always taken); reaching the end exactly accepts the socket, jumping 4 bytes past it
rejects it. Jumps go forward only, and the kernel checks each lands on an op. Here a condition
is compiled so that it falls through when it holds and jumps to a given label when it does not,
as `ss` compiles its filters.

Layout from linux/inet_diag.h (struct inet_diag_bc_op, struct inet_diag_hostcond) and
inet_diag_bc_run() in net/ipv4/inet_diag.c.
"""

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from portwarden.net.addresses import IPAddress

_OP = struct.Struct("=BBH")  # code, yes, no
_HOSTCOND = struct.Struct("=BBxxi")  # family, prefix length, port (-1: any); the address follows
_JMP, _S_GE, _S_LE, _S_COND = 1, 2, 3, 7
_ANY_PORT = -1
_PROGRAM_BYTES_MAX = 0xFFFF - 8  # a netlink attribute's u16 length, less its header and a jump


class Match(NamedTuple):
    """One op's test: its code and operand."""

    code: int
    operand: bytes


@dataclass(frozen=True)
class AllOf:
    """Holds when every part holds (none: always)."""

    parts: Sequence["Condition"]


@dataclass(frozen=True)
class AnyOf:
    """Holds when a part holds (none: never)."""

    parts: Sequence["Condition"]


Condition = Match | AllOf | AnyOf


def port_at_least(port: int) -> Match:
    return Match(_S_GE, _OP.pack(0, 0, port))  # the operand is an op whose `no` is the port


def port_at_most(port: int) -> Match:
    return Match(_S_LE, _OP.pack(0, 0, port))


def port_is(port: int) -> AllOf:
    return AllOf((port_at_least(port), port_at_most(port)))


def port_is_not(port: int) -> AnyOf:
    """Kernels before 4.17 have no equality test, and none has a negation: below or above."""
    below = (port_at_most(port - 1),) if port > 0 else ()
    return AnyOf((*below, port_at_least(port + 1)) if port < 65535 else below)


def bound_to(address: IPAddress) -> Match:
    """A socket bound to exactly this address (the wildcard is 0.0.0.0 or ::). An IPv4 one
    matches an IPv6 socket bound to its IPv4-mapped form too (the kernel's own rule)."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    return Match(_S_COND, _HOSTCOND.pack(family, address.max_prefixlen, _ANY_PORT) + address.packed)


@dataclass(eq=False)
class _Label:
    offset: int = -1


@dataclass(frozen=True)
class _Op:
    code: int
    operand: bytes
    fail: _Label  # where it jumps when the test does not hold (a JMP: always)

    @property
    def size(self) -> int:
        return _OP.size + len(self.operand)


@dataclass
class _Program:
    items: list[_Op | _Label] = field(default_factory=list)

    def add(self, condition: Condition, fail: _Label) -> None:
        if isinstance(condition, Match):
            self.items.append(_Op(condition.code, condition.operand, fail))
        elif isinstance(condition, AllOf):
            for part in condition.parts:
                self.add(part, fail)
        elif not condition.parts:  # an empty AnyOf never holds
            self.items.append(_Op(_JMP, b"", fail))
        else:
            holds = _Label()
            for part in condition.parts[:-1]:
                next_part = _Label()
                self.add(part, next_part)
                self.items += [_Op(_JMP, b"", holds), next_part]
            self.add(condition.parts[-1], fail)
            self.items.append(holds)


def compile_filter(condition: Condition) -> bytes:
    """The program that accepts exactly the sockets for which `condition` holds."""
    reject = _Label()
    program = _Program()
    program.add(condition, reject)
    offset = 0
    for item in program.items:
        if isinstance(item, _Label):
            item.offset = offset
        else:
            offset += item.size
    if offset > _PROGRAM_BYTES_MAX:
        raise ValueError("a sock_diag filter longer than a netlink attribute holds")
    reject.offset = offset + 4
    code = bytearray()
    for item in program.items:
        if isinstance(item, _Op):
            code += _OP.pack(item.code, item.size, item.fail.offset - len(code)) + item.operand
    return bytes(code)
