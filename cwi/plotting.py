"""One figure style for the whole book, and the figure helpers the chapters share."""

from __future__ import annotations

import html
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["use_book_style", "figure", "binned_median", "coloured_words", "pair_panels", "forest"]


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
    # Word boxes joined by spaces, in a div that wraps: a sentence longer than the text width
    # continues on the next line instead of being cut off by the page's output area.
    spans = [
        f'<span title="{w:.2f}" style="display:inline-block;background:{matplotlib.colors.to_hex(c)};'
        f'padding:1px 3px;border-radius:3px;margin:1px;color:{"white" if w / vmax > 0.6 else "black"}">'
        f'{html.escape(str(word))}</span>'
        for word, w, c in zip(words, weights, colours)
    ]
    prefix = f'<span style="flex:none;width:11em;font-size:85%">{html.escape(label)}</span>' if label else ""
    return (f'<div style="display:flex;align-items:baseline;line-height:1.9;font-family:sans-serif;max-width:100%">'
            f'{prefix}<span style="white-space:normal">{" ".join(spans)}</span></div>')


def pair_panels(frame, pairs: dict, quantity: str, label: str, caption: str, bins: int = 15):
    """One panel per model pair: binned medians and least-squares lines of normalised weight on `quantity`.

    `frame` holds the words of one method (columns ``model``, `quantity`,
    ``normalised_weight``); pre-trained in blue, fine-tuned in orange, on the
    same words.  `label` names the quantity on the x axis.
    """
    fig, axes = figure(caption, ncols=len(pairs), width=4.6)
    for ax, (name, pair) in zip(axes, pairs.items()):
        for role, model, colour in [("pre-trained", pair.pretrained, "C0"), ("fine-tuned", pair.finetuned, "C1")]:
            if model is None:
                continue
            rows = frame[frame["model"] == model]
            x, y = rows[quantity].to_numpy(), rows["normalised_weight"].to_numpy()
            centres, medians = binned_median(x, y, bins=bins)
            ax.plot(centres, medians, "o", color=colour, ms=4, label=f"{model} ({role})")
            slope, intercept = np.polyfit(x, y, 1)
            grid = np.linspace(np.percentile(x, 1), np.percentile(x, 99), 50)
            ax.plot(grid, intercept + slope * grid, color=colour, lw=1.5)
        ax.axhline(1, color="grey", lw=0.8, ls=":")
        ax.set(title=name, xlabel=label, ylabel="normalised weight")
        ax.legend(fontsize=7)
    return fig


def forest(results, order: list[str], quantities: dict[str, str], controls, caption: str):
    """Forest plot of delta beta: one panel per pair and method, one row per dataset of `order`.

    `results` has the columns of :func:`cwi.analysis.pair_table`; colour marks
    the quantity (labels from `quantities`), the marker the control.
    """
    panels = results[["pair", "method"]].drop_duplicates().to_records(index=False)
    fig, axes = figure(caption, ncols=len(panels), width=4.8,
                       height=0.45 * len(order) * len(quantities) / 1.5 + 1.5)
    markers = dict(zip(controls, ["o", "s", "^", "D", "v"]))
    offsets = np.linspace(-0.35, 0.35, len(quantities) * len(controls))
    for ax, (pair_name, method) in zip(axes, panels):
        chosen = results[(results["pair"] == pair_name) & (results["method"] == method)]
        k = 0
        for qi, quantity in enumerate(quantities):
            for control in controls:
                rows = (chosen[(chosen["quantity"] == quantity) & (chosen["control"] == control)]
                        .set_index("dataset").reindex(order))
                y = np.arange(len(order)) + offsets[k]
                ax.errorbar(rows["delta"], y, xerr=[rows["delta"] - rows["delta_low"], rows["delta_high"] - rows["delta"]],
                            fmt=markers[control], color=f"C{qi}", ms=3.5, lw=0.8,
                            label=f"{quantities[quantity]}, {control}")
                k += 1
        ax.axvline(0, color="grey", ls="--", lw=0.8)
        ax.set(yticks=range(len(order)), yticklabels=order, title=f"{pair_name}, {method.upper()}", xlabel="Δβ")
        ax.invert_yaxis()
    axes[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig
