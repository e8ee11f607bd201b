"""``python -m wsjet``: the command line."""

from .cli import main

main()
