"""Fixtures shared by lab and end-to-end tests."""

import os
from collections.abc import Iterator

import pytest

from portwarden.lab.network import Lab, LabPrefixError, check_prefix, lab_unavailable_reason
from tests.lab.prefix import PREFIX


def require_lab() -> None:
    """Skip with the reason when the lab cannot run; in CI, fail instead: there it must run. A
    bad PWT_LAB_PREFIX fails everywhere: it is a mistake, not a missing capability."""
    try:
        check_prefix(PREFIX)
    except LabPrefixError as error:
        pytest.fail(f"PWT_LAB_PREFIX: {error}", pytrace=False)
    reason = lab_unavailable_reason(PREFIX)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the lab tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    require_lab()
    built = Lab(PREFIX)
    try:
        built.create()
        yield built
    finally:
        built.destroy()


@pytest.fixture
def clean_lab(lab: Lab) -> Iterator[Lab]:
    """The session's lab; whatever a test started in it is stopped when the test ends."""
    yield lab
    for host in lab.hosts:
        host.stop_processes()
