"""Sans-I/O core of wsjet: no asyncio, sockets, TLS or clocks in here.

Some modules of the core are compiled: Cython turns their own ``.py`` source,
typed by the ``.pxd`` file beside it, into a C extension installed next to the
``.py``, and Python imports the extension first. Both are the same code, so
the ``.py`` is the specification and the pure-Python path at once.

``WSJET_NO_EXTENSIONS=1`` in the environment (read when wsjet is imported)
forces the pure-Python path: the compiled modules are then imported from their
``.py`` source, and the compiled masking of :mod:`wsjet.core.mask` is not used.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["COMPILED_MODULES", "NO_EXTENSIONS", "speedups_enabled"]

#: Modules that setup.py compiles with Cython from their own source.
COMPILED_MODULES = frozenset(
    {
        "wsjet.broadcast",
        "wsjet.core.connection",
        "wsjet.core.events",
        "wsjet.delivery",
        "wsjet.engine",
        "wsjet.stream.buffer",
        "wsjet.stream.reader",
        "wsjet.stream.writer",
    }
)

#: Whether ``WSJET_NO_EXTENSIONS`` asks for the pure-Python path.
NO_EXTENSIONS = bool(os.environ.get("WSJET_NO_EXTENSIONS"))


class _SourceFirstFinder(importlib.abc.MetaPathFinder):
    """Import the compiled modules from their ``.py`` source, skipping the extension."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES or path is None:
            return None
        source = os.path.join(path[0], fullname.rpartition(".")[2] + ".py")
        return importlib.util.spec_from_file_location(fullname, source)


if NO_EXTENSIONS and not any(isinstance(f, _SourceFirstFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _SourceFirstFinder())


def speedups_enabled() -> bool:
    """Tell whether the compiled hot path is in use.

    True when masking, :class:`wsjet.awaitable.Completed` and every module of
    :data:`COMPILED_MODULES` run as C extensions; False on the pure-Python path
    (``WSJET_NO_EXTENSIONS=1``, or an installation built without a compiler).
    """
    from . import mask

    if not mask.COMPILED or not importlib.import_module("wsjet.awaitable").COMPILED:
        return False
    for name in COMPILED_MODULES:
        origin = importlib.import_module(name).__file__ or ""
        if not origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            return False
    return True
