"""What the previous audit saw, kept between checks (STATE_DIR/audit.json) so that a finding is
reported when things change, as samhain does: a new port once, a missing one once, then its
return.

Versions 1 and 2 are read too. Version 1 did not keep whether a port was unlisted: that is
unknown (None), read as "as it is now", so an upgrade reports nothing new for a port still
open. Versions 1 and 2 kept one RPC program per port. An older portwarden cannot read version
3: after a downgrade it warns and starts afresh."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from portwarden.fileedit import replace_atomically
from portwarden.text import one_line

STATE_NAME = "audit.json"
_VERSION = 3
_READABLE = (1, 2, 3)
_RPC_PROGRAM_MAX = 2**32 - 1  # an unsigned 32-bit number in ONC RPC


class Seen(NamedTuple):
    """An open port that was reported (or allowed) at the last check."""

    interface: str
    port: int
    proto: str
    rpc_programs: tuple[int, ...]  # the RPC programs root registered for it then, ascending
    # In no list of the policy then (reported as ServiceNew or a switch); None: not known (a
    # version 1 state), taken to be as it is now.
    unlisted: bool | None = False


@dataclass(frozen=True)
class AuditState:
    seen: frozenset[Seen] = frozenset()
    missing: frozenset[str] = frozenset()  # required items reported missing, by their key

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "version": _VERSION,
                    "seen": sorted(
                        [[*s[:3], list(s.rpc_programs), s.unlisted] for s in self.seen], key=str
                    ),
                    "missing": sorted(self.missing),
                },
                indent=1,
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str) -> "AuditState":
        """Raises ValueError when the text is not a state this version wrote."""
        try:
            data = json.loads(text)
            version = data["version"]
            if type(version) is not int or version not in _READABLE:  # `true` is no 1
                raise ValueError(f"unknown version {one_line(json.dumps(version))}")
            if not (isinstance(data["seen"], list) and isinstance(data["missing"], list)):
                raise ValueError("bad seen or missing list")  # a string would be its letters
            seen = frozenset(_seen(item, version) for item in data["seen"])
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
        """Written atomically (never half a file), never through a symbolic link; for root's
        eyes only, like the rest of STATE_DIR (the ports and programs of this host)."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        replace_atomically(path, self.to_json(), private=True)


def _whole(value: Any, low: int, high: int) -> bool:
    """A JSON whole number from `low` to `high`; `true` is none (in Python, bool is an int)."""
    return type(value) is int and low <= value <= high


def _seen(item: Any, version: int) -> Seen:
    if not isinstance(item, list):
        raise ValueError("bad seen entry")
    interface, port, proto, programs, *rest = item
    if version < 3:  # one program or null
        programs = [] if programs is None else [programs]
    unlisted = rest[0] if rest else None
    if not (
        isinstance(interface, str)
        and _whole(port, 1, 65535)
        and proto in ("tcp", "udp")
        and isinstance(programs, list)
        and all(_whole(p, 0, _RPC_PROGRAM_MAX) for p in programs)
        and len(rest) == (0 if version == 1 else 1)
        and (isinstance(unlisted, bool) or (unlisted is None and version != 2))
    ):
        raise ValueError("bad seen entry")
    return Seen(interface, port, proto, tuple(sorted(programs)), unlisted)
