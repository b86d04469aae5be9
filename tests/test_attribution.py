"""cwi.attribution: forward-mode IG against captum, SHAP against exact Shapley values, word tables, the cache."""

import copy
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from cwi import attribution, config, data, encoders, pipeline, stats


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
    assert table["word"].tolist() == stats.tokenize(sentence)  # no [CLS]/[SEP] rows
    attributions, _, batch = attribution.integrated_gradients(tiny, sentence, steps=8)
    positions = [i for i, w in enumerate(batch.word_ids(0)) if w == 0]
    assert len(positions) > 1, "the test needs a word split into several tokens"
    row = table.iloc[0]
    assert row["n_tokens"] == len(positions)
    assert row["weight"] == pytest.approx(attributions[positions].sum(0).norm().item(), rel=1e-5)
    assert table["normalised_weight"].mean() == pytest.approx(1.0)
    assert not table["truncated"].any()


def test_long_sentences_are_cut_after_whole_words_and_flagged(tiny):
    short = encoders.Encoder(tiny.model, tiny.tokenizer, "mean", "short", max_length=6)
    table = attribution.word_weights(short, ["one two three four five six seven eight"], steps=4)
    assert table["truncated"].all() and table["word"].tolist() == ["one", "two", "three", "four"]
    # "unbelievably" has several tokens: it may not be cut in half at the boundary.
    text, cut = attribution.fit_to_length(short, "one two three unbelievably")
    assert cut and text == "one two three"
    assert attribution.fit_to_length(short, "one two") == ("one two", False)
    with pytest.raises(ValueError, match="max_length"):
        attribution.fit_to_length(encoders.Encoder(tiny.model, tiny.tokenizer, "mean", "x", max_length=3),
                                  "unbelievably so")


QUICK = {"ig": {"steps": 4}, "shap": {}}  # each method's own settings, small


@pytest.mark.parametrize("method", attribution.METHODS)
def test_empty_sentences_are_rejected(tiny, method):
    for empty in ["", "   "]:
        with pytest.raises(ValueError, match="no word"):
            attribution.word_weights(tiny, [empty], method, **QUICK[method])
    with pytest.raises(ValueError, match="unknown attribution method"):
        attribution.word_weights(tiny, ["text"], "lime")


@pytest.mark.parametrize("method", attribution.METHODS)
def test_non_ascii_words_match_the_statistics_words(tiny, method):
    sentence = "Müller ate crème brûlée in 東京 — naïvely!"
    table = attribution.word_weights(tiny, [sentence], method, **QUICK[method])
    assert table["word"].tolist() == stats.tokenize(sentence)
    assert (table["weight"] > 0).all()


class BagOfWords(torch.nn.Module):
    """A linear bag-of-words encoder: f(x) = W mean_i(x_i); token i's exact Shapley vector is W (x_i - x'_i) / T."""

    def __init__(self, vocab_size: int, dim: int = 8):
        super().__init__()
        self.embeddings = torch.nn.Embedding(vocab_size, dim)
        self.linear = torch.nn.Linear(dim, dim, bias=False)
        self.config = SimpleNamespace(hidden_size=dim)

    def get_input_embeddings(self):
        return self.embeddings

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None):
        inputs = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        return SimpleNamespace(last_hidden_state=self.linear(inputs))


@pytest.mark.parametrize("baseline", attribution.BASELINES)
def test_shap_and_ig_equal_the_exact_shapley_values_of_a_linear_model(tiny, baseline):
    torch.manual_seed(1)
    linear = encoders.Encoder(BagOfWords(tiny.tokenizer.vocab_size), tiny.tokenizer, "mean", "bag")
    sentence = "a linear bag of words has known Shapley values"
    batch = linear.tokenize([sentence])
    ids = batch["input_ids"]
    special = torch.tensor(linear.tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True),
                           dtype=torch.bool).unsqueeze(0)
    with torch.no_grad():
        difference = linear.input_embeddings(ids) - attribution.baseline_embeddings(linear, ids, special, baseline)
        exact = linear.model.linear(difference[0]) / ids.shape[1]
    values, delta, _ = attribution.shap_values(linear, sentence, baseline, max_evals=None)
    assert (values - exact).abs().max().item() < 1e-6
    assert (values.sum(0) - delta).abs().max().item() < 1e-6  # efficiency
    assert values[0].abs().max().item() == 0 and values[-1].abs().max().item() == 0  # [CLS], [SEP]
    ig, _, _ = attribution.integrated_gradients(linear, sentence, steps=2, baseline=baseline)
    assert (ig - exact).abs().max().item() < 1e-6


def test_shap_is_efficient_on_a_tiny_random_bert(tiny):
    values, delta, _ = attribution.shap_values(tiny, "Efficiency holds for any model.", max_evals=None)
    assert ((values.sum(0) - delta).norm() / delta.norm()).item() < 1e-5


def test_cached_word_weights_are_keyed_by_the_weights(tiny, data_dir):
    first = pipeline.word_weights(tiny, "stsb", "shap", "smoke")
    again = pipeline.word_weights(tiny, "stsb", "shap", "smoke")
    assert again.attrs["cache_path"] == first.attrs["cache_path"]
    pd.testing.assert_frame_equal(first, again)
    assert first["sentence_id"].nunique() == config.get_profile("smoke").attribution.sentences_per_dataset
    changed = copy.deepcopy(tiny)
    with torch.no_grad():
        changed.model.embeddings.word_embeddings.weight.mul_(1.01)
    assert pipeline.word_weights(changed, "stsb", "shap", "smoke").attrs["cache_path"] != first.attrs["cache_path"]


def test_sample_sentences_are_distinct_and_seeded(data_dir):
    first = data.sample_sts_sentences("sickr", 50, seed=0)
    assert len(set(first)) == 50 and first == data.sample_sts_sentences("sickr", 50, seed=0)
    assert first != data.sample_sts_sentences("sickr", 50, seed=1)


def test_shap_warns_when_its_budget_cuts_the_hierarchy(tiny):
    with pytest.warns(UserWarning, match="max_evals=20"):
        values, delta, _ = attribution.shap_values(tiny, "a sentence long enough to need many evaluations", max_evals=20)
    assert ((values.sum(0) - delta).norm() / delta.norm()).item() < 1e-5  # still efficient


def test_chunking_the_path_points_does_not_change_the_result(tiny):
    sentence = "Chunks of path points bound the memory of long sentences."
    whole, _, _ = attribution.integrated_gradients(tiny, sentence, steps=6, chunk_points=6)
    chunked, _, _ = attribution.integrated_gradients(tiny, sentence, steps=6, chunk_points=4)
    assert (whole - chunked).abs().max().item() < 1e-6


def test_quadrature_is_captums_gauss_legendre_rule():
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    for steps in (1, 8, 32, 64):
        points, weights = attribution.quadrature(steps)
        assert torch.equal(points, torch.tensor(alphas(steps))) and torch.equal(weights, torch.tensor(step_sizes(steps)))
        assert weights.sum().item() == pytest.approx(1.0)


def test_a_new_method_is_one_registry_entry(tiny, monkeypatch):
    def uniform_split(encoder, sentence, baseline="pad"):
        """Share f(x) - f(x') equally among the tokens: complete by construction."""
        ig = attribution.integrated_gradients(encoder, sentence, steps=2, baseline=baseline)
        return attribution.Attribution(ig.delta.expand_as(ig.values) / len(ig.values), ig.delta, ig.batch)

    monkeypatch.setitem(attribution.METHODS, "uniform", uniform_split)
    table = attribution.word_weights(tiny, ["every word weighs the same here"], "uniform")
    assert table["word"].tolist() == stats.tokenize("every word weighs the same here")
    assert table["completeness_error"].max() < 1e-6
    assert (table.groupby("n_tokens")["weight"].nunique() == 1).all()  # same tokens, same weight


def test_completeness_sweep_reports_each_number_of_points(tiny):
    errors, tables = attribution.completeness_sweep(tiny, ["One short sentence.", "And another one here."], (2, 8))
    assert errors["steps"].tolist() == [2, 8] and set(tables) == {2, 8}
    assert (errors["median error"] <= errors["max error"]).all()
    assert tables[8]["completeness_error"].max() == pytest.approx(errors.loc[1, "max error"])
