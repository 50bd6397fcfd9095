"""The one error type that configuration parsing may raise."""

from pathlib import Path

from portwarden.text import one_line


class ConfigError(Exception):
    """A bad configuration or ignore-file entry; str() is one line naming file, line, key, value."""

    def __init__(
        self,
        source: str | Path,
        reason: str,
        line: int | None = None,
        key: str | None = None,
        value: str | None = None,
        text: str | None = None,
    ) -> None:
        """`text`: the line as written, shown as it is, for errors about the shape of a line
        (a missing quote) where KEY="value" would add quotes of its own."""
        self.source = str(source)
        self.line = line
        self.key = key
        self.value = value
        self.text = text
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        source = one_line(self.source, 1000)
        where = source if self.line is None else f"{source}:{self.line}"
        what = ""
        if self.text is not None:
            what = f" {one_line(self.text)}"
        elif self.key is not None:
            what = f" {one_line(self.key)}"
            if self.value is not None:
                what += f'="{one_line(self.value)}"'
        elif self.value is not None:
            what = f' "{one_line(self.value)}"'
        if what:
            return f"{where}:{what}: {one_line(self.reason)}"
        return f"{where}: {one_line(self.reason)}"
