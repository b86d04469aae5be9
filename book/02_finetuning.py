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
import time

import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from cwi import config, models, pipeline, plotting, record, train

# %% tags=["parameters"]
profile = "default"

# %%
settings = config.get_profile(profile)
finetune = settings.finetune
plotting.use_book_style()
pd.DataFrame(
    [{"pair": name, "pre-trained": p.pretrained or "(not available offline)", "fine-tuned": p.finetuned,
      "pooling": " / ".join(dict.fromkeys(models.MODELS[m].pooling for m in [p.pretrained, p.finetuned] if m)),
      "offline": all(models.MODELS[m].kind != "hub" for m in [p.pretrained, p.finetuned] if m)}
     for name, p in models.PAIRS.items()]
).style.hide(axis="index")

# %% [markdown]
# ## The book's small BERT
#
# **Size.** Everything trains on 2 CPU cores within the profile's budget, so the
# model is small (the settings below): we chose the size that completes the
# profile's masked-LM steps within the budget; `benchmarks/train.py` measures the
# throughput of the chosen one.
#
# **Vocabulary.** A WordPiece vocabulary trained on the same sentences with the
# `tokenizers` library rather than BERT's 30,522-token uncased vocabulary: at this
# model size BERT's embedding table would hold most of the parameters, many of them
# for tokens the corpus never shows. Its normalizer and pre-tokenizer are BERT's,
# so its words are exactly the words of the Statistics chapter.
#
# **Pooling.** Mean pooling for both models of the pair. PAPER: unsupervised SimCSE
# trains with the [CLS] vector and an MLP; a masked-LM checkpoint has no trained
# [CLS] objective (no next-sentence prediction here), so [CLS] would handicap the
# pre-trained side of the comparison.

# %%
finetune.mlm

# %%
start = time.perf_counter()
mlm_path = pipeline.book_checkpoint("mlm", settings)
mlm_record = train.history(mlm_path)
unsup_path = pipeline.book_checkpoint("unsup-simcse", settings)
sup_path = pipeline.book_checkpoint("sup-simcse", settings)
train_seconds = time.perf_counter() - start
records = {"masked-LM": mlm_record, "unsup-SimCSE": train.history(unsup_path), "sup-SimCSE": train.history(sup_path)}

# %% tags=["remove-input"]
display(Markdown(
    f"The model has **{mlm_record['parameters'] / 1e6:.1f} M parameters**. After "
    f"{finetune.mlm.steps:,} masked-LM steps of {finetune.mlm.batch_size} sentences, on "
    f"{mlm_record['heldout_tokens']:,} masked tokens of {finetune.mlm.heldout:,} held-out sentences its "
    f"masked-LM loss is **{mlm_record['heldout_loss']:.2f}** and its accuracy "
    f"**{mlm_record['heldout_accuracy']:.1%}**. Training (or loading from the checkpoint cache) took "
    f"{train_seconds:.0f} s in this run."
))

# %% tags=["hide-input"]
fig, axes = plotting.figure(
    "Training loss per step (light) and its moving average over 50 steps (dark): masked-LM "
    "pre-training (left), unsupervised SimCSE (middle) and supervised SimCSE (right), both from the "
    "masked-LM checkpoint.",
    ncols=3, width=4.2,
)
for ax, (label, run) in zip(axes, records.items()):
    losses = np.array(run["losses"])
    ax.plot(losses, color="C0", alpha=0.3, lw=0.8)
    window = min(50, len(losses))
    ax.plot(np.arange(window - 1, len(losses)), np.convolve(losses, np.ones(window) / window, "valid"), color="C0")
    ax.set(title=label, xlabel="step", ylabel="loss")

# %% [markdown]
# ## STS evaluation
#
# Spearman's rank correlation (x100) between the cosine similarity of the two
# sentence vectors and the gold similarity score, on the test split of STS-B
# {cite}`cer2017semeval` and SICK-R {cite}`marelli2014sick`, and on STS12-16 with all
# subsets pooled, as SimCSE reports them. SICK-R pairs were never trained on
# (the supervised model uses SNLI only).

# %%
scores = pipeline.sts_scores(settings)  # cached: later chapters read these scores
table = scores.pivot(index="model", columns="dataset", values="spearman").loc[list(finetune.models)]
table = table[list(finetune.sts_datasets)]
table["avg."] = table.mean(axis=1)
table.style.format("{:.2f}")

# %% tags=["hide-input"]
fig, (ax,) = plotting.figure(
    "Spearman x100 on the STS test sets for each model; the book's pair shares one masked-LM "
    "starting point.",
    width=9, height=4,
)
plot = scores.copy()
plot["model"] = pd.Categorical(plot["model"], list(finetune.models))
sns.barplot(data=plot, x="dataset", y="spearman", hue="model", ax=ax)
ax.set(ylabel="Spearman x100", xlabel="")
ax.legend(fontsize=8, ncols=2);

# %% tags=["remove-input"]
stsb = table["stsb"]
gain_unsup = stsb["book-unsup-simcse"] - stsb["book-mlm"]
gain_sup = stsb["book-sup-simcse"] - stsb["book-mlm"]
minilm = stsb.get("all-MiniLM-L6-v2", np.nan)
reference, tolerance = models.REFERENCE_STSB["all-MiniLM-L6-v2"], finetune.reference_tolerance
target = finetune.target_gain
subset = "" if finetune.sts_max_pairs is None else f" (first {finetune.sts_max_pairs} pairs of each test set only)"
display(Markdown(
    f"On STS-B test{subset}, unsupervised SimCSE moves the book's model from **{stsb['book-mlm']:.1f}** to "
    f"**{stsb['book-unsup-simcse']:.1f}** ({gain_unsup:+.1f} points) and supervised SimCSE to "
    f"**{stsb['book-sup-simcse']:.1f}** ({gain_sup:+.1f}); the target of at least {target:+.0f} points is "
    f"{'met' if gain_unsup >= target else 'missed'} by the unsupervised and "
    f"{'met' if gain_sup >= target else 'missed'} by the supervised model. "
    f"all-MiniLM-L6-v2 scores **{minilm:.2f}**, against the {reference:.2f} of its model card "
    f"({'within' if abs(minilm - reference) <= tolerance else 'outside'} ±{tolerance:g})."
))

# %% tags=["remove-input"]
unsup_losses = np.array(records["unsup-SimCSE"]["losses"])
if gain_unsup < 0:
    display(Markdown(
        "**Unsupervised SimCSE did not help this model.** Its loss falls from "
        f"{unsup_losses[:10].mean():.2f} (first 10 steps) to {unsup_losses[-50:].mean():.3f} (last 50; "
        f"log of the batch size is {np.log(finetune.unsup.batch_size):.2f}). A likely reason: two dropout "
        "views of a sentence are easy to tell from the other sentences of the batch for a model this "
        "small, by surface features the masked-LM already encodes, and sharpening that distinction "
        "need not bring similar meanings together. With dropout positives alone, contrastive training lowered STS here; with entailment "
        f"positives and contradiction hard negatives it {'raised' if gain_sup > 0 else 'also lowered'} it. "
        "The later chapters compare both pairs, "
        "and read the unsupervised one as contrastive training that did not improve similarity."
    ))


# %% [markdown]
# ## Execution record
#
# What this run used and cost: the profile, the kernel's wall time and peak
# memory, the package versions and the commit of the code.

# %% tags=["remove-input"]
record.execution_record(profile)
