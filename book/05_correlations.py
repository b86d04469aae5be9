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
# fine-tuning, a sentence encoder's word weights follow the words' information
# gain (and self-information) more closely than before. This chapter joins the
# word weights of the Attribution chapter with the word statistics of the
# Statistics chapter and tests that claim on every model pair of the profile.
#
# For one model, one attribution method and one quantity $q$ we fit by least squares
#
# $$ \tilde w = a + \beta\, z(q) + \gamma^\top u + \varepsilon , $$ (eq-regression)
#
# where $\tilde w$ is the normalised word weight (1 = the sentence's mean),
# $z(q)$ the quantity standardised over the words of the fit (so $\beta$ is the
# change in normalised weight per standard deviation of $q$), and $u$ optional
# covariates. Words of one sentence share its normalisation, so the intervals
# (at the profile's `analysis.level`) come from a bootstrap that resamples *sentences*. For a pair, both
# models are fitted on the same words and the same resampled sentences, which
# gives a paired interval for
#
# $$ \Delta\beta = \beta_{\text{fine-tuned}} - \beta_{\text{pre-trained}} . $$ (eq-delta-beta)
#
# The verdict of a setting is read off that interval (`cwi.analysis.verdict`):
# above 0, the fine-tuned model weights the quantity more; below 0, less;
# otherwise no clear difference.
#
# The quantities are information gain raw and under both of the Statistics
# chapter's frequency corrections (the shuffled corpus, and the per-frequency-bin
# percentile of {cite:t}`oyama2023norm`), and self-information. Beyond the
# paper, the book's own pairs are compared across contrastive training seeds,
# and along training (the weighting's trajectory).

# %% tags=["remove-cell"]
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue
from scipy import stats as scistats

from cwi import analysis, config, downloads, interactive, models, pipeline, plotting, record

# %% tags=["parameters"]
profile = "default"

# %%
settings = config.get_profile(profile)
plotting.use_book_style()
min_count = settings.stats.min_count
level = f"{settings.analysis.level:.0%}"
pairs = analysis.present_pairs(models.PAIRS, settings.attribution.models)
pd.DataFrame([{"pair": n, "pre-trained": p.pretrained or "(none offline)", "fine-tuned": p.finetuned}
              for n, p in pairs.items()]).style.hide(axis="index")

# %% [markdown]
# ## The data
#
# The statistics table and the word weights come from the artefact cache (they
# are computed if this chapter runs first). Every word keeps its row; a word
# without usable statistics is flagged: *absent* from the corpus, *rare* (fewer
# than the profile's `min_count` occurrences, where the estimates are mostly
# noise) or *no context* (seen only in one-word sentences).

# %%
table = pipeline.corpus_statistics(settings)
weights = pipeline.profile_word_weights(settings)
frame = analysis.attach_statistics(weights, table, min_count)
missing = analysis.missing_statistics(frame)
missing.style.format({"share without statistics": "{:.1%}"})

# %% tags=["remove-input"]
share = (frame["status"] != "ok").mean()
absent_words = frame.loc[frame["status"] == "absent", "word"].value_counts()
display(Markdown(
    f"Of {len(frame):,} word weights, **{share:.1%}** have no usable statistics (at least {min_count} "
    f"occurrences in {table.attrs['n_sentences']:,} Wikipedia sentences) and stay out of the fits; every "
    f"row of the results counts them in `n_without_statistics`. The most frequent absent words: "
    + ", ".join(f"`{w}`" for w in absent_words.index[:8]) + "."
))

# %% [markdown]
# ## All regressions
#
# Every pair x dataset (and all datasets pooled) x method x quantity x control:
# no covariates; with log frequency, length in characters, number of subword
# tokens and relative position in the sentence as covariates (log frequency is
# left out for self-information, which is minus log frequency plus a constant);
# and without stopwords (scikit-learn's English list and punctuation). The tidy
# table goes to the artefact cache as CSV, keyed by the data and settings.

# %%
start = time.perf_counter()
results = pipeline.correlation_results(settings, frame, pairs)
results_path = results.attrs["cache_path"]
fit_seconds = time.perf_counter() - start
display(Markdown(f"{len(results):,} settings fitted in {fit_seconds:.1f} s with {settings.analysis.n_bootstrap:,} "
                 f"bootstrap replicates each; the table (all {results.shape[1]} columns) is at `{results_path}`."))
# The first rows, in the columns a reader compares; the file holds the intervals of both slopes, R², Spearman, counts.
display(results[["pair", "dataset", "method", "quantity", "control", "beta_pre", "beta_fine", "delta", "delta_low",
                 "delta_high", "n_words", "verdict"]].head().style.hide(axis="index").format(precision=3))
downloads.csv_download(results, "correlation_results.csv", f"all {len(results):,} regressions")

# %% [markdown]
# ## The headline table
#
# All datasets pooled, no covariates: the paper's comparison. Slopes are per
# standard deviation of the quantity, with sentence-bootstrap intervals.

# %%
headline = analysis.headline(results, level=settings.analysis.level)
glue("headline_rows", len(headline), display=False)  # read by the tests, as every glued value
glue("headline_pairs", sorted(set(headline["pair"])), display=False)
display(headline.style.hide(axis="index"))
downloads.csv_download(headline, "headline.csv", "the headline table")

# %% tags=["remove-input"]
paired = results[results["pretrained"].notna()]
n_settings = len(paired)
n_more = (paired["verdict"] == "more").sum()
n_less = (paired["verdict"] == "less").sum()
main = paired[(paired["dataset"] == "all") & (paired["control"] == "none")]
display(Markdown(
    f"Pooled over datasets without covariates, **{(main['verdict'] == 'more').sum()} of "
    f"{len(main)}** pair x method x quantity settings have a Δβ interval above 0 and "
    f"{(main['verdict'] == 'less').sum()} below 0. Over all {n_settings} paired settings "
    f"(each dataset and pooled, every control) {n_more} are above 0 and {n_less} below."
))
# How precise the comparisons are: it grows with the sentences attributed per dataset.
uncovered = paired[paired["control"] == "none"]
widths = (uncovered["delta_high"] - uncovered["delta_low"]).groupby(uncovered["dataset"] == "all").median()
glue("delta_width_per_dataset", float(widths[False]), display=False)
display(Markdown(
    f"The median width of a Δβ interval is {widths[True]:.3f} pooled and "
    f"{widths[False]:.3f} on one dataset alone (no covariates)."
))

# %% [markdown]
# ## Weight against information gain
#
# Each panel is one pair (Integrated Gradients, raw information gain): the
# binned medians of the normalised weight of both models on the same words, and
# their fitted lines.

# %% tags=["hide-input"]
usable = frame[frame["status"] == "ok"]
plotting.pair_panels(
    usable[usable["method"] == "ig"], pairs, "information_gain", analysis.QUANTITIES["information_gain"] + " (nats)",
    f"Normalised Integrated-Gradients word weight against raw information gain: medians in "
    f"{settings.analysis.median_bins} equal-count bins (dots) and least-squares lines, pre-trained (blue) and "
    "fine-tuned (orange), on the same words.", bins=settings.analysis.median_bins,
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
# ## Δβ across all settings
#
# A forest plot of every pair, pooled over datasets: one panel per quantity
# and method, one row per pair, colour for the control.

# %% tags=["hide-input"]
plotting.forest(
    paired, analysis.QUANTITIES, analysis.CONTROLS,
    f"Δβ (fine-tuned minus pre-trained slope, per SD of the quantity), all datasets pooled, with {level} "
    "sentence-bootstrap intervals. Right of the dashed line: the fine-tuned model weights the quantity more.",
)
plt.show()

# %% [markdown]
# Dataset by dataset, without covariates: one row per pair and method, one
# column per dataset.

# %% tags=["hide-input"]
plotting.delta_grid(
    paired, list(settings.attribution.datasets) + ["all"], analysis.QUANTITIES, "none",
    f"Δβ per dataset (no covariates); red: the fine-tuned model weights the quantity more, blue: less. Bold: the "
    f"{level} interval excludes 0.",
)
plt.show()

# %% [markdown]
# ## Where does the effect survive the controls?

# %%
survival = (paired[paired["dataset"] == "all"]
            .pivot_table(index=["pair", "method", "quantity"], columns="control", values="verdict", aggfunc="first")
            [list(analysis.CONTROLS)].replace(analysis.VERDICTS).rename(index=analysis.QUANTITIES))
survival

# %% [markdown]
# ## Weight against self-information
#
# The same panels for self-information, $-\log p(w)$: rare words are informative
# in the sense of surprise, and the theory ties the norm of a word's vector to
# both quantities.

# %% tags=["hide-input"]
plotting.pair_panels(
    usable[usable["method"] == "ig"], pairs, "self_information", analysis.QUANTITIES["self_information"] + " (nats)",
    "Normalised Integrated-Gradients word weight against self-information: binned medians and least-squares lines, "
    "pre-trained (blue) and fine-tuned (orange).", bins=settings.analysis.median_bins,
)
plt.show()

# %% [markdown]
# ## IG or SHAP: does the method change the answer?

# %%
by_method = (paired[(paired["dataset"] == "all") & (paired["control"] == "none")]
             .pivot_table(index=["pair", "quantity"], columns="method", values="delta")
             .rename(index=analysis.QUANTITIES))
by_method.style.format("{:+.3f}")

# %% [markdown]
# ## Across training seeds
#
# The book's pairs above use the first contrastive training seed. The
# Fine-tuning chapter trained the chosen recipes with `finetune.seeds` seeds
# from the same masked-LM base; each is attributed on the same sentences, and
# each gets its own Δβ against the base (all datasets pooled, no covariates).
# The *all seeds* row averages them, and its interval pools every seed's
# bootstrap replicates (`cwi.analysis.across_seeds`): it is as wide as the
# sentence sampling and the seed-to-seed spread together.

# %%
seed_frame = analysis.attach_statistics(pipeline.seed_word_weights(settings), table, min_count)
both_frames = pd.concat([frame, seed_frame], ignore_index=True)
seed_results = []
for pair_name in ("book-unsup", "book-sup"):
    if pair_name not in pairs:
        continue
    pair = pairs[pair_name]
    names = pipeline.seed_model_names(pair.finetuned, settings)
    seed_results.append(analysis.across_seeds(both_frames, pair.pretrained, names, settings.analysis.n_bootstrap,
                                              settings.seed, settings.analysis.level).assign(pair=pair_name))
seed_results = pd.concat(seed_results, ignore_index=True)

# %% tags=["hide-input"]
seed_view = seed_results.assign(quantity=seed_results["quantity"].map(analysis.QUANTITIES),
                                method=seed_results["method"].str.upper())
seed_view["Δβ"] = [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in
                   zip(seed_view["delta"], seed_view["delta_low"], seed_view["delta_high"])]
seed_wide = seed_view.pivot_table(index=["pair", "method", "quantity"], columns="seed", values="Δβ", aggfunc="first",
                                  sort=False)
seed_wide["verdict (all seeds)"] = (seed_view[seed_view["seed"] == "all"]
                                    .set_index(["pair", "method", "quantity"])["verdict"].map(analysis.VERDICTS))
display(seed_wide)
downloads.csv_download(seed_results, "delta_beta_by_seed.csv", "Δβ per seed")

# %% tags=["remove-input"]
overall = seed_results[seed_results["seed"] == "all"]
single = seed_results[seed_results["seed"] != "all"]
flips = (single.groupby(["pair", "method", "quantity"])["delta"].agg(lambda d: (d > 0).any() and (d < 0).any()))
glue("seed_deltas", {f"{r.pair}/{r.method}/{r.quantity}/{r.seed}": float(r.delta) for r in seed_results.itertuples()},
     display=False)
display(Markdown(
    f"Over {settings.finetune.seeds} seeds, **{(overall['verdict'] == 'more').sum()} of {len(overall)}** pair x "
    f"method x quantity settings keep a Δβ interval above 0 and {(overall['verdict'] == 'less').sum()} below 0 once the "
    f"seed-to-seed spread is included; in {int(flips.sum())} of them the seeds disagree on the sign of Δβ. "
    f"The median standard deviation of Δβ between seeds is {overall['seed_sd'].median():.3f}, against a median "
    f"interval width of {(single['delta_high'] - single['delta_low']).median():.3f} for one seed's sentences."
))

# %% [markdown]
# ## The weighting's trajectory
#
# When during contrastive training does the weighting appear, and does it move
# with similarity quality? Each SimCSE run of the first seed kept a checkpoint
# at log-spaced steps (step 0 is the masked-LM base). At each one, the Fine-tuning
# chapter's STS-B dev score, and here the slope β of the normalised Integrated
# Gradients weight on each quantity (no covariates, all datasets pooled,
# `attribution.trajectory_sentences` sentences per dataset, the start of the
# chapter's sample, with sentence-bootstrap intervals).

# %%
trajectories = pd.concat([pipeline.trajectory(settings, supervised).assign(run=label)
                          for label, supervised in (("unsup-SimCSE", False), ("sup-SimCSE", True))],
                         ignore_index=True)
display(trajectories.assign(stsb_dev=trajectories["stsb_dev"].map("{:.2f}".format))
        .pivot_table(index=["run", "step", "stsb_dev"], columns="quantity", values="beta", sort=False)
        .rename(columns=analysis.QUANTITIES).rename_axis(index={"stsb_dev": "STS-B dev"}).style.format("{:+.3f}"))
downloads.csv_download(trajectories, "trajectory.csv", "the trajectory, with intervals")

# %% tags=["hide-input"]
fig, axes = plotting.figure(
    "β (normalised IG weight per SD of the quantity, with sentence-bootstrap intervals, left axis) and STS-B dev "
    "Spearman x100 (black, right axis) along each SimCSE run of the first seed; step 0 is the masked-LM base, "
    "the dotted line the snapshot the book keeps.",
    ncols=2, width=5.2, height=3.6,
)
for ax, (label, run) in zip(axes, trajectories.groupby("run", sort=False)):
    x_of = {step: i for i, step in enumerate(sorted(run["step"].unique()))}
    for i, (quantity, rows) in enumerate(run.groupby("quantity", sort=False)):
        x = rows["step"].map(x_of)
        ax.errorbar(x + (i - 1.5) * 0.06, rows["beta"], yerr=[rows["beta"] - rows["low"], rows["high"] - rows["beta"]],
                    marker="o", ms=3, lw=1, capsize=2, color=f"C{i}", label=analysis.QUANTITIES[quantity])
    dev = run.drop_duplicates("step")
    twin = ax.twinx()
    twin.plot(dev["step"].map(x_of), dev["stsb_dev"], "k--", marker="s", ms=3, lw=1)
    twin.set_ylabel("STS-B dev")
    twin.grid(False)
    ax.axvline(x_of[int(dev.loc[dev["chosen"], "step"].iloc[0])], color="grey", ls=":", lw=1)
    ax.set_xticks(list(x_of.values()), [str(s) for s in x_of])
    ax.set(title=label, xlabel="step (log-spaced snapshots)", ylabel="β")
axes[0].legend(fontsize=7, loc="best");

# %% tags=["remove-input"]
def trajectory_sentence(label, run):
    raw = run[run["quantity"] == "information_gain"].set_index("step")
    first, last = raw.index.min(), raw.index.max()
    kept = int(raw.index[raw["chosen"]][0])
    rho = scistats.spearmanr(raw["stsb_dev"], raw["beta"]).statistic if raw["stsb_dev"].nunique() > 1 else float("nan")
    moved = raw.loc[last, "beta"] - raw.loc[first, "beta"]
    outside = raw.loc[last, "low"] > raw.loc[first, "high"] or raw.loc[last, "high"] < raw.loc[first, "low"]
    at_last = "" if kept == last else f" and {raw.loc[last, 'beta']:+.3f} at the last, step {last:,}"
    return (f"**{label}**: β on raw information gain goes from {raw.loc[first, 'beta']:+.3f} at the base to "
            f"{raw.loc[kept, 'beta']:+.3f} at the kept step {kept:,}{at_last} "
            f"({moved:+.3f} in all; the last interval {'does not overlap' if outside else 'overlaps'} the base's), while STS-B "
            f"dev goes from {raw.loc[first, 'stsb_dev']:.1f} to {raw.loc[last, 'stsb_dev']:.1f}"
            + (f"; across snapshots, Spearman's ρ between dev score and β is {rho:+.2f}." if rho == rho else "."))


display(Markdown(" ".join(trajectory_sentence(label, run) for label, run in trajectories.groupby("run", sort=False))))

# %% [markdown]
# ## Against the paper's claims
#
# The paper's tables are not available offline, so the comparison is with its
# claims, point by point, pair by pair; every number below is computed above.
# For context, the STS-B test score of each model (the Fine-tuning chapter's
# evaluation): the paper's pairs all gain from contrastive fine-tuning, and the
# Δβ of a pair is worth reading next to what fine-tuning did to its STS score.

# %%
pair_models = tuple(dict.fromkeys(m for p in pairs.values() for m in (p.pretrained, p.finetuned) if m))
all_scores = pipeline.sts_scores(settings, pair_models)  # cached by the Fine-tuning chapter
sts_scores = all_scores[all_scores["dataset"] == "stsb"].set_index("model")["spearman"]
sts_scores.rename("STS-B test Spearman x100").to_frame().style.format("{:.1f}")

# %% [markdown]
# ```{admonition} The decision rule
# Each claim below is read from its settings' Δβ intervals (`cwi.analysis.reading`):
# **reproduces** when more than half of the intervals lie above 0 and none below;
# **contradicts** when more than half lie below 0 and none above; **does not
# reproduce** when none lies above 0; **partly reproduces** otherwise.
# ```

# %% tags=["remove-input"]
def reading(rows: pd.DataFrame) -> str:
    """'k of n above 0, m below' and the word of the decision rule."""
    result = analysis.reading(rows["verdict"])
    return f"{result['more']} of {result['n']} above 0, {result['less']} below: **{result['word']}**"


pooled = paired[paired["dataset"] == "all"]
none = pooled[pooled["control"] == "none"]
per_dataset = paired[(paired["dataset"] != "all") & (paired["control"] == "none")]
minilm = results[results["pretrained"].isna() & (results["dataset"] == "all") & (results["control"] == "none")]
claims = [
    ("fine-tuned models weight words of high information gain more than their pre-trained twins",
     "pooled, no covariates, raw, shuffle-corrected and bin-corrected information gain, both methods", none[none["quantity"] != "self_information"]),
    ("the same holds for self-information", "pooled, no covariates, both methods",
     none[none["quantity"] == "self_information"]),
    ("it holds with Integrated Gradients and with SHAP", "pooled, no covariates, all quantities, both methods", none),
    ("it holds on each dataset", "each dataset alone, no covariates, "
     + " / ".join(sorted({str(settings.attribution.sentences(m)) for p in pairs.values() for m in (p.pretrained, p.finetuned)
                          if m is not None}))
     + " sentences per fit, so wide intervals", per_dataset),
    ("beyond the paper: it survives controls for frequency, length, tokens and position",
     "pooled, with covariates", pooled[pooled["control"] == "covariates"]),
    ("beyond the paper: it survives leaving stopwords out", "pooled, without stopwords and punctuation",
     pooled[pooled["control"] == "no stopwords"]),
]
lines = []
for i, (claim, where, rows) in enumerate(claims, start=1):
    per_pair = "; ".join(f"{pair_name} {reading(group)}" for pair_name, group in rows.groupby("pair", sort=False))
    label = claim[0].upper() + claim[1:] if claim.startswith("beyond") else f"Paper: {claim}"
    lines.append(f"{i}. *{label}.* Here ({where}), settings with Δβ interval above or below 0: {per_pair}.")
if len(minilm):
    lines.append(
        f"{len(lines) + 1}. all-MiniLM-L6-v2 has no pre-trained twin offline, so no Δβ; its own slopes, pooled: "
        + ", ".join(f"{analysis.QUANTITIES[r.quantity]} by {r.method.upper()} {r.beta_fine:+.3f}"
                    for r in minilm.itertuples()) + "."
    )
for pair_name, pair in pairs.items():
    if pair.pretrained:
        change = sts_scores[pair.finetuned] - sts_scores[pair.pretrained]
        lines.append(f"\n{pair_name}: fine-tuning changed STS-B test by {change:+.1f} points "
                     f"({sts_scores[pair.pretrained]:.1f} to {sts_scores[pair.finetuned]:.1f}).")
hub_pairs = [name for name, pair in pairs.items() if models.MODELS[pair.finetuned].kind == "hub"]
if hub_pairs:
    lines.append(
        f"\nThe paper's own models are compared here ({', '.join(hub_pairs)}), loaded from the Hugging Face "
        "Hub (at the commits `cwi.models.MODELS` pins, where it pins one). What this run still differs in: the "
        "paper's full sentence samples and its exact settings where the paper does not state them (the `# PAPER:` "
        "marks in `cwi.config` say where)."
    )
else:
    lines.append(
        "\nWhat we cannot run offline: the paper's models (BERT, RoBERTa and their SimCSE twins; the "
        "`paper` profile loads them from the Hugging Face Hub), its full sentence samples, and its exact "
        "settings where the paper does not state them. The book's pair is a small BERT trained on 2 CPU cores, "
        "so an effect of the paper's size need not appear at this scale, and one that appears here is "
        "evidence about this pair, not about BERT-base."
    )
display(Markdown("\n".join(lines)))


# %% [markdown]
# ## Execution record
#
# What this run used and cost: the profile, the kernel's wall time and peak
# memory, the package versions and the commit of the code.

# %% tags=["remove-input"]
record.execution_record(profile)
