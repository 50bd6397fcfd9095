"""Packets the lab itself dropped: a burst faster than the kernel forwards it on a loaded
machine overflows a backlog (net.core.netdev_max_backlog, which is the host's, not a
namespace's, so the lab cannot raise it) before the packets reach the target."""

import json

import pytest

from portwarden.lab.network import Lab, run


def lab_drops(lab: Lab) -> int:
    """Packets dropped on receive or send by every link of the lab (the hosts' and the
    switch's), since they were made."""
    total = 0
    for netns in (lab.switch, *(host.netns for host in lab.hosts)):
        for link in json.loads(run(["ip", "-n", netns, "-s", "-j", "link", "show"]).stdout):
            stats = link.get("stats64", {})
            total += stats.get("rx", {}).get("dropped", 0) + stats.get("tx", {}).get("dropped", 0)
    return total


def lost_in_the_lab(lab: Lab, before: int) -> str:
    """For an assertion's message: whether the lab lost packets since `before`."""
    lost = lab_drops(lab) - before
    return (
        f"the lab dropped {lost} packets before they reached the target (machine overloaded)"
        if lost
        else "the lab dropped no packet"
    )


def skip_if_lost_in_the_lab(lab: Lab, before: int, missing: int) -> None:
    """For a count that fell `missing` short of what was sent: skip, saying so, when the lab's
    own links dropped at least that many packets since `before` (the target never had them, so
    the count cannot be checked); else return, and the test's assertion judges the shortfall."""
    lost = lab_drops(lab) - before
    if 0 < missing <= lost:
        pytest.skip(f"{missing} packets short: {lost_in_the_lab(lab, before)}")
