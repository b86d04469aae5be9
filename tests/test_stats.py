"""cwi.stats: exact values on toy corpora, invariances, errors, and the real corpus."""

import math

import numpy as np
import pandas as pd
import pytest
from tokenizers import normalizers, pre_tokenizers

from cwi import data, pipeline, stats

RAW = ["count", "n_sentences", "p", "self_information", "context_count", "information_gain"]


def raw_statistics(sentences, **kwargs):
    return stats.word_statistics(sentences, correction=None, **kwargs)


# --- the tokenizer ---------------------------------------------------------------


def bert_words(text):
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    return [w for w, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(normalizer.normalize_str(text))]


@pytest.mark.parametrize(
    "text, words",
    [
        ("Don't stop!", ["don", "'", "t", "stop", "!"]),
        ("A man is playing a guitar.", ["a", "man", "is", "playing", "a", "guitar", "."]),
        ("Café  naïve\tRÉSUMÉ", ["cafe", "naive", "resume"]),
        ("e-mail_address@x.org", ["e", "-", "mail", "_", "address", "@", "x", ".", "org"]),
        ("zero\u200bwidth", ["zerowidth"]),
        ("东京 tower", ["东", "京", "tower"]),
        ("", []),
    ],
)
def test_tokenize_cases(text, words):
    assert stats.tokenize(text) == words
    assert bert_words(text) == words


def test_tokenize_matches_bert_basic_tokenizer_on_sts(data_dir):
    frame = data.load_sts("sts14")  # forum posts and tweets: the messiest text
    texts = list(frame["sentence1"]) + list(frame["sentence2"])
    mismatches = [t for t in texts if stats.tokenize(t) != bert_words(t)]
    assert mismatches == []


# --- exact values on toy corpora -----------------------------------------------------


def test_toy_corpus_exact_values():
    table = raw_statistics(["a b", "a c", "b c d"])
    # 7 tokens: a, b, c twice each, d once.
    assert table.loc["a", "count"] == 2 and table.loc["d", "count"] == 1
    assert table.loc["a", "p"] == pytest.approx(2 / 7)
    assert table.loc["d", "self_information"] == pytest.approx(math.log(7))
    # p(.|a) = {b: 1/2, c: 1/2}
    assert table.loc["a", "information_gain"] == pytest.approx(2 * 0.5 * math.log(0.5 / (2 / 7)))
    # p(.|b): from "a b" -> a; from "b c d" -> c, d: {a: 1/3, c: 1/3, d: 1/3}
    expected_b = 2 / 3 * math.log((1 / 3) / (2 / 7)) + 1 / 3 * math.log((1 / 3) / (1 / 7))
    assert table.loc["b", "information_gain"] == pytest.approx(expected_b)
    # p(.|d) = {b: 1/2, c: 1/2}
    assert table.loc["d", "information_gain"] == pytest.approx(math.log(0.5 / (2 / 7)))
    assert table.loc["b", "context_count"] == 3
    assert table.attrs["n_tokens"] == 7 and table.attrs["n_sentences"] == 3


def test_repeated_word_counts_every_occurrence():
    # In "x x y" each x sees the other x and y; y sees two x.
    table = raw_statistics(["x x y", "y z"])
    # p = {x: 2/5, y: 2/5, z: 1/5}; p(.|x) = {x: 1/2, y: 1/2}; p(.|y) = {x: 2/3, z: 1/3}
    assert table.loc["x", "information_gain"] == pytest.approx(0.5 * math.log(0.5 / 0.4) * 2)
    expected_y = 2 / 3 * math.log((2 / 3) / 0.4) + 1 / 3 * math.log((1 / 3) / 0.2)
    assert table.loc["y", "information_gain"] == pytest.approx(expected_y)
    assert table.loc["x", "context_count"] == 4


def test_word_that_only_cooccurs_with_itself():
    table = raw_statistics(["a a", "b c"])
    # p(.|a) puts all mass on a, p(a) = 1/2
    assert table.loc["a", "information_gain"] == pytest.approx(math.log(2))
    assert table.loc["b", "information_gain"] == pytest.approx(math.log(4))


def test_one_word_sentence_keeps_the_word_without_information_gain():
    table = raw_statistics(["solo", "a b"])
    assert "solo" in table.index, "a word without context must be kept, not dropped"
    assert table.loc["solo", "context_count"] == 0
    assert np.isnan(table.loc["solo", "information_gain"])
    assert table.loc["a", "information_gain"] == pytest.approx(math.log(3))


def test_matches_reference_implementation_on_real_sentences(data_dir):
    sentences = data.load_wiki(limit=2000)
    table = raw_statistics(sentences, block_nnz=50_000)  # many blocks
    reference = stats.information_gain_reference(sentences)
    assert set(reference) == set(table.index)
    expected = np.array([reference[w] for w in table.index])
    np.testing.assert_allclose(table["information_gain"], expected, rtol=1e-10, atol=1e-12)


# --- invariances --------------------------------------------------------------------


CORPUS = ["the cat sat on the mat", "a dog sat", "the dog and the cat", "a bird sang", "mat"]


def test_sentence_order_does_not_matter():
    forward = raw_statistics(CORPUS)
    backward = raw_statistics(CORPUS[::-1])
    pd.testing.assert_frame_equal(forward, backward)


def test_duplicating_the_corpus_keeps_p_si_and_kl():
    once = raw_statistics(CORPUS)
    twice = raw_statistics(CORPUS * 2)
    for column in ["p", "self_information", "information_gain"]:
        np.testing.assert_allclose(twice[column], once[column], rtol=1e-12)
    np.testing.assert_array_equal(twice["count"], 2 * once["count"])


def test_block_size_does_not_change_results():
    sentences = CORPUS * 3 + ["one more sentence with the cat"]
    np.testing.assert_allclose(
        raw_statistics(sentences, block_nnz=1)["information_gain"],
        raw_statistics(sentences)["information_gain"],
        rtol=1e-12,
    )


# --- the frequency-bias correction --------------------------------------------------


def test_shuffle_correction_removes_bias_of_an_association_free_corpus():
    # Words drawn independently: the true information gain is 0 for every word,
    # but the raw estimate is biased upward; the shuffled baseline estimates that bias.
    rng = np.random.default_rng(1)
    vocab = [f"w{i}" for i in range(300)]
    weights = 1 / np.arange(1, 301)
    sentences = [" ".join(rng.choice(vocab, size=12, p=weights / weights.sum())) for _ in range(3000)]
    table = stats.word_statistics(sentences, correction="shuffle", n_shuffles=3, seed=0)
    assert table["information_gain"].mean() > 0.1
    assert abs(table["information_gain_corrected"].mean()) < 0.2 * table["information_gain"].mean()
    np.testing.assert_allclose(
        table["information_gain_corrected"],
        table["information_gain"] - table["information_gain_shuffled"],
    )


def test_shuffle_correction_is_seeded():
    first = stats.word_statistics(CORPUS * 5, seed=3)
    again = stats.word_statistics(CORPUS * 5, seed=3)
    other = stats.word_statistics(CORPUS * 5, seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["information_gain_shuffled"], other["information_gain_shuffled"])


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("corpus", [[], ["", "   ", "\n"]])
def test_empty_corpus_raises(corpus):
    with pytest.raises(ValueError, match="corpus has no words"):
        stats.word_statistics(corpus)


def test_non_string_sentence_raises():
    with pytest.raises(TypeError, match="sentence 1 is a int"):
        stats.word_statistics(["fine", 42])


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="correction"):
        stats.word_statistics(CORPUS, correction="percentile")
    with pytest.raises(ValueError, match="n_shuffles"):
        stats.word_statistics(CORPUS, n_shuffles=0)


def test_unknown_word_lookup_raises():
    table = raw_statistics(CORPUS)
    assert stats.lookup(table, ["cat", "dog"]).index.tolist() == ["cat", "dog"]
    with pytest.raises(KeyError, match="'unicorn'"):
        stats.lookup(table, ["cat", "unicorn"])
    with pytest.raises(KeyError, match="no column"):
        stats.lookup(table, ["cat"], column="weight")


# --- the cached corpus table and Wikipedia self-information ---------------------------


def test_corpus_statistics_is_cached_with_attrs(data_dir, monkeypatch):
    first = pipeline.corpus_statistics("smoke")
    assert first.attrs["n_sentences"] == 20_000
    assert {"information_gain_corrected", "information_gain_binned"} <= set(first.columns)
    assert first.attrs["bin_percentile"] == 5.0

    def must_not_recompute(*args, **kwargs):
        raise AssertionError("a second call with the same profile must load from the cache")

    monkeypatch.setattr(stats, "word_statistics", must_not_recompute)
    second = pipeline.corpus_statistics("smoke")
    assert second.attrs["cache_path"] == first.attrs["cache_path"]
    assert second.attrs["n_tokens"] == first.attrs["n_tokens"]
    pd.testing.assert_frame_equal(first, second)


def test_wikipedia_self_information():
    si = stats.wikipedia_self_information()
    assert len(si) > 800_000
    # "the": 175,007,854 of 2.4578e9 tokens
    assert si["the"] == pytest.approx(-math.log(175_007_854 / 2.45776e9), abs=1e-3)
    assert si.index.is_unique and (si > 0).all()


def test_frequency_bins_have_equal_width_in_log_count():
    """Counts 1, 2, 4, ..., 1024 (a toy Zipf tail): 10 bins of equal log width hold one power of two each."""
    counts = 2.0 ** np.arange(11)
    assert stats.frequency_bins(counts, 10).tolist() == list(range(10)) + [9]  # the top count closes the last bin
    assert stats.frequency_bins(counts, 1).tolist() == [0] * 11
    # Many words of low count, few of high count: equal numbers of words per bin would lump every frequent
    # word together; equal log width keeps 1,000 and 1,000,000 apart.
    zipf = np.concatenate([np.full(500, 10), np.full(50, 1_000), np.full(5, 1_000_000)])
    bins = stats.frequency_bins(zipf, 3)
    assert len(set(bins[500:550])) == 1 and bins[550] != bins[549] and bins[0] != bins[500]
    # A bin with too few words for a percentile joins its neighbour: the 5 most frequent join the 50.
    merged = stats.frequency_bins(zipf, 3, min_words=20)
    assert merged[-1] == merged[500] and merged[0] != merged[500] and merged.max() == 1
    with pytest.raises(ValueError, match="positive"):
        stats.frequency_bins(np.array([0, 1]), 2)


def test_bin_summary_counts_words_and_the_share_of_running_tokens():
    table = pd.DataFrame({"count": [1, 1, 100], "information_gain": [1.0, 2.0, 0.5]},
                         index=pd.Index(list("abc"), name="word"))
    summary = stats.bin_summary(table.join(stats.frequency_bin_correction(table, 2, 0)))
    assert summary["words"].tolist() == [2, 1] and summary["token share"].tolist() == pytest.approx([2 / 102, 100 / 102])
    assert summary["baseline (nats)"].tolist() == [1.0, 0.5]


def test_frequency_bin_correction_subtracts_the_bins_percentile():
    table = pd.DataFrame(
        {"count": [1, 1, 1, 1, 1, 9, 9, 9, 9], "information_gain": [5.0, 1.0, 3.0, 2.0, 4.0, 0.4, 0.1, np.nan, 0.3]},
        index=pd.Index(list("abcdefghi"), name="word"),
    )
    result = stats.frequency_bin_correction(table, n_bins=2, percentile=25)
    # Counts 1 and 9, two bins of equal log width: one count each.
    # Hand computed, linear interpolation: bin of count 1 holds 1,2,3,4,5 -> 25th percentile 2.0;
    # bin of count 9 holds 0.1,0.3,0.4 (NaN left out) -> position 0.5 between 0.1 and 0.3 = 0.2.
    assert result["frequency_bin"].tolist() == [0] * 5 + [1] * 4
    assert result["information_gain_bin_baseline"].tolist() == pytest.approx([2.0] * 5 + [0.2] * 4)
    expected = table["information_gain"] - np.array([2.0] * 5 + [0.2] * 4)
    pd.testing.assert_series_equal(result["information_gain_binned"], expected, check_names=False)
    assert np.isnan(result.loc["h", "information_gain_binned"])  # no context stays missing, never dropped
    with pytest.raises(ValueError, match="percentile"):
        stats.frequency_bin_correction(table, 2, 150)


def test_frequency_bin_correction_ignores_word_order():
    sentences = ["the cat sat on the mat", "a dog ate the bone", "the cat and the dog", "stocks fell on monday",
                 "a cat sat", "the market and the stocks rose"] * 3
    table = stats.word_statistics(sentences, correction=None)
    reordered = stats.word_statistics([" ".join(reversed(s.split())) for s in reversed(sentences)], correction=None)
    binned = stats.frequency_bin_correction(table, 3, 10)
    pd.testing.assert_frame_equal(binned, stats.frequency_bin_correction(reordered, 3, 10).loc[binned.index])
    shuffled_rows = table.sample(frac=1.0, random_state=0)  # the table's row order does not matter either
    pd.testing.assert_frame_equal(binned, stats.frequency_bin_correction(shuffled_rows, 3, 10).loc[binned.index])


def test_a_long_statistics_pass_tells_the_runners_terminal(tmp_path, monkeypatch):
    """Minutes on the default corpus: tokenizing, the corpus and each shuffle are passes the terminal hears of."""
    from cwi import progress

    log = tmp_path / "progress.log"
    monkeypatch.setenv("CWI_PROGRESS_FILE", str(log))
    monkeypatch.setattr(progress, "EVERY", 0.0)
    stats.word_statistics(["a b c", "a b d", "c d e"], correction="shuffle", n_shuffles=2)
    lines = log.read_text().splitlines()
    assert lines[0] == "word statistics: 4 passes to do"
    assert lines[-1].startswith("word statistics: 4/4 passes (100%)")
