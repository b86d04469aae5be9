"""Regressions of word weights on word statistics, with sentence-bootstrap draws shared by every fit.

The Correlations chapter asks whether a contrastively fine-tuned encoder weights
informative words more than its pre-trained twin.  For one model and one word
quantity q (information gain, raw or corrected either way, or self-information) it fits

    normalised weight = a + beta * q / s_q [+ covariates] + noise,

with ``s_q`` the standard deviation of q over the profile's usable word
occurrences (:func:`quantity_scales`): one scale per quantity, the same in every
dataset, control and pair, so slopes are comparable across them.  Beside beta,
the Pearson correlation r of weight and quantity: beta changes when fine-tuning
only *spreads* the weights (w -> 1 + k (w - 1) multiplies beta by k), r only
when the weights *follow* the quantity more or less closely.

Words of one sentence share the sentence's normalisation and are not
independent, so intervals come from a bootstrap that resamples *sentences*,
within each dataset (the datasets are fixed strata of the design).  The
resampling counts are drawn once (:class:`SentenceBootstrap`) and every fit
reads the counts of its sentences, so all fits are paired: the two models of a
pair, every seed of a fine-tuned model, every method and quantity.  A
difference, or a mean over several fits, is then one more statistic of the
same draws, and :mod:`cwi.inference` can adjust a whole family of them at once.

Every fit works on per-sentence sufficient statistics (``X'X``, ``X'y``,
``y'y``), so a bootstrap replicate costs one weighted sum and one small solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as scistats

from .data import normalise_sentence

__all__ = [
    "ANALYSIS_VERSION", "QUANTITIES", "COVARIATES", "FREQUENCY_COVARIATES", "CONTROLS", "VERDICTS", "attach_statistics",
    "missing_statistics", "quantity_scales", "SentenceBootstrap", "Fit", "fit_models", "refit_many", "verdict",
    "present_pairs", "Comparison", "PairFits", "pair_table", "t_interval", "seed_table", "NO_BREAK", "interval_text",
    "headline", "within_sentence_spearman", "is_stopword", "content_weights",
]

# Bump when what the regressions compute changes (it is part of the results' cache key).
# 3: comparisons of seeds and matched controls; "content words" (renormalised) and "frequency" controls.
ANALYSIS_VERSION = 3

# Labels spell out "information gain": "IG" in this book is Integrated Gradients.
QUANTITIES = {
    "information_gain": "info gain (raw)",
    "information_gain_corrected": "info gain (shuffle-corrected)",
    # A bin's low percentile subtracted: a floor, not a frequency control (the "frequency" control is one).
    "information_gain_binned": "info gain (bin floor subtracted)",
    "self_information": "self-information",
}
COVARIATES = ("log_frequency", "characters", "n_tokens", "position")
# What the "frequency" control partials out: the corpus frequency and the subword count (rare words are split).
FREQUENCY_COVARIATES = ("log_frequency", "n_tokens")
# "content words": stopwords and punctuation left out and each weight renormalised over its sentence's
# content words (so that lowering the stopwords' weights does not rescale the others); "frequency":
# log frequency and subword count partialled out; "sentence effects": weight and quantity demeaned within
# each sentence, so beta is the within-sentence association only (a sentence fixed effect).
CONTROLS = ("none", "covariates", "content words", "frequency", "sentence effects")
# What an interval of a difference says (the codes of the results tables' ``verdict`` columns).
VERDICTS = {
    "more": "fine-tuned weights it more",
    "less": "fine-tuned weights it less",
    "unclear": "no clear difference",
    "no twin": "no pre-trained twin",
    "not fitted": "too few words to fit",
}


def is_stopword(words: pd.Series) -> pd.Series:
    """Whether each word is a stopword (scikit-learn's English list) or punctuation (no letter or digit)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    punctuation = ~words.str.contains(r"\w", regex=True)
    return words.isin(ENGLISH_STOP_WORDS) | punctuation


def attach_statistics(weights: pd.DataFrame, table: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Join each word weight with its word's statistics and the covariates.

    Adds the :data:`QUANTITIES`, ``count``, ``log_frequency`` (log of the corpus
    count), ``characters``, ``position`` (word index / (words in the sentence - 1),
    0 for one-word sentences), ``stopword`` (scikit-learn's English list or no
    letter or digit), ``content_weight`` (a content word's weight over the mean
    weight of its sentence's content words, with or without statistics; NaN for
    stopwords) and ``status``: ``"ok"``, ``"absent"`` (not in the corpus),
    ``"rare"`` (fewer than `min_count` occurrences) or ``"no context"`` (NaN
    information gain).  Rows without statistics are kept, flagged by ``status``.
    """
    frame = weights.join(table[["count", *QUANTITIES]], on="word")
    frame["log_frequency"] = np.log(frame["count"])
    frame["characters"] = frame["word"].str.len()
    sentence = ["model", "dataset", "method", "sentence_id"]
    words_in_sentence = frame.groupby(sentence)["word_index"].transform("max")
    frame["position"] = (frame["word_index"] / words_in_sentence.where(words_in_sentence > 0)).fillna(0.0)
    frame["stopword"] = is_stopword(frame["word"])
    frame["content_weight"] = content_weights(frame)
    status = np.select(
        [frame["count"].isna(), frame["count"] < min_count, frame[list(QUANTITIES)].isna().any(axis=1)],
        ["absent", "rare", "no context"], default="ok",
    )
    frame["status"] = pd.Categorical(status, categories=["ok", "absent", "rare", "no context"])
    return frame


def content_weights(frame: pd.DataFrame) -> pd.Series:
    """Each content word's weight over the mean weight of its sentence's content words (NaN for stopwords).

    Renormalised over the content words of each (model, method, dataset,
    sentence), with or without statistics, so that weights moved onto or off
    the stopwords do not rescale the content words.  Computed from
    ``normalised_weight`` (the sentence's own normalisation cancels).
    """
    content = frame["normalised_weight"].where(~frame["stopword"])
    groups = [frame[c] for c in ("model", "method", "dataset", _sentence_column(frame))]
    return content / content.groupby(groups).transform("mean")


def missing_statistics(frame: pd.DataFrame) -> pd.DataFrame:
    """Words per model, method and status (from :func:`attach_statistics`): what the fits leave out."""
    counts = frame.groupby(["model", "method", "status"], observed=False).size().unstack("status", fill_value=0)
    counts["share without statistics"] = 1 - counts["ok"] / counts.sum(axis=1)
    return counts


def _sentence_column(frame: pd.DataFrame) -> str:
    """Sentences are matched by their text where tables carry it (samples of different sizes number them apart)."""
    return "sentence" if "sentence" in frame else "sentence_id"


def _word_keys(frame: pd.DataFrame) -> list[str]:
    return ["dataset", _sentence_column(frame), "word_index"]


def quantity_scales(frame: pd.DataFrame) -> dict[str, float]:
    """Standard deviation of each quantity over the distinct usable word occurrences of `frame`.

    Each word occurrence counts once, however many models and methods
    attributed it, so the scale is a property of the profile's sentences, not of
    a fit: a slope per this SD means the same in every dataset, control and pair.
    """
    usable = frame[frame["status"] == "ok"].drop_duplicates(_word_keys(frame))
    if len(usable) < 2:
        raise ValueError("need at least two word occurrences with usable statistics to scale the quantities")
    return {quantity: float(usable[quantity].std(ddof=0)) or 1.0 for quantity in QUANTITIES}


class SentenceBootstrap:
    """Sentence-resampling counts drawn once, within each dataset, and shared by every fit.

    Parameters
    ----------
    frame
        Word rows (columns ``dataset`` and ``sentence`` or ``sentence_id``):
        every sentence that any fit will use.
    n_boot
        Replicates.
    seed
        Seed of the draws.

    Notes
    -----
    Replicate b resamples sentences with replacement within each dataset, as
    many as it has (a stratified bootstrap: every dataset keeps its share, as in
    the design).  A sentence is resampled as one unit wherever it occurs: STS-B
    re-uses sentences of STS12-16, and SICK-R and STS12 share some, so the same
    text (:func:`cwi.data.normalise_sentence`) in two datasets is one cluster,
    drawn in the first of its datasets (in sorted order) and given the same count
    in each.  A fit on a subset of the sentences (one dataset, or a model
    attributed on a smaller nested sample) reads the counts of its own
    sentences, so all fits of one :class:`SentenceBootstrap` are paired.
    """

    def __init__(self, frame: pd.DataFrame, n_boot: int, seed: int):
        column = _sentence_column(frame)
        sentences = frame[["dataset", column]].drop_duplicates().sort_values(["dataset", column])
        self.column = column
        self.n_boot = n_boot
        self.index = pd.MultiIndex.from_frame(sentences)
        # Sentence numbers are per dataset; only texts can be shared between datasets.
        texts = (sentences[column].map(normalise_sentence) if column == "sentence"
                 else sentences["dataset"] + "/" + sentences[column].astype(str))
        clusters = pd.DataFrame({"dataset": sentences["dataset"].to_numpy(), "text": texts.to_numpy()})
        homes = clusters.drop_duplicates("text").sort_values(["dataset", "text"])  # first dataset: sorted already
        rng = np.random.default_rng(seed)
        drawn = [rng.multinomial(len(group), np.full(len(group), 1 / len(group)), size=n_boot)
                 for _, group in homes.groupby("dataset", sort=True)]
        text_counts = np.concatenate(drawn, axis=1) if drawn else np.zeros((n_boot, 0))
        where = pd.Index(homes["text"]).get_indexer(clusters["text"])
        self.clusters = len(homes)
        # The cluster of each column (a text in two datasets: one cluster, two columns).
        self.cluster = where
        # Column-major: a fit gathers the columns of its sentences.
        self.counts = np.asfortranarray(text_counts[:, where], float)

    def columns(self, sentences: np.ndarray) -> np.ndarray:
        """The (B, g) counts of the bootstrap's sentences `sentences` (column numbers)."""
        if len(sentences) == self.counts.shape[1]:  # every sentence, in order (np.unique sorts)
            return self.counts
        return self.counts[:, sentences]

    def locate(self, frame: pd.DataFrame) -> np.ndarray:
        """The column of :attr:`counts` of each row's sentence."""
        where = self.index.get_indexer(pd.MultiIndex.from_frame(frame[["dataset", self.column]]))
        if (where < 0).any():
            raise ValueError("a sentence outside the bootstrap's sentences: build SentenceBootstrap on every "
                             "sentence the fits use")
        return where


@dataclass
class Fit:
    """Least-squares slopes of several models' weights on one quantity, on the same words, with bootstrap draws.

    Attributes
    ----------
    beta, r
        (k,) slope per SD of the quantity and Pearson correlation of each model (r is NaN with covariates).
    beta_draws, r_draws
        (B, k) the same on every bootstrap replicate.
    n_words, n_sentences
        What the fit used.
    sentences
        (g,) the bootstrap's columns of the fit's sentences.
    xtx, xty, yy, inverse, counts, draws_xtx
        Per-sentence sufficient statistics (g, p, p), (g, p, k) and (g, k), the
        replicates' counts of these sentences (B, g), and every replicate's ``X'X``
        (B, p, p) and its inverse: what :mod:`cwi.inference` needs to refit with the
        models' roles exchanged.
    """

    beta: np.ndarray
    r: np.ndarray
    beta_draws: np.ndarray
    r_draws: np.ndarray
    n_words: int
    n_sentences: int
    sentences: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    yy: np.ndarray
    inverse: np.ndarray
    counts: np.ndarray
    draws_xtx: np.ndarray

    def refit(self, xty: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``beta, r, beta_draws, r_draws`` for other responses on the same words and draws."""
        return _estimates(self.xtx, xty, yy, self.counts, self.inverse, self.draws_xtx)


def _per_sentence(rows: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sums of `values` (n, m) over the rows of each group (`rows`: 0..n_groups-1)."""
    indicator = sparse.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(n_groups, len(rows)))
    return np.asarray(indicator @ values)


def _correlation(xtx: np.ndarray, xty: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Pearson r of the quantity (column 1 of a 2-column design) with each response, from weighted sums."""
    n, sz, szz = xtx[..., 0, 0, None], xtx[..., 0, 1, None], xtx[..., 1, 1, None]
    sy, szy = xty[..., 0, :], xty[..., 1, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n * szy - sz * sy) / np.sqrt((n * szz - sz**2) * (n * yy - sy**2))


def _estimates(xtx, xty, yy, counts, inverse, draws_xtx, draws=None):
    """Point slopes and correlations (every sentence once) and their bootstrap draws.

    `draws`, the replicates' sums of ``[X'y | y'y]`` (B, p k + k), when the caller computed them already.
    """
    g, p, k = xty.shape
    total_xtx, total_xty, total_yy = xtx.sum(0), xty.sum(0), yy.sum(0)
    beta = (np.linalg.pinv(total_xtx) @ total_xty)[1]
    if draws is None:
        draws = counts @ _responses(xty, yy)  # one product for both
    draws_xty, draws_yy = draws[:, :p * k].reshape(-1, p, k), draws[:, p * k:]
    beta_draws = (inverse[:, 1, :, None] * draws_xty).sum(1)  # the quantity's row only
    if p == 2:
        r = _correlation(total_xtx, total_xty, total_yy)
        r_draws = _correlation(draws_xtx, draws_xty, draws_yy)
    else:  # a partial correlation is not what "follows more closely" means here: left out
        r, r_draws = np.full(k, np.nan), np.full((len(counts), k), np.nan)
    return beta, r, beta_draws, r_draws


def _responses(xty: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Per-sentence ``[X'y | y'y]`` as one (g, p k + k) matrix."""
    return np.concatenate([xty.reshape(len(xty), -1), yy], axis=1)


def refit_many(fits: list[Fit], responses: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple]:
    """:meth:`Fit.refit` of many fits at once: fits on the same sentences are computed as one stack.

    `responses` holds each fit's new ``(xty, yy)``.  Equal to refitting one by
    one (tested), and several times faster for the calibration's hundreds of refits.
    """
    groups: dict[tuple, list[int]] = {}
    for i, fit in enumerate(fits):
        groups.setdefault((fit.sentences.tobytes(), fit.xty.shape), []).append(i)
    results: list = [None] * len(fits)
    for members in groups.values():
        g, p, k = fits[members[0]].xty.shape
        xty = np.stack([responses[i][0] for i in members])  # (F, g, p, k)
        yy = np.stack([responses[i][1] for i in members])  # (F, g, k)
        xtx = np.stack([fits[i].xtx for i in members])
        stacked = np.concatenate([xty.reshape(len(members), g, -1), yy], axis=2)  # (F, g, p k + k)
        columns = stacked.shape[2]  # one product with the counts for the whole stack
        draws = (fits[members[0]].counts @ stacked.transpose(1, 0, 2).reshape(g, -1))
        draws = draws.reshape(-1, len(members), columns).transpose(1, 0, 2)
        draws_xty, draws_yy = draws[:, :, :p * k].reshape(len(members), -1, p, k), draws[:, :, p * k:]
        inverse = np.stack([fits[i].inverse for i in members])  # (F, B, p, p)
        beta_draws = (inverse[:, :, 1, :, None] * draws_xty).sum(2)
        total_xtx, total_xty = xtx.sum(1), xty.sum(1)
        beta = (np.linalg.pinv(total_xtx) @ total_xty)[:, 1]
        if p == 2:
            r = _correlation(total_xtx, total_xty, yy.sum(1))
            r_draws = _correlation(np.stack([fits[i].draws_xtx for i in members]), draws_xty, draws_yy)
        else:
            r, r_draws = np.full((len(members), k), np.nan), np.full(beta_draws.shape, np.nan)
        for j, i in enumerate(members):
            results[i] = (beta[j], r[j], beta_draws[j], r_draws[j])
    return results


def _wide(frame: pd.DataFrame, models: list[str], columns, target: str = "normalised_weight") -> pd.DataFrame:
    """One row per word all `models` share: the first model's `columns` and each model's `target` (named by model)."""
    keys = _word_keys(frame)
    first = frame[frame["model"] == models[0]]
    joined = first[list(dict.fromkeys(keys + list(columns)))].assign(**{models[0]: first[target]})
    for model in models[1:]:
        other = frame[frame["model"] == model][keys + [target]].rename(columns={target: model})
        joined = joined.merge(other, on=keys, validate="one_to_one")
    return joined


def fit_models(frame: pd.DataFrame, models: list[str], quantity: str, bootstrap: SentenceBootstrap,
               scale: float | None = None, covariates=(), fixed_effects: bool = False,
               target: str = "normalised_weight") -> Fit:
    """Slopes of each model's `target` on `quantity`, on the words all `models` share, with paired draws.

    Parameters
    ----------
    frame
        Word rows of one method (column ``model``), usable statistics only
        (``status == "ok"``); words are matched across models by dataset,
        sentence and word index.
    models
        Models to fit, in the order of the returned arrays.
    bootstrap
        The shared resampling counts.
    scale
        The quantity's SD (:func:`quantity_scales`); default its SD over the fit's words.
    covariates
        Columns added as regressors (standardised over the fit's words: their scale does not
        change the quantity's slope).  The first model's rows provide them.
    fixed_effects
        Demean weight, quantity and covariates within each sentence first.

    Raises
    ------
    ValueError
        With missing values, fewer than two sentences, a constant quantity, or a
        model whose words do not match the others' one to one.
    """
    used = [quantity, *covariates, target]
    if frame[used].isna().any().any():
        raise ValueError(f"missing values in {[c for c in used if frame[c].isna().any()]}: "
                         "filter rows with status == 'ok' first")
    return _fit_wide(_wide(frame, models, [quantity, *covariates], target), models, quantity, bootstrap, scale,
                     covariates, fixed_effects)


def _fit_wide(wide: pd.DataFrame, models: list[str], quantity: str, bootstrap: SentenceBootstrap,
              scale: float | None, covariates=(), fixed_effects: bool = False) -> Fit:
    """:func:`fit_models` on rows that already hold every model's response in a column named by the model."""
    columns = wide["bootstrap_column"].to_numpy() if "bootstrap_column" in wide else bootstrap.locate(wide)
    present, group = np.unique(columns, return_inverse=True)
    q = wide[quantity].to_numpy(float)
    if len(present) < 2 or np.ptp(q) == 0:
        raise ValueError(f"need words of at least two sentences and a varying {quantity}; "
                         f"got {len(present)} sentence(s), {len(np.unique(q))} distinct value(s)")
    scale = scale or float(q.std()) or 1.0
    regressors = [(q - q.mean()) / scale]
    for c in covariates:
        values = wide[c].to_numpy(float)
        regressors.append((values - values.mean()) / (values.std() or 1.0))
    X = np.column_stack(regressors)
    Y = wide[list(models)].to_numpy(float)
    g = len(present)
    if fixed_effects:
        sizes = np.bincount(group)[:, None]
        X = X - (_per_sentence(group, X, g) / sizes)[group]
        Y = Y - (_per_sentence(group, Y, g) / sizes)[group]
    X = np.column_stack([np.ones(len(X)), X])
    p, k = X.shape[1], Y.shape[1]
    xtx = _per_sentence(group, (X[:, :, None] * X[:, None, :]).reshape(len(X), -1), g).reshape(-1, p, p)
    xty = _per_sentence(group, (X[:, :, None] * Y[:, None, :]).reshape(len(X), -1), g).reshape(-1, p, k)
    yy = _per_sentence(group, Y**2, g)
    counts = bootstrap.columns(present)
    draws_xtx = (counts @ xtx.reshape(g, -1)).reshape(-1, p, p)
    try:
        inverse = np.linalg.inv(draws_xtx)
    except np.linalg.LinAlgError:  # a replicate whose sentences leave the quantity constant
        inverse = np.linalg.pinv(draws_xtx)
    beta, r, beta_draws, r_draws = _estimates(xtx, xty, yy, counts, inverse, draws_xtx)
    return Fit(beta, r, beta_draws, r_draws, len(wide), g, present, xtx, xty, yy, inverse, counts, draws_xtx)


def verdict(low: float, high: float) -> str:
    """Reading of an interval of a difference, a key of :data:`VERDICTS`: above 0 ``"more"``, below 0 ``"less"``."""
    if np.isnan(low):
        return "no twin"
    if low > 0:
        return "more"
    if high < 0:
        return "less"
    return "unclear"


def _percentile(draws: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def present_pairs(pairs: dict, models) -> dict:
    """The pairs of `pairs` whose models are all among `models` (a pair without pre-trained twin needs one)."""
    models = set(models)
    return {name: pair for name, pair in pairs.items()
            if pair.finetuned in models and (pair.pretrained is None or pair.pretrained in models)}


def _control(frame: pd.DataFrame, quantity: str, control: str) -> tuple[pd.DataFrame, tuple[str, ...], bool]:
    """Rows, covariates and whether to demean within sentences, for one control."""
    if control == "none":
        return frame, (), False
    if control == "covariates":
        # Self-information is minus log frequency plus a constant: that covariate would absorb it.
        return frame, tuple(c for c in COVARIATES if not (quantity == "self_information" and c == "log_frequency")), False
    if control == "content words":
        return frame[~frame["stopword"]], (), False
    if control == "frequency":
        if quantity == "self_information":  # minus log frequency: nothing would be left to fit
            raise ValueError("self-information is minus log frequency plus a constant: it has no part beyond "
                             "frequency to fit")
        return frame, FREQUENCY_COVARIATES, False
    if control == "sentence effects":
        return frame, (), True
    raise ValueError(f"unknown control {control!r}: choose one of {CONTROLS}")


@dataclass(frozen=True)
class Comparison:
    """One pair as the regressions compare it: which models fill which columns of its fits.

    Attributes
    ----------
    pretrained
        The pre-trained model (column 0), or ``None`` for a model without a twin.
    finetuned
        The fine-tuned models: the seeds a recipe was drawn with, or one model.
        The pair's fine-tuned side is their mean.
    controls
        The matched non-contrastive controls' seeds, if any: the difference in
        differences (fine-tuned mean minus control mean) credits a change to the
        contrastive objective.
    """

    pretrained: str | None
    finetuned: tuple[str, ...]
    controls: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.finetuned:
            raise ValueError("a Comparison needs at least one fine-tuned model")
        if self.controls and self.pretrained is None:
            raise ValueError("a control is compared through the pre-trained model it shares: give it one")

    @property
    def columns(self) -> list[str]:
        """The models in the order of a fit's columns: pre-trained, fine-tuned, controls."""
        return ([self.pretrained] if self.pretrained else []) + list(self.finetuned) + list(self.controls)

    @property
    def models(self) -> set[str]:
        return set(self.columns)

    def sides(self) -> tuple[slice | None, slice, slice | None]:
        """The column slices of the pre-trained model, the fine-tuned ones and the controls."""
        start = 1 if self.pretrained else 0
        fine = slice(start, start + len(self.finetuned))
        return (slice(0, 1) if self.pretrained else None, fine,
                slice(fine.stop, fine.stop + len(self.controls)) if self.controls else None)


@dataclass
class PairFits:
    """:func:`pair_table`'s results and the fits behind them.

    Attributes
    ----------
    table
        One tidy row per pair x dataset x method x quantity x control (see :func:`pair_table`).
    fits
        ``(pair, dataset, method, quantity, control)`` -> :class:`Fit` of the pair's models,
        in the column order of :attr:`Comparison.columns`.
    comparisons
        Pair name -> its :class:`Comparison`.
    bootstrap
        The draws every fit shares.
    """

    table: pd.DataFrame
    fits: dict
    comparisons: dict
    bootstrap: SentenceBootstrap

    @property
    def twinned(self) -> set:
        """The pairs with a pre-trained model (column 0 of their fits)."""
        return {name for name, comparison in self.comparisons.items() if comparison.pretrained is not None}


def pair_table(frame: pd.DataFrame, comparisons: dict, bootstrap: SentenceBootstrap, scales: dict[str, float],
               datasets: list[str] | None = None, pooled: bool = True, level: float = 0.95,
               controls=CONTROLS) -> PairFits:
    """Every pair x dataset x method x quantity x control: slopes and correlations, and their differences.

    Parameters
    ----------
    frame
        Output of :func:`attach_statistics`; only rows with ``status == "ok"`` enter the fits,
        and ``n_without_statistics`` counts the others of the same selection.
    comparisons
        Pair name -> :class:`Comparison`; a pair is fitted with each method that
        attributed all its models (a pair none of whose methods did is skipped).
    bootstrap, scales
        The shared draws and each quantity's SD (:func:`quantity_scales`).
    datasets
        Datasets fitted one by one (default: all in `frame`); `pooled` adds ``"all"``.
    level
        Coverage of the (unadjusted, percentile) intervals.

    Returns
    -------
    PairFits
        ``table`` has ``beta_pre``, ``beta_fine`` (mean over the fine-tuned
        models), ``delta`` = their difference, its percentile interval
        ``delta_low``/``delta_high``; with controls ``beta_control`` and the
        difference in differences ``did`` (fine-tuned minus control mean) with
        ``did_low``/``did_high``; the same for the correlations (``r_pre``,
        ``r_fine``, ``delta_r``, ``r_control``, ``did_r`` ...; NaN with
        covariates); ``seeds``, ``control_seeds``, ``n_words``, ``n_sentences``,
        ``n_without_statistics``, ``verdict`` (of ``delta``) and ``note``.
    """
    datasets = list(datasets or frame["dataset"].unique())
    selections = [(d, [d]) for d in datasets] + ([("all", datasets)] if pooled else [])
    if "content words" in controls and "content_weight" not in frame:
        frame = frame.assign(content_weight=content_weights(frame))
    rows, fits, used = [], {}, {}
    present = set(frame["model"])
    for pair_name, comparison in comparisons.items():
        models = comparison.columns
        if not set(models) <= present:
            continue
        used[pair_name] = comparison
        for method in sorted(frame["method"].unique()):
            by_method = frame[(frame["method"] == method) & frame["model"].isin(models)]
            if set(by_method["model"]) != set(models):
                continue  # a method that did not attribute every model of the pair (the drawn models: IG only)
            # One row per word of the pair: the first fine-tuned model's rows decide the exclusions counted.
            order = [comparison.finetuned[0], *[m for m in models if m != comparison.finetuned[0]]]
            shared = ["status", "stopword", *QUANTITIES, *COVARIATES]
            wide = {target: _wide(by_method, order, shared, target).assign(bootstrap_column=lambda w: bootstrap.locate(w))
                    for target in ("normalised_weight", "content_weight")
                    if target == "normalised_weight" or "content words" in controls}
            for dataset_name, chosen in selections:
                for quantity in QUANTITIES:
                    for control in controls:
                        words = wide["content_weight" if control == "content words" else "normalised_weight"]
                        subset = words[words["dataset"].isin(chosen)]
                        if control == "content words":
                            subset = subset[~subset["stopword"]]
                        setting = (pair_name, dataset_name, method, quantity, control)
                        row = {"pair": pair_name, "pretrained": comparison.pretrained,
                               "finetuned": comparison.finetuned[0] if len(comparison.finetuned) == 1 else
                               f"{len(comparison.finetuned)} seeds", "dataset": dataset_name, "method": method,
                               "quantity": quantity, "control": control, "seeds": len(comparison.finetuned),
                               "control_seeds": len(comparison.controls),
                               "n_without_statistics": int((subset["status"] != "ok").sum())}
                        try:
                            rows_used, covariates, demean = _control(subset[subset["status"] == "ok"], quantity,
                                                                     control)
                            fit = _fit_wide(rows_used, models, quantity, bootstrap, scales[quantity], covariates,
                                            demean)
                        except ValueError as err:  # too few words in this selection: say so, keep the row
                            rows.append(row | {"n_words": 0, "verdict": "not fitted", "note": str(err)})
                            continue
                        fits[setting] = fit
                        rows.append(row | _pair_row(fit, comparison, level) | {"note": ""})
    return PairFits(pd.DataFrame(rows), fits, used, bootstrap)


def _side(fit: Fit, side: slice) -> tuple[float, np.ndarray, float, np.ndarray]:
    """The mean slope and correlation of one side's columns, and their draws."""
    return (fit.beta[side].mean(), fit.beta_draws[:, side].mean(1), fit.r[side].mean(), fit.r_draws[:, side].mean(1))


def _pair_row(fit: Fit, comparison: Comparison, level: float) -> dict:
    """The table row of one pair's fit: each side is the mean over its models (seeds)."""
    pre, fine, control = comparison.sides()
    beta_fine, fine_draws, r_fine, r_fine_draws = _side(fit, fine)
    row = {"beta_fine": beta_fine, "r_fine": r_fine, "n_words": fit.n_words, "n_sentences": fit.n_sentences}
    row["fine_low"], row["fine_high"] = _percentile(fine_draws, level)
    missing = {name: np.nan for name in ("beta_pre", "pre_low", "pre_high", "r_pre", "delta", "delta_low",
                                         "delta_high", "delta_r", "delta_r_low", "delta_r_high", "beta_control",
                                         "r_control", "did", "did_low", "did_high", "did_r", "did_r_low",
                                         "did_r_high")}
    if pre is None:
        return row | missing | {"verdict": "no twin"}
    beta_pre, pre_draws, r_pre, r_pre_draws = _side(fit, pre)
    row |= {"beta_pre": beta_pre, "r_pre": r_pre, "delta": beta_fine - beta_pre, "delta_r": r_fine - r_pre}
    row["pre_low"], row["pre_high"] = _percentile(pre_draws, level)
    row["delta_low"], row["delta_high"] = _percentile(fine_draws - pre_draws, level)
    row["delta_r_low"], row["delta_r_high"] = (_percentile(r_fine_draws - r_pre_draws, level)
                                               if np.isfinite(row["delta_r"]) else (np.nan, np.nan))
    if control is None:
        row |= {name: np.nan for name in ("beta_control", "r_control", "did", "did_low", "did_high", "did_r",
                                          "did_r_low", "did_r_high")}
    else:
        beta_control, control_draws, r_control, r_control_draws = _side(fit, control)
        row |= {"beta_control": beta_control, "r_control": r_control, "did": beta_fine - beta_control,
                "did_r": r_fine - r_control}
        row["did_low"], row["did_high"] = _percentile(fine_draws - control_draws, level)
        row["did_r_low"], row["did_r_high"] = (_percentile(r_fine_draws - r_control_draws, level)
                                               if np.isfinite(row["did_r"]) else (np.nan, np.nan))
    return row | {"verdict": verdict(row["delta_low"], row["delta_high"])}


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The t interval of the mean of `values`: mean +- t(k-1) s / sqrt(k) (replicates such as seeds)."""
    values = np.asarray(values, float)
    k = len(values)
    if k < 2:
        return np.nan, np.nan
    half = scistats.t.ppf((1 + level) / 2, k - 1) * values.std(ddof=1) / np.sqrt(k)
    return float(values.mean() - half), float(values.mean() + half)


def seed_table(results: PairFits, level: float = 0.95, dataset: str = "all", control: str = "none") -> pd.DataFrame:
    """Delta beta of each fine-tuned seed (and each control seed) against the shared pre-trained model, and their mean.

    For every pair with a pre-trained twin and more than one fine-tuned model,
    every method and quantity (on `dataset`, under `control`): one row per seed
    (``side`` "fine-tuned" or "control"), with its sentence-bootstrap interval,
    and per side one row ``seed == "mean"`` with

    * the mean's percentile interval over the same sentence draws (the seeds
      are paired: one bootstrap), which holds these seeds' models fixed;
    * ``t_low``/``t_high``: the t interval across seeds, mean +- t(k-1) s / sqrt(k),
      which treats the seeds as replicates of the recipe;
    * ``seeds_above``: how many seeds' own delta beta is above 0.
    """
    rows = []
    for (pair, chosen_dataset, method, quantity, chosen_control), fit in results.fits.items():
        comparison = results.comparisons[pair]
        if (chosen_dataset != dataset or chosen_control != control or len(comparison.finetuned) < 2
                or comparison.pretrained is None):
            continue
        _, fine, others = comparison.sides()
        base = {"pair": pair, "method": method, "quantity": quantity}
        for side, columns, names in (("fine-tuned", fine, comparison.finetuned),
                                     ("control", others, comparison.controls)):
            if columns is None:
                continue
            deltas = fit.beta[columns] - fit.beta[0]
            draws = fit.beta_draws[:, columns] - fit.beta_draws[:, [0]]
            for name, delta, column in zip(names, deltas, draws.T):
                low, high = _percentile(column, level)
                rows.append(base | {"side": side, "seed": name, "delta": delta, "delta_low": low, "delta_high": high})
            low, high = _percentile(draws.mean(1), level)
            t_low, t_high = t_interval(deltas, level)
            rows.append(base | {"side": side, "seed": "mean", "delta": deltas.mean(), "delta_low": low,
                                "delta_high": high, "t_low": t_low, "t_high": t_high,
                                "seed_sd": deltas.std(ddof=1) if len(deltas) > 1 else np.nan,
                                "seeds_above": int((deltas > 0).sum()), "seeds": len(deltas)})
    table = pd.DataFrame(rows)
    if len(table):
        table["verdict"] = [verdict(lo, hi) for lo, hi in zip(table["delta_low"], table["delta_high"])]
    return table


# A no-break space: a table cell may wrap between words, never inside an interval (the CSV has plain spaces).
NO_BREAK = "\u00a0"


def interval_text(value, low, high, digits: int = 3) -> list[str]:
    """``+0.123 [+0.045, +0.201]`` per row (``-`` where the value is missing).

    In a narrow table cell the estimate may sit above its interval; the interval
    itself never breaks (:data:`NO_BREAK`).
    """
    return [f"{v:+.{digits}f} [{lo:+.{digits}f},{NO_BREAK}{hi:+.{digits}f}]" if np.isfinite(v) else "-"
            for v, lo, hi in zip(value, low, high)]


def headline(results: pd.DataFrame, dataset: str = "all", control: str = "none", level: float = 0.95) -> pd.DataFrame:
    """The paper-style table: one row per pair, method and quantity, for one dataset selection and control.

    The comparison comes first (delta beta with its interval and the verdict
    read from it, then delta r), then both slopes (their intervals are in
    `results`).  `level` is the coverage the intervals of `results` were
    computed at (it names the columns).
    """
    chosen = results[(results["dataset"] == dataset) & (results["control"] == control)]
    return pd.DataFrame({
        "pair": chosen["pair"], "method": chosen["method"].str.upper(), "quantity": chosen["quantity"].map(QUANTITIES),
        f"delta beta [{level:.0%}]": interval_text(chosen["delta"], chosen["delta_low"], chosen["delta_high"]),
        "verdict": chosen["verdict"].map(VERDICTS),
        f"delta r [{level:.0%}]": interval_text(chosen["delta_r"], chosen["delta_r_low"], chosen["delta_r_high"]),
        "beta pre-trained": [f"{beta:+.3f}" if np.isfinite(beta) else "-" for beta in chosen["beta_pre"]],
        "beta fine-tuned": [f"{beta:+.3f}" if np.isfinite(beta) else "-" for beta in chosen["beta_fine"]],
        "words": chosen["n_words"],  # (the seeds averaged are the pairs table's: `results` holds them too)
    }).reset_index(drop=True)


def within_sentence_spearman(first: pd.DataFrame, second: pd.DataFrame, by: list[str] | None = None,
                             column: str = "weight", min_words: int = 3) -> pd.Series:
    """Spearman correlation of two word-weight tables' `column`, sentence by sentence.

    Rows are matched on ``by + ["word_index"]`` (default ``by``: ``["sentence_id"]``);
    sentences with fewer than `min_words` matched words are left out (a rank
    correlation of two words says nothing).  Returns one value per sentence,
    indexed by `by`.
    """
    by = by or ["sentence_id"]
    joined = first[by + ["word_index", column]].merge(second[by + ["word_index", column]], on=by + ["word_index"],
                                                      suffixes=("_first", "_second"), validate="one_to_one")
    groups = joined.groupby(by).filter(lambda g: len(g) >= min_words).groupby(by)
    return groups.apply(lambda g: scistats.spearmanr(g[f"{column}_first"], g[f"{column}_second"]).statistic,
                        include_groups=False).rename("spearman")
