"""One figure style for the whole book, and the figure helpers the chapters share."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["use_book_style", "figure", "binned_median"]


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
