"""Are the word weights faithful?  Deletion and insertion curves against rival word orders.

A word weight is faithful when the words it ranks first are those the
embedding depends on.  For one sentence, :func:`removal_curves` removes its
words one at a time in a given *order* and records the cosine between the
partial sentence's embedding and the full sentence's:

* **deletion**: the first k words of the order removed (k = 0 ... W); a
  faithful order makes the cosine fall fast;
* **insertion**: only the first k words kept, the others removed; a faithful
  order makes it rise fast.

A word is removed in one of two ways (:data:`REMOVALS`), both reported because
either alone can mislead (Madsen et al. 2023): ``"baseline"`` replaces its
tokens' input embeddings by the attribution baseline's (the input the methods
compare with, so all words removed is exactly the baseline), keeping the
sentence's length and positions; ``"text"`` deletes its characters from the
sentence and tokenises again (all words removed is the empty sentence), which
changes the positions of the words after it and, for byte-level BPE, how a new
first word is spelled.  A token
shared by two words (byte-level BPE's ``'t``) goes with the word of its larger
share (:meth:`cwi.inputs.Prepared.owned_tokens`).

The orders come from :func:`word_orders`: each method's weights (largest
first), and the rivals an information-weighting claim must beat: corpus
frequency (rarest first, the order of IDF), information gain (largest first)
and random orders.  :func:`summarise` turns curves into AOPC scores (Samek et
al. 2017; ERASER's comprehensiveness and sufficiency, DeYoung et al. 2020):

* **comprehensiveness** = mean over k = 1 ... W-1 of ``1 - cos`` after deleting
  the first k words (higher: the order finds what the embedding needs);
* **sufficiency** = mean over k = 1 ... W-1 of ``1 - cos`` keeping only the
  first k words (lower: the first words alone rebuild the embedding).

Every step counts, not ERASER's bins of 1, 5, 10, 20 and 50 %, and the
endpoints k = 0 and k = W, the same input for every order, are left out.  The
curves follow the direction of the embedding (the cosine an STS user compares),
while a word weight is the norm of the word's share of ``f(x) - f(x')``: a word
whose share lies along f(x) moves its length more than its direction.

:func:`compare_orders` sets each method's order against each rival on the same
sentences, and :func:`compare_models` a fine-tuned model's scores against its
pre-trained twin's, each as one family tested by random sign flips (a max-t
randomisation test, :func:`sign_flip_family`); :func:`sign_flip_null` measures
that rule's false-positive rate on a null with the data's own shape.  The
leave-one-out check (:func:`kendall_by_sentence`) compares each word's weight
with the drop of the cosine when that word alone is removed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .analysis import verdict
from .encoders import Encoder
from .inputs import prepare

__all__ = ["REMOVALS", "RIVALS", "SUMMARIES", "ALGORITHM_VERSION", "attribution_order", "frequency_order",
           "gain_order", "random_orders", "word_orders", "removal_curves", "summarise", "on_grid",
           "kendall_by_sentence", "sign_flip_family", "compare_orders", "compare_models", "sign_flip_null"]

REMOVALS = ("baseline", "text")
# The rival orders a method's order is compared with (random: the mean over its draws).
RIVALS = ("frequency", "information gain", "random")
# The two AOPC scores and the sign that makes "larger is more faithful".
SUMMARIES = {"comprehensiveness": 1.0, "sufficiency": -1.0}
# Bump when what this module computes for the same inputs changes: it is part of the cache keys.
ALGORITHM_VERSION = 2


def _ranked(word_index, keys, tie_break=None) -> list[int]:
    """`word_index` sorted by `keys` (tuples, smallest first); ties by `tie_break` (a random key per word), else position.

    Position alone would send the leftmost of equal words first, and under text
    removal a sentence's first word is spelled apart (byte-level BPE), so the
    orders break ties at random.
    """
    tie_break = list(range(len(word_index))) if tie_break is None else list(tie_break)
    ranked = sorted(zip(keys, tie_break, word_index), key=lambda item: (item[0], item[1]))
    return [w for _, _, w in ranked]


def attribution_order(word_index, weights, tie_break=None) -> list[int]:
    """Largest weight first."""
    return _ranked(word_index, [(-float(w),) for w in weights], tie_break)


def frequency_order(word_index, counts, tie_break=None) -> list[int]:
    """Rarest first (corpus count; a word the corpus lacks counts 0): the order of IDF."""
    return _ranked(word_index, [(0.0 if pd.isna(c) else float(c),) for c in counts], tie_break)


# Where a word goes in the information-gain order, by its status (cwi.analysis.attach_statistics).
GAIN_GROUPS = {"absent": 0, "rare": 0, "ok": 1, "no context": 2}


def gain_order(word_index, gains, counts, status, tie_break=None) -> list[int]:
    """Largest information gain first, among the words whose statistics are usable (status ``"ok"``).

    A word absent from the corpus or seen fewer than ``min_count`` times has no
    usable gain (a rare word's estimate is biased upwards): it is rarer than
    every usable word, and rare words carry the most information, so such words
    lead, rarest first.  A word seen only in one-word sentences ("no context")
    comes last, rarest first.
    """
    keys = []
    for gain, count, state in zip(gains, counts, status):
        group = GAIN_GROUPS[str(state)]
        count = 0.0 if pd.isna(count) else float(count)
        keys.append((group, -float(gain) if group == 1 else count))
    return _ranked(word_index, keys, tie_break)


def random_orders(word_index, draws: int, rng: np.random.Generator) -> list[list[int]]:
    """`draws` uniformly random orders of the words."""
    word_index = list(word_index)
    return [[word_index[i] for i in rng.permutation(len(word_index))] for _ in range(draws)]


def sentence_rng(seed: int, sentence: str) -> np.random.Generator:
    """The random stream of one sentence: from `seed` and the sentence's normalised text.

    So a sentence gets the same random orders and tie-breaks whichever table,
    dataset or sample it is in, and two sentences of the same length different ones.
    """
    import hashlib

    from .data import normalise_sentence

    digest = hashlib.sha256(normalise_sentence(sentence).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def word_orders(words: pd.DataFrame, methods, random_draws: int, seed: int) -> pd.DataFrame:
    """Every order of every sentence of one model: one row per (dataset, sentence, order, draw).

    Parameters
    ----------
    words
        One model's word rows (:func:`cwi.analysis.attach_statistics` of its word
        weights): ``dataset``, ``sentence``, ``method``, ``word_index``,
        ``weight``, ``count``, ``information_gain`` and ``status``.
    methods
        The methods whose weights give an order each (``"ig"``, ``"shap"``).
    random_draws
        Random orders per sentence.
    seed
        Seed of the random orders and of the tie-breaks (:func:`sentence_rng`).

    Returns
    -------
    pandas.DataFrame
        ``dataset``, ``sentence``, ``order`` (a method, or a name of :data:`RIVALS`),
        ``draw`` (0 but for random orders) and ``words`` (a tuple of word indices).
    """
    rows = []
    for (dataset, sentence), group in words.groupby(["dataset", "sentence"], sort=True):
        first = group[group["method"] == methods[0]].sort_values("word_index")
        index = first["word_index"].tolist()
        rng = sentence_rng(seed, sentence)
        ties = rng.permutation(len(index))
        for method in methods:
            own = group[group["method"] == method].sort_values("word_index")
            if own["word_index"].tolist() != index:
                raise ValueError(f"the {method} and {methods[0]} tables of {sentence[:40]!r} ({dataset}) hold "
                                 "different words: attribute both on the same sentences with the same model")
            rows.append((dataset, sentence, method, 0, tuple(attribution_order(index, own["weight"], ties))))
        rows.append((dataset, sentence, "frequency", 0, tuple(frequency_order(index, first["count"], ties))))
        rows.append((dataset, sentence, "information gain", 0,
                     tuple(gain_order(index, first["information_gain"], first["count"], first["status"], ties))))
        rows += [(dataset, sentence, "random", d, tuple(order))
                 for d, order in enumerate(random_orders(index, random_draws, rng))]
    return pd.DataFrame(rows, columns=["dataset", "sentence", "order", "draw", "words"])


def _remove_text(text: str, spans, removed) -> str:
    """`text` without the characters of the words `removed` (positions in `spans`), whitespace collapsed.

    A removed word leaves a space, so that its neighbours are not glued together
    ("well-known" without its hyphen is "well known", not "wellknown").
    """
    pieces, start = [], 0
    for w in sorted(removed):
        pieces.append(text[start:spans[w][0]])
        start = spans[w][1]
    pieces.append(text[start:])
    return " ".join(" ".join(pieces).split())


@torch.no_grad()
def _baseline_embeddings(encoder: Encoder, prepared, states: list[frozenset], owned, batch_size: int) -> np.ndarray:
    """Sentence embeddings with the tokens of each state's removed words set to the baseline's embeddings."""
    out = []
    mask = torch.ones(1, prepared.length, dtype=torch.long, device=prepared.inputs.device)
    for start in range(0, len(states), batch_size):
        chunk = states[start:start + batch_size]
        replaced = torch.zeros(len(chunk), prepared.length, 1, dtype=torch.bool, device=prepared.inputs.device)
        for g, removed in enumerate(chunk):
            for w in removed:
                replaced[g, owned[w]] = True
        inputs = torch.where(replaced, prepared.baseline, prepared.inputs)
        out.append(encoder.forward(attention_mask=mask.expand(len(chunk), -1), inputs_embeds=inputs).float().cpu())
    return torch.cat(out).numpy()


def _cosine(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference)
    return (vectors @ reference) / np.where(norms > 0, norms, 1.0)


def removal_curves(encoder: Encoder, text: str, orders: dict, baseline: str = "pad", removals=REMOVALS,
                   batch_size: int = 128) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deletion and insertion curves of one sentence for each order, and its leave-one-out drops.

    Parameters
    ----------
    encoder
        The model whose embedding the curves follow.
    text
        The sentence, as attributed (already cut to the model's length:
        :func:`cwi.attribution.fit_to_length`).
    orders
        ``{name: word indices}``: each a permutation of the sentence's words
        (their positions in ``cwi.stats.tokenize(text)``, as the word-weight
        tables number them).
    baseline
        The attribution baseline (``"pad"``, ``"mask"``, ``"zero"``) the
        ``"baseline"`` removal puts in place of a word.
    removals
        Ways of removing a word: names of :data:`REMOVALS`.

    Returns
    -------
    curves
        One row per removal, order, direction (``"deletion"``, ``"insertion"``)
        and step ``k`` (0 ... W): ``fraction`` = k / W and ``cosine`` to the full
        sentence's embedding.
    leave_one_out
        One row per removal and word: ``word_index`` and ``drop`` = 1 - cosine
        with that word alone removed.
    """
    prepared = prepare(encoder, text, baseline)
    words = list(prepared.word_index)
    position = {w: k for k, w in enumerate(words)}
    for name, order in orders.items():
        if sorted(order) != sorted(words):
            raise ValueError(f"order {name!r} of {text[:40]!r} is not a permutation of its words {words} "
                             f"({encoder.name}'s tokens cover these): got {list(order)}")
    # Every distinct set of removed words (as positions among the prepared words), each run once.
    plans = []
    for name, order in orders.items():
        ranked = [position[w] for w in order]
        for k in range(len(ranked) + 1):
            plans.append((name, "deletion", k, frozenset(ranked[:k])))
            plans.append((name, "insertion", k, frozenset(ranked[k:])))
    singles = [frozenset([k]) for k in range(len(words))]
    states = list(dict.fromkeys([frozenset()] + [p[3] for p in plans] + singles))
    where = {state: i for i, state in enumerate(states)}
    curves, drops = [], []
    for removal in removals:
        if removal == "baseline":
            embedded = _baseline_embeddings(encoder, prepared, states, prepared.owned_tokens(), batch_size)
        elif removal == "text":
            texts = [_remove_text(text, prepared.spans, state) for state in states]
            embedded = encoder.encode(texts, batch_size)
        else:
            raise ValueError(f"unknown removal {removal!r}: choose among {REMOVALS}")
        cosine = _cosine(embedded, embedded[where[frozenset()]])
        n = len(words)
        curves += [(removal, name, direction, k, k / n, float(cosine[where[state]]))
                   for name, direction, k, state in plans]
        drops += [(removal, words[k], float(1 - cosine[where[state]])) for k, state in enumerate(singles)]
    return (pd.DataFrame(curves, columns=["removal", "order", "direction", "k", "fraction", "cosine"]),
            pd.DataFrame(drops, columns=["removal", "word_index", "drop"]))


def summarise(curves: pd.DataFrame) -> pd.DataFrame:
    """AOPC-style comprehensiveness and sufficiency of every curve, over the steps where orders can differ.

    Comprehensiveness is the mean of ``1 - cos`` after deleting the first k
    words, sufficiency the mean of ``1 - cos`` keeping only the first k, both
    over k = 1 ... W-1: at k = 0 and k = W every order gives the same input (the
    full sentence, or all words removed), whose constant would only dilute the
    differences between orders and add each model's own endpoint.  A sentence
    of one word has no such step: NaN.  `curves` has the columns of
    :func:`removal_curves` plus any identifying columns (``model``,
    ``dataset``, ``sentence``, ...), which are kept; one row per order.
    """
    keys = [c for c in curves.columns if c not in ("direction", "k", "fraction", "cosine")]
    gap = curves.assign(gap=1 - curves["cosine"])
    length = gap.groupby(keys, sort=False)["k"].transform("max")
    inner = gap[(gap["k"] > 0) & (gap["k"] < length)]
    means = inner.groupby([*keys, "direction"], sort=False)["gap"].mean().unstack("direction")
    table = gap[keys].drop_duplicates().set_index(keys)
    table["comprehensiveness"] = means.get("deletion")
    table["sufficiency"] = means.get("insertion")
    return table.reset_index()


def kendall_by_sentence(weights: pd.DataFrame, drops: pd.DataFrame, keys) -> pd.DataFrame:
    """Kendall tau-b between each word's weight and its leave-one-out drop, per group of `keys`.

    `weights` (``weight``, e.g. with ``method``) and `drops` (``drop``, e.g.
    with ``removal``) are joined on ``word_index`` and the `keys` they share, so
    every method meets every removal; one row per group of `keys` with ``tau``
    (NaN for a sentence of one word or of constant values).
    """
    from scipy import stats as scistats

    shared = [k for k in keys if k in weights.columns and k in drops.columns]
    joined = weights.merge(drops, on=[*shared, "word_index"])
    taus = joined.groupby(list(keys), sort=False).apply(
        lambda group: scistats.kendalltau(group["weight"], group["drop"]).statistic if len(group) > 1 else np.nan,
        include_groups=False)
    return taus.rename("tau").reset_index()


def _advantages(summary: pd.DataFrame, methods, rivals) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per sentence, each method's score minus each rival's, signed so that positive means more faithful."""
    keys = ["model", "removal", "dataset", "sentence"]
    mean = summary.groupby([*keys, "order"], sort=False)[list(SUMMARIES)].mean()  # random: the mean of its draws
    wide = mean.unstack("order")
    members, columns = [], []
    for model, removal in wide.index.droplevel(["dataset", "sentence"]).unique():
        rows = wide.xs((model, removal), level=["model", "removal"])
        for method in methods:
            for rival in rivals:
                for name, sign in SUMMARIES.items():
                    if (name, method) not in rows or (name, rival) not in rows:
                        continue
                    values = sign * (rows[(name, method)] - rows[(name, rival)])
                    members.append({"model": model, "method": method, "removal": removal, "rival": rival,
                                    "summary": name})
                    columns.append(values.rename(len(members) - 1))
    per_sentence = pd.concat(columns, axis=1) if columns else pd.DataFrame()
    return pd.DataFrame(members), per_sentence


def _studentised(signs: np.ndarray, filled: np.ndarray, n: np.ndarray, sum_squares: np.ndarray) -> np.ndarray:
    """(F, m) one-sample t of every member after each row of sign flips `signs` (F, units).

    Flipping signs leaves each unit's square unchanged, so only the mean moves:
    ``se = sqrt((sum x^2 - n mean^2) / (n (n - 1)))``.
    """
    means = (signs @ filled) / n
    spread = np.maximum(sum_squares - n * means**2, 0.0) / (n * np.maximum(n - 1, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, means / np.sqrt(spread), np.nan)


def _largest(t: np.ndarray) -> np.ndarray:
    """The largest |t| of each row; a member without spread (NaN t) cannot be off 0, so counts as 0."""
    return np.where(np.isfinite(t), np.abs(t), 0.0).max(axis=1)


def sign_flip_family(members: pd.DataFrame, per_sentence: pd.DataFrame, flips: int = 5000, seed: int = 0,
                     level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Test a family of paired differences, one column per member, as one: a max-t sign-flip randomisation test.

    Parameters
    ----------
    members
        One row per column of `per_sentence`, describing it.
    per_sentence
        Index ``(dataset, sentence)``; one column per member: a sentence's
        difference, signed so that positive means "more faithful" (NaN where a
        member lacks the sentence).
    flips, seed, level
        Random sign flips, their seed, and the family's joint coverage (its
        family-wise error is ``1 - level``).

    Notes
    -----
    The unit is a distinct sentence (:func:`cwi.data.normalise_sentence`: a
    sentence two datasets share counts once).  If no member differs from 0 and a
    sentence's differences are symmetric about 0, flipping their signs changes
    nothing; so the test flips the signs of every sentence's differences at
    random (one flip per sentence, shared by all members, which keeps their
    dependence) and takes the `level` quantile c of the largest absolute
    one-sample t over the family.  A member whose own |t| exceeds c is off 0:
    a max-t randomisation test.  Under symmetry its family-wise error is ``1 -
    level`` up to the Monte Carlo error of c; a mean of 0 without symmetry (a
    skewed difference, such as an order against the mean of several random
    orders) makes it approximate, which is why :func:`sign_flip_null` measures
    it on a null that keeps the data's skew.  The intervals ``mean +- c se``
    agree with the decisions; their joint coverage is as approximate.

    Returns
    -------
    table
        `members` with ``estimate`` (the mean over sentences), ``low`` and
        ``high`` (simultaneous), ``verdict`` (:func:`cwi.analysis.verdict`:
        ``"more"`` means more faithful) and ``sentences``.
    state
        What :func:`sign_flip_null` needs.
    """
    from .data import normalise_sentence

    text = per_sentence.index.get_level_values("sentence").map(normalise_sentence)
    units = per_sentence.groupby(text.to_numpy(), sort=True).mean()  # the same sentence's scores are equal
    values = units.to_numpy(float)
    present = np.isfinite(values)
    filled = np.where(present, values, 0.0)
    n = present.sum(0).astype(float)
    sum_squares = (filled**2).sum(0)
    observed = _studentised(np.ones((1, len(values))), filled, n, sum_squares)[0]
    rng = np.random.default_rng(seed)
    flipped = _studentised(rng.choice([-1.0, 1.0], size=(flips, len(values))), filled, n, sum_squares)
    critical = float(np.quantile(_largest(flipped), level))
    with np.errstate(divide="ignore", invalid="ignore"):
        estimates = filled.sum(0) / n
        se = np.where(np.isfinite(observed) & (observed != 0), estimates / observed, np.nan)
    low, high = estimates - critical * se, estimates + critical * se
    table = members.reset_index(drop=True).assign(
        estimate=estimates, low=low, high=high, sentences=n.astype(int),
        verdict=[verdict(lo, hi) if np.isfinite(lo) else "unclear" for lo, hi in zip(low, high)])
    return table, {"filled": filled, "present": present, "estimates": estimates, "critical": critical,
                   "level": level}


def compare_orders(summary: pd.DataFrame, methods, rivals=RIVALS, flips: int = 5000, seed: int = 0,
                   level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Each method's order against each rival on the same sentences, tested as one family (:func:`sign_flip_family`).

    `summary` holds :func:`summarise` rows with ``model``, ``removal``,
    ``dataset``, ``sentence``, ``order`` and ``draw``.  One member per model x
    method x removal x rival x summary; its ``estimate`` is the mean advantage
    of the method's order over the rival's (the rival's score minus the
    method's for sufficiency), positive when the method's order is more
    faithful.  Against random orders the rival is the mean of several draws, so
    the sign symmetry of no difference holds only approximately.
    """
    members, per_sentence = _advantages(summary, methods, rivals)
    if members.empty:
        raise ValueError("no method order with a rival order on the same sentences: nothing to compare")
    return sign_flip_family(members, per_sentence, flips, seed, level)


def compare_models(summary: pd.DataFrame, pairs: dict, methods, flips: int = 5000, seed: int = 0,
                   level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Fine-tuned against pre-trained: does a method's order beat random orders by more after fine-tuning?

    `pairs` maps a pair's name to ``(pretrained, finetuned)`` model names.  One
    member per pair x method x removal x summary, on the sentences both models
    have: the method's advantage over random orders (:func:`compare_orders`'
    signs) for the fine-tuned model minus that for the pre-trained one.  Raw
    scores would not do: a pre-trained encoder's embeddings are anisotropic, so
    every cosine is near 1 and any order, random ones included, scores low; the
    advantage over random orders of the same model removes that geometry.
    Tested as one family (:func:`sign_flip_family`).
    """
    members, advantage = _advantages(summary, methods, ("random",))
    if members.empty:
        raise ValueError("no method order with random orders on the same sentences: nothing to compare")
    column = {tuple(row): number for number, row in
              enumerate(members[["model", "method", "removal", "summary"]].itertuples(index=False))}
    rows, columns = [], []
    for pair, (pretrained, finetuned) in pairs.items():
        for method in methods:
            for removal in members["removal"].unique():
                for name in SUMMARIES:
                    pre, fine = (column.get((model, method, removal, name)) for model in (pretrained, finetuned))
                    if pre is None or fine is None:
                        continue
                    rows.append({"pair": pair, "method": method, "removal": removal, "summary": name})
                    columns.append((advantage[fine] - advantage[pre]).rename(len(rows) - 1))
    if not rows:
        raise ValueError("no pair has both its models' curves: nothing to compare")
    return sign_flip_family(pd.DataFrame(rows), pd.concat(columns, axis=1), flips, seed, level)


def on_grid(curves: pd.DataFrame, points: int = 11) -> pd.DataFrame:
    """Each curve read at `points` equally spaced fractions of its words (linear between steps), for averaging.

    Sentences have different numbers of words; on a common grid of the fraction
    removed (or kept) their curves can be averaged.  Keeps every column but
    ``k``, ``fraction`` and ``cosine``; adds ``fraction`` (the grid) and ``cosine``.
    """
    grid = np.linspace(0, 1, points)
    keys = [c for c in curves.columns if c not in ("k", "fraction", "cosine")]
    rows = []
    for key, group in curves.groupby(keys, sort=False):
        ordered = group.sort_values("fraction")
        rows += [(*key, f, c) for f, c in zip(grid, np.interp(grid, ordered["fraction"], ordered["cosine"]))]
    return pd.DataFrame(rows, columns=[*keys, "fraction", "cosine"])


def sign_flip_null(state: dict, simulations: int, seed: int, flips: int = 1000) -> int:
    """How many of `simulations` data sets with no effect, but the data's own shape, get some member off 0.

    Each simulation resamples the sentences, with replacement, from the
    observed differences centred on their means (every member's mean is then 0
    while its spread, skew and the members' dependence are the data's), and
    applies :func:`sign_flip_family`'s whole rule to it, with a critical value
    of its own from `flips` sign flips.  The count over `simulations` estimates
    the rule's family-wise false-positive rate where the symmetry it assumes
    need not hold (:func:`cwi.inference.calibration_status` reads it).
    """
    rng = np.random.default_rng(seed)
    present = state["present"]
    centred = np.where(present, state["filled"] - state["estimates"], 0.0)
    units = len(centred)
    said = 0
    for _ in range(simulations):
        drawn = rng.integers(0, units, units)
        filled, here = centred[drawn], present[drawn]
        n = here.sum(0).astype(float)
        sum_squares = (filled**2).sum(0)
        observed = _studentised(np.ones((1, units)), filled, n, sum_squares)[0]
        null = _studentised(rng.choice([-1.0, 1.0], size=(flips, units)), filled, n, sum_squares)
        said += bool(_largest(observed[None])[0] > np.quantile(_largest(null), state["level"]))
    return said
