"""The ``wsjet serve`` demo: a chat room and its page, served on one port.

See :mod:`wsjet.demo.chat`. The page (``static/index.html``) is package data.
"""

from __future__ import annotations

from .chat import ChatRoom, load_page

__all__ = ["ChatRoom", "load_page"]
