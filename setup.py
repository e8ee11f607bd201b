"""Build the optional C extensions: ``wsjet.core._speedups``, ``wsjet._awaitable`` and
the Cython-compiled modules.

All package metadata lives in pyproject.toml; this file only declares the
extension and how a failed build is handled. The environment variable
``WSJET_BUILD_EXTENSION`` chooses:

* ``optional`` (the default, also when unset or empty): try to build; if the
  compiler is missing or fails, print a warning and install the pure-Python
  package, which works the same, only slower.
* ``required``: a failed build fails the installation.
* ``skip``: do not try to build; install the pure-Python package.

At run time ``wsjet.core.mask.speedups_enabled()`` tells which one is in use.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

ENV_VAR = "WSJET_BUILD_EXTENSION"
MODES = ("optional", "required", "skip")

# What a missing or failing compiler raises: CompileError/LinkError are
# CCompilerErrors; a compiler that cannot be found or started gives an
# ExecError or PlatformError (BaseError) or an OSError.
BUILD_ERRORS = (CCompilerError, BaseError, OSError)


def build_mode() -> str:
    mode = os.environ.get(ENV_VAR, "").strip().lower() or "optional"
    if mode not in MODES:
        sys.exit(f"error: {ENV_VAR}={mode!r} is not one of {', '.join(MODES)}")
    return mode


def warn_pure_python(what: str, exc: BaseException) -> None:
    bar = "*" * 76
    sys.stderr.write(
        f"\n{bar}\n"
        f"WARNING: could not build {what}: {type(exc).__name__}: {exc}\n"
        "wsjet is installed WITHOUT its C speedups; the pure-Python code is used\n"
        "(same behaviour, slower masking). Set WSJET_BUILD_EXTENSION=required to\n"
        "make this an error, or WSJET_BUILD_EXTENSION=skip to not try.\n"
        f"{bar}\n\n"
    )
    sys.stderr.flush()


def fail_required(what: str, exc: BaseException) -> None:
    sys.stderr.write(
        f"\nERROR: could not build {what}: {type(exc).__name__}: {exc}\n"
        f"{ENV_VAR}=required, so the installation fails. Unset it to fall back\n"
        "to the pure-Python package.\n\n"
    )
    sys.stderr.flush()


class OptionalBuildExt(build_ext):
    """build_ext that obeys WSJET_BUILD_EXTENSION for failed builds."""

    _reported: BaseException | None = None

    def finalize_options(self) -> None:
        super().finalize_options()
        # Ten extensions: compile them on every core (a fresh CI machine has 2).
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self) -> None:
        # gcc and clang both report compiler_type "unix"; MSVC optimizes with
        # /O2 by default. -O3 comes after the interpreter's CFLAGS, so it wins.
        if self.compiler.compiler_type == "unix":
            for ext in self.extensions:
                ext.extra_compile_args = [*ext.extra_compile_args, "-O3"]
        super().build_extensions()

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as exc:
            if build_mode() == "required":
                fail_required(f"the C extension {ext.name}", exc)
                self._reported = exc
                raise
            warn_pure_python(f"the C extension {ext.name}", exc)
            # Lets setuptools skip the missing file when copying an in-place
            # (editable) build back into the source tree.
            ext.optional = True

    def run(self) -> None:
        # Also covers errors raised before any extension is compiled, such as
        # no usable compiler on the platform at all.
        try:
            super().run()
        except BUILD_ERRORS as exc:
            if build_mode() == "required":
                if exc is not self._reported:
                    fail_required("the C extensions", exc)
                raise
            warn_pure_python("the C extensions", exc)


#: Modules compiled by Cython from their own .py source ("pure Python mode",
#: typed by the .pxd beside each). Keep in step with wsjet.core.COMPILED_MODULES.
CYTHON_MODULES = [
    "wsjet.broadcast",
    "wsjet.core.connection",
    "wsjet.core.events",
    "wsjet.stream.buffer",
    "wsjet.stream.reader",
    "wsjet.stream.writer",
    "wsjet.engine",
    "wsjet.delivery",
]

#: The C functions _speedups hands the Cython modules (through a capsule).
SPEEDUPS_API = "src/wsjet/core/_speedups_api.h"

CYTHON_DIRECTIVES = {
    "language_level": 3,
    # The .py annotations are for mypy and readers; C types come from the .pxd.
    "annotation_typing": False,
    "embedsignature": True,
}


def cython_extensions() -> list[Extension]:
    """The Cython-compiled twins of CYTHON_MODULES, or none if Cython is missing."""
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        if build_mode() == "required":
            fail_required("the Cython modules", exc)
            raise
        warn_pure_python("the Cython modules", exc)
        return []
    extensions = [
        # wsjet/core/mask.pxd declares the C functions of wsjet/core/_speedups_api.h.
        Extension(
            name,
            sources=[f"src/{name.replace('.', '/')}.py"],
            include_dirs=["src"],
            depends=[SPEEDUPS_API],
        )
        for name in CYTHON_MODULES
    ]
    result: list[Extension] = cythonize(
        extensions,
        compiler_directives=CYTHON_DIRECTIVES,
        build_dir="build/cython",
        quiet=True,
        nthreads=os.cpu_count() or 1,  # Cython's translation, one process per core
        include_path=["src"],
    )
    return result


def ext_modules() -> list[Extension]:
    if build_mode() == "skip":
        return []
    return [
        Extension(
            "wsjet.core._speedups",
            sources=["src/wsjet/core/_speedups.c"],
            depends=[SPEEDUPS_API],
        ),
        Extension("wsjet._awaitable", sources=["src/wsjet/_awaitable.c"]),
        *cython_extensions(),
    ]


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
