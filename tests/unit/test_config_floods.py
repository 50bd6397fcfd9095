"""A file full of unknown keys (a log pasted in by mistake) gives a bounded number of warnings,
quickly: the first WARNINGS_OF_A_KIND_MAX, then one line counting the rest."""

import time
from pathlib import Path

from portwarden import limits
from portwarden.config.load import load_settings


def test_unknown_keys_are_said_up_to_a_cap_then_counted(tmp_path: Path) -> None:
    conf = tmp_path / "p.conf"
    lines = [f'UNKNOWN_{n}="1"' for n in range(200_000)]
    lines[1] = 'TCP_PORT="1"'
    conf.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    warnings = load_settings(conf).warnings
    assert time.monotonic() - started < 10  # was minutes: one did-you-mean lookup per key
    assert len(warnings) == limits.WARNINGS_OF_A_KIND_MAX + 1
    assert warnings[0] == f"{conf}:1: unknown key UNKNOWN_0 ignored"
    assert warnings[1] == f"{conf}:2: unknown key TCP_PORT ignored (did you mean TCP_PORTS?)"
    assert warnings[-1] == (
        f"{conf}: and {200_000 - limits.WARNINGS_OF_A_KIND_MAX} more unknown keys "
        f"ignored (lines {limits.WARNINGS_OF_A_KIND_MAX + 1}-200000)"
    )


def test_a_huge_unknown_key_is_compared_with_none(tmp_path: Path) -> None:
    conf = tmp_path / "p.conf"
    conf.write_text("TCP_PORTS" * 100_000 + '="1"\n')
    started = time.monotonic()
    (warning,) = load_settings(conf).warnings
    assert time.monotonic() - started < 2
    assert warning.endswith(" ignored")


def test_keys_set_again_and_skipped_lines_are_said_up_to_a_cap_each(tmp_path: Path) -> None:
    """A line that starts with no key we know is skipped (as PortSentry did), a key set again
    keeps its first line: both are warnings, each kind capped on its own."""
    conf = tmp_path / "p.conf"
    conf.write_text('BLOCK_TCP="0"\n' + 'BLOCK_TCP="1"\n' * 1000 + "wrapped comment text\n" * 1000)
    warnings = load_settings(conf).warnings
    assert len(warnings) == 2 * (limits.WARNINGS_OF_A_KIND_MAX + 1)
    assert warnings[0] == (
        f'{conf}:1002: wrapped comment text: line is not KEY="value"; it '
        "starts with no key portwarden knows, so it is skipped (as PortSentry "
        "did)"
    )
    assert warnings[limits.WARNINGS_OF_A_KIND_MAX] == (
        f"{conf}: and {1000 - limits.WARNINGS_OF_A_KIND_MAX} more lines skipped (lines "
        f"{1002 + limits.WARNINGS_OF_A_KIND_MAX}-2001)"
    )
    assert (
        warnings[limits.WARNINGS_OF_A_KIND_MAX + 1]
        == f"{conf}:2: BLOCK_TCP is set again; line 1 wins"
    )
    assert warnings[-1] == (
        f"{conf}: and {1000 - limits.WARNINGS_OF_A_KIND_MAX} more keys set again "
        f"(lines {2 + limits.WARNINGS_OF_A_KIND_MAX}-1001)"
    )
