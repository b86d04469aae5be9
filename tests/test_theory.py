"""cwi.theory: the synthetic generator, InfoNCE, training and the real-sentence pieces."""

import math

import numpy as np
import pytest
import torch

from cwi import theory


@pytest.fixture(scope="module")
def corpus():
    return theory.make_topic_corpus(n_words=60, n_topics=5, max_topicality=2.0, seed=3)


def test_topic_corpus_distributions_are_normalised(corpus):
    np.testing.assert_allclose(corpus.word_given_topic.sum(axis=1), 1.0)
    np.testing.assert_allclose(corpus.context_distribution().sum(axis=1), 1.0)
    assert (corpus.information_gain() >= 0).all()


def test_exact_kl_matches_monte_carlo(corpus):
    rng = np.random.default_rng(0)
    anchors, positives = corpus.sample_pairs(200_000, 1, rng)
    anchors, positives = anchors[:, 0], positives[:, 0]
    # Empirical p(w'|w) of the sampled pairs against the closed form.
    context = corpus.context_distribution()
    for word in [0, 1, 2]:
        seen = positives[anchors == word]
        empirical = np.bincount(seen, minlength=corpus.n_words) / len(seen)
        assert np.abs(empirical - context[word]).max() < 5 / math.sqrt(len(seen))
    # Monte-Carlo KL: mean log-ratio over the pairs whose anchor is w.
    log_ratio = np.log(context[anchors, positives]) - np.log(corpus.word_probability()[positives])
    exact = corpus.information_gain()
    for word in [0, 1, 2, 5]:
        sample = log_ratio[anchors == word]
        standard_error = sample.std() / math.sqrt(len(sample))
        assert abs(sample.mean() - exact[word]) < 4 * standard_error + 1e-3


def test_a_word_equally_likely_under_every_topic_has_no_information_gain():
    uniform = theory.TopicCorpus(np.array([0.5, 0.5]), np.array([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6]]))
    assert uniform.information_gain()[1] == pytest.approx(0.0, abs=1e-12)
    assert uniform.information_gain()[0] > 0


def test_info_nce_loss_and_gradient_by_hand():
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    positives = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = theory.info_nce_loss(anchors, positives, temperature=1.0)
    # logits = identity: each row is -log(e / (e + 1))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)))
    loss.backward()
    g = 1 / (2 * (math.e + 1))  # (softmax - onehot) @ positives / batch
    np.testing.assert_allclose(anchors.grad.numpy(), [[-g, g], [g, -g]], rtol=1e-6)


def test_info_nce_temperature_scales_logits():
    a, p = torch.randn(4, 3), torch.randn(4, 3)
    assert theory.info_nce_loss(a, p, 0.5).item() == pytest.approx(theory.info_nce_loss(2 * a, p, 1.0).item())


def train(corpus, seed, steps=300):
    model = theory.AdditiveEncoder(corpus.n_words, 8, seed=seed)
    losses = theory.train_info_nce(
        model, lambda b, rng: corpus.sample_pairs(b, 2, rng), steps=steps, batch_size=64, temperature=0.1,
        lr=0.01, seed=seed,
    )
    return model, losses


def test_training_lowers_the_loss(corpus):
    _, losses = train(corpus, seed=0)
    assert np.mean(losses[-30:]) < np.mean(losses[:30]) - 0.1


def test_a_long_training_tells_the_runners_terminal(corpus, tmp_path, monkeypatch):
    """Under `python -m cwi book` a Theory cell of minutes names its run, then how far it got (not heartbeats only)."""
    from cwi import progress

    log = tmp_path / "progress.log"
    monkeypatch.setenv("CWI_PROGRESS_FILE", str(log))
    monkeypatch.setattr(progress, "EVERY", 0.0)  # a line at every step, as a long run gets one twice a minute
    model = theory.AdditiveEncoder(corpus.n_words, 8, seed=0)
    theory.train_info_nce(model, lambda b, rng: corpus.sample_pairs(b, 2, rng), steps=60, batch_size=16,
                          label="InfoNCE on the toy corpus")
    lines = log.read_text().splitlines()
    assert lines[0] == "InfoNCE on the toy corpus: 60 steps to do"
    assert lines[-1].startswith("InfoNCE on the toy corpus: 60/60 steps (100%), loss ")


def test_same_seed_same_vectors(corpus):
    first, _ = train(corpus, seed=7, steps=50)
    again, _ = train(corpus, seed=7, steps=50)
    other, _ = train(corpus, seed=8, steps=50)
    assert torch.equal(first.u.weight, again.u.weight)
    assert not torch.equal(first.u.weight, other.u.weight)


def test_trained_norms_track_information_gain():
    corpus = theory.make_topic_corpus(n_words=200, n_topics=10, max_topicality=2.0, seed=0)
    model = theory.AdditiveEncoder(corpus.n_words, 16)
    theory.train_info_nce(model, lambda b, rng: corpus.sample_pairs(b, 2, rng), steps=1500, batch_size=256,
                          temperature=0.05, lr=0.003, seed=0)
    fit = theory.fit_line(2 * corpus.information_gain(), theory.metric_norms(model, corpus.word_probability()))
    assert fit["r2"] > 0.7 and fit["slope"] > 0


def test_metric_norm_by_hand():
    model = theory.AdditiveEncoder(3, 2)
    with torch.no_grad():
        model.u.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]]))
        model.v.weight.copy_(torch.tensor([[1.0, 5.0], [-1.0, 5.0], [0.0, 5.0]]))
    p = np.array([0.25, 0.25, 0.5])
    # v varies only along the first axis: Var = 0.25 + 0.25 = 0.5; the second axis is free.
    np.testing.assert_allclose(theory.metric_norms(model, p), [0.5, 0.0, 4.5])


def test_half_split_pairs_are_disjoint_halves():
    sentences = [np.array([0, 1, 2, 3, 4]), np.array([5, 6]), np.array([7])]
    sample = theory.half_split_pairs(sentences)
    anchors, positives = sample(50, np.random.default_rng(0))
    for a, p in zip(anchors, positives):
        words = np.concatenate([a[a != theory.PAD], p[p != theory.PAD]])
        assert sorted(words) in ([0, 1, 2, 3, 4], [5, 6])
        assert len(a[a != theory.PAD]) >= 1 and len(p[p != theory.PAD]) >= 1


def test_restrict_vocabulary_keeps_frequent_words_in_order():
    vocab, encoded = theory.restrict_vocabulary(["a b c", "a b", "a d"], min_count=2)
    assert vocab == ["a", "b"]
    assert [list(s) for s in encoded] == [[0, 1], [0, 1], [0]]
    vocab, _ = theory.restrict_vocabulary(["a b c", "a b", "a d"], min_count=1, allowed={"c", "d"})
    assert vocab == ["c", "d"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: theory.info_nce_loss(torch.ones(1, 3), torch.ones(1, 3), 0.05), "at least 2"),
        (lambda: theory.info_nce_loss(torch.ones(2, 3), torch.ones(2, 3), 0.0), "temperature"),
        (lambda: theory.AdditiveEncoder(0, 8), "n_words >= 1"),
        (lambda: theory.restrict_vocabulary(["a b"], min_count=5), "no word"),
        (lambda: theory.half_split_pairs([np.array([1])]), "at least 2 sentences"),
        (lambda: theory.make_topic_corpus(n_words=1), "n_words >= 2"),
        (lambda: theory.train_info_nce(theory.AdditiveEncoder(3, 2), None, steps=1, batch_size=1), "batch_size"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_glove_loads():
    words, vectors = theory.load_glove()
    assert len(words) == vectors.shape[0] == 400_000 and vectors.shape[1] == 50
    assert words[0] == "the"
