"""One figure style for the whole book, and the figure helpers the chapters share."""

from __future__ import annotations

import html
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["use_book_style", "figure", "binned_median", "coloured_words"]


def use_book_style() -> None:
    """Apply the book's seaborn theme (call once per chapter, after the imports)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "figure.autolayout": False})


def figure(caption: str, ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.8):
    """A figure of ``nrows x ncols`` panels with `caption` written under it.

    The caption is part of the image, so it reads the same in JupyterLab and in
    the rendered book.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes)
    """
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    # supxlabel takes part in the constrained layout, so the caption never overlaps.
    wrapped = textwrap.fill(caption, width=int(17 * width * ncols))
    fig.supxlabel(wrapped, x=0.01, ha="left", fontsize=9, style="italic")
    return fig, axes.ravel()


def binned_median(x: np.ndarray, y: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Median of `y` in equal-count bins of `x` (a trend line for dense scatters).

    Returns the bin centres (median `x`) and the medians of `y`; bins with no
    point are left out.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) == 0:
        return np.array([]), np.array([])
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    centres, medians = [], []
    for b in range(len(edges) - 1):
        in_bin = which == b
        if in_bin.any():
            centres.append(np.median(x[in_bin]))
            medians.append(np.median(y[in_bin]))
    return np.array(centres), np.array(medians)


def coloured_words(words, weights, vmax: float = 3.0, cmap: str = "OrRd", label: str | None = None) -> str:
    """HTML of `words` on backgrounds coloured by `weights` (white at 0, darkest at `vmax` and above).

    Meant for normalised weights (1 = the sentence's mean).  Words are escaped,
    so any text is safe; each word's weight is in its tooltip.  The markup is
    plain inline HTML: it renders in JupyterLab and in the static book alike.
    """
    import matplotlib

    words, weights = list(words), np.asarray(weights, dtype=float)
    if len(words) != len(weights):
        raise ValueError(f"{len(words)} words but {len(weights)} weights")
    colours = matplotlib.colormaps[cmap](np.clip(weights / vmax, 0, 1) * 0.85)
    spans = [
        f'<span title="{w:.2f}" style="background:{matplotlib.colors.to_hex(c)};padding:1px 3px;'
        f'border-radius:3px;margin:1px;color:{"white" if w / vmax > 0.6 else "black"}">{html.escape(str(word))}</span>'
        for word, w, c in zip(words, weights, colours)
    ]
    prefix = f'<span style="display:inline-block;min-width:11em;font-size:85%">{html.escape(label)}</span>' if label else ""
    return f'<div style="line-height:1.9;font-family:sans-serif">{prefix}{"".join(spans)}</div>'
