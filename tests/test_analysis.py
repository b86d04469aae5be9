"""cwi.analysis: slopes and correlations with shared sentence-bootstrap draws, on synthetic data with known answers."""

import numpy as np
import pandas as pd
import pytest

from cwi import analysis, config, models


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


def fit(frame, models=("pre",), quantity="information_gain", n_boot=500, seed=0, **options):
    """fit_models on its own bootstrap, scaled by the quantity's SD over the frame (ddof 0)."""
    bootstrap = analysis.SentenceBootstrap(frame, n_boot, seed)
    return analysis.fit_models(frame, list(models), quantity, bootstrap, **options)


def percentile(draws, level=0.95):
    return np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])


def test_bootstrap_interval_covers_the_known_slope():
    pre, _ = synthetic_words(slope=0.3)
    result = fit(pre)
    low, high = percentile(result.beta_draws[:, 0])
    z = pre["information_gain"]
    true_slope = 0.3 * z.std(ddof=0) / z.std()  # the synthetic slope is per SD with ddof=1
    assert low < true_slope < high and high - low < 0.1
    assert result.n_sentences == 200 and result.n_words == 1600
    slope, _ = np.polyfit((z - z.mean()) / z.std(ddof=0), pre["normalised_weight"], 1)
    assert result.beta[0] == pytest.approx(slope)  # plain OLS without covariates
    assert result.r[0] == pytest.approx(np.corrcoef(z, pre["normalised_weight"])[0, 1])


def test_interval_coverage_is_near_nominal():
    hits = []
    for seed in range(40):
        pre, _ = synthetic_words(n_sentences=60, slope=0.2, seed=seed)
        z = pre["information_gain"]
        true_slope = 0.2 * z.std(ddof=0) / z.std()
        low, high = percentile(fit(pre, n_boot=300, seed=seed).beta_draws[:, 0])
        hits.append(low < true_slope < high)
    assert 0.8 <= np.mean(hits) <= 1.0


def test_the_bootstrap_resamples_sentences_within_each_dataset():
    pre, _ = synthetic_words(n_sentences=30)
    frame = pd.concat([pre, pre.assign(dataset="other", sentence_id=pre["sentence_id"] + 1000)], ignore_index=True)
    frame = frame[~((frame["dataset"] == "other") & (frame["sentence_id"] >= 1010))]  # 30 and 10 sentences
    bootstrap = analysis.SentenceBootstrap(frame, 200, 0)
    assert bootstrap.counts.shape == (200, 40)
    first = bootstrap.locate(frame[frame["dataset"] == "other"].drop_duplicates("sentence_id"))
    assert (bootstrap.counts[:, first].sum(1) == 10).all()  # every replicate keeps each dataset's size
    assert (bootstrap.counts.sum(1) == 40).all()
    with pytest.raises(ValueError, match="outside the bootstrap"):
        bootstrap.locate(pre.assign(dataset="unseen"))


def test_a_sentence_shared_by_two_datasets_is_one_bootstrap_unit():
    """STS-B re-uses STS12-16 sentences: the same text (up to case and punctuation) is drawn once, counted in both."""
    texts = [f"Sentence number {i}." for i in range(12)]
    rows = [("sts12", text) for text in texts[:8]] + [("stsb", text) for text in texts[6:]]
    rows[-1] = ("stsb", "sentence NUMBER 11")  # the same sentence once normalised
    frame = pd.DataFrame(rows, columns=["dataset", "sentence"]).assign(word_index=0)
    bootstrap = analysis.SentenceBootstrap(frame, 300, 0)
    assert bootstrap.counts.shape == (300, 14) and bootstrap.clusters == 12  # 14 (dataset, sentence) columns
    for text in texts[6:8]:  # in both datasets: one count, twice
        both = bootstrap.locate(frame[frame["sentence"] == text])
        assert len(both) == 2 and (bootstrap.counts[:, both[0]] == bootstrap.counts[:, both[1]]).all()
    home = bootstrap.locate(frame[frame["dataset"] == "sts12"])
    assert (bootstrap.counts[:, home].sum(1) == 8).all()  # drawn in sts12, its first dataset in sorted order
    assert bootstrap.counts[:, home].std(0).min() > 0  # each is resampled, not fixed


def test_delta_beta_recovers_a_planted_difference_and_none_when_absent():
    pre, fine = synthetic_words(slope=0.2, delta=0.15)
    result = fit(pd.concat([pre, fine]), ["pre", "fine"])
    z = pre["information_gain"]
    delta = result.beta[1] - result.beta[0]
    low, high = percentile(result.beta_draws[:, 1] - result.beta_draws[:, 0])
    assert low < 0.15 * z.std(ddof=0) / z.std() < high and low > 0
    assert analysis.verdict(low, high) == "more"
    pre, fine = synthetic_words(slope=0.2, delta=0.0, seed=3)
    result = fit(pd.concat([pre, fine]), ["pre", "fine"])
    paired = result.beta_draws[:, 1] - result.beta_draws[:, 0]
    low, high = percentile(paired)
    assert low < 0 < high and delta > 0
    # Paired: the shared noise cancels, so delta's interval is narrower than either slope's.
    assert high - low < np.ptp(percentile(result.beta_draws[:, 1]))


def test_a_spread_of_the_weights_changes_beta_not_r():
    """Fine-tuning that only spreads the weights, w -> 1 + k (w - 1), multiplies beta by k and keeps r."""
    pre, _ = synthetic_words(slope=0.2)
    k = 1.8
    spread = pre.assign(model="fine", normalised_weight=1 + k * (pre["normalised_weight"] - 1))
    result = fit(pd.concat([pre, spread]), ["pre", "fine"])
    delta_beta = result.beta[1] - result.beta[0]
    delta_r = result.r[1] - result.r[0]
    assert delta_beta == pytest.approx((k - 1) * result.beta[0]) and delta_beta > 0.1
    assert delta_r == pytest.approx(0, abs=1e-12)
    assert np.abs(result.r_draws[:, 1] - result.r_draws[:, 0]).max() < 1e-10  # on every replicate too
    assert percentile(result.beta_draws[:, 1] - result.beta_draws[:, 0])[0] > 0


def test_covariates_remove_a_planted_frequency_effect():
    pre, _ = synthetic_words(slope=0.0, frequency_effect=0.4)
    plain = percentile(fit(pre, n_boot=300).beta_draws[:, 0])
    controlled = percentile(fit(pre, n_boot=300, covariates=analysis.COVARIATES).beta_draws[:, 0])
    assert plain[0] > 0.1  # the confound shows up as a slope ...
    assert controlled[0] < 0 < controlled[1]  # ... and the control takes it away
    frequency = percentile(fit(pre, quantity="log_frequency", n_boot=300, covariates=("information_gain",))
                           .beta_draws[:, 0])
    assert frequency[0] < 0.4 < frequency[1]


def test_sentence_effects_remove_an_association_between_sentences():
    """Sentences whose words are all informative and all heavy: pooled beta > 0, within sentences none."""
    rng = np.random.default_rng(4)
    pre, _ = synthetic_words(n_sentences=150, slope=0.0, seed=4)
    level = rng.normal(0, 1, 150)[pre["sentence_id"]]
    frame = pre.assign(information_gain=pre["information_gain"] + 2 * level,
                       normalised_weight=pre["normalised_weight"] + 0.5 * level)
    pooled = percentile(fit(frame).beta_draws[:, 0])
    within = percentile(fit(frame, fixed_effects=True).beta_draws[:, 0])
    assert pooled[0] > 0.2
    assert within[0] < 0 < within[1]


def test_fixed_scales_give_a_quantity_the_same_unit_in_every_control_and_dataset():
    pre, fine = synthetic_words(n_sentences=60, slope=0.2, delta=0.1)
    frame = pd.concat([pre, fine], ignore_index=True)
    scales = analysis.quantity_scales(frame)
    distinct = pre["information_gain"]  # the same word occurrences as the twin's: counted once
    assert scales["information_gain"] == pytest.approx(distinct.std(ddof=0))
    bootstrap = analysis.SentenceBootstrap(frame, 100, 0)
    # Rescaling the quantity within a subset does not rescale beta: the subset keeps the profile's SD.
    no_stopwords = frame[~frame["stopword"]]
    fixed = analysis.fit_models(no_stopwords, ["pre"], "information_gain", bootstrap, scales["information_gain"])
    x = no_stopwords.loc[no_stopwords["model"] == "pre", "information_gain"]
    y = no_stopwords.loc[no_stopwords["model"] == "pre", "normalised_weight"]
    assert fixed.beta[0] == pytest.approx(np.polyfit(x / scales["information_gain"], y, 1)[0])
    own = analysis.fit_models(no_stopwords, ["pre"], "information_gain", bootstrap)
    assert own.beta[0] == pytest.approx(np.polyfit(x / x.std(ddof=0), y, 1)[0])
    results = analysis.pair_table(frame, {"p": analysis.Comparison("pre", ("fine",))}, bootstrap, scales)
    # Every control of a quantity is fitted per the same SD: doubling the quantity's values halves every slope.
    doubled = frame.assign(information_gain=2 * frame["information_gain"])
    twice = analysis.pair_table(doubled, {"p": analysis.Comparison("pre", ("fine",))}, bootstrap,
                                analysis.quantity_scales(doubled))
    pick = lambda table: table.query("quantity == 'information_gain'").set_index(["dataset", "control"])["beta_pre"]
    assert pick(twice.table).to_numpy() == pytest.approx(pick(results.table).to_numpy())


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


def test_the_quantities_are_the_ones_the_profiles_name():
    assert tuple(analysis.QUANTITIES) == config.QUANTITY_NAMES


def test_pair_table_has_every_setting_and_reports_exclusions():
    pre, fine = synthetic_words(n_sentences=40, slope=0.2, delta=0.2)
    frame = pd.concat([pre, fine]).reset_index(drop=True)
    frame.loc[frame["word_index"] == 0, "status"] = "absent"
    pairs = {"synthetic": analysis.Comparison("pre", ("fine",)), "alone": analysis.Comparison(None, ("fine",)),
             "elsewhere": analysis.Comparison("x", ("y",))}
    bootstrap = analysis.SentenceBootstrap(frame, 100, 0)
    results = analysis.pair_table(frame, pairs, bootstrap, analysis.quantity_scales(frame))
    table = results.table
    assert set(table["pair"]) == {"synthetic", "alone"} and results.twinned == {"synthetic"}
    per_pair = len(analysis.QUANTITIES) * len(analysis.CONTROLS) * 2  # the dataset, and "all"
    assert len(table) == 2 * per_pair
    none = table.query("pair == 'synthetic' and control == 'none' and dataset == 'all'")
    assert (none["n_without_statistics"] == 40).all() and (none["n_words"] == 40 * 7).all()
    assert (none.query("quantity == 'information_gain'")["verdict"] == "more").all()
    assert table.query("pair == 'alone'")["delta"].isna().all()
    fitted = table.query("pair == 'alone' and verdict != 'not fitted'")
    assert (fitted["verdict"] == "no twin").all() and len(fitted) == per_pair - 2  # self-information beyond frequency
    assert table.query("control == 'covariates'")["delta_r"].isna().all()  # r is not defined with covariates
    # Self-information is minus log frequency: nothing of it is left beyond frequency, and the row says so.
    beyond = table.query("control == 'frequency' and quantity == 'self_information'")
    assert (beyond["verdict"] == "not fitted").all() and beyond["note"].str.contains("log frequency").all()
    assert table.query("pair == 'synthetic'")["did"].isna().all()  # no control, no difference in differences
    headline = analysis.headline(table)
    assert len(headline) == 2 * len(analysis.QUANTITIES) and headline["delta beta [95%]"].str.contains(r"\[").any()
    # The comparison first, as a reader at page width sees it: delta beta, its verdict, delta r.
    assert list(headline.columns[:6]) == ["pair", "method", "quantity", "delta beta [95%]", "verdict", "delta r [95%]"]
    assert "delta beta [90%]" in analysis.headline(table, level=0.9).columns
    assert set(headline["verdict"]) <= set(analysis.VERDICTS.values())
    assert not headline.astype(str).apply(lambda column: column.str.contains("nan")).any().any()


def test_the_fine_tuned_side_of_a_pair_is_the_mean_of_its_seeds():
    pre, _ = synthetic_words(slope=0.2, seed=1)
    z = (pre["information_gain"] - pre["information_gain"].mean()) / pre["information_gain"].std()
    rng = np.random.default_rng(5)
    seeds = [pre.assign(model=f"fine{s}", normalised_weight=pre["normalised_weight"] + d * z
                        + rng.normal(0, 0.05, len(pre))) for s, d in enumerate((-0.1, 0.1, 0.3))]
    frame = pd.concat([pre, *seeds], ignore_index=True)
    bootstrap = analysis.SentenceBootstrap(frame, 300, 0)
    results = analysis.pair_table(frame, {"p": analysis.Comparison("pre", ("fine0", "fine1", "fine2"))}, bootstrap,
                                  analysis.quantity_scales(frame), controls=("none",))
    row = results.table.query("dataset == 'all' and quantity == 'information_gain'").iloc[0]
    single = [fit(pd.concat([pre, s]), ["pre", s["model"].iloc[0]], n_boot=300) for s in seeds]
    assert row["delta"] == pytest.approx(np.mean([f.beta[1] - f.beta[0] for f in single]))
    assert row["seeds"] == 3
    table = analysis.seed_table(results)
    picked = table.query("quantity == 'information_gain' and side == 'fine-tuned'").set_index("seed")
    assert list(picked.index) == ["fine0", "fine1", "fine2", "mean"]
    assert picked.loc["mean", "delta"] == pytest.approx(row["delta"])
    assert picked.loc["mean", "seeds_above"] == 2


def test_content_words_are_renormalised_over_their_sentence_alone():
    """A hand-made sentence: the stopword's weight leaves the content words' normalisation."""
    weights = pd.DataFrame({
        "model": "m", "dataset": "d", "method": "ig", "sentence_id": [0, 0, 0, 0, 1, 1], "word_index": [0, 1, 2, 3, 0, 1],
        "word": ["the", "cat", "sat", ".", "dogs", "bark"], "weight": [6.0, 2.0, 4.0, 4.0, 1.0, 3.0], "n_tokens": 1,
    })
    weights["normalised_weight"] = weights["weight"] / weights.groupby("sentence_id")["weight"].transform("mean")
    table = pd.DataFrame({"count": 100, "information_gain": [0.1, 1.0, 2.0, 0.0, 1.5, 0.5],
                          "information_gain_corrected": 0.0, "information_gain_binned": 0.0, "self_information": 1.0},
                         index=pd.Index(["the", "cat", "sat", ".", "dogs", "bark"], name="word"))
    frame = analysis.attach_statistics(weights, table, min_count=10)
    assert frame["stopword"].tolist() == [True, False, False, True, False, False]
    assert frame["content_weight"].tolist()[1:3] == pytest.approx([2 / 3, 4 / 3])  # over cat and sat: mean 3
    assert frame["content_weight"].tolist()[4:] == pytest.approx([0.5, 1.5])
    assert frame["content_weight"].iloc[[0, 3]].isna().all()
    # Doubling the stopwords' weights leaves the content words' renormalised weights alone.
    heavier = weights.assign(weight=np.where(frame["stopword"], 2 * weights["weight"], weights["weight"]))
    heavier["normalised_weight"] = heavier["weight"] / heavier.groupby("sentence_id")["weight"].transform("mean")
    again = analysis.attach_statistics(heavier, table, min_count=10)
    assert again["content_weight"].tolist()[1:3] == pytest.approx([2 / 3, 4 / 3])
    assert again["normalised_weight"].iloc[1] != pytest.approx(frame["normalised_weight"].iloc[1])


def test_the_seed_t_interval_is_the_hand_computed_one():
    deltas = [0.10, 0.25, 0.04]
    mean, sd = np.mean(deltas), np.std(deltas, ddof=1)
    half = 4.302652729911275 * sd / np.sqrt(3)  # t(0.975, 2 df)
    assert analysis.t_interval(deltas, 0.95) == pytest.approx((mean - half, mean + half))
    assert np.isnan(analysis.t_interval([0.1], 0.95)[0])


def test_bad_input_raises():
    pre, _ = synthetic_words(n_sentences=5)
    with pytest.raises(ValueError, match="two sentences"):
        fit(pre[pre["sentence_id"] == 0])
    broken = pre.assign(information_gain=np.nan)
    with pytest.raises(ValueError, match="status == 'ok'"):
        fit(broken)


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


def test_a_pair_matches_its_words_by_sentence_text_whatever_each_sample_numbers_them():
    """Samples of different sizes number the same sentence differently (the smaller is a subset, not a prefix)."""
    pre, fine = synthetic_words(slope=0.2, delta=0.15)
    pre, fine = (frame.assign(sentence="sentence " + frame["sentence_id"].astype(str)) for frame in (pre, fine))
    subset = fine[fine["sentence_id"] % 2 == 0]  # every other sentence, numbered 0, 1, 2, ... in its own sample
    renumbered = subset.assign(sentence_id=subset["sentence_id"] // 2)
    shared = pre[pre["sentence_id"] % 2 == 0]
    bootstrap = analysis.SentenceBootstrap(pd.concat([pre, renumbered]), 300, 0)
    matched = analysis.fit_models(pd.concat([pre, renumbered]), ["pre", "fine"], "information_gain", bootstrap)
    alone = analysis.fit_models(pd.concat([shared, subset]), ["pre", "fine"], "information_gain", bootstrap)
    assert matched.n_sentences == 100 and matched.beta == pytest.approx(alone.beta)
    assert matched.beta_draws == pytest.approx(alone.beta_draws)  # the same sentences read the same counts


def test_an_interval_never_breaks_in_a_table_and_reads_plainly_in_its_csv():
    import base64

    from cwi import downloads

    text = analysis.interval_text([0.1, np.nan], [-0.2, np.nan], [0.3, np.nan])
    assert text == [f"+0.100 [-0.200,{analysis.NO_BREAK}+0.300]", "-"]
    frame = pd.DataFrame({"interval": text, "sentence": ["a\u00a0b", "c"]})
    link = downloads.csv_download(frame, "t.csv").data
    csv = base64.b64decode(link.split("base64,")[1].split('"')[0]).decode()
    assert "+0.100 [-0.200, +0.300]" in csv and "a\u00a0b" in csv  # the interval's space only
    assert 'class="cwi-wide"' in downloads.wide(frame).to_html()
