"""``wsjet.awaitable``: ``Completed`` and ``send_in_context``, compiled and pure.

Every check runs on both twins, imported directly: the compiled
``wsjet._awaitable`` is required (this file fails to import without it, as
tests/core/test_speedups_parity.py does for masking), and the pure-Python
specification in ``wsjet.awaitable``. How the callback face uses them
(``reader.get()``, ``writer.send()``) is tested in tests/test_callback_face.py.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import gc
import os
import sys
import types
from collections.abc import Generator
from typing import Any

import pytest

from wsjet import awaitable

from .utils import import_compiled

_awaitable = import_compiled("wsjet._awaitable", "wsjet.awaitable")

TWINS = [
    pytest.param((_awaitable.Completed, _awaitable.send_in_context, _awaitable.FINISHED), id="C"),
    pytest.param(
        (awaitable.PureCompleted, awaitable.pure_send_in_context, awaitable.PURE_FINISHED),
        id="pure",
    ),
]
VALUES = [None, 0, "text", b"bytes", (1, 2), (), [3], StopIteration("inner"), ValueError()]


@pytest.fixture(params=TWINS)
def twin(request: pytest.FixtureRequest) -> tuple[Any, Any, object]:
    return request.param  # type: ignore[no-any-return]


def test_selected_twin_follows_the_build() -> None:
    if os.environ.get("WSJET_NO_EXTENSIONS"):
        assert awaitable.Completed is awaitable.PureCompleted
        assert not awaitable.COMPILED
    else:
        assert awaitable.Completed is _awaitable.Completed
        assert awaitable.send_in_context is _awaitable.send_in_context
        assert awaitable.COMPILED


# --- Completed ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", VALUES, ids=repr)
async def test_await_gives_the_value(twin: tuple[Any, Any, object], value: object) -> None:
    completed = twin[0](value)
    assert await completed is value
    assert await completed is value  # awaitable again, with the same result


async def test_default_value_is_none(twin: tuple[Any, Any, object]) -> None:
    assert await twin[0]() is None


def test_constructor_arguments(twin: tuple[Any, Any, object]) -> None:
    with pytest.raises(TypeError):
        twin[0](1, 2)
    with pytest.raises(TypeError):
        twin[0](value=1)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_send_and_next_raise_stop_iteration_with_the_value(
    twin: tuple[Any, Any, object], value: object
) -> None:
    completed = twin[0](value)
    with pytest.raises(StopIteration) as info:
        completed.send(None)
    assert info.value.value is value
    iterator = completed.__await__()
    with pytest.raises(StopIteration) as info:
        next(iterator)
    assert info.value.value is value


def test_is_a_coroutine_for_asyncio(twin: tuple[Any, Any, object]) -> None:
    completed = twin[0](1)
    assert isinstance(completed, collections.abc.Coroutine)
    assert isinstance(completed, collections.abc.Awaitable)
    assert asyncio.iscoroutine(completed)
    assert repr(completed) == "<Completed 1>"


async def test_tasks_and_gather_take_it(twin: tuple[Any, Any, object]) -> None:
    assert await asyncio.create_task(twin[0]("task")) == "task"
    assert await asyncio.gather(twin[0](1), twin[0](2)) == [1, 2]
    assert await asyncio.wait_for(twin[0](3), 1) == 3
    task = asyncio.create_task(twin[0](4))
    task.cancel()  # before its first step: it never runs
    with pytest.raises(asyncio.CancelledError):
        await task


def test_throw_raises_what_it_is_given(twin: tuple[Any, Any, object]) -> None:
    completed = twin[0](1)
    error = ValueError("given")
    with pytest.raises(ValueError) as info:
        completed.throw(error)
    assert info.value is error
    with pytest.raises(KeyError, match="k"):
        completed.throw(KeyError, "k")
    with pytest.raises(OSError) as oserror:
        completed.throw(OSError, (2, "missing"))
    assert oserror.value.errno == 2
    with pytest.raises(ZeroDivisionError):
        completed.throw(ZeroDivisionError)
    try:
        raise RuntimeError("with a traceback")
    except RuntimeError as exc:
        traceback = exc.__traceback__
    with pytest.raises(LookupError) as lookup:
        completed.throw(LookupError, None, traceback)
    assert lookup.value.__traceback__ is not None
    assert lookup.value.__traceback__.tb_next is traceback or any(
        tb is traceback for tb in _walk(lookup.value.__traceback__)
    )
    with pytest.raises(TypeError, match="deriving from BaseException"):
        completed.throw(42)
    with pytest.raises(TypeError, match="separate value"):
        completed.throw(ValueError("x"), "y")
    assert completed.close() is None


def _walk(tb: types.TracebackType | None) -> Generator[types.TracebackType, None, None]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_holds_its_value_and_nothing_else(twin: tuple[Any, Any, object]) -> None:
    value = bytearray(b"x")
    refs = sys.getrefcount(value)
    completed = twin[0](value)
    assert sys.getrefcount(value) == refs + 1
    del completed
    gc.collect()
    assert sys.getrefcount(value) == refs


# --- send_in_context ------------------------------------------------------------------------

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outside")


async def _returns(log: list[str]) -> str:
    log.append(var.get())
    var.set("set inside")
    return "result"


async def _suspends(log: list[str]) -> None:
    log.append(var.get())
    var.set("set inside")
    await asyncio.sleep(0)
    log.append(var.get())


async def _fails() -> None:
    raise KeyError("from the coroutine")


def test_send_in_context_of_a_coroutine_that_returns(twin: tuple[Any, Any, object]) -> None:
    _, send_in_context, finished = twin
    context = contextvars.copy_context()
    context.run(var.set, "in the context")
    log: list[str] = []
    assert send_in_context(context, _returns(log)) is finished
    assert log == ["in the context"]
    assert context[var] == "set inside"  # the coroutine ran in that context
    assert var.get() == "outside"  # and left the caller's alone


async def test_send_in_context_of_a_coroutine_that_suspends(
    twin: tuple[Any, Any, object],
) -> None:
    _, send_in_context, finished = twin
    context = contextvars.copy_context()
    log: list[str] = []
    coro = _suspends(log)
    yielded = send_in_context(context, coro)
    assert yielded is None  # asyncio.sleep(0) yields None: not FINISHED
    assert yielded is not finished
    assert var.get() == "outside"
    assert send_in_context(context, coro) is finished
    assert log == ["outside", "set inside"]


def test_send_in_context_propagates_errors(twin: tuple[Any, Any, object]) -> None:
    _, send_in_context, _ = twin
    context = contextvars.copy_context()
    with pytest.raises(KeyError, match="from the coroutine"):
        send_in_context(context, _fails())
    with pytest.raises(AttributeError):
        send_in_context(context, None)  # not a coroutine: it has no send()
    # The context was left in both cases: it can be entered again.
    assert context.run(var.get) == "outside"


def test_send_in_context_of_another_kind_of_coroutine(twin: tuple[Any, Any, object]) -> None:
    completed, send_in_context, finished = twin
    context = contextvars.copy_context()
    assert send_in_context(context, completed("dropped")) is finished


def test_send_in_context_checks_its_context() -> None:
    coro = _returns([])
    with pytest.raises(TypeError, match=r"contextvars\.Context"):
        _awaitable.send_in_context({}, coro)  # type: ignore[arg-type]
    coro.close()
