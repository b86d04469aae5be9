"""Information-theoretic word statistics of a corpus.

Definitions (CONTRIBUTING.md; natural logarithms throughout):

* word: lower-cased token of BERT's basic tokenizer (:func:`tokenize`);
* ``p(w) = n_w / N`` and self-information ``SI(w) = -log p(w)``;
* information gain ``IG(w) = KL(p(.|w) || p(.))``, where ``p(w'|w)`` is the share
  of ``w'`` among the *other* tokens of the sentences that contain ``w``, counted
  once per occurrence of ``w`` (the positive partner of unsupervised SimCSE is the
  sentence itself);
* ``IG_corrected(w) = IG(w) - IG_shuffled(w)``: the KL estimate is biased upward
  for rare words (few context tokens), and a corpus whose tokens are shuffled
  across sentences has the same counts but no association, so its KL is that
  bias alone;
* ``IG_binned(w) = IG(w) - P_q{IG(v) : v in bin(w)}``: the second correction,
  after Oyama, Yokoi and Shimodaira (2023): words are grouped into bins of
  similar frequency and a low percentile of their information gain, what the
  least informative words of that frequency reach, is subtracted
  (:func:`frequency_bin_correction`).

Everything is computed on a sparse sentence-by-word count matrix ``X``: the
co-occurrence counts are ``C = X^T X - diag(n)``, built block by block so that
memory stays bounded, and the cross-entropy part of the KL is a matrix-vector
product.  See ``benchmarks/stats.py`` for speed and memory.
"""

from __future__ import annotations

import gzip
import importlib.resources
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tokenizers import normalizers, pre_tokenizers

from .progress import Progress


__all__ = [
    "tokenize",
    "word_spans",
    "EncodedCorpus",
    "encode_corpus",
    "word_statistics",
    "frequency_bins",
    "frequency_bin_correction",
    "bin_summary",
    "lookup",
    "wikipedia_self_information",
    "information_gain_reference",
]

# Bump when the numbers word_statistics returns change: it is part of the cache key.
STATS_VERSION = 1

# BERT's punctuation in ASCII: every printable non-alphanumeric character.
_ASCII_PUNCT = r"!-/:-@\[-`{-~"
_ASCII_WORD = re.compile(rf"[{_ASCII_PUNCT}]|[^\s{_ASCII_PUNCT}]+")
BERT_NORMALIZER = normalizers.BertNormalizer(
    clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
)
BERT_PRE_TOKENIZER = pre_tokenizers.BertPreTokenizer()


def tokenize(text: str) -> list[str]:
    """Split `text` into lower-cased words as BERT's uncased basic tokenizer does.

    Words are separated at whitespace and every punctuation character is a word
    of its own; accents are stripped, control characters dropped and CJK
    characters split.  These are the words a fast BERT tokenizer's ``word_ids()``
    groups subword tokens into, so statistics and attributions share one notion
    of word.  Printable ASCII (most text) takes a regular-expression path three
    times faster than, and identical to, the ``tokenizers`` pipeline used for
    everything else.
    """
    if text.isascii() and text.isprintable():
        return _ASCII_WORD.findall(text.lower())
    normalized = BERT_NORMALIZER.normalize_str(text)
    return [word for word, _ in BERT_PRE_TOKENIZER.pre_tokenize_str(normalized)]


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The words of :func:`tokenize` with their character spans in `text` (not in its normalised form).

    Returns
    -------
    list of (word, start, end)
        ``word`` as :func:`tokenize` gives it (lower-cased, accents stripped) and
        ``text[start:end]`` the characters it came from; the words are those of
        ``tokenize(text)``, in order.  Attributions join the statistics through
        these spans (:func:`cwi.inputs.align_words`).
    """
    if text.isascii() and text.isprintable():
        return [(match.group().lower(), match.start(), match.end()) for match in _ASCII_WORD.finditer(text)]
    from tokenizers import PreTokenizedString

    # The normaliser removes and rewrites characters; a PreTokenizedString keeps
    # each split's offsets in the original text through it.
    pieces = PreTokenizedString(text)
    pieces.normalize(BERT_NORMALIZER.normalize)
    BERT_PRE_TOKENIZER.pre_tokenize(pieces)
    return [(word, start, end)
            for word, (start, end), _ in pieces.get_splits(offset_referential="original", offset_type="char")]


@dataclass(frozen=True)
class EncodedCorpus:
    """A tokenized corpus as integer word ids.

    Attributes
    ----------
    vocab
        Word of each id, in order of first appearance.
    ids
        Word id of every token, sentences concatenated (int32).
    lengths
        Number of tokens of each sentence (sentences with no word have 0).
    """

    vocab: list[str]
    ids: np.ndarray
    lengths: np.ndarray

    def count_matrix(self, ids: np.ndarray | None = None) -> sp.csr_matrix:
        """Sentence-by-word counts ``X[s, w]`` (float64, CSR), from `ids` if given."""
        ids = self.ids if ids is None else ids
        indptr = np.concatenate([[0], np.cumsum(self.lengths)])
        # float32 ones halve the transient memory; sums of small counts are exact.
        matrix = sp.csr_matrix(
            (np.ones(len(ids), dtype=np.float32), ids, indptr),
            shape=(len(self.lengths), len(self.vocab)),
        )
        matrix.sum_duplicates()
        return matrix.astype(np.float64)


def encode_corpus(
    sentences: Iterable[str],
    tokenizer: Callable[[str], list[str]] = tokenize,
    chunk_tokens: int = 1_000_000,
) -> EncodedCorpus:
    """Tokenize `sentences` and map words to integer ids, streaming in chunks.

    Ids are collected per chunk into int32 arrays, so a 1M-sentence corpus never
    holds its ~20M tokens as Python objects at once.
    """
    index: dict[str, int] = {}
    id_chunks: list[np.ndarray] = []
    lengths: list[int] = []
    chunk: list[int] = []
    for sentence in sentences:
        if not isinstance(sentence, str):
            raise TypeError(
                f"sentence {len(lengths)} is a {type(sentence).__name__}, not a str: "
                "pass an iterable of sentence strings"
            )
        words = tokenizer(sentence)
        lengths.append(len(words))
        chunk.extend([index.setdefault(word, len(index)) for word in words])
        if len(chunk) >= chunk_tokens:
            id_chunks.append(np.array(chunk, dtype=np.int32))
            chunk = []
    id_chunks.append(np.array(chunk, dtype=np.int32))
    return EncodedCorpus(
        vocab=list(index), ids=np.concatenate(id_chunks), lengths=np.array(lengths, dtype=np.int64)
    )


def _xlogx(values: np.ndarray) -> np.ndarray:
    """x log x with 0 log 0 = 0."""
    out = np.zeros_like(values, dtype=float)
    positive = values > 0
    out[positive] = values[positive] * np.log(values[positive])
    return out


def _information_gain(
    counts_matrix: sp.csr_matrix, log_p: np.ndarray, block_nnz: int
) -> tuple[np.ndarray, np.ndarray]:
    """KL(p(.|w) || p(.)) of every word, and its number of context tokens.

    With ``C = X^T X - diag(n)`` the co-occurrence counts and ``R = C 1`` their row
    sums, ``KL_w = (sum_w' C log C) / R_w - log R_w - (sum_w' C log p(w')) / R_w``.
    The last sum is ``(X^T X log p)_w - n_w log p_w`` (two sparse products); the
    first needs the entries of ``C``, computed for a block of words at a time with
    about `block_nnz` entries, reduced to one number per word and dropped.
    """
    X = counts_matrix
    n = np.asarray(X.sum(axis=0)).ravel()
    sentence_length = np.asarray(X.sum(axis=1)).ravel()
    context = X.T @ (sentence_length - 1.0)
    cross = X.T @ (X @ log_p) - n * log_p
    squares = np.asarray(X.multiply(X).sum(axis=0)).ravel()  # diagonal of X^T X

    by_word = X.T.tocsr()  # row w: the sentences containing w
    # Work of row w of X^T X: the distinct words of the sentences containing w.
    work = by_word @ np.diff(X.indptr).astype(float)
    entropy_sum = np.zeros(X.shape[1])
    start = 0
    for stop in _block_bounds(work, block_nnz):
        block = by_word[start:stop] @ X
        block.data *= np.log(block.data)
        entropy_sum[start:stop] = np.asarray(block.sum(axis=1)).ravel()
        start = stop
    # X^T X holds sum_s c_s(w)^2 on its diagonal; C holds sum_s c_s(w)(c_s(w) - 1).
    entropy_sum += _xlogx(squares - n) - _xlogx(squares)

    with np.errstate(divide="ignore", invalid="ignore"):
        kl = entropy_sum / context - np.log(context) - cross / context
    kl[context <= 0] = np.nan  # only in one-word sentences: no context, no KL
    return kl, context


def _block_bounds(work: np.ndarray, budget: float) -> list[int]:
    """End indices of consecutive blocks whose summed `work` stays near `budget`."""
    bounds, total = [], 0.0
    for index, cost in enumerate(work):
        if total and total + cost > budget:
            bounds.append(index)
            total = 0.0
        total += cost
    bounds.append(len(work))
    return bounds


def word_statistics(
    sentences: Iterable[str],
    *,
    correction: str | None = "shuffle",
    n_shuffles: int = 1,
    seed: int = 0,
    tokenizer: Callable[[str], list[str]] = tokenize,
    block_nnz: int = 10_000_000,
) -> pd.DataFrame:
    """Count, probability, self-information and information gain of every word.

    Parameters
    ----------
    sentences
        The corpus, one string per sentence.
    correction
        ``"shuffle"`` adds ``information_gain_shuffled`` (the mean KL of each word
        over `n_shuffles` corpora whose tokens are permuted across sentences,
        sentence lengths kept) and ``information_gain_corrected`` (raw minus
        shuffled); ``None`` skips both.
    n_shuffles
        Number of shuffled corpora averaged.
    seed
        Seed of the shuffles.
    tokenizer
        Word tokenizer; :func:`tokenize` by default.
    block_nnz
        Entries of the co-occurrence matrix held at once; bounds memory.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``word``, sorted by count (descending) then word, with columns
        ``count``, ``n_sentences`` (sentences containing the word), ``p``,
        ``self_information``, ``context_count`` (tokens in ``p(.|w)``),
        ``information_gain`` and, with a correction, ``information_gain_shuffled``
        and ``information_gain_corrected``.  A word seen only in one-word
        sentences has no context: its information gain is NaN, never dropped.
        ``frame.attrs`` records the corpus size and the settings.

    Raises
    ------
    ValueError
        If the corpus has no word, or a setting is invalid.
    """
    if correction not in (None, "shuffle"):
        raise ValueError(f"correction must be 'shuffle' or None, got {correction!r}")
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles must be >= 1, got {n_shuffles}")
    shuffles = n_shuffles if correction == "shuffle" else 0
    # Minutes on a large corpus: the runner's terminal hears of each pass (tokenizing, the corpus, each shuffle).
    progress = Progress(2 + shuffles, "word statistics", "passes", show_bar=False, announce_start=True)
    corpus = encode_corpus(sentences, tokenizer)
    progress.update()
    if len(corpus.ids) == 0:
        raise ValueError(
            f"the corpus has no words ({len(corpus.lengths)} sentences, all empty after "
            "tokenization): pass a non-empty list of sentence strings"
        )
    counts_matrix = corpus.count_matrix()
    n = np.asarray(counts_matrix.sum(axis=0)).ravel()
    p = n / n.sum()
    log_p = np.log(p)
    information_gain, context = _information_gain(counts_matrix, log_p, block_nnz)
    progress.update()
    columns = {
        "count": n.astype(np.int64),
        "n_sentences": np.bincount(counts_matrix.indices, minlength=len(n)).astype(np.int64),
        "p": p,
        "self_information": -log_p,
        "context_count": context.astype(np.int64),
        "information_gain": information_gain,
    }
    del counts_matrix
    if correction == "shuffle":
        # PAPER: the paper's bias correction could not be checked offline; the shuffled
        # baseline is defined per word and needs no frequency bins (Oyama et al. 2023's
        # per-bin percentile baseline is the second correction, frequency_bin_correction).
        rng = np.random.default_rng(seed)
        shuffled = np.zeros(len(n))
        for _ in range(n_shuffles):
            shuffled_matrix = corpus.count_matrix(rng.permutation(corpus.ids))
            shuffled += _information_gain(shuffled_matrix, log_p, block_nnz)[0]
            del shuffled_matrix
            progress.update()
        columns["information_gain_shuffled"] = shuffled / n_shuffles
        columns["information_gain_corrected"] = information_gain - columns["information_gain_shuffled"]

    progress.close()
    frame = pd.DataFrame(columns, index=pd.Index(corpus.vocab, name="word"))
    frame = frame.iloc[np.lexsort((frame.index.to_numpy(dtype=str), -frame["count"].to_numpy()))]
    frame.attrs.update(
        n_sentences=int(len(corpus.lengths)),
        n_empty_sentences=int((corpus.lengths == 0).sum()),
        n_tokens=int(n.sum()),
        correction=correction or "none",
        n_shuffles=n_shuffles if correction else 0,
        seed=seed,
    )
    return frame


def frequency_bins(counts: np.ndarray, n_bins: int, min_words: int = 1) -> np.ndarray:
    """Bin of each word: `n_bins` bins of equal width in log count, each widened to hold `min_words` words.

    Equal width in log count keeps the words of a bin of similar frequency all
    the way up: equal numbers of words per bin would put the ~1% most frequent
    words, which carry most running tokens and span three orders of magnitude
    of count, into one bin.  The top bins hold few words, and a percentile of
    few words is noise, so bins with fewer than `min_words` words are merged
    with the next (the last with the one before).  Bins are numbered from the
    rarest, 0, 1, ... without gaps.
    """
    counts = np.asarray(counts, dtype=float)
    if n_bins < 1 or min_words < 1:
        raise ValueError(f"n_bins and min_words must be >= 1, got {n_bins} and {min_words}")
    if (counts <= 0).any():
        raise ValueError("counts must be positive to be binned by log count")
    logs = np.log(counts)
    width = (logs.max() - logs.min()) / n_bins or 1.0
    raw = np.minimum(((logs - logs.min()) / width).astype(int), n_bins - 1)
    sizes = np.bincount(raw, minlength=n_bins)
    merged, group, filled = np.zeros(n_bins, dtype=int), 0, 0
    for b in range(n_bins):  # greedy from the rarest: close a group once it holds min_words words
        merged[b] = group
        filled += sizes[b]
        if filled >= min_words:
            group, filled = group + 1, 0
    if 0 < filled < min_words and group > 0:  # a short last group joins the one before
        merged[merged == group] = group - 1
    return np.unique(merged[raw], return_inverse=True)[1]


def frequency_bin_correction(table: pd.DataFrame, n_bins: int, percentile: float, min_words: int = 1) -> pd.DataFrame:
    """A per-frequency-bin correction of the information gain, after Oyama, Yokoi and Shimodaira (2023).

    As the book reads their correction of word-vector norms by frequency: the
    information gain a word of some frequency reaches by sampling alone is
    estimated by a low percentile of the information gain of the words of
    similar frequency, and subtracted.  The binning is ours
    (:func:`frequency_bins`: equal width in log count).

    Parameters
    ----------
    table
        A :func:`word_statistics` table (``count``, ``information_gain``).
    n_bins, min_words
        Bins of similar frequency (:func:`frequency_bins`).
    percentile
        Percentile (0-100, linear interpolation) of the information gain within a
        bin taken as its baseline: what a word of that frequency reaches by
        sampling alone.  Words without context (NaN) are left out of it.

    Returns
    -------
    pandas.DataFrame
        Same index as `table`: ``frequency_bin``, ``information_gain_bin_baseline``
        and ``information_gain_binned`` (raw minus the baseline of its bin).
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    bins = pd.Series(frequency_bins(table["count"].to_numpy(), n_bins, min_words), index=table.index)
    baseline = table["information_gain"].groupby(bins).quantile(percentile / 100)
    frame = pd.DataFrame({"frequency_bin": bins, "information_gain_bin_baseline": bins.map(baseline)})
    frame["information_gain_binned"] = table["information_gain"] - frame["information_gain_bin_baseline"]
    return frame


def bin_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per frequency bin of a corrected table: the count range, words, share of running tokens and baseline."""
    grouped = table.groupby("frequency_bin")
    summary = pd.DataFrame({"lowest count": grouped["count"].min(), "highest count": grouped["count"].max(),
                            "words": grouped.size(), "token share": grouped["count"].sum() / table["count"].sum(),
                            "baseline (nats)": grouped["information_gain_bin_baseline"].first()})
    return summary.rename_axis("bin")


def lookup(table: pd.DataFrame, words: Sequence[str], column: str = "information_gain") -> pd.Series:
    """Values of `column` for `words` from a :func:`word_statistics` table.

    Raises
    ------
    KeyError
        Naming the words absent from the table, which have no statistics.
    """
    if column not in table.columns:
        raise KeyError(f"no column {column!r} in the statistics table; it has {list(table.columns)}")
    missing = [word for word in words if word not in table.index]
    if missing:
        shown = ", ".join(repr(word) for word in missing[:10])
        raise KeyError(
            f"{len(missing)} word(s) not in the corpus statistics ({len(table)} words), e.g. {shown}: "
            "words are lower-cased BERT basic tokens (see cwi.stats.tokenize); words absent "
            "from the corpus have no statistics"
        )
    return table.loc[list(words), column]


@lru_cache(maxsize=1)
def wikipedia_self_information() -> pd.Series:
    """Self-information ``-log(n_w / N)`` from English Wikipedia counts (``pywordfreq``).

    An alternative source to the corpus's own counts: 829k lower-cased words
    counted over 2.46 B tokens.  N is the package's total count, including its
    entry for the empty word (tokens it did not keep as words).  Its tokens follow
    Penn-Treebank conventions (``'s``, ``n't``), so clitics do not match BERT's
    words; everything else does.

    Returns
    -------
    pandas.Series
        Self-information in nats, indexed by word.
    """
    resource = importlib.resources.files("pywordfreq").joinpath("word_frequencies.gz")
    with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        pairs = [line.rstrip("\n").rpartition(";") for line in lines]
    counts = pd.Series(
        np.array([count for _, _, count in pairs], dtype=np.float64),
        index=pd.Index([word for word, _, _ in pairs], name="word"),
    )
    total = counts.sum()
    counts = counts[counts.index != ""]
    counts = counts.groupby(level=0).sum()  # a few words appear twice
    return (np.log(total) - np.log(counts)).rename("self_information_wikipedia")


def information_gain_reference(sentences: Iterable[str], tokenizer=tokenize) -> dict[str, float]:
    """Information gain of every word, the straightforward way (dicts and Counters).

    A direct transcription of the definition, kept as the reference that tests
    check :func:`word_statistics` against and that ``benchmarks/stats.py`` times.
    Words without context get NaN.
    """
    from collections import Counter, defaultdict

    unigram: Counter = Counter()
    context: defaultdict[str, Counter] = defaultdict(Counter)
    for sentence in sentences:
        words = tokenizer(sentence)
        unigram.update(words)
        sentence_counts = Counter(words)
        for word, k in sentence_counts.items():
            # each of the k occurrences sees the other words of the sentence
            around = context[word]
            for other, m in sentence_counts.items():
                around[other] += k * (m - (other == word))
    total = sum(unigram.values())
    gains = {}
    for word in unigram:
        around = context[word]
        size = sum(around.values())
        if size == 0:
            gains[word] = float("nan")
            continue
        gains[word] = sum(
            (c / size) * np.log((c / size) / (unigram[other] / total)) for other, c in around.items() if c
        )
    return gains
