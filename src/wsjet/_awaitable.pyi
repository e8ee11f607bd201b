"""Type stub for the compiled ``wsjet._awaitable`` (see ``_awaitable.c``)."""

import contextvars
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, Final, TypeVar

_T = TypeVar("_T")

class Completed(Coroutine[Any, Any, _T]):
    """An awaitable whose result is already known: ``await`` returns ``value`` at once."""

    def __init__(self, value: _T = ..., /) -> None: ...
    def __await__(self) -> Generator[Any, None, _T]: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = ...,
        tb: TracebackType | None = ...,
        /,
    ) -> Any: ...
    def close(self) -> None: ...

FINISHED: Final[object]

def send_in_context(context: contextvars.Context, coro: Coroutine[Any, Any, Any], /) -> Any:
    """Send None into ``coro`` with ``context`` entered; what it yielded, or FINISHED."""
