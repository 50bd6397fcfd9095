"""Rendering untrusted text (attacker data, bad config values) safely on one line."""

_MAX_SHOWN = 200


def one_line(value: str, limit: int = _MAX_SHOWN) -> str:
    """Return `value` with every control or non-ASCII-printable character escaped.

    The result never contains a line break, so a hostile hostname, banner or config value
    cannot forge or split a log line. Long values are cut and marked with '...'.
    """
    out: list[str] = []
    for ch in value[:limit]:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and ch.isascii():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    if len(value) > limit:
        out.append("...")
    return "".join(out)
