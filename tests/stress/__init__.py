"""The reliability and security battery (issue 6).

Each module is one scenario: an ``async def run(**params) -> dict`` whose
parameters (counts, durations) scale it, a ``FULL`` and a ``SHORT`` set of
parameters, and a ``check(result) -> list[str]`` that lists the targets the
figures miss. ``python -m tests.stress.<name>`` runs the full variant and prints
its figures; ``--short`` runs the CI variant; ``--json`` prints JSON.
``tests/stress/test_stress_short.py`` runs every short variant under pytest.

Servers under attack run in a subprocess (:mod:`tests.stress._server`) so that
their memory (``VmRSS`` / ``VmHWM`` of ``/proc/<pid>/status``), file
descriptors (``/proc/<pid>/fd``) and asyncio tasks are measured without the
attacker's own allocations. Attack traffic only ever goes to 127.0.0.1, and
every loop is bounded in count and time.

Timings: a server's timer (open, keepalive, close) starts at an instant the
attacker does not see exactly, between two of its own steps (the connect and
its return, say). On a loaded machine the attacker can resume seconds after
that instant. So each bound is checked on the clock that cannot err in its
favour: a lower bound on a clock started before the step (it can only read
longer than the server's timer), an upper bound on one started after it (it
can only read shorter, but for the time taken to notice the end). See
``slowloris``, ``malformed``, ``keepalive`` and ``close_handshake``.
"""
