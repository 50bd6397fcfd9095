"""A really full file system (a 4 KiB tmpfs in a mount namespace of its own, `unshare -m`:
the mount vanishes with the process): an append to hosts.deny and to HISTORY_FILE that the
kernel cuts short leaves no partial line behind."""

from pathlib import Path

from tests.conftest import require_lab
from tests.lab.isolated import NEW_MOUNTS, printed_json

SCRIPT = """
import errno, json, os, subprocess, sys
from pathlib import Path
from portwarden import fileedit
from portwarden.respond import portsentry_files
from portwarden.store.db import BlockRecord
folder = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(folder)], check=True)
before = {}
outcome = {}
for name, append in (
    ("hosts.deny", lambda p: fileedit.add_line(p, "ALL: 198.18.0.11")),
    ("history", lambda p: portsentry_files.append_history(p, [BlockRecord(
        1, "198.18.0.11", "tcp", 11, "stcp", "x", "198.18.0.11", 0.0, None, 1, ())])),
):
    path = folder / name
    filler = "#" * 4080 + "\\n"  # 4081 bytes: the page has 15 left, fewer than a line
    path.write_text(filler)
    try:
        append(path)
        outcome[name] = "written"
    except OSError as error:
        outcome[name] = errno.errorcode[error.errno]
    outcome[name + " unchanged"] = path.read_text() == filler
    path.unlink()
print(json.dumps(outcome))
"""


def test_an_append_cut_short_by_a_full_tmpfs_is_taken_back(tmp_path: Path) -> None:
    require_lab()  # root, for the mount namespace
    assert printed_json(NEW_MOUNTS, SCRIPT, str(tmp_path)) == {
        "hosts.deny": "ENOSPC",
        "hosts.deny unchanged": True,
        "history": "ENOSPC",
        "history unchanged": True,
    }
