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
# # Weighting: what is informative weighting worth?
#
# The paper starts from additive composition: a sentence as a sum of word vectors
# {cite}`mitchell2010composition`, and its theory says that contrastive training
# turns the norm of a word's vector into the word's information gain
# {cite}`kurita2023contrastive`. Long before contrastive encoders, the SIF baseline
# of {cite:t}`arora2017simple` weighted static word vectors by how rare a word is
# and beat much larger models on STS. This chapter asks the practical question
# that follows: **if contrastive encoders gain by weighting words by information,
# how far does weighting static word vectors by the same quantities go, and how
# does it compare with SIF?**
#
# Every encoder here is a weighted average of GloVe 6B 50-d vectors
# {cite}`pennington2014glove`,
#
# $$ e(s) = \frac{\sum_{w \in s} a_w\, x_w}{\sum_{w \in s} a_w} , $$ (eq-weighted-average)
#
# summed over the word tokens of $s$ that have a vector, and the encoders differ
# only in the weight $a_w$:
#
# | weighting | $a_w$ |
# |---|---|
# | uniform | 1 (the plain mean) |
# | SIF | $a / (a + p(w))$, then the first principal component of the sentence vectors removed |
# | self-information | $-\log p(w)$ |
# | info gain (raw), info gain (corrected) | $\mathrm{KL}(p(\cdot \mid w) \,\|\, p(\cdot))$ of the Statistics chapter, raw and shuffle-corrected (negative corrected values set to 0) |
# | contrastive $\lVert u_w \rVert^2$ | the squared norm of the additive encoder that the Theory chapter trains with InfoNCE |
#
# Word probabilities and information gains come from the Statistics chapter's table
# (the same Wikipedia corpus), so every weighting sees the same data. Each weighting
# is scored with and without removing the first principal component, so that the
# weighting and SIF's second ingredient can be told apart.

# %% tags=["remove-cell"]
import os
import time

import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

from cwi import config, downloads, evaluation, pipeline, plotting, record, theory, weighting
from cwi.findings import glue_finding

# %% tags=["parameters"]
profile = os.environ.get("CWI_PROFILE", "default")  # a built-in profile or a study file

# %%
settings = config.get_profile(profile)
plotting.use_book_style()
TABLE_STYLE = [{"selector": "td, th", "props": "padding: 0.1em 0.6em"}]  # numbers apart in the HTML book
chapter_start = time.perf_counter()
finetune, ws = settings.finetune, settings.weighting
ws

# %% [markdown]
# ## The ingredients
#
# The statistics table, the contrastive additive encoder and the transformer
# models' STS scores come from the artefact cache (they are computed if this
# chapter runs first). The STS data are the test splits of the Fine-tuning
# chapter's datasets; STS-B dev is the only data used to choose anything.

# %%
table = pipeline.corpus_statistics(settings)
norms = pipeline.contrastive_additive_encoder(settings).squared_norms()
glove = weighting.WordVectors(*theory.load_glove())
dev = evaluation.sts_pairs("stsb", "dev", finetune.sts_max_pairs)
test = {name: evaluation.sts_pairs(name, "test", finetune.sts_max_pairs) for name in finetune.sts_datasets}
gold = {name: frame["score"].to_numpy() for name, frame in test.items()}
pd.DataFrame({"pairs": {name: len(frame) for name, frame in {"stsb (dev)": dev, **test}.items()}}).T

# %% [markdown]
# ## SIF's $a$, chosen on STS-B dev
#
# {cite:t}`arora2017simple` tune $a$ between $10^{-5}$ and $10^{-1}$. We score SIF
# (with its principal component removed) on STS-B dev for each value of the grid
# and keep the best; the test sets are never consulted.

# %%
# The words every weighting has a value for (SIF's a does not change which): the only words averaged.
shared = weighting.shared_words(weighting.weight_table(table, ws.sif_a_grid[0], norms))
sif_search = weighting.sif_search(dev, glove, table["p"], ws.sif_a_grid, words=shared)
sif_a = sif_search.loc[sif_search["spearman"].idxmax(), "a"]
sif_search.style.format({"a": "{:g}", "spearman": "{:.2f}"}).hide(axis="index")

# %% tags=["hide-input"]
fig, (ax,) = plotting.figure(
    "SIF on STS-B dev: Spearman x100 against a (log scale); the ringed point is the value used on test.",
    width=6, height=3.2,
)
ax.plot(sif_search["a"], sif_search["spearman"], "o-")
ax.plot([sif_a], [sif_search["spearman"].max()], "o", ms=14, mfc="none", mec="C3")
ax.set(xscale="log", xlabel="SIF's a", ylabel="Spearman x100 (STS-B dev)");

# %% [markdown]
# ## Words without a vector or without a value
#
# A word token without a GloVe vector is left out of every average. So is a word
# with a vector but without a value of *some* weighting (absent from the
# statistics table, seen only in one-word sentences, or outside the additive
# encoder's vocabulary): every weighting, the plain mean included, averages the
# same words, and none is handicapped by filling in words it does not know
# (`cwi.weighting.evaluate`, `shared=True`). Both are counted here, per dataset,
# as a share of the word tokens; nothing is dropped silently.
#
# PAPER: SIF's code gives an unseen word the weight 1 (as if $p(w) = 0$); here
# such words are left out of every weighting alike, so the weightings differ in
# their quantity only. SIF's average divides by $\sum_w a_w$ where
# {cite:t}`arora2017simple` divide by the number of words: cosine similarity does
# not see the difference, but the removed principal component, computed from the
# sentence vectors, may differ; the book does not measure by how much.

# %%
weights = weighting.weight_table(table, sif_a, norms)
encoders = [weighting.StaticEncoder(name, n) for name in weighting.WEIGHTINGS for n in ws.remove_components]
scores, similarities, coverage = weighting.evaluate(test, glove, weights, encoders)
plain = coverage.xs("uniform", level="weighting")
missing = pd.DataFrame({
    "no GloVe vector": (plain["tokens_without_vector"] - plain["tokens_without_shared_value"]) / plain["tokens"],
    "a vector, but some weighting has no value": plain["tokens_without_shared_value"] / plain["tokens"],
})
missing.style.format("{:.2%}")

# %% tags=["remove-input"]
display(Markdown(
    f"Across the {len(test)} test sets, **{missing['no GloVe vector'].min():.2%} to "
    f"{missing['no GloVe vector'].max():.2%}** of the word tokens have no GloVe vector, and "
    f"**{missing.iloc[:, 1].min():.2%} to {missing.iloc[:, 1].max():.2%}** have one but lack the value of some "
    f"weighting (the additive encoder knows the {len(norms):,} words of its training vocabulary, the "
    f"statistics table {len(table):,} words); both are "
    "left out of every weighting alike. "
    f"{weights.attrs['clipped']:,} words have a negative corrected information gain and weigh 0 in that "
    f"weighting; {int(coverage['sentences_with_zero_weight'].sum()):,} sentence(s) had every word at 0 and "
    f"fell back to the plain mean, and {int(coverage.xs('uniform', level='weighting')['sentences_without_vector'].sum()):,} "
    "sentence(s) had no word with a vector at all."
))

# %% [markdown]
# ## Choosing the information weighting on STS-B dev
#
# Four weightings carry information (self-information, the two information gains and
# the contrastive norms), each with and without the principal component removed. To
# compare *one* of them with SIF without choosing it on the test sets, we take the
# best of these eight on STS-B dev.

# %%
dev_scores, _, _ = weighting.evaluate({"stsb (dev)": dev}, glove, weights, encoders)
dev_scores = dev_scores.set_index("encoder")["spearman"]
information = [e.label for e in encoders if e.weighting in weighting.INFORMATION_WEIGHTINGS]
best_information = dev_scores[information].idxmax()
dev_scores.rename("STS-B dev Spearman x100").to_frame().style.format("{:.2f}")

# %% tags=["remove-input"]
display(Markdown(
    f"On STS-B dev the best information weighting is **{best_information}** "
    f"({dev_scores[best_information]:.2f}); SIF with a = {sif_a:g} scores {dev_scores['SIF']:.2f} and the "
    f"plain mean {dev_scores['uniform']:.2f}. These three are the ones compared on test below."
))

# %% [markdown]
# ## Test: every weighting on every STS set
#
# Spearman x100 between cosine similarity and the gold scores on the test splits,
# all subsets of a file pooled (as the Fine-tuning chapter scores the transformers,
# whose rows are added for scale), and the average over the datasets.

# %%
static = scores.pivot(index="encoder", columns="dataset", values="spearman")[list(test)]
transformers = pipeline.sts_scores(settings).pivot(index="model", columns="dataset", values="spearman")[list(test)]
results = pd.concat({"static (GloVe 50-d)": static, "transformer": transformers.loc[list(finetune.models)]},
                    names=["family", "encoder"])
results["avg."] = results.mean(axis=1)
results = results.sort_values(["avg."], ascending=False).sort_index(level=0, sort_remaining=False)
results.style.format("{:.2f}").set_table_styles(TABLE_STYLE)

# %% tags=["remove-input"]
downloads.csv_download(results, "weighting_sts_spearman.csv", "these scores")

# %% tags=["hide-input"]
fig, (ax,) = plotting.figure(
    "Average Spearman x100 over the STS test sets (bars) and each dataset's score (dots), for every "
    "static weighting and, for scale, the Fine-tuning chapter's transformer models.",
    width=9, height=0.32 * len(results) + 1.2,
)
long = results.drop(columns="avg.").stack().rename("spearman").reset_index()
order = results.index.get_level_values("encoder")
sns.barplot(data=long, y="encoder", x="spearman", hue="family", order=order, errorbar=None, ax=ax, alpha=0.6)
# No jitter: seaborn draws it from numpy's global generator, so the figure would change between runs.
sns.stripplot(data=long, y="encoder", x="spearman", order=order, color="0.2", size=3.5, jitter=False, ax=ax)
ax.set(xlabel="Spearman x100", ylabel="")
ax.legend(title="", loc="lower right", fontsize=8);

# %% [markdown]
# ## The answer, with its uncertainty
#
# The difference of two encoders' average Spearman over the test sets, with a paired
# bootstrap interval: each replicate resamples the sentence pairs of every dataset
# (within the dataset) and scores both encoders on the same pairs
# (`cwi.weighting.paired_bootstrap`), so the interval shows how much the pairs'
# sampling alone could move the difference.

# %%
average = static.mean(axis=1)
comparisons = {
    f"{best_information} − SIF": (best_information, "SIF"),
    f"{best_information} − uniform": (best_information, "uniform"),
    "SIF − uniform": ("SIF", "uniform"),
}
intervals = {
    label: weighting.paired_bootstrap(similarities[first], similarities[second], gold, ws.n_bootstrap,
                                      settings.seed, ws.level)
    for label, (first, second) in comparisons.items()
}
level = f"{ws.level:.0%}"
summary = pd.DataFrame({label: {"difference": r["delta"], f"{level} low": r["low"], f"{level} high": r["high"]}
                        for label, r in intervals.items()}).T
per_dataset = pd.DataFrame({label: r["per_dataset"] for label, r in intervals.items()})
display(summary.style.format("{:+.2f}").set_table_styles(TABLE_STYLE))
per_dataset.style.format("{:+.2f}").set_table_styles(TABLE_STYLE).set_caption("The difference on each dataset")

# %% tags=["remove-input"]
versus_sif = intervals[f"{best_information} − SIF"]


def reading(result: dict) -> str:
    if result["low"] > 0:
        return "higher, and the interval excludes 0"
    if result["high"] < 0:
        return "lower, and the interval excludes 0"
    return "not distinguishable: the interval includes 0"


highest = average.idxmax()
versus_highest = (weighting.paired_bootstrap(similarities[highest], similarities["SIF"], gold, ws.n_bootstrap,
                                             settings.seed, ws.level) if highest != "SIF" else None)


def verdict(chosen: str, averages: dict[str, float],
            opening: str = "The verdict compares the encoders chosen on STS-B dev only: the information weighting "
                           "chosen there") -> str:
    """The verdict: the dev-chosen information weighting against SIF and the plain mean, nothing else."""
    against = {other: intervals[f"{chosen} − {other}"] for other in ("SIF", "uniform")}
    return (f"{opening}, "
            f"**{chosen}**, averages **{averages[chosen]:.2f}** over the {len(test)} test sets; against SIF "
            f"({averages['SIF']:.2f}) its difference is **{against['SIF']['delta']:+.2f} "
            f"[{against['SIF']['low']:+.2f}, {against['SIF']['high']:+.2f}]** ({level} paired bootstrap), "
            f"{reading(against['SIF'])}; against the plain mean, uniform ({averages['uniform']:.2f}), it is "
            f"{against['uniform']['delta']:+.2f} [{against['uniform']['low']:+.2f}, {against['uniform']['high']:+.2f}], "
            f"{reading(against['uniform'])}.")


verdict_text = verdict(best_information, {label: average[label] for label in (best_information, "SIF", "uniform")})
glue("verdict_text", verdict_text, display=False)
glue_finding(verdict(best_information, {label: average[label] for label in (best_information, "SIF", "uniform")},
                     opening="Static word vectors: the information weighting chosen on STS-B dev").removesuffix(".")
             + " (two unadjusted paired-bootstrap intervals; no error rate of this comparison is measured).")
glue("highest_test", highest, display=False)
display(Markdown(
    verdict_text + " "
    + (f"Read off the test sets instead, which chooses on them and so is no verdict: the highest test average "
       f"of the static encoders is {highest}'s, {average[highest]:.2f}, "
       f"{versus_highest['delta']:+.2f} [{versus_highest['low']:+.2f}, {versus_highest['high']:+.2f}] against SIF "
       f"(an interval that does not allow for its being the largest of {len(average)} averages). "
       if versus_highest is not None else "SIF has the highest test average of the static encoders. ")
    + f"The best transformer here, {results.loc['transformer', 'avg.'].idxmax()}, averages "
    f"{results.loc['transformer', 'avg.'].max():.2f}."
))

# %% tags=["hide-input"]
fig, (ax,) = plotting.figure(
    f"Bootstrap distribution of each difference of average Spearman x100 ({ws.n_bootstrap:,} replicates); "
    f"the lines mark the {level} interval.",
    width=8, height=3.2,
)
for index, (label, result) in enumerate(intervals.items()):
    sns.kdeplot(result["boot"], ax=ax, label=label, color=f"C{index}", fill=True, alpha=0.2)
    for bound in (result["low"], result["high"]):
        ax.axvline(bound, color=f"C{index}", lw=0.8, ls="--")
ax.axvline(0, color="0.3", lw=1)
ax.set(xlabel="difference of average Spearman x100", ylabel="density")
ax.legend(fontsize=8);

# %% [markdown]
# ## How to read it

# %% tags=["remove-input"]
frequent = table[table["count"] >= settings.stats.min_count]
rho_ig_si = frequent[["information_gain", "self_information"]].corr("spearman").iloc[0, 1]
better = [label for label in average.index if label != "uniform" and average[label] > average["uniform"]]
effect = average.sub(average["uniform"]).drop("uniform")
pc_effect = pd.Series({e.weighting: average[e.label] - average[weighting.StaticEncoder(e.weighting, 0).label]
                       for e in encoders if e.remove_components == 1})
display(Markdown(
    f"- **Weighting and the plain mean.** {len(better)} of the {len(effect)} other static encoders beat the plain "
    f"mean on the average; their differences from it range from {effect.min():+.2f} to {effect.max():+.2f} points "
    f"({effect.idxmin()} to {effect.idxmax()}). The plain mean gives function "
    "words as much say as content words; down-weighting them is the effect the paper finds contrastive "
    "encoders learn implicitly.\n"
    "- **The quantities are close relatives.** Self-information is minus log frequency and SIF a saturating "
    f"function of frequency; over the {len(frequent):,} words seen at least {settings.stats.min_count} times, "
    f"raw information gain has a Spearman correlation of {rho_ig_si:.2f} with self-information. Which weighting "
    "scores higher on STS says which *shape* of down-weighting suits averaged GloVe vectors, not which quantity a "
    "contrastive encoder tracks: the Correlations chapter asks that.\n"
    "- **Removing the principal component**, SIF's second ingredient, changes the average by "
    f"{pc_effect.min():+.2f} to {pc_effect.max():+.2f} points depending on the weighting "
    f"({', '.join(f'{weighting.WEIGHTINGS[k]} {v:+.2f}' for k, v in pc_effect.items())}).\n"
    "- **Scale.** The transformer rows use the same test pairs and the same Spearman. They differ from the "
    "static encoders in more than context: other word vectors, other training data and other sizes, so the "
    "gap is not what context alone adds."
))

# %% tags=["remove-input"]
# The chapter's checks: what its prose relies on; the glued values are read by the tests.
glue("sif_a", float(sif_a), display=False)
glue("static_encoders", len(static), display=False)
glue("best_information", best_information, display=False)
# The verdict's encoders, and the dev scores that chose them: the tests check that no test score chose any.
glue("verdict_compares", [best_information, "SIF", "uniform"], display=False)
glue("dev_information", {label: float(dev_scores[label]) for label in information}, display=False)
glue("versus_sif", {k: float(versus_sif[k]) for k in ("delta", "low", "high")}, display=False)
assert sif_a in ws.sif_a_grid and np.isclose(sif_search["spearman"].max(), dev_scores["SIF"])
assert len(scores) == len(encoders) * len(test) and scores["spearman"].notna().all()
assert all(r["boot"].shape == (ws.n_bootstrap,) and r["low"] <= r["high"] for r in intervals.values())
assert (coverage["tokens"] > 0).all()
display(Markdown(
    f"*Profile `{settings.name}`; this chapter ran in {time.perf_counter() - chapter_start:.0f} s.*"
))


# %% [markdown]
# ## Execution record
#
# What this run used and cost: the profile, the kernel's wall time and peak
# memory, the package versions and the commit of the code.

# %% tags=["remove-input"]
record.execution_record(profile)
