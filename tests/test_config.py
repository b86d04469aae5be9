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
    assert smoke.stats.corpus_limit is not None
    assert default.stats.corpus_limit is None or default.stats.corpus_limit > smoke.stats.corpus_limit


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
    assert settings.steps in settings.steps_checked  # the chapter checks the completeness of the chosen rule
