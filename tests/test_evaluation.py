"""cwi.evaluation: STS scores from cosine similarity."""

import numpy as np
import pytest

from cwi import evaluation


def test_sts_spearman_on_a_toy_set_with_known_value():
    angles = np.array([0.1, 0.2, 0.4, 0.3])  # cosine falls with the angle
    first = np.tile([1.0, 0.0], (4, 1))
    second = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    gold = [4, 3, 2, 1]
    # ranks of cosine: 4, 3, 1, 2 against gold 4, 3, 2, 1: sum d^2 = 2, rho = 1 - 6*2/(4*15)
    assert evaluation.sts_spearman(first, second, gold) == pytest.approx(80.0)
    np.testing.assert_allclose(evaluation.paired_cosine(first, second), np.cos(angles))


def test_sts_pairs_selects_a_split_and_names_the_others(data_dir):
    dev = evaluation.sts_pairs("stsb", "dev")
    assert len(dev) == 1_500 and set(dev["split"]) == {"dev"}
    assert len(evaluation.sts_pairs("stsb", "test", max_pairs=7)) == 7
    with pytest.raises(ValueError, match="no split 'validation'.*'dev'"):
        evaluation.sts_pairs("stsb", "validation")
