"""One figure style for the whole book, and the figure helpers the chapters share."""

from __future__ import annotations

import html
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["use_book_style", "figure", "binned_median", "coloured_words", "pair_panels", "forest", "delta_grid"]


def use_book_style() -> None:
    """Apply the book's seaborn theme (call once per chapter, after the imports)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "figure.autolayout": False})


def figure(caption: str, ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.8, **share):
    """A figure of ``nrows x ncols`` panels of `width` x `height` inches with `caption` written under it.

    The caption is part of the image, so it reads the same in JupyterLab and in
    the rendered book.  `share` (``sharex``, ``sharey``) goes to ``plt.subplots``.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes, row by row)
    """
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained", **share
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


# Word colours (coloured_words and the explorer of cwi.interactive): `vmax` maps to this point of the
# colour map, whose darkest end is too dark to read a word on; white text above this share of `vmax`.
WEIGHT_COLOUR_TOP = 0.85
WHITE_TEXT_ABOVE = 0.6


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
    colours = matplotlib.colormaps[cmap](np.clip(weights / vmax, 0, 1) * WEIGHT_COLOUR_TOP)
    # Word boxes joined by spaces, in a div that wraps: a sentence longer than the text width
    # continues on the next line instead of being cut off by the page's output area.
    spans = [
        f'<span title="{w:.2f}" style="display:inline-block;background:{matplotlib.colors.to_hex(c)};'
        f'padding:1px 3px;border-radius:3px;margin:1px;color:{"white" if w / vmax > WHITE_TEXT_ABOVE else "black"}">'
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


def forest(results, quantities: dict[str, str], controls, caption: str, dataset: str = "all"):
    """Forest plot of delta beta on `dataset`: one panel per quantity and method, one row per pair.

    `results` has the columns of :func:`cwi.analysis.pair_table`; colour marks
    the control.  Panels share the x axis (slopes are per SD of the quantity),
    so a row reads across methods and quantities alike.
    """
    chosen = results[results["dataset"] == dataset]
    pairs = list(dict.fromkeys(chosen["pair"]))
    methods = list(dict.fromkeys(chosen["method"]))
    fig, axes = figure(caption, ncols=len(methods), nrows=len(quantities), width=3.6, height=0.38 * len(pairs) + 0.9,
                       sharex=True, sharey=True)
    offsets = np.linspace(-0.25, 0.25, len(controls)) if len(controls) > 1 else [0.0]
    for row, (quantity, label) in enumerate(quantities.items()):
        for column, method in enumerate(methods):
            ax = axes[row * len(methods) + column]
            for k, control in enumerate(controls):
                rows = (chosen[(chosen["quantity"] == quantity) & (chosen["method"] == method)
                               & (chosen["control"] == control)].set_index("pair").reindex(pairs))
                ax.errorbar(rows["delta"], np.arange(len(pairs)) + offsets[k],
                            xerr=[rows["delta"] - rows["delta_low"], rows["delta_high"] - rows["delta"]],
                            fmt="o", color=f"C{k}", ms=3.5, lw=1, label=control)
            ax.axvline(0, color="grey", ls="--", lw=0.8)
            ax.set_title(f"{label}, {method.upper()}", fontsize=9)
            ax.set_yticks(range(len(pairs)), pairs, fontsize=8)
            ax.tick_params(axis="x", labelsize=8)
            if row == len(quantities) - 1:
                ax.set_xlabel("Δβ")
    axes[0].invert_yaxis()  # shared: every panel lists the pairs top down
    fig.legend(*axes[0].get_legend_handles_labels(), title="control", loc="outside upper center",
               ncols=len(controls), fontsize=8)
    return fig


def delta_grid(results, order: list[str], quantities: dict[str, str], control: str, caption: str):
    """Delta beta of every pair and method (rows) on every dataset (columns), one panel per quantity.

    Cells are coloured by delta beta (red: the fine-tuned model weights the
    quantity more) and print it, in bold where the interval excludes 0.
    """
    chosen = results[results["control"] == control]
    if chosen.empty:
        raise ValueError(f"delta_grid: no result with control {control!r}")
    chosen = chosen.assign(row=chosen["pair"] + " " + chosen["method"].str.upper())
    rows = list(dict.fromkeys(chosen["row"]))
    finite = np.abs(chosen["delta"].to_numpy(float))
    finite = finite[np.isfinite(finite)]
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    # Panels stacked, not side by side: a figure wider than the text column is scaled down until
    # its cell labels cannot be read.
    fig, axes = figure(caption, nrows=len(quantities), width=0.5 * len(order) + 2.4, height=0.26 * len(rows) + 1.0)
    for ax, (quantity, label) in zip(axes, quantities.items()):
        table = chosen[chosen["quantity"] == quantity]
        delta = table.pivot_table(index="row", columns="dataset", values="delta").reindex(index=rows, columns=order)
        clear = (table.assign(clear=((table["delta_low"] > 0) | (table["delta_high"] < 0)).astype(float))
                 .pivot_table(index="row", columns="dataset", values="clear", aggfunc="first")
                 .reindex(index=rows, columns=order))
        ax.imshow(delta.to_numpy(float), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        for i, j in np.ndindex(delta.shape):
            value = delta.iat[i, j]
            if np.isfinite(value):
                ax.text(j, i, f"{value:+.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(value) > 0.6 * limit else "black",
                        fontweight="bold" if clear.iat[i, j] == 1 else "normal")
        ax.set_xticks(range(len(order)), order, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.grid(False)
        ax.set_title(label, fontsize=9)
    return fig
