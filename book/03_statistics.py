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
# # Statistics: how informative is each word?
#
# The theory of {cite:t}`kurita2023contrastive` ties a word's weight in a
# contrastively trained sentence encoder to two corpus statistics. This chapter
# computes both for every word of our Wikipedia corpus and writes them to the
# artefact cache, where the attribution and correlation chapters read them.
#
# With natural logarithms throughout, $n_w$ the count of word $w$ and $N$ the
# number of tokens:
#
# $$ p(w) = \frac{n_w}{N}, \qquad \mathrm{SI}(w) = -\log p(w) $$ (eq-si)
#
# $$ \mathrm{IG}(w) = \mathrm{KL}\big(p(\cdot \mid w) \,\|\, p(\cdot)\big)
#    = \sum_{w'} p(w' \mid w) \log \frac{p(w' \mid w)}{p(w')} $$ (eq-ig)
#
# where $p(w' \mid w)$ is the share of $w'$ among the *other* words of the
# sentences that contain $w$, counted once per occurrence of $w$. This is the
# "surrounding words" of the theory for unsupervised SimCSE, whose positive partner
# is the sentence itself. Self-information measures how *rare* a word is;
# information gain measures how much knowing the word *changes* the words around it.
#
# Words are the lower-cased tokens of BERT's basic tokenizer (punctuation marks are
# words of their own), the same words the attribution chapter groups subword
# tokens into.

# %% tags=["remove-cell"]
import os

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue
from scipy import stats as scistats

from cwi import config, data, downloads, pipeline, plotting, record, stats

# %% tags=["parameters"]
profile = os.environ.get("CWI_PROFILE", "default")  # a built-in profile or a study file

# %%
settings = config.get_profile(profile)
plotting.use_book_style()
min_count = settings.stats.min_count
settings

# %% [markdown]
# ## The corpus
#
# The Wikipedia sentences of the data pack (the profile's `corpus`, `cwi.data.load_wiki`): the start of
# SimCSE's `wiki1m` training file, WikiText-103 and a random sample of whole
# articles of a 2015 English Wikipedia dump. The profile sets how many are read.

# %%
sentences = data.load_corpus(settings.corpus, settings.stats.corpus_limit)
table = pipeline.corpus_statistics(settings)
lengths = np.array([len(stats.tokenize(s)) for s in sentences[:: max(1, len(sentences) // settings.stats.length_sample)]])

# %% tags=["remove-input"]
display(Markdown(
    f"The corpus has **{table.attrs['n_sentences']:,} sentences** and "
    f"**{table.attrs['n_tokens']:,} word tokens** of **{len(table):,} distinct words**; "
    f"{(table['count'] >= min_count).sum():,} words occur at least {min_count} times "
    f"(the threshold of this profile for figures and rankings; the table keeps every word). "
    f"A sentence has {np.median(lengths):.0f} words at the median "
    f"(5-95 %: {np.percentile(lengths, 5):.0f}-{np.percentile(lengths, 95):.0f}, "
    f"from a sample of {len(lengths):,} sentences)."
))

# %% tags=["hide-input"]
rank = np.arange(1, len(table) + 1)
zipf_top = settings.stats.zipf_top
zipf_fit = np.polyfit(np.log(rank[:zipf_top]), np.log(table["count"].to_numpy()[:zipf_top]), 1)
fig, (ax_len, ax_zipf) = plotting.figure(
    "Left: words per sentence. Right: Zipf plot of the corpus, count against frequency rank "
    f"on log-log axes; the dashed line is the least-squares fit over the {zipf_top:,} most frequent "
    f"words, slope {zipf_fit[0]:.2f} (Zipf's law predicts about -1).",
    ncols=2,
)
ax_len.hist(lengths, bins=np.arange(0, min(lengths.max(), 120) + 2), color="C0")
ax_len.set(xlabel="words per sentence", ylabel="sentences (sample)")
ax_zipf.loglog(rank, table["count"], lw=1.5)
ax_zipf.loglog(rank, np.exp(np.polyval(zipf_fit, np.log(rank))), "k--", lw=1)
ax_zipf.set(xlabel="rank", ylabel="count");

# %% [markdown]
# ## Computing the statistics
#
# `cwi.stats.word_statistics` builds the sparse sentence-by-word count matrix
# $X$. The co-occurrence counts behind $p(w' \mid w)$ are
# $C = X^\top X - \operatorname{diag}(n)$, and with $R_w = \sum_{w'} C_{ww'}$
#
# $$ \mathrm{IG}(w) = \frac{1}{R_w}\sum_{w'} C_{ww'} \log C_{ww'} - \log R_w
#    - \frac{1}{R_w} \sum_{w'} C_{ww'} \log p(w'). $$ (eq-ig-sparse)
#
# The last sum is two sparse matrix-vector products; the first is computed for a
# block of words at a time and reduced at once, so memory stays bounded
# (`benchmarks/stats.py` measures it). The result is cached, keyed by a hash of the
# corpus and the settings.
#
# **Frequency bias.** A rare word has few context tokens, and a KL divergence
# estimated from few samples is biased upward: a word seen once has a "context"
# of a dozen words that looks very unlike $p(\cdot)$ by chance alone. We correct it
# by shuffling: permute all tokens across sentences (sentence lengths kept), which
# keeps every count but destroys every association, and compute the information
# gain on that corpus. What a word gets there is its bias at its frequency, and
#
# $$ \mathrm{IG}_\text{corrected}(w) = \mathrm{IG}(w) - \mathrm{IG}_\text{shuffled}(w). $$ (eq-ig-corrected)
#
# PAPER: which bias correction {cite:t}`kurita2023contrastive` applied could not
# be checked offline. The shuffled-corpus baseline is our main correction because
# it is defined per word and needs no choice of bins; the per-frequency-bin
# baseline of {cite:t}`oyama2023norm` is the second, compared below and carried
# through the Correlations chapter beside it.

# %%
frequent = table[table["count"] >= min_count].copy()
frequent["log_count"] = np.log(frequent["count"])
downloads.wide(frequent.head(10).style.format(precision=3).format({"p": "{:.2e}"}))

# %% [markdown]
# ## Distributions

# %% tags=["hide-input"]
fig, (ax_si, ax_ig) = plotting.figure(
    f"Distributions over the {len(frequent):,} words seen at least {min_count} times. Left: "
    "self-information. Right: information gain, raw and after subtracting the shuffled-corpus "
    "baseline.",
    ncols=2,
)
ax_si.hist(frequent["self_information"], bins=60, color="C0")
ax_si.set(xlabel="self-information SI(w) [nats]", ylabel="words")
bins = np.linspace(min(0, frequent["information_gain_corrected"].min()), frequent["information_gain"].max(), 60)
ax_ig.hist(frequent["information_gain"], bins=bins, alpha=0.6, label="raw", color="C1")
ax_ig.hist(frequent["information_gain_corrected"], bins=bins, alpha=0.6, label="corrected", color="C2")
ax_ig.set(xlabel="information gain IG(w) [nats]", ylabel="words")
ax_ig.legend();

# %% [markdown]
# ## Information gain against frequency
#
# How much of the raw information gain is estimation bias? The shuffled
# baseline is the bias alone, so its share of the raw values' variance says it
# (computed below the figure). After subtracting it, the dependence on frequency
# should shrink.

# %% tags=["hide-input"]
rho = {
    column: scistats.spearmanr(frequent["log_count"], frequent[column]).statistic
    for column in ["information_gain", "information_gain_shuffled", "information_gain_corrected"]
}
sample = frequent.sample(min(len(frequent), settings.stats.scatter_sample), random_state=settings.seed)
fig, axes = plotting.figure(
    f"Information gain against log count, one dot per word (a sample of at most {settings.stats.scatter_sample:,}), with the "
    "median in 20 equal-count bins (line). Left: raw; the dashed line is the shuffled-corpus "
    "baseline, the bias alone. Right: corrected (raw minus baseline).",
    ncols=2,
)
for ax, column in zip(axes, ["information_gain", "information_gain_corrected"]):
    ax.scatter(sample["log_count"], sample[column], s=3, alpha=0.25, color="C0", rasterized=True)
    ax.plot(*plotting.binned_median(frequent["log_count"], frequent[column]), color="C3", lw=2)
    ax.set(xlabel="log count", ylabel=column.replace("_", " "), title=f"Spearman ρ = {rho[column]:+.2f}")
axes[0].plot(*plotting.binned_median(frequent["log_count"], frequent["information_gain_shuffled"]), "k--", lw=1.5);

# %% tags=["remove-input"]
bias_r2 = np.corrcoef(frequent["information_gain"], frequent["information_gain_shuffled"])[0, 1] ** 2
glue("bias_r2", float(bias_r2), display=False)
display(Markdown(
    f"Spearman's ρ between log count and information gain is **{rho['information_gain']:+.2f}** "
    f"raw, {rho['information_gain_shuffled']:+.2f} for the shuffled baseline alone and "
    f"**{rho['information_gain_corrected']:+.2f}** after correction "
    f"({len(frequent):,} words with count ≥ {min_count}). The shuffled baseline, the bias alone, explains "
    f"r² = {bias_r2:.2f} of the variance of the raw values over these words (squared Pearson "
    f"correlation: the linear part only)"
    + (": most of the raw variation is estimation bias." if bias_r2 > 0.5 else
       ": the raw variation is mostly not the estimation bias.")
))

# %% [markdown]
# ## A second correction: the frequency-bin baseline
#
# A second correction needs no shuffled corpus. In the spirit of
# {cite:t}`oyama2023norm`, who correct word-vector norms for frequency (the
# details below are the book's own, not checked against their code): group words
# of similar frequency, and take a low percentile of their information gain as
# what a word of that frequency reaches with nothing to say,
#
# $$ \mathrm{IG}_\text{binned}(w) = \mathrm{IG}(w) - P_q\{\mathrm{IG}(v) : v \in \operatorname{bin}(w)\}. $$ (eq-ig-binned)
#
# The binning is ours (`cwi.stats.frequency_bins`): bins of equal width in log
# count, each widened until it holds `StatsSettings.min_bin_words` words, so
# that the most frequent words, which carry most running tokens, are compared
# with words of their own frequency and not with everything above a thousand
# occurrences; $q$ is `bin_percentile`. The table below says how the running
# tokens fall into the bins. The shuffled baseline asks
# how much of a word's value its frequency alone explains; the bin baseline asks
# how far it stands above its least informative peers. The two need not agree on
# a word, and the question is whether they agree on the ranking.

# %%
bins_table = stats.bin_summary(table)
display(bins_table.sort_values("token share", ascending=False).head(8).style.format(
    {"token share": "{:.1%}", "baseline (nats)": "{:.3f}", "lowest count": "{:,}", "highest count": "{:,}"})
    .set_caption("The bins holding the most running tokens"))

# %% tags=["remove-input"]
display(downloads.csv_download(bins_table, "frequency_bins.csv", "every frequency bin"))
glue("top_bin_token_share", float(bins_table["token share"].max()), display=False)
display(Markdown(
    f"{len(bins_table)} bins; the one holding the most running tokens holds "
    f"{bins_table['token share'].max():.1%} of them, in "
    f"{int(bins_table.loc[bins_table['token share'].idxmax(), 'words'])} "
    f"words; the median bin has {int(bins_table['words'].median())} words."
))

# %%
corrections = ["information_gain_corrected", "information_gain_binned"]
agreement = scistats.spearmanr(frequent[corrections[0]], frequent[corrections[1]]).statistic
rho_binned = scistats.spearmanr(frequent["log_count"], frequent["information_gain_binned"]).statistic
pd.DataFrame({
    "Spearman ρ with log count": [rho[c] for c in ["information_gain"] + corrections[:1]] + [rho_binned],
    "share below 0": [(frequent[c] < 0).mean() for c in ["information_gain"] + corrections],
}, index=["raw", "shuffle-corrected", "bin-corrected"]).style.format("{:+.2f}", subset=["Spearman ρ with log count"]) \
    .format("{:.1%}", subset=["share below 0"])

# %% tags=["remove-input"]
glue("corrections_spearman", float(agreement), display=False)

# %% tags=["hide-input"]
fig, (ax_scatter, ax_trend) = plotting.figure(
    f"The two corrections, over the words seen at least {min_count} times. Left: bin-corrected against "
    "shuffle-corrected information gain (one dot per word, a sample), with the diagonal. Right: the binned "
    "median of each against log count.",
    ncols=2,
)
ax_scatter.scatter(sample[corrections[0]], sample[corrections[1]], s=3, alpha=0.25, rasterized=True)
low = min(sample[corrections].min())
high = max(sample[corrections].max())
ax_scatter.plot([low, high], [low, high], "k--", lw=1)
ax_scatter.set(xlabel="shuffle-corrected IG [nats]", ylabel="bin-corrected IG [nats]",
               title=f"Spearman ρ = {agreement:+.2f}")
for column, label, colour in zip(corrections, ["shuffle-corrected", "bin-corrected"], ["C2", "C4"]):
    ax_trend.plot(*plotting.binned_median(frequent["log_count"], frequent[column]), color=colour, lw=2, label=label)
ax_trend.axhline(0, color="grey", lw=0.8)
ax_trend.set(xlabel="log count", ylabel="median corrected IG [nats]")
ax_trend.legend();

# %% tags=["remove-input"]
display(Markdown(
    f"Over the {len(frequent):,} words seen at least {min_count} times, the two corrections rank words with "
    f"Spearman's ρ = **{agreement:+.2f}**. Against log count, the shuffle-corrected value has "
    f"ρ = {rho['information_gain_corrected']:+.2f} and the bin-corrected one ρ = {rho_binned:+.2f}: "
    + ("the bin baseline removes more of the frequency trend here." if abs(rho_binned) < abs(rho['information_gain_corrected'])
       else "the shuffle baseline removes more of the frequency trend here.")
))

# %% [markdown]
# ## The most and least informative words
#
# Ranked by corrected information gain. Over all words seen at least `min_count`
# times, the top is dominated by specific names and markup whose sentences share
# vocabulary.
# The bottom of that ranking is noise: rare words whose corrected value is
# negative: for a rare word both the raw estimate and the shuffled baseline (an
# average over `stats.n_shuffles` shuffled corpora) are noisy, and their
# difference falls below 0 as often as chance puts it there.
# Among frequent words, where both estimates are precise, the ranking is the
# expected one: function words and punctuation, which appear everywhere, at the
# bottom.

# %%
columns = ["count", "self_information", "information_gain", "information_gain_corrected"]
ranked = frequent.sort_values("information_gain_corrected", ascending=False)[columns]
display(ranked.head(15).style.format(precision=3).set_caption(f"Highest corrected information gain, count ≥ {min_count}"))
n_top = settings.stats.top_frequent
top_frequent = frequent.head(n_top).sort_values("information_gain_corrected", ascending=False)[columns]
display(top_frequent.head(15).style.format(precision=3).set_caption(f"Highest, among the {n_top:,} most frequent words"))
display(top_frequent.tail(15).style.format(precision=3).set_caption(f"Lowest, among the {n_top:,} most frequent words"))

# %%
edges = [min_count - 1, *settings.stats.count_bands, np.inf]
bands = pd.cut(frequent["count"], edges,
               labels=[f"{low + 1:,}-{high:,}" if np.isfinite(high) else f">{low:,}" for low, high in zip(edges, edges[1:])])
negative = (frequent["information_gain_corrected"] < 0).groupby(bands, observed=True).mean()
negative.rename("share of words with corrected IG < 0").to_frame().style.format("{:.1%}")

# %% [markdown]
# ## Information gain and self-information
#
# Both quantities grow for content words, so they are correlated; the theory
# predicts the word weight from information gain, and the correlation chapter
# regresses on both to tell them apart.

# %%
rho_si_ig = scistats.spearmanr(frequent["self_information"], frequent["information_gain"]).statistic
rho_si_igc = scistats.spearmanr(frequent["self_information"], frequent["information_gain_corrected"]).statistic
fig, axes = plotting.figure(
    "Information gain against self-information (same sample of words), raw (left) and corrected "
    "(right), with binned medians. Self-information is a monotone function of the count, so the "
    "left panel mirrors the frequency bias seen above.",
    ncols=2,
)
for ax, column, r in zip(axes, ["information_gain", "information_gain_corrected"], [rho_si_ig, rho_si_igc]):
    ax.scatter(sample["self_information"], sample[column], s=3, alpha=0.25, rasterized=True)
    ax.plot(*plotting.binned_median(frequent["self_information"], frequent[column]), color="C3", lw=2)
    ax.set(xlabel="self-information [nats]", ylabel=column.replace("_", " "), title=f"Spearman ρ = {r:+.2f}")

# %% [markdown]
# ## Self-information from all of Wikipedia
#
# Our corpus is a sample. The `pywordfreq` package carries unigram counts over
# billions of tokens of English Wikipedia, an alternative source of self-information
# with far less sampling noise for rare words. Its tokens follow Penn-Treebank
# conventions (`'s`, `n't`), so clitics and most punctuation have no entry there.

# %% tags=["hide-input"]
wiki_si = stats.wikipedia_self_information()
both = frequent.join(wiki_si, how="inner")
coverage = len(both) / len(frequent)
rho_wiki = scistats.spearmanr(both["self_information"], both["self_information_wikipedia"]).statistic
pearson_wiki = np.corrcoef(both["self_information"], both["self_information_wikipedia"])[0, 1]
offset = (both["self_information_wikipedia"] - both["self_information"]).median()
top = both.nlargest(min(settings.stats.wikipedia_top, len(both)), "count")
rho_top = scistats.spearmanr(top["self_information"], top["self_information_wikipedia"]).statistic
missing_examples = ", ".join(f"`{w}`" for w in frequent.index.difference(wiki_si.index)[:12])

fig, (ax,) = plotting.figure(
    "Self-information of each word in our corpus against its value from the pywordfreq "
    "Wikipedia counts; the dashed line is y = x shifted by the median difference.",
    width=5.5, height=4.5,
)
ax.scatter(both["self_information"], both["self_information_wikipedia"], s=3, alpha=0.25, rasterized=True)
lims = np.array([both["self_information"].min(), both["self_information"].max()])
ax.plot(lims, lims + offset, "k--", lw=1)
ax.set(xlabel="SI, this corpus [nats]", ylabel="SI, pywordfreq Wikipedia [nats]");

# %% tags=["remove-input"]
display(Markdown(
    f"{coverage:.1%} of our {len(frequent):,} frequent words have a pywordfreq count "
    f"(absent, for example: {missing_examples}). On the shared words the two sources give "
    f"Spearman ρ = **{rho_wiki:.3f}** and Pearson r = {pearson_wiki:.3f}, with a median offset "
    f"of {offset:+.2f} nats (the sources count tokens differently); among the {len(top):,} most "
    f"frequent shared words, ρ = {rho_top:.3f}."
))

# %% [markdown]
# ## The artefact
#
# The whole table, every word included, is in the artefact cache; the later
# chapters load it with `cwi.pipeline.corpus_statistics(profile)`.

# %%
print(f"{len(table):,} words x {table.shape[1]} columns, cached as {table.attrs['cache_path']}")
downloads.wide(table.describe().T.style.format(precision=3))

# %% tags=["remove-input"]
downloads.csv_download(table.nlargest(10_000, "count").rename_axis("word"), "word_statistics_top10k.csv",
                       "the statistics of the 10,000 most frequent words")


# %% [markdown]
# ## Execution record
#
# What this run used and cost: the profile, the kernel's wall time and peak
# memory, the package versions and the commit of the code.

# %% tags=["remove-input"]
record.execution_record(profile)
