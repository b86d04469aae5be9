"""Verdicts with a known error rate: a family of comparisons decided together, claims read from it, its error rates.

The Correlations chapter fixes its claims in the profile (``analysis.claims``)
before a run: each is one *contrast* per pair, the mean difference over a set of
methods and quantities, all datasets pooled, under one adjustment (no
covariates; content words only, renormalised; log frequency and subword count
partialled out).  A contrast is read two ways:

* **vs base** (Δ): the fine-tuned side minus the pre-trained model, the paper's
  comparison;
* **vs control** (the difference in differences, DiD): the fine-tuned side minus
  the matched non-contrastive control's, for pairs that have one; the
  pre-trained model cancels, and what is left is what the contrastive
  objective adds over further training of the same base on the same data.

Each side is the mean over its models (the fresh seeds of a recipe).  Every
pair x claim x statistic (Δβ, the change of slope; Δr, the change of
correlation) x reading is one member of the *primary family*.

**The rule** (:func:`decide`).  Member m's statistic is ``T_m = |d_m| / se_m``,
with se from the sentence bootstrap (:class:`cwi.analysis.SentenceBootstrap`).
The critical value combines two references:

* the null itself: Westfall and Young's single-step max-T over permutations
  that exchange the models of each pair within every sentence (one relabelling
  per cluster of sentences that the bootstrap resamples as one unit, shared by
  every method, quantity, adjustment and dataset), each permuted data set
  refitted and studentised anew; ``c_perm`` is the order statistic of
  ``max_m T*_m`` that, with the observed labelling counted in, makes the test
  exact under the complete null of exchangeable models
  (:func:`permutation_critical`);
* the bootstrap: ``c_boot``, the `level` quantile of the centred max-t over the
  sentence resamples (:func:`simultaneous`), whose band covers every member
  at once whatever the models' other differences (approximately).

c is the larger of the two.  Exchangeability is a strong null (fine-tuning may
change a model's spread of weights while leaving a slope alone), under which
the permutation alone is exact but the test of "Δβ = 0, the models otherwise
different" is only approximate; the bootstrap band covers that case, and the
larger critical value keeps both properties.  Member m is called when
``T_m > c``; its interval ``d_m +- c se_m`` excludes 0 exactly then.  The
adjusted p-value is the permutation's: the share of permutations whose maximum
reaches ``T_m``.

**Two populations.**  The sentence bootstrap holds the trained models fixed,
so a call is about *these* models.  For a recipe drawn with k seeds,
:func:`decide` also gives a *recipe-level* interval whose variance adds the
seeds' spread, ``se^2 + s_f^2 / k_f`` (against the base) or ``se^2 + s_d^2 / k``
(against the control, seed i's SimCSE run and control sharing their batches:
the spread of the paired differences), with Welch-Satterthwaite degrees of
freedom and a Bonferroni t critical value over the recipe-level members (never
below c, so that a call for the recipe is a call for these models too): only
it may speak for the recipe, from this base.  (It counts the seed x sentence
interaction twice, once in each term: it errs wide.)

A claim about several comparisons at once holds only when every one of them
does (an intersection-union test, no further adjustment): :func:`claim_word`.
The per-dataset claim is a second family (:func:`per_dataset`).

:func:`error_rates` measures the rule: under the sharp null (relabellings of
their own random stream, judged against the same c), in the bootstrap's world
with every effect removed (the sentence resamples' draws centred on the
estimates, judged against c with the observed standard errors: a bootstrap
estimate of the band's family-wise error, below 1 - level whenever c is at
least c_boot), and with something planted on relabelled data
(:class:`Scenario`): an effect (the power) or seeds that wander around no
effect (which the models-level rule should, and the recipe-level rule should
not, call).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scistats

from .analysis import PairFits, refit_many, t_interval, verdict

__all__ = ["STATISTICS", "READINGS", "MEMBER_VERDICTS", "CLAIM_WORDS", "simultaneous", "contrasts", "seed_contrasts",
           "relabellings", "stream", "permutation_maxima", "permutation_critical", "decide", "family", "per_dataset", "method_claims", "claim_word",
           "Scenario", "error_rates", "RATE_WORDS", "calibration_status"]

# The two statistics of a contrast: the change of slope and the change of correlation.
STATISTICS = {"delta beta": "Δβ", "delta r": "Δr"}
# The two readings of a contrast: against the pre-trained model, and against the matched control.
READINGS = {"vs base": "fine-tuned minus pre-trained", "vs control": "fine-tuned minus control (difference in differences)"}
# What a member's verdict says, by statistic (codes of cwi.analysis.VERDICTS).
MEMBER_VERDICTS = {
    "delta beta": {"more": "fine-tuned weights it more", "less": "fine-tuned weights it less",
                   "unclear": "no clear difference", "not fitted": "too few words to fit"},
    "delta r": {"more": "fine-tuned follows it more closely", "less": "fine-tuned follows it less closely",
                "unclear": "no clear difference", "not fitted": "too few words to fit"},
}
CLAIM_WORDS = {
    "reproduces": "every comparison it needs lies above 0",
    "contradicts": "every comparison it needs lies below 0",
    "not shown": "some comparison it needs includes 0, was not fitted, or they disagree",
}


def simultaneous(estimates: np.ndarray, draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Bootstrap max-t simultaneous intervals: ``estimate +- c * se``, c the `level` quantile of the centred max-t.

    Parameters
    ----------
    estimates
        (m,) each member's estimate.
    draws
        (B, m) each member's bootstrap replicates, all from the same resampled sentences.
    level
        Joint coverage.

    Returns
    -------
    low, high, critical
        Members without spread (or without an estimate) get NaN bounds.
    """
    estimates = np.asarray(estimates, float)
    se = draws.std(axis=0, ddof=1)
    usable = np.isfinite(estimates) & np.isfinite(se) & (se > 0)
    if not usable.any():
        return np.full_like(estimates, np.nan), np.full_like(estimates, np.nan), np.nan
    largest = (np.abs(draws[:, usable] - estimates[usable]) / se[usable]).max(axis=1)
    critical = float(np.quantile(largest, level))
    low = np.where(usable, estimates - critical * se, np.nan)
    high = np.where(usable, estimates + critical * se, np.nan)
    return low, high, critical


def _keys(pair: str, dataset: str, claim) -> list[tuple]:
    """The fit keys of one pair's claim: every method x quantity, under the claim's adjustment."""
    _, methods, quantities, control = claim
    return [(pair, dataset, method, quantity, control) for method in methods for quantity in quantities]


def _readings(fits: dict, comparison, keys: list[tuple]) -> dict | None:
    """Each reading x statistic of a claim: estimate, draws and the seeds' own contrasts, averaged over `keys`.

    ``None`` when a fit is missing (too few words), or the pair has no pre-trained twin.
    Returns ``{(reading, statistic): (estimate, draws (B,), fine seeds (k_f,), control seeds (k_c,) or None)}``.
    """
    chosen = [fits.get(key) for key in keys]
    pre, fine, control = comparison.sides()
    if pre is None or not chosen or any(fit is None for fit in chosen):
        return None
    found = {}
    for statistic, point, draws in (("delta beta", "beta", "beta_draws"), ("delta r", "r", "r_draws")):
        value = np.mean([getattr(fit, point) for fit in chosen], axis=0)  # (k,) over the claim's fits
        drawn = np.mean([getattr(fit, draws) for fit in chosen], axis=0)  # (B, k)
        base, base_draws = value[0], drawn[:, 0]
        seeds = value[fine] - base
        found[("vs base", statistic)] = (seeds.mean(), drawn[:, fine].mean(1) - base_draws, seeds, None)
        if control is not None:
            found[("vs control", statistic)] = (value[fine].mean() - value[control].mean(),
                                                drawn[:, fine].mean(1) - drawn[:, control].mean(1),
                                                value[fine], value[control])
    return found


def _primary(results: PairFits, pairs=None) -> list[str]:
    """The pairs of the family: `pairs` (default every twinned pair of `results`), in `results`' order."""
    chosen = results.twinned if pairs is None else set(pairs) & results.twinned
    return [pair for pair in results.comparisons if pair in chosen]


def contrasts(results: PairFits, claims, dataset: str = "all", pairs=None) -> tuple[pd.DataFrame, np.ndarray]:
    """Every pair x claim x statistic x reading on one dataset selection, with its bootstrap draws.

    Parameters
    ----------
    results
        :func:`cwi.analysis.pair_table` output.
    claims
        ``(name, methods, quantities, control)``: a claim's contrast is the mean
        over those methods and quantities under that control.
    pairs
        The pairs to include (default: every pair with a pre-trained twin).

    Returns
    -------
    members, draws
        One row per member (``pair``, ``claim``, ``statistic``, ``reading``,
        ``dataset``, ``control``, ``estimate``, ``seeds``, ``control_seeds``,
        ``seed_values``, ``control_values``: the fine-tuned and control seeds'
        own values, whose spread the recipe-level interval adds) and the
        (B, members) replicates.  A member whose fits are missing, or whose
        statistic is undefined (r with covariates), is left out.
    """
    rows, columns = [], []
    for pair in _primary(results, pairs):
        comparison = results.comparisons[pair]
        for claim in claims:
            found = _readings(results.fits, comparison, _keys(pair, dataset, claim)) or {}
            for (reading, statistic), (estimate, draws, seeds, control) in found.items():
                if np.isfinite(estimate):
                    rows.append({"pair": pair, "claim": claim[0], "statistic": statistic, "reading": reading,
                                 "dataset": dataset, "control": claim[3], "estimate": float(estimate),
                                 "seeds": len(comparison.finetuned), "control_seeds": len(comparison.controls),
                                 "seed_values": seeds, "control_values": control})
                    columns.append(draws)
    draws = np.column_stack(columns) if columns else np.zeros((results.bootstrap.n_boot, 0))
    return pd.DataFrame(rows), draws


def seed_contrasts(results: PairFits, claims, level: float, dataset: str = "all") -> pd.DataFrame:
    """Each claim's Δβ seed by seed, for pairs whose fine-tuned side has several seeds.

    Returns one row per pair and claim: ``seeds``, ``seeds_above`` (seeds whose
    own contrast is above 0), ``seed_sd`` (their standard deviation) and the t
    interval across seeds (``t_low``, ``t_high``: :func:`cwi.analysis.t_interval`).
    """
    rows = []
    for pair in _primary(results):
        comparison = results.comparisons[pair]
        if len(comparison.finetuned) < 2:
            continue
        for claim in claims:
            found = _readings(results.fits, comparison, _keys(pair, dataset, claim))
            if found is None:
                continue
            per_seed = found[("vs base", "delta beta")][2]
            low, high = t_interval(per_seed, level)
            rows.append({"pair": pair, "claim": claim[0], "seeds": len(per_seed),
                         "seeds_above": int((per_seed > 0).sum()), "seed_sd": float(per_seed.std(ddof=1)),
                         "t_low": low, "t_high": high})
    return pd.DataFrame(rows, columns=["pair", "claim", "seeds", "seeds_above", "seed_sd", "t_low", "t_high"])


def relabellings(results: PairFits, rng: np.random.Generator, pairs) -> dict[str, np.ndarray]:
    """One random relabelling of each pair's models per cluster: pair -> (clusters, k) column orders.

    A cluster is what the bootstrap resamples as one unit (a sentence, or one
    text two datasets share), so a text is relabelled once wherever it occurs.
    """
    clusters = results.bootstrap.clusters
    return {pair: rng.permuted(np.tile(np.arange(len(results.comparisons[pair].columns)), (clusters, 1)), axis=1)
            for pair in pairs}


def _planted(fit, order: np.ndarray, slopes: np.ndarray, spread: np.ndarray | None):
    """A fit's per-sentence statistics with the models' roles reordered per sentence, then a scenario planted.

    `order` (g, k) gives, for each of the fit's sentences, which model takes each
    column; `slopes` (k,) is added to each column's slope: ``y + b z`` changes
    ``X'y`` by ``b X'z`` and ``y'y`` by ``2 b z'y + b^2 z'z``.  `spread` (k,),
    where given, maps column j's weights ``y -> 1 + s_j (y - 1)``: ``s X'y + (1 - s)
    X'1`` and ``s^2 y'y + 2 s (1 - s) 1'y + (1 - s)^2 n``.
    """
    xty = np.take_along_axis(fit.xty, order[:, None, :], axis=2)
    yy = np.take_along_axis(fit.yy, order, axis=1)
    if spread is not None and np.any(spread != 1.0):
        ones, n, total = fit.xtx[:, :, 0][:, :, None], fit.xtx[:, 0, 0][:, None], xty[:, 0, :].copy()
        xty = spread * xty + (1 - spread) * ones
        yy = spread**2 * yy + 2 * spread * (1 - spread) * total + (1 - spread) ** 2 * n
    if np.any(slopes):
        zy, zz = xty[:, 1, :].copy(), fit.xtx[:, 1, 1][:, None]
        xty = xty + fit.xtx[:, :, 1][:, :, None] * slopes
        yy = yy + 2 * slopes * zy + slopes**2 * zz
    return xty, yy


class _Refit:
    """The estimates of a refitted :class:`cwi.analysis.Fit`, which is all :func:`_readings` reads."""

    def __init__(self, beta, r, beta_draws, r_draws):
        self.beta, self.r, self.beta_draws, self.r_draws = beta, r, beta_draws, r_draws


def _refitted(results: PairFits, keys: list[tuple], orders: dict, slopes: dict | None = None,
              spreads: dict | None = None) -> dict:
    """Every fit of `keys` refitted with its pair's relabelling (and a scenario's slopes or spreads) planted."""
    originals = [results.fits[key] for key in keys]
    cluster = results.bootstrap.cluster
    planted = [_planted(fit, orders[key[0]][cluster[fit.sentences]],
                        (slopes or {}).get(key[0], np.zeros(len(fit.beta))), (spreads or {}).get(key[0]))
               for key, fit in zip(keys, originals)]
    return {key: _Refit(*estimates) for key, estimates in zip(keys, refit_many(originals, planted))}


def _member_values(fits: dict, results: PairFits, claims, labels: list[tuple], dataset: str = "all"):
    """The estimates, standard errors and seeds' values of the members `labels` ((pair, claim, statistic, reading))."""
    cache, estimates, se, seeds, controls = {}, [], [], [], []
    by_name = {claim[0]: claim for claim in claims}
    for pair, claim, statistic, reading in labels:
        if (pair, claim) not in cache:
            cache[(pair, claim)] = _readings(fits, results.comparisons[pair], _keys(pair, dataset, by_name[claim]))
        estimate, draws, seed, control = cache[(pair, claim)][(reading, statistic)]
        estimates.append(estimate)
        se.append(draws.std(ddof=1))
        seeds.append(seed)
        controls.append(control)
    return np.array(estimates), np.array(se), seeds, controls


def _labels(members: pd.DataFrame) -> list[tuple]:
    return list(zip(members["pair"], members["claim"], members["statistic"], members["reading"]))


def _needed(results: PairFits, claims, pairs, datasets=("all",)) -> list[tuple]:
    keys = {key for pair in pairs for dataset in datasets for claim in claims for key in _keys(pair, dataset, claim)}
    return sorted(keys & set(results.fits))


def stream(seed: int, purpose: str) -> np.random.Generator:
    """A random stream of its own for each use of `seed` (the permutations, each scenario's simulations).

    Streams that shared a seed would share their relabellings: a "no effect" simulation would then
    re-count the very permutations that set the critical value, and could not fail.
    """
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def _studentised(estimates: np.ndarray, se: np.ndarray) -> np.ndarray:
    """``|estimate| / se``, NaN where the standard error is not a positive number (no spread: nothing to test)."""
    usable = np.isfinite(estimates) & np.isfinite(se) & (se > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(usable, np.abs(estimates) / se, np.nan)


def permutation_maxima(results: PairFits, claims, members: pd.DataFrame, permutations: int, seed: int) -> np.ndarray:
    """``max_m |d*_m| / se*_m`` over the family `members` on each of `permutations` relabelled data sets.

    Each permutation relabels every pair's models per cluster (:func:`relabellings`)
    and refits every member, its standard error from the same bootstrap draws.
    A member without spread in a permutation is left out of that maximum.
    """
    rng = stream(seed, "permutations")
    pairs = list(dict.fromkeys(members["pair"]))
    keys, labels = _needed(results, claims, pairs), _labels(members)
    maxima = np.empty(permutations)
    for p in range(permutations):
        fits = _refitted(results, keys, relabellings(results, rng, pairs))
        estimates, se, _, _ = _member_values(fits, results, claims, labels)
        t = _studentised(estimates, se)
        maxima[p] = np.nanmax(t) if np.isfinite(t).any() else 0.0
    return maxima


def permutation_critical(maxima: np.ndarray, level: float) -> float:
    """The max-T critical value of `maxima` (P permutations): a member is called when its T exceeds it.

    The observed labelling counts as one of the P + 1 (Westfall and Young's
    adjusted p-value ``(1 + #{max* >= T}) / (P + 1)``): calling ``T > c`` with c
    the ``P - j``-th smallest maximum, ``j = floor((1 - level)(P + 1)) - 1``, is
    calling ``p <= 1 - level``, so under exchangeability the chance that the
    observed maximum is called is ``(j + 1) / (P + 1) <= 1 - level``.
    Infinite (nothing can be called) when P is too small for `level`.
    """
    maxima = np.sort(np.asarray(maxima, float))
    j = int(np.floor((1 - level) * (len(maxima) + 1) + 1e-9)) - 1
    return float(maxima[len(maxima) - 1 - j]) if j >= 0 else float("inf")


def _recipe(members: pd.DataFrame, se: np.ndarray, level: float, seed_values, control_values, floor: float = 0.0):
    """The recipe-level standard errors, degrees of freedom and Bonferroni t critical values of the members.

    A member whose fine-tuned side has one model (or a DiD whose control has one) gets NaN: its seeds'
    spread cannot be measured.  A critical value is never below `floor` (the models-level one), so
    that a call for the recipe is always a call for these models too.
    """
    between = np.full(len(se), np.nan)
    terms = np.full(len(se), np.nan)
    for i, (seeds, control) in enumerate(zip(seed_values, control_values)):
        if len(seeds) < 2 or (control is not None and len(control) < 2):
            continue
        if control is not None and len(control) == len(seeds):
            # Seed i's SimCSE run and its control share their batches: paired, one spread of the differences.
            parts, dfs = [np.var(np.asarray(seeds) - np.asarray(control), ddof=1) / len(seeds)], [len(seeds) - 1]
        else:
            parts = [np.var(seeds, ddof=1) / len(seeds)] + ([np.var(control, ddof=1) / len(control)]
                                                            if control is not None else [])
            dfs = [len(seeds) - 1] + ([len(control) - 1] if control is not None else [])
        between[i] = sum(parts)
        terms[i] = sum(part**2 / df for part, df in zip(parts, dfs))
    total = np.sqrt(se**2 + between)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where(terms > 0, total**4 / terms, np.inf)  # the bootstrap part counted as known
    counted = int(np.isfinite(between).sum())
    critical = np.maximum(scistats.t.ppf(1 - (1 - level) / (2 * max(counted, 1)), df), floor)
    return total, df, np.where(np.isfinite(between), critical, np.nan)


def decide(members: pd.DataFrame, draws: np.ndarray, maxima: np.ndarray, level: float) -> pd.DataFrame:
    """The family's verdicts by the permutation max-T rule, with both populations' intervals.

    Parameters
    ----------
    members, draws
        :func:`contrasts`.
    maxima
        :func:`permutation_maxima` of the same members.
    level
        1 - the family-wise error rate.

    Returns
    -------
    pandas.DataFrame
        `members` with ``se``, ``t`` (``|estimate| / se``), ``critical`` (c,
        the larger of ``permutation_critical`` and ``bootstrap_critical``: the
        test stays exact under exchangeable models, and the band keeps the
        bootstrap's simultaneous coverage where the models differ otherwise),
        ``p_permutation`` (the max-T permutation's adjusted p-value alone: a member
        can have it at most 1 - level and still be "unclear" when the bootstrap's
        critical value is the larger), ``low``/``high`` (``estimate +- c se``:
        these trained models), ``verdict`` (codes of :data:`cwi.analysis.VERDICTS`),
        and the recipe-level ``recipe_se``, ``recipe_df``, ``recipe_critical``,
        ``recipe_low``/``recipe_high`` and ``recipe_verdict`` (NaN and
        ``"unclear"`` where the seeds' spread cannot be measured).  A member
        without spread (no positive standard error) gets NaN and ``"unclear"``.
    """
    table = members.copy()
    if not len(table):  # every column of a decided family, so that a reader's code needs no special case
        return table.assign(**{column: [] for column in (
            "se", "t", "critical", "permutation_critical", "bootstrap_critical", "p_permutation", "low", "high",
            "verdict", "recipe_se", "recipe_df", "recipe_critical", "recipe_low", "recipe_high", "recipe_verdict")})
    se = draws.std(axis=0, ddof=1)
    t = _studentised(table["estimate"].to_numpy(), se)
    permuted = permutation_critical(maxima, level)
    _, _, bootstrapped = simultaneous(table["estimate"].to_numpy(), draws, level)
    critical = max(permuted, bootstrapped) if np.isfinite(bootstrapped) else permuted
    table["se"], table["t"], table["critical"] = se, t, critical
    table["permutation_critical"], table["bootstrap_critical"] = permuted, bootstrapped
    table["p_permutation"] = [(1 + (maxima >= value).sum()) / (len(maxima) + 1) if np.isfinite(value) else np.nan
                           for value in t]
    usable = np.isfinite(t)
    table["low"] = np.where(usable, table["estimate"] - critical * se, np.nan)
    table["high"] = np.where(usable, table["estimate"] + critical * se, np.nan)
    table["verdict"] = [verdict(lo, hi) if np.isfinite(lo) else "unclear" for lo, hi in zip(table["low"], table["high"])]
    total, df, recipe_critical = _recipe(table, se, level, table["seed_values"], table["control_values"], critical)
    table["recipe_se"], table["recipe_df"], table["recipe_critical"] = total, df, recipe_critical
    table["recipe_low"] = table["estimate"] - recipe_critical * total
    table["recipe_high"] = table["estimate"] + recipe_critical * total
    table["recipe_verdict"] = [verdict(lo, hi) if np.isfinite(lo) else "unclear"
                               for lo, hi in zip(table["recipe_low"], table["recipe_high"])]
    return table


def family(members: pd.DataFrame, draws: np.ndarray, level: float, adjusted: bool = True) -> pd.DataFrame:
    """Bootstrap intervals and verdicts of a family of members (:func:`contrasts`): exploratory readings.

    `adjusted`: bootstrap max-t simultaneous intervals at joint coverage `level`
    (:func:`simultaneous`; ``critical`` holds c); otherwise each member's own
    percentile interval.
    """
    table = members.copy()
    if not len(table):
        return table.assign(low=[], high=[], verdict=[], critical=[])
    if adjusted:
        table["low"], table["high"], table["critical"] = simultaneous(table["estimate"].to_numpy(), draws, level)
    else:
        bounds = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        table["low"], table["high"], table["critical"] = bounds[0], bounds[1], np.nan
    table["verdict"] = [verdict(lo, hi) if np.isfinite(lo) else "unclear" for lo, hi in zip(table["low"], table["high"])]
    return table


def per_dataset(results: PairFits, claims, claim: str, datasets, level: float, pairs=None) -> pd.DataFrame:
    """The claim "on each dataset": `claim`'s Δβ (vs base) on each dataset alone, for every pair of the family.

    A pair's claim needs every dataset above 0, an intersection-union test, so
    its datasets need no adjustment among themselves; the pairs are adjusted
    by Bonferroni, each interval at coverage ``1 - (1 - level) / pairs``
    (a one-member bootstrap max-t interval).  Every dataset of `datasets` has a
    row: one without a fit is ``"not fitted"``, which no claim passes.
    """
    chosen = [c for c in claims if c[0] == claim]
    if not chosen:
        raise ValueError(f"no claim named {claim!r}: the claims are {[c[0] for c in claims]}")
    pairs = _primary(results, pairs)
    each = 1 - (1 - level) / max(len(pairs), 1)
    rows = []
    for pair in pairs:
        for dataset in datasets:
            found = _readings(results.fits, results.comparisons[pair], _keys(pair, dataset, chosen[0]))
            row = {"pair": pair, "claim": claim, "dataset": dataset, "level": each}
            if found is None:
                rows.append(row | {"estimate": np.nan, "low": np.nan, "high": np.nan, "verdict": "not fitted"})
                continue
            estimate, draws, _, _ = found[("vs base", "delta beta")]
            low, high, _ = simultaneous(np.array([estimate]), draws[:, None], each)
            rows.append(row | {"estimate": float(estimate), "low": float(low[0]), "high": float(high[0]),
                               "verdict": verdict(low[0], high[0]) if np.isfinite(low[0]) else "unclear"})
    return pd.DataFrame(rows, columns=["pair", "claim", "dataset", "level", "estimate", "low", "high", "verdict"])


def method_claims(claims) -> list[str]:
    """The claims the both-methods reading needs: one method each, on the first claim's quantities and control."""
    quantities, control = set(claims[0][2]), claims[0][3]
    return [name for name, methods, chosen, adjusted in claims
            if len(methods) == 1 and set(chosen) == quantities and adjusted == control]


def claim_word(verdicts) -> str:
    """A claim that needs every comparison in `verdicts` (codes of :data:`cwi.analysis.VERDICTS`): a key of :data:`CLAIM_WORDS`."""
    verdicts = list(verdicts)
    if verdicts and all(v == "more" for v in verdicts):
        return "reproduces"
    if verdicts and all(v == "less" for v in verdicts):
        return "contradicts"
    return "not shown"


@dataclass(frozen=True)
class Scenario:
    """What a simulation plants on data whose models were relabelled within sentences.

    Attributes
    ----------
    name
        How the chapter's table calls it.
    slope
        Pair -> slope added to every fine-tuned seed (normalised weight per SD of
        the quantity; not to the controls): a real effect of the contrastive
        objective, for the power.
    seed_spread
        Pair -> standard deviation of a random slope drawn for each fine-tuned
        and control seed (mean 0): seeds that wander around no effect.
    spread
        Every fine-tuned weight w becomes ``1 + spread (w - 1)``: a change of
        slope that leaves the correlation alone.
    """

    name: str
    slope: dict = field(default_factory=dict)
    seed_spread: dict = field(default_factory=dict)
    spread: float = 1.0


def _scenario_columns(results: PairFits, pair: str, scenario: Scenario, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """The slopes (k,) and spreads (k,) a scenario plants on one pair's columns."""
    comparison = results.comparisons[pair]
    _, fine, control = comparison.sides()
    k = len(comparison.columns)
    slopes, spread = np.zeros(k), None
    slopes[fine] += scenario.slope.get(pair, 0.0)
    wander = scenario.seed_spread.get(pair, 0.0)
    if wander:
        slopes[fine] += rng.normal(0, wander, fine.stop - fine.start)
        if control is not None:
            slopes[control] += rng.normal(0, wander, control.stop - control.start)
    if scenario.spread != 1.0:
        spread = np.ones(k)
        spread[fine] = scenario.spread
    return slopes, spread


def _called(low, high) -> np.ndarray:
    return (np.asarray(low) > 0) | (np.asarray(high) < 0)


def error_rates(results: PairFits, claims, members: pd.DataFrame, draws: np.ndarray, critical: float, level: float,
                simulations: int, seed: int, scenario: Scenario | None = None, datasets=()) -> pd.DataFrame:
    """How often the rule calls a member (and a claim) where it should not, or should.

    Scenarios:

    * ``None`` or one named "no effect": the sharp null.  Each simulation draws a
      fresh relabelling of every pair's models (:func:`relabellings`), refits
      the family and applies the rule with `critical` (from other
      relabellings): the rate is nominal by construction, and the simulation
      measures the Monte Carlo error of c.  With `datasets`, the per-dataset
      claim's rate too.
    * "effect removed": every member's estimated effect subtracted, the models
      otherwise as they are, in the bootstrap's world: each sentence resample's
      draws centred on the estimates, judged by ``|d* - d| / se > critical``
      with the observed standard errors (no refitting: `simulations` is
      ignored, each of the B resamples counts once).  The resamples come from
      one sample, so the rate's interval covers the resampling only; the rate
      is below 1 - level whenever `critical` is at least the bootstrap's own
      max-t value.
    * anything else: planted on freshly relabelled data (:class:`Scenario`).

    Returns
    -------
    pandas.DataFrame
        One row per outcome: ``said`` (simulations in which it happened),
        ``simulations``, ``rate``, ``scenario``.  Outcomes: ``"any member"``,
        ``"any delta beta"``, ``"any delta r"``, per pair and claim
        ``"PAIR: CLAIM reproduces"``, ``"... contradicts"``, ``"... is contrastive"``
        (its DiD Δβ above 0), the recipe-level ``"... reproduces for the recipe"``
        and ``"any member, recipe level"``; with `datasets` ``"PAIR: each dataset
        reproduces"`` and ``"any dataset"``.
    """
    scenario = scenario or Scenario("no effect")
    labels = _labels(members)
    se = draws.std(axis=0, ddof=1)
    counts: dict[str, int] = {}

    def said(outcome: str, happened: bool) -> None:
        counts[outcome] = counts.get(outcome, 0) + bool(happened)

    def judge(estimates, member_se, seeds, controls, dataset_verdicts=None):
        low, high = estimates - critical * member_se, estimates + critical * member_se
        called = _called(low, high)
        verdicts = {label: verdict(lo, hi) if np.isfinite(lo) else "unclear"
                    for label, lo, hi in zip(labels, low, high)}
        said("any member", called.any())
        for statistic in STATISTICS:
            said(f"any {statistic}", any(c for (_, _, s, _), c in zip(labels, called) if s == statistic))
        for pair, claim, statistic, reading in labels:
            if statistic != "delta beta":
                continue
            code = verdicts[(pair, claim, statistic, reading)]
            if reading == "vs base":
                said(f"{pair}: {claim} reproduces", code == "more")
                said(f"{pair}: {claim} contradicts", code == "less")
            else:
                said(f"{pair}: {claim} is contrastive", code == "more")
        if seeds is not None:
            total, _, recipe_critical = _recipe(members, member_se, level, seeds, controls, critical)
            recipe_called = _called(estimates - recipe_critical * total, estimates + recipe_critical * total)
            said("any member, recipe level", recipe_called.any())
            for (pair, claim, statistic, reading), c, lo in zip(labels, recipe_called, estimates - recipe_critical * total):
                if statistic == "delta beta" and reading == "vs base":
                    said(f"{pair}: {claim} reproduces for the recipe", bool(c and lo > 0))
        if dataset_verdicts:
            said("any dataset", any(v in ("more", "less") for vs in dataset_verdicts.values() for v in vs))
            for pair, vs in dataset_verdicts.items():
                said(f"{pair}: each dataset reproduces", claim_word(vs) == "reproduces")

    if scenario.name == "effect removed":
        for row in draws - members["estimate"].to_numpy():  # each replicate: a data set whose members' truth is 0
            judge(row, se, None, None)
        simulations = len(draws)
    else:
        rng = stream(seed, scenario.name)
        pairs = list(dict.fromkeys(members["pair"]))
        dataset_claim = claims[0]
        keys = _needed(results, claims, pairs, ("all", *datasets))
        each = 1 - (1 - level) / max(len(pairs), 1)
        for _ in range(simulations):
            orders = relabellings(results, rng, pairs)
            planted = {pair: _scenario_columns(results, pair, scenario, rng) for pair in pairs}
            fits = _refitted(results, keys, orders, {p: v[0] for p, v in planted.items()},
                             {p: v[1] for p, v in planted.items()})
            estimates, member_se, seeds, controls = _member_values(fits, results, claims, labels)
            by_pair = {}
            for pair in pairs if datasets else ():
                for dataset in datasets:
                    found = _readings(fits, results.comparisons[pair], _keys(pair, dataset, dataset_claim))
                    if found is None:
                        by_pair.setdefault(pair, []).append("not fitted")
                        continue
                    estimate, column, _, _ = found[("vs base", "delta beta")]
                    lo, hi, _ = simultaneous(np.array([estimate]), column[:, None], each)
                    by_pair.setdefault(pair, []).append(verdict(lo[0], hi[0]) if np.isfinite(lo[0]) else "unclear")
            judge(estimates, member_se, seeds, controls, by_pair)
    table = pd.DataFrame({"outcome": list(counts), "said": list(counts.values())})
    return table.assign(simulations=simulations, rate=table["said"] / simulations, scenario=scenario.name)


# What a rule's measured false-positive rate says of its verdicts (:func:`calibration_status`).
RATE_WORDS = {
    "consistent": "consistent with the nominal rate: its exact interval holds it",
    "above": "above the nominal rate: nominal not demonstrated, the verdicts read as descriptions",
    "below": "below the nominal rate: the rule is conservative",
}


def calibration_status(said: int, simulations: int, level: float) -> tuple[str, float, float]:
    """What a measured false-positive rate says (a key of :data:`RATE_WORDS`), with its exact interval.

    The rate's exact (Clopper-Pearson) `level` interval decides: ``"above"`` when
    its lower end lies above the nominal rate ``1 - level``, ``"below"`` when its
    upper end lies below it, ``"consistent"`` otherwise, however wide: the
    interval itself is always reported beside the word.  Only ``"above"``
    withholds the verdicts.
    """
    if not 0 <= said <= simulations or simulations < 1:
        raise ValueError(f"need 0 <= said <= simulations and simulations >= 1, got {said} of {simulations}")
    interval = scistats.binomtest(int(said), int(simulations)).proportion_ci(level, method="exact")
    nominal = 1 - level
    if interval.low > nominal:
        return "above", interval.low, interval.high
    if interval.high < nominal:
        return "below", interval.low, interval.high
    return "consistent", interval.low, interval.high
