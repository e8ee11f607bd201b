"""Pure-Python twins of wsjet modules that may be compiled.

Cython compiles a module's own ``.py`` file into an extension that sits next to
it (``connection.py`` and ``connection.cpython-311-x86_64-linux-gnu.so``), and
the import system prefers the extension: ``import wsjet.core.connection`` then
runs compiled code. The parity targets need the pure code as well, from the
very same source. :func:`pure_twin` executes the ``.py`` file as a new module
under a private name, ``wsjet.core._pure_connection``: the name keeps the
``wsjet.core.`` prefix so that the twin's relative imports (``from .frames
import ...``) resolve inside the real package.

A twin is a separate module with classes of its own: pass its ``Side`` to its
``Connection``, compare its states with its ``State``. Both implementations
raise the shared :mod:`wsjet.exceptions` and emit the shared
:mod:`wsjet.core.events` unless those are twinned too.

When no extension is present, the imported module and its twin run the same
code and a comparison between them is trivially equal; :func:`describe` says
which case it is, and the fuzz runner prints it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import CodeType, ModuleType, SimpleNamespace

PRIVATE_PREFIX = "_pure_"
#: The modules whose twins :func:`pure_core` loads: the parity targets cover these.
COVERED = frozenset(
    {"wsjet.core.connection", "wsjet.core.events", "wsjet.core.frames", "wsjet.core.deflate"}
)

#: Applied to the code of a twin whose imported module is compiled, before it
#: runs: the atheris runner sets it to ``atheris.patch_code``, since its import
#: hook never sees a twin. Where the imported module is the pure one, the hook
#: instruments that, and one instrumented copy of the code is enough coverage.
instrument: Callable[[CodeType], CodeType] | None = None


def source_path(name: str) -> Path:
    """The ``.py`` file of module ``name``, whether or not the import loads it."""
    parent, _, leaf = name.rpartition(".")
    package = importlib.import_module(parent)
    for entry in package.__path__:
        candidate = Path(entry) / f"{leaf}.py"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no source file for {name} in {list(package.__path__)}")


def is_compiled(module: ModuleType) -> bool:
    """Tell whether ``module`` was loaded from an extension rather than Python source."""
    spec = module.__spec__
    if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
        return True
    origin = getattr(module, "__file__", None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_modules(package: str = "wsjet") -> list[str]:
    """Modules of ``package`` with an extension, built from their own ``.py``, beside it."""
    root = Path(importlib.import_module(package).__file__ or ".").parent
    found = set()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for extension in root.rglob(f"*{suffix}"):
            source = extension.with_name(extension.name[: -len(suffix)] + ".py")
            if source.is_file():
                found.add(".".join(source.relative_to(root.parent).with_suffix("").parts))
    return sorted(found)


def describe(module: ModuleType) -> str:
    """One line: which implementation ``import`` gave for ``module``."""
    kind = "compiled" if is_compiled(module) else "pure Python"
    return f"{module.__name__}: {kind} ({Path(module.__file__ or '?').name})"


@contextlib.contextmanager
def _substituted(modules: Mapping[str, ModuleType]) -> Iterator[None]:
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def pure_twin(name: str, *, substitutes: Mapping[str, ModuleType] | None = None) -> ModuleType:
    """Execute module ``name``'s ``.py`` source as ``<package>._pure_<leaf>``.

    Args:
        name: a module of a package, e.g. ``"wsjet.core.connection"``.
        substitutes: modules the twin's imports get instead of the real ones,
            by name (``{"wsjet.core.frames": frames_twin}``), only while the twin
            executes; its ``from .x import y`` lines then bind the substitutes'
            objects for good.

    The twin is registered in :data:`sys.modules` under its private name (as
    an import would: dataclasses and enums look their module up there), and a
    second call returns a fresh twin.
    """
    parent, _, leaf = name.rpartition(".")
    private = f"{parent}.{PRIVATE_PREFIX}{leaf}"
    spec = importlib.util.spec_from_file_location(private, source_path(name))
    assert spec is not None and spec.loader is not None, name
    module = importlib.util.module_from_spec(spec)
    code = spec.loader.get_code(private)  # type: ignore[attr-defined]
    assert isinstance(code, CodeType), name
    if instrument is not None and is_compiled(importlib.import_module(name)):
        code = instrument(code)
    sys.modules[private] = module
    try:
        with _substituted(substitutes or {}):
            exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(private, None)
        raise
    return module


def pure_core() -> SimpleNamespace:
    """Twins of the modules a :class:`~wsjet.core.connection.Connection` runs.

    Masking is the pure specification (:mod:`wsjet.core._mask`) in place of
    :mod:`wsjet.core.mask`, which picks the compiled one; ``frames``,
    ``events`` and ``connection`` are twins, the last importing the other two.
    ``deflate`` is a twin too, for the codecs handed to the twin ``Connection``.
    """
    from wsjet.core import _mask

    masking = {"wsjet.core.mask": _mask}
    frames = pure_twin("wsjet.core.frames", substitutes=masking)
    events = pure_twin("wsjet.core.events", substitutes={"wsjet.core.frames": frames})
    connection = pure_twin(
        "wsjet.core.connection",
        substitutes={**masking, "wsjet.core.frames": frames, "wsjet.core.events": events},
    )
    deflate = pure_twin("wsjet.core.deflate")
    return SimpleNamespace(
        connection=connection,
        frames=frames,
        events=events,
        deflate=deflate,
        apply_mask=_mask.apply_mask,
    )


def imported_core() -> SimpleNamespace:
    """The same namespace as :func:`pure_core`, from the modules ``import`` gives."""
    from wsjet.core import connection, deflate, events, frames, mask

    return SimpleNamespace(
        connection=connection,
        frames=frames,
        events=events,
        deflate=deflate,
        apply_mask=mask.apply_mask,
    )


def parity_case() -> str:
    """Say whether the imported core is compiled, i.e. whether parity is non-trivial."""
    from wsjet.core import _mask, connection, deflate, events, frames, mask

    compiled = [m for m in (connection, events, frames, deflate) if is_compiled(m)]
    lines = [describe(m) for m in (connection, events, frames, deflate)]
    compiled_masking = mask.apply_mask is not _mask.apply_mask
    lines.append(f"wsjet.core.mask.apply_mask: {'compiled' if compiled_masking else 'pure Python'}")
    if compiled:
        verdict = "parity: compiled vs pure twins (a real comparison)"
    elif compiled_masking:
        verdict = (
            "parity: the imported modules are the pure ones; only masking is "
            "compiled, so only masking is really compared"
        )
    else:
        verdict = "parity: everything imported is pure Python: trivially equal"
    uncovered = [name for name in compiled_modules() if name not in COVERED]
    if uncovered:
        lines.append(f"compiled but NOT compared with a pure twin: {', '.join(uncovered)}")
    return "; ".join([verdict, *lines])
