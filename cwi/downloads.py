"""Tables to read and take away: a chapter's table as a CSV download link beside it.

The CSV travels inside the link (a ``data:`` URI), so the link works the same in
the rendered HTML book, opened from ``_build/html`` without a server, and in
JupyterLab, with no file to copy or keep in sync.  Tables above
:data:`MAX_BYTES` are not embedded: the link's place says so instead.
:func:`wide` marks a raw preview of an artefact, the one kind of table that may
be wider than the text column.
"""

from __future__ import annotations

import base64
import html
import re

import pandas as pd

__all__ = ["MAX_BYTES", "csv_download", "wide"]

MAX_BYTES = 2 * 2**20  # a page should stay light to load


def csv_download(table, filename: str, label: str | None = None):
    """An HTML link that downloads `table` (a DataFrame or a pandas Styler) as ``filename``.

    The index is written when it carries information (a named or multi-level
    index, as a pivot table has), left out when it is a plain row number.
    """
    from IPython.display import HTML

    frame = table.data if hasattr(table, "data") and isinstance(table.data, pd.DataFrame) else table
    plain = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    # Tables keep an interval "[-0.001, +0.002]" on one line with a no-break space after its comma
    # (cwi.analysis.interval_text); a CSV reader wants a plain one. Other text is written as it is.
    text = re.sub(",\u00a0(?=[+-]?\\d)", ", ", frame.to_csv(index=not plain))
    size = len(text.encode())
    what = html.escape(label or filename)
    if size > MAX_BYTES:
        return HTML(f'<p class="cwi-download">{what}: {size / 2**20:.1f} MB as CSV, too large to embed in the page '
                    "(the chapter's cached artefact holds it)</p>")
    encoded = base64.b64encode(text.encode()).decode()
    return HTML(f'<p><a class="cwi-download" download="{html.escape(filename)}" '
                f'href="data:text/csv;charset=utf-8;base64,{encoded}">Download {what} '
                f"(CSV, {len(frame):,} rows)</a></p>")


def wide(table):
    """`table` (a DataFrame or a pandas Styler) shown as a raw data preview: one line per row, scrolling sideways.

    Every other table of the book fits the text column at a laptop's and a
    narrow width (checked in the browser: ``tests/test_book.py``); a preview of
    an artefact's columns is exempt, marked with the class ``cwi-wide``.
    """
    styler = table if hasattr(table, "set_table_attributes") else table.style
    return styler.set_table_attributes('class="cwi-wide"')
