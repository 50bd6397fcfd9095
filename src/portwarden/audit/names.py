"""Service names from /etc/services and RPC program names from /etc/rpc."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from portwarden.net.addresses import Proto

_PROGRAM_NUMBER = re.compile(r"RPC_(0|[1-9][0-9]{0,9})")  # as program_names() writes it
SERVICES = Path("/etc/services")
RPC = Path("/etc/rpc")
UNKNOWN = "unknown"


def parse_services(text: str) -> dict[tuple[int, Proto], str]:
    """`name port/proto [aliases] [# comment]` lines -> the first name of each port/proto."""
    found: dict[tuple[int, Proto], str] = {}
    for line in text.splitlines():
        words = line.partition("#")[0].split()
        if len(words) < 2:
            continue
        port, _, proto = words[1].partition("/")
        if port.isdigit() and int(port) <= 65535 and proto in ("tcp", "udp"):
            found.setdefault((int(port), Proto(proto)), words[0])
    return found


def parse_rpc(text: str) -> dict[int, tuple[str, ...]]:
    """`name number [aliases]` lines -> each program number's name and aliases."""
    found: dict[int, tuple[str, ...]] = {}
    for line in text.splitlines():
        words = line.partition("#")[0].split()
        if len(words) >= 2 and words[1].isdigit() and int(words[1]) < 2**32:
            found.setdefault(int(words[1]), (words[0], *words[2:]))
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class Names:
    """The two tables, read once per audit (a missing file just means no names)."""

    services: dict[tuple[int, Proto], str] = field(default_factory=dict)
    programs: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def read(cls, services: Path = SERVICES, rpc: Path = RPC) -> "Names":
        return cls(parse_services(_read(services)), parse_rpc(_read(rpc)))

    def service(self, port: int, proto: Proto) -> str:
        return self.services.get((port, proto), UNKNOWN)

    def program(self, number: int) -> str:
        """The program's name from /etc/rpc, else samhain's `RPC_<number>`."""
        names = self.programs.get(number)
        return names[0] if names else f"RPC_{number}"

    def why_never_matches(self, name: str, proto: Proto) -> str | None:
        """Why a policy item `name/proto` can never match an RPC program, if it cannot: a name
        /etc/rpc does not know (with the port when /etc/services knows the name), or an
        `RPC_...` that is not the `RPC_<number>` a program is named by."""
        if name.startswith("RPC_"):
            number = _PROGRAM_NUMBER.fullmatch(name)
            if number is None or int(number[1]) >= 2**32:
                return (
                    f"{name}/{proto.value} is no RPC_<number> (a program number, 0 to "
                    "4294967295, without leading zeros) and never matches"
                )
            return None
        if any(name in aliases for aliases in self.programs.values()):
            return None
        port = self.port_of(name, proto)
        hint = f"; for the service, write {port}/{proto.value}" if port else ""
        return f"{name}/{proto.value} is no RPC program in /etc/rpc and never matches{hint}"

    def port_of(self, name: str, proto: Proto) -> int | None:
        """The port /etc/services gives `name`, for a hint (samhain takes no service names:
        a port is written as its number)."""
        return next(
            (port for (port, p), known in self.services.items() if known == name and p is proto),
            None,
        )

    def program_number(self, name: str) -> int | None:
        """The number of the program a policy names (`mountd`, an alias, `RPC_100005`)."""
        number = _PROGRAM_NUMBER.fullmatch(name)
        if number is not None:
            return int(number[1])
        return next((n for n, aliases in self.programs.items() if name in aliases), None)

    def program_names(self, number: int) -> frozenset[str]:
        """Every name a policy may use for the program: name, aliases and `RPC_<number>`."""
        return frozenset((*self.programs.get(number, ()), f"RPC_{number}"))
