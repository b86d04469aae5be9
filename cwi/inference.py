"""Verdicts with a known error rate: a family of comparisons adjusted together, claims read from it, calibration.

The Correlations chapter names its claims before it looks at the data (the
profile's ``analysis.claims``): each is a *contrast*, the mean difference
(fine-tuned minus pre-trained) over a set of methods and quantities, on all
datasets pooled without covariates.  Every pair x claim x statistic (delta
beta, the change of slope; delta r, the change of correlation) is one member of
the *primary family*.  The family is adjusted as one (:func:`simultaneous`):

* **a centred sup-t bootstrap band** (Romano and Wolf's single-step max-t;
  Montiel Olea and Plagborg-Moller 2019): with ``t*_m = |d*_m - d_m| / se_m``
  on every replicate, the critical value c is the `level` quantile of
  ``max_m t*_m``, and member m's interval is ``d_m +- c se_m``.  All members
  come from the same bootstrap draws, so c exploits how strongly they depend on
  each other (IG and SHAP, the four quantities and the two statistics of one
  pair are measured on the same words) and sits well below Bonferroni's when
  members move together, while the family-wise error stays at ``1 - level``.
  Holm's step-down is valid under any dependence too but does not exploit it,
  and a step-down max-t would decide a little more often; neither gives
  intervals that agree with its decisions, which the chapter prints.
  Benjamini-Yekutieli controls the false discovery rate, not the family-wise one.

A claim about several comparisons at once (both methods; each dataset) holds
only when every one of them does (an intersection-union test, which needs no
adjustment across the comparisons of one claim): :func:`claim_word`.  The
per-dataset claim is a second family (:func:`per_dataset`), adjusted across
pairs only.

The book's fine-tuned side is the mean over its training seeds, and its
intervals resample sentences with the trained models held fixed: a verdict is
about these models.  Whether a new seed would agree is what the t interval
across seeds says (:func:`seed_contrasts`).

:func:`null_calibration` runs the rule on the book's own data with the models
of each pair exchanged at random within every sentence (all seeds and the
pre-trained model are exchangeable when fine-tuning changed nothing), and
with something planted on top (:class:`Scenario`): a slope (power), a pure
spread of the weights, or seeds that wander around no effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scipy import stats as scistats

from .analysis import PairFits, refit_many, t_interval, verdict

__all__ = ["STATISTICS", "MEMBER_VERDICTS", "CLAIM_WORDS", "simultaneous", "contrasts", "seed_contrasts", "family",
           "per_dataset", "method_claims", "claim_word", "Scenario", "null_calibration",
           "CALIBRATION_WORDS", "calibration_status"]

# The two statistics of a contrast: the change of slope and the change of correlation.
STATISTICS = {"delta beta": "Δβ", "delta r": "Δr"}
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
    """Max-t simultaneous intervals of a family: ``estimate +- c * se``, one critical value c for all.

    Parameters
    ----------
    estimates
        (m,) each member's estimate.
    draws
        (B, m) each member's bootstrap replicates, all from the same resampled sentences.
    level
        Joint coverage: the probability that every interval covers its member.

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


def _settings(pair: str, dataset: str, control: str, methods, quantities) -> list[tuple]:
    """The fit keys of one pair's contrast: every method x quantity of a claim."""
    return [(pair, dataset, method, quantity, control) for method in methods for quantity in quantities]


def _contrast(fits: dict, keys: list[tuple]):
    """Delta beta and delta r averaged over the fits `keys` (fine-tuned mean minus pre-trained), with their draws.

    ``None`` when one of the fits is missing (too few words to fit it).
    """
    chosen = [fits.get(key) for key in keys]
    if not chosen or any(fit is None for fit in chosen):
        return None
    beta = np.mean([fit.beta[1:].mean() - fit.beta[0] for fit in chosen])
    beta_draws = np.mean([fit.beta_draws[:, 1:].mean(1) - fit.beta_draws[:, 0] for fit in chosen], axis=0)
    r = np.mean([fit.r[1:].mean() - fit.r[0] for fit in chosen])
    r_draws = np.mean([fit.r_draws[:, 1:].mean(1) - fit.r_draws[:, 0] for fit in chosen], axis=0)
    return {"delta beta": (beta, beta_draws), "delta r": (r, r_draws)}


def _twinned(results: PairFits) -> list[str]:
    return [pair for pair in results.replicates if pair in results.twinned]


def contrasts(results: PairFits, claims, dataset: str = "all", control: str = "none",
              statistics=tuple(STATISTICS)) -> tuple[pd.DataFrame, np.ndarray]:
    """Every pair x claim x statistic on one dataset selection and control, with its bootstrap draws.

    Parameters
    ----------
    results
        :func:`cwi.analysis.pair_table` output; pairs without a pre-trained twin are left out.
    claims
        ``(name, methods, quantities)`` triples: a claim's contrast is the mean
        difference over those methods and quantities.

    Returns
    -------
    members, draws
        One row per member (``pair``, ``claim``, ``statistic``, ``dataset``,
        ``control``, ``estimate``, ``seeds``) and the (B, members) replicates.
        A member whose fits are missing, or whose statistic is undefined (r with
        covariates), is left out.
    """
    rows, columns = [], []
    for pair in _twinned(results):
        for name, methods, quantities in claims:
            found = _contrast(results.fits, _settings(pair, dataset, control, methods, quantities))
            for statistic in statistics if found else ():
                estimate, draws = found[statistic]
                if np.isfinite(estimate):
                    rows.append({"pair": pair, "claim": name, "statistic": statistic, "dataset": dataset,
                                 "control": control, "estimate": float(estimate),
                                 "seeds": len(results.replicates[pair])})
                    columns.append(draws)
    draws = np.column_stack(columns) if columns else np.zeros((0, 0))
    return pd.DataFrame(rows), draws


def seed_contrasts(results: PairFits, claims, level: float, dataset: str = "all",
                   control: str = "none") -> pd.DataFrame:
    """Each claim's delta beta seed by seed, for pairs whose fine-tuned side has several seeds.

    Returns one row per pair and claim: ``seeds``, ``seeds_above`` (seeds whose
    own contrast is above 0), ``seed_sd`` (their standard deviation) and the t
    interval across seeds (``t_low``, ``t_high``: :func:`cwi.analysis.t_interval`),
    which treats the seeds as draws of the recipe.
    """
    rows = []
    for pair in [p for p in _twinned(results) if len(results.replicates[p]) > 1]:
        for name, methods, quantities in claims:
            fits = [results.fits.get(key) for key in _settings(pair, dataset, control, methods, quantities)]
            if any(fit is None for fit in fits):
                continue
            per_seed = np.mean([fit.beta[1:] - fit.beta[0] for fit in fits], axis=0)
            low, high = t_interval(per_seed, level)
            rows.append({"pair": pair, "claim": name, "seeds": len(per_seed),
                         "seeds_above": int((per_seed > 0).sum()), "seed_sd": float(per_seed.std(ddof=1)),
                         "t_low": low, "t_high": high})
    return pd.DataFrame(rows, columns=["pair", "claim", "seeds", "seeds_above", "seed_sd", "t_low", "t_high"])


def family(members: pd.DataFrame, draws: np.ndarray, level: float, adjusted: bool = True) -> pd.DataFrame:
    """Intervals and verdicts of a family of members (:func:`contrasts`).

    `adjusted`: max-t simultaneous intervals at joint coverage `level`
    (:func:`simultaneous`; ``critical`` holds c); otherwise each member's own
    percentile interval (exploratory).
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


def per_dataset(results: PairFits, claims, claim: str, datasets, level: float) -> pd.DataFrame:
    """The claim "on each dataset": `claim`'s delta beta on each dataset alone, for every twinned pair.

    A pair's claim needs every dataset above 0, an intersection-union test, so
    its datasets need no adjustment among themselves; the pairs are adjusted
    by Bonferroni, each interval at coverage ``1 - (1 - level) / pairs``
    (a one-member max-t interval, as :func:`simultaneous` gives).  Every dataset
    of `datasets` has a row: one without a fit is ``"not fitted"``, which no
    claim passes.
    """
    chosen = [c for c in claims if c[0] == claim]
    if not chosen:
        raise ValueError(f"no claim named {claim!r}: the claims are {[c[0] for c in claims]}")
    _, methods, quantities = chosen[0]
    pairs = _twinned(results)
    each = 1 - (1 - level) / max(len(pairs), 1)
    rows = []
    for pair in pairs:
        for dataset in datasets:
            found = _contrast(results.fits, _settings(pair, dataset, "none", methods, quantities))
            row = {"pair": pair, "claim": claim, "dataset": dataset, "level": each}
            if found is None:
                rows.append(row | {"estimate": np.nan, "low": np.nan, "high": np.nan, "verdict": "not fitted"})
                continue
            estimate, draws = found["delta beta"]
            low, high, _ = simultaneous(np.array([estimate]), draws[:, None], each)
            rows.append(row | {"estimate": float(estimate), "low": float(low[0]), "high": float(high[0]),
                               "verdict": verdict(low[0], high[0]) if np.isfinite(low[0]) else "unclear"})
    return pd.DataFrame(rows, columns=["pair", "claim", "dataset", "level", "estimate", "low", "high", "verdict"])


def method_claims(claims) -> list[str]:
    """The claims the both-methods reading needs: one method each, on the first claim's quantities."""
    quantities = set(claims[0][2])
    return [name for name, methods, chosen in claims if len(methods) == 1 and set(chosen) == quantities]


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
    """What a calibration simulation plants on data whose models were exchanged within sentences.

    Attributes
    ----------
    name
        How the chapter's table calls it.
    slope
        Pair -> slope added to every fine-tuned seed (normalised weight per SD of
        the quantity): a real effect, for the power.
    seed_spread
        Pair -> standard deviation of a random slope drawn for each fine-tuned
        seed (mean 0): seeds that wander around no effect.
    spread
        Every fine-tuned weight w becomes ``1 + spread (w - 1)``: a change of
        slope that leaves the correlation alone.
    """

    name: str
    slope: dict = field(default_factory=dict)
    seed_spread: dict = field(default_factory=dict)
    spread: float = 1.0


def _planted(fit, order: np.ndarray, slopes: np.ndarray, spread: float):
    """A fit's per-sentence statistics with the models' roles reordered per sentence, then the scenario planted.

    `order` (g, k) gives, for each of the fit's sentences, which model takes each
    role (column 0 the pre-trained one); `slopes` (k - 1,) is added to each
    fine-tuned column's slope: ``y + b z`` changes ``X'y`` by ``b X'z`` and
    ``y'y`` by ``2 b z'y + b^2 z'z``; a spread ``y -> 1 + s (y - 1)`` gives
    ``s X'y + (1 - s) X'1`` and ``s^2 y'y + 2 s (1 - s) 1'y + (1 - s)^2 n``.
    """
    xty = np.take_along_axis(fit.xty, order[:, None, :], axis=2)
    yy = np.take_along_axis(fit.yy, order, axis=1)
    if spread != 1.0:
        ones, n, total = fit.xtx[:, :, 0][:, :, None], fit.xtx[:, 0, 0][:, None], xty[:, 0, 1:].copy()
        xty[:, :, 1:] = spread * xty[:, :, 1:] + (1 - spread) * ones
        yy[:, 1:] = spread**2 * yy[:, 1:] + 2 * spread * (1 - spread) * total + (1 - spread) ** 2 * n
    if np.any(slopes):
        zy, zz = xty[:, 1, 1:].copy(), fit.xtx[:, 1, 1][:, None]
        xty[:, :, 1:] += fit.xtx[:, :, 1][:, :, None] * slopes
        yy[:, 1:] += 2 * slopes * zy + slopes**2 * zz
    return xty, yy


def null_calibration(results: PairFits, claims, level: float, n_simulations: int, seed: int,
                     scenario: Scenario | None = None, datasets=()) -> pd.DataFrame:
    """How often the rule speaks when the models of each pair are exchanged within sentences, plus `scenario`.

    Each simulation draws, for every sentence, a random order of the pair's
    models (shared by all methods and quantities, so their dependence is kept),
    plants the `scenario`, refits every member on the same bootstrap draws and
    applies the rule: the primary family (:func:`contrasts`, :func:`family`),
    the claims read from it (:func:`claim_word`), and with `datasets` the
    per-dataset claim (:func:`per_dataset`, on the first claim).

    Returns
    -------
    pandas.DataFrame
        One row per outcome with ``said`` (simulations in which it happened),
        ``simulations`` and ``rate``: ``"any member"`` (the family-wise error:
        some interval of the family off 0), ``"any delta beta"``, ``"any delta r"``,
        and per pair ``"PAIR: CLAIM reproduces"``, ``"... contradicts"``,
        ``"PAIR: both methods reproduces"``, with `datasets` ``"PAIR: each dataset
        reproduces"`` and ``"any dataset"``.
    """
    scenario = scenario or Scenario("no effect")
    rng = np.random.default_rng(seed)
    n_sentences = results.bootstrap.counts.shape[1]
    pairs = _twinned(results)
    names = [c[0] for c in claims]
    both = method_claims(claims)
    members = [(pair, name, _settings(pair, "all", "none", methods, quantities))
               for pair in pairs for name, methods, quantities in claims]
    dataset_members = [(pair, _settings(pair, d, "none", claims[0][1], claims[0][2])) for pair in pairs for d in datasets]
    needed = {key for _, _, keys in members for key in keys} | {key for _, keys in dataset_members for key in keys}
    needed &= set(results.fits)
    each = 1 - (1 - level) / max(len(pairs), 1)
    counts: dict[str, int] = {}

    def said(outcome: str, happened: bool) -> None:
        counts[outcome] = counts.get(outcome, 0) + bool(happened)

    for _ in range(n_simulations):
        orders, slopes = {}, {}
        for pair in pairs:
            k = len(results.replicates[pair]) + 1
            orders[pair] = rng.permuted(np.tile(np.arange(k), (n_sentences, 1)), axis=1)
            wander = scenario.seed_spread.get(pair, 0.0)
            slopes[pair] = scenario.slope.get(pair, 0.0) + (rng.normal(0, wander, k - 1) if wander else np.zeros(k - 1))
        keys = sorted(needed)
        originals = [results.fits[key] for key in keys]
        planted = [_planted(fit, orders[key[0]][fit.sentences], slopes[key[0]], scenario.spread)
                   for key, fit in zip(keys, originals)]
        fits = {key: _Refit(*estimates) for key, estimates in zip(keys, refit_many(originals, planted))}
        estimates, draws, labels = [], [], []
        for pair, name, keys in members:
            found = _contrast(fits, keys)
            for statistic in STATISTICS if found else ():
                estimate, column = found[statistic]
                if np.isfinite(estimate):
                    estimates.append(estimate), draws.append(column), labels.append((pair, name, statistic))
        low, high, _ = simultaneous(np.array(estimates), np.column_stack(draws), level)
        verdicts = {label: verdict(lo, hi) if np.isfinite(lo) else "unclear" for label, lo, hi in zip(labels, low, high)}
        said("any member", any(v != "unclear" for v in verdicts.values()))
        for statistic in STATISTICS:
            said(f"any {statistic}", any(v != "unclear" for (_, _, s), v in verdicts.items() if s == statistic))
        for pair in pairs:
            for name in names:
                word = claim_word([verdicts.get((pair, name, "delta beta"), "not fitted")])
                said(f"{pair}: {name} reproduces", word == "reproduces")
                said(f"{pair}: {name} contradicts", word == "contradicts")
            if both:
                said(f"{pair}: both methods reproduces",
                     claim_word([verdicts.get((pair, name, "delta beta"), "not fitted") for name in both]) == "reproduces")
        if dataset_members:
            by_pair: dict[str, list[str]] = {}
            for pair, keys in dataset_members:
                found = _contrast(fits, keys)
                if found is None:
                    by_pair.setdefault(pair, []).append("not fitted")
                    continue
                estimate, column = found["delta beta"]
                lo, hi, _ = simultaneous(np.array([estimate]), column[:, None], each)
                by_pair.setdefault(pair, []).append(verdict(lo[0], hi[0]) if np.isfinite(lo[0]) else "unclear")
            said("any dataset", any(v in ("more", "less") for vs in by_pair.values() for v in vs))
            for pair, vs in by_pair.items():
                said(f"{pair}: each dataset reproduces", claim_word(vs) == "reproduces")
    table = pd.DataFrame({"outcome": list(counts), "said": list(counts.values())})
    return table.assign(simulations=n_simulations, rate=table["said"] / n_simulations, scenario=scenario.name)


# What the rule's measured false-positive rate says of its verdicts (:func:`calibration_status`).
CALIBRATION_WORDS = {
    "calibrated": "calibrated: the rate is shown to be at most the tolerance and not shown above the nominal rate",
    "over": "over the nominal rate: the rate is shown to exceed it",
    "undetermined": "not shown calibrated: too few simulations to bound the rate by the tolerance",
}


def calibration_status(said: int, simulations: int, level: float, tolerance: float) -> tuple[str, float, float]:
    """Whether simulations show the rule's family-wise error within `tolerance` (a key of :data:`CALIBRATION_WORDS`).

    The rate's exact (Clopper-Pearson) `level` interval decides: "over" when its
    lower end lies above the nominal rate ``1 - level`` (shown to exceed it,
    however close), else "calibrated" when its upper end is at most
    `tolerance`, else "undetermined".  Calibration must be shown, not merely not
    refuted: a handful of simulations never passes.  Returns the status and the
    interval's ends.
    """
    if not 0 <= said <= simulations or simulations < 1:
        raise ValueError(f"need 0 <= said <= simulations and simulations >= 1, got {said} of {simulations}")
    interval = scistats.binomtest(int(said), int(simulations)).proportion_ci(level, method="exact")
    if interval.low > 1 - level:
        return "over", interval.low, interval.high
    return ("calibrated" if interval.high <= tolerance else "undetermined"), interval.low, interval.high


class _Refit:
    """The estimates of a refitted :class:`cwi.analysis.Fit`, which is all :func:`_contrast` reads."""

    def __init__(self, beta, r, beta_draws, r_draws):
        self.beta, self.r, self.beta_draws, self.r_draws = beta, r, beta_draws, r_draws
