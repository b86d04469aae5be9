"""``python -m cwi explain``: any encoder's word weights and pair decompositions, in the terminal, as JSON, as a page.

    python -m cwi explain all-MiniLM-L6-v2 "A man plays a guitar."
    python -m cwi explain all-MiniLM-L6-v2 "A man plays a guitar." "A man is playing the guitar."
    python -m cwi explain ./my-model --pairs pairs.tsv --html explained.html --json explained.json

One sentence gives its words' weights; two give their cosine split into word
pairs (:func:`cwi.explain.similarity`); ``--pairs FILE.tsv`` many pairs, each
distinct sentence attributed once, and with gold scores the pairs where the
model and the gold disagree most.  ``--html`` writes one self-contained page
with the book's kernel-free views (the sentence explorer, the pair explorer):
it opens from disk, with no server and no network.
"""

from __future__ import annotations

import argparse
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import explain
from .encoders import POOLINGS

__all__ = ["add_parser", "run", "page", "disagreements"]

METHOD_NAMES = {"ig": "Integrated Gradients", "shap": "SHAP"}
DATASET = "your sentences"  # what the views call the one "dataset" a command's sentences form


def add_parser(commands, parents: list) -> argparse.ArgumentParser:
    """The ``explain`` sub-command of ``python -m cwi``."""
    parser = commands.add_parser(
        "explain", parents=parents, help="explain any encoder: one sentence's word weights, or which word pairs make "
                                         "two sentences similar (--pairs FILE.tsv: many pairs)")
    parser.add_argument("model", help="a registered model (all-MiniLM-L6-v2 is offline), a folder saved with "
                                      "save_pretrained, or a Hub id (owner/name, with --revision)")
    parser.add_argument("sentences", nargs="*", help="one sentence (its word weights) or two (why they are similar)")
    parser.add_argument("--pairs", type=Path, help="a TSV file of pairs: two tab-separated sentences per line, "
                                                   "an optional third column with a gold score")
    parser.add_argument("--pooling", choices=POOLINGS, help="default: the model's own (else mean)")
    parser.add_argument("--method", choices=tuple(METHOD_NAMES), default="ig", help="default: ig")
    parser.add_argument("--revision", help="the Hub commit (40 hex digits) a Hub id is loaded at")
    parser.add_argument("--top", type=int, default=5, help="word pairs (or disagreeing pairs) listed (default 5)")
    parser.add_argument("--html", type=Path, help="write a self-contained page with the interactive views")
    parser.add_argument("--json", type=Path, help="write the numbers as JSON")
    return parser


def _check(args: argparse.Namespace) -> None:
    """What is wrong with the command line, before the model loads (ValueError: one line)."""
    count = len(args.sentences)
    if args.pairs is not None and count:
        raise ValueError("give sentences or --pairs FILE.tsv, not both")
    if args.pairs is None and count not in (1, 2):
        raise ValueError(f"give one sentence (its word weights) or two (why they are similar), or --pairs "
                         f"FILE.tsv; got {count} sentences")
    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    for option in ("html", "json"):
        target = getattr(args, option)
        if target is not None and not target.resolve().parent.is_dir():
            raise ValueError(f"--{option} {target}: the folder {target.resolve().parent} does not exist")


def run(args: argparse.Namespace) -> None:
    """Carry out ``python -m cwi explain``; errors are exceptions with one-line messages."""
    _check(args)
    pairs = explain.read_pairs(args.pairs) if args.pairs is not None else None
    encoder = explain.load(args.model, args.pooling, args.revision)
    heading = f"{encoder.name} ({encoder.pooling} pooling), {METHOD_NAMES[args.method]}"
    if pairs is None and len(args.sentences) == 1:
        table = explain.word_weights(encoder, args.sentences, method=args.method)
        print(heading)
        print(weights_text(table))
        data = {"model": encoder.name, "pooling": encoder.pooling, "method": args.method,
                "words": json.loads(table.to_json(orient="records"))}
        views = [_sentence_view(_weights_frame(table, encoder.name, args.method), encoder.name)]
    else:
        if pairs is None:
            pairs = pd.DataFrame({"sentence1": [args.sentences[0]], "sentence2": [args.sentences[1]]})
        explained = explain.similarities(encoder, pairs, method=args.method)
        worst = disagreements(explained, args.top)
        print(heading)
        print(pair_text(explained[0], args.top) if len(explained) == 1 and args.pairs is None
              else pairs_text(explained, worst))
        data = {"model": encoder.name, "pooling": encoder.pooling, "method": args.method,
                "pairs": [e.to_dict() for e in explained]}
        if worst is not None:
            data["spearman"] = worst.attrs["spearman"]
            data["disagreements"] = worst.to_dict("records")
        views = _pair_views(explained, encoder.name, args.method)
    data = _finite(data)
    outputs = {}  # both made before either is written: a failure leaves neither half-done
    if args.json is not None:
        outputs[args.json] = (json.dumps(data, indent=1, allow_nan=False) + "\n", "numbers")
    if args.html is not None:
        outputs[args.html] = (page(heading, data, views), "page")
    for target, (text, what) in outputs.items():
        target.write_text(text, encoding="utf-8")
        print(f"{what} written to {target}" + (" (open it in a browser; it needs no server or network)"
                                               if what == "page" else ""))


def _finite(value):
    """`value` as plain JSON data: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- the terminal ---------------------------------------------------------------------------------------------


def _bar(value: float, per_unit: int = 4, widest: int = 24) -> str:
    return "#" * max(0, min(widest, round(value * per_unit)))


def weights_text(table: pd.DataFrame) -> str:
    """Each sentence's words with their weights, the weight over the sentence's mean, and a bar of it."""
    lines = []
    for _, rows in table.groupby("sentence_id", sort=True):
        first = rows.iloc[0]
        quality = f"completeness error {first['completeness_error']:.2%}"
        if pd.notna(first["path_points"]):
            quality += f", {int(first['path_points'])} path points"
        lines.append(f"{first['sentence']}  ({quality}{', cut to the model length' if first['truncated'] else ''})")
        width = max(4, *(len(str(w)) for w in rows["word"]))
        lines.append(f"  {'word':<{width}}  {'weight':>8}  {'/ mean':>7}")
        for row in rows.itertuples():
            lines.append(f"  {row.word:<{width}}  {row.weight:8.4f}  {row.normalised_weight:7.2f}  "
                         f"{_bar(row.normalised_weight)}")
    return "\n".join(lines)


def pair_text(pair: explain.PairExplanation, top: int) -> str:
    """One pair: the cosine, the terms that sum to it, the top word pairs, each word's part."""
    d = pair.decomposition
    cut = [side for side, was_cut in zip(("first", "second"), pair.truncated) if was_cut]
    lines = [f"first:  {d.a.text}", f"second: {d.b.text}"]
    if cut:
        lines.append(f"({' and '.join(cut)} cut to the model's maximum length: the numbers are those of the cut text)")
    lines += [f"cosine {pair.score:.4f}"
             + (f" (gold {pair.gold:g})" if pair.gold is not None else "")]
    for k, (term, value) in enumerate(pair.terms.items()):
        lines.append(f"  {'=' if k == 0 else '+'} {value:+.4f}  {explain.TERM_NAMES[term]}")
    lines.append(f"  (the terms miss {pair.error:.1e} of the cosine: what the attribution leaves over; at most "
                 f"{d.error_bound:.1e} by its completeness errors; the last two terms depend on the baseline)")
    lines.append("largest word pairs (each cell: the two words' attribution vectors' dot product over the norms; a "
                 "product of two single-sentence attributions, not an interaction):")
    for row in pair.top_pairs(top).itertuples():
        lines.append(f"  {row.first} ~ {row.second}  {row.part:+.4f}{'  same word' if row.same_word else ''}")
    lines.append("each word's part of the word pairs (its row or column sum; not its effect if removed):")
    for side, sentence, values in zip(("first", "second"), (d.a, d.b), d.contributions()):
        lines.append(f"  {side + ':':<8}" + "  ".join(f"{w} {v:+.3f}" for w, v in zip(sentence.words, values)))
    return "\n".join(lines)


def disagreements(explained: list[explain.PairExplanation], top: int) -> pd.DataFrame | None:
    """The pairs whose cosine ranks farthest from their gold score's rank (``None`` without gold scores).

    Ranks are fractions in [0, 1] among the pairs (Spearman's correlation, which
    scores a model on STS, sees only them); ``attrs["spearman"]`` is that correlation.
    """
    from scipy.stats import spearmanr

    gold = [e.gold for e in explained]
    if any(g is None for g in gold) or len(explained) < 3:
        return None
    frame = pd.DataFrame({"pair": range(1, len(explained) + 1), "first": [e.decomposition.a.text for e in explained],
                          "second": [e.decomposition.b.text for e in explained],
                          "cosine": [e.score for e in explained], "gold": gold})
    frame["rank_gap"] = (frame["cosine"].rank(pct=True) - frame["gold"].rank(pct=True)).round(4)
    frame["largest_cell"] = [" ~ ".join(e.top_pairs(1).iloc[0][["first", "second"]]) for e in explained]
    worst = frame.reindex(frame["rank_gap"].abs().sort_values(ascending=False, kind="stable").index).head(top)
    rho = spearmanr(frame["cosine"], frame["gold"]).statistic
    worst.attrs["spearman"] = None if not math.isfinite(rho) else float(rho)
    return worst.reset_index(drop=True)


def pairs_text(explained: list[explain.PairExplanation], worst: pd.DataFrame | None) -> str:
    """Many pairs: one line each, then (with gold scores, `worst`: :func:`disagreements`) Spearman's correlation
    and the pairs that disagree most."""
    lines = [f"{'pair':>4}  {'cosine':>7}  {'gold':>5}  {'same words':>10}  largest word pair"]
    for k, e in enumerate(explained, 1):
        best = e.top_pairs(1).iloc[0]
        gold = f"{e.gold:5.2f}" if e.gold is not None else f"{'':5}"
        lines.append(f"{k:>4}  {e.score:7.4f}  {gold}  {e.terms['same_words']:10.4f}  "
                     f"{best['first']} ~ {best['second']} {best['part']:+.4f}"
                     + ("  (cut to the model's length)" if any(e.truncated) else ""))
    if worst is None and all(e.gold is not None for e in explained):
        lines.append("fewer than 3 pairs with gold scores: no correlation")
    if worst is not None:
        rho = worst.attrs["spearman"]
        lines.append(f"Spearman correlation of cosine and gold over {len(explained)} pairs: "
                     + ("undefined (a constant column)" if rho is None else f"{rho:.3f}"))
        lines.append(f"largest rank gaps among these {len(explained)} pairs (cosine rank minus gold rank, as fractions "
                     "of these pairs: relative to them, not the error of one cosine; the largest cell is that pair's "
                     "biggest word-pair term, not the cause of the gap):")
        for row in worst.itertuples():
            lines.append(f"  pair {row.pair}: {row.rank_gap:+.2f} (cosine {row.cosine:.3f}, gold {row.gold:g}), "
                         f"largest cell {row.largest_cell}: {row.first!r} / {row.second!r}")
    return "\n".join(lines)


# --- the page -------------------------------------------------------------------------------------------------


def _weights_frame(table: pd.DataFrame, model: str, method: str) -> pd.DataFrame:
    """A word-weight table as the sentence explorer reads it (model, dataset and method columns)."""
    return table.assign(model=model, dataset=DATASET, method=method)


def _sentence_view(weights: pd.DataFrame, model: str) -> str:
    from .interactive import sentence_explorer

    return sentence_explorer(weights, model, model).data


def _pair_views(explained: list[explain.PairExplanation], model: str, method: str) -> list[str]:
    """The pair explorer of every pair, and the sentence explorer of every distinct sentence's word weights."""
    from .interactive import pair_explorer

    decompositions = {(model, DATASET, k): e.decomposition for k, e in enumerate(explained)}
    pairs = pd.DataFrame({"dataset": DATASET, "pair": range(len(explained)),
                          "gold": [np.nan if e.gold is None else e.gold for e in explained]})
    rows, seen = [], {}
    for e in explained:
        for sentence in (e.decomposition.a, e.decomposition.b):
            if sentence.text in seen:
                continue
            seen[sentence.text] = len(seen)
            weights = np.linalg.norm(sentence.vectors, axis=1)
            mean = weights.mean() if len(weights) and weights.mean() > 0 else 1.0
            rows += [{"sentence_id": seen[sentence.text], "sentence": sentence.text, "word_index": index,
                      "word": word, "weight": w, "normalised_weight": w / mean}
                     for index, word, w in zip(sentence.word_index, sentence.words, weights)]
    weights = _weights_frame(pd.DataFrame(rows), model, method)
    return [pair_explorer(decompositions, pairs, model, model).data, _sentence_view(weights, model)]


def page(heading: str, data: dict, views: list[str]) -> str:
    """One self-contained HTML page: what was explained, the disagreeing pairs if any, and the views."""
    parts = [f"<h1>{html.escape(heading)}</h1>"]
    if "pairs" in data:
        count = len(data["pairs"])
        parts.append(f"<p>{count} pair{'s' * (count != 1)}. Each cosine is split, up to the attribution's "
                     "completeness error, into word pairs (the two words' attribution vectors' dot product over the "
                     "product of the final norms: a product of two single-sentence attributions, not an interaction), "
                     "each word against the other sentence's baseline and the two baselines (these two depend on the "
                     "baseline). A word's part is not its effect if removed. Pick a pair below.</p>")
        if data.get("disagreements"):
            rho = data.get("spearman")
            parts.append(f"<h2>The largest rank gaps among these {count} pairs</h2><p>Spearman correlation of cosine "
                         f"and gold: {'undefined' if rho is None else f'{rho:.3f}'}. A rank gap is the cosine's rank "
                         "minus the gold score's, as fractions of these pairs: relative to them, not the error of one "
                         "cosine. The largest cell is the pair's biggest word-pair term, not the cause of the gap.</p>")
            header = "".join(f"<th>{h}</th>" for h in ("pair", "rank gap", "cosine", "gold", "largest cell",
                                                        "first", "second"))
            body = "".join(
                f"<tr><td>{row['pair']}</td><td>{row['rank_gap']:+.2f}</td><td>{row['cosine']:.3f}</td>"
                f"<td>{row['gold']:g}</td><td>{html.escape(row['largest_cell'])}</td>"
                f"<td>{html.escape(row['first'])}</td><td>{html.escape(row['second'])}</td></tr>"
                for row in data["disagreements"])
            parts.append(f'<table class="cwi-disagreements"><thead><tr>{header}</tr></thead><tbody>{body}</tbody>'
                         "</table>")
    else:
        parts.append("<p>Each word's weight is the norm of its attribution vector; the views show it over the "
                     "sentence's mean word weight.</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table.cwi-disagreements{border-collapse:collapse;font-size:90%}"
             "table.cwi-disagreements td,table.cwi-disagreements th{border-bottom:1px solid #ddd;padding:.3em .5em;"
             "text-align:left}")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(heading)}</title><style>{style}</style></head><body>"
            + "".join(parts) + "".join(views) + "</body></html>\n")
