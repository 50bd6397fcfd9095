"""POSIX ACLs without setfacl: the bytes of the `system.posix_acl_access` attribute."""

import struct

_UNDEFINED = 0xFFFFFFFF
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20


def mode_600_and_reader(uid: int) -> bytes:
    """Mode 600 plus `user:<uid>:r`, as `chmod 600 F; setfacl -m user:<uid>:r F` leaves it:
    version 2, then (tag, permissions, id) entries sorted by tag; the mode shows 640 (the
    mask as the group's bits)."""
    entries = [
        (_USER_OBJ, 6, _UNDEFINED),
        (_USER, 4, uid),
        (_GROUP_OBJ, 0, _UNDEFINED),
        (_MASK, 4, _UNDEFINED),
        (_OTHER, 0, _UNDEFINED),
    ]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
