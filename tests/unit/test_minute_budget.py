"""BLOCKS_PER_MINUTE's budget: what its `...-cap ended` lines count."""

import pytest

from portwarden import limits
from portwarden.respond.budget import MinuteBudget


def test_the_end_counts_sources_refused_and_not_served_later() -> None:
    """Every probe of a refused source asks again: one source refused three times counts
    once, and one served on a later probe (its block made after all) not at all."""
    budget = MinuteBudget()
    assert budget.allows("198.18.0.1", 1, 1, 0.0)
    for _ in range(3):
        assert not budget.allows("198.18.0.2", 1, 1, 1.0)
    assert not budget.allows("198.18.0.3", 1, 1, 1.0)
    assert budget.allows("198.18.0.3", 1, 3, 2.0)  # now seen on 3 ports: the second budget
    assert budget.ended(30.0) is None  # the budget is still in use
    assert budget.ended(63.0) == (1, False)
    assert budget.ended(200.0) is None  # said once


def test_past_the_sources_it_can_remember_the_end_says_or_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five refused, three remembered, one of those served later: two counted, and `or
    more`, since two were never remembered (the set's size alone said "exactly 2")."""
    monkeypatch.setattr(limits, "BLOCK_MAX_REFUSED_COUNTED_MAX", 3)
    budget = MinuteBudget()
    assert budget.allows("198.18.0.1", 1, 1, 0.0)
    for last in "abcde":
        assert not budget.allows(f"198.18.1.{ord(last)}", 1, 1, 1.0)
    assert budget.allows("198.18.1.97", 1, 3, 2.0)  # a, served by the second budget
    assert budget.ended(63.0) == (2, True)
