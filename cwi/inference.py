"""Verdicts with a known error rate: a family of comparisons adjusted together, claims read from it, calibration.

The Correlations chapter names its claims before it looks at the data (the
profile's ``analysis.claims``): each is a *contrast*, the mean difference
(fine-tuned minus pre-trained) over a set of methods and quantities, on all
datasets pooled without covariates.  Every pair x claim x statistic (delta
beta, the change of slope; delta r, the change of correlation) is one member of
the *primary family*.  The family is adjusted as one (:func:`simultaneous`):

* **max-t simultaneous intervals** (Westfall and Young's single-step max-T on
  the sentence bootstrap): with ``t*_m = |d*_m - d_m| / se_m`` on every
  replicate, the critical value c is the `level` quantile of ``max_m t*_m``, and
  member m's interval is ``d_m +- c se_m``.  All members come from the same
  bootstrap draws, so c knows how strongly they depend on each other (IG and
  SHAP, the four quantities and the two statistics of one pair are measured on
  the same words): the family-wise error stays at ``1 - level``, and c is far
  below Bonferroni's when members move together.  Holm's step-down on
  bootstrap p-values would decide as strictly, but it gives no interval that
  agrees with its decisions, and it ignores that dependence.

A claim about several comparisons at once (both methods; each dataset) holds
only when every one of them does (an intersection-union test, which needs no
further adjustment): :func:`claim_word`.

:func:`null_calibration` runs the whole rule on the book's own data with the
effect removed, by exchanging the models of each pair at random within every
sentence (all seeds and the pre-trained model are exchangeable when
fine-tuning changed nothing), and on the same data with a planted effect: the
false-positive rate and the power the chapter shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .analysis import PairFits, t_interval, verdict

__all__ = ["STATISTICS", "MEMBER_VERDICTS", "CLAIM_WORDS", "simultaneous", "contrasts", "seed_contrasts", "family", "per_dataset", "claim_word",
           "null_calibration"]

# The two statistics of a contrast: the change of slope and the change of correlation.
STATISTICS = {"delta beta": "Δβ", "delta r": "Δr"}
# What a member's verdict says, by statistic (codes of cwi.analysis.VERDICTS).
MEMBER_VERDICTS = {
    "delta beta": {"more": "fine-tuned weights it more", "less": "fine-tuned weights it less",
                   "unclear": "no clear difference"},
    "delta r": {"more": "fine-tuned follows it more closely", "less": "fine-tuned follows it less closely",
                "unclear": "no clear difference"},
}
CLAIM_WORDS = {
    "reproduces": "every comparison it needs lies above 0",
    "contradicts": "every comparison it needs lies below 0",
    "not shown": "some comparison it needs includes 0, or they disagree",
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


def _contrast(results: PairFits, pair: str, dataset: str, control: str, methods, quantities):
    """Delta beta and delta r of one pair, averaged over `methods` x `quantities`, with their draws."""
    betas, beta_draws, rs, r_draws = [], [], [], []
    for method in methods:
        for quantity in quantities:
            fit = results.fits.get((pair, dataset, method, quantity, control))
            if fit is None:
                return None
            betas.append(fit.beta[1:].mean() - fit.beta[0])
            beta_draws.append(fit.beta_draws[:, 1:].mean(1) - fit.beta_draws[:, 0])
            rs.append(fit.r[1:].mean() - fit.r[0])
            r_draws.append(fit.r_draws[:, 1:].mean(1) - fit.r_draws[:, 0])
    return (np.mean(betas), np.mean(beta_draws, axis=0)), (np.mean(rs), np.mean(r_draws, axis=0))


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
    """
    rows, columns = [], []
    for pair in [p for p in results.replicates if p in results.twinned]:
        for name, methods, quantities in claims:
            found = _contrast(results, pair, dataset, control, methods, quantities)
            if found is None:
                continue
            for statistic, (estimate, draws) in zip(STATISTICS, found):
                if statistic in statistics and np.isfinite(estimate):
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
    own contrast is above 0) and the t interval across seeds (``t_low``,
    ``t_high``: :func:`cwi.analysis.t_interval`), which treats the seeds as draws
    of the recipe.
    """
    rows = []
    for pair in [p for p in results.replicates if p in results.twinned and len(results.replicates[p]) > 1]:
        for name, methods, quantities in claims:
            fits = [results.fits.get((pair, dataset, m, q, control)) for m in methods for q in quantities]
            if any(fit is None for fit in fits):
                continue
            per_seed = np.mean([fit.beta[1:] - fit.beta[0] for fit in fits], axis=0)
            low, high = t_interval(per_seed, level)
            rows.append({"pair": pair, "claim": name, "seeds": len(per_seed),
                         "seeds_above": int((per_seed > 0).sum()), "t_low": low, "t_high": high})
    return pd.DataFrame(rows, columns=["pair", "claim", "seeds", "seeds_above", "t_low", "t_high"])


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


def claim_word(verdicts) -> str:
    """A claim that needs every comparison in `verdicts` (codes of :data:`cwi.analysis.VERDICTS`): a key of :data:`CLAIM_WORDS`."""
    verdicts = list(verdicts)
    if verdicts and all(v == "more" for v in verdicts):
        return "reproduces"
    if verdicts and all(v == "less" for v in verdicts):
        return "contradicts"
    return "not shown"


def _permuted(fit, order: np.ndarray, planted: float):
    """A fit's per-sentence statistics with the models' columns reordered per sentence, plus a planted slope.

    `order` (g, k) gives, for each of the fit's sentences, which model takes each
    role (column 0 the pre-trained one).  `planted` is added to every fine-tuned
    column's slope: ``y + planted * z`` changes ``X'y`` by ``planted * X'z`` and
    ``y'y`` by ``2 planted z'y + planted^2 z'z``.
    """
    xty = np.take_along_axis(fit.xty, order[:, None, :], axis=2)
    yy = np.take_along_axis(fit.yy, order, axis=1)
    if planted:
        zy, zz = xty[:, 1, 1:].copy(), fit.xtx[:, 1, 1][:, None]
        xty[:, :, 1:] += planted * fit.xtx[:, :, 1][:, :, None]
        yy[:, 1:] += 2 * planted * zy + planted**2 * zz
    return xty, yy


def null_calibration(results: PairFits, claims, level: float, n_simulations: int, seed: int,
                     planted: float = 0.0, per_dataset_claim: str | None = None) -> pd.DataFrame:
    """How often the primary rule speaks when there is nothing to find (or `planted` to find).

    Each simulation exchanges the models of every pair at random within each
    sentence (one permutation per sentence, shared by all methods and
    quantities, so their dependence is kept), adds `planted` (normalised
    weight per SD of the quantity) to every fine-tuned model's slope, refits
    every member of the primary family on the same bootstrap draws and applies
    the rule (:func:`contrasts`, :func:`family`, :func:`claim_word`).

    Returns
    -------
    pandas.DataFrame
        One row per outcome, with ``rate`` (share of simulations) and
        ``simulations``: ``"any member"`` (the family-wise error: some interval
        of the family off 0), ``"any delta beta"``, per pair and claim
        ``"PAIR: CLAIM reproduces"`` and ``"... contradicts"``, and with
        `per_dataset_claim` ``"any dataset"`` (some member of that claim's
        per-dataset family off 0).
    """
    rng = np.random.default_rng(seed)
    n_sentences = results.bootstrap.counts.shape[1]
    datasets = sorted({key[1] for key in results.fits} - {"all"}) if per_dataset_claim else []
    needed = {key: fit for key, fit in results.fits.items()
              if key[0] in results.twinned and key[4] == "none" and (key[1] == "all" or key[1] in datasets)}
    outcomes = []
    for _ in range(n_simulations):
        orders = {pair: rng.permuted(np.tile(np.arange(len(results.replicates[pair]) + 1), (n_sentences, 1)), axis=1)
                  for pair in results.twinned}
        simulated = PairFits(results.table, {}, results.replicates, results.twinned, results.bootstrap)
        for key, fit in needed.items():
            xty, yy = _permuted(fit, orders[key[0]][fit.sentences], planted)
            simulated.fits[key] = _Refit(*fit.refit(xty, yy))
        members, draws = contrasts(simulated, claims)
        table = family(members, draws, level)
        said = {"any member": (table["verdict"] != "unclear").any(),
                "any delta beta": (table.loc[table["statistic"] == "delta beta", "verdict"] != "unclear").any()}
        for (pair, claim), rows in table[table["statistic"] == "delta beta"].groupby(["pair", "claim"], sort=False):
            word = claim_word(rows["verdict"])
            said[f"{pair}: {claim} reproduces"] = word == "reproduces"
            said[f"{pair}: {claim} contradicts"] = word == "contradicts"
        if datasets:
            said["any dataset"] = (per_dataset(simulated, claims, per_dataset_claim, datasets, level)["verdict"]
                                   != "unclear").any()
        outcomes.append(said)
    rates = pd.DataFrame(outcomes).mean()
    return pd.DataFrame({"outcome": rates.index, "rate": rates.to_numpy(), "simulations": n_simulations})


def per_dataset(results: PairFits, claims, claim: str, datasets, level: float) -> pd.DataFrame:
    """The family of one claim's delta beta on each dataset alone (every pair), adjusted together."""
    chosen = [c for c in claims if c[0] == claim]
    if not chosen:
        raise ValueError(f"no claim named {claim!r}: the claims are {[c[0] for c in claims]}")
    found = [contrasts(results, chosen, dataset=d, statistics=("delta beta",)) for d in datasets]
    members = pd.concat([m for m, _ in found], ignore_index=True)
    draws = np.column_stack([d for _, d in found if d.size]) if len(members) else np.zeros((0, 0))
    return family(members, draws, level)


class _Refit:
    """The estimates of a refitted :class:`cwi.analysis.Fit`, which is all :func:`contrasts` reads."""

    def __init__(self, beta, r, beta_draws, r_draws):
        self.beta, self.r, self.beta_draws, self.r_draws = beta, r, beta_draws, r_draws
