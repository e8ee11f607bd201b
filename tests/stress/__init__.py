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
"""
