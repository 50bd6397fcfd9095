"""What the previous audit saw, kept between checks (STATE_DIR/audit.json) so that a finding is
reported when things change, as samhain does: a new port once, a missing one once, then its
return. Version 1 did not keep whether a port was reported as unlisted: its ports are read as
allowed, so a port still unlisted is reported once more after the upgrade (never hidden)."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from portwarden.respond.files import replace_atomically
from portwarden.text import one_line

STATE_NAME = "audit.json"
_VERSION = 2
_READABLE = (1, 2)


class Seen(NamedTuple):
    """An open port that was reported (or allowed) at the last check."""

    interface: str
    port: int
    proto: str
    rpc_program: int | None
    unlisted: bool = False  # in no list of the policy then (reported as ServiceNew or a switch)


@dataclass(frozen=True)
class AuditState:
    seen: frozenset[Seen] = frozenset()
    missing: frozenset[str] = frozenset()  # required items reported missing, by their key

    def to_json(self) -> str:
        return json.dumps({"version": _VERSION,
                           "seen": sorted([list(s) for s in self.seen], key=str),
                           "missing": sorted(self.missing)}, indent=1) + "\n"  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> "AuditState":
        """Raises ValueError when the text is not a state this version wrote."""
        try:
            data = json.loads(text)
            if data["version"] not in _READABLE:
                raise ValueError(f"unknown version {one_line(str(data['version']))}")
            seen = frozenset(_seen(item) for item in data["seen"])
            missing = frozenset(data["missing"])
            if not all(isinstance(key, str) for key in missing):
                raise ValueError("bad missing list")
        except (KeyError, TypeError, AttributeError, RecursionError, json.JSONDecodeError) as error:
            raise ValueError(f"not an audit state ({type(error).__name__})") from None
        return cls(seen, missing)

    @classmethod
    def load(cls, path: Path) -> "tuple[AuditState | None, str | None]":
        """The saved state, or None (no file yet, or a corrupt one: then also a warning)."""
        try:
            return cls.from_json(path.read_text(encoding="utf-8")), None
        except FileNotFoundError:
            return None, None
        except (OSError, UnicodeDecodeError, ValueError) as error:
            return None, f"audit state {path} is unusable ({one_line(str(error))}); starting afresh"

    def save(self, path: Path) -> None:
        """Written atomically (never half a file), never through a symbolic link."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        replace_atomically(path, self.to_json())


def _seen(item: Any) -> Seen:
    interface, port, proto, program, *rest = item
    unlisted = rest[0] if rest else False
    if not (isinstance(interface, str) and isinstance(port, int) and proto in ("tcp", "udp")
            and (program is None or isinstance(program, int)) and isinstance(unlisted, bool)
            and len(rest) <= 1):  # fmt: skip
        raise ValueError("bad seen entry")
    return Seen(interface, port, proto, program, unlisted)
