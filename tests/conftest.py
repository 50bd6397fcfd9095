"""Fixtures shared by lab and end-to-end tests."""

import os
from collections.abc import Iterator

import pytest

from portwarden.lab.network import Lab, lab_unavailable_reason


def require_lab() -> None:
    """Skip with the reason when the lab cannot run; in CI, fail instead: there it must run."""
    reason = lab_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the lab tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    require_lab()
    built = Lab()
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
