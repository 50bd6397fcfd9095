"""Which nftables input chains close the door on what they do not accept: by policy, or by a
last rule that drops or rejects everything (firewalld's)."""

import pytest

from portwarden.net.input_filters import _verdict_of


@pytest.mark.parametrize(
    ("expressions", "verdict"),
    [
        ([{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}], "reject"),  # firewalld's
        ([{"counter": {"packets": 0, "bytes": 0}}, {"drop": None}], "drop"),
        ([{"log": {"prefix": "x"}}, {"counter": None}, {"reject": None}], "reject"),
        ([{"match": {"op": "==", "left": {}, "right": 22}}, {"drop": None}], None),  # one port
        ([{"accept": None}], None),
        ([], None),
        (None, None),
        (["drop"], None),  # not what libnftables writes: no verdict guessed
    ],
)
def test_only_a_rule_without_a_match_closes_the_chain(
    expressions: list | None, verdict: str | None
) -> None:
    assert _verdict_of(expressions) == verdict
