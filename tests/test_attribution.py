"""cwi.attribution: forward-mode IG against captum, SHAP against exact Shapley values, word tables, the cache."""

import copy
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

import numpy as np

from cwi import attribution, config, data, encoders, inputs, pipeline, shapley, stats


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
    table = attribution.word_weights(tiny, [sentence], points=8, rule="gauss-legendre")
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
    table = attribution.word_weights(short, ["one two three four five six seven eight"], points=5)
    assert table["truncated"].all() and table["word"].tolist() == ["one", "two", "three", "four"]
    # "unbelievably" has several tokens: it may not be cut in half at the boundary.
    text, cut = attribution.fit_to_length(short, "one two three unbelievably")
    assert cut and text == "one two three"
    assert attribution.fit_to_length(short, "one two") == ("one two", False)
    with pytest.raises(ValueError, match="max_length"):
        attribution.fit_to_length(encoders.Encoder(tiny.model, tiny.tokenizer, "mean", "x", max_length=3),
                                  "unbelievably so")


QUICK = {"ig": {"points": 5}, "shap": {}}  # each method's own settings, small


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
    assert set(data.sample_sts_sentences("sickr", 15, seed=0)) <= set(first)  # nested: MiniLM's 15 among the 50


def test_word_weights_are_computed_on_test_sentences_only(data_dir):
    """STS-B dev decides the book's choices: none of its sentences is attributed, in any dataset."""
    frame = data.load_sts("stsb")
    sides = lambda rows: set(pd.concat([rows["sentence1"], rows["sentence2"]]).str.strip())
    test, elsewhere = sides(frame[frame["split"] == "test"]), sides(frame[frame["split"] != "test"])
    dev = data.choice_sentences()
    sample = set(data.sample_sts_sentences("stsb", None))
    assert sample <= test and not sample & (elsewhere - test)
    for dataset in ("stsb", "sts15"):  # STS15's test split shares over a thousand sentences with STS-B dev
        drawn = data.sample_sts_sentences(dataset, None)
        assert drawn and not {data.normalise_sentence(s) for s in drawn} & dev
    assert len(data.sample_sts_sentences("sts15", None)) < len({s.strip() for s in sides(data.load_sts("sts15"))})
    with pytest.raises(ValueError, match="no split 'dev'"):
        data.sample_sts_sentences("sts12", 5, split="dev")


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
    def uniform_split(encoder, sentences, baseline="pad", progress=None):
        """Share f(x) - f(x') equally among the words: complete by construction."""
        results = attribution.word_integrated_gradients(encoder, sentences, points=3, baseline=baseline)
        return [r._replace(values=r.delta.expand_as(r.values) / len(r.values)) for r in results]

    monkeypatch.setitem(attribution.METHODS, "uniform", uniform_split)
    table = attribution.word_weights(tiny, ["every word weighs the same here"], "uniform")
    assert table["word"].tolist() == stats.tokenize("every word weighs the same here")
    assert table["completeness_error"].max() < 1e-6
    assert table["weight"].nunique() == 1


def test_completeness_sweep_reports_each_rule_size(tiny):
    sentences = ["One short sentence.", "And another one here."]
    errors = attribution.completeness_sweep(tiny, sentences, (3, 5, 9))
    assert errors["points"].tolist() == [3, 5, 9]
    assert (errors["median error"] <= errors["max error"]).all()
    alone = attribution.word_weights(tiny, sentences, "ig", points=5)
    assert alone.groupby("sentence_id")["completeness_error"].first().max() == pytest.approx(errors.loc[1, "max error"],
                                                                                             rel=1e-4)


SENTENCES = ["Unbelievably, the café reopened.", "A man plays.", "Two dogs run across a wide, green field today.",
             "Short one"]


def token_sums(tiny, sentence, values):
    """(W, d) token rows summed per word by their shares, in word order."""
    return inputs.prepare(tiny, sentence).to_words(values)


def test_word_tangents_equal_summed_token_vectors(tiny):
    words = attribution.word_integrated_gradients(tiny, SENTENCES, points=8, rule="gauss-legendre")
    for sentence, result in zip(SENTENCES, words):
        tokens = attribution.integrated_gradients(tiny, sentence, steps=8)
        assert result.values.shape == (len(inputs.prepare(tiny, sentence).words), 16)
        assert (result.values - token_sums(tiny, sentence, tokens.values)).abs().max().item() < 1e-6
        assert (result.delta - tokens.delta).abs().max().item() < 1e-6
        assert result.path_points == 8


def test_several_sentences_per_call_equal_one_at_a_time(tiny):
    together = attribution.word_integrated_gradients(tiny, SENTENCES, points=7)
    # A budget so small that every sentence gets a call of its own, and its words' tangents several.
    alone = attribution.word_integrated_gradients(tiny, SENTENCES, points=7, memory_gb=1e-6)
    for a, b in zip(together, alone):
        assert (a.values - b.values).abs().max().item() < 1e-6


@pytest.mark.parametrize("rule", attribution.RULES)
def test_adaptive_points_equal_a_fixed_run_at_the_chosen_count(tiny, rule):
    # Targets between the errors of the first two rules on these sentences, so that they stop at different rules.
    target, sequence = {"clenshaw-curtis": 3e-3, "gauss-legendre": 1e-4}[rule], (3, 5, 9, 17)
    adaptive = attribution.word_integrated_gradients(tiny, SENTENCES, points=sequence, rule=rule, target=target)
    chosen = [r.path_points for r in adaptive]
    assert len(set(chosen)) > 1, "the test needs sentences that stop at different rules"
    for sentence, result in zip(SENTENCES, adaptive):
        fixed = attribution.word_integrated_gradients(tiny, [sentence], points=result.path_points, rule=rule)[0]
        assert (result.values - fixed.values).abs().max().item() < 1e-6
        assert attribution.completeness_error(result.values, result.delta) < target or result.path_points == 17
        if result.path_points > 3:  # the rule before it missed the target: it is the fewest that meets it
            shorter = sequence[:sequence.index(result.path_points)]  # ends at the rule before, kept whatever
            fewer = attribution.word_integrated_gradients(tiny, [sentence], points=shorter, rule=rule, target=target)[0]
            assert attribution.completeness_error(fewer.values, fewer.delta) >= target or fewer.word_error >= target
        # Nested rules reuse every point: the evaluations are those of the rule kept.
        if rule == "clenshaw-curtis":
            assert result.evaluations == 2 + result.path_points * len(result.values)
    table = attribution.word_weights(tiny, SENTENCES, "ig", points=sequence, rule=rule, target=target)
    assert table.groupby("sentence_id")["path_points"].first().tolist() == chosen


class Sine(torch.nn.Module):
    """f(x) = mean over tokens of sin(x_t): each word's Integrated Gradients is exact, sin(x_i) - sin(x'_i)."""

    def __init__(self, embeddings: torch.Tensor):
        super().__init__()
        self.embeddings = torch.nn.Embedding.from_pretrained(embeddings)
        self.config = SimpleNamespace(hidden_size=embeddings.shape[1])

    def get_input_embeddings(self):
        return self.embeddings

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None):
        inputs = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        return SimpleNamespace(last_hidden_state=torch.sin(inputs))


def test_integrated_gradients_goes_on_until_every_word_converges_not_only_their_sum(tiny):
    """Two words with opposite embeddings: their quadrature errors cancel in the sum, so completeness alone stops early."""
    vocab = tiny.tokenizer.get_vocab()
    table = torch.zeros(tiny.tokenizer.vocab_size, 4)  # [PAD], the baseline, is 0
    table[vocab["up"]], table[vocab["down"]], table[vocab["left"]] = 3.0, -3.0, 0.2
    sine = encoders.Encoder(Sine(table), tiny.tokenizer, "mean", "sine")
    sentence, target, sequence = "up down left", 0.01, (3, 5, 9, 17, 33)
    first = attribution.word_integrated_gradients(sine, [sentence], points=3, target=target)[0]
    assert attribution.completeness_error(first.values, first.delta) < target  # the sum has converged ...
    assert first.word_error > target  # ... its words have not
    exact = torch.sin(table[[vocab["up"], vocab["down"], vocab["left"]]]) / 5  # 5 tokens with [CLS] and [SEP]
    scale = exact.norm(dim=1).mean()  # the sentence's mean word weight: the normalised weights' unit
    assert (first.values - exact).norm(dim=1).max() / scale > target
    adaptive = attribution.word_integrated_gradients(sine, [sentence], points=sequence, target=target)[0]
    assert adaptive.path_points > 3 and adaptive.word_error < target
    assert (adaptive.values - exact).norm(dim=1).max() / scale < target
    weights = attribution.word_weights(sine, [sentence], "ig", points=sequence, target=target)
    assert weights["word_error"].max() < target and weights["budget_spent"].isna().all()


def test_a_sentence_that_exhausts_the_shap_budget_is_counted(tiny):
    sentence = "a sentence of many words exhausts a budget of few coalitions"
    with pytest.warns(UserWarning, match="used all max_evals=10"):
        spent = attribution.word_weights(tiny, [sentence], "shap", max_evals=10)
    assert spent["budget_spent"].all()
    full = attribution.word_weights(tiny, [sentence], "shap", max_evals=None)
    assert not full["budget_spent"].any() and full["word_error"].isna().all()


def test_clenshaw_curtis_integrates_polynomials_and_nests():
    for points in (3, 5, 9, 17, 33, 65):
        alphas, weights = attribution.clenshaw_curtis(points)
        degree = points - 1
        assert (weights * alphas**degree).sum().item() == pytest.approx(1 / (degree + 1), rel=1e-5)
        assert alphas[0].item() == 0 and alphas[-1].item() == pytest.approx(1.0)
    coarse, fine = attribution.clenshaw_curtis(9)[0], attribution.clenshaw_curtis(17)[0]
    assert torch.allclose(coarse, fine[::2], atol=1e-7)


def test_bad_rule_sequences_raise(tiny):
    for points in [(), (9, 5), (1, 3), (5, 7)]:  # (5, 7): 6 intervals are not a multiple of 4
        with pytest.raises(ValueError, match="points"):
            attribution.word_integrated_gradients(tiny, ["text"], points=points)
    with pytest.raises(ValueError, match="unknown quadrature rule"):
        attribution.word_integrated_gradients(tiny, ["text"], points=9, rule="simpson")


def test_word_shap_equals_summed_token_shap(tiny):
    words = attribution.word_shap(tiny, SENTENCES)
    for sentence, result in zip(SENTENCES, words):
        tokens = attribution.shap_values(tiny, sentence)
        assert (result.values - token_sums(tiny, sentence, tokens.values)).abs().max().item() < 1e-6
        assert attribution.completeness_error(result.values, result.delta) < 1e-5


def test_word_shap_batches_and_repeats_do_not_change_it(tiny):
    sentence = SENTENCES[2]
    large = attribution.word_shap(tiny, [sentence])[0]
    small = attribution.word_shap(tiny, [sentence], memory_gb=1e-6)[0]  # one coalition per forward pass
    assert (large.values - small.values).abs().max().item() < 1e-6
    n_words = len(large.values)
    assert large.evaluations < 3 * n_words**2  # each distinct coalition once


def test_the_token_hierarchy_nests_every_word():
    tree = np.array([[0, 1, 0.5, 2], [3, 2, 1.0, 3]])  # words 0 and 1, then word 2
    nested = shapley.nested_tree(tree, [[0, 1], [2], [3, 4, 5]])
    # Tokens 0-1 (word 0) and 3-5 (word 2) merge first; then the words as in `tree`.
    assert nested[:, :2].tolist() == [[0, 1], [3, 4], [7, 5], [6, 2], [9, 8]]
    assert nested[:, 3].tolist() == [2, 2, 3, 3, 6]


def test_the_normalised_output_is_attributed_completely(tiny):
    """sentence-transformers' Normalize module as an encoder: unit vectors, and IG splits their difference."""
    unit = encoders.normalized(tiny)
    assert np.allclose(np.linalg.norm(unit.encode(SENTENCES), axis=1), 1, atol=1e-5)
    assert unit.name == f"{tiny.name} (normalised)" and unit.pooling == tiny.pooling
    for result in attribution.word_integrated_gradients(unit, SENTENCES[:3], points=(9, 17, 33, 65)):
        assert attribution.completeness_error(result.values, result.delta) < 0.01
