"""Static sentence encoders: weighted averages of word vectors, scored on STS.

A sentence is the weighted average of its words' vectors,
``e(s) = sum_w a_w x_w / sum_w a_w`` over the word tokens of ``s`` that have a
vector, optionally with the sentences' first principal components removed
(Arora, Liang and Ma 2017).  The weightings (:data:`WEIGHTINGS`) differ only in
``a_w``:

* ``uniform``: ``a_w = 1``, the plain mean;
* ``sif``: smooth inverse frequency ``a / (a + p(w))``;
* ``self_information``: ``-log p(w)``;
* ``information_gain`` and ``information_gain_corrected``: ``KL(p(.|w) || p(.))``
  as the Statistics chapter estimates it, raw and shuffle-corrected (negative
  corrected values are set to 0: a word no more informative than chance gets
  no weight);
* ``contrastive_norm``: ``||u_w||^2`` of an additive encoder trained with InfoNCE
  (the Theory chapter's), the weighting the theory says contrastive training
  learns.

A word with a vector but without a value of some weighting (absent from the
statistics, no context, outside the additive encoder's vocabulary) is left out
of *every* weighting's average by :func:`evaluate` (``shared=True``), so the
weightings are compared on the same words and none is handicapped by words it
does not know; :func:`average` alone gives such a word the median weight of the
words the weighting knows.  Both count what they leave out or fill in.
Sentences are tokenized once (:func:`bag_of_words`) for every weighting.

The average divides by ``sum_w a_w``; Arora et al. divide by the number of
words.  Cosine similarity does not see the difference, but the removed
principal component is computed from the sentence vectors, so with it removed
the two differ slightly.
Everything here takes plain inputs; :mod:`cwi.pipeline` and the Weighting
chapter supply the profile's statistics, vectors and STS pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats as scistats

from . import stats
from .evaluation import paired_cosine

__all__ = [
    "WEIGHTINGS", "WordVectors", "StaticEncoder", "BagOfWords", "sif_weights", "weight_table", "bag_of_words",
    "average", "embed", "pair_bag", "remove_common_components", "score_pairs", "shared_words", "evaluate",
    "sif_search",
    "paired_bootstrap",
]

WEIGHTINGS: dict[str, str] = {
    "uniform": "uniform",
    "sif": "SIF",
    "self_information": "self-information",
    "information_gain": "info gain (raw)",
    "information_gain_corrected": "info gain (corrected)",
    "contrastive_norm": "contrastive ‖u_w‖²",
}
INFORMATION_WEIGHTINGS = ("self_information", "information_gain", "information_gain_corrected", "contrastive_norm")


@dataclass(frozen=True)
class WordVectors:
    """Static word vectors: ``vectors[i]`` is the vector of ``words[i]``."""

    words: list[str]
    vectors: np.ndarray
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.vectors.ndim != 2 or len(self.words) != len(self.vectors):
            raise ValueError(f"{len(self.words)} words but vectors of shape {self.vectors.shape}: "
                             "pass one row of vectors per word")
        object.__setattr__(self, "index", {word: i for i, word in enumerate(self.words)})

    def rows(self, words: Sequence[str]) -> np.ndarray:
        """Row of each word in :attr:`vectors`, -1 for a word without a vector."""
        return np.array([self.index.get(word, -1) for word in words], dtype=np.int64)


@dataclass(frozen=True)
class StaticEncoder:
    """One weighting, with or without common-component removal.

    Attributes
    ----------
    weighting
        A key of :data:`WEIGHTINGS`: a column of :func:`weight_table`.
    remove_components
        Principal components of the evaluated sentences removed (SIF: 1).
    """

    weighting: str
    remove_components: int = 0

    def __post_init__(self):
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
        if self.remove_components < 0:
            raise ValueError(f"remove_components must be >= 0, got {self.remove_components}")

    @property
    def label(self) -> str:
        """``SIF`` is SIF weights with one component removed, as Arora et al. define it."""
        if self.weighting == "sif":
            return "SIF" if self.remove_components == 1 else f"SIF weights, {self.remove_components} PC removed"
        name = WEIGHTINGS[self.weighting]
        return name if self.remove_components == 0 else f"{name}, {self.remove_components} PC removed"


def sif_weights(p: pd.Series, a: float) -> pd.Series:
    """Smooth inverse frequency ``a / (a + p(w))`` of Arora, Liang and Ma (2017)."""
    if not a > 0:
        raise ValueError(f"SIF's a must be > 0, got {a}: Arora et al. use values near 1e-3")
    return (a / (a + p)).rename("sif")


def weight_table(statistics: pd.DataFrame, sif_a: float, contrastive_norms: pd.Series | None = None) -> pd.DataFrame:
    """Every weighting of :data:`WEIGHTINGS` per word: NaN where a weighting has no value for the word.

    Parameters
    ----------
    statistics
        A :func:`cwi.stats.word_statistics` table (``p``, ``self_information``,
        ``information_gain`` and, for the corrected weighting, ``information_gain_corrected``).
    sif_a
        SIF's ``a``.
    contrastive_norms
        ``||u_w||^2`` by word; without it the ``contrastive_norm`` column is all NaN.

    Returns
    -------
    pandas.DataFrame
        Indexed by word (the statistics' words, then the norms' other words);
        ``attrs["clipped"]`` counts the negative corrected information gains set to 0.
    """
    norms = contrastive_norms if contrastive_norms is not None else pd.Series(dtype=float)
    index = statistics.index.append(norms.index.difference(statistics.index))
    table = pd.DataFrame(index=index)
    table.index.name = "word"
    table["uniform"] = 1.0
    table["sif"] = sif_weights(statistics["p"], sif_a)
    for column in ("self_information", "information_gain", "information_gain_corrected"):
        table[column] = statistics[column] if column in statistics else np.nan
    table["contrastive_norm"] = norms
    negative = table["information_gain_corrected"] < 0
    table.loc[negative, "information_gain_corrected"] = 0.0
    table.attrs["clipped"] = int(negative.sum())
    return table[list(WEIGHTINGS)]


def remove_common_components(embeddings: np.ndarray, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Remove the projection on the first `n` principal components; return the result and the components.

    As in Arora et al.'s code, the components are the top right singular vectors
    of the *uncentred* embedding matrix.
    """
    if n == 0:
        return embeddings, np.zeros((0, embeddings.shape[1]))
    _, _, vt = np.linalg.svd(embeddings, full_matrices=False)
    components = vt[:n]
    return embeddings - embeddings @ components.T @ components, components


@dataclass(frozen=True)
class BagOfWords:
    """Sentences as word counts, with the vector of each word: what every weighting averages.

    Attributes
    ----------
    words
        The sentences' distinct words.
    counts
        (sentences, words) token counts.
    table
        (words, d) vector of each word; zero rows for words without one.
    has_vector
        Whether each word has a vector.
    """

    words: list[str]
    counts: sp.csr_matrix
    table: np.ndarray
    has_vector: np.ndarray


def bag_of_words(sentences: Sequence[str], vectors: WordVectors) -> BagOfWords:
    """Tokenize `sentences` (:func:`cwi.stats.tokenize`) once, for any number of weightings."""
    corpus = stats.encode_corpus(sentences)
    rows = vectors.rows(corpus.vocab)
    has_vector = rows >= 0
    table = np.zeros((len(corpus.vocab), vectors.vectors.shape[1]))
    table[has_vector] = vectors.vectors[rows[has_vector]]
    return BagOfWords(corpus.vocab, corpus.count_matrix(), table, has_vector)


def average(bag: BagOfWords, weights: pd.Series | None = None, remove_components: int = 0) -> tuple[np.ndarray, dict]:
    """Weighted-average sentence vectors of the sentences of `bag`, (n, d).

    Parameters
    ----------
    weights
        Weight of each word (NaN or absent: the median of the known weights);
        ``None`` is the plain mean.
    remove_components
        Principal components of these sentences' vectors removed afterwards.

    Returns
    -------
    (embeddings, coverage)
        ``coverage`` counts ``sentences``, ``tokens``, ``tokens_without_vector``
        (left out: no vector), ``tokens_with_median_weight`` (a vector, but no
        value of the weighting), ``sentences_without_vector`` (zero vector) and
        ``sentences_with_zero_weight`` (every weight 0: the plain mean is used).
    """
    counts, table, has_vector = bag.counts, bag.table, bag.has_vector
    if weights is None:
        known = np.ones(len(bag.words), dtype=bool)
        values = np.ones(len(bag.words))
    else:
        given = weights.to_numpy(dtype=float)
        if not np.isfinite(given).any():
            raise ValueError(f"the weighting {weights.name!r} has no value for any word: "
                             "pass the statistics (or norms) it is computed from")
        aligned = weights.reindex(bag.words).to_numpy(dtype=float)
        known = np.isfinite(aligned)
        values = np.where(known, aligned, np.median(given[np.isfinite(given)]))
    if (values < 0).any():
        raise ValueError("weights must be >= 0: a negative weight flips a word's vector")
    weighted = counts @ sp.diags(np.where(has_vector, values, 0.0))
    totals = np.asarray(weighted.sum(axis=1)).ravel()
    plain = counts @ sp.diags(has_vector.astype(float))
    plain_totals = np.asarray(plain.sum(axis=1)).ravel()
    zero_weight = (totals <= 0) & (plain_totals > 0)
    # A sentence whose words all weigh 0 falls back to its plain mean; one without vectors stays 0.
    numerator = np.where(zero_weight[:, None], plain @ table, weighted @ table)
    denominator = np.where(zero_weight, plain_totals, totals)
    embeddings = numerator / np.where(denominator > 0, denominator, 1.0)[:, None]
    embeddings, _ = remove_common_components(embeddings, remove_components)
    token_counts = np.asarray(counts.sum(axis=0)).ravel()
    coverage = {
        "sentences": counts.shape[0],
        "tokens": int(token_counts.sum()),
        "tokens_without_vector": int(token_counts[~has_vector].sum()),
        "tokens_with_median_weight": int(token_counts[has_vector & ~known].sum()),
        "sentences_without_vector": int((plain_totals == 0).sum()),
        "sentences_with_zero_weight": int(zero_weight.sum()),
    }
    return embeddings, coverage


def embed(sentences: Sequence[str], vectors: WordVectors, weights: pd.Series | None = None,
          remove_components: int = 0) -> tuple[np.ndarray, dict]:
    """Weighted-average sentence vectors of `sentences`: :func:`average` of their :func:`bag_of_words`."""
    return average(bag_of_words(sentences, vectors), weights, remove_components)


def pair_bag(pairs: pd.DataFrame, vectors: WordVectors) -> BagOfWords:
    """The bag of both sides of sentence pairs (``sentence1`` rows, then ``sentence2`` rows).

    Both sides are embedded together, so removed components are those of all the
    evaluated sentences, as SIF's code computes them on the sentences it scores.
    """
    return bag_of_words(list(pairs["sentence1"]) + list(pairs["sentence2"]), vectors)


def score_pairs(bag: BagOfWords, weights: pd.Series | None = None,
                remove_components: int = 0) -> tuple[np.ndarray, dict]:
    """Cosine similarity of each sentence pair of a :func:`pair_bag`, and the coverage of :func:`average`."""
    embeddings, coverage = average(bag, weights, remove_components)
    n = embeddings.shape[0] // 2
    return paired_cosine(embeddings[:n], embeddings[n:]), coverage


def _spearman100(similarity: np.ndarray, gold) -> float:
    return 100 * scistats.spearmanr(similarity, np.asarray(gold, dtype=float)).statistic


def shared_words(weights: pd.DataFrame, weightings=tuple(WEIGHTINGS)) -> pd.Index:
    """The words every weighting of `weightings` has a value for (the plain mean has one for every word)."""
    columns = [w for w in weightings if w != "uniform"]
    return weights.index[weights[columns].notna().all(axis=1)] if columns else weights.index


def _restricted(bag: BagOfWords, words: pd.Index | None) -> tuple[BagOfWords, int]:
    """`bag` keeping only `words` (``None``: all), and the tokens with a vector it leaves out."""
    if words is None:
        return bag, 0
    known = pd.Index(bag.words).isin(words)
    dropped = bag.has_vector & ~known
    tokens = int(np.asarray(bag.counts.sum(axis=0)).ravel()[dropped].sum())
    return BagOfWords(bag.words, bag.counts, bag.table, bag.has_vector & known), tokens


def evaluate(pairs: Mapping[str, pd.DataFrame], vectors: WordVectors, weights: pd.DataFrame,
             encoders: Sequence[StaticEncoder], shared: bool = True) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Spearman x100 of every static encoder on every dataset of `pairs`.

    With `shared`, a word with a vector but without a value of some weighting of
    `encoders` is left out of every encoder's average (counted in the coverage's
    ``tokens_without_shared_value``), so all encoders average the same words.

    Returns
    -------
    (scores, similarities, coverage)
        ``scores``: ``encoder`` (its label), ``weighting``, ``remove_components``,
        ``dataset``, ``spearman``; ``similarities[label][dataset]``: the cosines,
        for paired comparisons; ``coverage``: one row per weighting and dataset
        with the counts of :func:`average` (and ``tokens_without_shared_value``).
    """
    rows, coverage_rows, similarities = [], {}, {}
    bags = {dataset: pair_bag(frame, vectors) for dataset, frame in pairs.items()}  # tokenized once
    words = shared_words(weights, {e.weighting for e in encoders}) if shared else None
    left_out = {}
    for dataset in bags:
        bags[dataset], left_out[dataset] = _restricted(bags[dataset], words)
    for encoder in encoders:
        similarities[encoder.label] = {}
        column = None if encoder.weighting == "uniform" else weights[encoder.weighting]
        for dataset, frame in pairs.items():
            cosine, coverage = score_pairs(bags[dataset], column, encoder.remove_components)
            similarities[encoder.label][dataset] = cosine
            rows.append({"encoder": encoder.label, "weighting": encoder.weighting,
                         "remove_components": encoder.remove_components, "dataset": dataset,
                         "spearman": _spearman100(cosine, frame["score"])})
            coverage_rows[(encoder.weighting, dataset)] = coverage | {"tokens_without_shared_value": left_out[dataset]}
    coverage = pd.DataFrame.from_dict(coverage_rows, orient="index")
    coverage.index.names = ["weighting", "dataset"]
    return pd.DataFrame(rows), similarities, coverage


def sif_search(pairs: pd.DataFrame, vectors: WordVectors, p: pd.Series, grid: Sequence[float],
               remove_components: int = 1, words: pd.Index | None = None) -> pd.DataFrame:
    """Spearman x100 of SIF on `pairs` (a development set) for each ``a`` of `grid`.

    `words` restricts the averages to those words (:func:`shared_words`, as
    :func:`evaluate` does with ``shared=True``).  Returns ``a`` and
    ``spearman``, one row per value; the caller takes the argmax (on development
    data, never on test).
    """
    bag, _ = _restricted(pair_bag(pairs, vectors), words)
    return pd.DataFrame([
        {"a": a, "spearman": _spearman100(score_pairs(bag, sif_weights(p, a), remove_components)[0], pairs["score"])}
        for a in grid
    ])


def _row_spearman(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of `first` with the same row of `second`."""
    a = scistats.rankdata(first, axis=1)
    b = scistats.rankdata(second, axis=1)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def paired_bootstrap(first: Mapping[str, np.ndarray], second: Mapping[str, np.ndarray],
                     gold: Mapping[str, np.ndarray], n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Difference of the dataset-averaged Spearman x100, ``first - second``, with a paired bootstrap interval.

    Each replicate resamples the sentence pairs of every dataset (with
    replacement, within the dataset) and scores both encoders on the same
    resampled pairs, so the interval reflects the pairs' sampling alone.

    Returns
    -------
    dict
        ``delta`` (the difference on the data), ``low`` and ``high`` (percentile
        interval at `level`), ``boot`` (n_boot differences) and ``per_dataset``
        (each dataset's difference).
    """
    if set(first) != set(gold) or set(second) != set(gold):
        raise ValueError(f"first, second and gold must name the same datasets; got {sorted(first)}, "
                         f"{sorted(second)} and {sorted(gold)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    per_dataset = {}
    for dataset in gold:
        truth = np.asarray(gold[dataset], dtype=float)
        a, b = np.asarray(first[dataset]), np.asarray(second[dataset])
        per_dataset[dataset] = _spearman100(a, truth) - _spearman100(b, truth)
        for chunk in np.array_split(np.arange(n_boot), max(1, n_boot * len(truth) // 2_000_000)):
            index = rng.integers(len(truth), size=(len(chunk), len(truth)))
            boot[chunk] += 100 * (_row_spearman(a[index], truth[index]) - _row_spearman(b[index], truth[index]))
    boot /= len(gold)
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return {"delta": float(np.mean(list(per_dataset.values()))), "low": float(low), "high": float(high),
            "boot": boot, "per_dataset": per_dataset}
