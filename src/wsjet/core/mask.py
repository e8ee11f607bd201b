"""Masking (RFC 6455 §5.3), compiled when the extension is built.

``WSJET_NO_EXTENSIONS=1`` in the environment forces the pure-Python twin in
:mod:`wsjet.core._mask`, which is the specification the compiled code matches.
"""

from __future__ import annotations

from . import NO_EXTENSIONS
from ._mask import apply_mask as _pure_apply_mask
from ._mask import extract_payload as _pure_extract_payload

__all__ = ["COMPILED", "apply_mask", "extract_payload"]

#: Whether :func:`apply_mask` is the compiled one (``wsjet.core._speedups``).
COMPILED = False
apply_mask = _pure_apply_mask
extract_payload = _pure_extract_payload

if not NO_EXTENSIONS:
    try:
        from . import _speedups
    except ImportError:  # the optional extension was not built
        pass
    else:
        apply_mask = _speedups.apply_mask
        extract_payload = _speedups.extract_payload
        COMPILED = True
