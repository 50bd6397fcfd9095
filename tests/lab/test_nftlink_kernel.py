"""The fast-path element writer against the real kernel, in a network namespace of its own
(`unshare -n`: the namespace and everything in it vanish with the process)."""

from tests.conftest import require_lab
from tests.lab.isolated import NEW_NETWORK, printed_json

SCRIPT = """
import ipaddress, json
from portwarden.net.nftables import Nft
from portwarden.respond.nft import NftBlocker
from portwarden.respond.nftlink import NftLink, NftLinkError
try:
    NftLink("portwarden").add("blocked4", ipaddress.ip_address("198.18.0.5"), None)
    missing = "no error"
except NftLinkError as error:
    missing = f"{error} ({error.code})"
blocker = NftBlocker(Nft(), forward=False)
present = [blocker.damage()]
blocker.add(ipaddress.ip_address("198.18.0.5"), None)  # no table yet: the blocker makes it
present.append(blocker.damage())
for address, seconds in (("198.18.0.5", None), ("198.18.0.6", 60), ("2001:db8::7", 3600)):
    blocker.add(ipaddress.ip_address(address), seconds)
listed = {}
for name in ("blocked4", "blocked6"):
    out = Nft().run(f"list set inet portwarden {name}", json_output=True)
    for item in json.loads(out)["nftables"]:
        for element in item.get("set", {}).get("elem", []):
            if isinstance(element, dict):
                listed[element["elem"]["val"]] = element["elem"].get("timeout")
            else:
                listed[element] = None
Nft().run("flush chain inet portwarden input")
present.append(blocker.damage())
Nft().run("delete table inet portwarden")
present.append(blocker.damage())
print(json.dumps({"missing": missing, "listed": listed, "present": present}))
"""


def test_elements_added_over_netlink_are_what_nft_lists() -> None:
    require_lab()
    result = printed_json(NEW_NETWORK, SCRIPT)
    assert result["missing"] == "No such file or directory (2)"
    assert result["listed"] == {"198.18.0.5": None, "198.18.0.6": 60, "2001:db8::7": 3600}
    assert result["present"] == [
        "table inet portwarden",
        None,
        "the rules of chain input of table inet portwarden",
        "table inet portwarden",
    ]


FILL = """
import ipaddress, json
from portwarden.net.nftables import Nft
from portwarden.respond.nft import NftBlocker

def listed():
    found = {}
    for name in ("blocked4", "blocked6"):
        out = Nft().run(f"list set inet portwarden {name}", json_output=True)
        for item in json.loads(out)["nftables"]:
            for element in item.get("set", {}).get("elem", []):
                found[element["elem"]["val"] if isinstance(element, dict) else element] = (
                    element["elem"].get("timeout") if isinstance(element, dict) else None)
    return found

blocker = NftBlocker(Nft(), forward=False)
first = [(str(ipaddress.ip_address(0xC6120000 + i)), None) for i in range(3000)]
first += [(f"2001:db8::{i:x}", 600) for i in range(1, 1501)]
blocker.replace_all(first)
after_first = listed()
blocker.replace_all([("198.18.200.1", None), ("2001:db8::ffff", None)])
after_second = listed()
blocker.put_back([("198.18.200.2", 60)])
after_put_back = listed()

def chains():
    out = json.loads(Nft().run("list table inet portwarden", json_output=True))["nftables"]
    return sorted(item["chain"]["name"] for item in out if "chain" in item)

NftBlocker(Nft(), forward=True).ensure()
with_forward = chains()
NftBlocker(Nft(), forward=False).ensure()
without = chains()
Nft().run("delete table inet portwarden")
print(json.dumps({"first": len(after_first), "same": after_first == dict(first),
                  "second": after_second, "put_back": after_put_back,
                  "chains": [with_forward, without]}))
"""


def test_restore_fills_the_sets_in_one_batch_and_replaces_what_was_there() -> None:
    require_lab()
    result = printed_json(NEW_NETWORK, FILL, timeout=60)
    assert result["first"] == 4500 and result["same"]
    assert result["second"] == {"198.18.200.1": None, "2001:db8::ffff": None}
    assert result["put_back"] == {**result["second"], "198.18.200.2": 60}
    assert result["chains"] == [["forward", "input"], ["input"]]  # BLOCK_FORWARD on, then off


REFUSED = """
import ipaddress, json
from portwarden.net.nftables import Nft
from portwarden.respond.nft import NftBlocker, _by_set
from portwarden.respond.nftlink import NftLink, NftLinkError
link = NftLink("portwarden")
elements = _by_set([(str(ipaddress.ip_address(0xC6120000 + i)), None) for i in range(60_000)])
try:
    link.fill(elements, flush=False)  # no table: every chunk of the batch is refused
    refused = "no error"
except NftLinkError as error:
    refused = f"{error} ({error.code})"
NftBlocker(Nft(), forward=False).ensure()
present = link.has()  # the same link answers the next request
link.fill({"blocked4": elements["blocked4"][:10], "blocked6": []}, flush=True)
count = len(json.loads(Nft().run("list set inet portwarden blocked4", json_output=True))
            ["nftables"][1]["set"]["elem"])
print(json.dumps({"refused": refused, "present": present, "count": count}))
"""


def test_a_refused_batch_says_why_and_the_link_answers_the_next_request() -> None:
    """60,000 elements for a table that is not there: the kernel refuses each of the batch's
    messages. The error is the kernel's (ENOENT, not a receive buffer overrun from echoed
    messages), and the next requests on the same link are answered."""
    require_lab()
    assert printed_json(NEW_NETWORK, REFUSED, timeout=60) == {
        "refused": "No such file or directory (2)",
        "present": True,
        "count": 10,
    }
