"""`portwarden lab` stopped by Ctrl-C: the same clean-up as a normal end, said in one line."""

import signal

from portwarden.lab.demo import run_prefix
from portwarden.lab.network import lab_namespaces, run
from tests.conftest import require_lab
from tests.e2e.test_lab_command import _claims_left, _host_view, _lab_running


def test_lab_stopped_by_ctrl_c_says_so_in_one_line_and_removes_everything() -> None:
    require_lab()
    before = _host_view()
    demo, seen = _lab_running()
    demo.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert demo.stdout is not None
    rest = demo.stdout.read()
    out = "".join(seen) + rest
    assert demo.wait(timeout=60) == 128 + signal.SIGINT, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    (last,) = rest.splitlines()[-1:]
    said = f"Interrupted (SIGINT). Removed the lab: namespaces {run_prefix(demo.pid)}*, their"
    assert last.startswith(f"{said} links, the daemon and "), out
    assert lab_namespaces(run_prefix(demo.pid)) == []
    assert run(["pgrep", "-f", "portwarden-lab-"], check=False).stdout == "", out
    assert _host_view() == before and _claims_left(demo.pid) == [], out
