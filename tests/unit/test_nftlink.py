"""The netlink batch that adds one set element, read back field by field."""

import ipaddress
import struct

from portwarden.respond.nftlink import Element, elements_batch, errors_in, get_request


def messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, sequence, payload after nfgenmsg) of each message."""
    found, offset = [], 0
    while offset < len(data):
        length, kind, flags, sequence, _ = struct.unpack_from("=IHHII", data, offset)
        assert length % 4 == 0 and offset + length <= len(data)
        found.append((kind, flags, sequence, data[offset + 20 : offset + length]))
        offset += length
    return found


def attributes(data: bytes) -> dict[int, bytes]:
    found, offset = {}, 0
    while offset < len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        found[kind & 0x7FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def test_a_batch_of_one_newsetelem_that_alone_asks_for_an_ack() -> None:
    element = (ipaddress.ip_address("2001:db8::9").packed, 90)
    batch, last = elements_batch("portwarden", {"blocked6": [element]}, False, 40)
    (begin, new, end) = messages(batch)
    assert (begin[0], begin[2], end[0], end[2], last) == (16, 40, 17, 42, 42)
    assert not begin[1] & 0x4 and not end[1] & 0x4
    kind, flags, sequence, payload = new
    assert (kind, flags, sequence) == (0x0A0C, 0x1 | 0x4 | 0x400, 41)
    top = attributes(payload)
    assert top[1] == b"portwarden\0" and top[2] == b"blocked6\0"
    nested = attributes(attributes(top[3])[1])
    assert attributes(nested[1])[1] == ipaddress.ip_address("2001:db8::9").packed
    assert struct.unpack("!Q", nested[4]) == (90_000,)  # milliseconds


def test_no_timeout_attribute_for_a_block_that_lasts_forever() -> None:
    batch, _ = elements_batch("t", {"blocked4": [(bytes([198, 18, 0, 7]), None)]}, False, 5)
    element = attributes(attributes(attributes(messages(batch)[1][3])[3])[1])
    assert set(element) == {1} and attributes(element[1])[1] == bytes([198, 18, 0, 7])


def test_errors_are_read_from_every_message_and_garbage_ends_the_walk() -> None:
    def error(sequence: int, code: int) -> bytes:
        return struct.pack("=IHHIIi", 36, 2, 0, sequence, 0, code) + bytes(16)

    assert errors_in(error(7, 0) + error(8, -2)) == [(7, 0), (8, 2)]
    assert errors_in(error(7, 0) + struct.pack("=IHHII", 3, 2, 0, 9, 0) + bytes(4)) == [(7, 0)]
    assert errors_in(b"\x01\x02") == []


def test_the_table_request_names_our_table_and_asks_for_an_ack() -> None:
    ((kind, flags, sequence, payload),) = messages(get_request("portwarden", None, 9))
    assert (kind, flags, sequence) == (0x0A01, 0x1 | 0x4, 9)
    assert attributes(payload) == {1: b"portwarden\0"}


def test_a_fill_empties_each_set_then_adds_in_chunks_and_asks_one_ack_at_the_end() -> None:
    v4: list[Element] = [(bytes([198, 18, i >> 8, i & 255]), None) for i in range(2500)]
    v6: list[Element] = [(ipaddress.ip_address("2001:db8::1").packed, 60)]
    batch, end = elements_batch("pw", {"blocked4": v4, "blocked6": v6}, True, 100)
    found = messages(batch)
    kinds = [kind for kind, _, _, _ in found]
    assert kinds == [16, 0x0A0E, 0x0A0C, 0x0A0C, 0x0A0C, 0x0A0E, 0x0A0C, 17]
    assert [sequence for _, _, sequence, _ in found] == list(range(100, 108)) and end == 107
    assert [bool(flags & 0x4) for _, flags, _, _ in found] == [False] * 6 + [True, False]
    flush = attributes(found[1][3])
    assert flush == {1: b"pw\0", 2: b"blocked4\0"}  # no element list: the whole set
    sizes = []
    for _, _, _, payload in found[2:5]:
        listed = attributes(payload)[3]
        count, offset = 0, 0
        while offset < len(listed):
            count += 1
            offset += (struct.unpack_from("=H", listed, offset)[0] + 3) & ~3
        sizes.append(count)
    assert sizes == [1000, 1000, 500]


def test_nothing_to_fill_is_no_batch() -> None:
    assert elements_batch("pw", {"blocked4": [], "blocked6": []}, False, 3) == (b"", 3)


def test_the_chain_request_names_our_table_and_the_chain() -> None:
    ((kind, flags, sequence, payload),) = messages(get_request("portwarden", "forward", 4))
    assert (kind, flags, sequence) == (0x0A04, 0x1 | 0x4, 4)
    assert attributes(payload) == {1: b"portwarden\0", 3: b"forward\0"}
