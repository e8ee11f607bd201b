"""Masking (RFC 6455 §5.3), compiled when the extension is built.

``WSJET_NO_EXTENSIONS=1`` in the environment forces the pure-Python twin in
:mod:`wsjet.core._mask`, which is the specification the compiled code matches.
"""

from __future__ import annotations

from typing import Any

from . import NO_EXTENSIONS
from ._mask import apply_mask as _pure_apply_mask
from ._mask import encode_frame as _pure_encode_frame
from ._mask import encode_header as _pure_encode_header
from ._mask import extract_payload as _pure_extract_payload
from ._mask import fill_payload as _pure_fill_payload
from ._mask import finish_payload as _pure_finish_payload
from ._mask import new_payload as _pure_new_payload

__all__ = [
    "COMPILED",
    "apply_mask",
    "encode_frame",
    "encode_header",
    "extract_payload",
    "fill_payload",
    "finish_payload",
    "new_payload",
]

#: Whether :func:`apply_mask` is the compiled one (``wsjet.core._speedups``).
COMPILED = False
apply_mask = _pure_apply_mask
extract_payload = _pure_extract_payload
encode_frame = _pure_encode_frame
encode_header = _pure_encode_header
new_payload: Any = _pure_new_payload
fill_payload: Any = _pure_fill_payload
finish_payload: Any = _pure_finish_payload

if not NO_EXTENSIONS:
    try:
        from . import _speedups
    except ImportError:  # the optional extension was not built
        pass
    else:
        apply_mask = _speedups.apply_mask
        extract_payload = _speedups.extract_payload
        encode_frame = _speedups.encode_frame
        encode_header = _speedups.encode_header
        new_payload = _speedups.new_payload
        fill_payload = _speedups.fill_payload
        finish_payload = _speedups.finish_payload
        COMPILED = True
