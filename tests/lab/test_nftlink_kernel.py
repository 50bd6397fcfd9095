"""The fast-path element writer against the real kernel, in a network namespace of its own
(`unshare -n`: the namespace and everything in it vanish with the process)."""

import json
import subprocess
import sys

from tests.conftest import require_lab

SCRIPT = """
import ipaddress, json
from portwarden.respond.nft import Nft, NftBlocker
from portwarden.respond.nftlink import NftLink, NftLinkError
try:
    NftLink("portwarden").add("blocked4", ipaddress.ip_address("198.18.0.5"), None)
    missing = "no error"
except NftLinkError as error:
    missing = f"{error} ({error.code})"
blocker = NftBlocker(Nft(), forward=False)
present = [blocker.table_present()]
blocker.add(ipaddress.ip_address("198.18.0.5"), None)  # no table yet: the blocker makes it
present.append(blocker.table_present())
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
Nft().run("delete table inet portwarden")
present.append(blocker.table_present())
print(json.dumps({"missing": missing, "listed": listed, "present": present}))
"""


def test_elements_added_over_netlink_are_what_nft_lists() -> None:
    require_lab()
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", SCRIPT], check=True,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    result = json.loads(out.stdout)
    assert result["missing"] == "No such file or directory (2)"
    assert result["listed"] == {"198.18.0.5": None, "198.18.0.6": 60, "2001:db8::7": 3600}
    assert result["present"] == [False, True, False]
