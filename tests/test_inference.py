"""cwi.inference: simultaneous intervals, claims read from them, and the rule's error rates on simulated data."""

import numpy as np
import pandas as pd
import pytest

from cwi import analysis, inference, models
from test_analysis import synthetic_words

ALL_GAIN = ("information_gain", "information_gain_corrected", "information_gain_binned")
CLAIMS = (
    ("information gain", ("ig", "shap"), ALL_GAIN),
    ("self-information", ("ig", "shap"), ("self_information",)),
    ("information gain (Integrated Gradients)", ("ig",), ALL_GAIN),
    ("information gain (SHAP)", ("shap",), ALL_GAIN),
)
NOMINAL = 0.05


def twin_frame(n_sentences=80, delta_ig=0.0, delta_shap=0.0, datasets=("a",), seed=0, seeds=1):
    """A pre-trained model and `seeds` fine-tuned ones, IG and SHAP weights, on `datasets` (no effect by default).

    Every model's weights are ``1 + 0.2 z + sentence noise + its own word noise``: the models are exchangeable,
    unless ``delta_*`` adds ``delta * z`` to the fine-tuned models' weights of that method.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for d, dataset in enumerate(datasets):
        pre, _ = synthetic_words(n_sentences=n_sentences, slope=0.0, seed=seed * 100 + d)
        pre = pre.assign(dataset=dataset, sentence=dataset + " " + pre["sentence_id"].astype(str))
        z = (pre["information_gain"] - pre["information_gain"].mean()) / pre["information_gain"].std()
        sentence = rng.normal(0, 0.2, n_sentences)[pre["sentence_id"]]
        for method, delta in (("ig", delta_ig), ("shap", delta_shap)):
            for model in ["pre"] + [f"fine{s}" for s in range(seeds)]:
                effect = delta if model != "pre" else 0.0
                weight = 1 + (0.2 + effect) * z + sentence + rng.normal(0, 0.3, len(pre))
                frames.append(pre.assign(model=model, method=method, normalised_weight=weight))
    return pd.concat(frames, ignore_index=True)


def pair_fits(frame, n_boot=300, seed=0, controls=("none",)):
    bootstrap = analysis.SentenceBootstrap(frame, n_boot, seed)
    fine = sorted(m for m in frame["model"].unique() if m != "pre")
    return analysis.pair_table(frame, {"p": models.ModelPair("pre", fine[0])}, bootstrap,
                               analysis.quantity_scales(frame), {fine[0]: fine}, controls=controls)


def test_simultaneous_intervals_cover_the_whole_family_at_the_stated_level():
    rng = np.random.default_rng(0)
    m, n_boot = 10, 2000
    covered, criticals = [], []
    for _ in range(300):
        truth = np.zeros(m)
        estimates = rng.normal(0, 1, m)  # one experiment: independent members, se 1
        draws = estimates + rng.normal(0, 1, (n_boot, m))
        low, high, critical = inference.simultaneous(estimates, draws, 0.95)
        covered.append(((low < truth) & (truth < high)).all())
        criticals.append(critical)
    assert np.mean(covered) == pytest.approx(0.95, abs=0.04)
    # Independent members: c is near Sidak's 2.80 (Bonferroni's is 2.81, one interval's 1.96).
    assert np.median(criticals) == pytest.approx(2.80, abs=0.08)
    # Members that move together need no more than one interval's width.
    shared = rng.normal(0, 1, (n_boot, 1))
    _, _, critical = inference.simultaneous(np.zeros(m), np.repeat(shared, m, axis=1), 0.95)
    assert critical == pytest.approx(1.96, abs=0.08)


def test_the_rule_rarely_speaks_on_null_tables_and_finds_a_planted_effect():
    """Independent simulated tables with no effect: the primary family's false-positive rate, and its power."""
    n_tables = 120
    tolerance = 3 * np.sqrt(NOMINAL * (1 - NOMINAL) / n_tables)  # three binomial standard errors
    said, found = [], []
    for table in range(n_tables):
        results = pair_fits(twin_frame(n_sentences=60, seed=table), n_boot=300, seed=table)
        members, draws = inference.contrasts(results, CLAIMS)
        primary = inference.family(members, draws, 1 - NOMINAL)
        said.append((primary["verdict"] != "unclear").any())
        if table < 30:
            results = pair_fits(twin_frame(n_sentences=60, delta_ig=0.06, delta_shap=0.06, seed=table), seed=table)
            members, draws = inference.contrasts(results, CLAIMS)
            gain = inference.family(members, draws, 1 - NOMINAL).query("claim == 'information gain' and "
                                                                     "statistic == 'delta beta'")
            found.append(inference.claim_word(gain["verdict"]) == "reproduces")
    assert np.mean(said) <= NOMINAL + tolerance, f"false-positive rate {np.mean(said):.3f}"
    assert np.mean(found) >= 0.8, f"power {np.mean(found):.2f}"


def test_null_calibration_exchanges_the_models_within_sentences():
    results = pair_fits(twin_frame(n_sentences=100, seeds=2, datasets=("a", "b")), n_boot=400)
    n = 100
    null = inference.null_calibration(results, CLAIMS, 0.95, n, seed=1, datasets=("a", "b"))
    rate = null.set_index("outcome")["rate"]
    assert set(rate.index) >= {"any member", "any delta beta", "any delta r", "any dataset",
                               "p: information gain reproduces", "p: information gain contradicts",
                               "p: both methods reproduces", "p: each dataset reproduces"}
    assert rate["any member"] <= NOMINAL + 3 * np.sqrt(NOMINAL * (1 - NOMINAL) / n)
    assert np.allclose(null["said"], null["rate"] * n) and (null["scenario"] == "no effect").all()
    slope = inference.Scenario("planted", slope={"p": 0.08})
    planted = inference.null_calibration(results, CLAIMS, 0.95, 30, seed=1, scenario=slope).set_index("outcome")
    assert planted.loc["p: information gain reproduces", "rate"] >= 0.9
    assert planted.loc["p: both methods reproduces", "rate"] >= 0.9
    assert planted.loc["p: information gain contradicts", "rate"] == 0


def test_a_planted_spread_moves_delta_beta_and_never_delta_r():
    """w -> 1 + k (w - 1) for the fine-tuned models: slopes times k, correlations unchanged, on every replicate."""
    results = pair_fits(twin_frame(n_sentences=100, seeds=2), n_boot=400)
    fit = results.fits[("p", "all", "ig", "information_gain", "none")]
    keep = np.tile(np.arange(3), (len(fit.sentences), 1))  # every model keeps its role
    beta, r, beta_draws, r_draws = fit.refit(*inference._planted(fit, keep, np.zeros(2), 2.0))
    assert beta[1:] == pytest.approx(2 * fit.beta[1:]) and beta[0] == pytest.approx(fit.beta[0])
    assert r == pytest.approx(fit.r) and r_draws == pytest.approx(fit.r_draws)
    assert beta_draws[:, 1:] == pytest.approx(2 * fit.beta_draws[:, 1:])
    n = 40
    spread = inference.null_calibration(results, CLAIMS, 0.95, n, seed=3, scenario=inference.Scenario("spread", spread=2.0))
    rate = spread.set_index("outcome")["rate"]
    assert rate["any delta beta"] == 1.0  # the slopes doubled: every simulation sees it
    assert rate["any delta r"] <= NOMINAL + 3 * np.sqrt(NOMINAL * (1 - NOMINAL) / n)


def test_seeds_that_wander_fool_a_verdict_about_these_models():
    """No effect on average, but each seed's slope wanders: the seed-fixed rule speaks often; seeds are the remedy."""
    results = pair_fits(twin_frame(n_sentences=100, seeds=3), n_boot=400)
    wander = inference.Scenario("seeds wander", seed_spread={"p": 0.05})
    rate = inference.null_calibration(results, CLAIMS, 0.95, 60, seed=2, scenario=wander).set_index("outcome")["rate"]
    assert rate["p: information gain reproduces"] + rate["p: information gain contradicts"] > 0.2


def test_a_claim_about_both_methods_needs_both():
    only_ig = pair_fits(twin_frame(delta_ig=0.15, delta_shap=0.0))
    members, draws = inference.contrasts(only_ig, CLAIMS)
    table = inference.family(members, draws, 0.95).query("statistic == 'delta beta'").set_index("claim")["verdict"]
    assert table["information gain (Integrated Gradients)"] == "more"
    assert table["information gain (SHAP)"] == "unclear"
    by_method = table[["information gain (Integrated Gradients)", "information gain (SHAP)"]]
    assert inference.claim_word(by_method) == "not shown"
    both = pair_fits(twin_frame(delta_ig=0.15, delta_shap=0.15))
    members, draws = inference.contrasts(both, CLAIMS)
    table = inference.family(members, draws, 0.95).query("statistic == 'delta beta'").set_index("claim")["verdict"]
    assert inference.claim_word(table[["information gain (Integrated Gradients)", "information gain (SHAP)"]]) \
        == "reproduces"


def test_a_claim_about_each_dataset_counts_datasets():
    frame = pd.concat([twin_frame(delta_ig=0.15, delta_shap=0.15, datasets=("strong",)),
                       twin_frame(datasets=("none",), seed=1)], ignore_index=True)
    results = pair_fits(frame)
    table = inference.per_dataset(results, CLAIMS, "information gain", ["strong", "none", "missing"], 0.95)
    # A dataset of the design without a fit is counted, and no claim passes it.
    assert table.set_index("dataset")["verdict"].to_dict() == {"strong": "more", "none": "unclear",
                                                               "missing": "not fitted"}
    assert inference.claim_word(table["verdict"]) == "not shown"
    assert inference.claim_word(table.query("dataset == 'strong'")["verdict"]) == "reproduces"
    assert (table["level"] == 0.95).all()  # one twinned pair: nothing to adjust across
    with pytest.raises(ValueError, match="no claim named"):
        inference.per_dataset(results, CLAIMS, "no such claim", ["strong"], 0.95)


def test_the_both_methods_reading_finds_its_claims_by_their_methods():
    assert inference.method_claims(CLAIMS) == ["information gain (Integrated Gradients)", "information gain (SHAP)"]


def test_claim_words_follow_the_stated_rule():
    assert inference.claim_word(["more", "more"]) == "reproduces"
    assert inference.claim_word(["less", "less"]) == "contradicts"
    assert inference.claim_word(["more", "less"]) == "not shown"
    assert inference.claim_word(["more", "unclear"]) == "not shown"
    assert inference.claim_word([]) == "not shown"
    assert set(inference.CLAIM_WORDS) == {"reproduces", "contradicts", "not shown"}


def test_seed_contrasts_read_each_seed_and_the_t_interval():
    results = pair_fits(twin_frame(delta_ig=0.1, delta_shap=0.1, seeds=3))
    table = inference.seed_contrasts(results, CLAIMS, 0.95).set_index("claim")
    row = table.loc["information gain"]
    fits = [results.fits[("p", "all", m, q, "none")] for m in ("ig", "shap") for q in ALL_GAIN]
    per_seed = np.mean([f.beta[1:] - f.beta[0] for f in fits], axis=0)
    assert row["seeds"] == 3 and row["seeds_above"] == int((per_seed > 0).sum())
    assert (row["t_low"], row["t_high"]) == pytest.approx(analysis.t_interval(per_seed, 0.95))


def test_calibration_must_be_shown_not_merely_not_refuted():
    status = lambda said, n: inference.calibration_status(said, n, 0.95, 0.10)[0]
    assert status(25, 500) == "calibrated"  # at the nominal 5%: exact interval ends near 7.3%
    assert status(0, 20) == "undetermined"  # no false positive, but 20 simulations bound nothing below 10%
    assert status(60, 500) == "over"  # 12%: the whole interval lies above 5%
    assert status(10, 20) == "over"
    assert status(1_500, 20_000) == "over"  # 7.5%: within the tolerance, yet shown above the nominal rate
    _, low, high = inference.calibration_status(25, 500, 0.95, 0.10)
    assert low < 0.05 < high < 0.10
    with pytest.raises(ValueError, match="said <= simulations"):
        inference.calibration_status(5, 3, 0.95, 0.10)
