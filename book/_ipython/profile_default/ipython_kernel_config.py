"""The IPython profile of the book's kernels.

The book's Sphinx extension (``book/_ext/symspec_docs.py``) points ``IPYTHONDIR`` at
``book/_ipython`` for every build, so each chapter runs in this profile and not in the
reader's own (no personal startup files or settings in the book).
"""

import sys
from pathlib import Path

c = get_config()  # noqa: F821  (provided by IPython when it loads this file)

# Every PNG a chapter draws records its smallest text size and its dpi, for the
# rendered-book check of figure text (book/_ext/symspec_figure_text.py).
ext = str(Path(__file__).resolve().parents[2] / "_ext")
if ext not in sys.path:
    sys.path.append(ext)
c.InteractiveShellApp.extensions = ["symspec_figure_text"]

# Nothing is written into this folder but IPython's empty profile directories.
c.HistoryManager.enabled = False
