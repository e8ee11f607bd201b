"""The rules that keep a compiled base class and its Python subclasses in step.

``Engine`` (base of ``WebSocketCommonProtocol``) and ``MessageDelivery`` (base
of ``Client``) are extension types when compiled: each attribute declared in
their ``.pxd`` is a C field behind a descriptor. A class attribute of the same
name in a subclass (a default like ``_lost = False``) would shadow that
descriptor: Python code would then read and write the instance ``__dict__``
while the compiled base reads its C field. Only the compiled path would break,
so this test reads the ``.pxd`` files and checks every subclass in wsjet, on
both paths.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# Every module that defines a subclass is imported, so that __subclasses__() sees it.
import wsjet.callbacks
import wsjet.callbacks_client
import wsjet.client
import wsjet.server
from wsjet.delivery import MessageDelivery
from wsjet.engine import Engine

FIELD = re.compile(r"^\s+cdef\s+public\s+\w+\s+(\w+)\s*$", re.MULTILINE)


def declared_fields(module_file: str | None) -> set[str]:
    """The ``cdef public`` fields of the .pxd beside a module."""
    assert module_file is not None
    pxd = Path(module_file).parent / (Path(module_file).name.split(".")[0] + ".pxd")
    return set(FIELD.findall(pxd.read_text()))


def all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    direct: list[type] = type.__subclasses__(cls)
    for sub in direct:
        found.add(sub)
        found |= all_subclasses(sub)
    return found


@pytest.mark.parametrize(
    ("base", "module_file"),
    [
        (Engine, wsjet.engine.__file__),
        (MessageDelivery, wsjet.delivery.__file__),
    ],
    ids=["Engine", "MessageDelivery"],
)
def test_no_subclass_shadows_a_field_of_its_compiled_base(base: type, module_file: str) -> None:
    fields = declared_fields(module_file)
    assert len(fields) >= 10, fields  # the .pxd was found and parsed
    subclasses = {cls for cls in all_subclasses(base) if cls.__module__.startswith("wsjet")}
    assert subclasses, f"no subclass of {base.__name__} found"
    shadowed = {
        f"{cls.__qualname__}.{name}" for cls in subclasses for name in fields & set(vars(cls))
    }
    assert not shadowed, f"class attributes shadow fields of {base.__name__}: {shadowed}"
