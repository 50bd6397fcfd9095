"""Portmap hardening without privileges: allowed networks, wrappers blocks, the check's view."""

from pathlib import Path

import pytest

from portwarden.config.errors import ConfigError
from portwarden.portmap import wrappers
from portwarden.portmap.check import read_wrappers
from portwarden.portmap.networks import allowed_networks

NETS = allowed_networks(["198.18.0.16/28", "2001:db8::10/124", "127.0.0.1"])


def test_allowed_networks_add_loopback_and_merge() -> None:
    assert [str(n) for n in NETS] == [
        "127.0.0.0/8",
        "198.18.0.16/28",
        "::1/128",
        "2001:db8::10/124",
    ]
    assert allowed_networks(["198.18.0.16/255.255.255.240"]) == allowed_networks(["198.18.0.16/28"])


@pytest.mark.parametrize("text", ["rpc.example.org", "198.18.0.0/33", "198.18.0.0/255.0.255.0",
                                  "2001:db8::/ffff::", "", "198.18.0.1\n# x"])  # fmt: skip
def test_bad_allowed_network_is_one_line_error(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        allowed_networks(["198.18.0.0/24", text])
    message = str(caught.value)
    assert message.startswith("--allow: ") and "\n" not in message


def test_rule_uses_only_forms_tcp_wrappers_accepts() -> None:
    assert wrappers.allow_rule(allowed_networks(["198.18.0.20", "2001:db8::/64"])) == (
        "rpcbind portmap: 127.0.0.0/255.0.0.0 198.18.0.20 [::1]/128 [2001:db8::]/64"
    )
    assert wrappers.deny_rule() == "rpcbind portmap: ALL"


def _protect(path: Path, rule: str) -> wrappers.FileChange:
    change = wrappers.protect_change(path, rule)
    change.apply()
    return change


@pytest.mark.parametrize(
    "original",
    [None, b"", b"ALL: 198.18.0.5\n", b"# no newline at end", b"crlf: ALL\r\n", b"latin-1 \xe9\n"],
)
def test_protect_twice_then_unprotect_restores_bytes(
    tmp_path: Path, original: bytes | None
) -> None:
    path = tmp_path / "hosts.allow"
    if original is not None:
        path.write_bytes(original)
    rule = wrappers.allow_rule(NETS)
    assert _protect(path, rule).changed
    data = path.read_bytes()
    assert data.splitlines()[1] == rule.encode() and data.endswith(original or b"")
    assert not _protect(path, rule).changed  # idempotent
    wrappers.unprotect_change(path).apply()
    assert (path.read_bytes() if path.exists() else None) == original
    assert not wrappers.unprotect_change(path).changed


def test_protect_with_other_networks_updates_the_block_in_place(tmp_path: Path) -> None:
    path = tmp_path / "hosts.allow"
    path.write_text("sshd: ALL\n")
    _protect(path, wrappers.allow_rule(NETS))
    path.write_text(path.read_text() + "in.fingerd: 198.18.0.9\n")
    other = wrappers.allow_rule(allowed_networks(["198.18.0.0/24"]))
    _protect(path, other)
    assert path.read_text().splitlines()[1:] == [other, wrappers.END, "sshd: ALL",
                                                 "in.fingerd: 198.18.0.9"]  # fmt: skip
    wrappers.unprotect_change(path).apply()
    assert path.read_text() == "sshd: ALL\nin.fingerd: 198.18.0.9\n"


def test_created_file_kept_when_the_administrator_added_to_it(tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    _protect(path, wrappers.deny_rule())
    path.write_text(path.read_text() + "sshd: 198.18.0.66\n")
    wrappers.unprotect_change(path).apply()
    assert path.read_text() == "sshd: 198.18.0.66\n"


def test_edited_block_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hosts.allow"
    _protect(path, wrappers.allow_rule(NETS))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1], "ALL: ALL", lines[2]]) + "\n")
    with pytest.raises(wrappers.WrappersError, match=r"hosts.allow:1: .* edited by hand"):
        wrappers.unprotect_change(path)


def test_diff_shows_exact_change(tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    path.write_text("ALL: 198.18.0.66\n")
    diff = wrappers.protect_change(path, wrappers.deny_rule()).diff()
    assert f"+{wrappers.deny_rule()}\n" in diff and " ALL: 198.18.0.66\n" in diff
    assert path.read_text() == "ALL: 198.18.0.66\n"


def test_symlink_and_missing_folder_are_refused_before_writing(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("")
    link = tmp_path / "hosts.allow"
    link.symlink_to(tmp_path / "real")
    with pytest.raises(wrappers.WrappersError, match="symbolic link"):
        wrappers.check_writable(wrappers.protect_change(link, "x: ALL"))
    missing = tmp_path / "nowhere" / "hosts.deny"
    with pytest.raises(wrappers.WrappersError, match="does not exist"):
        wrappers.check_writable(wrappers.protect_change(missing, "x: ALL"))


def test_check_lists_lines_for_the_portmapper_and_flags_a_later_allow(tmp_path: Path) -> None:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("sshd: ALL\nALL EXCEPT rpcbind: 198.18.0.9\n")
    deny.write_text("in.fingerd: ALL\nportmap,rpcbind : ALL\n# no newline")
    _protect(allow, wrappers.allow_rule(NETS))
    _protect(deny, wrappers.deny_rule())
    view = read_wrappers(allow, deny)
    assert view.protected
    assert [line.split(" ", 1)[0] for line in view.lines] == [
        f"{allow}:2:",
        f"{deny}:",  # the last line has no newline
        f"{deny}:2:",
        f"{deny}:5:",
    ]
    assert "no newline" in view.lines[1] and view.lines[3].endswith("portmap,rpcbind : ALL")
    allow.write_text(allow.read_text() + "ALL: 198.18.0.0/255.255.255.0\n")
    assert not read_wrappers(allow, deny).protected
