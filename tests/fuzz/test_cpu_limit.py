"""The fuzzers' limit per input is on CPU time, not on the wall clock (run.CpuLimited).

Most tests drive a fake CPU clock that each call of the target advances by a
chosen amount, so that they do not depend on this machine's timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .run import CpuLimited, SlowInput


class FakeCpu:
    """A CPU clock that only the fake targets it makes move."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[bytes] = []

    def __call__(self) -> float:
        return self.now

    def target(self, cost: Callable[[bytes, int], float]) -> Callable[[bytes], None]:
        """A target whose ``n``-th call (from 1) takes ``cost(data, n)`` s of CPU."""

        def run(data: bytes) -> None:
            self.calls.append(data)
            self.now += cost(data, len(self.calls))

        return run


def test_an_input_over_its_cpu_time_is_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    cpu = FakeCpu()
    limited = CpuLimited(cpu.target(lambda data, n: 0.2 + n / 100), limit=0.05, clock=cpu)
    with pytest.raises(SlowInput, match=r"a 3-byte input took 0\.210 s of CPU in each of 3 runs"):
        limited(b"abc")
    assert cpu.calls == [b"abc"] * 3  # run again twice before it is called slow
    assert limited.slowest == pytest.approx(0.21)  # the fastest run
    assert "slowest input so far: 0.210000 s of CPU" in capsys.readouterr().err


def test_an_input_slow_only_once_is_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    # A collection or stolen time inflates one run; the input's own cost is the fastest run.
    cpu = FakeCpu()
    limited = CpuLimited(cpu.target(lambda data, n: 0.2 if n == 1 else 0.001), 0.05, clock=cpu)
    limited(b"abc")
    assert len(cpu.calls) == 2  # no third run once one is within the limit
    assert limited.slowest == pytest.approx(0.001)
    assert "slowest input so far: 0.001000 s of CPU" in capsys.readouterr().err


def test_only_new_slowest_inputs_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    cpu = FakeCpu()
    limited = CpuLimited(cpu.target(lambda data, n: len(data) / 1000), limit=1, clock=cpu)
    for size in (20, 5, 30, 10):
        limited(bytes(size))
    assert len(cpu.calls) == 4  # each within the limit, so run once
    reported = capsys.readouterr().err.count("slowest input so far")
    assert reported == 2
    assert limited.slowest == pytest.approx(0.03)


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_the_default_clock_counts_work() -> None:
    limited = CpuLimited(lambda data: _burn(0.1), limit=0.05, retries=0)
    with pytest.raises(SlowInput):
        limited(b"")
    assert limited.slowest >= 0.1


def test_waiting_is_not_cpu_time() -> None:
    # A stalled machine delays an input without making it work: no crash.
    limited = CpuLimited(lambda data: time.sleep(0.2), limit=0.05)
    limited(b"")
    assert limited.slowest < 0.05
