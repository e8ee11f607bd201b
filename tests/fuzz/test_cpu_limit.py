"""The fuzzers' limit per input is on CPU time, not on the wall clock (run.CpuLimited)."""

from __future__ import annotations

import time

import pytest

from .run import CpuLimited, SlowInput


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_an_input_over_its_cpu_time_is_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    limited = CpuLimited(lambda data: _burn(0.2), limit=0.05)
    with pytest.raises(SlowInput, match=r"a 3-byte input took 0\.2\d\d s of CPU"):
        limited(b"abc")
    assert limited.slowest >= 0.2
    assert "slowest input so far: 0.2" in capsys.readouterr().err


def test_waiting_is_not_cpu_time() -> None:
    # A stalled machine delays an input without making it work: no crash.
    limited = CpuLimited(lambda data: time.sleep(0.2), limit=0.05)
    limited(b"")
    assert limited.slowest < 0.05


def test_only_new_slowest_inputs_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    limited = CpuLimited(lambda data: _burn(len(data) / 1000), limit=1)
    for size in (20, 5, 30, 10):
        limited(bytes(size))
    reported = capsys.readouterr().err.count("slowest input so far")
    assert reported == 2
    assert 0.03 <= limited.slowest < 0.5
