"""cwi.faithfulness: deletion and insertion curves, rival orders, and the comparison's error rate."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import hub_models
from cwi import attribution, encoders, faithfulness, inference, stats


class OrthogonalWords(torch.nn.Module):
    """f(x) = sum of token embeddings; each token id its own orthogonal direction, scaled by `scales`.

    With the zero baseline, removing a set S of words leaves ``f = sum_{w not in S} c_w``
    with orthogonal c_w, so ``cos(f(x without S), f(x)) = ||f_rest|| / ||f||``:
    removing the largest ||c_w|| first is the maximal deletion curve, and
    Integrated Gradients is exact (c_w itself).
    """

    def __init__(self, vocab_size: int, scales: dict[int, float]):
        super().__init__()
        dim = len(scales)
        self.embeddings = torch.nn.Embedding(vocab_size, dim)
        with torch.no_grad():
            self.embeddings.weight.zero_()  # special tokens and unknown ids add nothing
            for j, (token, scale) in enumerate(scales.items()):
                self.embeddings.weight[token, j] = scale
        self.config = SimpleNamespace(hidden_size=dim)

    def get_input_embeddings(self):
        return self.embeddings

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None):
        inputs = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        return SimpleNamespace(last_hidden_state=inputs)


SENTENCE = "the quick brown fox jumps over a lazy dog"


@pytest.fixture(scope="module")
def orthogonal(tiny_encoder):
    tokenizer = tiny_encoder.tokenizer
    ids = tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    assert len(set(ids)) == len(ids) == len(SENTENCE.split())  # one token per word, all distinct
    scales = {token: float(s) for token, s in zip(ids, [3, 1, 4, 1.5, 5, 9, 2, 6, 2.5])}
    # Sum pooling would be exact too; mean pooling only rescales, which the cosine ignores.
    return encoders.Encoder(OrthogonalWords(tokenizer.vocab_size, scales), tokenizer, "mean", "orthogonal"), scales


def test_the_attribution_order_is_the_maximal_deletion_curve_of_a_linear_model(orthogonal):
    encoder, scales = orthogonal
    weights = attribution.word_weights(encoder, [SENTENCE], "ig", baseline="zero", points=3)
    assert np.allclose(weights["weight"], np.array(list(scales.values())) / (len(scales) + 2), rtol=1e-5)
    index = weights["word_index"].tolist()
    order = faithfulness.attribution_order(index, weights["weight"])
    assert order == sorted(index, key=lambda w: -list(scales.values())[w])  # matches the weights exactly
    rng = np.random.default_rng(0)
    orders = {"ig": order, "reverse": order[::-1]} | {f"random {d}": o for d, o in
                                                     enumerate(faithfulness.random_orders(index, 20, rng))}
    curves, drops = faithfulness.removal_curves(encoder, SENTENCE, orders, baseline="zero", removals=("baseline",))
    deletion = curves[curves["direction"] == "deletion"].pivot(index="k", columns="order", values="cosine")
    squares = np.array(sorted(scales.values(), reverse=True)) ** 2
    expected = np.sqrt(np.concatenate([[squares.sum()], squares.sum() - np.cumsum(squares)]) / squares.sum())
    assert np.allclose(deletion["ig"], expected, atol=1e-6)  # ||f_rest|| / ||f||
    assert (deletion["ig"].to_numpy()[:, None] <= deletion.to_numpy() + 1e-6).all()  # no order falls faster
    # Euclidean: ||f(x_S) - f(x)|| / ||f(x) - f(x_0)|| = sqrt(sum over removed s_w^2 / sum s_w^2), in closed form.
    distance = curves[curves["direction"] == "deletion"].pivot(index="k", columns="order", values="distance")
    assert np.allclose(distance["ig"], np.sqrt(np.concatenate([[0], np.cumsum(squares)]) / squares.sum()), atol=1e-6)
    insertion = curves[curves["direction"] == "insertion"].pivot(index="k", columns="order", values="distance")
    kept = np.concatenate([[squares.sum()], squares.sum() - np.cumsum(squares)])
    assert np.allclose(insertion["ig"], np.sqrt(kept / squares.sum()), atol=1e-6)
    # With orthogonal words the greedy oracle of either measure takes the largest word first: IG's order.
    for measure in faithfulness.MEASURES:
        oracle = curves[(curves["order"] == f"oracle|{measure}")]
        assert set(oracle["direction"]) == {"deletion", "insertion"}
        for direction, column in (("deletion", "cosine"), ("insertion", "distance")):
            mine = curves[(curves["order"] == "ig") & (curves["direction"] == direction)].set_index("k")[column]
            theirs = oracle[oracle["direction"] == direction].set_index("k")[column]
            assert np.allclose(mine, theirs, atol=1e-6)
    summaries = faithfulness.summarise(curves.assign(model="linear", dataset="d", sentence=SENTENCE))
    scaled = faithfulness.normalised_aopc(summaries.replace({"order": {f"random {d}": "random" for d in range(20)}}))
    ig_scaled = scaled[scaled["order"] == "ig"]
    assert len(ig_scaled) == 4 and np.allclose(ig_scaled["normalised"], 1.0)  # IG is the oracle here
    assert (scaled.loc[scaled["order"] == "reverse", "normalised"] < 0).all()  # worse than chance
    summary = faithfulness.summarise(curves).query("measure == 'cosine'").set_index("order")
    randoms = summary.loc[summary.index.str.startswith("random"), "comprehensiveness"]
    assert (summary.loc["ig", "comprehensiveness"] > randoms).all()
    assert summary.loc["ig", "comprehensiveness"] > summary.loc["reverse", "comprehensiveness"]
    assert (summary.loc["ig", "sufficiency"] < randoms.pipe(lambda _: summary.loc[randoms.index, "sufficiency"])).all()
    # Leave one out: the drop grows with the weight, so their ranks agree perfectly.
    tau = faithfulness.kendall_by_sentence(weights.assign(sentence=SENTENCE), drops.assign(sentence=SENTENCE),
                                           ["sentence"])
    assert tau["tau"].iloc[0] == pytest.approx(1.0)


@pytest.mark.parametrize("removal", faithfulness.REMOVALS)
def test_all_removed_is_the_baseline_and_all_inserted_is_the_sentence(tiny_encoder, removal):
    from cwi import inputs

    text = "A man is playing a large flute."
    prepared = inputs.prepare(tiny_encoder, text, "pad")
    index = list(prepared.word_index)
    curves, _ = faithfulness.removal_curves(tiny_encoder, text, {"left": index, "right": index[::-1]},
                                            removals=(removal,))
    full = curves[(curves["direction"] == "insertion") & (curves["k"] == len(index))]
    assert np.allclose(full["cosine"], 1.0, atol=1e-6)
    with torch.no_grad():
        mask = torch.ones(1, prepared.length, dtype=torch.long)
        reference = tiny_encoder.forward(attention_mask=mask, inputs_embeds=prepared.inputs[None])[0].numpy()
        if removal == "baseline":  # exactly the methods' baseline input
            empty = tiny_encoder.forward(attention_mask=mask, inputs_embeds=prepared.baseline[None])[0].numpy()
        else:  # the empty sentence
            empty, reference = tiny_encoder.encode([""])[0], tiny_encoder.encode([text])[0]
    expected = empty @ reference / np.linalg.norm(empty) / np.linalg.norm(reference)
    ends = curves[((curves["direction"] == "deletion") & (curves["k"] == len(index)))
                  | ((curves["direction"] == "insertion") & (curves["k"] == 0))]
    assert len(ends) == 8 and np.allclose(ends["cosine"], expected, atol=1e-5)  # two orders, two oracles
    assert np.allclose(ends["distance"], 1.0)  # every word removed: the distance's own scale
    start = curves[(curves["direction"] == "deletion") & (curves["k"] == 0)]
    assert np.allclose(start["cosine"], 1.0, atol=1e-6)


def test_text_and_baseline_removal_differ_where_a_removal_respells_a_neighbour(tmp_path):
    """Byte-level BPE spells a word after a space ("Ġdog") apart from a sentence's first word ("dog")."""
    tokenizer = hub_models.roberta_tokenizer(hub_models.sentences(500), tmp_path / "bpe", vocab_size=600)
    text = "A dog runs home"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    first = tokenizer("dog runs home", add_special_tokens=False)["input_ids"]
    assert first[0] != ids[1] and first[1:] == ids[2:]  # removing "A" respells "dog"
    rng = np.random.default_rng(1)
    encoder = encoders.Encoder(OrthogonalWords(len(tokenizer), {t: float(s) for t, s in
                                                                 zip(sorted(set(ids + first)), rng.uniform(1, 2, 9))}),
                               tokenizer, "mean", "bag")
    _, drops = faithfulness.removal_curves(encoder, text, {"left": [0, 1, 2, 3]}, baseline="zero")
    drop = drops.pivot(index="word_index", columns="removal", values="drop")
    assert drop.loc[0, "text"] != pytest.approx(drop.loc[0, "baseline"], abs=1e-4)  # "A": "dog" respelled
    assert np.allclose(drop.loc[[1, 2, 3], "text"], drop.loc[[1, 2, 3], "baseline"], atol=1e-6)  # same tokens kept


def test_text_removal_leaves_no_glued_neighbours():
    text = "a well-known fact."
    spans = [(start, end) for _, start, end in stats.word_spans(text)]
    hyphen = [text[start:end] for start, end in spans].index("-")
    assert faithfulness._remove_text(text, spans, {hyphen}) == "a well known fact."
    assert faithfulness._remove_text(text, spans, set(range(len(spans)))) == ""


def test_rival_orders_are_deterministic(tiny_encoder):
    assert faithfulness.frequency_order([0, 1, 2, 3], [50, np.nan, 50, 7]) == [1, 3, 0, 2]  # absent counts 0; ties by position
    status = ["ok", "absent", "ok", "ok", "no context", "rare"]
    # Unusable words lead (rarest first) or, seen only alone, come last; usable ones by gain; ties by position here.
    assert faithfulness.gain_order([0, 1, 2, 3, 4, 5], [0.2, np.nan, 0.9, 0.2, np.nan, 5.0], [10, 3, 5, 4, 50, 8],
                                   status) == [1, 5, 2, 0, 3, 4]
    assert faithfulness.frequency_order([0, 1, 2], [5, 5, 5], tie_break=[2, 0, 1]) == [1, 2, 0]  # ties at random
    assert faithfulness.attribution_order([4, 5, 6], [0.5, 0.7, 0.5]) == [5, 4, 6]
    words = pd.DataFrame({"dataset": "d", "sentence": "s", "method": ["ig", "ig", "shap", "shap"],
                          "word_index": [0, 1, 0, 1], "weight": [1.0, 2.0, 3.0, 1.0], "count": [5, 9, 5, 9],
                          "information_gain": [0.1, 0.3, 0.1, 0.3], "status": "ok"})
    orders = faithfulness.word_orders(words, ["ig", "shap"], random_draws=2, seed=0).set_index(["order", "draw"])
    assert orders.loc[("ig", 0), "words"] == (1, 0) and orders.loc[("shap", 0), "words"] == (0, 1)
    assert orders.loc[("frequency", 0), "words"] == (0, 1) and orders.loc[("information gain", 0), "words"] == (1, 0)
    again = faithfulness.word_orders(words, ["ig", "shap"], random_draws=2, seed=0).set_index(["order", "draw"])
    assert again["words"].equals(orders["words"])
    with pytest.raises(ValueError, match="not a permutation"):
        faithfulness.removal_curves(tiny_encoder, "two words", {"bad": [0, 0]})


def synthetic_summary(advantage: float, n_sentences: int = 40, seed: int = 0) -> pd.DataFrame:
    """Per-sentence AOPC scores of one model whose IG order beats its rivals by `advantage` on average."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sentences):
        base = rng.uniform(0.2, 0.4)
        for order in ("ig", "frequency", "information gain"):
            bonus = advantage if order == "ig" else 0.0
            rows.append(("m", "baseline", f"d{s % 2}", f"sentence {s}", order, 0,
                         base + bonus + rng.normal(0, 0.05), base - bonus + rng.normal(0, 0.05)))
        rows += [("m", "baseline", f"d{s % 2}", f"sentence {s}", "random", d, base + rng.normal(0, 0.05),
                  base + rng.normal(0, 0.05)) for d in range(3)]
    return pd.DataFrame(rows, columns=["model", "removal", "dataset", "sentence", "order", "draw",
                                       "comprehensiveness", "sufficiency"])


def test_compare_orders_finds_a_planted_advantage_and_its_null_is_calibrated():
    family, state = faithfulness.compare_orders(synthetic_summary(0.05), ["ig"], flips=2000, seed=0)
    assert state["critical"] == max(state["critical_flips"], state["critical_bootstrap"])
    table = family[family["method"] == "ig"]
    assert len(table) == 6 and (table["verdict"] == "more").all() and (table["low"] > 0).all()
    assert (table["estimate"] - 0.05).abs().max() < 0.02  # the planted advantage, on both summaries
    assert table["sentences"].eq(40).all()
    # The attribution-free member (information gain against frequency) is in the same family, with no effect.
    free = family[family["method"] == "information gain"]
    assert len(free) == 2 and set(free["rival"]) == {"frequency"} and (free["verdict"] == "unclear").all()
    # As many sentences as the default profile's curves have (20 from each of 7 datasets).
    null_table, null_state = faithfulness.compare_orders(synthetic_summary(0.0, n_sentences=140, seed=3), ["ig"],
                                                         flips=2000, seed=0)
    assert (null_table["verdict"] == "unclear").mean() >= 0.5
    said = faithfulness.sign_flip_null(null_state, 400, seed=1, flips=500)
    status, low, high = inference.calibration_status(said, 400, 0.95)
    assert status != "above"  # the rule keeps its family-wise error on a null with the data's shape


def test_the_calibrated_critical_value_holds_its_rate_on_skewed_null_advantages():
    """Skewed, dependent differences with mean 0: sign flips alone call too often; the larger critical value does not."""
    rng = np.random.default_rng(0)
    n, members, simulations = 140, 8, 400  # the default profile's curves have 140 sentences
    index = pd.MultiIndex.from_arrays([["d"] * n, [f"s{j}" for j in range(n)]], names=["dataset", "sentence"])
    flips_only = calibrated = 0
    for i in range(simulations):
        shared = rng.lognormal(0, 1, (n, 1))
        values = 0.5 * rng.lognormal(0, 1, (n, members)) + shared - 1.5 * np.exp(0.5)  # every mean exactly 0
        table, state = faithfulness.sign_flip_family(pd.DataFrame({"member": range(members)}),
                                                     pd.DataFrame(values, index=index), flips=1000, seed=i)
        t = table["estimate"] / ((table["high"] - table["low"]) / (2 * state["critical"]))
        flips_only += bool((t.abs() > state["critical_flips"]).any())
        calibrated += bool((table["verdict"] != "unclear").any())
    assert inference.calibration_status(flips_only, simulations, 0.95)[0] == "above"
    assert inference.calibration_status(calibrated, simulations, 0.95)[0] != "above"


def test_a_sentence_shared_by_two_datasets_counts_once():
    summary = synthetic_summary(0.05, n_sentences=10)
    copy = summary.assign(dataset="elsewhere", sentence=summary["sentence"].str.upper() + "!")  # the same, normalised
    table, _ = faithfulness.compare_orders(pd.concat([summary, copy]), ["ig"], flips=500)
    assert table["sentences"].eq(10).all()


@pytest.mark.filterwarnings("ignore:SHAP used all")  # a small budget, to keep the test quick
def test_curves_are_cached_and_keyed_by_the_orders(tiny_encoder, data_dir, monkeypatch):
    from cwi import config, pipeline

    profile = config.get_profile("smoke")
    frames = []
    for dataset in profile.attribution.datasets:
        sample = pipeline.word_weight_sample("tiny", dataset, profile, profile.faithfulness.sentences_per_dataset)
        for method, options in (("ig", {"points": 3}), ("shap", {"max_evals": 50})):
            table = attribution.word_weights(tiny_encoder, sample, method, **options)
            frames.append(table.assign(model="tiny", dataset=dataset, method=method,
                                       sentence=[sample[i] for i in table["sentence_id"]]))
    words = pd.concat(frames, ignore_index=True)
    words = words.assign(count=words["word"].str.len() * 10.0, information_gain=words["word"].str.len() / 10,
                         status="ok")
    curves, drops = pipeline.faithfulness_curves(profile, words, {"tiny": tiny_encoder})
    sentences = words["sentence"].nunique()
    # Two methods, two rivals and the random draws; an oracle per measure on the first sentences of each dataset.
    per_sentence = 2 + 2 + profile.faithfulness.random_orders
    orders = curves.groupby("sentence")[["order", "draw"]].apply(lambda g: len(g.drop_duplicates()))
    oracle = {s for d in profile.attribution.datasets
              for s in pipeline.word_weight_sample("tiny", d, profile, profile.faithfulness.oracle_sentences)}
    assert len(oracle) == profile.faithfulness.oracle_sentences * len(profile.attribution.datasets)
    assert (orders == per_sentence + np.where(orders.index.isin(oracle), len(faithfulness.MEASURES), 0)).all()
    assert curves["sentence"].nunique() == sentences and set(curves["removal"]) == set(profile.faithfulness.removals)
    assert set(drops["word_index"]) <= set(words["word_index"])

    def recomputed(*args, **kwargs):
        raise AssertionError("a rerun must read the cache")

    monkeypatch.setattr(faithfulness, "removal_curves", recomputed)
    again, _ = pipeline.faithfulness_curves(profile, words, {"tiny": tiny_encoder})
    pd.testing.assert_frame_equal(again, curves)
    changed = words.assign(weight=np.where(words["word_index"] == 0, 1e3, words["weight"]))  # new orders
    with pytest.raises(AssertionError, match="read the cache"):
        pipeline.faithfulness_curves(profile, changed, {"tiny": tiny_encoder})
    more_oracles = dataclasses.replace(profile, faithfulness=dataclasses.replace(profile.faithfulness,
                                                                                   oracle_sentences=2))
    with pytest.raises(AssertionError, match="read the cache"):  # other sentences get an oracle: recomputed
        pipeline.faithfulness_curves(more_oracles, words, {"tiny": tiny_encoder})


def test_compare_models_compares_the_advantage_over_random_orders():
    pre = synthetic_summary(0.0, seed=5).assign(model="pre")
    noise = np.random.default_rng(0).normal(0, 0.01, (2, len(pre)))
    fine = pre.assign(model="fine", sufficiency=pre["sufficiency"] + noise[1],
                      comprehensiveness=pre["comprehensiveness"] + np.where(pre["order"] == "ig", 0.03, 0) + noise[0])
    family, _ = faithfulness.compare_models(pd.concat([pre, fine]), {"pair": ("pre", "fine")}, ["ig"], flips=1000)
    # The attribution-free change (information gain against frequency) is a member of the same family.
    assert set(family.loc[family["method"] == "information gain", "rival"]) == {"frequency"}
    table = family[family["method"] == "ig"].set_index("summary")
    assert table.loc["comprehensiveness", "estimate"] == pytest.approx(0.03, abs=0.005)
    shifted = pd.concat([pre, fine.assign(comprehensiveness=fine["comprehensiveness"] + 0.2)])  # geometry, not order
    moved, _ = faithfulness.compare_models(shifted, {"pair": ("pre", "fine")}, ["ig"], flips=1000)
    assert moved[moved["method"] == "ig"].set_index("summary").loc["comprehensiveness", "estimate"] == pytest.approx(0.03, abs=0.005)
    assert table.loc["comprehensiveness", "verdict"] == "more" and table.loc["sufficiency", "verdict"] == "unclear"


def test_curves_of_different_lengths_average_on_one_grid():
    curves = pd.DataFrame({"sentence": ["a"] * 3 + ["b"] * 5, "k": [0, 1, 2, 0, 1, 2, 3, 4],
                           "fraction": [0, 0.5, 1, 0, 0.25, 0.5, 0.75, 1], "cosine": [1, 0.5, 0, 1, 0.8, 0.6, 0.4, 0.2]})
    grid = faithfulness.on_grid(curves, points=5).pivot(index="fraction", columns="sentence", values="cosine")
    assert grid["a"].tolist() == pytest.approx([1, 0.75, 0.5, 0.25, 0]) and grid["b"].tolist() == pytest.approx(
        [1, 0.8, 0.6, 0.4, 0.2])


def test_the_scores_leave_out_the_steps_every_order_shares():
    curves = pd.DataFrame({"order": ["a"] * 8 + ["b"] * 8, "direction": (["deletion"] * 4 + ["insertion"] * 4) * 2,
                           "k": [0, 1, 2, 3] * 4, "fraction": [0, 1 / 3, 2 / 3, 1] * 4,
                           "cosine": [1, 0.6, 0.4, 0.1, 0.1, 0.5, 0.9, 1, 1, 0.9, 0.5, 0.1, 0.1, 0.2, 0.6, 1]})
    scores = faithfulness.summarise(curves).set_index("order")
    assert scores.loc["a", "comprehensiveness"] == pytest.approx((0.4 + 0.6) / 2)  # k = 1, 2 only
    assert scores.loc["a", "sufficiency"] == pytest.approx((0.5 + 0.1) / 2)
    assert scores.loc["b", "comprehensiveness"] == pytest.approx((0.1 + 0.5) / 2)


def test_the_normalised_score_is_undefined_where_the_oracle_does_no_better_than_chance():
    rows = [("m", "baseline", "cosine", "d", f"s{i}", order, 0, value, value)
            for i in range(3) for order, value in (("ig", 0.3), ("random", 0.2), ("oracle|cosine", 0.2))]
    summary = pd.DataFrame(rows, columns=["model", "removal", "measure", "dataset", "sentence", "order", "draw",
                                          "comprehensiveness", "sufficiency"])
    scaled = faithfulness.normalised_aopc(summary)
    assert scaled["normalised"].isna().all() and set(scaled["order"]) == {"ig"}
    better = summary.assign(comprehensiveness=np.where(summary["order"] == "oracle|cosine", 0.4,
                                                       summary["comprehensiveness"]))
    assert faithfulness.normalised_aopc(better).set_index("score").loc["comprehensiveness", "normalised"] == \
        pytest.approx(0.5)
