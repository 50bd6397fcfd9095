"""Property tests over grammar-shaped configuration and ignore files (tests/unit/conf_grammar.py).

Whatever the file holds, loading it gives Settings or a one-line ConfigError naming the file:
no other exception. What loads, check-config prints in a form that loads back to the same
settings.
"""

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portwarden.config import ConfigError, Settings, load_settings
from portwarden.config.ignore import parse_ignore_text
from portwarden.config.reader import Reader
from portwarden.config.settings import KEYS, to_conf_lines
from tests.unit.conf_grammar import (
    SHAPES,
    VALID,
    any_assignment,
    conf_text,
    ignore_text,
    valid_conf_text,
    value_for,
)

T = TypeVar("T")
# The grammar's strategies are large; Hypothesis says so when it builds their repr.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

FILE_TESTS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def key_parsers() -> dict[str, Callable[[str], object]]:
    """Each key's value parser, as load_settings uses it (recorded from one load)."""
    found: dict[str, Callable[[str], object]] = {}
    get = Reader.get

    def record(reader: Reader, key: str, parse: Callable[[str], T], default: T) -> T:
        found[key] = parse
        return get(reader, key, parse, default)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Reader, "get", record)
        load_settings(None)
    return found


PARSERS = key_parsers()


def test_every_key_is_in_the_grammar() -> None:
    """A new key needs its parser here, a shape and valid values in conf_grammar.py, so that
    it is fuzzed and its check-config form is shown to load back."""
    assert sorted(PARSERS) == sorted(KEYS)
    assert not set(KEYS) - set(VALID), "add valid values to tests/unit/conf_grammar.py VALID"
    assert not set(KEYS) - set(SHAPES), "add a shape to tests/unit/conf_grammar.py SHAPES"


@pytest.mark.parametrize("key", sorted(PARSERS))
def test_each_value_parser_returns_or_raises_value_error(key: str) -> None:
    """The parsers' contract with load_settings: a value, or ValueError (which load_settings
    turns into the one-line ConfigError). Called directly, so that each key gets many
    grammar-shaped values quickly."""

    @settings(max_examples=120, deadline=None, database=None)
    @given(value_for(key))
    def parses_or_refuses(value: str) -> None:
        with contextlib.suppress(ValueError):  # what load_settings turns into ConfigError
            PARSERS[key](value)

    parses_or_refuses()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("grammar")


def loads_back(folder: Path, original: Settings) -> None:
    """check-config's output loads back to the same settings (source and warnings aside)."""
    again_path = folder / "again.conf"
    again_path.write_text("\n".join(to_conf_lines(original)) + "\n")
    again = load_settings(again_path)
    assert (
        dataclasses.replace(again, source=original.source, warnings=original.warnings) == original
    )


def check_error(error: ConfigError, *paths: Path) -> None:
    assert "\n" not in str(error) and "\r" not in str(error)
    assert str(error).startswith(tuple(f"{p}{after}" for p in paths for after in ": "))


@settings(max_examples=400, deadline=None)
@given(line=any_assignment)
def test_any_value_of_any_key_loads_or_gives_one_line_error(folder: Path, line: str) -> None:
    """One key at a time, so that every value reaches its parser."""
    path = folder / "one.conf"
    path.write_text(line + "\n")
    try:
        loaded = load_settings(path)
    except ConfigError as error:
        check_error(error, path)
        return
    loads_back(folder, loaded)


@FILE_TESTS
@given(conf=conf_text, ignore=ignore_text, with_ignore=st.booleans())
def test_any_grammar_shaped_file_loads_or_gives_one_line_error(
    folder: Path, conf: str, ignore: str, with_ignore: bool
) -> None:
    path, ignore_path = folder / "p.conf", folder / "ignore"
    ignore_path.write_text(ignore)
    path.write_text(('IGNORE_FILE="ignore"\n' if with_ignore else "") + conf)
    try:
        loaded = load_settings(path)
    except ConfigError as error:
        check_error(error, path, ignore_path)
        return
    for warning in loaded.warnings:
        assert "\n" not in warning and "\r" not in warning
    loads_back(folder, loaded)


@FILE_TESTS
@given(conf=valid_conf_text)
def test_valid_values_load_and_round_trip(folder: Path, conf: str) -> None:
    path = folder / "valid.conf"
    path.write_text(conf)
    loads_back(folder, load_settings(path))


@settings(max_examples=500, deadline=None)
@given(ignore_text)
def test_any_grammar_shaped_ignore_file_parses_or_gives_one_line_error(text: str) -> None:
    try:
        _, warnings = parse_ignore_text(text, "i")
    except ConfigError as error:
        assert "\n" not in str(error) and "\r" not in str(error)
        assert str(error).startswith("i:")
        return
    assert all("\n" not in w and w.startswith("i:") for w in warnings)
