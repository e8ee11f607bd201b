"""Sphinx configuration for the wsjet documentation.

Build with ``scripts/build-docs.sh`` (``sphinx-build -W --keep-going``): any
warning fails the build.
"""

from __future__ import annotations

import os
import sys
import warnings

import sphinx.deprecation

# Document the source tree, not whatever wsjet happens to be installed.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "src"))

import wsjet  # noqa: E402

# Sphinx 9's own napoleon and myst-parser use APIs that Sphinx 9 deprecates;
# under PYTHONDEVMODE (scripts/test.sh) each use prints a Python warning. They
# are not documentation warnings (-W still fails on every one of those), and
# nothing in this project can fix them: silence that category only.
_removed_in_11 = getattr(sphinx.deprecation, "RemovedInSphinx11Warning", None)
if _removed_in_11 is not None:
    warnings.filterwarnings("ignore", category=_removed_in_11)

project = "wsjet"
author = "the wsjet authors"
copyright = "the wsjet authors"
release = wsjet.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# --- MyST -------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
# Pages link to their own sections as [text](#some-heading): generate the slugs.
myst_heading_anchors = 3

# --- autodoc ----------------------------------------------------------------------------
# Type hints go in the parameter descriptions (not the signatures), and
# nitpicky stays off: the annotations name private aliases and typing
# constructs that have no page to link to.
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
# The docstrings use Google style (Args:, Returns:, Raises:, Attributes:).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
nitpicky = False

# --- HTML -------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"wsjet {release}"
html_static_path: list[str] = []

# Pages show server configuration in languages Pygments has no lexer for
# (HAProxy). Rather than a "lexer name not known" warning, which -W turns into
# a failure, show those blocks as plain text.
_PLAIN_TEXT_LANGUAGES = ("haproxy",)


def setup(app):  # type: ignore[no-untyped-def]
    from pygments.lexers.special import TextLexer

    for name in _PLAIN_TEXT_LANGUAGES:
        app.add_lexer(name, TextLexer)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
