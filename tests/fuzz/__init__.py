"""Fuzz targets for wsjet's parsers (issue 6), run with atheris or a built-in driver.

``scripts/fuzz.sh`` is the full variant: every target coverage-guided under
libFuzzer (atheris) for a million executions, two at a time, with a 1 s limit
per input and 256 MiB of memory. ``python -m tests.fuzz.run TARGET [libFuzzer
options]`` fuzzes one target; ``--all --runs N`` runs every target for N
executions, each in its own process; ``TARGET --replay FILE...`` reruns saved
inputs; ``--driver builtin`` uses the seeded random mutator of
:mod:`tests.fuzz.driver` instead of atheris (never under CI).
``tests/fuzz/test_fuzz_short.py`` is the short variant pytest runs.

A target passes an input when it returns or raises one of the exceptions
documented for the API it drives; anything else is a crash. The frame targets
and ``core_chunks`` also compare the core as imported (compiled where it is
built) with its pure-Python twin (:mod:`tests.fuzz._twins`) on every input.
"""
