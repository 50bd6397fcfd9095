"""fileedit.replace_atomically: what a rewritten file keeps."""

import os
from pathlib import Path

import pytest

from portwarden import fileedit
from portwarden.fileedit import replace_atomically
from portwarden.portmap import owner
from portwarden.portmap.protect import plan_protect, plan_unprotect
from portwarden.portmap.wrappers import WrappersError
from tests.lab.acl import mode_600_and_reader

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root gives a file away")


@needs_root
def test_a_replaced_file_keeps_its_owner_group_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "hosts.deny"
    path.write_text("ALL: 192.0.2.1\n")
    os.chown(path, 1000, 4)  # 1000:adm, as on a host where an admin group edits the file
    path.chmod(0o640)
    replace_atomically(path, "ALL: 192.0.2.2\n")
    found = path.stat()
    assert (found.st_uid, found.st_gid, found.st_mode & 0o7777) == (1000, 4, 0o640)
    assert path.read_text() == "ALL: 192.0.2.2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["hosts.deny"]  # no temporary file left


@needs_root
def test_protect_and_unprotect_keep_the_owner_of_the_wrappers_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(owner, "rpcbind_user", lambda: None)  # _rpc cannot enter tmp_path
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    for path in (allow, deny):
        path.write_text("# the administrator's\n")
        os.chown(path, 1000, 4)
    plan_protect(["198.18.0.0/24"], allow, deny, None).apply()
    assert [(p.stat().st_uid, p.stat().st_gid) for p in (allow, deny)] == [(1000, 4)] * 2
    plan_unprotect(allow, deny, None).apply()
    assert [(p.stat().st_uid, p.stat().st_gid) for p in (allow, deny)] == [(1000, 4)] * 2


def test_a_new_file_is_the_writers_with_mode_0644(tmp_path: Path) -> None:
    path = tmp_path / "new"
    replace_atomically(path, "x\n")
    found = path.stat()
    assert (found.st_uid, found.st_gid) == (os.geteuid(), os.getegid())
    assert found.st_mode & 0o7777 == 0o644


@needs_root
def test_a_replaced_file_keeps_its_acl(tmp_path: Path) -> None:
    """A hosts.allow of mode 600 that an ACL lets _rpc read: without the ACL, rpcbind (as
    _rpc) could not read our lines, and TCP Wrappers would refuse every caller."""
    path = tmp_path / "hosts.allow"
    path.write_text("sshd: ALL\n")
    acl = mode_600_and_reader(64999)
    try:
        os.setxattr(path, "system.posix_acl_access", acl)
    except OSError as error:
        pytest.skip(f"no POSIX ACLs here: {error.strerror}")
    replace_atomically(path, "rpcbind: 127.0.0.1\n")
    assert os.getxattr(path, "system.posix_acl_access") == acl
    assert path.stat().st_mode & 0o7777 == 0o640
    plain = tmp_path / "hosts.deny"
    plain.write_text("")
    replace_atomically(plain, "ALL: ALL\n")
    assert "system.posix_acl_access" not in os.listxattr(plain)


def test_a_line_appended_in_the_moment_of_the_rename_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program (fail2ban, our KILL_HOSTS_DENY) appends to hosts.deny just after the
    check that the file is as read, before the rename: its line is carried over."""
    path = tmp_path / "hosts.deny"
    path.write_text("sshd: 198.18.0.9\n")
    text, identity = fileedit.read_with_identity(path)
    rename = os.replace

    def appended_first(source: str, target: Path) -> None:
        with open(target, "a") as other:
            other.write("ALL: 198.18.99.1\n")
        rename(source, target)

    monkeypatch.setattr(fileedit.os, "replace", appended_first)
    fileedit.replace_atomically(path, f"{text}rpcbind: ALL\n", identity)
    assert path.read_text() == "sshd: 198.18.0.9\nrpcbind: ALL\nALL: 198.18.99.1\n"


def test_an_error_names_the_file_replaced_never_its_temporary_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/proc takes no new file: the error said `/proc/.version.xw8ho6my: No such file or
    directory`, a name the administrator never gave."""
    with pytest.raises(OSError) as raised:
        replace_atomically(Path("/proc/version"), "x\n")
    assert raised.value.filename == "/proc/version"
    assert str(raised.value.strerror).startswith("its folder /proc takes no new file (")

    def full(_: int) -> None:
        raise OSError(28, "No space left on device")

    def refused(_: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    path = tmp_path / "hosts.deny"
    path.write_text("ALL: 192.0.2.1\n")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as raised:
        replace_atomically(path, "ALL: 192.0.2.2\n")
    assert (raised.value.errno, raised.value.filename) == (28, str(path))
    assert "(No space left on device)" in str(raised.value.strerror)
    assert [p.name for p in tmp_path.iterdir()] == ["hosts.deny"]  # its copy is gone
    monkeypatch.setattr(os, "fsync", refused)
    with pytest.raises(PermissionError):  # still one: the CLI says to run as root
        replace_atomically(path, "ALL: 192.0.2.2\n")


def test_protect_names_the_wrappers_file_whose_folder_takes_no_new_file(tmp_path: Path) -> None:
    """Nothing is changed, and the error names the file given (as root, the folder passes the
    checks made before anything is written, and the copy fails; as another user, those
    checks say it)."""
    deny = tmp_path / "hosts.deny"
    with pytest.raises(WrappersError) as raised:
        plan_protect(["198.18.0.0/24"], Path("/proc/version"), deny, None).apply()
    assert str(raised.value).startswith("/proc/version: ") and "/proc/." not in str(raised.value)
    assert not deny.exists()
