"""cwi.weighting: weighted averages of word vectors, SIF, coverage, the paired bootstrap; their pipeline."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scistats

from cwi import config, evaluation, pipeline, theory, weighting


@pytest.fixture
def toy_vectors():
    return weighting.WordVectors(["a", "b", "c"], np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))


def test_sif_against_a_hand_computation(toy_vectors):
    p = pd.Series({"a": 0.5, "b": 0.25, "c": 0.25})
    weights = weighting.sif_weights(p, a=0.25)
    assert weights.to_dict() == pytest.approx({"a": 1 / 3, "b": 0.5, "c": 0.5})
    raw, _ = weighting.embed(["a b", "b c", "a c"], toy_vectors, weights)
    # (1/3 (1,0) + 1/2 (0,1)) / (5/6), (1/2 (0,1) + 1/2 (1,1)) / 1, (1/3 (1,0) + 1/2 (1,1)) / (5/6)
    expected = np.array([[0.4, 0.6], [0.5, 1.0], [1.0, 0.6]])
    np.testing.assert_allclose(raw, expected)
    # First principal direction of the uncentred matrix: the top eigenvector of E^T E = [[1.41, 1.34], [1.34, 1.72]].
    trace, det = 1.41 + 1.72, 1.41 * 1.72 - 1.34**2
    top = (trace + np.sqrt(trace**2 - 4 * det)) / 2
    component = np.array([1.34, top - 1.41]) / np.hypot(1.34, top - 1.41)
    cleaned, components = weighting.remove_common_components(expected, 1)
    np.testing.assert_allclose(np.abs(components[0]), component, atol=1e-12)
    np.testing.assert_allclose(cleaned, expected - np.outer(expected @ component, component), atol=1e-12)
    sif, _ = weighting.embed(["a b", "b c", "a c"], toy_vectors, weights, remove_components=1)
    np.testing.assert_allclose(sif, cleaned, atol=1e-12)


def test_uniform_weighting_is_the_plain_mean():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20)]
    vectors = weighting.WordVectors(words, rng.normal(size=(20, 5)))
    sentences = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(30)]
    plain = np.stack([vectors.vectors[vectors.rows(s.split())].mean(axis=0) for s in sentences])
    uniform, coverage = weighting.embed(sentences, vectors)
    ones, _ = weighting.embed(sentences, vectors, pd.Series(1.0, index=words))
    np.testing.assert_allclose(uniform, plain)
    np.testing.assert_allclose(ones, plain)
    assert coverage["tokens_without_vector"] == coverage["tokens_with_median_weight"] == 0


def test_words_without_a_vector_or_a_weight_are_counted(toy_vectors):
    weights = pd.Series({"a": 1.0, "b": 3.0})  # c has a vector but no weight: the median, 2
    embeddings, coverage = weighting.embed(["a zzz c", "qqq", "b c c"], toy_vectors, weights)
    assert coverage == {"sentences": 3, "tokens": 7, "tokens_without_vector": 2, "tokens_with_median_weight": 3,
                        "sentences_without_vector": 1, "sentences_with_zero_weight": 0}
    np.testing.assert_allclose(embeddings[0], (1.0 * np.array([1, 0]) + 2.0 * np.array([1, 1])) / 3)
    np.testing.assert_allclose(embeddings[1], [0, 0])  # no word with a vector: a zero vector, counted
    np.testing.assert_allclose(embeddings[2], (3.0 * np.array([0, 1]) + 4.0 * np.array([1, 1])) / 7)


def test_all_zero_weights_fall_back_to_the_plain_mean(toy_vectors):
    embeddings, coverage = weighting.embed(["a b", "a c"], toy_vectors, pd.Series({"a": 0.0, "b": 0.0, "c": 1.0}))
    np.testing.assert_allclose(embeddings[0], [0.5, 0.5])
    np.testing.assert_allclose(embeddings[1], [1.0, 1.0])
    assert coverage["sentences_with_zero_weight"] == 1


def test_bad_weights_are_refused(toy_vectors):
    with pytest.raises(ValueError, match="must be >= 0"):
        weighting.embed(["a b"], toy_vectors, pd.Series({"a": -1.0, "b": 1.0}))
    with pytest.raises(ValueError, match="no value for any word"):
        weighting.embed(["a b"], toy_vectors, pd.Series({"a": np.nan}, name="contrastive_norm"))
    with pytest.raises(ValueError, match="a must be > 0"):
        weighting.sif_weights(pd.Series({"a": 0.1}), 0.0)
    with pytest.raises(ValueError, match="unknown weighting"):
        weighting.StaticEncoder("tf-idf")
    with pytest.raises(ValueError, match="one row of vectors per word"):
        weighting.WordVectors(["a"], np.zeros((2, 3)))


def test_weight_table_columns_clipping_and_norms():
    statistics = pd.DataFrame(
        {"p": [0.5, 0.3, 0.2], "self_information": -np.log([0.5, 0.3, 0.2]),
         "information_gain": [0.1, 0.5, 1.0], "information_gain_corrected": [-0.2, 0.3, 0.8]},
        index=pd.Index(["the", "cat", "sat"], name="word"),
    )
    norms = pd.Series({"cat": 2.0, "mat": 5.0})
    table = weighting.weight_table(statistics, 1e-3, norms)
    assert list(table.columns) == list(weighting.WEIGHTINGS)
    assert list(table.index) == ["the", "cat", "sat", "mat"]
    assert table.loc["the", "information_gain_corrected"] == 0.0 and table.attrs["clipped"] == 1
    assert table.loc["cat", "sif"] == pytest.approx(1e-3 / (1e-3 + 0.3))
    assert np.isnan(table.loc["the", "contrastive_norm"]) and table.loc["mat", "contrastive_norm"] == 5.0
    assert (table["uniform"] == 1).all()


def test_row_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(1)
    first = rng.integers(0, 5, size=(4, 30)).astype(float)
    second = rng.normal(size=(4, 30))
    expected = [scistats.spearmanr(f, s).statistic for f, s in zip(first, second)]
    np.testing.assert_allclose(weighting._row_spearman(first, second), expected)


def _noisy_scorers(seed: int, n: int = 200, noise_second: float = 1.0):
    rng = np.random.default_rng(seed)
    gold = {name: rng.normal(size=n) for name in ("one", "two")}
    first = {name: g + rng.normal(size=n) for name, g in gold.items()}
    second = {name: g + noise_second * rng.normal(size=n) for name, g in gold.items()}
    return first, second, gold


def test_paired_bootstrap_covers_a_planted_zero_difference():
    covered = 0
    for seed in range(30):
        result = weighting.paired_bootstrap(*_noisy_scorers(seed), n_boot=300, seed=seed)
        assert result["low"] <= result["delta"] <= result["high"]
        covered += result["low"] <= 0 <= result["high"]
    assert covered >= 25, f"the 95 % interval covered a true difference of 0 in {covered} of 30 runs"


def test_paired_bootstrap_detects_a_planted_difference():
    first, second, gold = _noisy_scorers(0, noise_second=5.0)
    result = weighting.paired_bootstrap(first, second, gold, n_boot=300)
    expected = np.mean([100 * (scistats.spearmanr(first[d], gold[d]).statistic
                               - scistats.spearmanr(second[d], gold[d]).statistic) for d in gold])
    assert result["delta"] == pytest.approx(expected)
    assert result["low"] > 0
    with pytest.raises(ValueError, match="same datasets"):
        weighting.paired_bootstrap(first, {"one": second["one"]}, gold)


def test_weighting_settings_validate_themselves():
    with pytest.raises(ValueError, match="sif_a_grid"):
        config.WeightingSettings(sif_a_grid=(0.0, 1e-3))
    with pytest.raises(ValueError, match="must include 1"):
        config.WeightingSettings(remove_components=(0,))
    with pytest.raises(ValueError, match="n_bootstrap"):
        config.WeightingSettings(n_bootstrap=10)


def test_contrastive_additive_encoder_is_trained_once(data_dir, monkeypatch):
    first = pipeline.contrastive_additive_encoder("smoke")

    def no_training(*args, **kwargs):
        raise AssertionError("trained again: the cache should have answered")

    monkeypatch.setattr(theory, "train_on_sentences", no_training)
    second = pipeline.contrastive_additive_encoder("smoke")
    pd.testing.assert_series_equal(first.squared_norms(), second.squared_norms())
    assert first.losses == second.losses and len(first.vocab) == len(first.squared_norms())


def test_sts_scores_are_cached_per_model(data_dir, monkeypatch):
    smoke = config.get_profile("smoke")
    profile = dataclasses.replace(smoke, finetune=dataclasses.replace(smoke.finetune, sts_datasets=("stsb",),
                                                                      sts_max_pairs=20))
    first = pipeline.sts_scores(profile, ("all-MiniLM-L6-v2",))
    assert first[["model", "dataset"]].values.tolist() == [["all-MiniLM-L6-v2", "stsb"]]

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated again: the cache should have answered")

    monkeypatch.setattr(evaluation, "encoder_spearman", no_evaluation)
    pd.testing.assert_frame_equal(pipeline.sts_scores(profile, ("all-MiniLM-L6-v2",)), first)


def test_one_bag_serves_every_weighting_of_the_pairs(toy_vectors):
    pairs = pd.DataFrame({"sentence1": ["a b", "c"], "sentence2": ["b c", "a c c"]})
    bag = weighting.pair_bag(pairs, toy_vectors)
    for weights in (None, pd.Series({"a": 1.0, "b": 2.0, "c": 0.5})):
        for components in (0, 1):
            cosine, coverage = weighting.score_pairs(bag, weights, components)
            both, expected_coverage = weighting.embed(["a b", "c", "b c", "a c c"], toy_vectors, weights, components)
            first, second = both[:2], both[2:]
            expected = (first * second).sum(1) / np.linalg.norm(first, axis=1) / np.linalg.norm(second, axis=1)
            np.testing.assert_allclose(cosine, expected)
            assert coverage == expected_coverage


def test_every_weighting_averages_the_words_they_all_know(toy_vectors):
    """c has a vector but no contrastive norm: with shared words it is left out of every weighting, the mean too."""
    pairs = {"toy": pd.DataFrame({"sentence1": ["a b c", "a c"], "sentence2": ["b c", "a b"], "score": [1.0, 2.0]})}
    weights = pd.DataFrame({"uniform": 1.0, "sif": [0.5, 0.5, 0.5], "self_information": [1.0, 2.0, 3.0],
                            "information_gain": [1.0, 2.0, 3.0], "information_gain_corrected": [1.0, 2.0, 3.0],
                            "contrastive_norm": [1.0, 4.0, np.nan]}, index=pd.Index(["a", "b", "c"], name="word"))
    encoders = [weighting.StaticEncoder(name, 0) for name in ("uniform", "contrastive_norm")]
    _, similarities, coverage = weighting.evaluate(pairs, toy_vectors, weights, encoders)
    assert (coverage["tokens_without_shared_value"] == 3).all()  # the three c tokens
    assert (coverage["tokens_with_median_weight"] == 0).all()  # nothing is filled in
    without_c, _ = weighting.embed(["a b", "a", "b", "a b"], toy_vectors)  # the plain mean of the shared words
    first, second = without_c[:2], without_c[2:]
    expected = (first * second).sum(1) / np.linalg.norm(first, axis=1) / np.linalg.norm(second, axis=1)
    np.testing.assert_allclose(similarities["uniform"]["toy"], expected)
    _, _, filled = weighting.evaluate(pairs, toy_vectors, weights, encoders, shared=False)
    assert filled.loc[("contrastive_norm", "toy"), "tokens_with_median_weight"] == 3
