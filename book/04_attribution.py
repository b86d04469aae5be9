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
# # Attribution: how much does each model weight each word?
#
# {cite:t}`kurita2023contrastive` measure how much a sentence encoder relies on
# each word with two attribution methods, Integrated Gradients
# {cite}`sundararajan2017axiomatic` and SHAP {cite}`lundberg2017unified`, and
# compare pre-trained models with their contrastively fine-tuned twins. This
# chapter computes those word weights for every model of the profile on sentences
# of the STS benchmarks, checks how far they add up to what the model outputs
# (and, for Integrated Gradients, how far every word's vector has converged), and
# caches them for the Correlations chapter.
#
# ## Attributing a vector
#
# An encoder maps a sentence $s$ of tokens with input embeddings
# $x_1, \dots, x_T$ to a vector $f(x) \in \mathbb{R}^d$. Both methods split the
# difference between the sentence and a *baseline* $x'$ into one vector per token,
#
# $$ f(x) - f(x') = \sum_{i=1}^{T} c_i, \qquad c_i \in \mathbb{R}^d, $$ (eq-completeness)
#
# and a word's weight is the norm of the sum of its tokens' vectors,
# $\lVert \sum_{i \in w} c_i \rVert_2$. The baseline replaces every token but
# [CLS] and [SEP] by the input embedding of [PAD] (the chapter also tries [MASK]
# and zero vectors), so a weight measures what the word adds to an empty
# sentence of the same length. The special tokens stay in the input and out of
# the tables. A *normalised* weight divides by the mean weight of the
# sentence's words, so that a model that weights all words alike gives 1 to each
# and models of different scale compare.
#
# **Integrated Gradients** integrates the Jacobian along the straight path
# $x(\alpha) = x' + \alpha (x - x')$:
#
# $$ c_i = \int_0^1 J_i\big(x(\alpha)\big)\, (x_i - x'_i)\, d\alpha , $$ (eq-ig-vector)
#
# where $J_i$ is the $d \times e$ Jacobian of $f$ with respect to token $i$'s
# embedding. The integrand is a Jacobian-*vector* product, so forward-mode
# differentiation gets all $d$ dimensions in one pass per tangent and path point,
# where captum's backward-mode `IntegratedGradients` needs one pass per output
# dimension. The product is linear in the tangent, so one tangent holding all of
# a word's token differences gives the sum of its tokens' vectors, the word's
# vector, in one pass: `cwi.attribution.word_integrated_gradients` runs one
# tangent per *word*, and sentences of similar length share one padded, masked
# call (`torch.func.jvp` vectorised with `vmap`).
#
# The integral is a quadrature rule; its error shows as a gap in
# {eq}`eq-completeness`, the *completeness error*
# $\lVert \sum_i c_i - (f(x) - f(x')) \rVert / \lVert f(x) - f(x') \rVert$.
# The sum of the words can converge while single words have not (their errors
# cancel), so each word is checked too: the *word error* is the largest change of
# a word's vector between the rule and the coarser rule embedded in it,
# relative to the sentence's mean word weight, the scale of the normalised
# weights (`cwi.integrated_gradients.word_error`).
# Each sentence gets the fewest path points that keep both errors under the
# profile's target: it runs the first rule of a doubling sequence and goes on to
# the next only while an error is too large. The rules are Clenshaw-Curtis
# rules, whose points nest (every point of a rule is a point of the next one),
# so a sentence that needs more points reuses every one already computed;
# captum's Gauss-Legendre rule converges alike on these models (below) but its
# points of different sizes share nothing.
#
# **SHAP** plays a game whose players are the *words* and whose payoff for a
# coalition is $f$ of the sentence with the other words' tokens set to the
# baseline (`cwi.attribution.word_shap`). shap's Partition explainer computes
# *Owen values* over a hierarchy of word groups (shap's own text heuristic,
# applied to words), so a word's value depends on that hierarchy: it equals the
# Shapley value for additive models, is always efficient ({eq}`eq-completeness`
# holds to rounding, even when the explainer's budget runs out and a group
# shares its credit equally, which is why spent budgets are counted below), at a cost that grows
# with the square of the sentence length rather than exponentially, and all $d$
# outputs share each model evaluation. An Owen value splits a group's credit
# among its members without changing the sum, so a word's value is the same
# whether the word is one player or its tokens are players nested under it
# (tested); the word game needs far fewer coalitions, and those the explainer asks
# for twice are evaluated once. A masked word takes the *same* baseline embedding
# as in Integrated Gradients, so the two methods divide the same difference
# $f(x) - f(x')$.

# %% tags=["remove-cell"]
import os
import textwrap
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import HTML, Markdown, display
from myst_nb import glue
from scipy import stats as scistats

from cwi import (analysis, attribution, config, data, downloads, faithfulness, findings, inference, interactive,
                 pipeline, plotting, record)
from cwi.encoders import normalized

# %% tags=["parameters"]
profile = os.environ.get("CWI_PROFILE", "default")  # a built-in profile or a study file

# %%
settings = config.get_profile(profile)
attribution_settings = settings.attribution
plotting.use_book_style()
attribution_settings

# %% [markdown]
# ## The models
#
# Every model of the profile, loaded once. In the offline profiles these are the
# book's small BERT before and after SimCSE (trained in the Fine-tuning chapter,
# loaded here from the checkpoint cache) and all-MiniLM-L6-v2, a contrastive
# model whose pre-trained base is on the Hub only. A model from the Hugging Face
# Hub shows the commit its weights came from; the tokenizer column says how its
# tokens are aligned with the statistics' words (by characters, whatever the kind).

# %%
encoders = {name: pipeline.load_encoder(name, settings) for name in attribution_settings.models}
pd.DataFrame([
    {"model": name, "defined in": "the study file" if settings.from_study(name) else "built in",
     "contrastive": settings.model(name).contrastive, "pooling": e.pooling,
     "parameters": sum(p.numel() for p in e.model.parameters()), "d": e.model.config.hidden_size,
     "max tokens": e.max_length, "tokenizer": type(e.tokenizer.backend_tokenizer.model).__name__,
     "Hub commit": (e.revision or "")[:12] or "(local)", "device": str(e.device)}
    for name, e in encoders.items()
]).style.hide(axis="index").format({"parameters": "{:,}"})

# %% [markdown]
# ## Forward mode equals captum
#
# On one sentence and the first model, the forward-mode implementation against
# captum's `IntegratedGradients` called once per output dimension, with the same
# Gauss-Legendre rule. (The speed of both is measured in `benchmarks/attribution_engines.py`.)

# %%
check_model = encoders[attribution_settings.models[0]]
check_sentence = "A man is playing a guitar on the street."
start = time.perf_counter()
check_steps = attribution_settings.captum_check_steps
fast = attribution.integrated_gradients(check_model, check_sentence, steps=check_steps).values
fast_seconds = time.perf_counter() - start
start = time.perf_counter()
reference = attribution.integrated_gradients_captum(check_model, check_sentence, steps=check_steps)
captum_seconds = time.perf_counter() - start
captum_difference = (fast - reference).abs().max().item()

# %% tags=["remove-input"]
display(Markdown(
    f"On *{check_sentence}* with {check_model.name} ({tuple(fast.shape)[0]} tokens, d = {fast.shape[1]}, {check_steps} steps), "
    f"the largest difference between the two is **{captum_difference:.1e}** (float32); forward mode took "
    f"{fast_seconds:.2f} s and captum's loop {captum_seconds:.2f} s."
))

# %% [markdown]
# ## How many path points?
#
# The completeness error of Integrated Gradients against the number of path
# points, each rule of the profile's sequence run on every one of the first
# sentences of the STS-B sample, with Clenshaw-Curtis and with Gauss-Legendre
# points. The adaptive rule stops each sentence at the first size under the
# target (`completeness_target`), so the curves show where each model stops.

# %%
target = attribution_settings.completeness_target
points = attribution_settings.path_points
check_sentences = data.sample_sts_sentences("stsb", attribution_settings.baseline_sentences, settings.seed)
# Gauss-Legendre rules share no points, so that comparison stops one size short of the largest.
compared = {"clenshaw-curtis": points, "gauss-legendre": points[:-1] or points}
completeness_by_points = pd.concat([
    attribution.completeness_sweep(encoder, check_sentences, compared[rule], attribution_settings.baseline, rule)
    .assign(model=name, rule=rule)
    for name, encoder in encoders.items() for rule in attribution.RULES
], ignore_index=True)

# %% tags=["hide-input"]
fig, (ax,) = plotting.figure(
    f"Median completeness error of Integrated Gradients over {len(check_sentences)} STS-B sentences against "
    f"the number of path points (log scales; solid: Clenshaw-Curtis, dashed: Gauss-Legendre; the grey line is "
    f"the {target:.0%} target).",
    width=6.5,
)
sns.lineplot(completeness_by_points, x="points", y="median error", hue="model", style="rule", marker="o", ax=ax)
ax.set(xscale="log", ylabel="median completeness error")
ax.set_yscale("symlog", linthresh=1e-4)
ax.set_ylim(bottom=0)
ax.axhline(target, ls="--", color="grey")
sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
completeness_by_points.pivot(index=["model", "rule"], columns="points", values="median error").style.format(
    "{:.2%}", na_rep="not run")

# %% tags=["remove-input"]
profile_rule = completeness_by_points[completeness_by_points["rule"] == attribution_settings.quadrature]
largest = profile_rule[profile_rule["points"] == points[-1]]
glue("completeness_median_max", float(largest["median error"].max()), display=False)
glue("completeness_target", target, display=False)
meeting = profile_rule[profile_rule["median error"] < target]
fewest = meeting.groupby("model")["points"].min().reindex(list(encoders))
display(Markdown(
    f"With {attribution_settings.quadrature.title()} rules, the median sentence meets the {target:.0%} target at "
    + "; ".join(f"{name} {'none of ' + str(points) if np.isnan(n) else int(n)} points"
                for name, n in fewest.items())
    + f". The largest rule of the sequence ({points[-1]} points) leaves a median error of at most "
    f"**{largest['median error'].max():.2%}** ({largest.loc[largest['median error'].idxmax(), 'model']})"
    + ("." if largest["median error"].max() < target else f": **over the {target:.0%} target**.")
))

# %% [markdown]
# ## Does the stopping rule stop in time? Word by word, against a finer rule
#
# The rule estimates the error of each rule it keeps from the two rules
# embedded in it: a word's change from the rule of half the intervals measures
# the *coarser* rule's error, and the ratio of the last two changes says how
# fast the rules converge, so the kept rule's own error is extrapolated as
# $d_1 \min(1, d_1 / d_2)$ (`cwi.integrated_gradients.word_error`; never more
# than the conservative $d_1$). Whether that is safe is checked here, not
# assumed: on the check sentences, each model's adaptive result against a
# single rule of `attribution.reference_points` points, every word's *true*
# error (its vector's distance from the reference's, relative to the sentence's
# mean word weight, the scale of the target).

# %%
start = time.perf_counter()
rule_checks = pd.concat([
    attribution.rule_check(encoder, check_sentences, points, attribution_settings.reference_points, target,
                           attribution_settings.baseline).assign(model=name)
    for name, encoder in encoders.items()], ignore_index=True)
rule_seconds = time.perf_counter() - start
rule_checks.groupby("model", sort=False).agg(
    sentences=("points", "size"), mean_points=("points", "mean"), worst_estimated=("estimated", "max"),
    worst_true=("true", "max"), median_true=("true", "median"), within_target=("within_target", "mean"),
    worst_weight_change=("weight_error", "max")).rename(columns=lambda c: c.replace("_", " ")).style.format(
    {"mean points": "{:.1f}", "worst estimated": "{:.2e}", "worst true": "{:.2e}", "median true": "{:.2e}",
     "within target": "{:.0%}", "worst weight change": "{:.2e}"})

# %% tags=["remove-input"]
glue("rule_check", {"worst_true": float(rule_checks["true"].max()),
                    "within_target": float(rule_checks["within_target"].mean()),
                    "mean_points": float(rule_checks["points"].mean())}, display=False)
missed = rule_checks[~rule_checks["within_target"]]
display(Markdown(
    f"Against {attribution_settings.reference_points} points, the worst true word error of a kept rule is "
    f"**{rule_checks['true'].max():.2%}** of the mean word weight ({rule_checks.loc[rule_checks['true'].idxmax(), 'model']}), "
    f"and {rule_checks['within_target'].mean():.0%} of the {len(rule_checks)} (model, sentence) attributions are "
    f"within the {target:.0%} target"
    + (". " if missed.empty else
       f"; {len(missed)} are not ({', '.join(sorted(set(missed['model'])))}: "
       + ("each kept the largest rule, whatever its error. " if (missed["points"] == points[-1]).all()
          else "the extrapolation stopped them too early. "))
    + f"No normalised weight moves by more than {rule_checks['weight_error'].max():.3f} against the reference's "
    f"({rule_seconds:.0f} s for the check)."
))

# %% [markdown]
# ## Word weights for every model, dataset and method
#
# The profile draws distinct sentences from each STS dataset's test split (both
# sides of every pair, duplicates removed, seeded: `cwi.data.sample_sts_sentences`),
# never a sentence of STS-B dev, where the book makes its choices, even where
# another dataset's test split holds it too (STS-B was assembled from the STS
# tasks' sets), and attributes them with both
# methods. Each (model, dataset, method) table is cached under a key made of the
# model's weights, the sentences and the settings
# (`cwi.pipeline.word_weights`); the Correlations chapter reads the same
# tables with `cwi.pipeline.profile_word_weights`.

# %%
start = time.perf_counter()
weights = pipeline.profile_word_weights(settings, encoders)
weights_seconds = time.perf_counter() - start
start = time.perf_counter()
drawn_weights = pipeline.seed_word_weights(settings)  # the fresh seeds, the controls, the second base
drawn_seconds = time.perf_counter() - start
per_sentence = weights.groupby(["model", "method", "dataset", "sentence_id"]).agg(
    error=("completeness_error", "first"), word_error=("word_error", "first"), truncated=("truncated", "first"),
    words=("word", "size"), evaluations=("evaluations", "first"), points=("path_points", "first"),
    budget_spent=("budget_spent", "first"))
summary = per_sentence.groupby(["model", "method"]).agg(
    sentences=("words", "size"), words=("words", "sum"), median_error=("error", "median"),
    max_error=("error", "max"), max_word_error=("word_error", "max"), budget_spent=("budget_spent", "sum"),
    evaluations=("evaluations", "mean"), truncated=("truncated", "sum"))
# A spent budget is SHAP's alone; IG's rows show "-" there, as SHAP's do for the word error.
summary["budget_spent"] = summary["budget_spent"].astype(float).where(summary.index.get_level_values("method") == "shap")
# Column names with spaces, so that the table wraps its header to the text column.
display(summary.rename(columns=lambda column: column.replace("_", " ")).style.format(
    {"median error": "{:.2e}", "max error": "{:.2e}", "max word error": "{:.2e}", "words": "{:,}",
     "evaluations": "{:,.0f}", "budget spent": "{:,.0f}"}, na_rep="-"))

# %% tags=["remove-input"]
downloads.csv_download(per_sentence, "attribution_per_sentence.csv", "the checks of every attributed sentence")

# %% [markdown]
# The drawn models of the Fine-tuning chapter (each recipe's fresh seeds, their
# matched controls and the second base's replication, on the same sentences)
# are attributed with `attribution.draw_methods` only; the Correlations chapter
# decides its claims on them. Their checks, by group:

# %%
if len(drawn_weights):
    drawn_groups = drawn_weights["model"].str.replace(r" \(seed \d+\)$", " (seeds)", regex=True)
    drawn_sentences = drawn_weights.assign(group=drawn_groups).groupby(
        ["group", "model", "method", "dataset", "sentence_id"]).agg(
        error=("completeness_error", "first"), word_error=("word_error", "first"), points=("path_points", "first"))
    display(drawn_sentences.groupby(["group", "method"], sort=False).agg(
        models=("error", lambda e: e.index.get_level_values("model").nunique()), sentences=("error", "size"),
        median_error=("error", "median"), max_word_error=("word_error", "max"), mean_points=("points", "mean"))
        .rename(columns=lambda c: c.replace("_", " ")).style.format(
        {"median error": "{:.2e}", "max word error": "{:.2e}", "mean points": "{:.1f}"}))

# %% tags=["remove-input"]
glue("drawn_models", int(drawn_weights["model"].nunique()) if len(drawn_weights) else 0, display=False)
if len(drawn_weights):
    display(Markdown(f"{drawn_weights['model'].nunique()} drawn models, {len(drawn_weights):,} word weights "
                     f"({drawn_seconds:.0f} s here, from the cache or computed); "
                     f"{attribution.unconverged(drawn_sentences['error'], drawn_sentences['word_error'], target).mean():.1%} "
                     f"of their sentence attributions miss the {target:.0%} target."))
else:
    display(Markdown("This profile draws no models (it attributes none of the book's SimCSE models)."))

# %% [markdown]
# `evaluations` is the mean number of sequences the model ran per sentence: path
# points x words for IG, distinct coalitions for SHAP. "max word error" is IG's
# largest word error, "budget spent" the sentences whose SHAP explainer used its
# whole `attribution.shap_max_evals` (none when it is unset: every group is
# expanded). The path points each sentence kept, by model (share of its sentences):

# %%
kept = per_sentence.xs("ig", level="method")["points"].astype(int)
points_used = pd.crosstab(kept.index.get_level_values("model"), kept, normalize="index")
points_used.index.name, points_used.columns.name = "model", "path points"
points_used.style.format("{:.0%}")

# %% tags=["remove-input"]
glue("sentences_by_model", {m: int(n) // 2 for m, n in per_sentence.groupby("model").size().items()}, display=False)
ig_errors = per_sentence.xs("ig", level="method")["error"]
ig_word_errors = per_sentence.xs("ig", level="method")["word_error"]
shap_errors = per_sentence.xs("shap", level="method")["error"]
spent = per_sentence.xs("shap", level="method")["budget_spent"].astype(bool)
glue("shap_efficiency_max", float(shap_errors.max()), display=False)
glue("shap_budget_spent", int(spent.sum()), display=False)
glue("ig_word_error_median", float(ig_word_errors.median()), display=False)
glue("captum_difference", captum_difference, display=False)
chosen_on = data.choice_sentences()
left_out = {}
for dataset in attribution_settings.datasets:
    rows = data.sts_split(dataset, "test")
    texts = {data.normalise_sentence(t) for t in pd.concat([rows["sentence1"], rows["sentence2"]])}
    left_out[dataset] = (len(texts & chosen_on), len(texts))
glue("dev_sentences_left_out", {d: n for d, (n, _) in left_out.items()}, display=False)
display(Markdown(
    "Test sentences that are also STS-B dev sentences, left out of the draws: "
    + ", ".join(f"{d} {n:,} of {total:,}" for d, (n, total) in left_out.items()) + ". "
    f"{weights['sentence'].nunique():,} distinct sentences from {len(attribution_settings.datasets)} datasets, "
    f"{len(weights):,} word weights in all ({weights_seconds:.0f} s here, from the cache or computed); "
    + ", ".join(f"{n} sentences per dataset with {m}" for m, n in
                (per_sentence.groupby("model").size() // (2 * len(attribution_settings.datasets))).items())
    + f". Integrated Gradients: median completeness error {ig_errors.median():.2e} and median word error "
    f"{ig_word_errors.median():.2e}; {attribution.unconverged(ig_errors, ig_word_errors, target).mean():.1%} of "
    f"(model, sentence) pairs have one at or above {target:.0%} (those kept the largest rule, {points[-1]} "
    f"points). SHAP's efficiency error is at most {shap_errors.max():.1e}, and "
    + (f"{int(spent.sum())} of {len(spent)} sentence attributions spent the explainer's budget (their unexpanded "
       "groups share credit equally). " if spent.any() else
       "no sentence spent the explainer's budget, so every group of words was expanded. ")
    + 
    f"{int(per_sentence['truncated'].sum())} sentence attributions were cut to the model's maximum length."
))

# %% [markdown]
# ## Examples
#
# Sentences coloured by normalised weight (white: no weight, darkest: three times
# the sentence's mean or more; hover for the value), each model on its own line so
# that the pre-trained model and its fine-tuned twins read side by side.

# %% tags=["hide-input"]
def show_sentence(sentence_rows: pd.DataFrame, method: str) -> None:
    """One coloured line per model for the same sentence."""
    parts = []
    for name in attribution_settings.models:
        row = sentence_rows[(sentence_rows["model"] == name) & (sentence_rows["method"] == method)]
        parts.append(plotting.coloured_words(row["word"], row["normalised_weight"], label=name))
    display(HTML("".join(parts)))


example_ids = weights.query("dataset == 'stsb'")["sentence_id"].drop_duplicates().iloc[:4]
for sentence_id in example_ids:
    sentence_rows = weights.query("dataset == 'stsb' and sentence_id == @sentence_id")
    display(Markdown(f"*{sentence_rows['sentence'].iloc[0]}* (Integrated Gradients)"))
    show_sentence(sentence_rows, "ig")

# %% [markdown]
# ## Do IG and SHAP agree?
#
# Both methods explain the same difference, but they integrate along different
# routes: IG along one straight path, SHAP over coalitions of tokens. Their
# agreement is the Spearman correlation between the two methods' word weights
# within each sentence of at least three words.

# %%
sentence = ["model", "dataset", "sentence_id"]
agreement = analysis.within_sentence_spearman(weights[weights["method"] == "ig"], weights[weights["method"] == "shap"],
                                              by=sentence).reset_index()
pooled = weights.pivot_table(index=sentence + ["word_index"], columns="method", values="weight").dropna()

# %% tags=["hide-input"]
fig, (ax,) = plotting.figure(
    "Per-sentence Spearman correlation between IG and SHAP word weights, for each model (all datasets).",
    width=6.5,
)
sns.boxplot(agreement, x="spearman", y="model", ax=ax, color="C0", fliersize=2)
ax.set(xlabel="Spearman rho (IG vs SHAP) per sentence", ylabel="")
agreement.groupby("model")["spearman"].describe()[["count", "25%", "50%", "75%"]].style.format("{:.2f}")

# %% tags=["remove-input"]
medians = agreement.groupby("model")["spearman"].median()
display(Markdown(
    f"The median per-sentence rank correlation between the methods ranges from {medians.min():.2f} "
    f"({medians.idxmin()}) to {medians.max():.2f} ({medians.idxmax()}); pooled over all words of all models "
    f"the two weights correlate at Spearman {scistats.spearmanr(pooled['ig'], pooled['shap']).statistic:.2f}."
))

# %% [markdown]
# ## How much does the baseline matter?
#
# Integrated Gradients with each baseline on the same sentences: the per-sentence
# Spearman correlation of the word weights with those from the profile's baseline,
# and how the mean completeness error changes.

# %%
rows = []
ig_settings = {**attribution_settings.method_settings("ig"), "memory_gb": attribution_settings.memory_gb}
for name, encoder in encoders.items():
    tables = {baseline: attribution.word_weights(encoder, check_sentences, "ig", baseline=baseline, **ig_settings)
              for baseline in attribution.BASELINES}
    reference_table = tables[attribution_settings.baseline]
    for baseline, table in tables.items():
        rows.append({"model": name, "baseline": baseline,
                     "median rho with profile baseline": analysis.within_sentence_spearman(table, reference_table).median(),
                     "median completeness error": table.groupby("sentence_id")["completeness_error"].first().median()})
baseline_effect = pd.DataFrame(rows)
baseline_effect.pivot(index="model", columns="baseline", values="median rho with profile baseline").style.format("{:.2f}")

# %% tags=["remove-input"]
others = baseline_effect[baseline_effect["baseline"] != attribution_settings.baseline]
worst = others.loc[others["median rho with profile baseline"].idxmin()]
display(Markdown(
    f"Changing the baseline keeps the within-sentence ranking of words at a median Spearman between "
    f"{others['median rho with profile baseline'].min():.2f} and {others['median rho with profile baseline'].max():.2f} "
    f"(lowest: {worst['model']} with the {worst['baseline']} baseline). "
    f"The baseline is a real choice, so the Correlations chapter keeps one ({attribution_settings.baseline}, "
    "as the profile says) "
    "for every model and method."
))

# %% [markdown]
# ## The normalised output
#
# The sentence-transformers models end with a `Normalize` module: their users
# compare unit vectors. The book attributes the pooled vector *before* that step,
# the same quantity for every model (most have no such module), and measures here
# what attributing the normalised vector instead would change: Integrated
# Gradients of the normalised vector on the model's whole attributed sample
# (cached like the book's tables), and the per-sentence Spearman correlation of
# the two word weights, over the sentences of at least three words
# (`cwi.encoders.normalized`).

# %%
normalising = [name for name in encoders if settings.model(name).normalized]
normalised_rows = []
for name in normalising:
    unit = normalized(encoders[name])
    plain = weights[(weights["model"] == name) & (weights["method"] == "ig")]
    unit_table = pd.concat([pipeline.word_weights(unit, dataset, "ig", settings,
                                                  sentences_per_dataset=attribution_settings.sentences(name))
                            .assign(dataset=dataset) for dataset in attribution_settings.datasets], ignore_index=True)
    rho = analysis.within_sentence_spearman(plain, unit_table, by=["dataset", "sentence_id"])
    normalised_rows.append({"model": name, "sentences": len(rho), "median Spearman": rho.median(),
                            "10th percentile": rho.quantile(0.1), "lowest": rho.min()})
normalised_effect = pd.DataFrame(normalised_rows,
                                 columns=["model", "sentences", "median Spearman", "10th percentile", "lowest"])
normalised_effect.style.format(precision=3).hide(axis="index")

# %% tags=["remove-input"]
glue("normalised_spearman", dict(zip(normalised_effect["model"], normalised_effect["median Spearman"].astype(float))),
     display=False)
display(Markdown(
    "No model of this profile ends with a normalisation." if not len(normalised_effect) else
    "Attributing the normalised vector instead keeps the within-sentence ranking of words at a median Spearman of "
    + "; ".join(f"{r['median Spearman']:.3f} for {r['model']} (10th percentile {r['10th percentile']:.3f}, lowest "
                f"{r['lowest']:.3f}, over {r['sentences']} sentences)" for _, r in normalised_effect.iterrows())
    + ". The book's weights are those of the vector before normalisation, for every model alike."
))

# %% [markdown]
# ## Are the weights faithful?
#
# Completeness says the word vectors add up; it does not say that the words a
# method ranks first are those the embedding depends on. And for a claim about
# information weighting the rival is trivial: perhaps corpus frequency alone
# (rarest first, the order of IDF) finds the words that matter as well as
# Integrated Gradients or SHAP do. So each model's words are removed one at a
# time, in several orders, and the cosine between the partial sentence's
# embedding and the full sentence's is followed (`cwi.faithfulness`):
#
# * **orders**: each method's weights (largest first), frequency (rarest
#   first), information gain (largest first among the words with usable
#   statistics; words too rare for one lead, rarest first) and random orders
#   (their mean); ties are broken at random;
# * **deletion** removes the first k words, **insertion** keeps only them;
# * a word is **removed** in two ways, since either alone can mislead
#   {cite}`madsen2023posthoc`: its tokens become the attribution baseline's
#   (the input both methods compare with: the sentence keeps its length), or its
#   characters are deleted and the sentence is tokenised again. The first is
#   partly self-consistency, since SHAP's game is played with exactly that
#   removal and Integrated Gradients' path ends there; the second, where a
#   removed word leaves no trace, is the independent check;
# * the partial sentence is compared with the full one by two **measures**:
#   the cosine, the direction an STS user compares, and the Euclidean distance
#   $\lVert f(x_S) - f(x)\rVert / \lVert f(x) - f(x_0)\rVert$, with $x_0$ the
#   sentence with every word removed (for the baseline removal, $x_0$ is the
#   attribution baseline $x'$ itself). A weight is the norm of a word's share
#   $c_w$ of $f(x) - f(x')$, so the distance is the scale the weights
#   decompose; deleting $w$ moves $1 - \cos$ by only about
#   $\lVert P c_w\rVert^2 / (2 \lVert f(x)\rVert^2)$, with $P$ the projection
#   off $f(x)$: quadratic, and blind to the part of $c_w$ along $f(x)$, which in
#   an anisotropic pre-trained model can be much of it. The cosine curves alone
#   could tilt the pre-trained-versus-fine-tuned comparison for reasons of
#   geometry, so every comparison below is made on both measures;
# * **comprehensiveness** is the mean gap (1 - cosine, or the distance) over
#   the deletion steps (higher: the order finds what the embedding needs),
#   **sufficiency** the mean gap over the insertion steps (lower: the first
#   words alone rebuild the embedding): area-over-the-curve scores in the
#   manner of {cite:t}`deyoung2020eraser`, over every step but the two every
#   order shares (nothing removed, everything removed);
# * a greedy **oracle** per measure and direction (at each step the word whose
#   removal, or return, moves the gap most: a leave-one-out search) gives each
#   score a ceiling, and the **normalised AOPC** $(\text{order} -
#   \text{random}) / (\text{oracle} - \text{random})$ puts every model on one
#   scale: 0 is chance, 1 the oracle. The four searches cost up to $2W^2$
#   embeddings per sentence, so they run on a nested subsample of each dataset's
#   sentences (`faithfulness.oracle_sentences`), and the normalised scores are
#   means over those.
#
# The curves use the first sentences of each model's attributed sample
# (`faithfulness.sentences_per_dataset`), so nothing is attributed again, and
# are cached under the model's weights and every order of every sentence.

# %%
start = time.perf_counter()
statistics = pipeline.corpus_statistics(settings)  # cached by the Statistics chapter
words = analysis.attach_statistics(weights, statistics, settings.stats.min_count)
curves, leave_one_out = pipeline.faithfulness_curves(settings, words, encoders)
faithfulness_seconds = time.perf_counter() - start
scores = faithfulness.summarise(curves)
(scores[~scores["order"].str.startswith(faithfulness.ORACLE)]
 .groupby(["model", "measure", "removal", "order"], sort=False)[list(faithfulness.SUMMARIES)].mean()
 .unstack("removal").style.format("{:.3f}"))

# %% tags=["remove-input"]
downloads.csv_download(scores, "faithfulness_scores.csv", "every sentence's comprehensiveness and sufficiency")

# %% tags=["hide-input"]
order_names = list(attribution.METHODS) + list(faithfulness.RIVALS)
deletion = curves[(curves["direction"] == "deletion") & ~curves["order"].str.startswith(faithfulness.ORACLE)]
mean_curves = pd.concat([faithfulness.on_grid(deletion, column=column)
                         .groupby(["model", "removal", "order", "fraction"], sort=False)[column].mean()
                         .rename("value").reset_index().assign(measure=measure)
                         for measure, column in (("cosine", "cosine"), ("euclidean", "distance"))], ignore_index=True)
panels = [(removal, measure) for removal in settings.faithfulness.removals for measure in faithfulness.MEASURES]
fig, axes = plotting.figure(
    "Deletion curves: the mean cosine to the full sentence (falls fastest for a faithful order) and the mean "
    "Euclidean distance from it over that of the sentence with every word removed (rises fastest), after the first "
    "words of each order are removed, against the fraction removed (one panel per model; rows: removal by the "
    "baseline or from the text, and measure).",
    width=2.2, height=2.0, ncols=len(encoders), nrows=len(panels), sharey="row",
)
axes = np.asarray(axes).reshape(len(panels), len(encoders))
for row, (removal, measure) in enumerate(panels):
    for column, name in enumerate(encoders):
        ax = axes[row, column]
        shown = mean_curves[(mean_curves["model"] == name) & (mean_curves["removal"] == removal)
                            & (mean_curves["measure"] == measure)]
        sns.lineplot(shown, x="fraction", y="value", hue="order", hue_order=order_names, ax=ax,
                     legend=row == 0 and column == len(encoders) - 1)
        ax.set(xlabel="fraction removed" if row == len(panels) - 1 and column == 0 else "",
               ylabel=f"{'cosine' if measure == 'cosine' else 'distance'} ({removal})" if column == 0 else "")
        ax.set_xticks([0, 0.5, 1], ["0", "½", "1"])
        if row == 0:  # long names wrap at a hyphen, so that neighbouring titles do not run together
            ax.set_title(textwrap.fill(name, 12), fontsize=9)
sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)

# %% [markdown]
# **On one scale.** Raw scores differ between models for reasons of geometry
# (an anisotropic model's cosines all sit near 1). The normalised AOPC sets
# each order between the model's own random orders (0) and its greedy oracle
# (1), per measure, removal and score, from the means over the sentences that
# have an oracle; it is a description of those sentences, with no interval.

# %%
normalised = faithfulness.normalised_aopc(scores)
(normalised[normalised["order"] != "random"]
 .pivot_table(index=["model", "removal", "measure", "score"], columns="order", values="normalised", sort=False)
 .style.format("{:.2f}"))

# %% tags=["remove-input"]
downloads.csv_download(normalised, "faithfulness_normalised.csv", "every order's AOPC, its random and oracle scores")
ig_scaled = normalised[(normalised["order"] == "ig") & (normalised["score"] == "comprehensiveness")]
glue("faithfulness_normalised", {f"{r.model}/{r.removal}/{r.measure}": findings.glued_number(r.normalised)
                                 for r in ig_scaled.itertuples()}, display=False)


def scaled_range(rows: pd.DataFrame) -> str:
    """The lowest and highest normalised AOPC of `rows`, each with its model and removal."""
    low, high = rows.loc[rows["normalised"].idxmin()], rows.loc[rows["normalised"].idxmax()]
    return (f"from {low['normalised']:.2f} ({low['model']}, {low['removal']} removal) to {high['normalised']:.2f} "
            f"({high['model']}, {high['removal']} removal)")


ranges = [f"on the {measure} measure {scaled_range(rows.dropna(subset=['normalised']))}"
          for measure, rows in ig_scaled.groupby("measure", sort=False) if rows["normalised"].notna().any()]
display(Markdown(
    (f"On the {int(ig_scaled['sentences'].max())} sentences per model with an oracle, Integrated Gradients' deletion "
     "order (comprehensiveness) reaches, of the greedy oracle's advantage over random orders, " + "; ".join(ranges)
     + ". Below 0 an order does worse than chance; the oracle is greedy, not the best order, so an order can pass 1.")
    if ranges else "No sentence of this profile has an oracle that differs from its random orders: no normalised score."
))

# %% [markdown]
# **Do the methods' orders beat the rivals?** For every model, method, way of
# removing, rival and score, the mean over sentences of the method's advantage
# (its score minus the rival's, the other way round for sufficiency, so that
# positive is more faithful) is one member of a family tested as one, on both
# measures. Beside them, the question that needs no attribution: does the
# information-gain order itself beat the frequency order (rarest first)? If it
# does not, a weight that tracks information gain finds no more than frequency
# does. The rule is max-t (`cwi.faithfulness.sign_flip_family`) with
# simultaneous intervals that agree with it, and its critical value is the
# larger of two references: random sign flips of each sentence's advantages,
# exact where an advantage is as likely negative as positive, and a bootstrap of
# the advantages centred on their means, which keeps their skew (an order set
# against the mean of several random orders is skewed, and sign flips alone
# called too often on such data). The whole rule's false-positive rate is
# measured below on data with no effect but the advantages' own shape: the
# sentences resampled from their advantages centred on 0, each simulated data
# set with critical values of its own (`cwi.faithfulness.sign_flip_null`).

# %%
faith = settings.faithfulness
methods = list(attribution.METHODS)
versus_rivals, null_state = faithfulness.compare_orders(scores, methods, faithfulness.RIVALS, faith.flips,
                                                        settings.seed, faith.level)
said = faithfulness.sign_flip_null(null_state, faith.null_simulations, settings.seed + 1)
faith_status, faith_low, faith_high = inference.calibration_status(said, faith.null_simulations, faith.level)
shown = versus_rivals[versus_rivals["summary"] == "comprehensiveness"].assign(
    interval=lambda t: analysis.interval_text(t["estimate"], t["low"], t["high"]))
shown.pivot(index=["model", "method", "rival", "measure"], columns="removal", values="interval")

# %% tags=["remove-input"]
downloads.csv_download(versus_rivals, "faithfulness_versus_rivals.csv", "every comparison of the family")


FAITH_VERBS = {True: ("beats it", "falls behind it", "does not beat it clearly"),  # findings
               False: ("lies above it", "lies below it", "is not off it")}  # descriptions: the rule is over nominal


def beats(model: str, method: str, rival: str) -> str:
    """What the family says of one order against one rival, over both scores, measures and removals.

    Worded as a finding only where the rule's measured rate is not above nominal.
    """
    above, below, neither = FAITH_VERBS[faith_status != "above"]
    rows = versus_rivals[(versus_rivals["model"] == model) & (versus_rivals["method"] == method)
                         & (versus_rivals["rival"] == rival)]
    verdicts = set(rows["verdict"])
    if verdicts == {"more"}:
        return f"{above} on every score, measure and removal"

    def where(verdict):
        return ", ".join(f"{r.summary} ({r.measure}, {r.removal})" for r in rows.itertuples() if r.verdict == verdict)

    if "less" in verdicts:
        return f"{below} on {where('less')}" + (f", and {above} on {where('more')}" if "more" in verdicts else "")
    if "more" in verdicts:
        return f"{above} on {where('more')} only"
    return f"{neither} on any score"


glue("faithfulness", {"status": faith_status, "false_positive": said / faith.null_simulations,
                      "versus_frequency": {f"{r.model}/{r.method}/{r.removal}/{r.measure}/{r.summary}": r.verdict
                                           for r in versus_rivals[versus_rivals["rival"] == "frequency"].itertuples()},
                      "critical": {"used": null_state["critical"], "flips": null_state["critical_flips"],
                                   "bootstrap": null_state["critical_bootstrap"]},
                      "members": len(versus_rivals), "seconds": faithfulness_seconds}, display=False)
lines = [f"The critical |t| is {null_state['critical']:.2f}, the larger of the sign flips' "
         f"{null_state['critical_flips']:.2f} and the centred bootstrap's {null_state['critical_bootstrap']:.2f}. "
         f"On data with no effect but the advantages' own shape, some member of the family "
         f"({len(versus_rivals)} comparisons) was off 0 in "
         f"**{said / faith.null_simulations:.1%}** of {faith.null_simulations:,} simulations (exact interval "
         f"{faith_low:.1%} to {faith_high:.1%}; nominal {1 - faith.level:.0%}): "
         + inference.RATE_WORDS[faith_status] + "."
         + (" The lines below therefore say where each interval lies, not what beats what." if faith_status == "above"
            else "")]
for name in encoders:
    for method in methods:
        lines.append(f"- {name}, {method.upper()}'s order: against frequency it "
                     f"{beats(name, method, 'frequency')}; against information gain it "
                     f"{beats(name, method, 'information gain')}; against random orders it "
                     f"{beats(name, method, 'random')}.")
    for order, rival in faithfulness.ATTRIBUTION_FREE:
        both = scores[(scores["model"] == name) & scores["order"].isin([order, rival])]
        apart = (both.groupby(["dataset", "sentence", "removal", "measure"])[list(faithfulness.SUMMARIES)]
                 .agg(lambda x: x.max() - x.min()).max(axis=1) > 1e-12).groupby(level="sentence").any()
        differ = (f" (their curves differ on {apart.mean():.0%} of the sentences: by construction, words too rare "
                  "for a usable gain lead both orders, rarest first)" if len(apart) else "")
        lines.append(f"- {name}, no attribution: the {order} order against the {rival} order "
                     f"{beats(name, order, rival)}{differ}.")
lines.append(f"({scores['sentence'].nunique():,} distinct sentences; the curves took {faithfulness_seconds:.0f} s here, "
             "from the cache or computed.)")
display(Markdown("\n".join(lines)))


def first_page_finding() -> str:
    """What the book's first page says of faithfulness: IG's order against the rival orders, under text removal."""
    ig_text = versus_rivals[(versus_rivals["method"] == "ig") & (versus_rivals["removal"] == "text")]
    if ig_text.empty:
        return "Words are not removed from the text in this profile; the chapter removes them by the baseline only."
    above, below, _ = FAITH_VERBS[faith_status != "above"]
    named = {"frequency": "the frequency order (rarest first)", "random": "random orders (their mean)"}
    parts = [f"against {named.get(rival, f'the {rival} order')} it {above} in "
             f"{(rows['verdict'] == 'more').sum()} and {below} in {(rows['verdict'] == 'less').sum()} of {len(rows)} "
             "(model, measure, score) comparisons" for rival, rows in ig_text.groupby("rival", sort=False)]
    free = versus_rivals[(versus_rivals["method"] == "information gain") & (versus_rivals["removal"] == "text")]
    if len(free):
        parts.append(f"and with no attribution at all, set against the frequency order, the information-gain order "
                     f"{above} in {(free['verdict'] == 'more').sum()} and {below} in "
                     f"{(free['verdict'] == 'less').sum()} of {len(free)}")
    also = " (the chapter also replaces them by the baseline)" if "baseline" in faith.removals else ""
    return (f"Removing words from the text{also}, the Integrated Gradients order (heaviest first): " + "; ".join(parts) + f". The family's false-positive rate with no effect: "
            f"{said / faith.null_simulations:.1%} of {faith.null_simulations:,} simulations (exact interval "
            f"{faith_low:.1%} to {faith_high:.1%}), {findings.STATUS_WORDS[faith_status]}.")


findings.glue_finding(first_page_finding())

# %% [markdown]
# **Leave one out.** Each word removed alone: does the drop of the cosine rank
# the words as the weights do? The Kendall correlation between the two, per
# sentence of at least four words.

# %%
sentence_keys = ["model", "dataset", "sentence", "method", "removal"]
faith_words = weights[weights["sentence"].isin(set(leave_one_out["sentence"]))]
taus = faithfulness.kendall_by_sentence(faith_words[["model", "dataset", "sentence", "method", "word_index", "weight"]],
                                        leave_one_out, sentence_keys)
word_counts = faith_words.groupby(["model", "dataset", "sentence", "method"]).size().rename("words").reset_index()
taus = taus.merge(word_counts, on=["model", "dataset", "sentence", "method"])
taus = taus[taus["words"] >= 4]  # with three words, tau can only be ±1/3 or ±1
tau_table = taus.groupby(["model", "method", "removal"])["tau"].median().unstack("removal")
tau_table.style.format("{:.2f}")

# %% tags=["remove-input"]
glue("leave_one_out_tau", {f"{m}/{me}/{r}": float(v) for (m, me, r), v in
                           taus.groupby(["model", "method", "removal"])["tau"].median().items()}, display=False)
display(Markdown(
    f"The median Kendall correlation between a word's weight and the drop when it alone is removed ranges from "
    f"{tau_table.min().min():.2f} to {tau_table.max().max():.2f} over models, methods and removals."
))

# %% [markdown]
# **Pre-trained versus fine-tuned.** Is a method's order more faithful to the
# fine-tuned model than to its pre-trained twin? Raw scores would mislead: a
# pre-trained encoder's embeddings crowd into a narrow cone, so every cosine is
# near 1 and any order scores low. So the comparison is of each method's
# advantage over the same model's random orders, fine-tuned minus pre-trained on
# the same sentences (positive: more faithful after fine-tuning), on both
# measures, with the change of the information-gain order's advantage over the
# frequency order beside it, tested as one family the same way.

# %%
faith_pairs = {name: (pair.pretrained, pair.finetuned)
               for name, pair in analysis.present_pairs(settings.pairs, list(encoders)).items() if pair.pretrained}
if faith_pairs:
    pair_changes, pair_state = faithfulness.compare_models(scores, faith_pairs, methods, faith.flips, settings.seed,
                                                           faith.level)
    display(pair_changes.assign(change=analysis.interval_text(pair_changes["estimate"], pair_changes["low"],
                                                              pair_changes["high"]))
            .pivot(index=["pair", "method", "rival", "summary", "measure"], columns="removal", values="change"))

# %% tags=["remove-input"]
if faith_pairs:
    glue("faithfulness_pairs", {f"{r.pair}/{r.method}/{r.rival}/{r.removal}/{r.measure}/{r.summary}": r.verdict
                                for r in pair_changes.itertuples()}, display=False)
    phrases = []
    for pair in faith_pairs:
        own = pair_changes[pair_changes["pair"] == pair]
        for (free, measure), rows in own.groupby([own["rival"] != "random", own["measure"]], sort=True):
            more, less = (rows["verdict"] == "more").sum(), (rows["verdict"] == "less").sum()
            what = ("the information-gain order's advantage over the frequency order" if free
                    else "the methods' advantage over random orders")
            phrases.append(f"{pair}, {what}, {measure}: {more} of {len(rows)} comparisons lie above 0 (larger after "
                           f"fine-tuning) and {less} below (the others include 0)")
    pair_said = faithfulness.sign_flip_null(pair_state, faith.null_simulations, settings.seed + 2)
    pair_status, pair_low, pair_high = inference.calibration_status(pair_said, faith.null_simulations, faith.level)
    glue("faithfulness_pairs_null", {"status": pair_status, "false_positive": pair_said / faith.null_simulations},
         display=False)
    display(Markdown("; ".join(phrases) + f". On data with no effect but these differences' own shape, some member "
                     f"of this family was off 0 in **{pair_said / faith.null_simulations:.1%}** of "
                     f"{faith.null_simulations:,} simulations (exact interval {pair_low:.1%} to {pair_high:.1%}; "
                     f"nominal {1 - faith.level:.0%}): " + inference.RATE_WORDS[pair_status] + "."))
else:
    display(Markdown("No pre-trained and fine-tuned pair is among this profile's attributed models."))

# %% [markdown]
# ## Explore
#
# Pick a dataset, a sentence, two models and a method: the words coloured by
# their normalised weight (hover a word for its value) and a bar chart of both
# models' weights. The explorer holds the weights computed above, so it works in
# the HTML book without a kernel, as in JupyterLab.

# %% tags=["remove-input"]
names = list(encoders)
# It opens on the first pair of the profile: a pre-trained model and its contrastive twin.
twins = [pair for pair in analysis.present_pairs(settings.pairs, names).values() if pair.pretrained]
opening = (twins[0].pretrained, twins[0].finetuned) if twins else (names[0], names[-1])
explored = interactive.explorer_sample(weights, per_dataset=attribution_settings.explorer_sentences)
display(interactive.sentence_explorer(explored, *opening))
offered = explored.groupby(["dataset", "sentence"]).ngroups  # a sentence is its text: samples number their own
glue("explorer_sentences", int(offered), display=False)
display(Markdown(
    f"The explorer offers {offered:,} sentences: "
    + ("every attributed sentence." if len(explored) == len(weights) else
       f"the first {attribution_settings.explorer_sentences} of each dataset, those attributed by the most models first.")
))

# %% [markdown]
# ### Your own sentence (JupyterLab)
#
# In JupyterLab, type any sentence: the widget below attributes it on the spot
# with both models. It needs a running kernel, so the HTML book leaves it out.

# %% tags=["hide-input", "remove-output", "skip-execution"]
# A JupyterLab widget: papermill skips it (the tag), as the HTML book leaves it out. Run under
# papermill it could leave the runner waiting for the cell forever (the Similarity chapter's did).
def compare(sentence: str, first: str, second: str, method: str) -> None:
    """Coloured words and a bar chart of the normalised weights of two models on one sentence."""
    tables = {
        name: attribution.word_weights(encoders[name], [sentence], method, baseline=attribution_settings.baseline,
                                       **attribution_settings.method_settings(method))
        for name in dict.fromkeys([first, second])
    }
    display(HTML("".join(plotting.coloured_words(t["word"], t["normalised_weight"], label=n)
                         for n, t in tables.items())))
    bars = pd.concat([t.assign(model=n) for n, t in tables.items()])
    bars["word"] = bars["word_index"].astype(str) + " " + bars["word"]
    fig, (ax,) = plotting.figure(f"Normalised {method.upper()} word weights of {sentence!r}.",
                                 width=max(5.0, 0.45 * len(tables[first])))
    sns.barplot(bars, x="word", y="normalised_weight", hue="model", ax=ax)
    ax.axhline(1, color="grey", lw=0.8)
    ax.set(xlabel="", ylabel="normalised weight")
    ax.tick_params(axis="x", rotation=60)
    plt.show()


controls = {
    "sentence": widgets.Text(value="A woman is slicing an onion in the kitchen.", description="sentence",
                             layout=widgets.Layout(width="40em"), continuous_update=False),
    "first": widgets.Dropdown(options=names, value=opening[0], description="model 1"),
    "second": widgets.Dropdown(options=names, value=opening[1], description="model 2"),
    "method": widgets.ToggleButtons(options=list(attribution.METHODS), value="ig", description="method"),
}
explorer = widgets.interactive_output(compare, controls)
display(widgets.VBox([widgets.HBox([controls["sentence"], controls["method"]]),
                      widgets.HBox([controls["first"], controls["second"]]), explorer]))

# %% [markdown]
# ## What the Correlations chapter receives
#
# One row per (model, dataset, method, sentence, word): the word as the
# Statistics chapter spells it, its number of tokens, raw and normalised weight,
# and its sentence's completeness error, IG path points, model evaluations and truncation flag.

# %%
key = ["model", "dataset", "method", "sentence_id", "sentence"]
first = weights.iloc[0]
display(Markdown(f"The rows of the first sentence: {first['model']}, {first['dataset']}, {first['method'].upper()}, "
                 f"sentence {first['sentence_id']}, *{first['sentence']}* (the columns {', '.join(key)} are left "
                 "out here to keep the table narrow):"))
downloads.wide(weights[(weights[key] == first[key]).all(axis=1)].drop(columns=key).style.hide(axis="index").format(
    precision=3).format({"completeness_error": "{:.1e}"}))


# %% [markdown]
# ## Execution record
#
# What this run used and cost: the profile, the kernel's wall time and peak
# memory, the package versions and the commit of the code.

# %% tags=["remove-input"]
record.execution_record(profile)
