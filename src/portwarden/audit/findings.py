"""The audit's findings (samhain's four kinds) and the open ports they are about."""

from enum import Enum
from typing import Any, NamedTuple

from portwarden.audit.names import UNKNOWN
from portwarden.config.audit_policy import Rule
from portwarden.net.addresses import Proto
from portwarden.text import field_value, one_line


def label(service: str, guessed: bool) -> str:
    """The name as a report line shows it, samhain's way: one guessed from /etc/services (the
    port's usual service, which may not be what listens) is `maybe_<name>`; an RPC program's
    name, which the portmapper gave for that very port, and `unknown` are shown as they are."""
    return f"maybe_{service}" if guessed and service != UNKNOWN else service


def service_fields(services: tuple[str, ...], rpc_program: int | None) -> dict[str, Any]:
    """`service`, `services` and `rpc_program` for JSON: null and [] for a port with no name
    at all (the text's `unknown`), so no name is taken for a service called "unknown"."""
    if rpc_program is None and services == (UNKNOWN,):
        services = ()
    return {
        "service": services[0] if services else None,
        "services": list(services),
        "rpc_program": rpc_program,
    }


class Kind(Enum):
    MISSING = "ServiceMissing"  # a required port is not open
    NEW = "ServiceNew"  # an open port in no list
    RESTARTED = "ServiceRestarted"  # a required port reported missing is open again
    PORT_SWITCH = "ServicePortSwitch"  # an RPC service moved to another port
    PORTMAPPER = "PortmapperUnusable"  # the portmapper listens but gave no list: RPC unchecked
    INCOMPLETE = "AuditIncomplete"  # more sockets than AUDIT_SOCKETS_MAX: a protocol part-checked


def owner(program: str, pid: int | None, user: str) -> str:
    """`program=.. pid=.. user=..`; a local process names itself as it likes, so its name (and
    the user's) is quoted and escaped as one field (text.field_value)."""
    return f"program={field_value(program)} pid={pid or '-'} user={field_value(user)}"


class OpenPort(NamedTuple):
    """One open port on one audited address, with its names and owner."""

    interface: str
    device: str
    port: int
    proto: Proto
    # The names of the RPC programs root registered for it (nfs and nfs_acl share 2049), in the
    # order of `rpc_programs`; else its /etc/services name, else "unknown".
    services: tuple[str, ...]
    rpc_programs: tuple[int, ...]  # ascending; () when no RPC program names it
    program: str  # the owner's /proc/<pid>/comm, "?" when not found
    pid: int | None
    user: str  # the owning process's user; the socket's when no process was found
    rule: Rule

    def line(self) -> str:
        """`iface:port/proto (service) program=.. pid=.. user=.. policy=..`, one line."""
        service = label(",".join(self.services), not self.rpc_programs)
        where = one_line(f"{self.interface}:{self.port}/{self.proto.value} ({service})", 300)
        return f"{where} {owner(self.program, self.pid, self.user)} policy={self.rule.value}"

    def fields(self) -> dict[str, Any]:
        """`service` and `rpc_program` are the first of `services` and `rpc_programs` (one
        name and one number, as before several programs on one port were told apart)."""
        first = self.rpc_programs[0] if self.rpc_programs else None
        return {
            "interface": self.interface,
            "device": self.device,
            "port": self.port,
            "proto": self.proto.value,
            **service_fields(self.services, first),
            "rpc_programs": list(self.rpc_programs),
            "program": self.program,
            "pid": self.pid,
            "user": self.user,
            "policy": self.rule.value,
        }


class Finding(NamedTuple):
    kind: Kind
    severity: str  # a syslog severity name, alert to debug (config.values.SEVERITIES)
    interface: str  # an address, a device name, or "any" for a requirement on every interface
    port: int | None  # None: a required RPC service that is not registered at all
    proto: str
    service: str
    program: str = "-"
    pid: int | None = None
    user: str = "-"
    was_port: int | None = None  # ServicePortSwitch: the port it was on
    more_services: tuple[str, ...] = ()  # the other RPC programs on the port (nfs_acl by nfs)
    # The number of the RPC program `service` names; None: `service` is the port's name in
    # /etc/services (a guess), or "unknown"
    rpc_program: int | None = None
    reason: str | None = None  # PortmapperUnusable: why each transport failed
    # The device of the port (or of where a requirement applies); None when not one device
    device: str | None = None

    @property
    def services(self) -> tuple[str, ...]:
        return (self.service, *self.more_services)

    def line(self) -> str:
        """`Kind: iface:port/proto (service) program=.. pid=.. user=..`, always one line."""
        if self.kind is Kind.INCOMPLETE:
            why = field_value(self.reason or "")
            return f"{self.kind.value}: {self.interface}:*/{self.proto} reason={why}"
        where = f"{self.interface}:{self.service if self.port is None else self.port}"
        named = label(",".join(self.services), self.rpc_program is None)
        text = f"{self.kind.value}: {where}/{self.proto} ({named})"
        if self.was_port is not None:
            text += f", was {self.was_port}/{self.proto}"
        text = one_line(text, 300)
        if self.kind is not Kind.MISSING:
            text += f" {owner(self.program, self.pid, self.user)}"
        if self.reason is not None:
            text += f" reason={field_value(self.reason)}"
        return text

    def event(self) -> dict[str, Any]:
        """Stable fields for the JSON event log (the daemon adds "time"). A ServiceMissing
        has no owner: its `program` and `user` are null, as its `pid`."""
        owned = self.kind is not Kind.MISSING
        return {
            "event": "audit",
            "kind": self.kind.value,
            "severity": self.severity,
            "interface": self.interface,
            "device": self.device,
            "port": self.port,
            "proto": self.proto,
            **service_fields(self.services, self.rpc_program),
            "program": self.program if owned else None,
            "pid": self.pid,
            "user": self.user if owned else None,
            "was_port": self.was_port,
            "reason": self.reason,
        }
