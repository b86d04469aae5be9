"""Why two sentences are similar: their dot product split into word pairs, scaled by the final norms.

An attribution method of :mod:`cwi.attribution` gives every word w of a sentence
a d-dimensional vector c_w with ``sum_w c_w = f(a) - f(a')`` (Integrated
Gradients: up to its completeness error).  The dot product is bilinear, so

    f(a) . f(b) = sum_w sum_v c_w(a) . c_v(b)          (word pairs, the matrix A)
                + sum_w c_w(a) . f(b') + sum_v f(a') . c_v(b)   (each word against the other's baseline)
                + f(a') . f(b')                          (the baselines' own similarity)

and dividing by ``N = |f(a)| |f(b)|`` splits the cosine.  The norms are those
of the two final embeddings, constants of the pair: the normalisation itself is
not attributed (as the integrated Jacobians of Moeller, Nikolaev and Padó 2023
do for normalised embeddings, whose norm is 1).  The book attributes a model
that ends in a ``Normalize`` module before that step, as the Attribution
chapter does; the cosine is the same (with the module, N would be 1).  The split
is symmetric in (a, b) by construction and exact whenever the attribution is
complete: :attr:`PairDecomposition.error` is what IG's quadrature leaves over.

Words are :func:`cwi.stats.tokenize`'s, aligned with tokens as everywhere in
the book; two words *match* when they are the same word of that tokenizer
(lower-cased, no lemmas): the diagonal of lexical overlap.

:func:`sentence_vectors` keeps what a pair needs of one attributed sentence,
:func:`decompose` splits one pair, :func:`pair_summary` and :func:`word_contributions`
turn many pairs into the tables the Similarity chapter reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .encoders import Encoder
from .inputs import WordAttribution

__all__ = ["SIMILARITY_VERSION", "TERMS", "CHANGE_WORDS", "SentenceVectors", "PairDecomposition", "sentence_vectors",
           "decompose", "attributed_sentences", "decompose_sentences", "pair_summary", "chance_same_words",
           "word_contributions", "worst_pairs", "pair_key", "regression_frame",
           "ChangeFamily", "change_family", "twin_blocks", "null_orders", "null_rate"]

# Bump when what sentence_vectors stores or decompose computes changes: part of the cache keys.
SIMILARITY_VERSION = 1

# The parts of a cosine, in the order the chapter stacks them (columns of pair_summary).
TERMS = {
    "same_words": "same word in both (diagonal)",
    "other_words": "different words (off-diagonal)",
    "word_baseline": "a word against the other's baseline",
    "baselines": "the two baselines",
}


@dataclass(frozen=True)
class SentenceVectors:
    """What a pair decomposition needs of one attributed sentence.

    Attributes
    ----------
    text
        The sentence as attributed (cut to the model's length if it had to be).
    words, word_index
        Its words (:func:`cwi.stats.tokenize`) that have tokens, and their positions in that list.
    vectors
        (W, d) each word's attribution vector c_w.
    embedding, baseline
        (d,) f(x) and f(x'), the sentence's embedding and its baseline's.
    path_points, word_error
        Integrated Gradients' kept rule and its word error (NaN, None for other methods).
    """

    text: str
    words: list[str]
    word_index: list[int]
    vectors: np.ndarray
    embedding: np.ndarray
    baseline: np.ndarray
    path_points: int | None = None
    word_error: float = float("nan")

    @property
    def completeness_error(self) -> float:
        """``||sum_w c_w - (f(x) - f(x'))|| / ||f(x) - f(x')||``."""
        delta = self.embedding - self.baseline
        return float(np.linalg.norm(self.vectors.sum(0) - delta) / max(np.linalg.norm(delta), 1e-12))


def sentence_vectors(encoder: Encoder, result: WordAttribution) -> SentenceVectors:
    """:class:`SentenceVectors` of one attributed sentence: its word vectors, f(x) and f(x').

    f(x) and f(x') are the encoder's forward pass on the attributed sentence's
    input and baseline embeddings, the very inputs the attribution integrated between.
    """
    prepared = result.sentence
    mask = prepared.batch["attention_mask"]
    with torch.no_grad():
        both = encoder.forward(inputs_embeds=torch.stack([prepared.inputs, prepared.baseline]),
                               attention_mask=mask.expand(2, -1)).double().cpu().numpy()
    return SentenceVectors(prepared.text, list(prepared.word_text), list(prepared.word_index),
                           result.values.double().cpu().numpy(), both[0], both[1], result.path_points,
                           float(result.word_error))


@dataclass(frozen=True)
class PairDecomposition:
    """The cosine of two sentences split into word pairs (:func:`decompose`).

    Attributes
    ----------
    a, b
        The two sentences.
    matrix
        (W_a, W_b) ``c_w(a) . c_v(b) / N``: what each pair of words contributes.
    left, right
        (W_a,) ``c_w(a) . f(b') / N`` and (W_b,) ``f(a') . c_v(b) / N``: each word against the other's baseline.
    reference
        ``f(a') . f(b') / N``: the baselines' similarity, which no word carries.
    score
        The model's cosine of f(a) and f(b).
    """

    a: SentenceVectors
    b: SentenceVectors
    matrix: np.ndarray
    left: np.ndarray
    right: np.ndarray
    reference: float
    score: float

    @property
    def total(self) -> float:
        """The sum of every term: the score up to the attribution's completeness error."""
        return float(self.matrix.sum() + self.left.sum() + self.right.sum() + self.reference)

    @property
    def error(self) -> float:
        """``|total - score|``, the decomposition error (0 for a complete attribution)."""
        return abs(self.total - self.score)

    @property
    def error_bound(self) -> float:
        """The most :attr:`error` can be given the two attributions' completeness errors (Cauchy-Schwarz).

        With ``e = sum_w c_w - (f(x) - f(x'))`` of each side, the terms sum to
        ``(f(a) + e_a) . (f(b) + e_b) / N``, so the error is at most
        ``(|e_a| |f(b)| + |f(a)| |e_b| + |e_a| |e_b|) / N``.
        """
        e_a, e_b = (np.linalg.norm(s.vectors.sum(0) - (s.embedding - s.baseline)) for s in (self.a, self.b))
        n_a, n_b = np.linalg.norm(self.a.embedding), np.linalg.norm(self.b.embedding)
        return float((e_a * n_b + n_a * e_b + e_a * e_b) / (n_a * n_b))

    @property
    def matches(self) -> np.ndarray:
        """(W_a, W_b) whether the two words are the same word (lower-cased :func:`cwi.stats.tokenize` words)."""
        return np.equal.outer(np.array(self.a.words, dtype=object), np.array(self.b.words, dtype=object))

    @property
    def same_words(self) -> float:
        """The sum of the matrix over matching word pairs: the diagonal of lexical overlap."""
        return float(self.matrix[self.matches].sum())

    @property
    def same_content_words(self) -> float:
        """:attr:`same_words` without stopwords and punctuation (:func:`cwi.analysis.is_stopword`).

        "a", "the" and the final full stop match in most pairs; this is the overlap of the words that carry content.
        """
        from .analysis import is_stopword

        content = ~is_stopword(pd.Series(self.a.words, dtype=object)).to_numpy()
        return float(self.matrix[self.matches & content[:, None]].sum())

    @property
    def chance_same_words(self) -> float:
        """What the matching cells would hold if each matched word's partner were any word of the other sentence.

        Permuting the word labels of sentence b at random moves each matching
        cell (i, j) of row i to a random column, so row i's matches are expected
        to hold ``r_i`` times its mean cell (``r_i`` its number of matches); the
        same for permuting a's labels, by columns.  The mean of the two keeps
        the reference symmetric in (a, b).  Each matched word's own size stays
        in the reference: only its partner is drawn at random.
        """
        matches = self.matches
        by_rows = float((matches.sum(1) * self.matrix.mean(1)).sum())
        by_columns = float((matches.sum(0) * self.matrix.mean(0)).sum())
        return (by_rows + by_columns) / 2

    def contributions(self) -> tuple[np.ndarray, np.ndarray]:
        """Each word's contribution to the word-pair part: the row sums (words of a) and column sums (words of b)."""
        return self.matrix.sum(1), self.matrix.sum(0)


def decompose(a: SentenceVectors, b: SentenceVectors) -> PairDecomposition:
    """Split ``cos(f(a), f(b))`` into word pairs, words against baselines, and the baselines (module docstring)."""
    norm = float(np.linalg.norm(a.embedding) * np.linalg.norm(b.embedding))
    if norm == 0:
        raise ValueError(f"a sentence embeds to the zero vector ({a.text[:40]!r} or {b.text[:40]!r}): "
                         "its cosine is undefined")
    return PairDecomposition(
        a, b, a.vectors @ b.vectors.T / norm, a.vectors @ b.baseline / norm, b.vectors @ a.baseline / norm,
        float(a.baseline @ b.baseline / norm), float(a.embedding @ b.embedding / norm))


def attributed_sentences(encoder: Encoder, texts: list[str], method: str = "ig", baseline: str = "pad",
                         **settings) -> dict[str, tuple[SentenceVectors, bool]]:
    """Each distinct text of `texts` attributed once by `method` of :data:`cwi.attribution.METHODS`, by text.

    The method batches sentences of similar length.  A sentence longer than the
    model's ``max_length`` is cut after its last whole word; the bool says so.
    `settings` are the method's own (``points``, ``rule``, ``target`` for IG).
    """
    from .attribution import METHODS, fit_to_length

    distinct = list(dict.fromkeys(texts))
    fitted = [fit_to_length(encoder, text) for text in distinct]
    results = METHODS[method](encoder, [text for text, _ in fitted], baseline=baseline, **settings)
    return {text: (sentence_vectors(encoder, result), cut) for text, result, (_, cut) in zip(distinct, results, fitted)}


def decompose_sentences(encoder: Encoder, first: str, second: str, method: str = "ig", baseline: str = "pad",
                        **settings) -> PairDecomposition:
    """:func:`decompose` two sentences with `encoder`, each attributed by :func:`attributed_sentences`."""
    vectors = attributed_sentences(encoder, [first, second], method, baseline, **settings)
    return decompose(vectors[first][0], vectors[second][0])


def pair_summary(decompositions: list[PairDecomposition]) -> pd.DataFrame:
    """One row per pair: its score, the :data:`TERMS` that sum to it, and the decomposition error.

    Columns: ``score``, ``same_words``, ``other_words``, ``word_baseline``,
    ``baselines`` (these four sum to ``score`` up to ``error``), ``word_pairs``
    (``same_words + other_words``), ``same_content_words`` (the part of
    ``same_words`` on words that are neither stopwords nor punctuation),
    ``chance_same_words`` (:attr:`PairDecomposition.chance_same_words`),
    ``error``, ``error_bound`` (what the completeness errors allow:
    :attr:`PairDecomposition.error_bound`), ``matched_cells`` (matching word
    pairs), ``cells`` (all word pairs), ``completeness_a``/``completeness_b``
    and ``word_error_a``/``word_error_b`` (IG's word error of each side, NaN for other methods).
    """
    rows = []
    for d in decompositions:
        same = d.same_words
        rows.append({"score": d.score, "same_words": same, "other_words": float(d.matrix.sum()) - same,
                     "word_baseline": float(d.left.sum() + d.right.sum()), "baselines": d.reference,
                     "word_pairs": float(d.matrix.sum()), "same_content_words": d.same_content_words,
                     "chance_same_words": d.chance_same_words,
                     "error": d.error, "error_bound": d.error_bound,
                     "matched_cells": int(d.matches.sum()), "cells": d.matrix.size,
                     "completeness_a": d.a.completeness_error, "completeness_b": d.b.completeness_error,
                     "word_error_a": d.a.word_error, "word_error_b": d.b.word_error})
    return pd.DataFrame(rows)


def chance_same_words(pairs: pd.DataFrame) -> pd.Series:
    """Each pair's same-word sum if the word labels of one sentence were permuted at random: its expectation.

    The column ``chance_same_words`` of :func:`pair_summary`
    (:attr:`PairDecomposition.chance_same_words`): the reference of
    :func:`cwi.similarity_references.excess_share` and of the family's excess share.
    """
    return pairs["chance_same_words"]


def word_contributions(decomposition: PairDecomposition) -> pd.DataFrame:
    """One row per word of both sentences: its contribution to the word-pair part and that over its sentence's mean magnitude.

    Columns: ``side`` (``"a"`` or ``"b"``), ``word_index`` (position in
    :func:`cwi.stats.tokenize` of its sentence), ``word``, ``contribution``
    (row or column sum of the matrix), ``normalised_contribution``
    (``contribution / mean |contribution|`` over the words of its sentence,
    the scale of the Correlations chapter's normalised weight; signed: a word
    can pull the sentences apart) and ``matched`` (the word occurs in the other sentence).
    """
    frames = []
    rows, columns = decomposition.contributions()
    matches = decomposition.matches
    for side, sentence, values, matched in [("a", decomposition.a, rows, matches.any(1)),
                                            ("b", decomposition.b, columns, matches.any(0))]:
        scale = float(np.abs(values).mean()) or 1.0
        frames.append(pd.DataFrame({"side": side, "word_index": sentence.word_index, "word": sentence.words,
                                    "contribution": values, "normalised_contribution": values / scale,
                                    "matched": matched}))
    return pd.concat(frames, ignore_index=True)


def worst_pairs(pairs: pd.DataFrame, decompositions: dict, per_model: int = 3, top_words: int = 3) -> pd.DataFrame:
    """The pairs whose score ranks farthest from their gold score's rank, per model, with the word pairs that carry them.

    Parameters
    ----------
    pairs
        One row per (model, dataset, pair): ``model``, ``dataset``, ``pair``,
        ``score``, ``gold``.  Ranks are taken within each model and dataset (as
        Spearman's correlation, which scores the model, sees them), as fractions in [0, 1].
    decompositions
        (model, dataset, pair) -> :class:`PairDecomposition`.
    per_model
        Pairs per model.
    top_words
        Word pairs listed per pair: those of largest ``|A|``.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``dataset``, ``pair``, ``sentence 1``, ``sentence 2``, ``gold
        rank``, ``score rank``, ``rank gap`` (score rank minus gold rank: > 0, the
        model rates the pair more similar than the annotators do), ``score``, ``gold``
        and ``top word pairs`` ("word1 ~ word2 +0.123; ...").
    """
    ranked = pairs.copy()
    group = ranked.groupby(["model", "dataset"])
    ranked["gold rank"] = group["gold"].rank(pct=True)
    ranked["score rank"] = group["score"].rank(pct=True)
    ranked["rank gap"] = ranked["score rank"] - ranked["gold rank"]
    ranked["size"] = ranked["rank gap"].abs()
    rows = ranked.sort_values(["model", "size"], ascending=[True, False], kind="stable").groupby("model").head(per_model)
    texts = []
    for r in rows.itertuples():
        d = decompositions[(r.model, r.dataset, r.pair)]
        order = np.argsort(-np.abs(d.matrix), axis=None, kind="stable")[:top_words]
        cells = [np.unravel_index(k, d.matrix.shape) for k in order]
        texts.append({"sentence 1": d.a.text, "sentence 2": d.b.text,
                      "top word pairs": "; ".join(f"{d.a.words[i]} ~ {d.b.words[j]} {d.matrix[i, j]:+.3f}"
                                                  for i, j in cells)})
    out = pd.concat([rows.reset_index(drop=True), pd.DataFrame(texts)], axis=1)
    return out[["model", "dataset", "pair", "sentence 1", "sentence 2", "gold", "score", "gold rank", "score rank",
                "rank gap", "top word pairs"]]


# ---- Inference: which words carry the similarity, and how fine-tuning changes that ----

# What a member of the chapter's family says when its interval excludes 0 (codes of cwi.analysis.verdict).
CHANGE_WORDS = {
    "same-word share": {"more": "more of the word-pair similarity on the same words",
                        "less": "less of the word-pair similarity on the same words (more on different words)",
                        "unclear": "no clear difference", "not fitted": "not estimable on these pairs"},
    "excess same-word share": {"more": "a larger excess of the same words over what random partners would carry",
                               "less": "a smaller excess of the same words over what random partners would carry",
                               "unclear": "no clear difference", "not fitted": "not estimable on these pairs"},
    "delta beta": {"more": "a larger slope of the contributions on it",
                   "less": "a smaller slope of the contributions on it",
                   "unclear": "no clear difference", "not fitted": "not estimable on these pairs"},
}


def pair_key(sentence1: str, sentence2: str) -> str:
    """One text per pair, the unit the bootstrap resamples (a pair in two datasets is one cluster)."""
    return f"{sentence1} __and__ {sentence2}"


def regression_frame(words: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Word contributions shaped as word weights, so that :mod:`cwi.analysis` fits them as it fits weights.

    ``sentence`` is the pair (:func:`pair_key`), so the sentence bootstrap
    resamples pairs; ``word_index`` counts on through sentence b (a word of b at
    position i is ``W_a + i``); ``normalised_weight`` is the normalised
    contribution; ``method`` is ``"ig"`` and ``sentence_id`` the pair number.
    Join :func:`cwi.analysis.attach_statistics` to it for the quantities.
    """
    keys = pairs.drop_duplicates(["dataset", "pair"]).set_index(["dataset", "pair"])
    frame = words.join(keys[["sentence1", "sentence2"]], on=["dataset", "pair"])
    offset = (frame[frame["side"] == "a"].groupby(["model", "dataset", "pair"])["word_index"].max() + 1).rename("offset")
    frame = frame.join(offset, on=["model", "dataset", "pair"])
    frame["word_index"] = np.where(frame["side"] == "b", frame["word_index"] + frame["offset"], frame["word_index"])
    frame["sentence"] = [pair_key(a, b) for a, b in zip(frame["sentence1"], frame["sentence2"])]
    return frame.assign(method="ig", sentence_id=frame["pair"], normalised_weight=frame["normalised_contribution"]
                        ).drop(columns=["offset", "sentence1", "sentence2"])


@dataclass
class ChangeFamily:
    """The Similarity chapter's family of changes (fine-tuned minus pre-trained), one member per twin and statistic.

    Attributes
    ----------
    members
        ``twin``, ``statistic`` (``"same-word share"``, ``"excess same-word share"`` or ``"delta beta"``),
        ``quantity`` (empty for the share), ``pretrained``, ``finetuned``
        (each model's value), ``estimate`` (their difference), ``low``, ``high``
        (simultaneous intervals at the family's level) and ``verdict`` (a code of
        :data:`CHANGE_WORDS`; ``"not fitted"`` where the interval is undefined).
    models
        Per model: ``model``, ``statistic``, ``quantity``, ``value``, ``low``, ``high`` (percentile intervals)
        and, for the share, ``positive_denominator`` (the fraction of bootstrap draws whose sum of word pairs is > 0).
    critical
        The max-t critical value of the simultaneous intervals.
    """

    members: pd.DataFrame
    models: pd.DataFrame
    critical: float


# The family's share statistics, in the order _Family.statistics stacks them (before the slopes).
SHARES = (("same-word share", ""), ("excess same-word share", ""))


class _Family:
    """The family's statistics from per-pair sums, so that a relabelling of the models is a cheap recomputation."""

    def __init__(self, pairs: pd.DataFrame, words: pd.DataFrame, models: list[str], twins: dict, bootstrap,
                 scales: dict[str, float], quantities):
        from .analysis import fit_models

        self.models, self.twins, self.quantities = models, twins, list(quantities)
        wide = pairs.assign(chance=chance_same_words(pairs)).pivot_table(
            index=["dataset", "sentence"], columns="model", values=["same_words", "word_pairs", "chance"],
            observed=True).dropna()
        self.units = bootstrap.locate(wide.index.to_frame(index=False))  # the bootstrap column of each pair
        self.same = wide["same_words"][models].to_numpy().T  # (M, G)
        self.word_pairs = wide["word_pairs"][models].to_numpy().T
        self.chance = wide["chance"][models].to_numpy().T  # the permutation reference of same_words
        self.counts = bootstrap.counts[:, self.units]  # (B, G)
        self.cluster = np.asarray(bootstrap.cluster)  # the resampling unit of each bootstrap column
        self.n_clusters = int(bootstrap.clusters)
        self.blocks = twin_blocks(models, twins)
        self.fits = {q: fit_models(words, models, q, bootstrap, scales.get(q)) for q in self.quantities}

    def statistics(self, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(M, S) values and (B, M, S) draws per model of the S statistics; `order` (columns, M) relabels models per pair."""
        same, word_pairs, chance = self.same, self.word_pairs, self.chance
        if order is not None:
            same, word_pairs, chance = (np.take_along_axis(x, order[self.units].T, 0) for x in (same, word_pairs, chance))
        excess = same - chance
        values = [same.sum(1) / word_pairs.sum(1), excess.sum(1) / word_pairs.sum(1)]
        draws = [(self.counts @ same.T) / (self.counts @ word_pairs.T),
                 (self.counts @ excess.T) / (self.counts @ word_pairs.T)]
        for q in self.quantities:
            fit = self.fits[q]
            if order is None:
                beta, beta_draws = fit.beta, fit.beta_draws
            else:
                relabel = order[fit.sentences]  # (g, M): the model whose words each column gets
                xty = np.take_along_axis(fit.xty, relabel[:, None, :], 2)
                yy = np.take_along_axis(fit.yy, relabel, 1)
                beta, _, beta_draws, _ = fit.refit(xty, yy)
            values.append(beta)
            draws.append(beta_draws)
        return np.stack(values, 1), np.stack(draws, 2)

    def changes(self, values, draws) -> tuple[list[tuple], np.ndarray, np.ndarray]:
        """The members (twin, statistic, quantity), their estimates (m,) and draws (B, m)."""
        names, estimates, member_draws = [], [], []
        for twin, pair in self.twins.items():
            pre, fine = self.models.index(pair.pretrained), self.models.index(pair.finetuned)
            for s, (statistic, quantity) in enumerate([*SHARES, *[("delta beta", q) for q in self.quantities]]):
                names.append((twin, statistic, quantity, pre, fine, s))
                estimates.append(values[fine, s] - values[pre, s])
                member_draws.append(draws[:, fine, s] - draws[:, pre, s])
        return names, np.array(estimates), np.stack(member_draws, 1)


def change_family(pairs: pd.DataFrame, words: pd.DataFrame, twins: dict, bootstrap, scales: dict[str, float],
                  quantities, level: float = 0.95) -> tuple[ChangeFamily, "_Family"]:
    """Each twin's change of the same-word share, of its excess over chance and of beta per quantity, adjusted together.

    Parameters
    ----------
    pairs
        One row per (model, dataset, pair) with ``sentence`` (:func:`pair_key`),
        ``same_words`` and ``word_pairs`` (:func:`pair_summary`).
    words
        :func:`regression_frame` with statistics, usable rows only (``status == "ok"``).
    twins
        Name -> :class:`cwi.models.ModelPair` with both models in `pairs`.
    bootstrap
        :class:`cwi.analysis.SentenceBootstrap` over the pairs (their ``sentence``).
    scales
        Each quantity's SD (:func:`cwi.analysis.quantity_scales`).
    quantities
        The quantities whose slope is a member.

    Returns
    -------
    ChangeFamily, and the statistics' workspace that :func:`null_rate` reuses.

    Notes
    -----
    The same-word share is a ratio of sums over the pairs,
    ``sum same_words / sum word_pairs``: a pair weighs by its word-pair
    similarity, and the ratio stays defined where one pair's own sum is near 0.
    The excess share subtracts, pair by pair, what the matching cells would
    hold if each matched word's partner were a random word of the other
    sentence (:func:`chance_same_words`), over the same denominator: the
    sample's lexical overlap and the matched words' own sizes are then no
    longer part of it.
    Every statistic of every model is computed on the same bootstrap draws of
    pairs, so the changes are paired and the family's max-t band
    (:func:`cwi.inference.simultaneous`) sees how its members move together.
    """
    from .analysis import verdict
    from .inference import simultaneous

    models = list(dict.fromkeys(m for pair in twins.values() for m in (pair.pretrained, pair.finetuned)))
    family = _Family(pairs, words, models, twins, bootstrap, scales, quantities)
    values, draws = family.statistics()
    names, estimates, member_draws = family.changes(values, draws)
    low, high, critical = simultaneous(estimates, member_draws, level)
    members = pd.DataFrame([{"twin": twin, "statistic": statistic, "quantity": quantity,
                             "pretrained": values[pre, s], "finetuned": values[fine, s], "estimate": e,
                             "low": lo, "high": hi, "verdict": verdict(lo, hi) if np.isfinite(lo) else "not fitted"}
                            for (twin, statistic, quantity, pre, fine, s), e, lo, hi in zip(names, estimates, low, high)])
    statistics = [*SHARES, *[("beta", q) for q in family.quantities]]
    # The share's denominator in each draw: a ratio of sums is read only where it stays positive.
    positive = ((family.counts @ family.word_pairs.T) > 0).mean(0)
    per_model = pd.DataFrame([{"model": model, "statistic": statistic, "quantity": quantity, "value": values[m, s],
                               **dict(zip(("low", "high"), np.quantile(draws[:, m, s], [(1 - level) / 2,
                                                                                         (1 + level) / 2]))),
                               "positive_denominator": positive[m] if s < len(SHARES) else np.nan}
                              for m, model in enumerate(models) for s, (statistic, quantity) in enumerate(statistics)])
    return ChangeFamily(members, per_model, critical), family


def twin_blocks(models: list[str], twins: dict) -> list[np.ndarray]:
    """The models joined by twin pairs, as groups of positions in `models` (connected components).

    A pre-trained model with two fine-tuned twins is one block of three; models
    of different families (BERT, RoBERTa, MPNet) are never in one block.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.array([[models.index(p.pretrained), models.index(p.finetuned)] for p in twins.values()]).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(models),) * 2)
    n_blocks, block = connected_components(graph, directed=False)
    return [np.flatnonzero(block == b) for b in range(n_blocks)]


def null_orders(family: "_Family", rng: np.random.Generator) -> np.ndarray:
    """(columns, M) a random relabelling of the models for each bootstrap column, drawn per resampling unit.

    Models are permuted only within their :func:`twin_blocks` (what "no effect
    of fine-tuning" makes exchangeable), and one permutation serves every
    column of a cluster (a pair in two datasets is one unit, as in the bootstrap).
    """
    order = np.tile(np.arange(len(family.models)), (family.n_clusters, 1))
    for block in family.blocks:
        order[:, block] = block[rng.permuted(np.tile(np.arange(len(block)), (family.n_clusters, 1)), axis=1)]
    return order[family.cluster]


def null_rate(family: "_Family", level: float, simulations: int, seed: int) -> tuple[int, int]:
    """How often the family's rule finds a change where there is none: (simulations with a verdict, simulations).

    Each simulation relabels the models at random within every pair (all of a
    pair's words together) and within each block of twins (:func:`null_orders`):
    with no effect of fine-tuning a pre-trained model and its fine-tuned twins
    are exchangeable, so any verdict is a false positive.  The rule is the one
    the chapter applies, on the same bootstrap draws.
    """
    from .inference import simultaneous

    rng = np.random.default_rng(seed)
    said = 0
    for _ in range(simulations):
        order = null_orders(family, rng)
        values, draws = family.statistics(order)
        _, estimates, member_draws = family.changes(values, draws)
        low, high, _ = simultaneous(estimates, member_draws, level)
        said += bool(np.any((low > 0) | (high < 0)))
    return said, simulations
