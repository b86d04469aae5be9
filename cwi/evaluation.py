"""STS evaluation: Spearman x100 between the cosine similarity of sentence pairs and gold scores.

SentEval's "all" setting, as SimCSE reports STS12-16: the rows of one file are
pooled, whatever their subset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as scistats

from . import data
from .encoders import Encoder

__all__ = ["paired_cosine", "sts_spearman", "sts_pairs", "encoder_spearman", "evaluate_sts"]


def paired_cosine(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `first` with the same row of `second` (0 for a zero vector)."""
    first = first / np.linalg.norm(first, axis=1, keepdims=True).clip(min=1e-12)
    second = second / np.linalg.norm(second, axis=1, keepdims=True).clip(min=1e-12)
    return (first * second).sum(axis=1)


def sts_spearman(first: np.ndarray, second: np.ndarray, gold) -> float:
    """Spearman x100 between the cosine similarity of paired rows and the gold scores."""
    return 100 * scistats.spearmanr(paired_cosine(first, second), np.asarray(gold)).statistic


def sts_pairs(name: str, split: str = "test", max_pairs: int | None = None) -> pd.DataFrame:
    """The `split` rows of STS dataset `name`: ``sentence1``, ``sentence2``, ``score`` and the rest.

    For the SICK-R copy fetched from the Hub, whose one split is named "all",
    every row.  `max_pairs` keeps the first pairs only (quick checks; not a
    comparable score).
    """
    rows = data.sts_split(name, split)
    return (rows if max_pairs is None else rows.iloc[:max_pairs]).reset_index(drop=True)


def encoder_spearman(encoder: Encoder, rows: pd.DataFrame, batch_size: int = 64) -> float:
    """Spearman x100 of `encoder` on sentence pairs `rows` (``sentence1``, ``sentence2``, ``score``)."""
    return sts_spearman(encoder.encode(rows["sentence1"], batch_size), encoder.encode(rows["sentence2"], batch_size),
                        rows["score"])


def evaluate_sts(encoder: Encoder, name: str, split: str = "test", batch_size: int = 64,
                 max_pairs: int | None = None) -> float:
    """Spearman x100 of `encoder` on the `split` rows of STS dataset `name` (:func:`sts_pairs`).

    All subsets pooled (SentEval's "all"), as SimCSE reports STS12-16.
    """
    return encoder_spearman(encoder, sts_pairs(name, split, max_pairs), batch_size)
