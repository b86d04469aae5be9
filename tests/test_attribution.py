"""cwi.attribution: forward-mode vector Integrated Gradients against captum, completeness, baselines."""

import pytest
import torch

from cwi import attribution, models


@pytest.fixture
def tiny(tiny_encoder):
    return tiny_encoder


@pytest.mark.parametrize("baseline", attribution.BASELINES)
def test_forward_mode_equals_captum_per_dimension(tiny, baseline):
    sentence = "A man is playing a guitar."
    fast, _, _ = attribution.integrated_gradients(tiny, sentence, steps=8, baseline=baseline)
    reference = attribution.integrated_gradients_captum(tiny, sentence, steps=8, baseline=baseline)
    assert fast.shape == reference.shape == (len(tiny.tokenize([sentence])["input_ids"][0]), 16)
    assert (fast - reference).abs().max().item() < 1e-5


def test_completeness_on_a_tiny_random_bert(tiny):
    attributions, delta, _ = attribution.integrated_gradients(tiny, "Completeness holds for smooth models.", steps=32)
    assert ((attributions.sum(0) - delta).norm() / delta.norm()).item() < 1e-3


def test_special_tokens_are_kept_in_the_baseline(tiny):
    batch = tiny.tokenize(["two words"])
    ids = batch["input_ids"]
    special = torch.tensor([[True, False, False, True]])
    base = attribution.baseline_embeddings(tiny, ids, special, "pad")
    inputs = tiny.input_embeddings(ids)
    assert torch.equal(base[0, 0], inputs[0, 0]) and torch.equal(base[0, -1], inputs[0, -1])
    pad = tiny.input_embeddings(torch.tensor([[tiny.tokenizer.pad_token_id]]))[0, 0]
    assert torch.equal(base[0, 1], pad)


def test_bad_settings_raise(tiny):
    with pytest.raises(ValueError, match="unknown baseline"):
        attribution.integrated_gradients(tiny, "text", baseline="noise")
    with pytest.raises(ValueError, match="steps"):
        attribution.integrated_gradients(tiny, "text", steps=0)


def test_word_weights_aggregate_subwords_and_skip_special_tokens(tiny):
    sentence = "Unbelievably, the café reopened."
    table = attribution.word_weights(tiny, [sentence], steps=8)
    from cwi import stats

    assert table["word"].tolist() == stats.tokenize(sentence)  # no [CLS]/[SEP] rows
    attributions, _, batch = attribution.integrated_gradients(tiny, sentence, steps=8)
    positions = [i for i, w in enumerate(batch.word_ids(0)) if w == 0]
    assert len(positions) > 1, "the test needs a word split into several tokens"
    row = table.iloc[0]
    assert row["n_tokens"] == len(positions)
    assert row["weight"] == pytest.approx(attributions[positions].sum(0).norm().item(), rel=1e-5)
    assert table["normalised_weight"].mean() == pytest.approx(1.0)
    assert not table["truncated"].any()


def test_word_weights_report_truncation_and_reject_empty_sentences(tiny):
    short = models.Encoder(tiny.model, tiny.tokenizer, "mean", "short", max_length=6)
    table = attribution.word_weights(short, ["one two three four five six seven eight"], steps=4)
    assert table["truncated"].all() and len(table) == 4  # 6 tokens: [CLS], four words, [SEP]
    with pytest.raises(ValueError, match="no word"):
        attribution.word_weights(tiny, ["   "], steps=4)
