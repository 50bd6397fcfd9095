"""A setting blamed for what goes wrong when the daemon or a command uses the path it names.

Apart from config/, as it catches the store's StoreError: reading the settings does not load the
store."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

from portwarden.config.load import error_at
from portwarden.config.settings import Settings
from portwarden.store.db import StoreError


@contextlib.contextmanager
def blamed_on(settings: Settings, key: str, path: Path) -> Iterator[None]:
    """An OSError from using `path` (STATE_DIR, EVENT_LOG), or a store that cannot be opened
    there, becomes a ConfigError at `key`'s entry: a bad setting is one line naming file, line,
    key and value, not a traceback."""
    try:
        yield
    except OSError as error:
        raise error_at(settings.source, key, f"{path}: {error.strerror or error}") from None
    except StoreError as error:
        raise error_at(settings.source, key, str(error)) from None
