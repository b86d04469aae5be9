"""Interactive views that need no kernel: the sentence explorer, the hover scatter and the pair explorer.

Each view is one HTML output holding its data (JSON) and the small script that
draws it (``interactive.js``, plain DOM and SVG, styled by ``interactive.css``), so it works in the rendered
book opened from ``_build/html`` without a server or network, and in JupyterLab.
A reader picks with ``<select>`` menus; nothing is recomputed, so the views show
what the chapters computed.
"""

from __future__ import annotations

import hashlib
import html
import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import plotting

__all__ = ["sentence_explorer", "hover_scatter", "explorer_sample", "pair_explorer", "PAIR_PALETTE"]

COLOURS = ("#0173b2", "#de8f05")  # seaborn's colorblind C0 and C1, as in the static figures
_WEIGHT_DIGITS = 3
# A diverging scale for signed contributions: blue pulls the sentences apart, red brings them together.
PAIR_PALETTE = "RdBu_r"


@cache
def _asset(name: str) -> str:
    return Path(__file__).with_name(name).read_text()


def _embed(kind: str, controls: str, body: str, data: dict):
    """One view: its style, its markup, then its script called on its root element with `data`."""
    from IPython.display import HTML

    payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
    # Inside <script>, "</script>" or "<!--" in a word would end or derail the element: JSON's \u escapes
    # say the same characters harmlessly (as Django's json_script does).
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # Named by its content, so a rebuilt book is byte-identical and two views on a page never clash.
    root = f"cwi-{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"
    return HTML(f"<style>{_asset('interactive.css')}</style>"
                f'<div class="cwi-interactive cwi-{kind}" id="{root}">'
                f'<p class="cwi-inactive">This view draws itself with a script, which has not run: in JupyterLab, '
                "run the cell, or trust the notebook (saved outputs run no script until then).</p>"
                f'<div class="cwi-controls">{controls}</div>{body}</div>'
                f"<script>{_asset('interactive.js')}\n"
                f'cwiInteractive.{kind}(document.getElementById("{root}"), {payload});</script>')


def _select(role: str, label: str) -> str:
    return f'<label>{html.escape(label)} <select data-role="{role}"></select></label>'


def _rounded(values) -> list:
    return [None if not np.isfinite(v) else round(float(v), _WEIGHT_DIGITS) for v in values]


def _line(x: np.ndarray, y: np.ndarray) -> list[float] | None:
    """Slope and intercept of the least-squares line, or None where there is none (too few or constant x)."""
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2 or np.ptp(x[keep]) == 0:
        return None
    return [float(v) for v in np.polyfit(x[keep], y[keep], 1)]


def explorer_sample(weights: pd.DataFrame, per_dataset: int) -> pd.DataFrame:
    """The rows of at most `per_dataset` sentences of each dataset, those attributed by the most models first.

    Keeps the explorer's page light in profiles that attribute thousands of
    sentences; ties keep the order of ``sentence_id`` (the dataset's order).
    """
    # A sentence is its text: samples of different sizes number the same sentence differently.
    coverage = (weights.groupby(["dataset", "sentence"], sort=False)
                .agg(models=("model", "nunique"), first=("sentence_id", "min")).reset_index()
                .sort_values(["dataset", "models", "first"], ascending=[True, False, True], kind="stable"))
    chosen = coverage.groupby("dataset").head(per_dataset)[["dataset", "sentence"]]
    return weights.merge(chosen, on=["dataset", "sentence"])


def sentence_explorer(weights: pd.DataFrame, first: str, second: str, vmax: float = 3.0, cmap: str = "OrRd"):
    """Pick a dataset, a sentence, two models and a method; see the coloured words and a bar chart.

    Parameters
    ----------
    weights
        Word weights as :func:`cwi.attribution.word_weights` returns them, for
        several models, datasets and methods (columns ``model``, ``dataset``,
        ``method``, ``sentence_id``, ``sentence``, ``word_index``, ``word``,
        ``normalised_weight``).  A sentence is known by its text.
    first, second
        The models shown first.
    vmax, cmap
        As :func:`cwi.plotting.coloured_words`: the colour scale of the words.

    Returns
    -------
    IPython.display.HTML
    """
    import matplotlib

    models = list(dict.fromkeys(weights["model"]))
    for name in (first, second):
        if name not in models:
            raise ValueError(f"explorer: model {name!r} has no word weights here; models: {models}")
    datasets = list(dict.fromkeys(weights["dataset"]))
    sentences = []
    for (dataset, sentence), rows in weights.groupby(["dataset", "sentence"], sort=False):
        words = rows.drop_duplicates("word_index").sort_values("word_index")
        positions = {index: k for k, index in enumerate(words["word_index"])}
        values = {}
        for (model, method), group in rows.groupby(["model", "method"], sort=False):
            column = [np.nan] * len(positions)
            for index, w in zip(group["word_index"], group["normalised_weight"]):
                column[positions[index]] = w
            values[f"{model}|{method}"] = _rounded(column)
        sentences.append({"d": datasets.index(dataset), "t": str(sentence),
                          "w": [str(w) for w in words["word"]], "v": values})
    palette = matplotlib.colormaps[cmap](np.linspace(0, plotting.WEIGHT_COLOUR_TOP, 32))  # as coloured_words
    data = {"models": models, "methods": list(dict.fromkeys(weights["method"])), "datasets": datasets,
            "first": first, "second": second, "vmax": vmax, "whiteAbove": plotting.WHITE_TEXT_ABOVE,
            "colours": list(COLOURS),
            "palette": [matplotlib.colors.to_hex(c) for c in palette], "sentences": sentences}
    controls = "".join(_select(role, label) for role, label in
                       [("dataset", "dataset"), ("method", "method"), ("first", "model 1"), ("second", "model 2")])
    controls += f'<div>{_select("sentence", "sentence")}</div>'
    body = '<div data-role="words"></div><div data-role="bars" class="cwi-scroll"></div>'
    return _embed("explorer", controls, body, data)


def hover_scatter(frame: pd.DataFrame, pairs: dict, quantities: dict[str, str], max_words: int = 600,
                  seed: int = 0):
    """Normalised weight against a word statistic, one pair at a time; hovering a dot names the word.

    Parameters
    ----------
    frame
        The words of one method with their statistics (:func:`cwi.analysis.attach_statistics`,
        rows of status ``"ok"``).
    pairs
        Pair name to :class:`cwi.models.ModelPair`.
    quantities
        Column to axis label: the statistics a reader can switch between.
    max_words, seed
        Dots drawn per model: a seeded sample of the word occurrences both
        models of the pair weighted.  The lines are least-squares fits on every
        word, as in the static panels.  Each model needs one row per word
        occurrence (``dataset``, ``sentence``, ``word_index``).

    Returns
    -------
    IPython.display.HTML
    """
    key = ["dataset", "sentence", "word_index"]  # the text: each model's sample numbers its sentences
    rng = np.random.default_rng(seed)
    shown = []
    for name, pair in pairs.items():
        roles = [(m, role) for m, role in [(pair.pretrained, "pre-trained"), (pair.finetuned, "fine-tuned")] if m]
        tables = {m: frame[frame["model"] == m].set_index(key) for m, _ in roles}
        for m, table in tables.items():
            if not table.index.is_unique:
                raise ValueError(f"hover_scatter: {m} has several rows for one word occurrence ({key}); "
                                 "pass the words of one method")
        common = tables[roles[0][0]].index
        for m, _ in roles[1:]:
            common = common.intersection(tables[m].index)
        if len(common) == 0:
            continue
        sample = common[np.sort(rng.choice(len(common), size=min(max_words, len(common)), replace=False))]
        words = tables[roles[0][0]].loc[sample]
        entry = {"name": name, "words": [str(w) for w in words["word"]],
                 "x": {q: _rounded(words[q]) for q in quantities}, "models": []}
        for colour, (m, role) in zip(COLOURS, roles):
            rows = tables[m]
            fits = {q: _line(rows[q].to_numpy(float), rows["normalised_weight"].to_numpy(float)) for q in quantities}
            entry["models"].append({"name": m, "role": role, "colour": colour, "fit": fits,
                                    "y": _rounded(rows.loc[sample, "normalised_weight"])})
        shown.append(entry)
    if not shown:
        raise ValueError(f"hover_scatter: no pair of {list(pairs)} has words weighted by all its models")
    controls = _select("pair", "pair") + _select("quantity", "x axis")
    body = ('<div data-role="plot" class="cwi-scroll"></div>'
            '<div data-role="tip" class="cwi-tip" aria-live="polite"></div>')
    return _embed("scatter", controls, body, {"pairs": shown, "quantities": dict(quantities)})


def pair_explorer(decompositions: dict, pairs: pd.DataFrame, first: str, second: str, digits: int = 4):
    """Pick a dataset, a pair and two models: both sentences coloured by each word's part of the score, and the word-pair matrix.

    Parameters
    ----------
    decompositions
        (model, dataset, pair) -> :class:`cwi.similarity.PairDecomposition`.
    pairs
        The pairs to offer: ``dataset``, ``pair``, ``gold`` (one row per pair, or per model and pair).
    first, second
        The models shown first.
    digits
        Decimals kept of each matrix entry (the page carries every entry of every pair).

    Returns
    -------
    IPython.display.HTML
        Each model's panel: its cosine, the terms that sum to it, the two
        sentences with each word coloured by its row or column sum of the
        matrix (diverging: red adds to the similarity, blue takes from it) and
        the matrix as a heatmap, matching words outlined.  Both panels share one
        colour scale, so their colours compare.
    """
    import matplotlib

    models = list(dict.fromkeys(model for model, _, _ in decompositions))
    for name in (first, second):
        if name not in models:
            raise ValueError(f"pair explorer: model {name!r} has no decompositions here; models: {models}")
    offered = pairs.drop_duplicates(["dataset", "pair"])
    datasets = list(dict.fromkeys(offered["dataset"]))
    entries = []
    for row in offered.itertuples():
        shown = {m: decompositions[(m, row.dataset, row.pair)] for m in models
                 if (m, row.dataset, row.pair) in decompositions}
        if not shown:
            continue
        some = next(iter(shown.values()))
        entry = {"d": datasets.index(row.dataset), "a": some.a.text, "b": some.b.text, "gold": float(row.gold) if np.isfinite(row.gold) else None,
                 "wa": [str(w) for w in some.a.words], "wb": [str(w) for w in some.b.words],
                 "match": np.argwhere(some.matches).tolist(), "m": {}}
        for model, d in shown.items():
            rows, columns = d.contributions()
            entry["m"][model] = {"score": round(d.score, digits), "pairs": round(float(d.matrix.sum()), digits),
                                 "words": round(float(d.left.sum() + d.right.sum()), digits),
                                 "base": round(d.reference, digits), "error": float(f"{d.error:.2g}"),
                                 "ra": [round(float(v), digits) for v in rows],
                                 "rb": [round(float(v), digits) for v in columns],
                                 "A": [[round(float(v), digits) for v in line] for line in d.matrix]}
            if d.a.words != some.a.words or d.b.words != some.b.words:  # cut to another model's max_length
                entry["m"][model].update({"wa": [str(w) for w in d.a.words], "wb": [str(w) for w in d.b.words],
                                          "match": np.argwhere(d.matches).tolist()})
        entries.append(entry)
    if not entries:
        raise ValueError("pair explorer: none of the pairs has a decomposition")
    palette = matplotlib.colormaps[PAIR_PALETTE](np.linspace(0.05, 0.95, 33))
    data = {"models": models, "datasets": datasets, "first": first, "second": second, "colours": list(COLOURS),
            "palette": [matplotlib.colors.to_hex(c) for c in palette], "pairs": entries}
    controls = "".join(_select(role, label) for role, label in
                       [("dataset", "dataset"), ("first", "model 1"), ("second", "model 2")])
    controls += f'<div>{_select("pair", "pair")}</div>'
    body = '<div data-role="gold"></div><div data-role="panels" class="cwi-panels"></div>'
    return _embed("similarity", controls, body, data)
