"""``_speedups`` reuses a payload or frame it made when nobody else holds it.

A bytes object over 512 bytes comes from ``malloc()``; for a 1 KiB message that
costs more than unmasking it. So the compiled module remembers the last few it
made (480 bytes to 64 KiB + 14) and, when it needs one of the same length again
and the old one's only reference is its own, writes into it instead (see
"Recycled bytes objects" in ``_speedups.c``). These tests hold the rule that
makes that sound: an object anybody still refers to is never written again,
and a reused one is indistinguishable from a new one (contents, hash).
"""

from __future__ import annotations

import sys

import pytest

from ..utils import import_compiled

_speedups = import_compiled("wsjet.core._speedups", "wsjet.core._mask")

KEY = b"\x01\x02\x03\x04"
SMALLEST = 480  # 33 + 480 = 513 bytes: the first size pymalloc does not serve
LARGEST = 64 * 1024 + 14
SLOTS = 4

pytestmark = pytest.mark.skipif(
    hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled(),
    reason="free-threaded build: _speedups never recycles there (new_bytes in _speedups.c)",
)


def payload(length: int, fill: int) -> bytes:
    """A frame payload taken out of a receive buffer: bytes of value ``fill``."""
    buffer = bytearray([fill]) * length
    return _speedups.extract_payload(buffer, 0, length, -1)


def made(length: int, fill: int) -> int:
    """The id() of a payload made and dropped at once (so it may be recycled)."""
    return id(payload(length, fill))


@pytest.mark.parametrize("length", [SMALLEST, 1024, 4096, 65536, LARGEST])
def test_a_dropped_payload_is_reused_for_the_next_of_its_length(length: int) -> None:
    first = made(length, 1)
    message = payload(length, 2)
    assert id(message) == first
    assert message == bytes([2]) * length


@pytest.mark.parametrize("length", [2, 100, SMALLEST - 1, LARGEST + 1, 1 << 20])
def test_lengths_outside_the_range_are_never_recycled(length: int) -> None:
    kept = [payload(length, i) for i in range(SLOTS + 1)]
    assert len({id(x) for x in kept}) == len(kept)
    del kept
    # Whatever malloc hands back, the contents are right.
    assert payload(length, 9) == bytes([9]) * length


def test_a_payload_somebody_holds_is_never_written_again() -> None:
    held = [payload(1024, i) for i in range(50)]  # more than the slots
    again = [payload(1024, 100 + i) for i in range(50)]
    for i, message in enumerate(held):
        assert message == bytes([i]) * 1024
    for i, message in enumerate(again):
        assert message == bytes([100 + i]) * 1024
    assert len({id(x) for x in held + again}) == 100


def test_views_and_containers_hold_a_payload_too() -> None:
    viewed = payload(2000, 1)
    view = memoryview(viewed)
    del viewed
    keyed = {payload(2000, 2): "key"}
    for i in range(3, 20):
        payload(2000, i)
    assert view == bytes([1]) * 2000
    assert next(iter(keyed)) == bytes([2]) * 2000
    view.release()


def test_a_reused_payload_hashes_its_new_contents() -> None:
    message = payload(1024, 1)
    old_hash = hash(message)  # cached in the object
    first = id(message)
    del message
    message = payload(1024, 2)
    assert id(message) == first
    assert hash(message) == hash(bytes([2]) * 1024) != old_hash


def test_every_function_that_makes_a_large_object_recycles() -> None:
    data = bytes(range(256)) * 8  # 2,048 bytes
    masked_id = id(_speedups.apply_mask(data, KEY))
    again = _speedups.apply_mask(data, KEY)
    assert id(again) == masked_id
    assert again == bytes(b ^ KEY[i % 4] for i, b in enumerate(data))
    del again
    frame_id = id(_speedups.encode_frame(0x82, data, None))
    frame = _speedups.encode_frame(0x82, data, None)
    assert id(frame) == frame_id
    assert frame == b"\x82\x7e\x08\x00" + data
    del frame
    target = _speedups.new_payload(len(data))
    target_id = id(target)
    del target
    target = _speedups.new_payload(len(data))
    assert id(target) == target_id
    _speedups.fill_payload(target, 0, data, 0, len(data), None)
    assert _speedups.finish_payload(target) == data


def in_slots(objects: list[bytes]) -> list[bool]:
    """Which of ``objects`` a slot holds: a reference more than the list's and the call's."""
    return [sys.getrefcount(objects[i]) == 3 for i in range(len(objects))]


def test_the_slots_keep_the_last_four_objects_made() -> None:
    kept = [payload(3000 + i, i) for i in range(SLOTS)]  # four lengths: four new objects
    assert in_slots(kept) == [True] * SLOTS
    newest = [payload(5000, 0)]  # a fifth takes the oldest one's slot
    assert in_slots(kept) == [False] + [True] * (SLOTS - 1)
    assert in_slots(newest) == [True]
    assert in_slots([bytes(3000)]) == [False]
    # Reusing an object leaves it where it is: the next new object still takes
    # the next-oldest slot, the one of length 3001.
    second_id = id(kept[1])
    del kept[1]
    second = [payload(3001, 5)]
    # (Compared outside the assert: pytest's rewriting keeps what it shows.)
    reused = id(second[0]) == second_id
    assert reused
    assert in_slots(second) == [True]
    payload(6000, 0)
    assert in_slots(second) == [False]
    assert in_slots(kept) == [False, True, True]  # lengths 3000, 3002, 3003
