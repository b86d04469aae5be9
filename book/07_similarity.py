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
# # Similarity: why are these two sentences similar?
#
# The earlier chapters ask which words an encoder weights in *one* sentence. What
# users of sentence encoders ask most is the next question: which words make *two*
# sentences similar. Published answers give a word-by-word matrix for one pair at a
# time {cite}`moeller2023attribution`; this chapter uses the book's own Integrated
# Gradients to get that matrix exactly, then asks two questions of many pairs:
# **does the similarity rest on the same words in both sentences or on different
# ones, and is a word's share of the similarity explained by its information
# content, as its weight was?** And for both: does contrastive fine-tuning change it?
#
# **The decomposition.** Integrated Gradients gives each word $w$ of sentence $a$ a
# vector $c_w(a)$ with $\sum_w c_w(a) = f(a) - f(a')$, $a'$ the sentence's
# baseline (its tokens replaced by the attribution baseline). The dot product is
# bilinear, so
#
# $$ \cos(f(a), f(b)) = \underbrace{\sum_{w,v} \frac{c_w(a) \cdot c_v(b)}{N}}_{\text{word pairs } A_{wv}}
#  + \underbrace{\sum_w \frac{c_w(a) \cdot f(b')}{N} + \sum_v \frac{f(a') \cdot c_v(b)}{N}}_{\text{words against the other's baseline}}
#  + \underbrace{\frac{f(a') \cdot f(b')}{N}}_{\text{baselines}} , \qquad N = \lVert f(a) \rVert \lVert f(b) \rVert , $$ (eq-pair-split)
#
# up to IG's completeness error: the dot product split exactly, scaled by the
# final norms. The choices, each stated once:
#
# - **Cosine**: the two norms in $N$ are those of the final embeddings, constants of
#   the pair; the normalisation itself is not attributed (as integrated Jacobians do
#   for normalised embeddings). So a word's term is its part of the dot product over
#   $N$, not its effect on the cosine: removing the word would change $N$ too. And a
#   cell $A_{wv}$ is the product of two single-sentence attributions, not an
#   interaction attribution of the pair. A model that ends in a `Normalize` module (such as
#   all-MiniLM-L6-v2) is attributed before that step, as in the Attribution chapter:
#   the cosine is the same.
# - **Baselines**: the attribution baseline is the Attribution chapter's (the
#   profile's `attribution.baseline`, named below). The baseline's own embedding is not
#   0, so two terms carry no word pair; the chapter reports them rather than hiding them.
# - **Words** are the Statistics chapter's, aligned with tokens as everywhere in the
#   book. Two words *match* when they are the same word (lower-cased, no lemmas):
#   the matrix's "diagonal" of lexical overlap. Stopwords and punctuation match in
#   most pairs, so the overlap of content words is reported beside it.
# - **A word's contribution** to the similarity is its row (sentence $a$) or column
#   ($b$) sum of $A$: what it shares with every word of the other sentence. It is
#   signed, since a word can pull two sentences apart.
# - **Models**: every pair of the profile with a pre-trained twin (for the book's
#   own SimCSE models, the first contrastive seed's model: a verdict is about that
#   trained model, not its training recipe); **pairs**: a seeded sample of each STS
#   dataset's test split (all of a dataset that comes as one split), never a pair
#   holding a sentence of STS-B dev, on which the book's choices are made.

# %% tags=["remove-cell"]
import functools
import os
import time

import ipywidgets as widgets
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from cwi import (analysis, attribution, config, data, downloads, inference, inputs, interactive, pipeline, plotting,
                 record, similarity, similarity_references)
from cwi.findings import STATUS_WORDS, glue_finding, glued_number

# %% tags=["parameters"]
profile = os.environ.get("CWI_PROFILE", "default")  # a built-in profile or a study file

# %%
settings = config.get_profile(profile)
plotting.use_book_style()
TABLE_STYLE = [{"selector": "td, th", "props": "padding: 0.1em 0.6em"}]  # numbers apart in the HTML book
chapter_start = time.perf_counter()
ss, level = settings.similarity, settings.analysis.level
models, twins = pipeline.similarity_models(settings)
assert twins, f"profile {settings.name!r} has no pair with a pre-trained twin among its attributed models"
display(Markdown(f"Attribution baseline: **{inputs.BASELINE_WORDS[settings.attribution.baseline]}**; "
                 f"models: {', '.join(models)}."))
ss

# %% [markdown]
# ## The pairs and their decompositions
#
# Both sentences of every pair are attributed by every model (Integrated
# Gradients with the Attribution chapter's adaptive rule); the word vectors are
# cached per block of pairs, so a second run reads them.

# %%
start = time.perf_counter()
results = pipeline.pair_decompositions(settings)
decomposition_seconds = time.perf_counter() - start
pairs = results.pairs.assign(sentence=[similarity.pair_key(a, b) for a, b in
                                       zip(results.pairs["sentence1"], results.pairs["sentence2"])])
counts = pairs[pairs["model"] == models[0]].groupby("dataset", sort=False).size().rename("pairs")
counts.to_frame().T

# %% tags=["remove-input"]
n_pairs = int(counts.sum())
glue("similarity_pairs", n_pairs, display=False)
glue("similarity_models", len(models), display=False)
truncated = int(pairs["truncated"].sum())
display(Markdown(
    f"**{n_pairs:,} pairs** from {len(counts)} datasets, each decomposed by {len(models)} models "
    f"({', '.join(models)}): {len(pairs):,} decompositions in {decomposition_seconds:.0f} s this run. "
    + (f"{truncated:,} decomposition(s) had a sentence cut to the model's length (flagged in the table)."
       if truncated else "No sentence had to be cut to a model's length.")
))

# %% [markdown]
# No evaluated pair may have been trained on. The book's supervised SimCSE trains on
# SNLI with every triplet holding an STS sentence dropped (Fine-tuning chapter); the
# masked-LM and unsupervised SimCSE train on the Wikipedia pack, which is checked here
# against the sampled pairs. Other models' training data cannot be checked offline.

# %% tags=["remove-input"]
book_models = [m for m in models if settings.model(m).kind == "book"]
if book_models:
    # The masked-LM's sentences and every unsupervised SimCSE run's (the dev search may vary the limit).
    limits = [settings.finetune.mlm.corpus_limit] + [c.corpus_limit for c in settings.finetune.candidates(False)]
    corpus = data.load_corpus(settings.corpus, None if None in limits else max(limits))
    sampled = {data.normalise_sentence(s) for s in pd.concat([pairs["sentence1"], pairs["sentence2"]])}
    trained_on = sorted({data.normalise_sentence(s) for s in corpus} & sampled)
    assert not trained_on, f"sampled pairs hold {len(trained_on)} sentence(s) of the training corpus: {trained_on[:3]}"
    display(Markdown(f"No sampled sentence (of {len(sampled):,}) is among the {len(corpus):,} Wikipedia "
                     f"sentences that the book's models here ({', '.join(book_models)}) are trained on."))
else:
    display(Markdown("No model of this profile is trained by the book."))

# %% [markdown]
# ## Does the split add up?
#
# The terms of {eq}`eq-pair-split` sum to the model's cosine up to what IG's
# quadrature leaves over; the Cauchy-Schwarz bound says how much that can be,
# given each sentence's completeness error (`PairDecomposition.error_bound`).
# The chapter checks every pair against it. The bound covers the *sum* of a
# sentence's word vectors; how that sum is split between words, which the
# same-word share and the contributions read, is what IG's word error measures
# (the Attribution chapter's convergence check), so both are shown.

# %%
sides = pd.concat([pairs[["model", f"completeness_{side}", f"word_error_{side}"]].set_axis(
    ["model", "completeness", "word_error"], axis=1) for side in "ab"])  # both sentences of every pair
target = settings.attribution.method_settings(ss.method).get("target", np.inf)
sides["unconverged"] = attribution.unconverged(sides["completeness"], sides["word_error"], target)
errors = pairs.groupby("model", sort=False).agg(
    median_error=("error", "median"), max_error=("error", "max"), max_bound=("error_bound", "max")).join(
    sides.groupby("model").agg(median_completeness=("completeness", "median"), max_word_error=("word_error", "max"),
                               unconverged=("unconverged", "mean")))
assert (pairs["error"] <= pairs["error_bound"] + 1e-6).all(), "a decomposition misses the score by more than IG allows"
errors = errors.rename_axis(None).rename(columns=lambda c: c.replace("_", " "))
errors.style.format({c: "{:.1e}" for c in errors.columns} | {"unconverged": "{:.1%}"}).set_table_styles(TABLE_STYLE)

# %% tags=["remove-input"]
glue("similarity_max_error", float(pairs["error"].max()), display=False)
unconverged = errors["unconverged"]
display(Markdown(
    f"The largest gap between the sum of the terms and the cosine is **{pairs['error'].max():.1e}** "
    f"(median {pairs['error'].median():.1e}), on a cosine scale, or "
    f"{pairs['error'].max() / pairs['word_pairs'].abs().mean():.1e} "
    "of the mean magnitude of the word-pair part the questions below read; every pair is within the bound its "
    "completeness errors allow. "
    + (f"Every attributed side met IG's target of {target:g} on both errors." if not unconverged.any() else
       "Sides that reached IG's largest rule without meeting its target of "
       f"{target:g} (kept, as in the Attribution chapter): "
       + ", ".join(f"{share:.1%} for {m}" for m, share in unconverged.items() if share > 0) + ".")
))

# %% [markdown]
# ## Where does the cosine come from?
#
# Each model's cosine, averaged over the pairs, split into the four terms: the
# same word in both sentences, different words, a word against the other
# sentence's baseline, and the two baselines.

# %% tags=["hide-input"]
terms = pairs.groupby("model", sort=False)[["score", *similarity.TERMS]].mean().loc[models]
fig, (ax,) = plotting.figure(
    "Mean cosine of each model over the sampled pairs (black dot) and the mean of each term of the split "
    "(stacked: positive terms upwards, negative downwards).", width=6.5, height=3.6)
bottom_pos, bottom_neg = np.zeros(len(terms)), np.zeros(len(terms))
for k, (term, label) in enumerate(similarity.TERMS.items()):
    values = terms[term].to_numpy()
    base = np.where(values >= 0, bottom_pos, bottom_neg)
    ax.bar(range(len(terms)), values, bottom=base, label=label, color=f"C{k}")
    bottom_pos, bottom_neg = bottom_pos + np.clip(values, 0, None), bottom_neg + np.clip(values, None, 0)
ax.plot(range(len(terms)), terms["score"], "ko", label="cosine")
ax.axhline(0, color="grey", lw=0.8)
ax.set_xticks(range(len(terms)), terms.index, rotation=15)
ax.set(ylabel="mean over pairs")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1));

# %% tags=["remove-input"]
share_of_score = (terms["same_words"] + terms["other_words"]) / terms["score"]
display(Markdown(
    "The word pairs carry, on average, "
    + "; ".join(f"{share_of_score[m]:.0%} of {m}'s mean cosine" for m in models)
    + ". The rest is the baselines' terms: the two baselines' own similarity averages "
    + ", ".join(f"{terms.loc[m, 'baselines']:+.2f}" for m in models)
    + " and the words against the other sentence's baseline "
    + ", ".join(f"{terms.loc[m, 'word_baseline']:+.2f}" for m in models)
    + f" (in the order {', '.join(models)}). The baselines' similarity depends on the two sentences only through "
    "their lengths (and N); the questions below are about the word pairs."
))

# %% [markdown]
# ## What spreads the scores, and what agrees with the annotators?
#
# A term with the largest mean need not be the one that moves a pair's score
# against the others', and a model is scored by how its scores follow the gold
# ones. The score is the sum of the terms, so, within each dataset (pooled over
# datasets), its variance across pairs splits exactly into each term's
# covariance with it, and its covariance with the gold scores into each term's
# covariance with gold (`cwi.similarity_references.term_variance`; covariances,
# a linear stand-in for the rank correlation that scores a model). A part near 0
# moves nothing (a nearly constant term); a negative part works against the
# others; the parts of each row sum to 1 less what IG's completeness error
# carries. The two baseline terms depend on the attribution baseline (see below).

# %%
ranking = pd.concat({"variance of the score": similarity_references.term_variance(pairs).set_index("model"),
                     "covariance with gold": similarity_references.term_variance(pairs, against="gold")
                     .set_index("model")}, names=["split", "model"]).reorder_levels(["model", "split"]).loc[models]
ranking.rename(columns=similarity.TERMS).style.format(
    {label: "{:+.2f}" for label in similarity.TERMS.values()}).set_table_styles(TABLE_STYLE)

# %% tags=["remove-input"]
glue("similarity_ranking", {f"{m}/{split}": {t: glued_number(ranking.loc[(m, split), t]) for t in similarity.TERMS}
                            for m, split in ranking.index}, display=False)
agreeing = ranking.xs("covariance with gold", level="split")
# A part of the agreement is read only where the scores agree with gold at all (a positive covariance).
read = [m for m in models if agreeing.loc[m, list(similarity.TERMS)].notna().all()]
leading = {m: max(similarity.TERMS, key=lambda t: agreeing.loc[m, t]) for m in read}
against = {m: [similarity.TERMS[t] for t in similarity.TERMS if agreeing.loc[m, t] < 0] for m in read}
unread = [m for m in models if m not in read]
display(Markdown(
    ("" if not unread else f"{', '.join(unread)}: the scores do not covary positively with gold within datasets, so "
     "their parts of the agreement are not read. ")
    + ("The largest part of the scores' agreement with gold (covariance within datasets): " if read else "")
    + "; ".join(f"{similarity.TERMS[leading[m]]} for {m} ({agreeing.loc[m, leading[m]]:+.0%}; the word pairs: same "
                f"words {agreeing.loc[m, 'same_words']:+.0%}, different words {agreeing.loc[m, 'other_words']:+.0%})"
                for m in read)
    + ("." if read else "")
    + ("".join(f" For {m}, {' and '.join(terms)} {'works' if len(terms) == 1 else 'work'} against the agreement "
               "(a negative part), so the other parts add to more than the whole."
               for m, terms in against.items() if terms))
    + " These parts carry no intervals: they describe this sample."
))

# %% [markdown]
# ## Same words or different words?
#
# The **same-word share** of a model is the sum over pairs of its matching cells
# divided by the sum of its whole matrix $A$ (a ratio of sums: a pair weighs by its
# word-pair similarity). Alone it has no reference point: it grows with the
# sample's lexical overlap and with the size of the matched cells, and shrinks as
# the other cells cancel, so a more isotropic fine-tuned model, whose off-diagonal
# mass shrinks, can raise it with no change of reliance on shared words. So beside
# it:
#
# - the **fraction of matching cells**, the sample's lexical overlap;
# - the **excess share**: the share minus what the matching cells would hold if
#   each matched word's partner were a random word of the other sentence (a
#   random permutation of one sentence's word labels, the mean of permuting
#   either: row $i$'s matches then hold $r_i$ times the row's mean cell in
#   expectation, `cwi.similarity.chance_same_words`): 0 where a word shares no
#   more with its twin than with any other word of the other sentence. Each
#   matched word's own size stays in the reference, so a model that merely
#   gives shared words larger vectors does not raise it;
# - both **with the common direction removed**: every vector projected off the
#   direction of the model's mean embedding, the decomposition of the cosine of
#   the projected embeddings (`cwi.similarity_references.without_common_direction`,
#   exact too), with the share of the word vectors' squared length that this one
#   direction holds. It shows how much of the share's level and change that
#   direction carries; it does not make a model isotropic (one direction, not
#   all of an anisotropic model's). Mean-centring alone would change little:
#   the word vectors are differences, untouched by a mean, so the word-pair part
#   of a centred cosine is each pair's same matrix over another constant.
#
# The changes of the share and of the excess share from the pre-trained model to
# its contrastive twin are members of the family below. Intervals resample pairs
# within each dataset, with the same draws for every model and statistic.
#
# ## Do informative words carry the similarity?
#
# For each model, the slope β of a word's normalised contribution (its contribution
# over the mean magnitude of its sentence's contributions) on each word statistic,
# per standard deviation of the statistic, with the Correlations chapter's
# machinery: words of both sentences, pairs resampled as units. Δβ is the
# fine-tuned model's slope minus its pre-trained twin's, on the same words and draws.

# %%
overlap = similarity_references.excess_share(pairs).loc[models]
by_model = {m: [d for (name, _, _), d in results.decompositions.items() if name == m] for m in models}
directions = {m: similarity_references.common_direction(by_model[m]) for m in models}
projected = similarity.pair_summary([similarity_references.without_common_direction(d, directions[name])
                                     for (name, _, _), d in results.decompositions.items()])
projected = projected.assign(model=[name for name, _, _ in results.decompositions])
overlap = overlap.join(similarity_references.excess_share(projected)[["share", "excess"]]
                       .rename(columns=lambda c: f"{c}, common direction removed"))
overlap["word vectors along it"] = [similarity_references.along_common_direction(by_model[m], directions[m])
                                    for m in models]
overlap.rename_axis(None).style.format("{:.3f}").set_table_styles(TABLE_STYLE)

# %% tags=["remove-input"]
glue("similarity_overlap", {m: {k: glued_number(v) for k, v in overlap.loc[m].items()} for m in models},
     display=False)
display(Markdown(
    f"The matching cells are {overlap['matched_fraction'].iloc[0]:.1%} of all word pairs (the same sample for every "
    "model, up to words a tokenizer drops); they carry "
    + "; ".join(f"{overlap.loc[m, 'share']:.3f} of {m}'s word-pair sum, {overlap.loc[m, 'excess']:+.3f} more than "
                f"random partners would ({overlap.loc[m, 'excess, common direction removed']:+.3f} with the common "
                f"direction removed, which holds {overlap.loc[m, 'word vectors along it']:.0%} of its word vectors' "
                "squared length)" for m in models)
    + f". These levels are the {settings.attribution.baseline} baseline's: the check at the end of this part shows "
      "how far another baseline moves them."
))

# %%
table = pipeline.corpus_statistics(settings)
frame = analysis.attach_statistics(similarity.regression_frame(results.words, pairs), table, settings.stats.min_count)
usable = frame[frame["status"] == "ok"]
bootstrap = analysis.SentenceBootstrap(frame, settings.analysis.n_bootstrap, settings.seed)
family, workspace = similarity.change_family(pairs, usable, twins, bootstrap, analysis.quantity_scales(frame),
                                             analysis.QUANTITIES, level)
per_model = family.models.assign(quantity=family.models["quantity"].map(analysis.QUANTITIES).fillna(""))
# One row per model (the paper profile has many), one column per statistic.
per_model.assign(statistic=np.where(per_model["quantity"] == "", per_model["statistic"], "β " + per_model["quantity"])
                 ).pivot_table(index="model", columns="statistic", values="value", sort=False).loc[models].rename_axis(
    index=None, columns=None).style.format("{:.3f}").set_table_styles(TABLE_STYLE)

# %% tags=["remove-input"]
# The share is a ratio of signed sums: read it only where its denominator stays positive, and say what stopwords add.
sums = pairs.groupby("model")[["same_words", "same_content_words", "word_pairs"]].sum().loc[models]
content_share = sums["same_content_words"] / sums["word_pairs"]
shares = per_model[per_model["statistic"] == "same-word share"].set_index("model")
unsafe = shares.index[shares["positive_denominator"] < 1].tolist()
readable = [m for m in models if m not in unsafe]
display(Markdown(
    "The share is a ratio of signed sums, so it can leave [0, 1] when different words pull the sentences apart. "
    + ("Its denominator, the sum of the word pairs over the pairs, is positive in every bootstrap draw for every "
       "model." if not unsafe else
       "Its denominator, the sum of the word pairs over the pairs, is not positive in every bootstrap draw for "
       + ", ".join(f"{m} ({1 - shares.loc[m, 'positive_denominator']:.1%} of draws)" for m in unsafe)
       + ": their share and its change are not read.")
    + (" Without stopwords and punctuation the matching words carry "
       + "; ".join(f"{content_share[m]:.3f} of {m}'s word-pair sum (all matches: {shares.loc[m, 'value']:.3f})"
                   for m in readable)
       + ": the rest of the diagonal is words such as \"a\", \"the\" and the full stop." if readable else "")
))

# %% tags=["hide-input"]
betas = per_model[per_model["statistic"] == "beta"]
fig, (ax,) = plotting.figure(
    f"Slope of the normalised contribution to the similarity on each word statistic (per SD), per model, "
    f"with {level:.0%} percentile intervals over resampled pairs.", width=6.5, height=3.4)
quantities = list(analysis.QUANTITIES.values())
for k, model in enumerate(models):
    rows = betas[betas["model"] == model].set_index("quantity").loc[quantities]
    x = np.arange(len(quantities)) + (k - (len(models) - 1) / 2) * 0.2
    ax.errorbar(x, rows["value"], yerr=[rows["value"] - rows["low"], rows["high"] - rows["value"]], fmt="o",
                label=model, color=f"C{k}", capsize=3)
ax.axhline(0, color="grey", lw=0.8)
ax.set_xticks(range(len(quantities)), quantities, rotation=10, fontsize=8)
ax.set(ylabel="β (normalised contribution per SD)")
ax.legend(fontsize=8);

# %% [markdown]
# ## The changes, tested together
#
# One family per profile, apart from the Correlations chapter's primary claims and
# so exploratory: for every twin, the change of the same-word share, of its
# excess over chance and Δβ on each statistic, with max-t simultaneous intervals
# (`cwi.inference.simultaneous`) at joint coverage {glue:text}`similarity_level:.0%`.
# A member's interval above or below 0 is read as a verdict only if the rule's
# false-positive rate, measured next, is not shown above the nominal rate.

# %%
members = family.members.assign(quantity=family.members["quantity"].map(analysis.QUANTITIES).fillna(""))
members["reading"] = [similarity.CHANGE_WORDS[s][v] for s, v in zip(members["statistic"], members["verdict"])]
# Where an interval lies; whether that is read as a verdict depends on the rule's measured error rate (next).
members["interval"] = members["verdict"].map({"more": "above 0", "less": "below 0", "unclear": "includes 0",
                                               "not fitted": "not estimable"})
members[["twin", "statistic", "quantity", "pretrained", "finetuned", "estimate", "low", "high", "interval"]].style.format(
    {c: "{:+.4f}" for c in ("estimate", "low", "high")} | {"pretrained": "{:.3f}", "finetuned": "{:.3f}"}
).hide(axis="index").set_table_styles(TABLE_STYLE)

# %% [markdown]
# ### How often does this rule find a change where there is none?
#
# The rule's family-wise false-positive rate, measured on this profile's own
# decompositions: each simulation relabels the models at random within every pair
# (one relabelling per resampled unit) and only among a pre-trained model and its
# fine-tuned twins (with no effect of fine-tuning they are exchangeable; models of
# different architectures never swap: `cwi.similarity.null_orders`), recomputes
# every member on the same draws and applies the rule (`cwi.similarity.null_rate`).
# The verdicts count only where the simulated rate is not shown above the nominal
# rate (its exact interval, whatever its width, is printed beside it).

# %%
start = time.perf_counter()
said, n_sim = similarity.null_rate(workspace, level, settings.analysis.null_simulations, settings.seed)
null_seconds = time.perf_counter() - start
status, rate_low, rate_high = inference.calibration_status(said, n_sim, level)
pd.DataFrame({"simulations": [n_sim], "with a verdict": [said], "rate": [said / n_sim],
              f"{level:.0%} interval": [f"{rate_low:.1%} to {rate_high:.1%}"], "status": [status]}).style.format(
    {"rate": "{:.1%}"}).hide(axis="index").set_table_styles(TABLE_STYLE)

# %% tags=["remove-input"]
glue("similarity_level", level, display=False)
glue("similarity_null_rate", said / n_sim, display=False)
calibrated = status != "above"
share = members[members["statistic"] == "same-word share"].set_index("twin")
excess = members[members["statistic"] == "excess same-word share"].set_index("twin")
lines = [
    f"With no effect the rule gave a verdict in **{said} of {n_sim}** simulations ({said / n_sim:.1%}; exact "
    f"{level:.0%} interval {rate_low:.1%} to {rate_high:.1%}, {null_seconds:.1f} s): "
    f"{inference.RATE_WORDS[status]} (nominal {1 - level:.0%}).",
]
for twin, row in share.iterrows():
    interval = f"{row['estimate']:+.4f} [{row['low']:+.4f}, {row['high']:+.4f}]"
    if {twins[twin].pretrained, twins[twin].finetuned} & set(unsafe):
        reading = "not read, since a model's word-pair sum is not positive in every draw"
    elif not calibrated:
        reading = "no verdict is drawn, since the rule's rate is shown above the nominal rate here"
    else:
        reading = similarity.CHANGE_WORDS["same-word share"][row["verdict"]]
    lines.append(f"\n- **{twin}**: same-word share {row['pretrained']:.3f} → {row['finetuned']:.3f}, change "
                 f"{interval}: {reading}.")
    extra = excess.loc[twin]
    extra_reading = (reading if reading.startswith(("not read", "no verdict"))
                     else similarity.CHANGE_WORDS["excess same-word share"][extra["verdict"]])
    lines.append(f"  Beyond chance (the excess share): {extra['pretrained']:+.3f} → {extra['finetuned']:+.3f}, change "
                 f"{extra['estimate']:+.4f} [{extra['low']:+.4f}, {extra['high']:+.4f}]: {extra_reading}.")
    betas_twin = members[(members["twin"] == twin) & (members["statistic"] == "delta beta")]
    said_beta = [(r.quantity, r.reading) for r in betas_twin.itertuples() if r.verdict in ("more", "less")]
    not_fitted = [r.quantity for r in betas_twin.itertuples() if r.verdict == "not fitted"]
    if not_fitted:
        lines.append("  Δβ not estimable on these pairs for " + ", ".join(not_fitted) + ".")
    if not said_beta:
        lines.append("  Δβ: every other interval includes 0." if not_fitted else "  Δβ: every interval includes 0.")
    elif calibrated:
        lines.append("  Δβ: " + "; ".join(f"{quantity}: {reading}" for quantity, reading in said_beta) + ".")
    else:
        lines.append("  Δβ: intervals exclude 0 for " + ", ".join(quantity for quantity, _ in said_beta)
                     + ", but no verdict is drawn, since the rule's rate is shown above the nominal rate here.")
display(Markdown("\n".join(lines)))
# Where each interval lies, not its reading: a reading is a verdict only under the gates above.
display(downloads.csv_download(members.drop(columns=["verdict", "reading"]), "similarity_family.csv", "the family"))

# %% [markdown]
# ### How many pairs does the rule need?
#
# The same measurement on nested subsamples of this chapter's pairs (the first
# pairs of each dataset's seeded sample, so nothing is attributed again): the
# smallest sample at which the rule's rate is not shown above the nominal rate
# is the least a profile should decompose.

# %%
def rule_at_size(size: int) -> dict:
    """The family's rule on the first `size` pairs of each dataset's sample: its measured false-positive rate."""
    kept = pd.concat([data.sample_sts_pairs(dataset, size, settings.seed).assign(dataset=dataset)
                      for dataset in pairs["dataset"].unique()])[["dataset", "pair"]]
    sub_pairs = pairs.merge(kept, on=["dataset", "pair"])
    sub_frame = frame.merge(kept, on=["dataset", "pair"])
    sub_boot = analysis.SentenceBootstrap(sub_frame, settings.analysis.n_bootstrap, settings.seed)
    _, sub_work = similarity.change_family(sub_pairs, sub_frame[sub_frame["status"] == "ok"], twins, sub_boot,
                                           analysis.quantity_scales(sub_frame), analysis.QUANTITIES, level)
    hits, runs = similarity.null_rate(sub_work, level, settings.analysis.null_simulations, settings.seed)
    rate_status, low, high = inference.calibration_status(hits, runs, level)
    return {"pairs per dataset": size, "pairs": sub_pairs["pair"].groupby(sub_pairs["model"]).size().iloc[0],
            "rate": hits / runs, "interval": f"{low:.1%} to {high:.1%}", "status": rate_status}


largest = int(pairs.groupby(["model", "dataset"]).size().max())  # what a dataset holds, if fewer than asked
step = max(2, largest // 4)
sizes = sorted({*range(step, largest, step), largest})
by_size = pd.DataFrame([rule_at_size(size) for size in sizes])
by_size.style.format({"rate": "{:.1%}"}).hide(axis="index").set_table_styles(TABLE_STYLE)

# %% tags=["remove-input"]
# The smallest size from which every larger size measured keeps its rate within nominal.
above = by_size.loc[by_size["status"] == "above", "pairs per dataset"]
from_here = by_size.loc[by_size["pairs per dataset"] > (above.max() if len(above) else 0), "pairs per dataset"]
smallest = int(from_here.min()) if len(from_here) else None
glue("similarity_smallest_size", smallest, display=False)
glue("similarity_rate_by_size", {str(size): glued_number(rate)
                                 for size, rate in zip(by_size["pairs per dataset"], by_size["rate"])},
     display=False)
display(Markdown(
    f"The rule's rate is not shown above the nominal {1 - level:.0%} at {smallest} pairs per dataset and at every "
    f"larger size measured; this profile decomposes up to {largest} per dataset."
    if smallest is not None else
    f"At none of the sizes measured (up to this profile's {largest} pairs per dataset) is the rule's "
    "rate within the nominal rate: a profile needs more pairs for verdicts."
))

# %% [markdown]
# ### Does the baseline decide the split?
#
# The split's terms depend on the attribution baseline: the words' vectors are
# the path from it, and two terms are the baseline's own. The first pairs of each
# dataset's sample (`similarity.baseline_pairs`), decomposed again with the
# other baselines (the `[MASK]` token's embedding, or zeros, in place of every
# word's tokens), show how far the same-word share and its excess move. These
# are descriptions of a few pairs, not a test.

# %%
start = time.perf_counter()
sensitivity = pipeline.baseline_sensitivity(settings, results)
sensitivity_seconds = time.perf_counter() - start
sensitivity.pivot_table(index="model", columns="baseline", values=["share", "excess", "baselines"], sort=False
                        ).loc[models].rename_axis(None).style.format("{:+.3f}").set_table_styles(TABLE_STYLE)

# %% tags=["remove-input"]
glue("similarity_baselines", {f"{r.model}/{r.baseline}": {"share": glued_number(r.share),
                                                           "excess": glued_number(r.excess)}
                              for r in sensitivity.itertuples()}, display=False)
spread = sensitivity.groupby("model", sort=False)["excess"].agg(["min", "max"]).loc[models]
by_baseline = sensitivity.set_index(["baseline", "model"])["excess"]
own_baseline = settings.attribution.baseline


def baseline_changes(twin: str) -> tuple[str, list[str]]:
    """The twin's change of the excess share under each baseline, and the other baselines that reverse the family's.

    The family's change (every pair, this chapter's baseline) is the reference, and only where its interval
    excludes 0: a change read as 0 has no sign to reverse.
    """
    pair = twins[twin]
    changes = {b: by_baseline[(b, pair.finetuned)] - by_baseline[(b, pair.pretrained)]
               for b in sensitivity["baseline"].unique()}
    family_change = excess.loc[twin]
    sign = np.sign(family_change["estimate"]) if family_change["verdict"] in ("more", "less") else 0
    # A reversal is the baseline's only where this baseline's own change on the same few pairs keeps the family's
    # sign: otherwise the few pairs alone could reverse it.
    if not sign or np.sign(changes[own_baseline]) != sign:
        return "; ".join(f"{b} {c:+.3f}" for b, c in changes.items()), []
    flipped = [b for b, c in changes.items() if b != own_baseline and np.sign(c) == -sign]
    return "; ".join(f"{b} {c:+.3f}" for b, c in changes.items()), flipped


sign_changes = {twin: baseline_changes(twin) for twin in twins}
glue("similarity_baseline_flips", {twin: flipped for twin, (_, flipped) in sign_changes.items()}, display=False)
display(Markdown(
    f"On these {int(sensitivity['pairs'].iloc[0])} pairs the excess share ranges over the baselines "
    + "; ".join(f"from {spread.loc[m, 'min']:+.3f} to {spread.loc[m, 'max']:+.3f} for {m}" for m in models)
    + f" (this chapter's baseline: {own_baseline}; {sensitivity_seconds:.0f} s here). Its change from the "
    "pre-trained model to the fine-tuned one, by baseline: "
    + "; ".join(f"{twin}: {text}" + (f" (against the sign of the family's change on every pair with "
                                     f"{', '.join(flipped)})" if flipped else "")
                for twin, (text, flipped) in sign_changes.items())
    + (". Where another baseline reverses the family's change, its reading holds for the chapter's baseline only: "
       "which words carry a similarity is then partly the baseline's choice." if any(f for _, f in sign_changes.values())
       else ". No other baseline reverses a change the family reads.")
))


def first_page_share(twin: str, row) -> str:
    """One twin's excess same-word share for the first page, or why it is not read."""
    if {twins[twin].pretrained, twins[twin].finetuned} & set(unsafe):
        return f"{twin}: not read (its word-pair sum is not positive in every draw)"
    flipped = sign_changes[twin][1]
    return (f"{twin} {row['pretrained']:+.3f} → {row['finetuned']:+.3f}, change {row['estimate']:+.4f} "
            f"[{row['low']:+.4f}, {row['high']:+.4f}]"
            + (f" (the point estimate on {int(sensitivity['pairs'].iloc[0])} of these pairs is reversed with the "
               f"{' and '.join(flipped)} baseline{'s' if len(flipped) > 1 else ''}: a description, not a test)"
               if flipped else ""))


glue_finding(
    (f"Beyond what random partners of the matched words would carry, the part of the word-pair "
     f"similarity carried by the same word in both sentences, pre-trained → fine-tuned (simultaneous {level:.0%} "
     f"intervals, {own_baseline} baseline): " if len(excess) else
     "No pre-trained model with a fine-tuned twin is decomposed in this profile")
    + "; ".join(first_page_share(twin, row) for twin, row in excess.iterrows())
    + f". The family's false-positive rate with no effect: {said / n_sim:.1%} of {n_sim:,} simulations (exact "
    f"interval {rate_low:.1%} to {rate_high:.1%}), {STATUS_WORDS[status]}.")

# %% [markdown]
# ## Where the model and the annotators disagree most
#
# Per model, the pairs whose cosine ranks farthest from their gold score's rank
# within their dataset (ranks as fractions, as Spearman's correlation sees them;
# a positive gap: the model finds the pair more similar than the annotators do),
# with the word pairs of largest $|A_{wv}|$.

# %%
worst = similarity.worst_pairs(pairs, results.decompositions, per_model=ss.worst_pairs)
worst.drop(columns=["pair", "gold rank", "score rank"]).style.format(
    {"gold": "{:.2f}", "score": "{:.3f}", "rank gap": "{:+.2f}"}).hide(axis="index").set_table_styles(TABLE_STYLE)

# %% [markdown]
# ## Explore the pairs
#
# Pick a dataset, a pair and two models: each panel shows the model's cosine and
# its terms, both sentences with every word coloured by its contribution (red adds
# to the similarity, blue takes from it; hover for the value and its share of the
# cosine), and the word-pair matrix, matching words outlined. The explorer holds
# the decompositions computed above, so it works in the HTML book without a kernel.

# %% tags=["remove-input"]
opening = next(iter(twins.values()))
offered = pairs[pairs["model"] == models[0]].groupby("dataset", sort=False).head(ss.explorer_pairs)
display(interactive.pair_explorer(results.decompositions, offered, opening.pretrained, opening.finetuned))
display(Markdown(f"The explorer offers {len(offered):,} pairs: the first {ss.explorer_pairs} of each dataset's sample."))
glue("similarity_checks", {"members": len(members), "status": status, "said": int(said), "simulations": int(n_sim),
                           "verdicts": members["verdict"].tolist(), "worst_models": sorted(worst["model"].unique()),
                           "explorer_pairs": len(offered)}, display=False)

# %% [markdown]
# ### Your own pair (JupyterLab)
#
# In JupyterLab, type any two sentences: the widget below decomposes their cosine
# on the spot. It needs a running kernel, so the HTML book leaves it out.

# %% tags=["hide-input", "remove-output", "skip-execution"]
# A JupyterLab widget: papermill skips it (the tag), as the HTML book leaves it out. Run under
# papermill it could leave the runner waiting for the cell forever (seen in this chapter).
encoder = functools.cache(lambda name: pipeline.load_encoder(name, settings))  # a model loads when first chosen
method_settings = settings.attribution.method_settings(ss.method)


def explain(first: str, second: str, model_1: str, model_2: str) -> None:
    """The pair explorer for two typed sentences."""
    typed = {(name, "typed", 0): similarity.decompose_sentences(encoder(name), first, second, ss.method,
                                                                settings.attribution.baseline, **method_settings)
             for name in dict.fromkeys([model_1, model_2])}
    display(interactive.pair_explorer(typed, pd.DataFrame({"dataset": ["typed"], "pair": [0], "gold": [np.nan]}),
                                      model_1, model_2))


controls = {
    "first": widgets.Text(value="A man is playing a guitar.", description="sentence 1",
                          layout=widgets.Layout(width="36em"), continuous_update=False),
    "second": widgets.Text(value="Someone plays an instrument.", description="sentence 2",
                           layout=widgets.Layout(width="36em"), continuous_update=False),
    "model_1": widgets.Dropdown(options=models, value=opening.pretrained, description="model 1"),
    "model_2": widgets.Dropdown(options=models, value=opening.finetuned, description="model 2"),
}
display(widgets.VBox([controls["first"], controls["second"], widgets.HBox([controls["model_1"], controls["model_2"]]),
                      widgets.interactive_output(explain, controls)]))

# %% [markdown]
# ## The pair table
#
# One row per model and pair: the sentences, gold score, cosine, the four terms,
# the decomposition error and its bound.

# %% tags=["remove-input"]
columns = ["model", "dataset", "pair", "sentence1", "sentence2", "gold", "score", *similarity.TERMS, "error",
           "error_bound", "matched_cells", "cells", "truncated"]
display(downloads.csv_download(pairs[columns], "similarity_pairs.csv", f"all {len(pairs):,} decompositions"))
glue("similarity_seconds", f"{time.perf_counter() - chapter_start:.0f}", display=False)

# %% [markdown]
# ## Execution record
#
# What this run used and cost: the profile, the kernel's wall time and peak
# memory, the package versions and the commit of the code.

# %% tags=["remove-input"]
record.execution_record(profile)
