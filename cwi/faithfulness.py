"""Are the word weights faithful?  Deletion and insertion curves against rival word orders.

A word weight is faithful when the words it ranks first are those the
embedding depends on.  For one sentence, :func:`removal_curves` removes its
words one at a time in a given *order* and records the cosine between the
partial sentence's embedding and the full sentence's:

* **deletion**: the first k words of the order removed (k = 0 ... W); a
  faithful order makes the cosine fall fast;
* **insertion**: only the first k words kept, the others removed; a faithful
  order makes it rise fast.

Each state is scored two ways (:data:`MEASURES`): ``cosine``, the direction an
STS user compares, and ``euclidean``, ``||f(x_S) - f(x)|| / ||f(x) - f(x_0)||``
with ``x_0`` the sentence with every word removed: the distance on the scale of
what the word vectors decompose (a weight is the norm of a word's share of
``f(x) - f(x')``, and with the baseline removal ``x_0`` is ``x'`` exactly).
Deleting a word w moves ``1 - cos`` by about ``||P c_w||^2 / (2 ||f(x)||^2)``,
with P the projection off ``f(x)``: quadratic, and blind to the part of ``c_w``
along ``f(x)``; the Euclidean curve sees all of ``c_w``.

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

* **comprehensiveness** = mean over k = 1 ... W-1 of the gap (``1 - cos``, or
  the normalised distance) after deleting the first k words (higher: the order
  finds what the embedding needs);
* **sufficiency** = mean over k = 1 ... W-1 of the gap keeping only the first
  k words (lower: the first words alone rebuild the embedding).

:func:`removal_curves` also follows a greedy **oracle** per measure and
direction (at each step the word whose removal, or insertion, moves the gap
most), and :func:`normalised_aopc` puts every order on the scale
``(order - random) / (oracle - random)``: 0 is chance, 1 the greedy oracle.

Every step counts, not ERASER's bins of 1, 5, 10, 20 and 50 %, and the
endpoints k = 0 and k = W, the same input for every order, are left out.

:func:`compare_orders` sets each method's order against each rival on the same
sentences, with the attribution-free comparison beside them (the information-gain
order against the frequency order, :data:`ATTRIBUTION_FREE`), and
:func:`compare_models` a fine-tuned model's advantages against its pre-trained
twin's, each as one family tested by a max-t rule (:func:`sign_flip_family`:
the critical value is the larger of the sign flips' and a centred bootstrap's);
:func:`sign_flip_null` measures that rule's false-positive rate on a null with
the data's own shape.  The
leave-one-out check (:func:`kendall_by_sentence`) compares each word's weight
with the drop of the cosine when that word alone is removed.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
import torch

from .analysis import verdict
from .encoders import Encoder
from .inputs import prepare

__all__ = ["REMOVALS", "RIVALS", "SUMMARIES", "MEASURES", "ATTRIBUTION_FREE", "ORACLE", "ALGORITHM_VERSION",
           "attribution_order", "frequency_order", "gain_order", "random_orders", "word_orders", "removal_curves", "summarise", "normalised_aopc", "on_grid",
           "kendall_by_sentence", "sign_flip_family", "compare_orders", "compare_models", "sign_flip_null"]

REMOVALS = ("baseline", "text")
# The rival orders a method's order is compared with (random: the mean over its draws).
RIVALS = ("frequency", "information gain", "random")
# The two AOPC scores and the sign that makes "larger is more faithful".
SUMMARIES = {"comprehensiveness": 1.0, "sufficiency": -1.0}
# How far a partial sentence's embedding is from the full one's: the curves' column and the gap it gives.
MEASURES = {"cosine": "1 - cosine", "euclidean": "||f(x_S) - f(x)|| / ||f(x) - f(x_0)||"}
# Comparisons that need no attribution: (order, rival), in the same family as the methods' (issue 40).
ATTRIBUTION_FREE = (("information gain", "frequency"),)
ORACLE = "oracle"  # the greedy order of each measure and direction (removal_curves)
# Bump when what this module computes for the same inputs changes: it is part of the cache keys.
# 3: Euclidean curves and the greedy oracles.
ALGORITHM_VERSION = 3


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


def _gaps(vectors: np.ndarray, full: np.ndarray, empty: np.ndarray) -> dict[str, np.ndarray]:
    """Each measure's gap between partial embeddings `vectors` and the full sentence's (:data:`MEASURES`)."""
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(full)
    cosine = (vectors @ full) / np.where(norms > 0, norms, 1.0)
    scale = float(np.linalg.norm(full - empty)) or 1.0
    return {"cosine": 1 - cosine, "euclidean": np.linalg.norm(vectors - full, axis=1) / scale}


def _greedy_orders(gaps_of, n: int) -> dict[tuple[str, str], list[int]]:
    """The greedy oracle's order of `n` words for every measure and direction, the four searches in step.

    Deletion removes, at each step, the word whose removal raises the measure's
    gap most; insertion keeps, at each step, the word whose return lowers it most
    (the removed set is the words not yet kept).  `gaps_of` maps a list of
    removed sets to their gaps by measure (:func:`_gaps`); each step scores the
    candidates of all four searches in one call.
    """
    runs: dict[tuple[str, str], list[int]] = {(m, d): [] for m in MEASURES for d in ("deletion", "insertion")}
    for _ in range(n):
        candidates = {}
        for (measure, direction), chosen in runs.items():
            left = [w for w in range(n) if w not in chosen]
            candidates[(measure, direction)] = (left, [frozenset(chosen + [w]) if direction == "deletion"
                                                       else frozenset(set(left) - {w}) for w in left])
        states = list(dict.fromkeys(state for _, listed in candidates.values() for state in listed))
        gaps, where = gaps_of(states), {state: i for i, state in enumerate(states)}
        for (measure, direction), (left, listed) in candidates.items():
            scores = gaps[measure][[where[state] for state in listed]]
            runs[(measure, direction)].append(left[int(np.argmax(scores) if direction == "deletion"
                                                       else np.argmin(scores))])
    return runs


def removal_curves(encoder: Encoder, text: str, orders: dict, baseline: str = "pad", removals=REMOVALS,
                   batch_size: int = 128, oracle: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
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
    oracle
        Also follow the greedy oracle of each measure and direction (order
        ``"oracle|MEASURE"``; its curve is of that direction only).  It costs
        up to W²/2 more embeddings per measure and direction (2 W² for the four
        searches), each step's candidates of all four in one batch, states
        shared with the other orders computed once.

    Returns
    -------
    curves
        One row per removal, order, direction (``"deletion"``, ``"insertion"``)
        and step ``k`` (0 ... W): ``fraction`` = k / W, ``cosine`` to the full
        sentence's embedding and ``distance``, the Euclidean distance to it over
        that of the sentence with every word removed (:data:`MEASURES`).
    leave_one_out
        One row per removal and word: ``word_index`` and ``drop`` = 1 - cosine
        with that word alone removed.
    """
    prepared = prepare(encoder, text, baseline)
    words = list(prepared.word_index)
    n = len(words)
    position = {w: k for k, w in enumerate(words)}
    for name, order in orders.items():
        if sorted(order) != sorted(words):
            raise ValueError(f"order {name!r} of {text[:40]!r} is not a permutation of its words {words} "
                             f"({encoder.name}'s tokens cover these): got {list(order)}")
    # Every distinct set of removed words (as positions among the prepared words), each run once.
    plans = []
    for name, order in orders.items():
        ranked = [position[w] for w in order]
        for k in range(n + 1):
            plans.append((name, "deletion", k, frozenset(ranked[:k])))
            plans.append((name, "insertion", k, frozenset(ranked[k:])))
    singles = [frozenset([k]) for k in range(n)]
    everything = frozenset(range(n))
    owned = prepared.owned_tokens()
    curves, drops = [], []
    for removal in removals:
        if removal not in REMOVALS:
            raise ValueError(f"unknown removal {removal!r}: choose among {REMOVALS}")
        embedded: dict[frozenset, np.ndarray] = {}

        def embed(states, removal=removal, embedded=embedded):
            missing = list(dict.fromkeys(s for s in states if s not in embedded))
            if missing:
                if removal == "baseline":
                    vectors = _baseline_embeddings(encoder, prepared, missing, owned, batch_size)
                else:
                    vectors = encoder.encode([_remove_text(text, prepared.spans, s) for s in missing], batch_size)
                embedded.update(zip(missing, np.asarray(vectors, dtype=float)))
            return np.stack([embedded[s] for s in states])

        embed(list(dict.fromkeys([frozenset(), everything] + [p[3] for p in plans] + singles)))
        full, empty = embedded[frozenset()], embedded[everything]
        named = list(plans)
        if oracle and n > 0:
            greedy = _greedy_orders(lambda states: _gaps(embed(states), full, empty), n)
            for (measure, direction), ranked in greedy.items():
                for k in range(n + 1):
                    state = frozenset(ranked[:k]) if direction == "deletion" else frozenset(ranked[k:])
                    named.append((f"{ORACLE}|{measure}", direction, k, state))
        states = list(dict.fromkeys(p[3] for p in named))
        gaps = _gaps(embed(states), full, empty)
        where = {state: i for i, state in enumerate(states)}
        curves += [(removal, name, direction, k, k / n, float(1 - gaps["cosine"][where[state]]),
                    float(gaps["euclidean"][where[state]])) for name, direction, k, state in named]
        single = _gaps(embed(singles), full, empty)["cosine"] if n else []
        drops += [(removal, words[k], float(single[k])) for k in range(n)]
    return (pd.DataFrame(curves, columns=["removal", "order", "direction", "k", "fraction", "cosine", "distance"]),
            pd.DataFrame(drops, columns=["removal", "word_index", "drop"]))


# The curves' column behind each measure, and how it becomes a gap (larger: further from the full sentence).
_GAP_OF = {"cosine": ("cosine", lambda c: 1 - c), "euclidean": ("distance", lambda d: d)}


def summarise(curves: pd.DataFrame) -> pd.DataFrame:
    """AOPC-style comprehensiveness and sufficiency of every curve and measure, over the steps where orders can differ.

    Comprehensiveness is the mean gap (``1 - cos``, or the normalised Euclidean
    distance: :data:`MEASURES`) after deleting the first k words, sufficiency the
    mean gap keeping only the first k, both over k = 1 ... W-1: at k = 0 and
    k = W every order gives the same input (the full sentence, or all words
    removed), whose constant would only dilute the differences between orders
    and add each model's own endpoint.  A sentence of one word has no such step:
    NaN.  `curves` has the columns of :func:`removal_curves` (a table without
    ``distance`` gives the cosine measure only) plus any identifying columns
    (``model``, ``dataset``, ``sentence``, ...), which are kept; one row per
    order and ``measure``.
    """
    values = [c for c, _ in _GAP_OF.values()]
    keys = [c for c in curves.columns if c not in ("direction", "k", "fraction", *values)]
    tables = []
    for measure, (column, gap_of) in _GAP_OF.items():
        if column not in curves.columns:
            continue
        gap = curves.assign(gap=gap_of(curves[column]))
        length = gap.groupby(keys, sort=False)["k"].transform("max")
        inner = gap[(gap["k"] > 0) & (gap["k"] < length)]
        means = inner.groupby([*keys, "direction"], sort=False)["gap"].mean().unstack("direction")
        table = gap[keys].drop_duplicates().set_index(keys)
        table["comprehensiveness"] = means.get("deletion")
        table["sufficiency"] = means.get("insertion")
        tables.append(table.reset_index().assign(measure=measure))
    return pd.concat(tables, ignore_index=True)


def normalised_aopc(summary: pd.DataFrame, by=("model", "removal", "measure")) -> pd.DataFrame:
    """Every order's AOPC on the scale ``(order - random) / (oracle - random)``: 0 is chance, 1 the greedy oracle.

    Means over sentences first (a ratio of per-sentence differences is unstable
    where the oracle barely beats random), each score against its own measure's
    oracle (``"oracle|MEASURE"`` orders of :func:`removal_curves`), over the
    sentences that have all three.  One row per group of `by`, order and score:
    ``aopc`` (the order's mean), ``random``, ``oracle`` and ``normalised``.
    Sufficiency's signs cancel in the ratio: lower is better for all three.
    """
    by = list(by)
    rows = []
    for key, group in summary.groupby(by, sort=False):
        key = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        oracle = group[group["order"] == f"{ORACLE}|{key.get('measure', 'cosine')}"]
        per = group[~group["order"].str.startswith(ORACLE)]
        mean = per.groupby(["sentence", "order"], sort=False)[list(SUMMARIES)].mean().unstack("order")
        best = oracle.groupby("sentence")[list(SUMMARIES)].mean()
        for score in SUMMARIES:
            if ("random" not in mean[score]) or best.empty:
                continue
            table = mean[score].join(best[score].rename(ORACLE), how="inner").dropna()
            low, high = table["random"].mean(), table[ORACLE].mean()
            for order in mean[score].columns:
                if order == "random":
                    continue
                value = table[order].mean()
                rows.append({**key, "order": order, "score": score, "aopc": value, "random": low, "oracle": high,
                             "normalised": (value - low) / (high - low) if high != low else np.nan,
                             "sentences": len(table)})
    return pd.DataFrame(rows)


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


def _advantages(summary: pd.DataFrame, comparisons) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per sentence, each order's score minus its rival's, signed so that positive means more faithful.

    `comparisons` lists ``(order, rival)`` pairs; one member per model x
    removal x measure x pair x score that the summary has.  The oracles are no
    members: they are the scale of :func:`normalised_aopc`.
    """
    if "measure" not in summary.columns:
        summary = summary.assign(measure="cosine")
    summary = summary[~summary["order"].str.startswith(ORACLE)]
    keys = ["model", "removal", "measure", "dataset", "sentence"]
    mean = summary.groupby([*keys, "order"], sort=False)[list(SUMMARIES)].mean()  # random: the mean of its draws
    wide = mean.unstack("order")
    members, columns = [], []
    for model, removal, measure in wide.index.droplevel(["dataset", "sentence"]).unique():
        rows = wide.xs((model, removal, measure), level=["model", "removal", "measure"])
        for order, rival in comparisons:
            for name, sign in SUMMARIES.items():
                if (name, order) not in rows or (name, rival) not in rows:
                    continue
                values = sign * (rows[(name, order)] - rows[(name, rival)])
                members.append({"model": model, "method": order, "removal": removal, "measure": measure,
                                "rival": rival, "summary": name})
                columns.append(values.rename(len(members) - 1))
    per_sentence = pd.concat(columns, axis=1) if columns else pd.DataFrame()
    return pd.DataFrame(members), per_sentence


def _studentised(weights: np.ndarray, filled: np.ndarray, present: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """(F, m) one-sample t of every member for each row of unit weights `weights` (F, units).

    A row of signs is a sign flip (each unit's square unchanged); a row of
    counts a bootstrap resample (a unit drawn twice counts twice).
    ``se = sqrt((sum x^2 - n mean^2) / (n (n - 1)))``.
    """
    counts = np.abs(weights)
    n = counts @ present
    with np.errstate(divide="ignore", invalid="ignore"):
        means = (weights @ filled) / n
        spread = np.maximum(counts @ squares - n * means**2, 0.0) / (n * np.maximum(n - 1, 1))
        return np.where((spread > 0) & (n > 1), means / np.sqrt(spread), np.nan)


def _largest(t: np.ndarray) -> np.ndarray:
    """The largest |t| of each row; a member without spread (NaN t) cannot be off 0, so counts as 0."""
    return np.where(np.isfinite(t), np.abs(t), 0.0).max(axis=1)


def _resample_counts(rng: np.random.Generator, draws: int, units: int) -> np.ndarray:
    """(draws, units) how often each unit is drawn in each of `draws` bootstrap resamples of `units` units."""
    picks = rng.integers(0, units, (draws, units)) + units * np.arange(draws)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * units).reshape(draws, units).astype(float)


def _critical(filled: np.ndarray, present: np.ndarray, draws: int, level: float, rng: np.random.Generator
              ) -> tuple[float, float]:
    """The `level` quantiles of the largest |t| under random sign flips and under centred bootstrap resamples.

    Sign flips are exact where each unit's differences are symmetric about 0;
    the bootstrap of the differences centred on their means (a bootstrap-t)
    keeps their skew, which sign flips ignore.  The rule uses the larger.
    """
    units = len(filled)
    squares = filled**2
    flips = _studentised(rng.choice([-1.0, 1.0], size=(draws, units)), filled, present.astype(float), squares)
    n = present.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = np.where(present, filled - np.where(n > 0, filled.sum(0) / n, 0.0), 0.0)
    boots = _studentised(_resample_counts(rng, draws, units), centred, present.astype(float), centred**2)
    return float(np.quantile(_largest(flips), level)), float(np.quantile(_largest(boots), level))


def sign_flip_family(members: pd.DataFrame, per_sentence: pd.DataFrame, flips: int = 5000, seed: int = 0,
                     level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Test a family of paired differences, one column per member, as one: a max-t rule with two references.

    Parameters
    ----------
    members
        One row per column of `per_sentence`, describing it.
    per_sentence
        Index ``(dataset, sentence)``; one column per member: a sentence's
        difference, signed so that positive means "more faithful" (NaN where a
        member lacks the sentence).
    flips, seed, level
        Random sign flips (and as many bootstrap resamples), their seed, and the
        family's joint coverage (its family-wise error is ``1 - level``).

    Notes
    -----
    The unit is a distinct sentence (:func:`cwi.data.normalise_sentence`: a
    sentence two datasets share counts once).  If no member differs from 0 and a
    sentence's differences are symmetric about 0, flipping their signs changes
    nothing: the `level` quantile of the largest absolute one-sample t over
    random flips (one per sentence, shared by all members, which keeps their
    dependence) is an exact critical value.  An order set against the mean of
    several random orders is skewed, not symmetric, and sign flips alone ran
    over the nominal rate on the default profile's data (6.6 % of 1,000 null
    data sets, 2026-12-07); so the critical value c is the larger of the flips'
    quantile and that of a bootstrap-t (the sentences resampled from their
    differences centred on their means), as the Correlations chapter takes the
    larger of a permutation and a bootstrap.  A member whose own |t| exceeds c is off 0; the intervals
    ``mean +- c se`` agree with the decisions.  :func:`sign_flip_null` measures
    the whole rule's family-wise error on a null that keeps the data's shape.

    Returns
    -------
    table
        `members` with ``estimate`` (the mean over sentences), ``low`` and
        ``high`` (simultaneous), ``verdict`` (:func:`cwi.analysis.verdict`:
        ``"more"`` means more faithful) and ``sentences``.
    state
        What :func:`sign_flip_null` needs, and ``critical_flips`` and
        ``critical_bootstrap``, the two quantiles ``critical`` is the larger of.
    """
    from .data import normalise_sentence

    text = per_sentence.index.get_level_values("sentence").map(normalise_sentence)
    units = per_sentence.groupby(text.to_numpy(), sort=True).mean()  # the same sentence's scores are equal
    values = units.to_numpy(float)
    present = np.isfinite(values)
    filled = np.where(present, values, 0.0)
    n = present.sum(0).astype(float)
    observed = _studentised(np.ones((1, len(values))), filled, present.astype(float), filled**2)[0]
    by_flips, by_bootstrap = _critical(filled, present, flips, level, np.random.default_rng(seed))
    critical = max(by_flips, by_bootstrap)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimates = filled.sum(0) / n
        se = np.where(np.isfinite(observed) & (observed != 0), estimates / observed, np.nan)
    low, high = estimates - critical * se, estimates + critical * se
    table = members.reset_index(drop=True).assign(
        estimate=estimates, low=low, high=high, sentences=n.astype(int),
        verdict=[verdict(lo, hi) if np.isfinite(lo) else "unclear" for lo, hi in zip(low, high)])
    return table, {"filled": filled, "present": present, "estimates": estimates, "critical": critical,
                   "critical_flips": by_flips, "critical_bootstrap": by_bootstrap, "level": level}


def compare_orders(summary: pd.DataFrame, methods, rivals=RIVALS, flips: int = 5000, seed: int = 0,
                   level: float = 0.95, attribution_free=ATTRIBUTION_FREE) -> tuple[pd.DataFrame, dict]:
    """Each method's order against each rival on the same sentences, tested as one family (:func:`sign_flip_family`).

    `summary` holds :func:`summarise` rows with ``model``, ``removal``,
    ``measure``, ``dataset``, ``sentence``, ``order`` and ``draw``.  One member
    per model x order x removal x measure x rival x score, for each method's
    order against each of `rivals` and for the `attribution_free` pairs (by
    default the information-gain order against the frequency order, which
    needs no attribution: :data:`ATTRIBUTION_FREE`); the member's ``method``
    column names its order.  Its ``estimate`` is the mean advantage of the
    order over the rival's (the rival's score minus the order's for
    sufficiency), positive when the order is more faithful.  Against random
    orders the rival is the mean of several draws, so the sign symmetry of no
    difference holds only approximately.
    """
    comparisons = [(method, rival) for method in methods for rival in rivals] + list(attribution_free)
    members, per_sentence = _advantages(summary, comparisons)
    if members.empty:
        raise ValueError("no method order with a rival order on the same sentences: nothing to compare")
    return sign_flip_family(members, per_sentence, flips, seed, level)


def compare_models(summary: pd.DataFrame, pairs: dict, methods, flips: int = 5000, seed: int = 0,
                   level: float = 0.95, attribution_free=ATTRIBUTION_FREE) -> tuple[pd.DataFrame, dict]:
    """Fine-tuned against pre-trained: does an order beat its rival by more after fine-tuning?

    `pairs` maps a pair's name to ``(pretrained, finetuned)`` model names.  One
    member per pair x comparison x removal x measure x score, on the sentences
    both models have: each method's advantage over random orders
    (:func:`compare_orders`' signs), and each `attribution_free` order's over
    its rival, for the fine-tuned model minus that for the pre-trained one.
    Raw scores would not do: a pre-trained encoder's embeddings are anisotropic,
    so every cosine is near 1 and any order, random ones included, scores low;
    the advantage over another order of the same model removes that geometry.
    Tested as one family (:func:`sign_flip_family`).
    """
    comparisons = [(method, "random") for method in methods] + list(attribution_free)
    members, advantage = _advantages(summary, comparisons)
    if members.empty:
        raise ValueError("no method order with random orders on the same sentences: nothing to compare")
    fields = ["model", "method", "rival", "removal", "measure", "summary"]
    column = {tuple(row): number for number, row in enumerate(members[fields].itertuples(index=False))}
    rows, columns = [], []
    for (pair, (pretrained, finetuned)), (method, rival), removal, measure, name in product(
            pairs.items(), comparisons, members["removal"].unique(), members["measure"].unique(), SUMMARIES):
        pre, fine = (column.get((model, method, rival, removal, measure, name)) for model in (pretrained, finetuned))
        if pre is None or fine is None:
            continue
        rows.append({"pair": pair, "method": method, "rival": rival, "removal": removal, "measure": measure,
                     "summary": name})
        columns.append((advantage[fine] - advantage[pre]).rename(len(rows) - 1))
    if not rows:
        raise ValueError("no pair has both its models' curves: nothing to compare")
    return sign_flip_family(pd.DataFrame(rows), pd.concat(columns, axis=1), flips, seed, level)


def on_grid(curves: pd.DataFrame, points: int = 11, column: str = "cosine") -> pd.DataFrame:
    """Each curve's `column` (``cosine`` or ``distance``) read at `points` equally spaced fractions of its words.

    Sentences have different numbers of words; on a common grid of the fraction
    removed (or kept) their curves can be averaged (linear between steps).
    Keeps the identifying columns (every column but ``k``, ``fraction``,
    ``cosine`` and ``distance``); adds ``fraction`` (the grid) and `column`.
    """
    grid = np.linspace(0, 1, points)
    keys = [c for c in curves.columns if c not in ("k", "fraction", "cosine", "distance")]
    rows = []
    for key, group in curves.groupby(keys, sort=False):
        ordered = group.sort_values("fraction")
        rows += [(*key, f, c) for f, c in zip(grid, np.interp(grid, ordered["fraction"], ordered[column]))]
    return pd.DataFrame(rows, columns=[*keys, "fraction", column])


def sign_flip_null(state: dict, simulations: int, seed: int, flips: int = 1000) -> int:
    """How many of `simulations` data sets with no effect, but the data's own shape, get some member off 0.

    Each simulation resamples the sentences, with replacement, from the
    observed differences centred on their means (every member's mean is then 0
    while its spread, skew and the members' dependence are the data's), and
    applies :func:`sign_flip_family`'s whole rule to it, with a critical value
    of its own (the larger of `flips` sign flips' and as many centred bootstrap
    resamples' quantiles: a double bootstrap).  The count over `simulations`
    estimates the rule's family-wise false-positive rate where the symmetry the
    flips assume need not hold (:func:`cwi.inference.calibration_status` reads it).
    """
    rng = np.random.default_rng(seed)
    present = state["present"]
    centred = np.where(present, state["filled"] - state["estimates"], 0.0)
    units = len(centred)
    said = 0
    for _ in range(simulations):
        drawn = rng.integers(0, units, units)
        filled, here = centred[drawn], present[drawn]
        observed = _studentised(np.ones((1, units)), filled, here.astype(float), filled**2)[0]
        critical = max(_critical(filled, here, flips, state["level"], rng))
        said += bool(_largest(observed[None])[0] > critical)
    return said
