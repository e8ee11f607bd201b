"""Path routing for servers: :func:`route`, and :func:`chain_process_request`.

:func:`route` maps request paths to handlers. The :class:`Router` it returns
is both the connection handler and a ``process_request`` hook that answers
``404 Not Found`` with plain HTTP, *before* upgrading, when no route matches::

    router = wsjet.route({
        "/chat": chat,                  # chat(websocket)
        "/rooms/{name}": room,          # room(websocket, name="lobby")
        "/files/{rest:path}": files,    # files(websocket, rest="a/b.txt")
    })
    async with router.serve("127.0.0.1", 8765):
        ...
    # or, equivalently:
    async with wsjet.serve(router, "127.0.0.1", 8765, process_request=router.process_request):
        ...

A template is a path with parameters: ``{name}`` matches one non-empty path
segment (no ``/``), ``{name:path}`` matches the non-empty rest of the path,
slashes included. Parameter values are percent-decoded and passed to the
handler as keyword arguments. The query string is ignored for matching
(``websocket.path`` still has it). Routes are tried in the mapping's order;
the first match wins.
"""

from __future__ import annotations

import inspect
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .core import handshake
from .core.frames import CloseCode
from .core.http import Request, Response

if TYPE_CHECKING:
    from .server import WebSocketServerProtocol
    from .server import serve as Serve

__all__ = ["Router", "chain_process_request", "route"]

Handler = Callable[..., Awaitable[Any]]
ProcessRequest = Callable[
    ["WebSocketServerProtocol", Request], "Response | Awaitable[Response | None] | None"
]

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")


def chain_process_request(
    *hooks: ProcessRequest | None,
) -> Callable[[WebSocketServerProtocol, Request], Awaitable[Response | None]]:
    """Combine several ``process_request`` hooks into one.

    The hooks run in order, sync or async; the first one that returns a
    :class:`~wsjet.Response` answers the request and the later ones don't run.
    When none does, the handshake goes on. ``None`` items are skipped, which
    makes optional hooks easy to pass.

    Example::

        serve(handler, host, port, process_request=chain_process_request(
            health_check, basic_auth("chat", credentials=("alice", "s3cret")),
        ))

    Args:
        hooks: ``process_request(connection, request)`` callables.

    Returns:
        An async ``process_request`` hook.
    """
    active = [hook for hook in hooks if hook is not None]

    async def process_request(
        connection: WebSocketServerProtocol, request: Request
    ) -> Response | None:
        for hook in active:
            result = hook(connection, request)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    return process_request


class _Route:
    """One compiled path template."""

    __slots__ = ("handler", "pattern", "template")

    def __init__(self, template: str, handler: Handler) -> None:
        if not template.startswith("/"):
            raise ValueError(f"route must start with '/': {template!r}")
        parts: list[str] = []
        names: set[str] = set()
        position = 0
        for match in _PARAMETER.finditer(template):
            literal = template[position : match.start()]
            if "{" in literal or "}" in literal:
                raise ValueError(f"invalid parameter in route {template!r}")
            parts.append(re.escape(literal))
            name, kind = match.group(1), match.group(2)
            if name in names:
                raise ValueError(f"parameter {name!r} repeated in route {template!r}")
            names.add(name)
            parts.append(f"(?P<{name}>{'.+' if kind == 'path' else '[^/]+'})")
            position = match.end()
        rest = template[position:]
        if "{" in rest or "}" in rest:
            raise ValueError(f"invalid parameter in route {template!r}")
        parts.append(re.escape(rest))
        self.template = template
        self.pattern = re.compile("".join(parts))
        self.handler = handler


class Router:
    """Connection handler and ``process_request`` hook dispatching on the path.

    Build it with :func:`route`. Call :meth:`serve` or :meth:`unix_serve`, or
    pass the router as the handler of :func:`~wsjet.serve` together with
    ``process_request=router.process_request``.

    Attributes:
        routes: the path templates, in matching order.
    """

    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        process_request: ProcessRequest | None = None,
    ) -> None:
        """Compile ``routes``; see :func:`route`."""
        self._routes = [_Route(template, handler) for template, handler in routes.items()]
        self._process_request = process_request
        self.routes = [item.template for item in self._routes]

    def match(self, path: str) -> tuple[Handler, dict[str, str]] | None:
        """Find the handler for a request target.

        Args:
            path: the request target, e.g. ``"/rooms/lobby?x=1"``.

        Returns:
            ``(handler, parameters)``, or ``None`` when no route matches.
        """
        target = path.partition("?")[0]
        for item in self._routes:
            found = item.pattern.fullmatch(target)
            if found is not None:
                params = {
                    name: urllib.parse.unquote(value) for name, value in found.groupdict().items()
                }
                return item.handler, params
        return None

    async def process_request(
        self, connection: WebSocketServerProtocol, request: Request
    ) -> Response | None:
        """Answer 404 when no route matches; otherwise run the ``process_request`` given.

        The 404 body is fixed text: the path is not echoed.
        """
        if self.match(request.path) is None:
            return handshake.reject(404, "Not Found: no WebSocket endpoint at this path.\n")
        if self._process_request is None:
            return None
        result = self._process_request(connection, request)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def __call__(self, connection: WebSocketServerProtocol) -> None:
        """Run the matching handler as ``handler(connection, **parameters)``.

        Without :meth:`process_request` installed, a connection to an unknown
        path is already open: it is closed with 1008 (policy violation).
        """
        found = self.match(connection.path)
        if found is None:
            await connection.close(CloseCode.POLICY_VIOLATION, "no route for this path")
            return
        handler, params = found
        await handler(connection, **params)

    def serve(self, *args: Any, **kwargs: Any) -> Serve:
        """Call :func:`~wsjet.serve` with this router as handler and ``process_request``.

        Arguments are those of :func:`~wsjet.serve` after the handler. A
        ``process_request`` given here runs after the route check.
        """
        from .server import serve

        return serve(self, *args, **self._options(kwargs))

    def unix_serve(self, path: str | None = None, **kwargs: Any) -> Serve:
        """Like :meth:`serve`, with :func:`~wsjet.unix_serve` on the Unix socket ``path``."""
        from .server import unix_serve

        return unix_serve(self, path, **self._options(kwargs))

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        extra = kwargs.pop("process_request", None)
        if extra is None:
            kwargs["process_request"] = self.process_request
        else:
            kwargs["process_request"] = chain_process_request(self.process_request, extra)
        return kwargs


def route(
    routes: Mapping[str, Handler],
    *,
    process_request: ProcessRequest | None = None,
) -> Router:
    """Map request paths to connection handlers.

    Args:
        routes: path template -> ``handler(websocket, **parameters)``.
            ``"/rooms/{name}"`` matches ``/rooms/lobby`` and calls
            ``handler(websocket, name="lobby")``; ``{name:path}`` also matches
            slashes. Templates are tried in order.
        process_request: another hook to run for requests whose path matches
            (authentication, for instance), after the route check.

    Returns:
        A :class:`Router`: the handler for :func:`~wsjet.serve`, with its
        ``process_request`` hook answering 404 for unknown paths.

    Raises:
        ValueError: a template does not start with ``/``, repeats a
            parameter name, or has a malformed ``{...}``.
    """
    return Router(routes, process_request=process_request)
