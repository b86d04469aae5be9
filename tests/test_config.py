"""cwi.config: the profiles."""

import dataclasses
import math

import pytest

from cwi import analysis, config


def test_profiles_named_after_their_keys():
    assert set(config.PROFILES) == {"smoke", "default", "paper", "paper-dryrun"}
    for name, profile in config.PROFILES.items():
        assert profile.name == name
        assert config.get_profile(name) is profile
        assert config.get_profile(profile) is profile


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.PROFILES["smoke"].seed = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.PROFILES["smoke"].stats.corpus_limit = 1


def test_smoke_is_smaller_than_default():
    smoke, default = config.get_profile("smoke"), config.get_profile("default")
    infinite = float("inf")  # None: all of it
    sizes = {
        "statistics sentences": lambda p: p.stats.corpus_limit,
        "masked-LM steps": lambda p: p.finetune.mlm.steps,
        "masked-LM sentences": lambda p: p.finetune.mlm.corpus_limit,
        "SimCSE steps": lambda p: p.finetune.unsup.steps + p.finetune.sup.steps,
        "theory steps": lambda p: p.theory.steps + p.theory.real_steps,
        "attributed sentences": lambda p: sum(p.attribution.sentences(m) for m in p.attribution.models)
        * len(p.attribution.datasets),
        "bootstrap replicates": lambda p: p.analysis.n_bootstrap + p.weighting.n_bootstrap,
    }
    for what, size in sizes.items():
        small, large = size(smoke), size(default)
        assert small is not None, f"smoke must bound the {what}"
        assert small < (infinite if large is None else large), f"smoke has no fewer {what} than default"


def test_settings_refuse_what_cannot_run():
    with pytest.raises(ValueError, match="nested Clenshaw-Curtis"):
        config.AttributionSettings(path_points=(9, 13, 33))
    with pytest.raises(ValueError, match="increasing sequence"):
        config.AttributionSettings(path_points=(17, 9))
    with pytest.raises(ValueError, match="sentences_by_model"):
        config.AttributionSettings(sentences_by_model=(("book-mlm", 0),))
    with pytest.raises(ValueError, match="baseline must be one of"):
        config.AttributionSettings(baseline="noise")
    with pytest.raises(ValueError, match="sts_datasets must be among"):
        config.FinetuneSettings(mlm=config.MLMSettings(None, 10, 5), unsup=config.SimCSESettings(5),
                                sup=config.SimCSESettings(5), sts_datasets=("stsb", "sts17"))
    with pytest.raises(ValueError, match="multiple of heads"):
        config.MLMSettings(corpus_limit=None, heldout=10, steps=5, hidden_size=130, heads=4)
    with pytest.raises(ValueError, match="must exceed heldout"):
        config.MLMSettings(corpus_limit=100, heldout=100, steps=5)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        config.SimCSESettings(steps=5, batch_size=1)
    with pytest.raises(ValueError, match="correction must be"):
        config.StatsSettings(corpus_limit=None, correction="bins")
    with pytest.raises(ValueError, match="level must be in"):
        config.AnalysisSettings(level=95)
    with pytest.raises(ValueError, match="bin_percentile must be a percentile"):
        config.StatsSettings(corpus_limit=None, bin_percentile=105)
    with pytest.raises(ValueError, match="word_vectors must be"):
        config.MLMSettings(corpus_limit=None, heldout=10, steps=5, word_vectors="word2vec")
    with pytest.raises(ValueError, match="snapshots must be increasing steps"):
        config.SimCSESettings(steps=100, snapshots=(50, 25))
    with pytest.raises(ValueError, match="snapshots must be increasing steps"):
        config.SimCSESettings(steps=100, snapshots=(200,))
    with pytest.raises(ValueError, match="dropout must be in"):
        config.SimCSESettings(steps=100, dropout=1.0)
    finetune = dict(mlm=config.MLMSettings(None, 10, 5), unsup=config.SimCSESettings(5), sup=config.SimCSESettings(5))
    with pytest.raises(ValueError, match="searches 'learning_rate', which is not a SimCSESettings field"):
        config.FinetuneSettings(**finetune, unsup_search=(("learning_rate", (1e-4,)),))
    with pytest.raises(ValueError, match="steps are chosen through snapshots"):
        config.FinetuneSettings(**finetune, sup_search=(("steps", (5, 10)),))
    with pytest.raises(ValueError, match="gives 'lr' no values"):
        config.FinetuneSettings(**finetune, unsup_search=(("lr", ()),))
    with pytest.raises(ValueError, match="temperature must be > 0"):  # every combination is checked at once
        config.FinetuneSettings(**finetune, unsup_search=(("temperature", (0.05, 0.0)),))


def test_the_search_grid_is_every_combination_of_its_values():
    import itertools

    default = config.get_profile("default").finetune
    for supervised, base, grid in ((False, default.unsup, dict(default.unsup_search)),
                                   (True, default.sup, dict(default.sup_search))):
        candidates = default.candidates(supervised)
        assert len(grid) >= 1 and len(candidates) == math.prod(len(values) for values in grid.values())
        searched = {tuple(getattr(c, field) for field in grid) for c in candidates}
        assert searched == set(itertools.product(*grid.values()))
        fixed = {k: v for k, v in dataclasses.asdict(base).items() if k not in grid}  # every other setting is the base's
        assert all({k: v for k, v in dataclasses.asdict(c).items() if k not in grid} == fixed for c in candidates)
    # The search uses the profile's seed; the fresh seeds are the next ones, so none played a part in a choice.
    assert default.search_seed(7) == 7 and default.seed_list(7) == [8, 9, 10, 11, 12] and default.seeds >= 5
    assert default.replication_seeds <= default.seeds


def test_controls_and_claims_name_what_exists():
    assert tuple(analysis.CONTROLS) == config.CONTROL_NAMES
    with pytest.raises(ValueError, match="partials frequency out of self-information"):
        config.AnalysisSettings(claims=(("si", ("ig",), ("self_information",), "frequency"),))
    with pytest.raises(ValueError, match="each claim is"):
        config.AnalysisSettings(claims=(("old", ("ig",), ("information_gain",)),))
    with pytest.raises(ValueError, match="replication_seeds"):
        dataclasses.replace(config.get_profile("default").finetune, replication_seeds=9)
    with pytest.raises(ValueError, match="at least two|>= 2"):
        dataclasses.replace(config.get_profile("default").finetune, seeds=1)


def test_shared_names_agree_with_the_modules_that_use_them():
    from cwi import attribution, data

    assert set(config.STS_DATASETS) == set(data.STS_DATASETS)
    assert config.BASELINES == attribution.BASELINES


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ValueError, match="default, paper, paper-dryrun, smoke"):
        config.get_profile("fast")


def test_the_dry_run_is_the_paper_path_at_smoke_sizes():
    paper, smoke, dryrun = (config.get_profile(n) for n in ("paper", "smoke", "paper-dryrun"))
    assert dryrun.attribution.models == paper.attribution.models and dryrun.finetune.models == paper.finetune.models
    assert set(config.PAPER_MODELS) <= set(dryrun.attribution.models)
    assert (dryrun.seed, dryrun.corpus) == (paper.seed, paper.corpus)
    assert dryrun.finetune.mlm == smoke.finetune.mlm and dryrun.stats == smoke.stats
    assert dryrun.attribution.sentences_per_dataset == smoke.attribution.sentences_per_dataset
    assert dryrun.attribution.datasets == smoke.attribution.datasets


@pytest.mark.parametrize("name", sorted(config.PROFILES))
def test_attribution_settings_name_what_exists(name):
    from cwi import attribution, data, models

    settings = config.get_profile(name).attribution
    assert set(settings.models) <= set(models.MODELS)
    assert set(settings.datasets) <= set(data.STS_DATASETS)
    assert settings.baseline in attribution.BASELINES
    assert settings.quadrature in attribution.RULES
    assert set(dict(settings.sentences_by_model)) <= set(models.MODELS)
