"""Pure-Python masking: the specification of the compiled ``_speedups.apply_mask``.

RFC 6455 §5.3: octet ``i`` of the transformed data is octet ``i`` of the
original data XOR octet ``i % 4`` of the masking key. The same operation masks
and unmasks.
"""

from __future__ import annotations


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """Return ``data`` XORed with the 4-byte ``mask`` repeated (RFC 6455 §5.3)."""
    if len(mask) != 4:
        raise ValueError("mask must contain 4 bytes")
    # Count bytes, not items: match the compiled twin on memoryviews of wider items.
    data = memoryview(data).cast("B")
    length = len(data)
    if length == 0:
        return b""
    # XOR the whole payload as one big integer: CPython does this in C, word by
    # word, which is far faster than a per-byte loop in Python.
    repeated = (mask * (length // 4 + 1))[:length]
    value = int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(length, "little")
