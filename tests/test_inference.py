"""cwi.inference: the permutation max-T rule, its readings against the base and the control, and its error rates."""

import numpy as np
import pandas as pd
import pytest

from cwi import analysis, inference
from test_analysis import synthetic_words

CLAIMS = (
    ("information gain", ("ig",), ("information_gain",), "none"),
    ("self-information", ("ig",), ("self_information",), "none"),
    ("information gain (IG and SHAP)", ("ig", "shap"), ("information_gain",), "none"),
    ("information gain (SHAP)", ("shap",), ("information_gain",), "none"),
)
NOMINAL = 0.05


def twin_frame(n_sentences=80, delta_ig=0.0, delta_shap=0.0, datasets=("a",), seed=0, seeds=1, controls=0,
               delta_control=0.0):
    """A pre-trained model, `seeds` fine-tuned and `controls` control models, IG and SHAP weights, on `datasets`.

    Every model's weights are ``1 + 0.2 z + sentence noise + its own word noise``: the models are
    exchangeable, unless ``delta_*`` adds ``delta * z`` to the fine-tuned models' weights of that method
    (and ``delta_control`` to the controls', both methods).
    """
    rng = np.random.default_rng(seed)
    frames = []
    for d, dataset in enumerate(datasets):
        pre, _ = synthetic_words(n_sentences=n_sentences, slope=0.0, seed=seed * 100 + d)
        pre = pre.assign(dataset=dataset, sentence=dataset + " " + pre["sentence_id"].astype(str))
        z = (pre["information_gain"] - pre["information_gain"].mean()) / pre["information_gain"].std()
        sentence = rng.normal(0, 0.2, n_sentences)[pre["sentence_id"]]
        roles = ([("pre", 0.0)] + [(f"fine{s}", None) for s in range(seeds)]
                 + [(f"control{s}", delta_control) for s in range(controls)])
        for method, delta in (("ig", delta_ig), ("shap", delta_shap)):
            for model, effect in roles:
                effect = delta if effect is None else effect
                weight = 1 + (0.2 + effect) * z + sentence + rng.normal(0, 0.3, len(pre))
                frames.append(pre.assign(model=model, method=method, normalised_weight=weight))
    return pd.concat(frames, ignore_index=True)


def comparison_of(frame) -> analysis.Comparison:
    names = sorted(frame["model"].unique())
    return analysis.Comparison("pre", tuple(m for m in names if m.startswith("fine")),
                               tuple(m for m in names if m.startswith("control")))


def pair_fits(frame, n_boot=300, seed=0, controls=("none",)):
    bootstrap = analysis.SentenceBootstrap(frame, n_boot, seed)
    return analysis.pair_table(frame, {"p": comparison_of(frame)}, bootstrap, analysis.quantity_scales(frame),
                               controls=controls)


def decided(results, claims=CLAIMS, permutations=99, seed=0, level=1 - NOMINAL):
    members, draws = inference.contrasts(results, claims)
    maxima = inference.permutation_maxima(results, claims, members, permutations, seed)
    return inference.decide(members, draws, maxima, level), members, draws


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
    shared = rng.normal(0, 1, (n_boot, 1))
    _, _, critical = inference.simultaneous(np.zeros(m), np.repeat(shared, m, axis=1), 0.95)
    assert critical == pytest.approx(1.96, abs=0.08)


def test_the_permutation_critical_value_calls_exactly_the_nominal_share_of_exchangeable_maxima():
    """With the observed maximum one of P + 1 exchangeable values, it is called at most 1 - level of the time."""
    rng = np.random.default_rng(0)
    called = []
    for _ in range(4000):
        values = rng.exponential(size=100)  # 99 permutation maxima and the observed one, exchangeable
        called.append(values[-1] > inference.permutation_critical(values[:-1], 0.95))
    assert np.mean(called) == pytest.approx(0.05, abs=0.011)
    assert inference.permutation_critical(np.arange(999.0), 0.95) == 949.0  # j = 49: the 950th smallest
    assert inference.permutation_critical(np.arange(10.0), 0.95) == np.inf  # too few to call anything


def test_the_permutation_rule_rarely_speaks_on_null_tables_and_finds_a_planted_effect():
    """Independent simulated tables with no effect: the family's false-positive rate under the max-T rule, and its power."""
    n_tables = 100
    tolerance = 3 * np.sqrt(NOMINAL * (1 - NOMINAL) / n_tables)  # three binomial standard errors
    said, found = [], []
    for table in range(n_tables):
        results = pair_fits(twin_frame(n_sentences=50, seed=table, seeds=2), n_boot=200, seed=table)
        primary, _, _ = decided(results, permutations=49, seed=table)
        said.append((primary["verdict"] != "unclear").any())
        if table < 20:
            results = pair_fits(twin_frame(n_sentences=50, delta_ig=0.08, delta_shap=0.08, seed=table, seeds=2),
                                n_boot=200, seed=table)
            primary, _, _ = decided(results, permutations=49, seed=table)
            gain = primary.query("claim == 'information gain' and statistic == 'delta beta'")
            found.append(inference.claim_word(gain["verdict"]) == "reproduces")
    assert np.mean(said) <= NOMINAL + tolerance, f"false-positive rate {np.mean(said):.3f}"
    assert np.mean(found) >= 0.8, f"power {np.mean(found):.2f}"


def test_a_control_that_shares_the_effect_absorbs_it():
    """Planted on the fine-tuned and the control models alike: above 0 against the base, 0 against the control."""
    shared = pair_fits(twin_frame(n_sentences=120, delta_ig=0.1, seeds=3, controls=3, delta_control=0.1), n_boot=400)
    primary, members, _ = decided(shared)
    gain = primary.query("claim == 'information gain' and statistic == 'delta beta'").set_index("reading")
    assert gain.loc["vs base", "verdict"] == "more"
    assert gain.loc["vs control", "verdict"] == "unclear"
    # The difference in differences is the fine-tuned mean minus the control mean: the base cancels.
    fit = shared.fits[("p", "all", "ig", "information_gain", "none")]
    assert gain.loc["vs control", "estimate"] == pytest.approx(fit.beta[1:4].mean() - fit.beta[4:7].mean())
    assert abs(gain.loc["vs control", "estimate"]) < 0.25 * gain.loc["vs base", "estimate"]
    alone = pair_fits(twin_frame(n_sentences=120, delta_ig=0.1, seeds=3, controls=3), n_boot=400)
    primary, _, _ = decided(alone)
    gain = primary.query("claim == 'information gain' and statistic == 'delta beta'").set_index("reading")
    assert gain.loc["vs control", "verdict"] == "more"
    table = alone.table.query("dataset == 'all' and method == 'ig' and quantity == 'information_gain' "
                              "and control == 'none'").iloc[0]
    assert table["did"] == pytest.approx(gain.loc["vs control", "estimate"])
    assert table["did_low"] < table["did"] < table["did_high"]


def test_the_recipe_level_interval_adds_the_seeds_spread():
    results = pair_fits(twin_frame(n_sentences=100, delta_ig=0.1, seeds=4, controls=3), n_boot=400)
    primary, _, draws = decided(results)
    row = primary.query("claim == 'information gain' and statistic == 'delta beta' and reading == 'vs control'").iloc[0]
    fine, control = row["seed_values"], row["control_values"]
    between = fine.var(ddof=1) / 4 + control.var(ddof=1) / 3
    assert row["recipe_se"] == pytest.approx(np.sqrt(row["se"] ** 2 + between))
    welch = (row["se"] ** 2 + between) ** 2 / ((fine.var(ddof=1) / 4) ** 2 / 3 + (control.var(ddof=1) / 3) ** 2 / 2)
    assert row["recipe_df"] == pytest.approx(welch)
    counted = primary["recipe_critical"].notna().sum()
    from scipy import stats as scistats
    assert row["recipe_critical"] == pytest.approx(max(scistats.t.ppf(1 - 0.05 / (2 * counted), welch),
                                                       row["critical"]))
    assert (primary["recipe_critical"].dropna() >= primary["critical"].iloc[0]).all()
    assert row["recipe_high"] - row["recipe_low"] > row["high"] - row["low"]
    one_seed = pair_fits(twin_frame(n_sentences=100, seeds=1), n_boot=300)
    primary, _, _ = decided(one_seed)
    assert primary["recipe_se"].isna().all() and (primary["recipe_verdict"] == "unclear").all()


def test_error_rates_are_nominal_under_the_sharp_null_and_the_recipe_rule_resists_wandering_seeds():
    results = pair_fits(twin_frame(n_sentences=100, seeds=3, controls=3, datasets=("a", "b")), n_boot=300)
    primary, members, draws = decided(results, permutations=199)
    critical = float(primary["critical"].iloc[0])
    n = 100
    null = inference.error_rates(results, CLAIMS, members, draws, critical, 0.95, n, seed=1, datasets=("a", "b"))
    rate = null.set_index("outcome")["rate"]
    assert set(rate.index) >= {"any member", "any delta beta", "any delta r", "any dataset", "any member, recipe level",
                               "p: information gain reproduces", "p: information gain contradicts",
                               "p: information gain is contrastive", "p: each dataset reproduces",
                               "p: information gain reproduces for the recipe"}
    assert rate["any member"] <= NOMINAL + 3 * np.sqrt(NOMINAL * (1 - NOMINAL) / n)
    assert np.allclose(null["said"], null["rate"] * n) and (null["scenario"] == "no effect").all()
    removed = inference.error_rates(results, CLAIMS, members, draws, critical, 0.95, 0, seed=1,
                                    scenario=inference.Scenario("effect removed")).set_index("outcome")
    assert removed["simulations"].iloc[0] == len(draws) and removed.loc["any member", "rate"] <= 0.15
    planted = inference.error_rates(results, CLAIMS, members, draws, critical, 0.95, 30, seed=1,
                                    scenario=inference.Scenario("planted", slope={"p": 0.1})).set_index("outcome")
    assert planted.loc["p: information gain reproduces", "rate"] >= 0.9
    assert planted.loc["p: information gain is contrastive", "rate"] >= 0.9
    assert planted.loc["p: information gain contradicts", "rate"] == 0
    wander = inference.Scenario("seeds wander", seed_spread={"p": 0.06})
    wandered = inference.error_rates(results, CLAIMS, members, draws, critical, 0.95, 60, seed=2,
                                     scenario=wander).set_index("outcome")["rate"]
    these_models = wandered["p: information gain reproduces"] + wandered["p: information gain contradicts"]
    assert these_models > 0.2  # a verdict about these models: the wandering seeds' own slopes are real
    assert wandered["p: information gain reproduces for the recipe"] <= NOMINAL + 3 * np.sqrt(NOMINAL * 0.95 / 60)


def test_a_planted_spread_moves_delta_beta_and_never_delta_r():
    """w -> 1 + k (w - 1) for the fine-tuned models: slopes times k, correlations unchanged, on every replicate."""
    results = pair_fits(twin_frame(n_sentences=100, seeds=2), n_boot=400)
    fit = results.fits[("p", "all", "ig", "information_gain", "none")]
    keep = np.tile(np.arange(3), (len(fit.sentences), 1))  # every model keeps its role
    beta, r, beta_draws, r_draws = fit.refit(*inference._planted(fit, keep, np.zeros(3), np.array([1.0, 2.0, 2.0])))
    assert beta[1:] == pytest.approx(2 * fit.beta[1:]) and beta[0] == pytest.approx(fit.beta[0])
    assert r == pytest.approx(fit.r) and r_draws == pytest.approx(fit.r_draws)
    assert beta_draws[:, 1:] == pytest.approx(2 * fit.beta_draws[:, 1:])


def test_relabelling_is_once_per_cluster_and_only_among_a_pairs_models():
    frame = twin_frame(n_sentences=30, seeds=2, controls=1, datasets=("a", "b"))
    frame.loc[frame["dataset"] == "b", "sentence"] = frame.loc[frame["dataset"] == "b", "sentence"].str.replace("b ", "a ")
    results = pair_fits(frame, n_boot=100)
    orders = inference.relabellings(results, np.random.default_rng(0), ["p"])["p"]
    assert orders.shape == (results.bootstrap.clusters, 4) and results.bootstrap.clusters == 30  # one text, two datasets
    assert (np.sort(orders, axis=1) == np.arange(4)).all()


def test_a_claim_about_both_methods_needs_both():
    only_ig = pair_fits(twin_frame(delta_ig=0.15, delta_shap=0.0))
    members, draws = inference.contrasts(only_ig, CLAIMS)
    table = inference.family(members, draws, 0.95).query("statistic == 'delta beta'").set_index("claim")["verdict"]
    assert table["information gain"] == "more"
    assert table["information gain (SHAP)"] == "unclear"
    assert inference.claim_word(table[["information gain", "information gain (SHAP)"]]) == "not shown"


def test_a_claim_about_each_dataset_counts_datasets():
    frame = pd.concat([twin_frame(delta_ig=0.15, delta_shap=0.15, datasets=("strong",)),
                       twin_frame(datasets=("none",), seed=1)], ignore_index=True)
    results = pair_fits(frame)
    table = inference.per_dataset(results, CLAIMS, "information gain", ["strong", "none", "missing"], 0.95)
    assert table.set_index("dataset")["verdict"].to_dict() == {"strong": "more", "none": "unclear",
                                                               "missing": "not fitted"}
    assert inference.claim_word(table["verdict"]) == "not shown"
    assert inference.claim_word(table.query("dataset == 'strong'")["verdict"]) == "reproduces"
    assert (table["level"] == 0.95).all()  # one twinned pair: nothing to adjust across
    with pytest.raises(ValueError, match="no claim named"):
        inference.per_dataset(results, CLAIMS, "no such claim", ["strong"], 0.95)


def test_the_both_methods_reading_finds_its_claims_by_their_methods():
    assert inference.method_claims(CLAIMS) == ["information gain", "information gain (SHAP)"]


def test_claim_words_follow_the_stated_rule():
    assert inference.claim_word(["more", "more"]) == "reproduces"
    assert inference.claim_word(["less", "less"]) == "contradicts"
    assert inference.claim_word(["more", "less"]) == "not shown"
    assert inference.claim_word(["more", "unclear"]) == "not shown"
    assert inference.claim_word([]) == "not shown"
    assert set(inference.CLAIM_WORDS) == {"reproduces", "contradicts", "not shown"}


def test_seed_contrasts_read_each_seed_and_the_t_interval():
    results = pair_fits(twin_frame(delta_ig=0.1, delta_shap=0.1, seeds=3))
    row = inference.seed_contrasts(results, CLAIMS, 0.95).set_index("claim").loc["information gain"]
    fit = results.fits[("p", "all", "ig", "information_gain", "none")]
    per_seed = fit.beta[1:] - fit.beta[0]
    assert row["seeds"] == 3 and row["seeds_above"] == int((per_seed > 0).sum())
    assert (row["t_low"], row["t_high"]) == pytest.approx(analysis.t_interval(per_seed, 0.95))


def test_a_measured_rate_is_read_against_the_nominal_rate_only():
    """No tolerance: the exact interval holds the nominal rate, lies above it, or below it, whatever the count."""
    status = lambda said, n: inference.calibration_status(said, n, 0.95)[0]
    assert status(25, 500) == "consistent"
    assert status(35, 500) == "consistent"  # 7.0% [4.9%, 9.6%]: its interval still holds 5%
    assert status(36, 500) == "above"  # 7.2% [5.1%, 9.8%]
    assert status(34, 1000) == "below"  # 3.4% [2.4%, 4.7%]: a conservative rule
    assert status(68, 1000) == "above"  # 6.8% [5.3%, 8.5%]: shown above 5%, whatever a tolerance would say
    assert status(0, 200) == "below"
    assert status(10, 20) == "above"
    _, low, high = inference.calibration_status(25, 500, 0.95)
    assert low < 0.05 < high
    with pytest.raises(ValueError, match="said <= simulations"):
        inference.calibration_status(5, 3, 0.95)


def test_the_null_simulations_draw_relabellings_apart_from_the_critical_values():
    """Shared with the permutations, a "no effect" simulation would re-count the maxima that set c: it could not fail."""
    results = pair_fits(twin_frame(n_sentences=40, seeds=2), n_boot=100)
    first = inference.relabellings(results, inference.stream(0, "permutations"), ["p"])["p"]
    again = inference.relabellings(results, inference.stream(0, "permutations"), ["p"])["p"]
    null = inference.relabellings(results, inference.stream(0, "no effect"), ["p"])["p"]
    assert (first == again).all() and not (first == null).all()


def test_a_member_without_spread_is_never_called():
    results = pair_fits(twin_frame(n_sentences=60, seeds=2), n_boot=200)
    members, draws = inference.contrasts(results, CLAIMS[:1])
    draws = draws.copy()
    draws[:, 0] = 0.0  # no spread: se is 0, |estimate| / se would be infinite
    maxima = inference.permutation_maxima(results, CLAIMS[:1], members, 19, 0)
    primary = inference.decide(members, draws, maxima, 0.95)
    assert primary["verdict"].iloc[0] == "unclear" and np.isnan(primary["p_permutation"].iloc[0])
    assert np.isfinite(maxima).all()


def test_the_critical_value_is_the_larger_of_the_permutations_and_the_bootstraps():
    results = pair_fits(twin_frame(n_sentences=80, seeds=3, controls=3), n_boot=300)
    primary, members, draws = decided(results, permutations=99)
    _, _, bootstrapped = inference.simultaneous(members["estimate"].to_numpy(), draws, 0.95)
    row = primary.iloc[0]
    assert row["bootstrap_critical"] == pytest.approx(bootstrapped)
    assert row["critical"] == max(row["permutation_critical"], row["bootstrap_critical"])
    # Seed i's SimCSE run and its control share their batches: the recipe level reads their paired differences.
    did = primary.query("claim == 'information gain' and statistic == 'delta beta' and reading == 'vs control'").iloc[0]
    paired = np.var(did["seed_values"] - did["control_values"], ddof=1) / 3
    assert did["recipe_se"] == pytest.approx(np.sqrt(did["se"] ** 2 + paired))
    assert did["recipe_df"] == pytest.approx((did["se"] ** 2 + paired) ** 2 / (paired ** 2 / 2))
