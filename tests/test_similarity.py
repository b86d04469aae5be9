"""The cosine of two sentences split into word pairs (cwi.similarity): exact, symmetric, aligned, cached, tested."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from cwi import (analysis, attribution, config, data, encoders, inputs, interactive, models, pipeline, similarity,
                 similarity_references, stats)
from cwi.models import ModelPair

from test_alignment import CASES, FAMILIES, texts, tiny, tokenizers  # noqa: F401 (fixtures)
from test_attribution import BagOfWords
from test_interactive import payload

IG = {"points": (9, 17, 33, 65), "rule": "clenshaw-curtis", "target": 0.01}
PAIR = ("A man is playing a guitar on the stage.", "Someone plays a guitar.")


@pytest.mark.parametrize("family", FAMILIES)
def test_the_terms_sum_to_the_cosine_on_every_tokenizer_family(tiny, family):
    """WordPiece (BERT), MPNet, byte-level BPE (RoBERTa) and SentencePiece: the split adds up to the model's cosine."""
    encoder = tiny[family]
    d = similarity.decompose_sentences(encoder, *PAIR, **IG)
    with torch.no_grad():
        embedded = encoder.forward(**{k: v for k, v in encoder.tokenize(list(PAIR)).items()
                                      if k in ("input_ids", "attention_mask")})
    cosine = torch.nn.functional.cosine_similarity(embedded[0], embedded[1], dim=0).item()
    assert d.score == pytest.approx(cosine, abs=1e-5)  # the score is the model's own cosine
    assert d.error <= d.error_bound + 1e-9 and d.error < 1e-3
    parts = similarity.pair_summary([d]).iloc[0]
    assert parts[list(similarity.TERMS)].sum() == pytest.approx(d.total, abs=1e-12)


def test_the_terms_sum_to_the_cosine_for_all_minilm():
    """all-MiniLM-L6-v2, attributed before its Normalize module as in the Attribution chapter: the cosine is the same."""
    encoder = models.load_encoder("all-MiniLM-L6-v2")
    d = similarity.decompose_sentences(encoder, *PAIR, **IG)
    first, second = encoder.encode(list(PAIR))
    assert d.score == pytest.approx(float(first @ second / np.linalg.norm(first) / np.linalg.norm(second)), abs=1e-4)
    unit = similarity.decompose_sentences(encoders.normalized(encoder), *PAIR, **IG)  # with the Normalize module: N = 1
    assert np.linalg.norm(unit.a.embedding) == pytest.approx(1, abs=1e-5) and unit.score == pytest.approx(d.score, abs=1e-5)
    assert unit.error <= unit.error_bound + 1e-9 and unit.error < 0.01
    assert d.error <= d.error_bound + 1e-9 and d.error < 0.01


def test_a_linear_bag_of_words_gives_the_closed_form(tiny_encoder):
    """On f(x) = W mean_i x_i, word w's vector is W sum_{i in w}(x_i - x'_i) / T exactly: the matrix is known."""
    torch.manual_seed(3)
    linear = encoders.Encoder(BagOfWords(tiny_encoder.tokenizer.vocab_size), tiny_encoder.tokenizer, "mean", "bag")
    first, second = "a linear bag of words", "words in a bag are linear too"
    d = similarity.decompose_sentences(linear, first, second, points=(9, 17), rule="clenshaw-curtis", target=0.01)
    closed = []
    for text in (first, second):
        s = inputs.prepare(linear, text, "pad")
        with torch.no_grad():
            tokens = linear.model.linear(s.inputs - s.baseline) / s.length  # (T, d)
            embedding = linear.model.linear(s.inputs).mean(0)
        closed.append(((s.membership.to(tokens) @ tokens).double().numpy(), embedding.double().numpy()))
    (c_a, f_a), (c_b, f_b) = closed
    norm = np.linalg.norm(f_a) * np.linalg.norm(f_b)
    np.testing.assert_allclose(d.matrix, c_a @ c_b.T / norm, atol=1e-6)
    assert d.score == pytest.approx(f_a @ f_b / norm, abs=1e-6) and d.error < 1e-6


def test_the_split_is_symmetric(tiny):
    encoder = tiny["bpe"]
    ab = similarity.decompose_sentences(encoder, *PAIR, **IG)
    ba = similarity.decompose_sentences(encoder, *PAIR[::-1], **IG)
    np.testing.assert_allclose(ab.matrix, ba.matrix.T, atol=1e-12)
    np.testing.assert_allclose(ab.left, ba.right, atol=1e-12)
    assert ab.score == pytest.approx(ba.score, abs=1e-12) and ab.reference == pytest.approx(ba.reference, abs=1e-12)
    assert ab.same_words == pytest.approx(ba.same_words, abs=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_pairs_with_contractions_hyphens_and_non_ascii_text_keep_the_statistics_words(tiny, family):
    """Each side's rows and columns are the words of cwi.stats.tokenize, whatever the tokenizer; matches by word."""
    first, second = CASES[0], CASES[2]  # "don't", "isn't" ...; "well-known", "state-of-the-art", "--"
    for a, b in [(first, second), (CASES[6], CASES[5])]:  # "Café naïve Zürich — 東京" against quotes
        d = similarity.decompose_sentences(tiny[family], a, b, **IG)
        assert d.a.words == stats.tokenize(a) and d.b.words == stats.tokenize(b)
        assert d.matrix.shape == (len(stats.tokenize(a)), len(stats.tokenize(b)))
        expected = np.array([[wa == wb for wb in stats.tokenize(b)] for wa in stats.tokenize(a)])
        np.testing.assert_array_equal(d.matches, expected)
        words = similarity.word_contributions(d)
        assert words["contribution"].sum() == pytest.approx(2 * d.matrix.sum())  # rows, then columns


def test_word_contributions_are_row_and_column_sums(tiny):
    d = similarity.decompose_sentences(tiny["wordpiece"], *PAIR, **IG)
    words = similarity.word_contributions(d)
    a, b = words[words["side"] == "a"], words[words["side"] == "b"]
    np.testing.assert_allclose(a["contribution"], d.matrix.sum(1))
    np.testing.assert_allclose(b["contribution"], d.matrix.sum(0))
    assert a["normalised_contribution"].abs().mean() == pytest.approx(1)
    assert a.loc[a["word"] == "guitar", "matched"].all() and not a.loc[a["word"] == "stage", "matched"].any()


def test_the_pair_sample_is_nested_and_never_holds_a_choice_sentence(data_dir):
    small, large = data.sample_sts_pairs("stsb", 20, seed=1), data.sample_sts_pairs("stsb", 60, seed=1)
    assert set(small["pair"]) <= set(large["pair"]) and len(small) == 20
    chosen_on = data.choice_sentences()
    sides = pd.concat([large["sentence1"], large["sentence2"]]).map(data.normalise_sentence)
    assert not sides.isin(chosen_on).any()
    rows = data.sts_split("stsb", "test").reset_index(drop=True)
    assert (rows.loc[large["pair"], "score"].to_numpy() == large["score"].to_numpy()).all()  # the gold of that row


def test_word_vectors_are_cached_and_keyed(tiny, monkeypatch):
    """A second call reads every block; other sentences or another rule compute again."""
    encoder = tiny["wordpiece"]
    smoke = config.get_profile("smoke")
    sentences = list(PAIR)
    first = pipeline.sentence_vector_block(encoder, sentences, smoke)
    calls = []
    original = attribution.METHODS["ig"]
    monkeypatch.setitem(attribution.METHODS, "ig", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    again = pipeline.sentence_vector_block(encoder, sentences, smoke)
    assert not calls  # nothing recomputed
    for sentence in sentences:
        np.testing.assert_array_equal(first[sentence].vectors, again[sentence].vectors)
        assert first[sentence].words == again[sentence].words
    pipeline.sentence_vector_block(encoder, sentences[:1], smoke)
    coarser = dataclasses.replace(smoke, attribution=dataclasses.replace(smoke.attribution, path_points=(9, 17)))
    pipeline.sentence_vector_block(encoder, sentences, coarser)
    assert calls == [sentences[:1], sentences]


def synthetic(n_pairs: int, effect: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairs and usable word rows of three models; `effect` adds to the fine-tuned models' slope and same-word share."""
    rng = np.random.default_rng(seed)
    names = ["pre", "fine a", "fine b"]
    pair_rows, word_rows = [], []
    for p in range(n_pairs):
        dataset = "stsb" if p % 2 else "sickr"
        key = similarity.pair_key(f"first sentence {p}", f"second sentence {p}")
        words = rng.integers(4, 9)
        quantity = rng.normal(size=(words, len(analysis.QUANTITIES)))
        base_same, base_total = rng.gamma(2, 0.05), rng.gamma(4, 0.1)
        for m, model in enumerate(names):
            lift = effect * (m > 0)
            pair_rows.append({"model": model, "dataset": dataset, "pair": p, "sentence": key,
                              "same_words": base_same * (1 + lift) + rng.normal(0, 0.01),
                              "word_pairs": base_total + rng.normal(0, 0.01), "matched_cells": 2,
                              "cells": words * words, "chance_same_words": 0.02 * base_total})
            response = (0.3 + lift) * quantity[:, 0] + rng.normal(0, 1, words)
            for w in range(words):
                word_rows.append({"model": model, "dataset": dataset, "sentence": key, "word_index": w,
                                  "normalised_weight": response[w],
                                  **dict(zip(analysis.QUANTITIES, quantity[w])), "status": "ok"})
    return pd.DataFrame(pair_rows), pd.DataFrame(word_rows)


def test_the_change_rule_keeps_its_error_rate_and_finds_a_planted_change():
    twins = {"a": ModelPair("pre", "fine a"), "b": ModelPair("pre", "fine b")}
    pairs, words = synthetic(240, 0.0, seed=0)
    bootstrap = analysis.SentenceBootstrap(words, 400, seed=0)
    scales = {q: 1.0 for q in analysis.QUANTITIES}
    family, workspace = similarity.change_family(pairs, words, twins, bootstrap, scales, analysis.QUANTITIES)
    assert len(family.members) == 2 * (2 + len(analysis.QUANTITIES))  # the share, its excess, a slope each
    assert (family.members["low"] <= family.members["estimate"]).all()
    said, n = similarity.null_rate(workspace, 0.95, 200, seed=1)
    assert said / n < 0.12  # near the nominal 5%, with room for 200 simulations' noise
    pairs, words = synthetic(240, 0.5, seed=0)
    family, _ = similarity.change_family(pairs, words, twins, analysis.SentenceBootstrap(words, 400, seed=0), scales,
                                         analysis.QUANTITIES)
    share = family.members[family.members["statistic"].isin(["same-word share", "excess same-word share"])]
    assert len(share) == 4 and (share["verdict"] == "more").all()
    gain = family.members[(family.members["quantity"] == "information_gain")]
    assert (gain["verdict"] == "more").all()


def test_the_null_relabels_models_only_among_twins_and_once_per_resampled_pair():
    models = ["pre", "fine a", "fine b", "other", "other fine"]
    twins = {"a": ModelPair("pre", "fine a"), "b": ModelPair("pre", "fine b"), "c": ModelPair("other", "other fine")}
    blocks = similarity.twin_blocks(models, twins)
    assert [b.tolist() for b in blocks] == [[0, 1, 2], [3, 4]]
    # One pair in two datasets (one resampling unit, two bootstrap columns) and one pair in one.
    frame = pd.DataFrame({"dataset": ["sickr", "stsb", "stsb"], "sentence": ["x and y", "x and y", "u and v"]})
    bootstrap = analysis.SentenceBootstrap(frame, 10, seed=0)
    workspace = SimpleNamespace(models=models, blocks=blocks, n_clusters=bootstrap.clusters, cluster=bootstrap.cluster)
    shared = bootstrap.locate(pd.DataFrame({"dataset": ["sickr", "stsb"], "sentence": ["x and y"] * 2}))
    alone = bootstrap.locate(pd.DataFrame({"dataset": ["stsb"], "sentence": ["u and v"]}))[0]
    assert bootstrap.cluster[shared[0]] == bootstrap.cluster[shared[1]] != bootstrap.cluster[alone]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        order = similarity.null_orders(workspace, rng)
        assert order.shape == (3, len(models))
        np.testing.assert_array_equal(order[shared[0]], order[shared[1]])  # the shared pair is relabelled once
        for row in order:
            assert sorted(row[:3]) == [0, 1, 2] and sorted(row[3:]) == [3, 4]  # never across architectures
        seen.add(tuple(order[alone]))
    assert len(seen) == 6 * 2  # every relabelling within the blocks occurs


def test_the_pair_explorer_carries_both_models_and_every_cell(tiny):
    decompositions = {(name, "stsb", 7): similarity.decompose_sentences(tiny[family], *PAIR, **IG)
                      for name, family in (("pre", "wordpiece"), ("fine", "bpe"))}
    view = interactive.pair_explorer(decompositions, pd.DataFrame({"dataset": ["stsb"], "pair": [7], "gold": [3.2]}),
                                     "pre", "fine")
    shown = payload(view)
    entry = shown["pairs"][0]
    assert shown["models"] == ["pre", "fine"] and entry["gold"] == 3.2
    for (name, _, _), d in decompositions.items():
        np.testing.assert_allclose(entry["m"][name]["A"], d.matrix, atol=1e-4)
        assert entry["m"][name]["score"] == pytest.approx(d.score, abs=1e-4)
    with pytest.raises(ValueError, match="model 'other'"):
        interactive.pair_explorer(decompositions, pd.DataFrame({"dataset": ["stsb"], "pair": [7], "gold": [1.0]}),
                                  "pre", "other")


def test_partners_drawn_at_random_have_no_excess_share():
    """Over every permutation of one sentence's word labels, the same-word sum averages its reference exactly."""
    from itertools import permutations

    rng = np.random.default_rng(0)

    def sentence(words):
        vectors = rng.normal(0.1, 1.0, (len(words), 5))
        return similarity.SentenceVectors(" ".join(words), list(words), list(range(len(words))), vectors,
                                          vectors.sum(0) + 1.0, np.ones(5))

    a, b = sentence(["the", "cat", "sat", "the"]), sentence(["the", "dog", "sat", "down", "."])
    d = similarity.decompose(a, b)
    relabelled_b = [similarity.decompose(a, dataclasses.replace(b, words=list(p))).same_words
                    for p in permutations(b.words)]
    relabelled_a = [similarity.decompose(dataclasses.replace(a, words=list(p)), b).same_words
                    for p in permutations(a.words)]
    assert (np.mean(relabelled_b) + np.mean(relabelled_a)) / 2 == pytest.approx(d.chance_same_words, abs=1e-12)
    # The matched words keep their own rows: a large matched word raises the reference, not only the share.
    uniform = d.matches.sum() / d.matrix.size * d.matrix.sum()
    assert d.chance_same_words != pytest.approx(uniform)
    # Over the labellings (either sentence's, weighed alike) the excess share is 0; twins sharing more: positive.
    rows = pd.DataFrame({"model": "m", "same_words": [np.mean(relabelled_b), np.mean(relabelled_a)],
                         "word_pairs": d.matrix.sum(),
                         "chance_same_words": d.chance_same_words, "matched_cells": int(d.matches.sum()),
                         "cells": d.matrix.size})
    assert similarity_references.excess_share(rows).loc["m", "excess"] == pytest.approx(0.0, abs=1e-12)
    planted = rows.iloc[:1].assign(same_words=d.chance_same_words + 0.5 * d.matrix.sum())
    assert similarity_references.excess_share(planted).loc["m", "excess"] == pytest.approx(0.5)


def test_the_split_without_the_common_direction_stays_exact(tiny):
    encoder = tiny["wordpiece"]
    first = similarity.decompose_sentences(encoder, *PAIR, **IG)
    second = similarity.decompose_sentences(encoder, "A dog runs.", "The cat sleeps on a mat.", **IG)
    direction = similarity_references.common_direction([first, second])
    assert np.linalg.norm(direction) == pytest.approx(1.0)
    projected = similarity_references.without_common_direction(first, direction)
    off = [v - (v @ direction) * direction for v in (first.a.embedding, first.b.embedding)]
    cosine = off[0] @ off[1] / np.linalg.norm(off[0]) / np.linalg.norm(off[1])
    assert projected.score == pytest.approx(cosine, abs=1e-12)  # the cosine of the projected embeddings
    assert abs(projected.total - projected.score) <= projected.error_bound + 1e-9
    assert np.abs(projected.a.vectors @ direction).max() < 1e-9  # nothing left along the common direction


def test_the_terms_parts_of_the_ranking_sum_to_one():
    rng = np.random.default_rng(1)
    n = 60
    terms = {"same_words": rng.normal(0.3, 0.1, n), "other_words": rng.normal(0.2, 0.05, n),
             "word_baseline": np.full(n, 0.1), "baselines": rng.normal(0, 0.01, n)}
    pairs = pd.DataFrame({"model": "m", "dataset": np.where(np.arange(n) % 2, "a", "b"), **terms})
    pairs["score"] = pairs[list(similarity.TERMS)].sum(axis=1)
    parts = similarity_references.term_variance(pairs).set_index("model")
    assert parts.loc["m", list(similarity.TERMS)].sum() == pytest.approx(1.0)
    assert parts.loc["m", "word_baseline"] == pytest.approx(0.0)  # a constant ranks nothing
    assert parts.loc["m", "same_words"] > parts.loc["m", "other_words"]  # the larger spread ranks more
    # Within datasets: a term that only shifts one dataset's level has no part.
    shifted = pairs.assign(baselines=np.where(pairs["dataset"] == "a", 5.0, 0.0) + pairs["baselines"])
    shifted["score"] = shifted[list(similarity.TERMS)].sum(axis=1)
    again = similarity_references.term_variance(shifted).set_index("model")
    assert again.loc["m", "baselines"] == pytest.approx(parts.loc["m", "baselines"], abs=1e-9)
    # Against gold: a gold score that follows the same words alone gives them the part of all that agrees.
    pairs["gold"] = pairs["same_words"] * 3 + 1
    agreement = similarity_references.term_variance(pairs, against="gold").set_index("model")
    assert agreement.loc["m", list(similarity.TERMS)].sum() == pytest.approx(1.0)
    expected = pairs.groupby("dataset")["same_words"].transform(lambda x: x - x.mean())
    covariance = (expected * (pairs["score"] - pairs.groupby("dataset")["score"].transform("mean"))).sum()
    assert agreement.loc["m", "same_words"] == pytest.approx((expected**2).sum() / covariance)
