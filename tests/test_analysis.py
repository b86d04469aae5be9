"""cwi.analysis: slopes with sentence-bootstrap intervals on synthetic data with known answers."""

import numpy as np
import pandas as pd
import pytest

from cwi import analysis, models


def synthetic_words(n_sentences=200, words=8, slope=0.3, delta=0.0, frequency_effect=0.0, seed=0):
    """Word rows whose normalised weights depend on a quantity with a known slope per SD.

    ``weight_pre = 1 + slope * z + frequency_effect * z_freq + sentence noise + word noise``;
    the fine-tuned twin adds ``delta * z``.
    """
    rng = np.random.default_rng(seed)
    n = n_sentences * words
    log_frequency = rng.normal(8, 2, n)
    quantity = 0.6 * (log_frequency - 8) / 2 + 0.8 * rng.normal(size=n)  # correlated with frequency
    z = (quantity - quantity.mean()) / quantity.std()
    z_freq = (log_frequency - log_frequency.mean()) / log_frequency.std()
    sentence = np.repeat(np.arange(n_sentences), words)
    sentence_noise = rng.normal(0, 0.2, n_sentences)[sentence]
    pre = 1 + slope * z + frequency_effect * z_freq + sentence_noise + rng.normal(0, 0.3, n)
    fine = pre + delta * z + rng.normal(0, 0.1, n)
    base = pd.DataFrame({
        "dataset": "synthetic", "method": "ig", "sentence_id": sentence, "word_index": np.tile(np.arange(words), n_sentences),
        "word": [f"w{i}" for i in range(n)], "information_gain": quantity, "information_gain_corrected": quantity, "information_gain_binned": quantity,
        "self_information": -log_frequency, "log_frequency": log_frequency, "characters": rng.integers(1, 12, n),
        "n_tokens": rng.integers(1, 3, n), "position": np.tile(np.linspace(0, 1, words), n_sentences),
        "stopword": rng.random(n) < 0.2, "status": "ok",
    })
    return (base.assign(model="pre", normalised_weight=pre), base.assign(model="fine", normalised_weight=fine))


def test_bootstrap_interval_covers_the_known_slope():
    pre, _ = synthetic_words(slope=0.3)
    result = analysis.regress(pre, "information_gain", n_boot=500)
    assert result["low"] < 0.3 < result["high"]
    assert result["high"] - result["low"] < 0.1
    assert result["n_sentences"] == 200 and result["n_words"] == 1600
    slope, _ = np.polyfit((pre["information_gain"] - pre["information_gain"].mean()) / pre["information_gain"].std(ddof=0),
                          pre["normalised_weight"], 1)
    assert result["beta"] == pytest.approx(slope)  # plain OLS without covariates


def test_interval_coverage_is_near_nominal():
    hits = []
    for seed in range(40):
        pre, _ = synthetic_words(n_sentences=60, slope=0.2, seed=seed)
        z = pre["information_gain"]
        true_slope = 0.2 * z.std(ddof=0) / z.std()  # the synthetic slope is per SD with ddof=1
        result = analysis.regress(pre, "information_gain", n_boot=300, seed=seed)
        hits.append(result["low"] < true_slope < result["high"])
    assert 0.8 <= np.mean(hits) <= 1.0


def test_delta_beta_recovers_a_planted_difference_and_none_when_absent():
    pre, fine = synthetic_words(slope=0.2, delta=0.15)
    result = analysis.compare_pair(pre, fine, "information_gain", n_boot=500)
    assert result["delta_low"] < 0.15 < result["delta_high"] and result["delta_low"] > 0
    assert analysis.verdict(result["delta_low"], result["delta_high"]) == "more"
    pre, fine = synthetic_words(slope=0.2, delta=0.0, seed=3)
    result = analysis.compare_pair(pre, fine, "information_gain", n_boot=500)
    assert result["delta_low"] < 0 < result["delta_high"]
    # Paired: the shared noise cancels, so delta's interval is narrower than either slope's.
    assert result["delta_high"] - result["delta_low"] < result["fine_high"] - result["fine_low"]


def test_covariates_remove_a_planted_frequency_effect():
    pre, _ = synthetic_words(slope=0.0, frequency_effect=0.4)
    plain = analysis.regress(pre, "information_gain", n_boot=300)
    controlled = analysis.regress(pre, "information_gain", covariates=analysis.COVARIATES, n_boot=300)
    assert plain["low"] > 0.1  # the confound shows up as a slope ...
    assert controlled["low"] < 0 < controlled["high"]  # ... and the control takes it away
    frequency = analysis.regress(pre, "log_frequency", covariates=("information_gain",), n_boot=300)
    assert frequency["low"] < 0.4 < frequency["high"]


def test_missing_statistics_are_counted_not_dropped():
    weights = pd.DataFrame({
        "model": "m", "dataset": "d", "method": "ig", "sentence_id": [0, 0, 0, 0, 1], "word_index": [0, 1, 2, 3, 0],
        "word": ["the", "zyxwv", "rareword", "solo", "the"], "normalised_weight": 1.0, "n_tokens": 1,
    })
    table = pd.DataFrame(
        {"count": [100, 3, 50], "information_gain": [0.1, 2.0, np.nan], "information_gain_corrected": [0.0, 1.0, np.nan],
         "information_gain_binned": [0.0, 1.5, np.nan],
         "self_information": [2.0, 9.0, 4.0]},
        index=pd.Index(["the", "rareword", "solo"], name="word"),
    )
    frame = analysis.attach_statistics(weights, table, min_count=10)
    assert len(frame) == len(weights)
    assert frame["status"].tolist() == ["ok", "absent", "rare", "no context", "ok"]
    counts = analysis.missing_statistics(frame)
    assert counts.loc[("m", "ig"), ["ok", "absent", "rare", "no context"]].tolist() == [2, 1, 1, 1]
    assert frame["position"].tolist() == [0, 1 / 3, 2 / 3, 1, 0]
    assert frame["stopword"].tolist() == [True, False, False, False, True]


def test_pair_table_has_every_setting_and_reports_exclusions():
    pre, fine = synthetic_words(n_sentences=40, slope=0.2, delta=0.2)
    frame = pd.concat([pre, fine]).reset_index(drop=True)
    frame.loc[frame["word_index"] == 0, "status"] = "absent"
    pairs = {"synthetic": models.ModelPair("pre", "fine"), "alone": models.ModelPair(None, "fine"),
             "elsewhere": models.ModelPair("x", "y")}
    results = analysis.pair_table(frame, pairs, n_boot=100)
    assert set(results["pair"]) == {"synthetic", "alone"}
    per_pair = len(analysis.QUANTITIES) * len(analysis.CONTROLS) * 2  # the dataset, and "all"
    assert len(results) == 2 * per_pair
    none = results.query("pair == 'synthetic' and control == 'none' and dataset == 'all'")
    assert (none["n_without_statistics"] == 40).all() and (none["n_words"] == 40 * 7).all()
    assert (none.query("quantity == 'information_gain'")["verdict"] == "more").all()
    assert results.query("pair == 'alone'")["delta"].isna().all()
    assert (results.query("pair == 'alone'")["verdict"] == "no twin").all()
    table = analysis.headline(results)
    assert len(table) == 2 * len(analysis.QUANTITIES) and table["delta beta [95%]"].str.contains(r"\[").any()
    assert "delta beta [90%]" in analysis.headline(results, level=0.9).columns
    assert set(table["verdict"]) <= set(analysis.VERDICTS.values())


def test_bad_input_raises():
    pre, _ = synthetic_words(n_sentences=5)
    with pytest.raises(ValueError, match="two sentences"):
        analysis.regress(pre[pre["sentence_id"] == 0], "information_gain")
    broken = pre.assign(information_gain=np.nan)
    with pytest.raises(ValueError, match="status == 'ok'"):
        analysis.regress(broken, "information_gain")


def test_reading_follows_the_stated_rule():
    def word(*codes):
        return analysis.reading(pd.Series(codes))["word"]

    assert word("more", "more", "unclear") == "reproduces"
    assert word("more", "more", "less") == "partly reproduces"
    assert word("less", "less", "unclear") == "contradicts"
    assert word("unclear", "less") == "does not reproduce"
    assert word("more", "unclear", "unclear", "unclear") == "partly reproduces"
    assert analysis.reading(pd.Series(["more", "less", "unclear"])) == {"more": 1, "less": 1, "n": 3,
                                                                        "word": "partly reproduces"}


def test_present_pairs_keeps_the_pairs_whose_models_ran():
    pairs = {"both": models.ModelPair("pre", "fine"), "alone": models.ModelPair(None, "fine"),
             "missing": models.ModelPair("pre", "other")}
    assert list(analysis.present_pairs(pairs, ["pre", "fine"])) == ["both", "alone"]


def test_within_sentence_spearman_matches_scipy_and_skips_short_sentences():
    from scipy import stats as scistats

    first = pd.DataFrame({"sentence_id": [0, 0, 0, 0, 1, 1], "word_index": [0, 1, 2, 3, 0, 1],
                          "weight": [1.0, 2.0, 3.0, 4.0, 1.0, 2.0]})
    second = first.assign(weight=[4.0, 1.0, 3.0, 2.0, 2.0, 1.0]).iloc[::-1]  # row order must not matter
    rho = analysis.within_sentence_spearman(first, second)
    assert list(rho.index) == [0]  # sentence 1 has two words: no rank correlation
    assert rho[0] == pytest.approx(scistats.spearmanr([1, 2, 3, 4], [4, 1, 3, 2]).statistic)


def test_across_seeds_averages_the_seeds_and_widens_with_their_spread():
    pre, _ = synthetic_words(slope=0.2, seed=1)
    rng = np.random.default_rng(5)

    def seed_model(name, delta):
        z = (pre["information_gain"] - pre["information_gain"].mean()) / pre["information_gain"].std()
        return pre.assign(model=name, normalised_weight=pre["normalised_weight"] + delta * z
                          + rng.normal(0, 0.05, len(pre)))

    agreeing = pd.concat([pre] + [seed_model(f"fine{s}", 0.1) for s in range(3)])
    spread = pd.concat([pre] + [seed_model(f"fine{s}", d) for s, d in zip(range(3), (-0.1, 0.1, 0.3))])
    names = {s: f"fine{s}" for s in range(3)}
    tight = analysis.across_seeds(agreeing, "pre", names, n_boot=300)
    wide = analysis.across_seeds(spread, "pre", names, n_boot=300)
    pick = lambda table: table[(table["quantity"] == "information_gain") & (table["method"] == "ig")].set_index("seed")
    tight, wide = pick(tight), pick(wide)
    assert list(tight.index) == ["0", "1", "2", "all"]
    assert tight.loc["all", "delta"] == pytest.approx(tight.loc[["0", "1", "2"], "delta"].mean())
    assert tight.loc["all", "delta_low"] > 0 and tight.loc["all", "verdict"] == "more"
    # Seeds that disagree: the mean is near 0.1 again, but the interval holds the spread between seeds.
    assert wide.loc["all", "delta"] == pytest.approx(0.1, abs=0.03)
    assert wide.loc["all", "delta_high"] - wide.loc["all", "delta_low"] > 3 * (
        tight.loc["all", "delta_high"] - tight.loc["all", "delta_low"])
    assert wide.loc["all", "delta_low"] < -0.05 and wide.loc["all", "verdict"] == "unclear"
    assert wide.loc["all", "seed_sd"] == pytest.approx(np.std(wide.loc[["0", "1", "2"], "delta"], ddof=1))


def test_a_pair_matches_its_words_by_sentence_text_whatever_each_sample_numbers_them():
    """Samples of different sizes number the same sentence differently (the smaller is a subset, not a prefix)."""
    pre, fine = synthetic_words(slope=0.2, delta=0.15)
    pre, fine = (frame.assign(sentence="sentence " + frame["sentence_id"].astype(str)) for frame in (pre, fine))
    reference = analysis.compare_pair(pre, fine, "information_gain", n_boot=300)
    subset = fine[fine["sentence_id"] % 2 == 0]  # every other sentence, numbered 0, 1, 2, ... in its own sample
    renumbered = subset.assign(sentence_id=subset["sentence_id"] // 2)
    shared = pre[pre["sentence_id"] % 2 == 0]
    assert analysis.compare_pair(pre, renumbered, "information_gain", n_boot=300) == pytest.approx(
        analysis.compare_pair(shared, subset, "information_gain", n_boot=300), nan_ok=True)
    assert analysis.compare_pair(pre, renumbered, "information_gain", n_boot=300)["n_sentences"] == 100
    assert reference["n_sentences"] == 200
