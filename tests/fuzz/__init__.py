"""Fuzz targets for wsjet's parsers (issue 6), run with atheris or a built-in driver.

``python -m tests.fuzz.run TARGET [libFuzzer options]`` fuzzes one target with
atheris (coverage-guided, seeded with :mod:`tests.fuzz.seeds`);
``python -m tests.fuzz.run --all --runs N`` runs every target for N executions,
each in its own process; ``--driver builtin`` uses the seeded random mutator of
:mod:`tests.fuzz.driver` instead of atheris. ``tests/fuzz/test_fuzz_short.py``
is the CI variant.

A target passes an input when it returns or raises one of the exceptions
documented for the API it drives; anything else is a crash.
"""
