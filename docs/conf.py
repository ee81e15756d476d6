"""Sphinx configuration for the Fapistrano docs.

Build: ``tox -e docs`` (or ``sphinx-build -W --keep-going -b html docs docs/_build/html``).
The configuration, CLI and hook references are generated at build time by
the extension in ``_ext/`` from the installed core and the bundled plugins
(imported from ``fapistrano_plugins/`` when they are not installed).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
# A bare checkout builds too: the core from the repository when it is not installed.
try:
    import fapistrano
except ImportError:
    sys.path.insert(0, str(REPO))
    import fapistrano

project = "Fapistrano"
author = "The Fapistrano maintainers"
copyright = "Fapistrano maintainers, MIT licence"
release = fapistrano.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
    "fap_sphinx",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# The docs describe the current code; autodoc must not fall back to stale text.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# No autodoc_default_options: a default of {"members": False} is not a fallback but an
# override - Sphinx replaces every directive's own ``:members: run, test, …`` list with it,
# and the members vanish without a warning. Each directive lists its members itself;
# tests/test_docs_html.py fails when one of them is missing from the built page.

# Headings of Markdown pages get anchors like the reST ones.
myst_heading_anchors = 3

# Options and addresses are copied from the docs into shells: keep ``--`` two
# hyphens and quotes straight (Sphinx's smart quotes would turn ``--role`` into
# an en dash and '...' into curly quotes, which no shell accepts).
smartquotes = False

# A plain ``::`` block is output or a file layout, not Python: no colours that
# would pick out "for" and "while" in prose.
highlight_language = "none"

# furo, the theme of pip, black and attrs: responsive, a dark mode, a readable code width.
html_theme = "furo"
html_title = f"Fapistrano {release}"
html_static_path: list[str] = []
