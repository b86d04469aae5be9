"""cwi.config: the three profiles."""

import dataclasses

import pytest

from cwi import config


def test_three_profiles_named_after_their_keys():
    assert set(config.PROFILES) == {"smoke", "default", "paper"}
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


def test_shared_names_agree_with_the_modules_that_use_them():
    from cwi import attribution, data

    assert set(config.STS_DATASETS) == set(data.STS_DATASETS)
    assert config.BASELINES == attribution.BASELINES


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ValueError, match="default, paper, smoke"):
        config.get_profile("fast")


@pytest.mark.parametrize("name", sorted(config.PROFILES))
def test_attribution_settings_name_what_exists(name):
    from cwi import attribution, data, models

    settings = config.get_profile(name).attribution
    assert set(settings.models) <= set(models.MODELS)
    assert set(settings.datasets) <= set(data.STS_DATASETS)
    assert settings.baseline in attribution.BASELINES
    assert settings.quadrature in attribution.RULES
    assert set(dict(settings.sentences_by_model)) <= set(models.MODELS)
