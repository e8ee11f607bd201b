"""Streams of the callback face: buffer, message reader, writer.

:class:`~wsjet.stream.buffer.Buffer` has the low-level byte reads;
:class:`~wsjet.stream.reader.WebSocketReader` is one incoming message built on
it; :class:`~wsjet.stream.writer.WebSocketWriter` sends to the peer.
"""

from __future__ import annotations

from .buffer import Buffer
from .reader import FlowControl, WebSocketReader
from .writer import FragmentWriter, WebSocketWriter

__all__ = ["Buffer", "FlowControl", "FragmentWriter", "WebSocketReader", "WebSocketWriter"]
