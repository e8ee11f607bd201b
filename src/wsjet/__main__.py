"""``python -m wsjet``: the command line (see :mod:`wsjet.cli`)."""

from .cli import main

if __name__ == "__main__":
    main()
