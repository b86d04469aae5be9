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
# # Fine-tuning: the encoder pairs, and did contrastive training work?
#
# The paper compares each pre-trained masked-language model with its contrastively
# fine-tuned twin. This chapter sets up the pairs the book compares, trains the
# book's own pair, and checks on semantic textual similarity (STS) that the
# contrastive twin is the better sentence encoder, as it must be for the later
# chapters' comparison to mean anything.
#
# ## The pairs
#
# No pre-trained (masked-LM only) transformer can be installed offline, so the
# book builds its own controlled pair: a small BERT pre-trained from scratch with
# masked-LM on the Wikipedia pack, then fine-tuned *from that same checkpoint*
# with SimCSE {cite}`gao2021simcse`, unsupervised (dropout noise makes the positive
# pair, temperature 0.05, in-batch negatives) and supervised (an entailed
# hypothesis is the positive, a contradicting one a hard negative). The paper's
# own pairs load from the Hugging Face Hub in the `paper` profile.

# %% tags=["remove-cell"]
import os
import time
from dataclasses import asdict

import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from myst_nb import glue

from cwi import config, data, downloads, models, pipeline, plotting, record, runs, train

# %% tags=["parameters"]
profile = os.environ.get("CWI_PROFILE", "default")  # a built-in profile or a study file

# %%
settings = config.get_profile(profile)
finetune = settings.finetune
plotting.use_book_style()
pd.DataFrame(
    [{"pair": name, "pre-trained": p.pretrained or "(not available offline)", "fine-tuned": p.finetuned,
      "pooling": " / ".join(dict.fromkeys(settings.model(m).pooling for m in [p.pretrained, p.finetuned] if m)),
      "offline": all(settings.model(m).kind != "hub" for m in [p.pretrained, p.finetuned] if m),
      "defined in": "the study file" if settings.from_study(name) else "built in"}
     for name, p in settings.pairs.items()]
).style.hide(axis="index")

# %% [markdown]
# ## The book's small BERT
#
# **Size.** Everything trains on a few CPU cores within the profile's budget, so the
# model is small (the settings below): we chose the size that completes the
# profile's masked-LM steps within the budget; `benchmarks/train.py` measures the
# throughput of the chosen one.
#
# **Vocabulary.** A WordPiece vocabulary trained on the same sentences with the
# `tokenizers` library rather than the 30,522-token uncased vocabulary of BERT
# {cite}`devlin2019bert`: at this
# model size BERT's embedding table would hold most of the parameters, many of them
# for tokens the corpus never shows. Its normalizer and pre-tokenizer are BERT's,
# so its words are exactly the words of the Statistics chapter.
#
# **Pooling.** Mean pooling for both models of the pair. PAPER: unsupervised SimCSE
# trains with the [CLS] vector and an MLP; a masked-LM checkpoint has no trained
# [CLS] objective (no next-sentence prediction here), so [CLS] would handicap the
# pre-trained side of the comparison. Unsupervised SimCSE trains through
# SimCSE's training-time MLP over the mean-pooled vector, dropped afterwards
# (SimCSE's `mlp_only_train`; the `mlp_head` setting).
#
# **Word vectors.** With `word_vectors="glove"`, the input embedding of every
# vocabulary entry that is a whole word starts from its GloVe 6B 50-d vector
# {cite}`pennington2014glove` (mapped into the model's width by a seeded matrix
# with orthonormal rows, so cosines between words are kept); word pieces,
# characters and special tokens start at random. Masked-LM training then moves
# them freely. Whether to start from GloVe is a choice, so it is made like every
# other one, on STS-B dev: a base is trained each way (`finetune.mlm_search`) and
# scored on dev as it is, with the book's mean pooling, and the better one is the
# base every SimCSE run starts from (`cwi.runs.mlm_search`). The test splits are
# not read. The base's own dev score is a proxy: what matters downstream is the
# dev score after SimCSE, and a better base is also a stronger pre-trained twin,
# which can narrow the gaps the later chapters measure.

# %%
finetune.mlm

# %%
start = time.perf_counter()
base_search = runs.mlm_search(settings)
mlm_record = train.history(runs.mlm_checkpoint(settings))
mlm_seconds = time.perf_counter() - start
# word_vectors None is a random start: say so in the table and the text.
searched = [field for field, _ in finetune.mlm_search]
base_search[searched] = base_search[searched].map(lambda value: "none (random)" if value in (None, "None") else value)
base_search.drop(columns="checkpoint").rename(
    columns={"stsb_dev": "STS-B dev"}).style.format({"STS-B dev": "{:.2f}"}).hide(axis="index")

# %% tags=["remove-input"]
glue("mlm_search", {"stsb_dev": [float(v) for v in base_search["stsb_dev"]],
                    "chosen": int(base_search.index[base_search["chosen"]][0])}, display=False)
if searched:
    best = base_search[base_search["chosen"]].iloc[0]
    display(Markdown(
        "Chosen on STS-B dev: " + ", ".join(f"{field} {best[field]}" for field in searched)
        + f", {best['stsb_dev']:.2f} against "
        + ", ".join(f"{row['stsb_dev']:.2f} for " + ", ".join(f"{field} {row[field]}" for field in searched)
                    for _, row in base_search[~base_search["chosen"]].iterrows()) + "."
    ))

# %% tags=["remove-input"]
covered = mlm_record.get("vocabulary_with_word_vectors")
display(Markdown(
    f"The model has **{mlm_record['parameters'] / 1e6:.1f} M parameters**"
    + (f"; {covered:.0%} of its vocabulary started from GloVe vectors" if covered else "")
    + f". After {finetune.mlm.steps:,} masked-LM steps of {finetune.mlm.batch_size} sentences, on "
    f"{mlm_record['heldout_tokens']:,} masked tokens of {finetune.mlm.heldout:,} held-out sentences its "
    f"masked-LM loss is **{mlm_record['heldout_loss']:.2f}** and its accuracy "
    f"**{mlm_record['heldout_accuracy']:.1%}**. Training (or loading from the checkpoint cache) took "
    f"{mlm_seconds:.0f} s in this run."
))

# %% [markdown]
# ## What supervised SimCSE trains on
#
# SNLI triplets (premise, an entailed and a contradicting hypothesis). STS-B's
# image captions were drawn from SNLI, and other STS sets share sentences with it
# too, so every triplet holding a sentence of any STS set (compared lower-cased,
# punctuation as spaces, spaces collapsed: `cwi.data.normalise_sentence`) is
# dropped before training (`cwi.data.snli_triplets`): supervised SimCSE trains
# on no evaluated or attributed sentence. The masked-LM and unsupervised SimCSE
# train on the Wikipedia corpus, checked the same way below.

# %%
overlap = data.triplet_overlap()
corpus = data.load_corpus(settings.corpus, finetune.mlm.corpus_limit)
in_corpus = data.corpus_overlap(corpus)
overlap.rename(columns={"triplets": "triplets sharing a sentence", "of": "SNLI triplets"}).T

# %% tags=["remove-input"]
glue("triplets_dropped", int(overlap.loc["any", "triplets"]), display=False)
glue("corpus_sts_sentences", len(in_corpus), display=False)
shared = overlap.drop(index="any")["triplets"]
display(Markdown(
    f"Of {int(overlap.loc['any', 'of']):,} SNLI triplets, **{int(overlap.loc['any', 'triplets']):,}** share a "
    f"sentence with an STS set and are dropped, most of them with {shared.idxmax()} ({int(shared.max()):,}); "
    f"supervised SimCSE trains on the other {int(overlap.loc['any', 'of'] - overlap.loc['any', 'triplets']):,}. "
    + (f"The Wikipedia sentences the masked-LM trains on hold {len(in_corpus)} STS sentence"
       f"{'s' if len(in_corpus) != 1 else ''} ("
       + ", ".join(f"*{s}*" for s in in_corpus[:3]) + (", ..." if len(in_corpus) > 3 else "")
       + "), left in: removing them would change the corpus every statistic and model is computed from, and the "
       f"masked-LM and unsupervised SimCSE may have seen them among {len(corpus):,} sentences."
       if in_corpus else "The Wikipedia sentences the masked-LM trains on hold no STS sentence.")
))

# %% [markdown]
# ## Choosing the SimCSE recipe on STS-B dev
#
# Every SimCSE setting below starts from that one masked-LM checkpoint and is
# trained with the search seed (the profile's). A run is scored on the STS-B *development* split
# at log-spaced snapshots and keeps its best one, as SimCSE keeps its best dev
# checkpoint (the base, step 0, is scored but never kept). The candidate whose
# kept snapshot scores best is the recipe (`cwi.runs.search`, `chosen`);
# the test splits are read only in the next section, after every choice is made.
#
# **What the grid holds.** Unsupervised SimCSE's positive pair is a sentence seen
# through two dropout masks, and the temperature sets how sharply the loss
# separates it from the other sentences of the batch. The `default` profile
# searches those two, from SimCSE's own values (dropout 0.1, temperature 0.05;
# {cite:t}`gao2021simcse`) up,
# and fixes the learning rate and the MLP head, which an earlier grid of this book
# searched on dev. `benchmarks/recipe_search.py` runs a wider dev-only grid
# (batch size, learning rate, [CLS] pooling), best on a GPU, for anyone who wants
# to question the narrowing. The grids and the settings they start from:

# %%
grids = pd.DataFrame([asdict(finetune.unsup), asdict(finetune.sup)], index=["unsupervised", "supervised"])
grids = grids.astype(object)  # each row keeps its own types when shown transposed
grids.insert(0, "searched", [" x ".join(f"{field} {values}" for field, values in grid) or "nothing"
                             for grid in (finetune.unsup_search, finetune.sup_search)])
grids.T

# %%
start = time.perf_counter()
# Both grids at once: where the machine has the cores, independent runs train side by side (cwi.workers).
runs.train_runs(settings, runs.search_specs(settings, False) + runs.search_specs(settings, True))
searches = {"unsupervised": runs.search(settings, supervised=False),
            "supervised": runs.search(settings, supervised=True)}
search_seconds = time.perf_counter() - start

# %% tags=["remove-input"]
glue("search", {kind: {"stsb_dev": [float(v) for v in table["stsb_dev"]],
                       "chosen": int(table.index[table["chosen"]][0])} for kind, table in searches.items()},
     display=False)

# %% tags=["hide-input"]
def show_search(table, title):
    """The search as a reader compares it: one row per candidate, dev score per snapshot, the chosen one in bold."""
    dev = [c for c in table.columns if c.startswith("dev@")]
    searched = [c for c in table.columns if c not in ("best_step", "stsb_dev", "chosen", *dev)]
    shown = table[searched + ["best_step", "stsb_dev"] + dev[1:]].rename(
        columns={"best_step": "kept step", "stsb_dev": "kept dev", **{c: c.replace("dev@", "@") for c in dev}})
    floats = [c for c in searched if shown[c].dtype.kind == "f"]
    bold = table["chosen"].to_numpy()
    return (shown.style.format("{:.2f}", subset=[c for c in shown.columns if c not in searched + ["kept step"]])
            .format("{:g}", subset=floats)
            .apply(lambda column: ["font-weight: bold" if b else "" for b in bold], axis=0)
            .hide(axis="index")
            .set_caption(f"{title}: STS-B dev Spearman x100 after each snapshot step (@); the base scores "
                         f"{table['dev@0'].iloc[0]:.2f}. Bold: the chosen recipe."))


display(show_search(searches["unsupervised"], "Unsupervised SimCSE"))
display(show_search(searches["supervised"], "Supervised SimCSE"))

# %% tags=["remove-input"]
def describe(kind):
    table = searches[kind]
    row = table[table["chosen"]].iloc[0]
    fields = [c for c in table.columns if c not in ("best_step", "stsb_dev", "chosen") and not c.startswith("dev@")]
    setting = ", ".join(f"{f} = {row[f]}" for f in fields) or "the base settings"
    return (f"**{kind.capitalize()}**: {setting}, best at step {row['best_step']:,}, STS-B dev "
            f"{row['stsb_dev']:.2f} against {row['dev@0']:.2f} for the base (best of {len(table)} "
            f"candidate{'s' if len(table) > 1 else ''}).")


display(Markdown(
    "The chosen recipes (bold rows): " + " ".join(describe(k) for k in searches)
    + f" The search took {search_seconds:.0f} s in this run (or loading from the cache)."
))

# %% [markdown]
# ## The selected models and the drawn ones
#
# The search's winning run, at its best dev snapshot, is the **selected** model
# of each recipe (`book-unsup-simcse`, `book-sup-simcse`): what a practitioner
# would ship, and what the Attribution, Weighting and Similarity chapters show.
# It won the dev search twice, for the recipe and for the step, so it is
# selected, not drawn: if contrastive training weights informative words and
# dev quality rewards that, the selection favours the hypothesis. The claims of
# the Correlations chapter are therefore decided on **fresh seeds**:
# `finetune.seeds` runs of each chosen recipe with seeds no search used,
# every one stopped at the **recipe's step**, the step the search chose on dev
# for the recipe (the schedule stays the recipe's own, so the model at that
# step is the one a full run would have there). No seed keeps a best snapshot
# of its own.
#
# ## Matched controls: is it the contrastive objective?
#
# A change from the masked-LM base to a fine-tuned model may come from any
# further training of an undertrained base. Each drawn seed therefore has a
# **matched non-contrastive control** (`cwi.train.train_control`): the same
# base, the same examples in the same seeded order and batches, the same steps
# (stopped at the same step), learning rate and schedule, optimiser, dropout and
# pooling, with another loss:
#
# - **unsupervised**: masked-LM (the base's own objective and masking rate) on
#   unsupervised SimCSE's Wikipedia sentences. It tests whether more training
#   on these sentences, at this learning rate and dropout, is what changes the
#   weighting (the base has seen them already, in its own pre-training, so its
#   own change may be small: the Correlations chapter prints it);
# - **supervised**: a softmax classifier of entailment against contradiction
#   over $(u, v, |u - v|)$ of the two pooled sentences (Sentence-BERT's
#   objective {cite}`reimers2019sentence`, two labels because the triplets hold
#   no neutral hypothesis), on supervised SimCSE's triplets, the classifier
#   dropped afterwards as SimCSE's MLP head is. It tests whether supervision
#   by the same NLI pairs, without a contrastive loss, is what changes it.
#
# The Correlations chapter's difference in differences, the change after
# SimCSE minus the change after its control, is what it credits to the
# contrastive objective, against this control. What no control rules out: the
# learning rate, step and dropout were searched for SimCSE, not for the
# control; any effect of the objective that the control's own loss shares
# cancels; and a control that is the worse sentence encoder makes the contrast
# one of similarity quality as well as of objective.
#
# **A second base.** The base search's runner-up (below) carries the
# unsupervised recipe and its control again, with the first
# `finetune.replication_seeds` fresh seeds, at the same recipe and step (chosen
# on the first base: nothing is searched again): does the effect's sign survive
# another start?

# %%
start = time.perf_counter()
recipe_steps = {"unsupervised": runs.recipe_step(settings, False), "supervised": runs.recipe_step(settings, True)}
draws = runs.train_runs(settings, runs.draw_specs(settings))
specs = runs.draw_specs(settings)
draw_seconds = time.perf_counter() - start
second = runs.second_base(settings)
drawn = pd.DataFrame([
    {"model": spec.kind, "base": "second" if spec.base is not None else "chosen", "seed": spec.seed,
     "step": run.last_step, "STS-B dev": run.dev_scores()[run.last_step],
     "loss, mean of the last 50 steps": np.mean(run.record["losses"][-50:])}
    for spec, run in zip(specs, draws)])
(drawn.groupby(["model", "base"], sort=False)
 .agg(seeds=("seed", "size"), step=("step", "first"), dev_mean=("STS-B dev", "mean"), dev_sd=("STS-B dev", "std"),
      loss=("loss, mean of the last 50 steps", "mean"))
 .rename(columns={"dev_mean": "STS-B dev, mean", "dev_sd": "STS-B dev, SD", "loss": "last-50 loss, mean"})
 .style.format(precision=2))

# %% tags=["remove-input"]
downloads.csv_download(drawn, "drawn_runs.csv", "every drawn run")

# %% tags=["remove-input"]
glue("recipe_steps", recipe_steps, display=False)
glue("drawn_runs", {f"{spec.kind}/{'second' if spec.base is not None else 'chosen'}/{spec.seed}":
                    float(run.dev_scores()[run.last_step]) for spec, run in zip(specs, draws)}, display=False)
second_text = (f"the second base is the one with {', '.join(f'{f} {runs.setting_text(getattr(second, f))}' for f in searched)}"
               if second is not None else "the profile searches one base, so there is no replication")
display(Markdown(
    f"The recipes' steps, chosen on STS-B dev by the search: unsupervised {recipe_steps['unsupervised']:,}, "
    f"supervised {recipe_steps['supervised']:,}. {len(specs)} runs drawn in all ({finetune.seeds} fresh seeds per "
    f"recipe{' and control' if finetune.controls else ''}; {second_text}); training or loading them took {draw_seconds:.0f} s in this run. "
    + ("A control is not trained for STS, so its dev score says only how far its own objective moved the base's."
       if finetune.controls else "")))

# %% tags=["hide-input"]
fig, axes = plotting.figure(
    "Training loss per step, moving average over 50 steps: masked-LM pre-training of the chosen base (left), then "
    "every fresh seed from it, SimCSE (blue) and its control (orange), unsupervised (middle) and supervised (right).",
    ncols=3, width=4.2,
)
curves = {"masked-LM": [("base", mlm_record["losses"])]}
for spec, run in zip(specs, draws):
    if spec.base is None:
        curves.setdefault(f"{'sup' if spec.supervised else 'unsup'}ervised", []).append(
            (spec.objective, run.record["losses"]))
colours = {"base": "C0", "simcse": "C0", "control": "C1"}
for ax, (label, losses_by_run) in zip(axes, curves.items()):
    for objective, losses in losses_by_run:
        losses = np.array(losses)
        window = min(50, len(losses))
        ax.plot(np.arange(window - 1, len(losses)), np.convolve(losses, np.ones(window) / window, "valid"),
                color=colours[objective], lw=1, alpha=0.8)
    ax.set(title=label, xlabel="step", ylabel="loss")

# %% [markdown]
# ## STS evaluation
#
# Spearman's rank correlation (x100) between the cosine similarity of the two
# sentence vectors and the gold similarity score, on the test split of STS-B
# {cite}`cer2017semeval` and SICK-R {cite}`marelli2014sick`, and on STS12-16 with all
# subsets pooled, as SimCSE reports them. Supervised SimCSE trains on SNLI only,
# without the triplets that hold a sentence of any STS set (counted above, before
# the search), so no STS sentence, SICK-R's included, is in its training data; the
# Wikipedia corpus's STS sentences are counted there too.

# %%
scores = pipeline.sts_scores(settings)  # cached: later chapters read these scores
table = scores.pivot(index="model", columns="dataset", values="spearman").loc[list(finetune.models)]
table = table[list(finetune.sts_datasets)]
table["avg."] = table.mean(axis=1)
table.style.format("{:.2f}")

# %% tags=["remove-input"]
downloads.csv_download(table, "sts_test_spearman.csv", "the STS scores")

# %% tags=["hide-input"]
fig, (ax,) = plotting.figure(
    "Spearman x100 on the STS test sets for each model (the selected SimCSE models); the book's pair shares one masked-LM "
    "starting point.",
    width=9, height=4,
)
plot = scores.copy()
plot["model"] = pd.Categorical(plot["model"], list(finetune.models))
sns.barplot(data=plot, x="dataset", y="spearman", hue="model", ax=ax)
ax.set(ylabel="Spearman x100", xlabel="")
ax.legend(fontsize=8, ncols=2);

# %% [markdown]
# Every drawn model against its own base: the fresh seeds of each recipe and
# of its control, and the second base's replication. STS-B test and the average
# over the test sets, and the gain over the base the model started from.

# %%
draw_encoders = pipeline.seed_encoders(settings)
per_seed = pipeline.sts_scores(settings, tuple(draw_encoders), draw_encoders)
by_seed = pd.concat([scores, per_seed]).pivot(index="model", columns="dataset", values="spearman")
by_seed = by_seed[list(finetune.sts_datasets)]
kinds = {"book-unsup-simcse": "unsup-SimCSE", "book-sup-simcse": "sup-SimCSE", "book-unsup-control": "unsup-control",
         "book-sup-control": "sup-control", "book-unsup-simcse-2": "unsup-SimCSE", "book-unsup-control-2": "unsup-control"}
seed_rows = []
for name, (model, seed) in pipeline.draw_models(settings).items():
    if seed is None:
        continue
    base = "book-mlm-2" if model.endswith("-2") else "book-mlm"
    seed_rows.append({"model": kinds[model], "base": "second" if base == "book-mlm-2" else "chosen", "seed": seed,
                      "STS-B": by_seed.loc[name, "stsb"], "avg.": by_seed.loc[name].mean(),
                      "gain STS-B": by_seed.loc[name, "stsb"] - by_seed.loc[base, "stsb"],
                      "gain avg.": by_seed.loc[name].mean() - by_seed.loc[base].mean()})
seed_table = pd.DataFrame(seed_rows, columns=["model", "base", "seed", "STS-B", "avg.", "gain STS-B", "gain avg."])
summary = seed_table.groupby(["model", "base"], sort=False)[["STS-B", "avg.", "gain STS-B", "gain avg."]].agg(
    ["mean", "std"])
summary.style.format(precision=2).set_caption("Across the fresh seeds: mean and standard deviation")

# %% tags=["remove-input"]
glue("sts_by_seed", {f"{kind}/{base}": [float(v) for v in group["STS-B"]]
                     for (kind, base), group in seed_table.groupby(["model", "base"])}, display=False)
display(downloads.csv_download(seed_table, "sts_by_seed.csv", "the scores of every drawn model"))
chosen_base = seed_table[seed_table["base"] == "chosen"].set_index("model")
versus = (chosen_base.groupby(level=0)["gain avg."].mean())
if {"unsup-control", "sup-control"} <= set(versus.index):
    idle = [kind for kind in ("unsup-control", "sup-control") if abs(versus[kind]) < 0.5]
    display(Markdown(
        f"Averaged over the STS test sets, the controls move the base by {versus['unsup-control']:+.1f} "
        f"(unsupervised) and {versus['sup-control']:+.1f} points (supervised), SimCSE's fresh seeds by "
        f"{versus['unsup-SimCSE']:+.1f} and {versus['sup-SimCSE']:+.1f}: "
        + ("each control is the worse sentence encoder of its pair, so a difference in differences compares "
           "similarity quality as well as objectives. "
           if versus["unsup-control"] < versus["unsup-SimCSE"] and versus["sup-control"] < versus["sup-SimCSE"]
           else "a control is as good a sentence encoder as its SimCSE twin here, so the contrast between them is "
                "not one of similarity quality alone. ")
        + (f"The {' and '.join(k.split('-')[0] + 'ervised' for k in idle)} control barely moves the base: against "
           "it, the difference in differences is nearly the change against the base itself, and what it rules out "
           "is only that further training of this kind changes the weighting." if idle else "")))

# %% tags=["remove-input"]
base_stsb = by_seed.loc["book-mlm", "stsb"]
gain = summary.xs("chosen", level="base")[("gain STS-B", "mean")]
seed_table = seed_table[seed_table["base"] == "chosen"]
tolerance = finetune.reference_tolerance
published = [f"{name} scores **{table.loc[name, 'stsb']:.2f}** against the published {reference:.2f} "
             f"({'within' if abs(table.loc[name, 'stsb'] - reference) <= tolerance else 'outside'} ±{tolerance:g})"
             for name, reference in models.REFERENCE_STSB.items() if name in table.index]
subset = "" if finetune.sts_max_pairs is None else f" (first {finetune.sts_max_pairs} pairs of each test set only)"
met = {"base": bool(base_stsb >= finetune.target_base), "unsup": bool(gain["unsup-SimCSE"] >= finetune.target_gain),
       "sup": bool(gain["sup-SimCSE"] >= finetune.target_gain_sup)}
glue("targets_met", met, display=False)
display(Markdown(
    f"On STS-B test{subset}, the masked-LM base scores **{base_stsb:.1f}** (target {finetune.target_base:.0f}: "
    f"{'met' if met['base'] else 'missed'}). Over {finetune.seeds} fresh seeds, unsupervised SimCSE moves it by "
    f"**{gain['unsup-SimCSE']:+.1f}** points on average (target {finetune.target_gain:+.0f}: "
    f"{'met' if met['unsup'] else 'missed'}; seeds from {seed_table.loc[seed_table['model'] == 'unsup-SimCSE', 'gain STS-B'].min():+.1f} "
    f"to {seed_table.loc[seed_table['model'] == 'unsup-SimCSE', 'gain STS-B'].max():+.1f}) and supervised SimCSE by "
    f"**{gain['sup-SimCSE']:+.1f}** (target {finetune.target_gain_sup:+.0f}: {'met' if met['sup'] else 'missed'}; "
    f"seeds from {seed_table.loc[seed_table['model'] == 'sup-SimCSE', 'gain STS-B'].min():+.1f} to "
    f"{seed_table.loc[seed_table['model'] == 'sup-SimCSE', 'gain STS-B'].max():+.1f}). "
    + ("Against published STS-B test scores (`cwi.models.REFERENCE_STSB`): " + "; ".join(published) + "."
       if published else "")
))

# %% tags=["remove-input"]
unsup_losses = np.array(next(run for spec, run in zip(specs, draws) if spec.kind == "unsup-simcse").record["losses"])
unsup_search = searches["unsupervised"]
unsup_dev_gain = unsup_search["stsb_dev"].max() - unsup_search["dev@0"].iloc[0]
# Gain of every test set over the base, mean over the fresh seeds
unsup_names = list(pipeline.seed_model_names("book-unsup-simcse", settings).values())
unsup_by_set = (by_seed.loc[unsup_names] - by_seed.loc["book-mlm"]).mean()
others = unsup_by_set.drop("stsb").sort_values(ascending=False)
if not met["unsup"]:
    display(Markdown(
        f"**Unsupervised SimCSE {'did not raise' if gain['unsup-SimCSE'] <= 0 else 'raised only a little'} "
        f"this model's STS-B test score** ({gain['unsup-SimCSE']:+.1f} on average over the fresh seeds), although the "
        f"search's best candidate gains {unsup_dev_gain:+.1f} points on STS-B dev. "
        + (f"On the other test sets it moves the score by {others.iloc[-1]:+.1f} ({others.index[-1]}) to "
           f"{others.iloc[0]:+.1f} ({others.index[0]}), {others.mean():+.1f} on their average: "
           + ", ".join(f"{name} {value:+.1f}" for name, value in others.items()) + ". "
           if len(others) else "")
        + f"A fresh seed's loss goes from {unsup_losses[:10].mean():.2f} (first 10 steps) to "
        f"{unsup_losses[-50:].mean():.3f} "
        f"(last 50; the log of the batch size, chance, is {np.log(runs.chosen(settings, False).batch_size):.2f}). One possible "
        "reason, not tested here: two dropout views of a sentence may be easy to tell from the other sentences of "
        "the batch for a model this small, and sharpening that distinction need not bring similar meanings "
        "together. With entailment positives and contradiction hard negatives, contrastive training "
        f"{'raised' if gain['sup-SimCSE'] > 0 else 'also lowered'} STS-B test. The later chapters compare both "
        "pairs; read the unsupervised one as the weaker contrastive training, which "
        + ("lowered" if gain["unsup-SimCSE"] < 0 else "raised") + f" STS-B test by {abs(gain['unsup-SimCSE']):.1f} "
        "points on average."
    ))


# %% [markdown]
# ## Execution record
#
# What this run used and cost: the profile, the kernel's wall time and peak
# memory, the package versions and the commit of the code.

# %% tags=["remove-input"]
record.execution_record(profile)
