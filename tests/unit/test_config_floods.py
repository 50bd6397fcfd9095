"""A file full of unknown keys (a log pasted in by mistake) gives a bounded number of warnings,
quickly: the first UNKNOWN_KEYS_SAID_MAX, then one line counting the rest."""

import time
from pathlib import Path

from portwarden.config.settings import load_settings
from portwarden.limits import UNKNOWN_KEYS_SAID_MAX


def test_unknown_keys_are_said_up_to_a_cap_then_counted(tmp_path: Path) -> None:
    conf = tmp_path / "p.conf"
    lines = [f'UNKNOWN_{n}="1"' for n in range(200_000)]
    lines[1] = 'TCP_PORT="1"'
    conf.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    warnings = load_settings(conf).warnings
    assert time.monotonic() - started < 10  # was minutes: one did-you-mean lookup per key
    assert len(warnings) == UNKNOWN_KEYS_SAID_MAX + 1
    assert warnings[0] == f"{conf}:1: unknown key UNKNOWN_0 ignored"
    assert warnings[1] == f"{conf}:2: unknown key TCP_PORT ignored (did you mean TCP_PORTS?)"
    assert warnings[-1] == (f"{conf}: and {200_000 - UNKNOWN_KEYS_SAID_MAX} more unknown keys "
                            f"ignored (lines {UNKNOWN_KEYS_SAID_MAX + 1}-200000)")  # fmt: skip


def test_a_huge_unknown_key_is_compared_with_none(tmp_path: Path) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text("TCP_PORTS" * 100_000 + '="1"\n')
    started = time.monotonic()
    (warning,) = load_settings(conf).warnings
    assert time.monotonic() - started < 2
    assert warning.endswith(" ignored")
