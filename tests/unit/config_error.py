"""The one-line error a configuration file gives, for the tests that check its wording."""

from pathlib import Path

import pytest

from portwarden.config import ConfigError, TcpMode, UdpMode, load_settings


def load_error(path: Path, modes: tuple[TcpMode | None, UdpMode | None] | None = None) -> str:
    """What loading `path` says; the calling test fails if the file loads."""
    with pytest.raises(ConfigError) as caught:
        load_settings(path, modes)
    return str(caught.value)
