"""Type stub for the compiled ``wsjet.core._speedups`` (see ``_speedups.c``).

Buffer arguments accept any C-contiguous bytes-like object, like the
pure-Python twins in ``wsjet.core._mask``; ``apply_mask`` and
``apply_mask_into`` also take them by keyword, the others by position only.
"""

from typing_extensions import Buffer

#: 1 when masking uses the AVX2 loop (the CPU has it and WSJET_NO_AVX2 is unset), else 0.
AVX2: int

def apply_mask(data: Buffer, mask: Buffer) -> bytes:
    """Return ``data`` XORed with the 4-byte ``mask`` repeated (RFC 6455 §5.3)."""

def apply_mask_into(data: Buffer, mask: Buffer, out: Buffer) -> None:
    """Write ``data`` XORed with the repeated 4-byte ``mask`` into ``out``.

    ``out`` is a writable buffer of the same length as ``data``; it may be
    ``data`` itself but must not otherwise overlap it.
    """

def encode_header(first: int, length: int, mask: Buffer | None, /) -> bytes:
    """Return the header of a frame with a ``length``-byte payload (RFC 6455 §5.2)."""

def extract_payload(buffer: Buffer, start: int, stop: int, key_at: int, /) -> bytes:
    """Return buffer[start:stop] unmasked with the key at buffer[key_at:key_at + 4] (-1: none)."""

def new_payload(length: int, /) -> bytes:
    """Return a new message buffer of ``length`` bytes (at least 2)."""

def fill_payload(
    target: bytes, at: int, source: Buffer, start: int, stop: int, key: Buffer | None, /
) -> None:
    """Write ``source[start:stop]`` into ``target`` at ``at``, unmasked with ``key``."""

def finish_payload(target: bytes, /) -> bytes:
    """Return the filled message buffer as the message."""

def encode_frame(first: int, data: Buffer, mask: Buffer | None, /) -> bytes:
    """Return a whole frame: the header for ``first`` and the length, then ``data``.

    With a 4-byte ``mask``: the MASK bit and the key in the header, ``data`` masked.
    """
