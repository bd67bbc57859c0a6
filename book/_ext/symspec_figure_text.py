"""Every PNG a book kernel draws records the size of its smallest text.

An IPython extension, loaded in every chapter's kernel by the book's IPython profile
(``book/_ipython/profile_default/ipython_kernel_config.py``; the book's Sphinx extension
points ``IPYTHONDIR`` there), so a chapter needs nothing.  It wraps matplotlib's PNG writer
(``FigureCanvasAgg.print_png``, which the inline backend, ``glue`` and ``savefig`` all use)
so that each PNG carries two text chunks:

- ``symspec:min-text-pt``: the smallest font size, in points, of any text drawn in the
  figure (tick labels, legends, titles, annotations; empty or hidden text is not drawn);
- ``symspec:dpi``: the resolution of the PNG, pixels per inch.

A point is 1/72 inch, so that text is ``min_pt * dpi / 72`` pixels tall in the PNG, and
``min_pt * dpi / 72 * shown_width / png_width`` on the page (``tests/test_book.py`` checks
it in a 1280-px window).  Also ``symspec:min-text``, the smallest text itself (for error
messages).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

MIN_PT = "symspec:min-text-pt"
DPI = "symspec:dpi"
TEXT = "symspec:min-text"


def drawn_texts(artist: Any) -> Iterator[Any]:
    """The non-empty text an artist draws, itself included: invisible artists, their
    children, and the axes of an Axes drawn with ``axis("off")`` are skipped."""
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.text import Text

    if not artist.get_visible():
        return
    if isinstance(artist, Axis) and isinstance(artist.axes, Axes) and not artist.axes.axison:
        return
    if isinstance(artist, Text) and artist.get_text().strip():
        yield artist
    for child in artist.get_children():
        yield from drawn_texts(child)


def text_record(fig: Any) -> dict[str, str]:
    """The PNG text chunks for a figure at its current dpi (only the dpi if it has no text)."""
    texts = list(drawn_texts(fig))
    record = {DPI: f"{fig.dpi:g}"}
    if texts:
        small = min(texts, key=lambda t: t.get_fontsize())
        record[MIN_PT] = f"{small.get_fontsize():g}"
        record[TEXT] = " ".join(small.get_text().split())[:60].encode(
            "latin-1", "replace").decode("latin-1")
    return record


def install() -> None:
    """Wrap ``FigureCanvasAgg.print_png`` (once) to add :func:`text_record`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    original = FigureCanvasAgg.print_png
    if getattr(original, "_symspec_text_record", False):
        return

    # wraps: matplotlib passes its own print methods (by module name) only the keywords
    # they accept, and reads those from the signature
    @functools.wraps(original)
    def print_png(self, filename_or_obj, *, metadata=None, pil_kwargs=None):
        # print_figure has set the figure's dpi to the PNG's by now
        metadata = {**text_record(self.figure), **(metadata or {})}
        return original(self, filename_or_obj, metadata=metadata, pil_kwargs=pil_kwargs)

    print_png._symspec_text_record = True  # type: ignore[attr-defined]
    FigureCanvasAgg.print_png = print_png  # type: ignore[method-assign]


def load_ipython_extension(ipython: Any) -> None:
    """IPython entry point (``c.InteractiveShellApp.extensions``).  The kernel has set
    ``MPLBACKEND`` to the inline backend before extensions load, so importing matplotlib
    here does not change which backend the chapters get."""
    install()
