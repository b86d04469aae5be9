"""Reference points for the Similarity chapter's split of a cosine (:mod:`cwi.similarity`).

The same-word share alone mixes three things: how much the sample's sentences
overlap, how large the matching cells are, and how much the other cells cancel.
This module gives it references:

* :func:`cwi.similarity.chance_same_words`: what the matching cells of a pair would
  hold if the word labels of one sentence were permuted at random (each matched
  word keeps its own row, or column, and gets a random partner): row i's
  matches hold ``r_i`` times the row's mean cell in expectation, so the
  permutation's mean needs no simulation (the mean of permuting either
  sentence, to stay symmetric).  :func:`excess_share` is the share minus that
  reference: 0 where a matched word shares no more with its twin than with
  any other word of the other sentence.
* :func:`without_common_direction`: the decomposition of the cosine of the two
  embeddings with their common direction removed (each of f(x), f(x') and the
  word vectors projected off the unit vector u of the model's mean embedding,
  as SIF removes a common component).  A contrastively fine-tuned model is more
  isotropic, which shrinks the off-diagonal mass and can raise the share with no
  change of reliance on shared words; with the common direction gone, that
  geometry no longer moves it.  (Mean-centring alone would not do: the word
  vectors are differences, unchanged by subtracting a mean, so the word-pair
  part of a centred cosine is the same matrix over another constant.)
* :func:`term_variance`: which term spreads the scores, and which agrees with
  the gold scores.  The score is the sum of the terms (up to IG's completeness
  error), so its variance across pairs splits exactly into each term's
  covariance with it, and its covariance with gold into each term's covariance
  with gold; within each dataset, as the STS correlation compares pairs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .similarity import TERMS, PairDecomposition, chance_same_words, decompose

__all__ = ["excess_share", "common_direction", "along_common_direction", "without_common_direction",
           "term_variance"]


def excess_share(pairs: pd.DataFrame, by: str = "model") -> pd.DataFrame:
    """Per group of `by`: the same-word share, its permutation reference, their difference and the matching cells' fraction.

    Ratios of sums over the pairs, as the chapter's share: ``share = sum
    same_words / sum word_pairs``, ``chance = sum chance_same_words / sum
    word_pairs``, ``excess = share - chance`` and ``matched_fraction = sum
    matched_cells / sum cells``.
    """
    frame = pairs.assign(chance=chance_same_words(pairs))
    sums = frame.groupby(by, sort=False)[["same_words", "chance", "word_pairs", "matched_cells", "cells"]].sum()
    return pd.DataFrame({"share": sums["same_words"] / sums["word_pairs"],
                         "chance": sums["chance"] / sums["word_pairs"],
                         "excess": (sums["same_words"] - sums["chance"]) / sums["word_pairs"],
                         "matched_fraction": sums["matched_cells"] / sums["cells"]})


def _distinct_sentences(decompositions) -> list:
    """The :class:`cwi.similarity.SentenceVectors` of every distinct sentence of `decompositions`, each once."""
    seen = {}
    for d in decompositions:
        seen.setdefault(d.a.text, d.a)
        seen.setdefault(d.b.text, d.b)
    return list(seen.values())


def common_direction(decompositions) -> np.ndarray:
    """The unit vector of the mean embedding f(x) over the distinct sentences of `decompositions`."""
    mean = np.mean([s.embedding for s in _distinct_sentences(decompositions)], axis=0)
    norm = np.linalg.norm(mean)
    if norm == 0:
        raise ValueError("the mean embedding is the zero vector: there is no common direction to remove")
    return mean / norm


def along_common_direction(decompositions, direction: np.ndarray) -> float:
    """The share of the word vectors' squared length along `direction`: ``sum (c_w . u)^2 / sum ||c_w||^2``.

    Over the distinct sentences of `decompositions`; what removing the direction
    (:func:`without_common_direction`) takes from the word vectors.
    """
    vectors = np.concatenate([s.vectors for s in _distinct_sentences(decompositions)])
    return float(((vectors @ direction) ** 2).sum() / max((vectors**2).sum(), 1e-300))


def without_common_direction(decomposition: PairDecomposition, direction: np.ndarray) -> PairDecomposition:
    """:func:`cwi.similarity.decompose` of the pair with every vector projected off the unit vector `direction`.

    ``P = I - u u^T`` is linear, so the projected word vectors still sum to
    ``P (f(x) - f(x'))`` and the split stays exact for the cosine of ``P f(a)``
    and ``P f(b)``.
    """
    def project(vectors):
        return vectors - np.multiply.outer(vectors @ direction, direction)

    a, b = ((replace(s, vectors=project(s.vectors), embedding=project(s.embedding), baseline=project(s.baseline)))
            for s in (decomposition.a, decomposition.b))
    return decompose(a, b)


def term_variance(pairs: pd.DataFrame, within: str = "dataset", by: str = "model", against: str = "score"
                  ) -> pd.DataFrame:
    """Each term's part of the score's covariance with `against`, within each group of `within`, per `by`.

    ``cov(score, y) = sum_t cov(term_t, y) + cov(error, y)``: each term's part
    is its covariance with ``y`` over the score's, both pooled over the groups
    of `within` after removing each group's means (pairs are compared with the
    other pairs of their dataset).  With ``against="score"`` the parts split the
    score's variance: what spreads the scores; with ``against="gold"`` they split
    its covariance with the gold scores: what agrees with the annotators.  The
    parts sum to 1 less what the decomposition error carries.  A term can have a
    large mean and no part (a constant moves nothing), or a negative part (it
    works against the others).  Where the score's covariance with `against` is
    not positive, the parts are NaN.  Columns: `by`, each term of
    :data:`cwi.similarity.TERMS`, and ``pairs``.
    """
    terms = list(TERMS)
    columns = list(dict.fromkeys(["score", against, *terms]))
    centred = pairs[columns] - pairs.groupby([by, within], sort=False)[columns].transform("mean")
    rows = []
    for name, group in centred.groupby(pairs[by], sort=False):
        total = float((group["score"] * group[against]).sum())
        # Parts of a covariance that is not positive say nothing of what agrees: NaN.
        rows.append({by: name, **{t: float((group[t] * group[against]).sum()) / total if total > 0 else np.nan
                                  for t in terms}, "pairs": len(group)})
    return pd.DataFrame(rows)
