"""Regressions of word weights on word statistics, with sentence-bootstrap intervals.

The Correlations chapter asks whether a contrastively fine-tuned encoder weights
informative words more than its pre-trained twin.  For one model and one word
quantity q (information gain, raw or corrected either way, or self-information) it fits

    normalised weight = a + beta * z(q) [+ covariates] + noise,

with ``z(q)`` the quantity standardised over the words of the fit, so beta is the
change in normalised weight per standard deviation of q.  Words of one sentence
share the sentence's normalisation and are not independent, so intervals come
from a bootstrap that resamples *sentences*.  For a pair of models the same
resampled sentences give both slopes, hence a paired interval for
``delta beta = beta(fine-tuned) - beta(pre-trained)`` on the same words.

Every fit works on per-sentence sufficient statistics (``X'X`` and ``X'y``), so
a bootstrap replicate costs one weighted sum and one small solve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as scistats

__all__ = [
    "QUANTITIES", "COVARIATES", "CONTROLS", "VERDICTS", "attach_statistics", "missing_statistics", "fit_slopes",
    "regress", "compare_pair", "across_seeds", "present_pairs", "pair_table", "headline", "verdict", "reading",
    "within_sentence_spearman",
]

# Labels spell out "information gain": "IG" in this book is Integrated Gradients.
QUANTITIES = {
    "information_gain": "info gain (raw)",
    "information_gain_corrected": "info gain (shuffle-corrected)",
    "information_gain_binned": "info gain (bin-corrected)",
    "self_information": "self-information",
}
COVARIATES = ("log_frequency", "characters", "n_tokens", "position")
CONTROLS = ("none", "covariates", "no stopwords")
# What a delta-beta interval says (the codes of the results table's ``verdict`` column).
VERDICTS = {
    "more": "fine-tuned weights it more",
    "less": "fine-tuned weights it less",
    "unclear": "no clear difference",
    "no twin": "no pre-trained twin",
    "not fitted": "too few words to fit",
}


def _is_stopword(words: pd.Series) -> pd.Series:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    punctuation = ~words.str.contains(r"\w", regex=True)
    return words.isin(ENGLISH_STOP_WORDS) | punctuation


def attach_statistics(weights: pd.DataFrame, table: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Join each word weight with its word's statistics and the covariates.

    Adds the :data:`QUANTITIES`, ``count``, ``log_frequency`` (log of the corpus
    count), ``characters``, ``position`` (word index / (words in the sentence - 1),
    0 for one-word sentences), ``stopword`` (scikit-learn's English list or no
    letter or digit) and ``status``: ``"ok"``, ``"absent"`` (not in the corpus),
    ``"rare"`` (fewer than `min_count` occurrences) or ``"no context"`` (NaN
    information gain).  Rows without statistics are kept, flagged by ``status``.
    """
    frame = weights.join(table[["count", *QUANTITIES]], on="word")
    frame["log_frequency"] = np.log(frame["count"])
    frame["characters"] = frame["word"].str.len()
    words_in_sentence = frame.groupby(["model", "dataset", "method", "sentence_id"])["word_index"].transform("max")
    frame["position"] = (frame["word_index"] / words_in_sentence.where(words_in_sentence > 0)).fillna(0.0)
    frame["stopword"] = _is_stopword(frame["word"])
    status = np.select(
        [frame["count"].isna(), frame["count"] < min_count, frame[list(QUANTITIES)].isna().any(axis=1)],
        ["absent", "rare", "no context"], default="ok",
    )
    frame["status"] = pd.Categorical(status, categories=["ok", "absent", "rare", "no context"])
    return frame


def missing_statistics(frame: pd.DataFrame) -> pd.DataFrame:
    """Words per model, method and status (from :func:`attach_statistics`): what the fits leave out."""
    counts = frame.groupby(["model", "method", "status"], observed=False).size().unstack("status", fill_value=0)
    counts["share without statistics"] = 1 - counts["ok"] / counts.sum(axis=1)
    return counts


def _design(frame: pd.DataFrame, quantity: str, covariates) -> np.ndarray:
    """Columns: intercept, the standardised quantity, the standardised covariates."""
    columns = [frame[quantity], *(frame[c] for c in covariates)]
    standardised = [(c - c.mean()) / (c.std(ddof=0) or 1.0) for c in (col.astype(float) for col in columns)]
    return np.column_stack([np.ones(len(frame)), *standardised])


def fit_slopes(frame: pd.DataFrame, quantity: str, targets: list[str], covariates=(), n_boot: int = 1000,
               seed: int = 0, groups: list[str] | None = None, level: float = 0.95) -> dict:
    """OLS slopes of each column of `targets` on the standardised `quantity`, bootstrapped by sentence.

    Parameters
    ----------
    frame
        One row per word, without missing values in the columns used.
    targets
        Response columns sharing the same words (one per model of a pair).
    covariates
        Columns added as standardised regressors.
    groups
        Columns naming a sentence (resampling unit); default ``dataset`` and ``sentence_id``.

    Returns
    -------
    dict
        ``beta`` (len(targets),), ``boot`` (n_boot, len(targets)) bootstrap slopes,
        ``r2``, ``rho`` (Spearman of each target with the quantity), ``n_words``,
        ``n_sentences``, and ``interval`` (len(targets), 2) percentile intervals.

    Raises
    ------
    ValueError
        With fewer than two sentences or a constant quantity.
    """
    groups = groups or ["dataset", "sentence_id"]
    used = [quantity, *covariates, *targets]
    if frame[used].isna().any().any():
        raise ValueError(f"missing values in {[c for c in used if frame[c].isna().any()]}: "
                         "filter rows with status == 'ok' first")
    sentence = frame.groupby(groups, sort=False).ngroup().to_numpy()
    n_sentences = sentence.max() + 1 if len(sentence) else 0
    if n_sentences < 2 or frame[quantity].nunique() < 2:
        raise ValueError(f"need words of at least two sentences and a varying {quantity}; "
                         f"got {n_sentences} sentence(s), {frame[quantity].nunique()} distinct value(s)")
    X = _design(frame, quantity, covariates)
    Y = frame[targets].to_numpy(float)
    p = X.shape[1]
    # Per-sentence sufficient statistics: a replicate is a count-weighted sum of them.
    xtx = np.zeros((n_sentences, p, p))
    xty = np.zeros((n_sentences, p, len(targets)))
    np.add.at(xtx, sentence, X[:, :, None] * X[:, None, :])
    np.add.at(xty, sentence, X[:, :, None] * Y[:, None, :])
    coef = np.linalg.pinv(xtx.sum(0)) @ xty.sum(0)  # (p, targets)
    residual = Y - X @ coef
    r2 = 1 - (residual**2).sum(0) / ((Y - Y.mean(0)) ** 2).sum(0)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_sentences, np.full(n_sentences, 1 / n_sentences), size=n_boot).astype(float)
    boot = (np.linalg.pinv(np.einsum("bg,gij->bij", counts, xtx)) @ np.einsum("bg,gik->bik", counts, xty))[:, 1, :]
    alpha = (1 - level) / 2
    return {
        "beta": coef[1], "boot": boot, "interval": np.quantile(boot, [alpha, 1 - alpha], axis=0).T,
        "r2": r2, "rho": np.array([scistats.spearmanr(frame[t], frame[quantity]).statistic for t in targets]),
        "n_words": len(frame), "n_sentences": int(n_sentences),
    }


def regress(frame: pd.DataFrame, quantity: str, covariates=(), n_boot: int = 1000, seed: int = 0,
            target: str = "normalised_weight") -> dict:
    """One model's slope: ``beta``, ``low``, ``high``, ``r2``, ``rho``, ``n_words``, ``n_sentences``."""
    fit = fit_slopes(frame, quantity, [target], covariates, n_boot, seed)
    return {"beta": fit["beta"][0], "low": fit["interval"][0, 0], "high": fit["interval"][0, 1],
            "r2": fit["r2"][0], "rho": fit["rho"][0], "n_words": fit["n_words"], "n_sentences": fit["n_sentences"]}


def verdict(low: float, high: float) -> str:
    """Reading of a delta-beta interval, a key of :data:`VERDICTS`: above 0 ``"more"``, below 0 ``"less"``."""
    if np.isnan(low):
        return "no twin"
    if low > 0:
        return "more"
    if high < 0:
        return "less"
    return "unclear"


def reading(verdicts: pd.Series) -> dict:
    """The decision rule that reads a claim's settings: how many intervals lie above and below 0, and a word.

    ``"reproduces"``: more than half of the settings above 0 and none below;
    ``"contradicts"``: more than half below and none above; ``"does not
    reproduce"``: none above; ``"partly reproduces"``: anything else.

    Returns
    -------
    dict
        ``more``, ``less``, ``n`` and ``word``.
    """
    more, less, n = int((verdicts == "more").sum()), int((verdicts == "less").sum()), len(verdicts)
    if more > n / 2 and less == 0:
        word = "reproduces"
    elif less > n / 2 and more == 0:
        word = "contradicts"
    elif more == 0:
        word = "does not reproduce"
    else:
        word = "partly reproduces"
    return {"more": more, "less": less, "n": n, "word": word}


def compare_pair(pretrained: pd.DataFrame | None, finetuned: pd.DataFrame, quantity: str, covariates=(),
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95, keep_boot: bool = False) -> dict:
    """Slopes of both models of a pair on the same words, and delta beta with its paired interval.

    `pretrained` and `finetuned` are word tables of one dataset selection and
    method; words are matched on (dataset, sentence, word_index), the sentence's
    text, so models attributed on samples of different sizes (whose
    ``sentence_id`` numbers differ) pair the sentences they share; tables without
    a ``sentence`` column match on ``sentence_id``.  Without a pre-trained model
    only the fine-tuned slope is returned.  `keep_boot` adds ``delta_boot``, the
    bootstrap replicates of delta beta.
    """
    by_text = "sentence" in finetuned and (pretrained is None or "sentence" in pretrained)
    keys = ["dataset", "sentence" if by_text else "sentence_id", "word_index"]
    columns = list(dict.fromkeys(keys + ["sentence_id", quantity, *covariates, "normalised_weight"]))
    if pretrained is None:
        fit = fit_slopes(finetuned[columns], quantity, ["normalised_weight"], covariates, n_boot, seed, level=level)
        beta, interval = fit["beta"], fit["interval"]
        return {"beta_pre": np.nan, "beta_fine": beta[0], "fine_low": interval[0, 0], "fine_high": interval[0, 1],
                "pre_low": np.nan, "pre_high": np.nan, "delta": np.nan, "delta_low": np.nan, "delta_high": np.nan,
                "r2_pre": np.nan, "r2_fine": fit["r2"][0], "rho_pre": np.nan, "rho_fine": fit["rho"][0],
                "n_words": fit["n_words"], "n_sentences": fit["n_sentences"]}
    joined = pretrained[columns].merge(finetuned[keys + ["normalised_weight"]], on=keys, suffixes=("_pre", "_fine"),
                                       validate="one_to_one")
    fit = fit_slopes(joined, quantity, ["normalised_weight_pre", "normalised_weight_fine"], covariates, n_boot, seed,
                     level=level)
    delta_boot = fit["boot"][:, 1] - fit["boot"][:, 0]
    low, high = np.quantile(delta_boot, [(1 - level) / 2, (1 + level) / 2])
    return ({"delta_boot": delta_boot} if keep_boot else {}) | {
        "beta_pre": fit["beta"][0], "pre_low": fit["interval"][0, 0], "pre_high": fit["interval"][0, 1],
        "beta_fine": fit["beta"][1], "fine_low": fit["interval"][1, 0], "fine_high": fit["interval"][1, 1],
        "delta": fit["beta"][1] - fit["beta"][0], "delta_low": low, "delta_high": high,
        "r2_pre": fit["r2"][0], "r2_fine": fit["r2"][1], "rho_pre": fit["rho"][0], "rho_fine": fit["rho"][1],
        "n_words": fit["n_words"], "n_sentences": fit["n_sentences"],
    }


def _control(frame: pd.DataFrame, quantity: str, control: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    if control == "none":
        return frame, ()
    if control == "covariates":
        # Self-information is minus log frequency plus a constant: that covariate would absorb it.
        return frame, tuple(c for c in COVARIATES if not (quantity == "self_information" and c == "log_frequency"))
    if control == "no stopwords":
        return frame[~frame["stopword"]], ()
    raise ValueError(f"unknown control {control!r}: choose one of {CONTROLS}")


def present_pairs(pairs: dict, models) -> dict:
    """The pairs of `pairs` whose models are all among `models` (a pair without pre-trained twin needs one)."""
    models = set(models)
    return {name: pair for name, pair in pairs.items()
            if pair.finetuned in models and (pair.pretrained is None or pair.pretrained in models)}


def pair_table(frame: pd.DataFrame, pairs: dict, n_boot: int = 1000, seed: int = 0,
               datasets: list[str] | None = None, pooled: bool = True, level: float = 0.95) -> pd.DataFrame:
    """Every pair x dataset x method x quantity x control: both slopes, delta beta, verdict.

    Parameters
    ----------
    frame
        Output of :func:`attach_statistics`; only rows with ``status == "ok"`` enter the fits,
        and ``n_without_statistics`` counts the others of the same selection.
    pairs
        Name -> :class:`cwi.models.ModelPair`; pairs whose models are not in `frame` are skipped.
    datasets
        Datasets fitted one by one (default: all in `frame`); `pooled` adds ``"all"``.

    Returns
    -------
    pandas.DataFrame
        One tidy row per setting, ready for CSV.
    """
    datasets = list(datasets or frame["dataset"].unique())
    selections = [(d, [d]) for d in datasets] + ([("all", datasets)] if pooled else [])
    rows = []
    for pair_name, pair in present_pairs(pairs, frame["model"].unique()).items():
        for method in sorted(frame["method"].unique()):
            for dataset_name, chosen in selections:
                subset = frame[(frame["method"] == method) & frame["dataset"].isin(chosen)]
                fine_all = subset[subset["model"] == pair.finetuned]
                for quantity in QUANTITIES:
                    for control in CONTROLS:
                        fine, covariates = _control(fine_all[fine_all["status"] == "ok"], quantity, control)
                        pre = None
                        if pair.pretrained is not None:
                            pre_all = subset[subset["model"] == pair.pretrained]
                            pre, _ = _control(pre_all[pre_all["status"] == "ok"], quantity, control)
                        try:
                            result = compare_pair(pre, fine, quantity, covariates, n_boot, seed, level)
                            code, note = verdict(result["delta_low"], result["delta_high"]), ""
                        except ValueError as err:  # too few words in this selection: say so, keep the row
                            result, code, note = {"n_words": len(fine)}, "not fitted", str(err)
                        excluded = fine_all if control != "no stopwords" else fine_all[~fine_all["stopword"]]
                        rows.append({
                            "pair": pair_name, "pretrained": pair.pretrained, "finetuned": pair.finetuned,
                            "dataset": dataset_name, "method": method, "quantity": quantity, "control": control,
                            **result, "n_without_statistics": int((excluded["status"] != "ok").sum()),
                            "verdict": code, "note": note,
                        })
    return pd.DataFrame(rows)


def across_seeds(frame: pd.DataFrame, pretrained: str, finetuned: dict[int, str], n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Delta beta of one pre-trained model against its fine-tuned twin trained with several seeds.

    For every method and quantity (all datasets pooled, no covariates): one row
    per training seed, with its sentence-bootstrap interval, and one row
    ``seed == "all"`` whose ``delta`` is the mean over seeds and whose interval
    is the percentile interval of every seed's bootstrap replicates pooled.
    That mixture is as wide as the sentence sampling of one seed *and* the
    spread between seeds, so a headline cannot rest on one lucky run.  All
    seeds resample the same sentences (one bootstrap `seed`), so they are paired.

    Parameters
    ----------
    frame
        :func:`attach_statistics` of the word weights of every model named.
    pretrained
        The pre-trained model's name in `frame`.
    finetuned
        Training seed -> the fine-tuned model's name in `frame`.

    Returns
    -------
    pandas.DataFrame
        ``method``, ``quantity``, ``seed``, ``delta``, ``delta_low``, ``delta_high``,
        ``seed_sd`` (standard deviation of the seeds' deltas, on the ``"all"`` row),
        ``n_words``, ``verdict``.
    """
    usable = frame[frame["status"] == "ok"]
    rows = []
    for method in sorted(usable["method"].unique()):
        by_method = usable[usable["method"] == method]
        pre = by_method[by_method["model"] == pretrained]
        for quantity in QUANTITIES:
            deltas, boots = [], []
            for training_seed, model in finetuned.items():
                result = compare_pair(pre, by_method[by_method["model"] == model], quantity, (), n_boot, seed, level,
                                      keep_boot=True)
                deltas.append(result["delta"])
                boots.append(result["delta_boot"])
                rows.append({"method": method, "quantity": quantity, "seed": str(training_seed),
                             "delta": result["delta"], "delta_low": result["delta_low"],
                             "delta_high": result["delta_high"], "seed_sd": np.nan, "n_words": result["n_words"]})
            low, high = np.quantile(np.concatenate(boots), [(1 - level) / 2, (1 + level) / 2])
            rows.append({"method": method, "quantity": quantity, "seed": "all", "delta": float(np.mean(deltas)),
                         "delta_low": low, "delta_high": high,
                         "seed_sd": float(np.std(deltas, ddof=1)) if len(deltas) > 1 else np.nan,
                         "n_words": rows[-1]["n_words"]})
    table = pd.DataFrame(rows)
    table["verdict"] = [verdict(lo, hi) for lo, hi in zip(table["delta_low"], table["delta_high"])]
    return table


def headline(results: pd.DataFrame, dataset: str = "all", control: str = "none", level: float = 0.95) -> pd.DataFrame:
    """The paper-style table: one row per pair, method and quantity, for one dataset selection and control.

    `level` is the coverage the intervals of `results` were computed at (it names the column).
    """
    chosen = results[(results["dataset"] == dataset) & (results["control"] == control)]

    def interval(value, low, high):
        return [f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]" if np.isfinite(v) else "-" for v, lo, hi in zip(value, low, high)]

    return pd.DataFrame({
        "pair": chosen["pair"], "method": chosen["method"].str.upper(), "quantity": chosen["quantity"].map(QUANTITIES),
        "beta pre-trained": interval(chosen["beta_pre"], chosen["pre_low"], chosen["pre_high"]),
        "beta fine-tuned": interval(chosen["beta_fine"], chosen["fine_low"], chosen["fine_high"]),
        f"delta beta [{level:.0%}]": interval(chosen["delta"], chosen["delta_low"], chosen["delta_high"]),
        "words": chosen["n_words"], "verdict": chosen["verdict"].map(VERDICTS),
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
