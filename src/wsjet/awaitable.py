"""``Completed``, an awaitable whose result is already known, and
``send_in_context()``, which starts a coroutine in a context; compiled when built.

``reader.get()`` of a message that has fully arrived and ``writer.send()`` of a
message the transport took at once have nothing left to wait for: they do
their work when called and return a ``Completed``, and awaiting it returns the
result without suspending. Only when they must wait do they return a real
coroutine. The compiled twin (``wsjet._awaitable``, C) hands the result to the
interpreter through the ``am_send`` slot: no coroutine, no await wrapper, no
``StopIteration`` per call.

A ``Completed`` is a :class:`collections.abc.Coroutine`: ``asyncio.create_task()``
and ``asyncio.gather()`` take it like the coroutine it stands for. Unlike a
coroutine it may be awaited more than once (each time giving the same result),
and dropping it unawaited loses nothing: its work was done when it was made.

``send_in_context(context, coro)`` is how the callback face starts a message
callback's coroutine: ``context.run(coro.send, None)``, but a coroutine that
returns gives :data:`FINISHED` rather than raising ``StopIteration``, which the
compiled twin never creates (it sends through ``PyIter_Send``).

``PureCompleted`` and ``pure_send_in_context`` below are the specification;
``WSJET_NO_EXTENSIONS=1`` selects them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from .core import NO_EXTENSIONS

__all__ = [
    "COMPILED",
    "FINISHED",
    "PURE_FINISHED",
    "Completed",
    "PureCompleted",
    "pure_send_in_context",
    "send_in_context",
]

_T = TypeVar("_T")


class PureCompleted(Coroutine[Any, Any, _T], Generic[_T]):
    """An awaitable whose result is already known: ``await`` returns ``value`` at once."""

    __slots__ = ("_value",)

    def __init__(self, value: _T = None, /) -> None:  # type: ignore[assignment]
        self._value = value

    def __await__(self) -> Generator[Any, None, _T]:
        return self._result()

    def _result(self) -> Generator[Any, None, _T]:
        return self._value
        yield  # pragma: no cover - never reached: it makes this a generator

    def send(self, value: Any) -> Any:
        """Like a coroutine that returns: raise ``StopIteration(result)``."""
        raise StopIteration(self._value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> Any:
        """Raise the exception: nothing is left to run that could catch it."""
        if isinstance(typ, BaseException):
            if val is not None:
                raise TypeError("instance exception may not have a separate value")
            exc = typ
        elif isinstance(typ, type) and issubclass(typ, BaseException):
            if isinstance(val, typ):
                exc = val
            elif val is None:
                exc = typ()
            elif isinstance(val, tuple):
                exc = typ(*val)
            else:
                exc = typ(val)
        else:
            raise TypeError(
                "exceptions must be classes or instances deriving from BaseException, "
                f"not {type(typ).__name__}"
            )
        if tb is not None:
            exc = exc.with_traceback(tb)
        raise exc

    def close(self) -> None:
        """Nothing to close."""

    def __repr__(self) -> str:
        return f"<Completed {self._value!r}>"


#: What :func:`pure_send_in_context` returns for a coroutine that finished.
PURE_FINISHED: Final = object()


def pure_send_in_context(context: contextvars.Context, coro: Coroutine[Any, Any, Any]) -> Any:
    """Send ``None`` into ``coro`` with ``context`` entered; return what it yielded.

    This is ``context.run(coro.send, None)``, except that a coroutine that
    returns gives :data:`FINISHED` (its result is dropped) instead of raising
    ``StopIteration``. An exception ``coro`` raises propagates.
    """
    try:
        return context.run(coro.send, None)
    except StopIteration:
        return PURE_FINISHED


#: Whether :data:`Completed` and :func:`send_in_context` are compiled (``wsjet._awaitable``).
COMPILED = False

if TYPE_CHECKING:  # both have the interface the stub _awaitable.pyi declares
    from ._awaitable import FINISHED, Completed, send_in_context
else:
    Completed, FINISHED, send_in_context = PureCompleted, PURE_FINISHED, pure_send_in_context
    if not NO_EXTENSIONS:
        try:
            from . import _awaitable
        except ImportError:  # the optional extension was not built
            pass
        else:
            Completed = _awaitable.Completed
            FINISHED = _awaitable.FINISHED
            send_in_context = _awaitable.send_in_context
            Coroutine.register(Completed)
            COMPILED = True
