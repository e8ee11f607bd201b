"""The compiled ``_speedups.apply_mask`` must match its pure-Python specification.

Both implementations are imported directly. The compiled module is required:
if it is missing this file fails to import, loudly, in CI and locally alike.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wsjet
from wsjet.core import _mask, mask
from wsjet.core._mask import apply_mask as pure_apply_mask

from ..utils import import_compiled

_speedups = import_compiled("wsjet.core._speedups", "wsjet.core._mask")

fast_apply_mask = _speedups.apply_mask

SEED = 6455
MASK_ERROR = "mask must contain 4 bytes"

# Around the 4-byte key, the 8-byte word, the 16-byte SSE2 register and the
# 64-byte unrolled step, the AVX2 path (from 256 bytes: 32-byte registers, 128
# bytes a step), around the 64 KiB threshold for releasing the GIL, and around
# the pure twin's switch from one integer XOR to translate() (384).
BOUNDARY_LENGTHS = sorted(
    {
        n + d
        for n in (4, 8, 16, 24, 32, 48, 64, 80, 128, 256, 288, 384, 416, 512, 1024, 4096, 65536)
        for d in (-1, 0, 1)
    }
    | {3, 5, 7, 9, 15, 17, 31, 33, 63, 65, 67, 71, 79, 95, 127, 129, 65536 + 7}
    | {256 + 128 + 32 + 16 + 8 + 3, 65536 + 128 + 32 + 16 + 8 + 3}  # every loop, then a tail
)


def both(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """Mask with both implementations, check they agree, return the result."""
    expected = pure_apply_mask(data, key)
    actual = fast_apply_mask(data, key)
    assert type(actual) is bytes
    assert type(expected) is bytes
    assert actual == expected, f"length {len(expected)}, mask {key.hex()}"
    return actual


def naive(data: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3 spelled out, as an independent third opinion."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def test_every_length_up_to_300() -> None:
    rng = random.Random(SEED)
    for length in range(301):
        for _ in range(4):
            data = rng.randbytes(length)
            key = rng.randbytes(4)
            assert both(data, key) == naive(data, key)


@pytest.mark.parametrize("length", BOUNDARY_LENGTHS)
def test_boundary_lengths(length: int) -> None:
    rng = random.Random(SEED + length)
    data = rng.randbytes(length)
    key = rng.randbytes(4)
    result = both(data, key)
    if length <= 4096:
        assert result == naive(data, key)


@pytest.mark.parametrize("length", [1 << 20, (1 << 20) + 3])
def test_one_mebibyte(length: int) -> None:
    rng = random.Random(SEED)
    data = rng.randbytes(length)
    key = rng.randbytes(4)
    result = both(data, key)
    # Spot-check against the definition without the slow naive loop.
    for i in (0, 1, 2, 3, 4, 4095, 65535, 65536, length - 5, length - 1):
        assert result[i] == data[i] ^ key[i % 4]


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview"])
def test_input_types(kind: str) -> None:
    rng = random.Random(SEED)
    for length in (0, 1, 13, 64, 1000, 70_000):
        raw = rng.randbytes(length)
        key = rng.randbytes(4)
        data: bytes | bytearray | memoryview = raw
        if kind == "bytearray":
            data = bytearray(raw)
        elif kind == "memoryview":
            data = memoryview(raw)
        assert both(data, key) == both(raw, key)


@pytest.mark.parametrize("offset", range(1, 17))
def test_memoryview_slice_at_offset(offset: int) -> None:
    """A slice that starts mid-buffer: unaligned for the word and SIMD loads."""
    rng = random.Random(SEED + offset)
    backing = bytearray(rng.randbytes(offset + 700))
    key = rng.randbytes(4)
    for length in (0, 1, 7, 8, 9, 16, 17, 63, 64, 65, 200, 256, 300, 443, 700 - offset):
        view = memoryview(backing)[offset : offset + length]
        assert both(view, key) == naive(bytes(view), key)


def test_mask_given_as_other_buffers() -> None:
    """The compiled function takes the key as any bytes-like object."""
    rng = random.Random(SEED)
    data = rng.randbytes(100)
    key = rng.randbytes(4)
    expected = pure_apply_mask(data, key)
    assert fast_apply_mask(data, bytearray(key)) == expected
    assert fast_apply_mask(data, memoryview(key)) == expected
    assert fast_apply_mask(data, memoryview(b"xx" + key)[2:]) == expected


def test_keyword_arguments_like_the_pure_twin() -> None:
    data, key = b"keyword call", b"\x01\x02\x03\x04"
    assert fast_apply_mask(data=data, mask=key) == pure_apply_mask(data=data, mask=key)
    assert fast_apply_mask(data, mask=key) == pure_apply_mask(data, mask=key)


def test_masking_twice_is_identity() -> None:
    rng = random.Random(SEED)
    for length in (0, 1, 5, 16, 33, 1000, 65536, 100_003):
        data = rng.randbytes(length)
        key = rng.randbytes(4)
        assert fast_apply_mask(fast_apply_mask(data, key), key) == data
        assert pure_apply_mask(pure_apply_mask(data, key), key) == data


def test_zero_mask_is_identity() -> None:
    rng = random.Random(SEED)
    for length in (0, 1, 7, 64, 1000, 70_000):
        data = rng.randbytes(length)
        assert both(data, b"\x00\x00\x00\x00") == data


def test_empty_payload() -> None:
    assert both(b"", b"abcd") == b""
    assert both(bytearray(), b"abcd") == b""


@pytest.mark.parametrize("key", [b"", b"\x01", b"abc", b"abcde", b"12345678"])
@pytest.mark.parametrize("data", [b"", b"payload", bytes(100)])
def test_bad_mask_length_raises_in_both(data: bytes, key: bytes) -> None:
    with pytest.raises(ValueError, match=MASK_ERROR):
        pure_apply_mask(data, key)
    with pytest.raises(ValueError, match=MASK_ERROR):
        fast_apply_mask(data, key)


def test_rejects_non_bytes_like() -> None:
    with pytest.raises(TypeError):
        fast_apply_mask("text", b"abcd")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast_apply_mask(b"data", "abcd")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast_apply_mask(b"data")  # type: ignore[call-arg]


def test_large_payloads_in_threads() -> None:
    """Inputs of 64 KiB and more release the GIL: results must stay right."""
    rng = random.Random(SEED)
    jobs = [(rng.randbytes(300_000 + i), rng.randbytes(4)) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: fast_apply_mask(*job), jobs))
    for (data, key), result in zip(jobs, results, strict=True):
        assert result == pure_apply_mask(data, key)


@given(data=st.binary(max_size=4096), key=st.binary(min_size=4, max_size=4))
def test_hypothesis_parity(data: bytes, key: bytes) -> None:
    assert both(data, key) == naive(data, key)


@given(
    data=st.binary(max_size=512),
    key=st.binary(min_size=4, max_size=4),
    offset=st.integers(min_value=0, max_value=31),
)
def test_hypothesis_offset_views(data: bytes, key: bytes, offset: int) -> None:
    view = memoryview(bytes(offset) + data)[offset:]
    assert both(view, key) == both(data, key)


@given(data=st.binary(max_size=64), key=st.binary(max_size=8).filter(lambda k: len(k) != 4))
def test_hypothesis_bad_mask(data: bytes, key: bytes) -> None:
    with pytest.raises(ValueError, match=MASK_ERROR):
        pure_apply_mask(data, key)
    with pytest.raises(ValueError, match=MASK_ERROR):
        fast_apply_mask(data, key)


# apply_mask_into: the compiled extra that writes into a caller's buffer.


@pytest.mark.parametrize("length", [0, 1, 7, 16, 65, 300, 70_000])
def test_apply_mask_into_matches_pure(length: int) -> None:
    rng = random.Random(SEED + length)
    data = rng.randbytes(length)
    key = rng.randbytes(4)
    out = bytearray(length)
    _speedups.apply_mask_into(data, key, out)
    assert bytes(out) == pure_apply_mask(data, key)


@pytest.mark.parametrize("length", [0, 3, 64, 1001, 70_000])
def test_apply_mask_into_in_place(length: int) -> None:
    rng = random.Random(SEED + length)
    data = rng.randbytes(length)
    key = rng.randbytes(4)
    buf = bytearray(data)
    _speedups.apply_mask_into(buf, key, buf)
    assert bytes(buf) == pure_apply_mask(data, key)
    view = memoryview(buf)
    _speedups.apply_mask_into(view, key, view)
    assert bytes(buf) == data


def test_apply_mask_into_errors() -> None:
    buf = bytearray(32)
    with pytest.raises(ValueError, match=MASK_ERROR):
        _speedups.apply_mask_into(b"x" * 32, b"abc", buf)
    with pytest.raises(ValueError, match="same length"):
        _speedups.apply_mask_into(b"x" * 31, b"abcd", buf)
    with pytest.raises(ValueError, match="overlap"):
        view = memoryview(buf)
        _speedups.apply_mask_into(view[:16], b"abcd", view[4:20])
    with pytest.raises(TypeError):
        _speedups.apply_mask_into(b"x" * 4, b"abcd", b"ro!!")


# wsjet.core.mask picks the implementation; mask.COMPILED and
# wsjet.speedups_enabled() must tell the truth.


def test_mask_module_in_this_process() -> None:
    forced_pure = bool(os.environ.get("WSJET_NO_EXTENSIONS"))
    assert mask.COMPILED is not forced_pure
    assert wsjet.speedups_enabled() is not forced_pure
    expected = _mask.apply_mask if forced_pure else _speedups.apply_mask
    assert mask.apply_mask is expected


PROBE = (
    "import wsjet; from wsjet.core import _mask, _speedups, connection, mask; "
    "print(mask.COMPILED, wsjet.speedups_enabled(), connection.__file__.endswith('.py'), "
    "mask.apply_mask is _speedups.apply_mask, "
    "mask.apply_mask is _mask.apply_mask)"
)


def run_python(code: str, env_var: str, value: str | None) -> str:
    """Run ``code`` in a fresh interpreter with ``env_var`` set to ``value`` (None:
    unset); return its output."""
    env = {k: v for k, v in os.environ.items() if k != env_var}
    if value is not None:
        env[env_var] = value
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def run_probe(no_extensions: bool) -> str:
    return run_python(PROBE, "WSJET_NO_EXTENSIONS", "1" if no_extensions else None)


AVX2_PROBE = (
    "import random; from wsjet.core import _mask, _speedups; rng = random.Random(6455); "
    "lengths = [n + d for n in (256, 384, 512, 4096, 65536) for d in range(-3, 36)]; "
    "ok = all(_speedups.apply_mask(data, key) == _mask.apply_mask(data, key) "
    "for n in lengths for data, key in [(rng.randbytes(n), rng.randbytes(4))]); "
    "print(_speedups.AVX2, ok)"
)


def cpu_has_avx2() -> bool:
    with open("/proc/cpuinfo") as cpuinfo:
        return any(line.startswith("flags") and "avx2" in line.split() for line in cpuinfo)


@pytest.mark.parametrize("disabled", [False, True])
def test_avx2_dispatch_and_the_sse2_loop_it_replaces(disabled: bool) -> None:
    """The AVX2 loop runs exactly where the CPU has AVX2; WSJET_NO_AVX2 keeps
    the SSE2 loop for long payloads too. Both agree with the pure twin."""
    output = run_python(AVX2_PROBE, "WSJET_NO_AVX2", "1" if disabled else None)
    expected = 0 if disabled or sys.platform != "linux" else int(cpu_has_avx2())
    assert output.split() == [str(expected), "True"]


def test_speedups_enabled_by_default() -> None:
    assert run_probe(no_extensions=False) == "True True False True False"


def test_no_extensions_forces_pure_python() -> None:
    assert run_probe(no_extensions=True) == "False False True False True"


@pytest.mark.parametrize("first", sorted(wsjet.core.COMPILED_MODULES))
def test_no_extensions_holds_whichever_module_is_imported_first(first: str) -> None:
    # Found before wsjet.core had read WSJET_NO_EXTENSIONS, a compiled module
    # used to load as C and fail on the pure-Python classes it derives from.
    probe = (
        f"import importlib; module = importlib.import_module({first!r}); "
        "import wsjet; print(module.__file__.endswith('.py'), wsjet.speedups_enabled())"
    )
    env = {**os.environ, "WSJET_NO_EXTENSIONS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]


# extract_payload: the parser's one-call unmasking of a payload in its buffer.


def test_extract_payload_parity_on_random_ranges() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        buf = bytearray(rng.randbytes(rng.randint(0, 400)))
        start = rng.randint(-2, len(buf) + 2)
        stop = rng.randint(start - 2, len(buf) + 3)
        key_at = rng.choice([-1, -2, rng.randint(0, len(buf) + 1), len(buf) - 4, len(buf) - 3])
        outcomes = []
        for fn in (_mask.extract_payload, _speedups.extract_payload):
            try:
                outcomes.append(("ok", fn(buf, start, stop, key_at)))
            except ValueError as exc:
                outcomes.append(("error", str(exc)))
        assert outcomes[0] == outcomes[1], (len(buf), start, stop, key_at)
        if outcomes[0][0] == "ok":
            key = bytes(4) if key_at == -1 else bytes(buf[key_at : key_at + 4])
            assert outcomes[0][1] == pure_apply_mask(buf[start:stop], key)


def test_extract_payload_large_and_aliasing() -> None:
    buf = bytearray(os.urandom(2**20 + 14))
    key = bytes(buf[10:14])
    expected = pure_apply_mask(buf[14:], key)
    assert _speedups.extract_payload(buf, 14, len(buf), 10) == expected
    assert _mask.extract_payload(memoryview(buf), 14, len(buf), 10) == expected
    assert _speedups.extract_payload(bytes(buf), 0, 3, -1) == bytes(buf[:3])


# new_payload / fill_payload / finish_payload: messages assembled in place.


def test_payload_assembly_parity() -> None:
    rng = random.Random(11)
    for _ in range(500):
        message = rng.randbytes(rng.randint(2, 3000))
        key = rng.randbytes(4) if rng.random() < 0.7 else None
        wire = message if key is None else pure_apply_mask(message, key)
        results = []
        for twin in (_mask, _speedups):
            target = twin.new_payload(len(message))
            at = 0
            while at < len(message):
                n = rng.randint(0, len(message) - at)
                source = b"pad" + wire[at : at + n] + b"pad"
                rotated = None if key is None else key[at % 4 :] + key[: at % 4]
                twin.fill_payload(target, at, source, 3, 3 + n, rotated)
                at += n
            results.append(twin.finish_payload(target))
        assert results[0] == results[1] == message


@pytest.mark.parametrize("twin", [_mask, _speedups])
def test_payload_assembly_errors(twin: Any) -> None:
    with pytest.raises(ValueError):
        twin.new_payload(1)
    target = twin.new_payload(8)
    with pytest.raises(ValueError, match="outside the message"):
        twin.fill_payload(target, 5, b"abcd", 0, 4, None)
    with pytest.raises(ValueError, match="source range"):
        twin.fill_payload(target, 0, b"abcd", 2, 9, None)
    with pytest.raises(ValueError, match="4 bytes"):
        twin.fill_payload(target, 0, b"abcd", 0, 4, b"abc")
    twin.fill_payload(target, 4, b"abcd", 0, 4, None)
    assert twin.finish_payload(target)[4:] == b"abcd"


def reference_frame(first: int, data: bytes, mask: bytes | None) -> bytes:
    """RFC 6455 §5.2 spelled out: a third opinion on encode_frame()."""
    length = len(data)
    masked = 0x80 if mask is not None else 0
    if length <= 125:
        header = bytes([first, masked | length])
    elif length <= 0xFFFF:
        header = bytes([first, masked | 126, length >> 8, length & 0xFF])
    else:
        octets = [(length >> shift) & 0xFF for shift in range(56, -8, -8)]
        header = bytes([first, masked | 127, *octets])
    if mask is None:
        return header + data
    return header + mask + naive(data, mask)


@pytest.mark.parametrize("masked", [False, True])
def test_encode_frame_parity(masked: bool) -> None:
    rng = random.Random(5)
    sizes = [*range(0, 200), 1023, 1024, 4095, 65535, 65536, 2**20 + 3]
    for size in sizes:
        first = rng.randrange(256)
        data = rng.randbytes(size)
        key = rng.randbytes(4) if masked else None
        expected = reference_frame(first, data, key) if size < 70000 else None
        pure = _mask.encode_frame(first, data, key)
        for payload in (data, bytearray(data), memoryview(b"xx" + data)[2:]):
            assert _speedups.encode_frame(first, payload, key) == pure
            assert _mask.encode_frame(first, payload, key) == pure
        assert expected is None or pure == expected, f"size {size}"
    for twin in (_mask, _speedups):
        with pytest.raises(ValueError, match="4 bytes"):
            twin.encode_frame(0x82, b"x", b"abc")
        for first in (-1, 256):
            with pytest.raises(ValueError, match="octet"):
                twin.encode_frame(first, b"x", None)


@pytest.mark.parametrize("masked", [False, True])
def test_encode_header_parity(masked: bool) -> None:
    rng = random.Random(7)
    lengths = [
        *range(0, 200),
        *(n + d for n in (0xFFFF, 0x10000, 2**32, 2**48) for d in (-1, 0, 1)),
        2**63 - 1,
    ]
    for length in lengths:
        first = rng.randrange(256)
        key = rng.randbytes(4) if masked else None
        header = _speedups.encode_header(first, length, key)
        assert _mask.encode_header(first, length, key) == header
        if length < 70000:  # the reference builds the payload too
            assert reference_frame(first, bytes(length), key)[: len(header)] == header
        else:
            assert header[1] & 0x7F == 127
            assert int.from_bytes(header[2:10], "big") == length
        assert _speedups.encode_header(first, length, memoryview(key) if key else None) == header
    for twin in (_mask, _speedups):
        with pytest.raises(ValueError, match="4 bytes"):
            twin.encode_header(0x82, 1, b"abcde")
        for first in (-1, 256):
            with pytest.raises(ValueError, match="octet"):
                twin.encode_header(first, 1, None)
        for length in (-1, 2**63, 2**64, 2**100):
            with pytest.raises(ValueError, match="2\\*\\*63"):
                twin.encode_header(0x82, length, None)


def test_compiled_connection_unmasks_through_the_capsule_or_the_pure_twin() -> None:
    # The compiled connection calls _speedups.extract_payload through the capsule
    # _C_API (_speedups_api.h), with C integers; without the extension it falls
    # back to the pure twin. Both runs parse the same frames: a text, a masked
    # binary frame over 256 bytes (offsets past the small-integer cache), a ping.
    code = """
import sys
if BLOCK:
    sys.modules["wsjet.core._speedups"] = None  # as if the C build had failed
from wsjet.core import connection, mask
from wsjet.core.connection import Connection, Side
assert connection.__file__.endswith(".so"), connection.__file__
client = Connection(Side.CLIENT, mask_key=lambda: bytes([15, 30, 45, 60]))
client.send_text("h\\u00e9llo".encode())
client.send_binary(bytes(range(256)) * 3)
client.send_ping(b"p")
wire = bytearray(b"".join(client.data_to_send()))
server = Connection(Side.SERVER)
server.receive_from(wire, len(wire))
events = server.events_received()
print(mask.COMPILED, [type(e).__name__ for e in events], events[0].data,
      events[1].data == bytes(range(256)) * 3, events[2].data)
"""
    for block, compiled in (("False", "True"), ("True", "False")):
        output = run_python(code.replace("BLOCK", block), "WSJET_NO_EXTENSIONS", None)
        assert output == (
            f"{compiled} ['DataReceived', 'DataReceived', 'PingReceived'] héllo True b'p'"
        )
    assert type(_speedups._C_API).__name__ == "PyCapsule"
