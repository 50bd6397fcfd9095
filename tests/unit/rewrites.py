"""Watch the whole-file rewrites that portwarden.fileedit makes, without changing them."""

from pathlib import Path
from typing import Any

import pytest

from portwarden import fileedit


def record_rewrites(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths `fileedit.replace_atomically` rewrites from now on, in order; each rewrite
    is still done."""
    rewrites: list[Path] = []
    replace = fileedit.replace_atomically

    def replace_recorded(path: Path, *rest: Any, **named: Any) -> None:
        rewrites.append(path)
        replace(path, *rest, **named)

    monkeypatch.setattr(fileedit, "replace_atomically", replace_recorded)
    return rewrites
