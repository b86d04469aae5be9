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
# # Theory: why contrastive training weights informative words
#
# This chapter derives the claim of {cite:t}`kurita2023contrastive` for the
# simplest sentence encoder, one that adds up word vectors, states every
# assumption on the way, and then checks the result numerically: on a synthetic
# corpus whose statistics are known exactly, on real Wikipedia sentences, and
# starting from pre-trained GloVe vectors.
#
# ## 1. Setting
#
# A sentence $s$ is a sequence of words. The encoder is *additive*:
#
# $$ f(s) = \sum_{w \in s} u_w, \qquad g(s') = \sum_{w' \in s'} v_{w'} $$ (eq-additive)
#
# with one vector $u_w \in \mathbb{R}^d$ per word for the anchor side and one
# vector $v_{w'}$ for the positive side. We keep the two tables **untied**
# ($u \neq v$) in the derivation: the optimum below asks $\langle u_w, v_{w'}\rangle$
# to equal a pointwise mutual information matrix, which need not be symmetric
# positive semi-definite, and a tied table ($u = v$) can only represent such
# matrices. SimCSE ties the two sides (one encoder); we measure the tied case too.
#
# Training pairs $(s, s^+)$ come with a positive partner $s^+$: in unsupervised
# SimCSE the sentence itself under dropout noise, in supervised SimCSE an
# entailed sentence. The InfoNCE objective {cite}`oord2018representation` with
# $K$ pairs per batch (the other $K-1$ partners are the negatives) and temperature
# $T$ is
#
# $$ \mathcal{L} = -\,\mathbb{E}\left[\log
#    \frac{\exp(\langle f(s_i), g(s_i^+)\rangle / T)}
#         {\sum_{j=1}^{K} \exp(\langle f(s_i), g(s_j^+)\rangle / T)}\right]. $$ (eq-infonce)
#
# ## 2. The lower bound and its optimum
#
# For any critic $c(s, s')$, InfoNCE bounds the mutual information between a
# sentence and its partner {cite}`oord2018representation`:
#
# $$ \mathcal{L} \;\ge\; \log K - I(S; S^+), $$ (eq-bound)
#
# and the bound is approached (as $K \to \infty$) by the critic
# $c(s, s') = \log \frac{p(s' \mid s)}{p(s')} + \text{const}(s)$. Our critic is
# $\langle f(s), g(s')\rangle / T = \sum_{w \in s}\sum_{w' \in s'} \langle u_w, v_{w'}\rangle / T$,
# a sum over word pairs. **Assumption A1**: the sentence-level PMI decomposes
# into word-pair PMIs, $\log\frac{p(s'|s)}{p(s')} \approx \sum_{w\in s}\sum_{w'\in s'} \mathrm{PMI}(w,w')$
# (exact for one-word sentences; a first-order approximation when words depend on
# each other weakly). Under A1 the optimum is
#
# $$ \langle u_w, v_{w'} \rangle / T = \mathrm{PMI}(w, w') + c(w), \qquad
#    \mathrm{PMI}(w,w') = \log \frac{p(w' \mid w)}{p(w')}, $$ (eq-pmi)
#
# where $w'$ ranges over the words of the positive partner and $c(w)$ is free
# (InfoNCE is invariant to a shift of every logit of one anchor). This is the
# contrastive twin of skip-gram with negative sampling, whose optimum is
# $\langle u_w, v_{w'}\rangle = \mathrm{PMI}(w, w') - \log k$ {cite}`levy2014neural`.
# Here $p(w' \mid w)$ is the distribution of the words of the partner sentence
# given that $w$ is in the anchor: for unsupervised SimCSE, the other words of
# the same sentence, which is the estimator of the Statistics chapter.
#
# ## 3. The exponential-family step
#
# Rewrite {eq}`eq-pmi` as a distribution over $w'$, as {cite:t}`oyama2023norm` do:
#
# $$ p(w' \mid w) = p(w') \exp\!\big(\langle \theta_w, v_{w'}\rangle - \psi(\theta_w)\big),
#    \qquad \theta_w = u_w / T, \quad
#    \psi(\theta) = \log \sum_{w'} p(w') e^{\langle \theta, v_{w'}\rangle}. $$ (eq-expfam)
#
# This is an exponential family with natural parameter $\theta_w$, sufficient
# statistic $v_{w'}$ and base measure $p(w')$; at $\theta = 0$ it is $p(\cdot)$
# itself. The KL divergence from the base is a Bregman divergence of $\psi$, and a
# second-order expansion around $\theta = 0$ (**assumption A2**: $\theta_w$ small,
# i.e. small KL) gives
#
# $$ \mathrm{IG}(w) = \mathrm{KL}\big(p(\cdot \mid w)\,\|\,p(\cdot)\big)
#    \approx \tfrac12\, \theta_w^\top G\, \theta_w
#    = \frac{\|u_w\|_G^2}{2T^2}, \qquad
#    G = \nabla^2\psi(0) = \mathrm{Cov}_{p(w')}[v_{w'}]. $$ (eq-norm-kl)
#
# So **the squared norm of a word's vector, in the metric $G$, is proportional to
# its information gain**. Under additive composition $u_w$ is exactly what $w$
# adds to the sentence vector, so its norm is the word's weight: contrastive
# training at its optimum weights words by information gain. $G$ ignores the
# directions in which all $v_{w'}$ agree, along which $c(w)$ leaves $u_w$ free;
# the Euclidean norm is the same up to such directions and to the shape of $G$.
#
# **What it says about self-information.** It depends on the positive partner.
# $p(\cdot \mid w)$ is the distribution of the words of the partner of a sentence
# that contains $w$. In *unsupervised* SimCSE the partner is the sentence itself
# (another dropout mask), so $w$ is always in its own partner: with $q$ the
# distribution of the *other* words (what the Statistics chapter estimates), the
# partner's distribution is about $\frac{L-1}{L} q + \frac1L \delta_w$ for
# sentences of $L$ words, and when $w$ rarely recurs in its own sentence
#
# $$ \mathrm{KL}\Big(\tfrac{L-1}{L} q + \tfrac1L \delta_w \,\Big\|\, p\Big) - \mathrm{KL}(q \,\|\, p)
#    \approx \frac{\mathrm{SI}(w) - \log L - \mathrm{IG}(w)}{L} + \frac{L-1}{L}\log\frac{L-1}{L} . $$ (eq-self-term)
#
# Self-information enters with weight $1/L$, and information gain is shrunk by
# the same share: for unsupervised SimCSE the theory ties word weights to
# self-information as well (section 5 computes the term's size on real
# sentences). When the partner is another sentence (supervised SimCSE's
# entailed hypothesis, or the other half of a sentence as in the check below),
# the same term enters in proportion to how often $w$ recurs in its partner
# (SNLI hypotheses often copy words of their premise); where it does not,
# $\mathrm{SI}(w) = -\log p(w)$ does not appear in {eq}`eq-norm-kl`. The
# Statistics chapter's information gain leaves the self-occurrence out.
#
# The numerical checks below regress $\|u_w\|^2$ (both norms) on $2\,\mathrm{KL}$.

# %% tags=["remove-cell"]
import os

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from myst_nb import glue
from scipy import stats as scistats

from cwi import config, downloads, pipeline, plotting, record, stats, theory

# %% tags=["parameters"]
profile = os.environ.get("CWI_PROFILE", "default")  # a built-in profile or a study file

# %%
settings = config.get_profile(profile)
th = settings.theory
plotting.use_book_style()
torch.set_num_threads(2)
th

# %% [markdown]
# ## 4. Check on a corpus with known statistics
#
# A topic mixture (`cwi.theory.make_topic_corpus`): a pair of sentences shares one
# topic $z$, and every word of both is drawn independently from $p(w \mid z)$.
# Word $w$ has a Zipfian base frequency and a *topicality* $t_w$; its probability
# under topic $z$ is proportional to $\text{base}_w\, e^{t_w g_{zw}}$ with
# $g \sim \mathcal{N}(0,1)$. Generic words ($t_w \approx 0$) carry no information;
# topical words much. Then $p(w' \mid w) = \sum_z p(z \mid w)\, p(w' \mid z)$ and the
# KL of every word are exact.

# %%
synthetic = theory.make_topic_corpus(
    n_words=th.synthetic_words, n_topics=th.synthetic_topics, max_topicality=th.max_topicality, seed=settings.seed
)
target = 2 * synthetic.information_gain()  # the x of every regression: 2 KL, exact
word_p = synthetic.word_probability()
ceiling = theory.fit_line(target, synthetic.exact_metric_norms())


def sample_synthetic(batch_size, rng):
    return synthetic.sample_pairs(batch_size, th.sentence_length, rng)


def fits(model):
    return theory.norm_fits(model, word_p, target)


trajectory = []
model = theory.AdditiveEncoder(synthetic.n_words, th.dim, seed=settings.seed)
losses = theory.train_info_nce(
    model, sample_synthetic, steps=th.steps, batch_size=th.batch_size, temperature=th.temperature, lr=th.lr,
    seed=settings.seed, every=max(1, th.steps // 30), label="InfoNCE on the synthetic corpus",
    callback=lambda step, m: trajectory.append({"step": step, **{k: f["r2"] for k, f in fits(m).items()}}),
)
main_fit = fits(model)
pd.DataFrame(main_fit).T[["slope", "slope_low", "slope_high", "intercept", "intercept_low", "intercept_high", "r2", "n"]].rename(
    columns=lambda column: column.replace("_", " ")).style.format(precision=3).format({"n": "{:,.0f}"})

# %% tags=["remove-input"]
g = main_fit["metric G"]
display(Markdown(
    f"After {th.steps:,} steps (batch {th.batch_size}, temperature {th.temperature}, sentences of "
    f"{th.sentence_length} words, {th.synthetic_words} words, d = {th.dim}), the squared G-norm of "
    f"the word vectors explains **R² = {g['r2']:.3f}** of the variance of 2 KL over all "
    f"{g['n']} words (Euclidean norm: R² = {main_fit['Euclidean']['r2']:.3f}); slope "
    f"{g['slope']:.2e} (95 % CI {g['slope_low']:.2e} to {g['slope_high']:.2e}), intercept "
    f"{g['intercept']:.2e} ({g['intercept_low']:.2e} to {g['intercept_high']:.2e}). The theory "
    f"predicts slope T² = {th.temperature ** 2:.2e} and intercept 0 for one-word sentences "
    f"({'inside' if g['slope_low'] <= th.temperature ** 2 <= g['slope_high'] else 'outside'} the "
    "interval here; A1 scales the slope for longer sentences). The second-order step A2 alone, "
    f"with the exact PMI in place of trained vectors, reaches R² = {ceiling['r2']:.3f}: what the "
    "approximation itself gives on this corpus, for comparison with the trained vectors."
))

# %% tags=["hide-input"]
trajectory = pd.DataFrame(trajectory)
fig, (ax_scatter, ax_steps) = plotting.figure(
    "Left: squared G-norm of each word vector after training against twice its exact information "
    "gain (colour: log p(w)), with the least-squares line. Right: R² of that regression (and of the Euclidean norm) "
    "during training; the dotted line is the R² of the exact second-order relation.",
    ncols=2,
)
norms = theory.metric_norms(model, word_p)
ax_scatter.scatter(target, norms, s=12, alpha=0.6, c=np.log(word_p), cmap="viridis")
xs = np.linspace(0, target.max(), 50)
ax_scatter.plot(xs, g["intercept"] + g["slope"] * xs, "k--", lw=1)
ax_scatter.set(xlabel="2 KL(p(·|w) ‖ p(·)), exact", ylabel="‖u_w‖²_G")
ax_steps.plot(trajectory["step"], trajectory["metric G"], label="metric G")
ax_steps.plot(trajectory["step"], trajectory["Euclidean"], label="Euclidean")
ax_steps.axhline(ceiling["r2"], color="k", ls=":", lw=1)
ax_steps.set(xlabel="training step", ylabel="R²", ylim=(0, 1))
ax_steps.legend();

# %% [markdown]
# ### Batch size, temperature, tied vectors
#
# The bound {eq}`eq-bound` tightens with the number of negatives $K - 1$, so small
# batches should track information gain less well. The temperature only rescales
# the optimum ($u_w \propto T$ in {eq}`eq-norm-kl`); we scale the learning rate with
# $\sqrt{T / 0.05}$ so that every run moves the vectors at a comparable relative
# speed. Each run trains for `sweep_steps` steps.

# %%
def sweep_run(batch_size=th.batch_size, temperature=th.temperature, tied=False):
    m = theory.AdditiveEncoder(synthetic.n_words, th.dim, tied=tied, seed=settings.seed)
    lr = th.lr * np.sqrt(temperature / 0.05)
    loss = theory.train_info_nce(m, sample_synthetic, steps=th.sweep_steps, batch_size=batch_size,
                                 temperature=temperature, lr=lr, seed=settings.seed,
                                 label=f"sweep: batch {batch_size}, temperature {temperature:g}{', tied' if tied else ''}")
    return {k: f["r2"] for k, f in fits(m).items()} | {"final loss": np.mean(loss[-20:])}


sweep = pd.DataFrame(
    [{"setting": "batch size", "value": b, **sweep_run(batch_size=b)} for b in th.sweep_batch_sizes]
    + [{"setting": "temperature", "value": t, **sweep_run(temperature=t)} for t in th.sweep_temperatures]
    + [{"setting": "tied u = v", "value": th.temperature, **sweep_run(tied=True)}]
)
sweep.style.format({"value": "{:g}", "metric G": "{:.3f}", "Euclidean": "{:.3f}", "final loss": "{:.3f}"}).hide(axis="index")

# %% tags=["hide-input"]
fig, (ax_b, ax_t) = plotting.figure(
    f"R² of squared norm against 2 KL after {th.sweep_steps:,} steps, by batch size (left, temperature "
    f"{th.temperature}) and temperature (right, batch {th.batch_size}).",
    ncols=2,
)
for ax, setting in [(ax_b, "batch size"), (ax_t, "temperature")]:
    part = sweep[sweep["setting"] == setting]
    for column in ["metric G", "Euclidean"]:
        ax.plot(part["value"], part[column], "o-", label=column)
    ax.set(xscale="log", xlabel=setting, ylabel="R²", ylim=(0, 1))
ax_b.legend();

# %% [markdown]
# ## 5. Check on real sentences
#
# Wikipedia sentences of the data pack. Positive pairs are **two disjoint random
# halves of one sentence** (`cwi.theory.half_split_pairs`): a word in one half
# meets, in its partner, a random half of the other words of its sentence. In
# expectation this is the co-occurrence estimator of the Statistics chapter (the
# other words of the same sentence), up to a weight per sentence length, so the
# information gain below is computed by `cwi.stats.word_statistics` on exactly the
# sentences the encoder trains on. Only words seen at least `real_min_count` times
# and present in GloVe's vocabulary (for check 3) get a vector; the others are
# removed from the sentences before both training and counting.
#
# PAPER: the paper's encoders are transformers trained with SimCSE's dropout
# positives; an additive encoder cannot use dropout noise as its only difference
# between the two views, so we split the sentence instead.

# %%
glove_words, glove_vectors = theory.load_glove()
real_run = pipeline.contrastive_additive_encoder(settings)  # trained once, cached for the Weighting chapter
vocab, encoded, real_model, real_losses = real_run.vocab, real_run.encoded, real_run.model, real_run.losses
word_table = stats.word_statistics(
    [" ".join(vocab[i] for i in ids) for ids in encoded], correction="shuffle", seed=settings.seed
).reindex(vocab)
real_p = (word_table["count"] / word_table["count"].sum()).to_numpy()
# The self-occurrence term of unsupervised SimCSE (section 1), at the median sentence length.
length = float(np.median([len(ids) for ids in encoded]))
shift = ((word_table["self_information"] - np.log(length) - word_table["information_gain_corrected"]) / length
         + (length - 1) / length * np.log((length - 1) / length))
gain = word_table["information_gain_corrected"]

# %% tags=["remove-input"]
# What the term does to the ranking: information gain alone against information gain plus the term.
with_term = scistats.spearmanr(gain, gain + shift, nan_policy="omit").statistic
glue("self_term", {"median": float(shift.median()), "spread": float(shift.std()), "gain_spread": float(gain.std()),
                   "rank_agreement": float(with_term)}, display=False)
display(Markdown(
    f"With the median sentence length here, L = {length:.0f} words, the self-occurrence term of section 1 "
    f"(with the shuffle-corrected information gain) has median {shift.median():+.2f} nats "
    f"and varies across the {len(vocab):,} words with a standard deviation of {shift.std():.2f} nats, against "
    f"{gain.std():.2f} nats for the corrected information gain itself ({shift.std() / gain.std():.0%} of its "
    f"spread). Ranked with the term added, the words keep their information-gain order at Spearman ρ = "
    f"{with_term:.3f}: this is how much the term that ties unsupervised weights to self-information "
    "reorders them."
))

# %%
quantities = {
    "information gain": word_table["information_gain"].to_numpy(),
    "information gain, corrected": word_table["information_gain_corrected"].to_numpy(),
    "self-information": word_table["self_information"].to_numpy(),
}


def real_fits(m, label):
    return theory.norm_fit_rows(m, real_p, quantities, label)


def train_real(init):
    return theory.train_on_sentences(encoded, len(vocab), th.real_dim, th.real_steps, th.batch_size,
                                     th.temperature, th.lr, seed=settings.seed, init=init,
                                     label="InfoNCE on Wikipedia sentences, GloVe start")


real_results = pd.DataFrame(real_fits(real_model, "random init, contrastive"))
real_table = real_results.pivot_table(index="quantity", columns="norm", values="r2")
real_table.style.format("{:.3f}")

# %% tags=["remove-input"]
downloads.csv_download(real_table, "theory_wikipedia_r2.csv", "these R²")

# %% tags=["remove-input"]
r2_ig = real_results.query("quantity == 'information gain' and norm == 'Euclidean'")["r2"].item()
r2_igc = real_results.query("quantity == 'information gain, corrected' and norm == 'Euclidean'")["r2"].item()
r2_si = real_results.query("quantity == 'self-information' and norm == 'Euclidean'")["r2"].item()
display(Markdown(
    f"On {len(encoded):,} sentences with a vocabulary of {len(vocab):,} words, after "
    f"{th.real_steps:,} steps (loss {np.mean(real_losses[:20]):.2f} → {np.mean(real_losses[-20:]):.2f}), "
    f"the squared Euclidean norm explains **R² = {r2_ig:.3f}** of the variance of the raw "
    f"information gain, R² = {r2_igc:.3f} of the shuffle-corrected one and R² = {r2_si:.3f} of "
    "self-information. "
    + ("A likely reason why the raw value fits better than the corrected one: the "
       "encoder learns from the same finite sample as the raw estimator and so sees the same chance "
       "co-occurrences of rare words; the theory's p(·|w) for a model trained on this corpus is the "
       "empirical one, bias included."
       if r2_ig > r2_igc else
       "The corrected value fits better than the raw one: the chance co-occurrences of rare words that "
       "inflate the raw estimate do not shape the trained norms as much.")
))

# %% tags=["hide-input"]
fig, axes = plotting.figure(
    "Squared Euclidean norm of each word vector trained on Wikipedia half-sentence pairs, against "
    "twice its raw information gain (left), twice its corrected information gain (middle) and its "
    "self-information (right); colour: log count.",
    ncols=3, width=4.2,
)
log_count = np.log(word_table["count"].to_numpy())
for ax, (name, values) in zip(axes, quantities.items()):
    doubled = "information gain" in name  # the theory: ||u_w||^2 near 2 KL
    ax.scatter(2 * values if doubled else values, real_model.squared_norms(), s=3, alpha=0.3, c=log_count,
               cmap="viridis", rasterized=True)
    ax.set(xlabel=("2 × " if doubled else "") + name, ylabel="‖u_w‖²")

# %% [markdown]
# ## 6. Pre-trained versus contrastive, for static vectors
#
# The paper compares a pre-trained encoder with its contrastively fine-tuned twin.
# The static-vector analogue: GloVe 6B 50-d vectors {cite}`pennington2014glove`,
# trained on co-occurrence counts, not contrastively. We measure how their norms
# relate to information gain, then initialise both tables of the additive encoder
# with them and train contrastively on the same sentence pairs as above.
#
# PAPER: GloVe is rescaled by one global factor so that its mean norm matches the
# random initialisation's scale; at GloVe's own scale and the profile's
# temperature the first logits would be far too large. A global factor changes
# no R².

# %%
glove_index = {word: i for i, word in enumerate(glove_words)}
glove_init = glove_vectors[[glove_index[w] for w in vocab]].astype(np.float64)
glove_init *= 0.01 * np.sqrt(glove_init.shape[1]) / np.linalg.norm(glove_init, axis=1).mean()
glove_before = theory.AdditiveEncoder(len(vocab), glove_init.shape[1], init=glove_init)
glove_after, glove_losses = train_real(init=glove_init)
static = pd.DataFrame(
    real_fits(glove_before, "GloVe (pre-trained)") + real_fits(glove_after, "GloVe + contrastive")
    + real_fits(real_model, "random init + contrastive")
)
static_table = static.pivot_table(index=["quantity", "norm"], columns="encoder", values="r2", sort=False)
static_table.style.format("{:.3f}")

# %% tags=["hide-input"]
fig, axes = plotting.figure(
    "Squared Euclidean norm against twice the raw information gain: GloVe as pre-trained (left) "
    "and after contrastive training from it (right).",
    ncols=2,
)
for ax, (label, m) in zip(axes, [("GloVe (pre-trained)", glove_before), ("GloVe + contrastive", glove_after)]):
    r2 = static.query("encoder == @label and quantity == 'information gain' and norm == 'Euclidean'")["r2"].item()
    ax.scatter(2 * quantities["information gain"], m.squared_norms(), s=3, alpha=0.3, c=log_count,
               cmap="viridis", rasterized=True)
    ax.set(xlabel="2 × information gain", ylabel="‖u_w‖²", title=f"{label}: R² = {r2:.2f}")

# %% tags=["remove-input"]
before = static_table.loc[("information gain", "Euclidean"), "GloVe (pre-trained)"]
after = static_table.loc[("information gain", "Euclidean"), "GloVe + contrastive"]
display(Markdown(
    f"GloVe's squared norms explain R² = **{before:.3f}** of the variance of 2 × information gain; "
    f"after contrastive training from GloVe, R² = **{after:.3f}** "
    f"({'up' if after > before else 'down'} by {abs(after - before):.3f}). "
    + ("Contrastive training moved the norms towards information gain: the direction the paper "
       "reports for transformers, here for the simplest encoder the theory covers."
       if after > before else
       "Contrastive training did not move the norms towards information gain here, unlike what "
       "the paper reports for transformers.")
))

# %% [markdown]
# ## 7. What the later chapters can expect
#
# The derivation needs an additive encoder. The encoders of the later chapters are
# transformers:
#
# - **Mean pooling** averages token outputs, but each output depends on the whole
#   sentence, so there is no fixed $u_w$. An attribution method gives the additive
#   decomposition back: SHAP splits $f(s) - f(s_0)$ exactly into per-word
#   vectors (efficiency), Integrated Gradients up to the error of its quadrature
#   (completeness, which the Attribution chapter measures). The norm of a
#   word's $c_i$ plays the role of $\|u_w\|$, which is how the Attribution chapter
#   defines a word's weight.
# - **[CLS] pooling** has no sum at all; the same attribution argument applies to
#   the [CLS] output.
# - **Cosine similarity.** SimCSE's critic is $\cos(f(s), g(s^+)) / T$: the sentence
#   vector is normalised, so absolute norms are not identified, but every word of a
#   sentence is divided by the same factor and *relative* weights within a sentence
#   are. Hence the normalised weight of the Attribution chapter (weight over the sentence mean).
# - **Assumptions A1 and A2** are approximations (sentence PMI as a sum of word
#   PMIs; small KL). The checks above show how much of the relation survives them
#   for an additive encoder; a transformer adds context dependence on top. What the
#   theory supports is a *tendency*, larger weight for higher information gain, and
#   a *change*, more so after contrastive training, not an equality.


# %% [markdown]
# ## Execution record
#
# What this run used and cost: the profile, the kernel's wall time and peak
# memory, the package versions and the commit of the code.

# %% tags=["remove-input"]
record.execution_record(profile)
