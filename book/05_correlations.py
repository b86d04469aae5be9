# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---


# %% [markdown]
# # Correlations: do contrastive encoders weight informative words more?
#
# The paper's experimental claim {cite}`kurita2023contrastive`: after contrastive
# fine-tuning, a sentence encoder weights words of high information gain (and
# self-information) more than before, measured as a larger slope of word weight
# on the word's statistic. This chapter joins the word weights of the
# Attribution chapter with the word statistics of the Statistics chapter and
# tests that claim on every model pair of the profile, and then asks what a
# referee would: is the change the *contrastive* objective's, is it more than
# frequency, and does it hold for the recipe or only for the trained models?
#
# For one model, one attribution method and one quantity $q$ we fit by least squares
#
# $$ \tilde w = a + \beta\, q / s_q + \gamma^\top u + \varepsilon , $$ (eq-regression)
#
# where $\tilde w$ is the normalised word weight (1 = the sentence's mean), $s_q$
# the standard deviation of $q$ over every usable word occurrence the profile
# attributed (one scale per quantity, the same in every dataset, adjustment and
# pair, so $\beta$, the change in normalised weight per standard deviation of
# $q$, compares across them), and $u$ optional covariates. Beside $\beta$, the
# correlation $r$ of weight and quantity. They answer different questions:
# fine-tuning that only *spreads* the weights (each $\tilde w \mapsto 1 + k(\tilde w - 1)$
# with $k > 1$) multiplies $\beta$ by $k$ and leaves $r$ alone, so "weights
# informative words more" is a statement about $\beta$, and "follows
# information more closely" one about $r$. For a pair, all its models are fitted
# on the same words, and
#
# $$ \Delta\beta = \bar\beta_{\text{fine-tuned}} - \beta_{\text{pre-trained}}, \qquad
#    \Delta\Delta\beta = \bar\beta_{\text{fine-tuned}} - \bar\beta_{\text{control}} , $$ (eq-delta-beta)
#
# the same for $r$. The bar is a mean over **fresh seeds**: the book's recipes
# were drawn again with seeds that played no part in any search, each stopped at
# the recipe's step (Fine-tuning chapter). The **difference in differences**
# $\Delta\Delta\beta$ sets them against their **matched controls**, trained from
# the same base on the same data, steps and dropout with a non-contrastive
# loss: the pre-trained model cancels, and what remains is what the contrastive
# objective adds. The *selected* models (the search's winning run at its best
# dev step, which won that search twice) are reported apart, never in a claim.
#
# **Uncertainty.** Words of one sentence share its normalisation, so standard
# errors come from a bootstrap that resamples *sentences*, within each dataset;
# a sentence that two datasets share is one unit. The resampling is drawn once
# (`cwi.analysis.SentenceBootstrap`) and every fit of the chapter reads the same
# draws, so differences and averages of fits are paired.
#
# **Verdicts.** The claims are fixed in the profile (`analysis.claims`) before
# this run, after earlier runs of the book on overlapping data, and each is
# decided by one test of one family whose critical value comes from the null
# itself (below). The bootstrap holds the trained models fixed, so a verdict is
# about *these* models; the recipe-level intervals add the seeds' own spread
# and alone may speak for the recipe. Everything else is exploratory and says so.

# %% tags=["remove-cell"]
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue
from scipy import stats as scistats

from cwi import (analysis, attribution, config, downloads, faithfulness, inference, interactive, pipeline, plotting,
                 record, runs)
from cwi.findings import STATUS_WORDS, glue_finding

# %% tags=["parameters"]
profile = os.environ.get("CWI_PROFILE", "default")  # a built-in profile or a study file

# %%
settings = config.get_profile(profile)
plotting.use_book_style()
min_count = settings.stats.min_count
level = f"{settings.analysis.level:.0%}"
comparisons = pipeline.comparisons(settings)
primary_pairs = [name for name, c in comparisons.items() if c.pretrained and not name.endswith("(selected)")]
# The figures show one model per side: the registered models (the selected ones, for the book's pairs).
pairs = analysis.present_pairs(settings.pairs, settings.attribution.models)


def seeds_text(models) -> str:
    return models[0] if len(models) == 1 else f"{len(models)} fresh seeds"


pd.DataFrame([{"pair": n, "pre-trained": c.pretrained or "(none offline)", "fine-tuned": seeds_text(c.finetuned),
               "control": seeds_text(c.controls) if c.controls else "-",
               "role": "primary family" if n in primary_pairs else "reported apart",
               "defined in": "the study file" if settings.from_study(n.removesuffix(" (selected)")) else "built in"}
              for n, c in comparisons.items()]).style.hide(axis="index")

# %% tags=["remove-input"]
own_pairs = [name for name in comparisons if settings.from_study(name)]
if own_pairs:
    display(Markdown(
        f"The study **{settings.name}** (`{os.path.basename(settings.study_file)}`) brings its own "
        f"pair{'s' if len(own_pairs) > 1 else ''}: {', '.join(own_pairs)}. They come first in every table and are "
        "decided by the same claims, family and rule as the book's pairs. More pairs make a larger family, so its "
        "critical value grows (up to the Monte Carlo error of the permutations): a verdict of the book's own pairs "
        "can be lost here, not gained (if the study attributes other sentences, the estimates move too)."))

# %% [markdown]
# ## The data
#
# The statistics table and the word weights (the registered models' and the
# drawn ones') come from the artefact cache (they are computed if this chapter
# runs first). Every word keeps its row; a word without usable statistics is
# flagged: *absent* from the corpus, *rare* (fewer than the profile's
# `min_count` occurrences, where the estimates are mostly noise) or *no context*
# (seen only in one-word sentences).

# %%
table = pipeline.corpus_statistics(settings)
registered = pipeline.profile_word_weights(settings)
weights = pd.concat([registered, pipeline.seed_word_weights(settings)], ignore_index=True)
frame = analysis.attach_statistics(weights, table, min_count)
missing = analysis.missing_statistics(frame)
missing.style.format({"share without statistics": "{:.1%}"})

# %% tags=["remove-input"]
share = (frame["status"] != "ok").mean()
absent_words = frame.loc[frame["status"] == "absent", "word"].value_counts()
scales = analysis.quantity_scales(frame)
usable_words = frame[frame["status"] == "ok"].drop_duplicates(["dataset", "sentence", "word_index"])
stop_share = usable_words["stopword"].mean()
glue("stopword_share", float(stop_share), display=False)
display(Markdown(
    f"Of {len(frame):,} word weights, **{share:.1%}** have no usable statistics (at least {min_count} "
    f"occurrences in {table.attrs['n_sentences']:,} Wikipedia sentences) and stay out of the fits; every "
    f"row of the results counts them in `n_without_statistics`. The most frequent absent words: "
    + ", ".join(f"`{w}`" for w in absent_words.index[:8]) + ". The scales $s_q$, over the usable word "
    "occurrences: " + ", ".join(f"{analysis.QUANTITIES[q]} {s:.3f} nats" for q, s in scales.items()) + ". "
    f"{stop_share:.1%} of the usable word occurrences are stopwords or punctuation, where frequency and "
    "information gain move together: the claims below therefore also look at content words alone and beyond "
    "frequency."
))

# %% [markdown]
# ## How the statistics move with frequency
#
# A slope on information gain can be a slope on frequency: the raw estimate
# falls with a word's count, and self-information *is* minus log frequency.
# Over the usable word occurrences, each quantity's correlation with log
# frequency, over all words and over content words alone:

# %%
with_frequency = pd.DataFrame({
    words_label: {analysis.QUANTITIES[q]: rows[q].corr(rows["log_frequency"]) for q in analysis.QUANTITIES}
    for words_label, rows in (("all words", usable_words), ("content words", usable_words[~usable_words["stopword"]]))})
with_frequency.style.format("{:+.2f}")

# %% tags=["remove-input"]
glue("frequency_correlations", {f"{q}/{w}": float(with_frequency.loc[analysis.QUANTITIES[q], w])
                                for q in analysis.QUANTITIES for w in with_frequency.columns}, display=False)
display(Markdown(
    "The shuffle correction subtracts the estimator's own bias and the per-bin correction subtracts a low "
    "percentile of each frequency bin: a floor, not a frequency control. A real frequency control is a covariate: "
    "the claim *information gain beyond frequency* partials log frequency and the subword count out of the slope."))

# %% [markdown]
# ## All regressions
#
# Every pair x dataset (and all datasets pooled) x method x quantity x
# adjustment: none; *covariates* (log frequency, length in characters, number
# of subword tokens, relative position; log frequency is left out for
# self-information, which is minus log frequency plus a constant); *content
# words* (stopwords and punctuation left out, each weight renormalised over
# its sentence's content words, so that weight moved off the stopwords does not
# rescale the rest); *frequency* (log frequency and subword count partialled
# out; not defined for self-information); and *sentence effects*, weight and
# quantity demeaned within each sentence. A pair with seeds is fitted on all its
# models at once; its drawn models carry Integrated Gradients only
# (`attribution.draw_methods`). The tidy table goes to the artefact cache as CSV.

# %%
start = time.perf_counter()
results = pipeline.correlation_results(settings, frame, comparisons)
fit_seconds = time.perf_counter() - start
downloads.wide(results.table[["pair", "dataset", "method", "quantity", "control", "delta", "delta_low", "delta_high",
                              "did", "delta_r", "beta_pre", "beta_fine", "n_words", "verdict"]]
               .head().style.hide(axis="index").format(precision=3, na_rep="-"))  # no r with covariates

# %% tags=["remove-input"]
display(downloads.csv_download(results.table, "correlation_results.csv", f"all {len(results.table):,} regressions"))
display(Markdown(f"{len(results.table):,} settings fitted in {fit_seconds:.1f} s on "
                 f"{settings.analysis.n_bootstrap:,} shared bootstrap replicates; the table (all "
                 f"{results.table.shape[1]} columns) is at `{results.table.attrs['cache_path']}`."))
paired = results.table[results.table["pretrained"].notna() & (results.table["verdict"] != "not fitted")]
chance = (1 - settings.analysis.level) / 2 * len(paired)
display(Markdown(
    f"Read one interval at a time, these are exploratory: of the {len(paired)} paired settings, "
    f"{(paired['verdict'] == 'more').sum()} have a {level} Δβ interval above 0 and "
    f"{(paired['verdict'] == 'less').sum()} below, where chance alone would put about {chance:.0f} on each side "
    "if fine-tuning changed nothing. The test below decides the claims."
))

# %% [markdown]
# ## The claims and their test
#
# ```{admonition} The rule
# Each claim of `analysis.claims` is a *contrast*: for one pair, the mean of
# Δβ (and of Δr) over the claim's methods and quantities, all datasets pooled,
# under the claim's adjustment, read **against the pre-trained model** and, for
# a pair with a matched control, **against the control** (the difference in
# differences). Every pair x claim x statistic x reading is one member of the
# **primary family**. Member $m$'s statistic is $T_m = |\hat\delta_m| / \mathrm{se}_m$,
# its standard error from the sentence bootstrap. Its critical value $c$ is the
# larger of two (`cwi.inference.decide`):
#
# * $c_\text{perm}$, from the null itself {cite}`westfall1993resampling`: the
#   models of each pair (the pre-trained one, every fine-tuned seed, every
#   control seed) are relabelled at random within every sentence, once per
#   sentence cluster and the same for every method, quantity and adjustment;
#   each relabelled data set is refitted and studentised anew; $c_\text{perm}$
#   is the quantile of $\max_m T^*_m$ over the `analysis.permutations`
#   relabellings with the observed labelling counted in. Under the complete null
#   of exchangeable models the chance that *any* member is called is then at
#   most 1 − the level, exactly;
# * $c_\text{boot}$, the bootstrap's own max-t value, whose band
#   $\hat\delta_m \pm c\,\mathrm{se}_m$ covers every member at once (approximately)
#   whatever else differs between the models. Exchangeability is a strong null:
#   fine-tuning can change how widely a model spreads its weights while leaving
#   a slope alone, and there the permutation alone would be only approximate.
#
# A member is called when $T_m > c$, and its interval
# $\hat\delta_m \pm c\,\mathrm{se}_m$ excludes 0 exactly then.
#
# A claim **reproduces** (against the base) when its Δβ lies above 0,
# **contradicts** when below, and is **not shown** otherwise. Against the
# control, an interval above 0 says that SimCSE's slope exceeds its control's;
# the change is credited to **the contrastive objective** only where both lie
# above 0 (an intersection-union reading), and only against this control: one
# other objective, trained under SimCSE's searched learning rate, step and
# dropout. Δr says whether the weights *follow* the quantity more closely.
#
# **Two populations.** The bootstrap holds the trained models fixed: a call is
# about *these* models. Beside it, each recipe-level interval adds the seeds'
# own spread to the variance, $\mathrm{se}^2 + s_f^2/k_f\ (+\, s_c^2/k_c)$, with
# Welch-Satterthwaite degrees of freedom and a Bonferroni t critical value over
# the family's recipe-level members, never below $c$ (so that a call for the
# recipe is a call for these models too); only it may say **"holds for this
# recipe"**, and only from this base: the base, the step and the
# hyper-parameters stay fixed. Against the control, seed $i$'s SimCSE run and
# its control share their batches, so the seeds' term is the spread of the
# paired differences, $s_d^2/k$.
# ```
#
# **What changed in the claims.** Earlier runs of the book decided four claims on
# the selected models: information gain (IG and SHAP, the mean over the raw,
# shuffle-corrected and bin-corrected estimates), self-information, and each
# method alone. Those runs showed the pooled effect to be carried by stopwords
# and frequency; the claims were fixed anew before this run: the raw information
# gain alone (the paper's), on content words, and beyond a linear trend in log
# frequency and subword count, and self-information; Integrated Gradients only,
# since the drawn models carry no SHAP (the registered models' SHAP weights
# are compared below, exploratory). The shuffle- and bin-corrected estimates
# stay among the exploratory quantities.

# %%
claims = settings.analysis.claims
start = time.perf_counter()
members, draws = inference.contrasts(results, claims, pairs=primary_pairs)
maxima = inference.permutation_maxima(results, claims, members, settings.analysis.permutations, settings.seed)
primary = inference.decide(members, draws, maxima, settings.analysis.level)
permutation_seconds = time.perf_counter() - start
critical = float(primary["critical"].iloc[0]) if len(primary) else float("nan")
_, _, bootstrap_critical = inference.simultaneous(members["estimate"].to_numpy(), draws, settings.analysis.level)
POPULATION = {"more": "above 0", "less": "below 0", "unclear": "includes 0"}
AGAINST_CONTROL = {"more": "above its control", "less": "below its control",
                   "unclear": "no clear difference from its control"}


def family_view(reading: str) -> pd.DataFrame:
    """The members of one reading, as a reader compares them: the estimate, the verdict, the recipe level."""
    rows = primary[primary["reading"] == reading]
    # "Contrastive" needs both: above the control and, on the same statistic, above the base.
    above_base = {(r.pair, r.claim, r.statistic) for r in primary.itertuples()
                  if r.reading == "vs base" and r.verdict == "more"}
    return pd.DataFrame({
        "pair": rows["pair"], "claim": rows["claim"], "statistic": rows["statistic"].map(inference.STATISTICS),
        f"estimate [{level}, these models]": analysis.interval_text(rows["estimate"], rows["low"], rows["high"]),
        "verdict": [inference.MEMBER_VERDICTS[s][v] if reading == "vs base" else
                    AGAINST_CONTROL[v] + (" and the base: contrastive" if (p, c, s) in above_base else "")
                    for p, c, s, v in zip(rows["pair"], rows["claim"], rows["statistic"], rows["verdict"])],
        "recipe level": [f"[{lo:+.3f},{analysis.NO_BREAK}{hi:+.3f}]: {POPULATION[v]}" if np.isfinite(lo) else "-"
                         for lo, hi, v in zip(rows["recipe_low"], rows["recipe_high"], rows["recipe_verdict"])],
    }).style.hide(axis="index").set_caption(
        {"vs base": "Against the pre-trained model (Δ: fine-tuned minus pre-trained)",
         "vs control": "Against the matched control (the difference in differences)"}[reading])


for reading in inference.READINGS:
    if (primary["reading"] == reading).any():
        display(family_view(reading))

# %% tags=["remove-input"]
display(downloads.csv_download(primary.drop(columns=["seed_values", "control_values"]), "primary_family.csv",
                               "the primary family"))
glue("primary", {f"{r.pair}/{r.claim}/{r.statistic}/{r.reading}": {
    "estimate": float(r.estimate), "low": float(r.low), "high": float(r.high), "verdict": r.verdict,
    "recipe_verdict": r.recipe_verdict} for r in primary.itertuples()}, display=False)
glue("critical", critical, display=False)
one = scistats.norm.ppf(1 - (1 - settings.analysis.level) / 2)
bonferroni = scistats.norm.ppf(1 - (1 - settings.analysis.level) / 2 / max(len(primary), 1))
readings_count = primary.groupby("reading").size()
display(Markdown(
    f"The family has {len(primary)} members ({primary['pair'].nunique()} pairs x {len(claims)} claims x Δβ and, "
    "where defined, Δr x " + " and ".join(f"{n} {r}" for r, n in readings_count.items()) + "). Its critical "
    f"value is c = **{critical:.2f}**, the larger of the permutation's "
    f"{float(primary['permutation_critical'].iloc[0]):.2f} over {settings.analysis.permutations:,} relabellings "
    f"({permutation_seconds:.0f} s) and the bootstrap's own max-t band's {bootstrap_critical:.2f}; {one:.2f} "
    f"for one interval alone, {bonferroni:.2f} for Bonferroni. Recipe-level intervals exist for "
    f"{int(primary['recipe_se'].notna().sum())} members (where the seeds' spread can be measured); their "
    f"critical values run from {np.nanmin(primary['recipe_critical']):.2f} to {np.nanmax(primary['recipe_critical']):.2f} "
    "(few seeds, few degrees of freedom)."
    if primary["recipe_se"].notna().any() else
    f"The family has {len(primary)} members; its critical value is c = **{critical:.2f}** (permutation, over "
    f"{settings.analysis.permutations:,} relabellings, {permutation_seconds:.0f} s, or the bootstrap's band, "
    f"whichever is larger), against {one:.2f} for one interval alone. No pair has the seeds for a recipe-level "
    "interval."
))

# %% [markdown]
# ### How often does the rule call a member where it should not?
#
# Measured on this profile's own words and draws, with the critical value above:
#
# * **no effect (the sharp null)**: relabellings of every pair's models within
#   sentences, drawn apart from those that set $c$, each refitted; the
#   permutation makes the rate at most nominal under this null, and the
#   simulations measure what is left: the Monte Carlo error of $c$;
# * **effect removed**, in the bootstrap's world: every member's estimated
#   effect subtracted, the models otherwise as they are (their own noise and
#   spread, which the sharp null makes alike): each sentence resample's draws,
#   centred on the estimates, judged against $c$ with the observed standard
#   errors. The resamples come from one sample, so this is a bootstrap estimate
#   of the band's family-wise error (at most nominal whenever $c \ge c_\text{boot}$),
#   not a fresh sample's;
# * **effect planted** on every fine-tuned seed (not the controls) in multiples
#   of each pair's standard error: the power, against the base and against the
#   control;
# * **seeds wander**: no effect on average, but each fine-tuned and control
#   seed gets its own random slope, as much as the book's seeds differ. A call
#   about *these* models is then right (they do differ); a call for the
#   *recipe* is not, which is what the recipe-level interval must resist.

# %% tags=["hide-input"]
start = time.perf_counter()
first_claim = claims[0][0]
base_members = primary[(primary["claim"] == first_claim) & (primary["statistic"] == "delta beta")
                       & (primary["reading"] == "vs base")]
se_first = dict(zip(base_members["pair"], base_members["se"]))
by_seed = inference.seed_contrasts(results, claims, settings.analysis.level)
wander = {pair: sd for pair, sd in zip(by_seed.loc[by_seed["claim"] == first_claim, "pair"],
                                       by_seed.loc[by_seed["claim"] == first_claim, "seed_sd"]) if pair in primary_pairs}
analysis_settings = settings.analysis
scenarios = [(inference.Scenario("no effect"), analysis_settings.null_simulations, settings.attribution.datasets),
             (inference.Scenario("effect removed"), 0, ())]
scenarios += [(inference.Scenario(f"Δβ = {m:g} SE planted", slope={p: m * se for p, se in se_first.items()}),
               analysis_settings.scenario_simulations, ()) for m in analysis_settings.power_multiples]
if wander:
    scenarios.append((inference.Scenario("seeds wander, no effect", seed_spread=wander),
                      analysis_settings.scenario_simulations, ()))
calibration = pd.concat([inference.error_rates(results, claims, members, draws, critical, analysis_settings.level, n,
                                               settings.seed, scenario, datasets)
                         for scenario, n, datasets in scenarios], ignore_index=True)
calibration_seconds = time.perf_counter() - start
calibration_view = calibration.pivot_table(index="outcome", columns="scenario", values="rate", sort=False)
calibration_view.style.format("{:.1%}", na_rep="-")

# %% tags=["remove-input"]
display(downloads.csv_download(calibration, "calibration.csv", "the rule's error rates"))
nominal = 1 - analysis_settings.level
rates = calibration.set_index(["scenario", "outcome"])


def measured(scenario: str, outcome: str) -> tuple[str, str]:
    """A measured rate with its exact interval, and what it says against the nominal rate."""
    said, n = int(rates.loc[(scenario, outcome), "said"]), int(rates.loc[(scenario, outcome), "simulations"])
    status, low, high = inference.calibration_status(said, n, analysis_settings.level)
    return status, f"**{said / n:.1%}** of {n:,} ({level} exact interval {low:.1%} to {high:.1%})"


status, sharp = measured("no effect", "any member")
removed_status, removed = measured("effect removed", "any member")
removed_beta, removed_r = (rates.loc[("effect removed", f"any {s}"), "rate"] for s in ("delta beta", "delta r"))
dataset_status, dataset_rate = (measured("no effect", "any dataset") if ("no effect", "any dataset") in rates.index
                                else ("consistent", ""))
reproduced = [o for o in rates.loc["no effect"].index if o.endswith(f": {first_claim} reproduces")]
power = (calibration[calibration["outcome"].isin(reproduced) & calibration["scenario"].str.contains("planted")]
         .groupby("scenario", sort=False)["rate"].min())
contrastive = [o.replace("reproduces", "is contrastive") for o in reproduced]
power_control = (calibration[calibration["outcome"].isin(contrastive) & calibration["scenario"].str.contains("planted")]
                 .groupby("scenario", sort=False)["rate"].min())
findings = status != "above" and removed_status != "above"
# The recipe-level words need their own rate: seeds that wander around no effect must not be called for the recipe.
recipe_outcomes = [o for o in rates.index.get_level_values("outcome").unique() if o.endswith("for the recipe")]
recipe_rates = ({o: measured("seeds wander, no effect", o) for o in recipe_outcomes
                 if ("seeds wander, no effect", o) in rates.index} if wander else {})
recipe_findings = findings and bool(recipe_rates) and all(st != "above" for st, _ in recipe_rates.values())
glue("calibration", {"false_positive": float(rates.loc[("no effect", "any member"), "rate"]), "status": status,
                     "findings": bool(findings), "permutations": analysis_settings.permutations,
                     "effect_removed": float(rates.loc[("effect removed", "any member"), "rate"]),
                     "effect_removed_status": removed_status, "recipe_findings": bool(recipe_findings),
                     "power": {k: float(v) for k, v in power.items()}}, display=False)
lines = [
    f"Under the sharp null some member of the family was called in {sharp}; nominal {nominal:.0%}: "
    + inference.RATE_WORDS[status] + ". "
    + f"Δβ members alone: {rates.loc[('no effect', 'any delta beta'), 'rate']:.1%}; Δr members alone: "
    f"{rates.loc[('no effect', 'any delta r'), 'rate']:.1%}"
    + (f"; some dataset of the per-dataset claims (bootstrap intervals, Bonferroni over pairs): {dataset_rate}, "
       + {"above": "above the nominal rate, so the per-dataset readings below are descriptions only",
          "below": "below the nominal rate", "consistent": "consistent with the nominal rate"}[dataset_status]
       if dataset_rate else "") + ". ",
    f"With every estimated effect removed (the bootstrap's world), some member was called in {removed} (Δβ "
    f"members {removed_beta:.1%}, Δr members {removed_r:.1%}): " + inference.RATE_WORDS[removed_status] + ". ",
    f"(The critical value c = {critical:.2f} is the larger of the permutation's "
    f"{float(primary['permutation_critical'].iloc[0]):.2f} and the bootstrap's "
    f"{float(primary['bootstrap_critical'].iloc[0]):.2f}.) ",
]
if not findings:
    lines.append(f"**The nominal {nominal:.0%} is not demonstrated**, so the verdicts below read as descriptions "
                 "of this sample, not findings. ")
def at_least(rate: float, scenario: str) -> str:
    """A power with its exact interval: the smallest rate over pairs, out of that scenario's simulations."""
    n = int(calibration.loc[calibration["scenario"] == scenario, "simulations"].iloc[0])
    _, low, high = inference.calibration_status(int(round(rate * n)), n, analysis_settings.level)
    return f"{rate:.0%} [{low:.0%}, {high:.0%}]"


if len(power):
    recipe_power = (calibration[calibration["outcome"].isin([o + " for the recipe" for o in reproduced])
                               & calibration["scenario"].str.contains("planted")]
                    .groupby("scenario", sort=False)["rate"].min())
    lines.append("Planted on every fine-tuned seed (not the controls), an effect of "
                 + ", ".join(f"{s.split(' planted')[0].replace('Δβ = ', '')} was called against the base in at "
                             f"least {at_least(rate, s)}" for s, rate in power.items())
                 + " of simulations (the smallest over pairs, with its exact interval)"
                 + (", against the control in at least " + ", ".join(at_least(rate, s)
                                                                     for s, rate in power_control.items())
                    if len(power_control) else "")
                 + (", and for the recipe in at least " + ", ".join(at_least(rate, s)
                                                                   for s, rate in recipe_power.items())
                    + " (few seeds: the recipe-level reading has little power)" if len(recipe_power) else "") + ". ")
if ("seeds wander, no effect", "any member, recipe level") in rates.index:
    models_level = max(rates.loc[("seeds wander, no effect", f"{p}: {first_claim} reproduces"), "rate"]
                       + rates.loc[("seeds wander, no effect", f"{p}: {first_claim} contradicts"), "rate"]
                       for p in wander)
    recipe_level = max(rates.loc[("seeds wander, no effect", f"{p}: {first_claim} reproduces for the recipe"), "rate"]
                       for p in wander)
    lines.append(f"With seeds that wander as much as the book's around no effect, a verdict about these models speaks "
                 f"in up to {models_level:.0%} of simulations (rightly: these models differ), and the recipe-level "
                 f"reading says \"holds for this recipe\" in up to {recipe_level:.0%}. ")
if recipe_rates:
    worst = max(recipe_rates, key=lambda o: rates.loc[("seeds wander, no effect", o), "rate"])
    worst_status, worst_text = recipe_rates[worst]
    lines.append(f"The largest of those recipe-level rates is {worst_text}; nominal {nominal:.0%}: "
                 + inference.RATE_WORDS[worst_status] + ". ")
lines.append(f"({sum(n for _, n, _ in scenarios):,} simulations and {len(draws):,} centred replicates in "
             f"{calibration_seconds:.0f} s.)")
display(Markdown("".join(lines)))

# %% [markdown]
# ## The per-setting table (exploratory)
#
# All datasets pooled, no covariates, one row per pair, method and quantity:
# the paper's table, each interval at its own coverage, not adjusted for the
# others. Pairs with seeds show their seeds' mean; the selected models appear as
# their own rows.

# %%
headline = analysis.headline(results.table, level=settings.analysis.level)
headline.style.hide(axis="index")

# %% tags=["remove-input"]
display(downloads.csv_download(headline, "headline.csv", "the per-setting table"))
glue("headline_rows", len(headline), display=False)  # read by the tests, as every glued value
glue("headline_pairs", sorted(set(headline["pair"])), display=False)
uncovered = paired[paired["control"] == "none"]
widths = (uncovered["delta_high"] - uncovered["delta_low"]).groupby(uncovered["dataset"] == "all").median()
glue("delta_width_per_dataset", float(widths.get(False, np.nan)), display=False)
display(Markdown(
    f"The median width of a Δβ interval is {widths[True]:.3f} pooled and "
    f"{widths[False]:.3f} on one dataset alone (no covariates): precision grows with the sentences "
    "attributed per dataset."
))

# %% [markdown]
# ## Weight against information gain
#
# Each panel is one pair (Integrated Gradients, raw information gain): the
# binned medians of the normalised weight of both models on the same words, and
# their fitted lines. For the book's pairs the fine-tuned model shown is the
# selected one.

# %% tags=["hide-input"]
usable = frame[frame["status"] == "ok"]
plotting.pair_panels(
    usable[usable["method"] == "ig"], pairs, "information_gain", analysis.QUANTITIES["information_gain"] + " (nats)",
    f"Normalised Integrated-Gradients word weight against raw information gain: medians in "
    f"{settings.analysis.median_bins} equal-count bins (dots) and least-squares lines, pre-trained (blue) and "
    "fine-tuned, the selected model (orange), on the same words.", bins=settings.analysis.median_bins,
)
plt.show()

# %% [markdown]
# ### Word by word
#
# The same comparison for single words: each dot is one word occurrence
# (a seeded sample, the same words for both models of a pair), each line the
# least-squares fit on every word. Hover a dot for the word, its statistic and
# both models' weights; switch the pair and the statistic above the plot.

# %% tags=["remove-input"]
display(interactive.hover_scatter(usable[usable["method"] == "ig"], pairs,
                                  {q: f"{label}, nats" for q, label in analysis.QUANTITIES.items()},
                                  seed=settings.seed))

# %% [markdown]
# ## Δβ across all settings (exploratory)
#
# A forest plot of every pair, pooled over datasets: one panel per quantity
# and method, one row per pair, colour for the adjustment. Each interval is at
# its own coverage; the claims are decided above, not here.

# %% tags=["hide-input"]
plotting.forest(
    paired, analysis.QUANTITIES, analysis.CONTROLS,
    f"Δβ (fine-tuned minus pre-trained slope, per profile SD of the quantity, so comparable across adjustments), "
    f"all datasets pooled, with {level} sentence-bootstrap intervals, unadjusted. Right of the dashed line: the "
    "fine-tuned model weights the quantity more.",
)
plt.show()

# %% [markdown]
# Dataset by dataset, without covariates: one row per pair and method, one
# column per dataset.

# %% tags=["hide-input"]
plotting.delta_grid(
    paired, list(settings.attribution.datasets) + ["all"], analysis.QUANTITIES, "none",
    f"Δβ per dataset (no covariates); red: the fine-tuned model weights the quantity more, blue: less. Bold: the "
    f"{level} interval, unadjusted, excludes 0.",
)
plt.show()

# %% [markdown]
# ## The first claim under every adjustment (exploratory)
#
# The contrast of the first claim's methods and quantity under each
# adjustment, against the base and against the control, each interval the
# sentence-bootstrap percentile interval of the same draws at its own coverage.

# %%
control_rows = []
for control in analysis.CONTROLS:
    name, methods, quantities, _ = claims[0]
    found, found_draws = inference.contrasts(results, [(name, methods, quantities, control)], pairs=primary_pairs)
    control_rows.append(inference.family(found, found_draws, settings.analysis.level, adjusted=False))
controls = pd.concat(control_rows, ignore_index=True)
controls_view = controls.assign(
    text=analysis.interval_text(controls["estimate"], controls["low"], controls["high"]),
    statistic=controls["statistic"].map(inference.STATISTICS),
).pivot_table(index=["pair", "reading", "statistic"], columns="control", values="text", aggfunc="first", sort=False)
downloads.wide(controls_view[[c for c in analysis.CONTROLS if c in controls_view.columns]].fillna("-"))

# %% [markdown]
# ## Weight against self-information
#
# The same panels for self-information, $-\log p(w)$: rare words are informative
# in the sense of surprise, and for unsupervised SimCSE, whose positive partner
# is the sentence itself, the theory ties the norm of a word's vector to
# self-information as well as to information gain (Theory chapter, section 1).

# %% tags=["hide-input"]
plotting.pair_panels(
    usable[usable["method"] == "ig"], pairs, "self_information", analysis.QUANTITIES["self_information"] + " (nats)",
    "Normalised Integrated-Gradients word weight against self-information: binned medians and least-squares lines, "
    "pre-trained (blue) and fine-tuned, the selected model (orange).", bins=settings.analysis.median_bins,
)
plt.show()

# %% [markdown]
# ## IG or SHAP: does the method change the answer? (exploratory)
#
# Both methods attributed the registered models (the drawn ones carry IG only),
# so the comparison is of the selected models and the pairs without seeds.

# %%
by_method = (paired[(paired["dataset"] == "all") & (paired["control"] == "none")]
             .pivot_table(index=["pair", "quantity"], columns="method", values="delta")
             .rename(index=analysis.QUANTITIES))
by_method[by_method.notna().all(axis=1)].style.format("{:+.3f}")

# %% [markdown]
# ## Across training seeds
#
# Each fresh seed, and each control seed, gets its own Δβ against the base (all
# datasets pooled, no covariates), on the same bootstrap draws: each seed's
# column shows its estimate (its own interval is in the download), the *mean*
# column the seeds' mean with its percentile interval over sentences (the seeds
# held fixed), and beside it the t interval across seeds (the seeds as draws of
# the recipe, these sentences held fixed: it leaves out the sentences' own
# sampling, which the recipe-level intervals above add).

# %%
seeds = analysis.seed_table(results, settings.analysis.level)
if len(seeds):
    seed_view = seeds.assign(quantity=seeds["quantity"].map(analysis.QUANTITIES), method=seeds["method"].str.upper(),
                             seed=seeds["seed"].str.extract(r"\((seed \d+)\)$", expand=False).fillna(seeds["seed"]),
                             Δβ=np.where(seeds["seed"] == "mean",
                                         analysis.interval_text(seeds["delta"], seeds["delta_low"], seeds["delta_high"]),
                                         [f"{d:+.3f}" if np.isfinite(d) else "-" for d in seeds["delta"]]))
    chosen_quantities = [analysis.QUANTITIES[q] for q in ("information_gain", "self_information")]
    seed_view = seed_view[seed_view["quantity"].isin(chosen_quantities)]
    seed_wide = seed_view.pivot_table(index=["pair", "side", "quantity"], columns="seed", values="Δβ",
                                      aggfunc="first", sort=False)
    means = seed_view[seed_view["seed"] == "mean"].set_index(["pair", "side", "quantity"])
    seed_wide["t interval across seeds"] = [f"[{lo:+.3f},{analysis.NO_BREAK}{hi:+.3f}]" if np.isfinite(lo) else "-"
                                            for lo, hi in zip(means["t_low"], means["t_high"])]
    seed_wide["seeds above 0"] = [f"{int(a)} of {int(k)}" for a, k in zip(means["seeds_above"], means["seeds"])]
    display(downloads.wide(seed_wide.fillna("-")))
else:
    display(Markdown("No pair of this profile has seeds."))

# %% tags=["remove-input"]
if len(seeds):
    display(downloads.csv_download(seeds, "delta_beta_by_seed.csv", "Δβ per seed"))
    single = seeds[seeds["seed"] != "mean"]
    flips = single.groupby(["pair", "side", "method", "quantity"])["delta"].agg(
        lambda d: bool((d > 0).any() and (d < 0).any()))
    glue("seed_deltas", {f"{r.pair}/{r.side}/{r.quantity}/{r.seed}": float(r.delta) for r in seeds.itertuples()},
         display=False)
    all_means = seeds[seeds["seed"] == "mean"]
    t_excludes = ((all_means["t_low"] > 0) | (all_means["t_high"] < 0)).sum()
    display(Markdown(
        f"In {int(flips.sum())} of {len(flips)} pair x side x method x quantity settings the seeds disagree on the "
        f"sign of Δβ; the t interval across seeds excludes 0 in {t_excludes} of {len(all_means)}. The median "
        f"standard deviation of Δβ between seeds is {all_means['seed_sd'].median():.3f}, against a median interval "
        f"width of {(single['delta_high'] - single['delta_low']).median():.3f} for one seed's sentences."))

# %% [markdown]
# ## The selected models, reported apart
#
# The search's winning runs at their best dev step, the models the other
# chapters show, against the same base: the first claim's Δβ and Δr under
# each adjustment (percentile intervals, exploratory: these models were
# chosen on dev, and a selection on dev quality may favour the hypothesis).

# %%
selected_pairs = [name for name in comparisons if name.endswith("(selected)")]
if selected_pairs:
    rows = []
    for control in ("none", "content words", "frequency"):
        name, methods, quantities, _ = claims[0]
        found, found_draws = inference.contrasts(results, [(name, methods, quantities, control)], pairs=selected_pairs)
        rows.append(inference.family(found, found_draws, settings.analysis.level, adjusted=False))
    selected = pd.concat(rows, ignore_index=True)
    display(selected.assign(text=analysis.interval_text(selected["estimate"], selected["low"], selected["high"]),
                            statistic=selected["statistic"].map(inference.STATISTICS))
            .pivot_table(index=["pair", "statistic"], columns="control", values="text", aggfunc="first", sort=False)
            .fillna("-"))
else:
    display(Markdown("No pair of this profile has a selected model apart from its seeds."))

# %% [markdown]
# ## A second base: the replication, and what the bases bring
#
# The unsupervised recipe and its control drawn again from the base search's
# runner-up (pair `book-unsup-2` above, decided in the same family). And, for
# each base, how its *input* word embeddings already weight words before any
# fine-tuning: the slope of a whole word's input-embedding norm on the word's
# statistics (per SD, over the vocabulary's whole words with usable
# statistics; descriptive). A base that starts from GloVe brings static vectors
# whose norms carry word statistics of their own.

# %%
bases = [name for name in ("book-mlm", "book-mlm-2")
         if name in settings.attribution.models or name in pipeline.draw_models(settings)]
norm_rows = []
for name in bases:
    encoder = pipeline.load_encoder(name, settings)
    vocabulary = encoder.tokenizer.get_vocab()
    embedding = encoder.model.get_input_embeddings().weight.detach().cpu().numpy()
    norms = pd.Series({token: float(np.linalg.norm(embedding[i])) for token, i in vocabulary.items()
                       if not token.startswith("##") and token not in encoder.tokenizer.all_special_tokens})
    known = table.reindex(norms.index)
    known = known[(known["count"] >= min_count) & known[list(analysis.QUANTITIES)].notna().all(axis=1)]
    for quantity in ("information_gain", "information_gain_corrected", "self_information"):
        x = known[quantity] / known[quantity].std()
        y = norms[known.index]
        norm_rows.append({"base": name, "quantity": analysis.QUANTITIES[quantity], "words": len(known),
                          "slope per SD": np.polyfit(x, y, 1)[0], "r": np.corrcoef(x, y)[0, 1]})
embedding_norms = pd.DataFrame(norm_rows)
if len(embedding_norms):
    display(embedding_norms.pivot(index="quantity", columns="base", values=["slope per SD", "r"]).style.format("{:+.3f}"))

# %% tags=["remove-input"]
if len(embedding_norms):
    glue("embedding_norms", {f"{row['base']}/{row['quantity']}": float(row["slope per SD"])
                             for row in embedding_norms.to_dict("records")}, display=False)
second = runs.second_base(settings) if "book-unsup-2" in primary_pairs else None
if second is not None:
    searched = [field for field, _ in settings.finetune.mlm_search]
    display(Markdown("The second base is the base search's runner-up on STS-B dev: "
                     + ", ".join(f"{field} {getattr(second, field) if getattr(second, field) is not None else 'none (random start)'}"
                                 for field in searched) + "."))
replicated = primary[(primary["pair"] == "book-unsup-2") & (primary["statistic"] == "delta beta")]
original = primary[(primary["pair"] == "book-unsup") & (primary["statistic"] == "delta beta")]
if len(replicated) and len(original):
    joined = original.merge(replicated, on=["claim", "reading"], suffixes=("", "_2"))
    same = joined[np.sign(joined["estimate"]) == np.sign(joined["estimate_2"])]
    display(Markdown(
        f"Of {len(joined)} Δβ members, the second base's replication has the sign of the first base's in "
        f"**{len(same)}**: " + "; ".join(
            f"{r.claim} ({r.reading}) {r.estimate:+.3f} on the first base, {r.estimate_2:+.3f} "
            f"[{r.low_2:+.3f}, {r.high_2:+.3f}] on the second ({POPULATION[r.verdict_2]})"
            for r in joined.itertuples()) + ". The replication's intervals are the family's own: it is decided with "
        "the first base's pairs, under the same critical value."))

# %% [markdown]
# ## The weighting's trajectory
#
# When during contrastive training does the weighting appear, and does it move
# with similarity quality? The chosen recipe's search run keeps a checkpoint at
# log-spaced steps (step 0 is the masked-LM base). At each snapshot, the
# Fine-tuning chapter's STS-B dev score, and here Δβ, the change of the slope
# of the normalised Integrated Gradients weight since the base, for each
# quantity (no covariates, all datasets pooled, `attribution.trajectory_sentences`
# sentences per dataset, the start of the chapter's sample, on the chapter's
# scale). All snapshots of a run are fitted on the same words and bootstrap
# draws, so each Δβ has a paired interval. The snapshots are many looks at one
# run: these intervals are exploratory.

# %%
trajectories = pd.concat([pipeline.trajectory(settings, supervised, scales).assign(run=label)
                          for label, supervised in (("unsup-SimCSE", False), ("sup-SimCSE", True))],
                         ignore_index=True)
trajectory_view = trajectories.assign(
    stsb_dev=trajectories["stsb_dev"].map("{:.2f}".format),
    change=analysis.interval_text(trajectories["delta"], trajectories["delta_low"], trajectories["delta_high"]))
(trajectory_view.pivot_table(index=["run", "step", "stsb_dev"], columns="quantity", values="change",
                             aggfunc="first", sort=False)
 .rename(columns=analysis.QUANTITIES).rename_axis(index={"stsb_dev": "STS-B dev"}))

# %% tags=["remove-input"]
downloads.csv_download(trajectories, "trajectory.csv", "the trajectory, with intervals")

# %% tags=["hide-input"]
runs_shown = list(trajectories.groupby("run", sort=False))
fig, axes = plotting.figure(
    "Δβ since the base (normalised IG weight per profile SD of the quantity, with paired sentence-bootstrap "
    "intervals, left axis) and STS-B dev Spearman x100 (black, right axis) along each search run of the chosen "
    "recipe; step 0 is the masked-LM base, the dotted line the snapshot the selected model keeps.",
    ncols=2, width=5.2, height=3.6,
)
for ax, (label, run) in zip(axes, runs_shown):
    x_of = {step: i for i, step in enumerate(sorted(run["step"].unique()))}
    for i, (quantity, rows) in enumerate(run.groupby("quantity", sort=False)):
        x = rows["step"].map(x_of)
        ax.errorbar(x + (i - 1.5) * 0.06, rows["delta"],
                    yerr=[rows["delta"] - rows["delta_low"], rows["delta_high"] - rows["delta"]],
                    marker="o", ms=3, lw=1, capsize=2, color=f"C{i}", label=analysis.QUANTITIES[quantity])
    dev = run.drop_duplicates("step")
    twin = ax.twinx()
    twin.plot(dev["step"].map(x_of), dev["stsb_dev"], "k--", marker="s", ms=3, lw=1)
    twin.set_ylabel("STS-B dev")
    twin.grid(False)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(x_of[int(dev.loc[dev["chosen"], "step"].iloc[0])], color="grey", ls=":", lw=1)
    ax.set_xticks(list(x_of.values()), [str(s) for s in x_of])
    ax.set(title=label, xlabel="step (log-spaced snapshots)", ylabel="Δβ since the base")
axes[0].legend(fontsize=7, loc="best");

# %% tags=["remove-input"]
def trajectory_sentence(label, run):
    raw = run[run["quantity"] == "information_gain"].set_index("step")
    first, last = raw.index.min(), raw.index.max()
    kept = int(raw.index[raw["chosen"]][0])

    def change(step):
        row = raw.loc[step]
        return f"{row['delta']:+.3f} [{row['delta_low']:+.3f}, {row['delta_high']:+.3f}]"

    at_last = "" if kept == last else f", and {change(last)} at the last, step {last:,}"
    return (f"**{label}**: Δβ on raw information gain since the base is {change(kept)} at the selected "
            f"step {kept:,}{at_last}, while STS-B dev goes from {raw.loc[first, 'stsb_dev']:.1f} to "
            f"{raw.loc[last, 'stsb_dev']:.1f}.")


display(Markdown(" ".join(trajectory_sentence(label, run) for label, run in runs_shown)))

# %% [markdown]
# ## Against the paper's claims
#
# The paper's tables are not available offline, so the comparison is with its
# claims, point by point, pair by pair; every number below is computed above.
# For context, the STS-B test score of each model (the Fine-tuning chapter's
# evaluation, the registered models).

# %%
pair_models = tuple(dict.fromkeys(m for p in pairs.values() for m in (p.pretrained, p.finetuned) if m))
all_scores = pipeline.sts_scores(settings, pair_models)  # cached by the Fine-tuning chapter
sts_scores = all_scores[all_scores["dataset"] == "stsb"].set_index("model")["spearman"]
sts_scores.rename("STS-B test Spearman x100").to_frame().style.format("{:.1f}")

# %% tags=["remove-input"]
per_dataset = inference.per_dataset(results, claims, settings.analysis.per_dataset_claim,
                                    list(settings.attribution.datasets), settings.analysis.level, pairs=primary_pairs)


def member(pair: str, claim: str, statistic: str = "delta beta", reading: str = "vs base"):
    rows = primary[(primary["pair"] == pair) & (primary["claim"] == claim) & (primary["statistic"] == statistic)
                   & (primary["reading"] == reading)]
    return rows.iloc[0] if len(rows) else None


def stated(row) -> str:
    return f"{inference.STATISTICS[row['statistic']]} {row['estimate']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def population(row) -> str:
    """Which population a verdict covers: this recipe's (from this base) only where its own interval agrees."""
    if row["verdict"] == "unclear" or not np.isfinite(row["recipe_low"]):
        return ""
    recipe = f"recipe level [{row['recipe_low']:+.3f}, {row['recipe_high']:+.3f}], {row['seeds']} fresh seeds"
    if row["recipe_verdict"] == row["verdict"]:
        words = "holds for this recipe from this base"
        # Only "reproduces" against the base has a simulated recipe-level rate (the wandering seeds'): elsewhere a description.
        simulated = row["reading"] == "vs base" and row["verdict"] == "more"
        return (f", and it **{words}** ({recipe})" if recipe_findings and simulated else
                f", and it {words} as a description only ({recipe}; "
                + ("no error rate was simulated for this reading)" if not simulated else
                   "the measured error rates do not allow it as a finding)"))
    return f": it holds for these trained models, not shown for the recipe ({recipe})"


def closeness(pair: str, claim: str) -> str:
    """What delta r says: the only ground for 'more closely'."""
    row = member(pair, claim, "delta r")
    if row is None:
        return ""
    said = {"more": "and it follows the quantity more closely", "less": "but it follows the quantity less closely",
            "unclear": "not shown to follow it more closely"}[row["verdict"]]
    return f"; {said} ({stated(row)})"


def control_change(pair: str, claim: str) -> str:
    """The control's own Δβ against the base, on the claim's fits: did the control move at all?"""
    name, methods, quantities, control = next(c for c in claims if c[0] == claim)
    comparison = results.comparisons[pair]
    _, _, side = comparison.sides()
    fits = [results.fits.get((pair, "all", m, q, control)) for m in methods for q in quantities]
    if side is None or any(fit is None for fit in fits):
        return ""
    change = np.mean([fit.beta[side].mean() - fit.beta[0] for fit in fits])
    return f"; the control's own Δβ against the base is {change:+.3f}"


def objective_adds(base, against) -> bool:
    """The difference is credited to the contrastive objective only where both readings lie above 0 (intersection-union)."""
    return base is not None and against is not None and base["verdict"] == "more" and against["verdict"] == "more"


def contrastive(pair: str, claim: str) -> str:
    """The difference in differences: does SimCSE's slope exceed its control's, and is it then the objective's?"""
    row = member(pair, claim, reading="vs control")
    if row is None:
        return ""
    base = member(pair, claim)
    said = {"more": "SimCSE's slope lies above its control's", "less": "SimCSE's slope lies below its control's",
            "unclear": "SimCSE's slope is not shown apart from its control's"}[row["verdict"]]
    if objective_adds(base, row):
        said += ", and above the base's: the contrastive objective, against this control, adds it"
    return f"; against the control, {said} ({stated(row)}{population(row)}{control_change(pair, claim)})"


def single(pair: str, claim: str) -> str:
    row = member(pair, claim)
    if row is None:
        return "not fitted"
    word = inference.claim_word([row["verdict"]])
    return (f"{stated(row)}: {f'**{word}**' if findings else word}{population(row)}{closeness(pair, claim)}"
            f"{contrastive(pair, claim)}")


def each_dataset(pair: str) -> str:
    rows = per_dataset[per_dataset["pair"] == pair]
    above, below = (rows["verdict"] == "more").sum(), (rows["verdict"] == "less").sum()
    unfitted = (rows["verdict"] == "not fitted").sum()
    word = inference.claim_word(rows["verdict"])
    return (f"{above} of {len(rows)} datasets above 0 and {below} below"
            + (f" ({unfitted} too small to fit)" if unfitted else "")
            + f", each at {rows['level'].iloc[0]:.1%}: "
            + (f"**{word}**" if dataset_status != "above" and findings else
               f"{word}, a description only (a measured error rate of the rule is above the nominal one)"))


# What the paper says that each claim of the default profile tests; another claim is described by its contrast.
PAPER_SAYS = {
    "information gain": "fine-tuned models weight words of high information gain more than their pre-trained twins",
    "self-information": "the same holds for self-information",
}


ADJUSTED = {"none": "", "content words": ", content words only, renormalised",
            "frequency": ", a linear trend in log frequency and subword count partialled out",
            "covariates": ", with the covariates", "sentence effects": ", within sentences"}


def described(name: str, methods, quantities, control) -> str:
    what = (f"claim \"{name}\": {' and '.join(m.upper() for m in methods)} on "
            + ", ".join(analysis.QUANTITIES[q] for q in quantities) + ADJUSTED[control] + ", one contrast")
    return f"Paper: {PAPER_SAYS[name]} ({what})" if name in PAPER_SAYS else f"Beyond the paper: {what}"


lines = []
for name, methods, quantities, control in claims:
    per_pair = "; ".join(f"{pair}: {single(pair, name)}" for pair in primary_pairs)
    lines.append(f"{len(lines) + 1}. *{described(name, methods, quantities, control)}.* {per_pair}.")
lines.append(f"{len(lines) + 1}. *Paper: it holds on each dataset (claim \"{settings.analysis.per_dataset_claim}\" "
             f"against the base, on each dataset alone; every dataset must lie above 0).* "
             + "; ".join(f"{pair}: {each_dataset(pair)}" for pair in primary_pairs) + ".")
glue("claim_words", {f"{pair}/{name}": inference.claim_word([member(pair, name)["verdict"]])
                     for name, *_ in claims for pair in primary_pairs if member(pair, name) is not None},
     display=False)
alone = results.table[results.table["pretrained"].isna() & (results.table["dataset"] == "all")
                      & (results.table["control"] == "none")]
if len(alone):
    lines.append(
        f"{len(lines) + 1}. " + "; ".join(sorted(set(alone["finetuned"])))
        + " has no pre-trained twin here, so no Δβ; its own slopes, pooled: "
        + ", ".join(f"{analysis.QUANTITIES[r.quantity]} by {r.method.upper()} {r.beta_fine:+.3f}"
                    for r in alone.itertuples()) + "."
    )
if not findings:
    lines.append(f"\nThe rule's false-positive rate on this profile's data is shown above the nominal "
                 f"{nominal:.0%}: these words describe the sample, they are not findings.")
# Faithfulness, which decides what a weight can be read as (the Attribution chapter's test, from its cached curves).
faith = settings.faithfulness
registered_words = frame[frame["model"].isin(registered["model"].unique())]
curves, _ = pipeline.faithfulness_curves(settings, registered_words)
versus, _ = faithfulness.compare_orders(faithfulness.summarise(curves), list(attribution.METHODS),
                                        faithfulness.RIVALS, faith.flips, settings.seed, faith.level)
text_frequency = versus[(versus["rival"] == "frequency") & (versus["removal"] == "text") & (versus["method"] == "ig")
                        & versus["model"].isin(pair_models)]
if len(text_frequency):
    # Where the intervals lie, both ways; the verdicts and their measured rate are the Attribution chapter's.
    above, below = (text_frequency["verdict"] == "more").sum(), (text_frequency["verdict"] == "less").sum()
    lines.append(f"\nWhat a weight can be read as: under text removal, the Attribution chapter's simultaneous "
                 f"intervals put the Integrated Gradients order of this chapter's pair models above the frequency "
                 f"order (rarest first) in {above} and below it in {below} of {len(text_frequency)} (model, measure, "
                 "score) comparisons (that chapter gives the rule's measured false-positive rate and reads them): "
                 "where the order is not above, the weights are not shown to find what the embedding needs better "
                 "than corpus frequency does, and a slope on information gain is a statement about the attributions, "
                 "not yet about what the model uses.")
for pair_name, pair in pairs.items():
    if pair.pretrained and pair.pretrained in sts_scores and pair.finetuned in sts_scores:
        change = sts_scores[pair.finetuned] - sts_scores[pair.pretrained]
        scores = f"{sts_scores[pair.pretrained]:.1f} to {sts_scores[pair.finetuned]:.1f}"
        if settings.from_study(pair_name):  # the file says which model was fine-tuned from which; nothing checks it
            lines.append(f"\n{pair_name}: from {pair.pretrained} to {pair.finetuned}, STS-B test changed by "
                         f"{change:+.1f} points ({scores}); the study file, not the book, says {pair.finetuned} was "
                         f"fine-tuned from {pair.pretrained}.")
        else:
            lines.append(f"\n{pair_name}: fine-tuning changed STS-B test by {change:+.1f} points ({scores}, the "
                         "registered models).")
if own_pairs:
    lines.append(f"\nThe study's own pairs ({', '.join(own_pairs)}) are read by the same rule as the book's: the "
                 "verdicts above are theirs too, for the models the study file names.")
hub_pairs = [name for name, pair in pairs.items() if settings.model(pair.finetuned).kind == "hub"
             and not settings.from_study(name)]
if hub_pairs:
    lines.append(
        f"\nThe paper's own models are compared here ({', '.join(hub_pairs)}), loaded from the Hugging Face "
        "Hub (at the commits `cwi.models.MODELS` pins, where it pins one). What this run still differs in: the "
        "paper's full sentence samples and its exact settings where the paper does not state them (the `# PAPER:` "
        "marks in `cwi.config` say where); their pairs have no seeds and no controls."
    )
else:
    lines.append(
        "\nWhat we cannot run offline: the paper's models (BERT, RoBERTa and their SimCSE twins; the "
        "`paper` profile loads them from the Hugging Face Hub), its full sentence samples, and its exact "
        "settings where the paper does not state them. The book's pairs are a small BERT the Fine-tuning chapter "
        "trains, so an effect of the paper's size need not appear at this scale, and one that appears "
        "here is evidence about this recipe at this scale, not about BERT-base."
    )
display(Markdown("\n".join(lines)))


INTERVAL_WORDS = {"more": "lies above 0", "less": "lies below 0", "unclear": "includes 0"}


def first_page(pair: str, claim: str, detailed: bool) -> str:
    """One pair on one claim, for the first page: against the base and against the control (with intervals if `detailed`).

    The verdict words where the measured rates allow findings; otherwise where each interval lies, as in the chapter.
    """
    row, against = member(pair, claim), member(pair, claim, reading="vs control")
    if row is None or row["verdict"] == "not fitted":
        return f"{pair} too few words to fit"
    word = inference.claim_word([row["verdict"]]) if findings else f"interval {INTERVAL_WORDS[row['verdict']]}"
    text = f"{pair} {stated(row)} {word}" if detailed else f"{pair} {word}"
    if against is not None and against["verdict"] != "not fitted":
        said = ({"more": "above", "less": "below", "unclear": "no clear difference"}[against["verdict"]] if findings
                else f"interval {INTERVAL_WORDS[against['verdict']]}")
        if findings and objective_adds(row, against):
            said = "above it and the base: contrastive"
        interval = (f" {against['estimate']:+.3f} [{against['low']:+.3f}, {against['high']:+.3f}]"
                    if detailed else "")
        text += f" (against its control{interval}: {said})"
    return text


has_controls = bool((primary["reading"] == "vs control").any())
rates_text = (f" The rule's false-positive rate with no effect: {sharp}, {STATUS_WORDS[status]}; with every "
              f"estimated effect removed, {removed}, " + ("above the nominal rate, so these are descriptions"
                                                          if status != "above" and removed_status == "above"
                                                          else STATUS_WORDS[removed_status]))
glue_finding(
    f"{len(claims)} claims fixed before this run, after earlier runs of the book on overlapping data (the measured "
    "rates do not cover that choice), each Δβ with its simultaneous interval against the base"
    + (" and against the matched non-contrastive control (the difference in differences)" if has_controls else "")
    + ", about these trained models (the recipe level is in the chapter). "
    + ("The paper's claim" if first_claim in PAPER_SAYS else "The first claim") + f", {first_claim}: "
    + "; ".join(first_page(pair, first_claim, detailed=True) for pair in primary_pairs) + ". "
    + " ".join(f"{name}: " + "; ".join(first_page(pair, name, detailed=False) for pair in primary_pairs) + "."
               for name, *_ in claims[1:])
    + rates_text + ".")


# %% [markdown]
# ## Execution record
#
# What this run used and cost: the profile, the kernel's wall time and peak
# memory, the package versions and the commit of the code.

# %% tags=["remove-input"]
record.execution_record(profile)
