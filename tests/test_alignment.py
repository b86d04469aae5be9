"""Words aligned with tokens by character offsets, for every tokenizer family the paper's models use.

The statistics count the words of ``cwi.stats.tokenize``; the attribution table
must have one row per such word, whatever the model's tokenizer: WordPiece (BERT,
MPNet), byte-level BPE (RoBERTa) and SentencePiece Unigram (ALBERT, XLM-R), each
trained here on the data pack plus the hard cases below.
"""

import pytest
import torch

from cwi import attribution, encoders, inputs, stats

import hub_models

# The cases: contractions, possessives, hyphens, decimals, abbreviations with dots,
# quotes, dashes and non-ASCII text.
CASES = [
    "I don't think they'll say it isn't so, can't we?",
    "The cat's toy and James' book were in the children's room.",
    "A well-known state-of-the-art model -- or so they said.",
    "It costs $3.14, down 2.5% from 1,000.75 yesterday.",
    "The U.S. and e.g. Dr. Smith arrived at 5 p.m. sharp...",
    'He said "hello," then \'goodbye\' and \u201csee you\u201d.',
    "Caf\u00e9 na\u00efve Z\u00fcrich \u2014 \u6771\u4eac, fa\u00e7ade r\u00e9sum\u00e9.",
]
FAMILIES = ("wordpiece", "mpnet", "bpe", "sentencepiece")


@pytest.fixture(scope="module")
def texts(data_dir):
    # The cases, repeated, so that the vocabularies learn tokens that straddle words ("'t", '."').
    return hub_models.sentences(2_000) + CASES * 40


@pytest.fixture(scope="module")
def tokenizers(texts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizers")
    return {
        "wordpiece": hub_models.bert_tokenizer(texts, folder / "wordpiece"),
        "mpnet": hub_models.mpnet_tokenizer(texts, folder / "mpnet"),
        "bpe": hub_models.roberta_tokenizer(texts, folder / "bpe"),
        "sentencepiece": hub_models.sentencepiece_tokenizer(texts),
    }


def tiny_encoder(tokenizer, family: str) -> encoders.Encoder:
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    sizes = dict(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=32, max_position_embeddings=130, attn_implementation="eager")
    if family == "wordpiece":
        model = BertModel(BertConfig(**sizes), add_pooling_layer=False)
    elif family == "mpnet":
        model = MPNetModel(MPNetConfig(**sizes), add_pooling_layer=False)
    else:
        model = RobertaModel(RobertaConfig(pad_token_id=tokenizer.pad_token_id, type_vocab_size=1, **sizes),
                             add_pooling_layer=False)
    return encoders.Encoder(model, tokenizer, "mean", family)


@pytest.fixture(scope="module")
def tiny(tokenizers):
    return {family: tiny_encoder(tokenizer, family) for family, tokenizer in tokenizers.items()}


def test_align_words_by_hand():
    # Tokens: [CLS], "don", "'t" (straddles "'" and "t"), a bare space piece, "go", [SEP].
    offsets = [(0, 0), (0, 3), (3, 5), (5, 6), (6, 8), (0, 0)]
    special = [True, False, False, False, False, True]
    words, spans, membership, index = inputs.align_words("don't go", offsets, special)
    assert words == ["don", "'", "t", "go"] and spans == [(0, 3), (3, 4), (4, 5), (6, 8)] and index == [0, 1, 2, 3]
    expected = torch.tensor([[0, 1, 0, 0, 0, 0],
                             [0, 0, 0.5, 0, 0, 0],
                             [0, 0, 0.5, 0, 0, 0],
                             [0, 0, 0, 1, 1, 0]])  # the space piece goes to the next word
    torch.testing.assert_close(membership, expected)


def test_a_word_without_tokens_is_left_out_with_a_warning():
    with pytest.warns(UserWarning, match=r"no token to the word\(s\) \['b'\]"):
        words, _, membership, index = inputs.align_words("a b", [(0, 1)], [False])
    assert words == ["a"] and membership.tolist() == [[1.0]] and index == [0]


def test_an_unknown_word_is_a_word_not_a_special_token(tiny):
    """[UNK] is in a tokenizer's special ids; a word that comes out as [UNK] is still weighted, in its place."""
    encoder = tiny["wordpiece"]
    sentence = "I love \U0001F984 and \u2603 ok"
    assert encoder.tokenizer.unk_token in encoder.tokenizer.tokenize(sentence)
    table = attribution.word_weights(encoder, [sentence], method="ig", points=(9, 17))
    assert table["word"].tolist() == stats.tokenize(sentence)
    assert table["word_index"].tolist() == list(range(len(stats.tokenize(sentence))))


def test_word_spans_are_the_tokenize_words():
    for case in CASES:
        spans = stats.word_spans(case)
        assert [word for word, _, _ in spans] == stats.tokenize(case)
        assert ["".join(stats.tokenize(case[start:end])) for _, start, end in spans] == stats.tokenize(case)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_word_of_the_statistics_gets_its_tokens(tiny, family):
    encoder = tiny[family]
    for case in CASES:
        prepared = inputs.prepare(encoder, case)
        assert prepared.word_text == stats.tokenize(case), family
        shares = prepared.membership.sum(dim=0)
        torch.testing.assert_close(shares[prepared.special], torch.zeros(int(prepared.special.sum())))
        torch.testing.assert_close(shares[~prepared.special], torch.ones(int((~prepared.special).sum())))
        assert all(prepared.words), f"{family}: a word without tokens in {case!r}"


def test_the_test_tokenizers_straddle_words(tiny):
    """Byte-level BPE and SentencePiece have tokens across words, and those are shared by characters."""
    for family in ("bpe", "sentencepiece"):
        shared = []
        for case in CASES:
            prepared = inputs.prepare(tiny[family], case)
            shared += [column for column in prepared.membership.T if (column > 0).sum() > 1]
        assert shared, f"no {family} token straddles words: the cases test nothing"
        for column in shared:
            assert column.sum().item() == pytest.approx(1.0)
    prepared = inputs.prepare(tiny["bpe"], "I don't know.")
    tokens = tiny["bpe"].tokenizer.convert_ids_to_tokens(prepared.input_ids.tolist())
    assert "'t" in tokens
    column = prepared.membership[:, tokens.index("'t")]
    assert column[prepared.word_text.index("'")].item() == column[prepared.word_text.index("t")].item() == 0.5


def test_wordpiece_words_are_the_tokenizers_own(tiny):
    """For BERT's tokenizers nothing straddles: the words are the fast tokenizer's ``word_ids()`` groups."""
    for family in ("wordpiece", "mpnet"):
        for case in CASES:
            prepared = inputs.prepare(tiny[family], case)
            groups: dict[int, list[int]] = {}
            for position, word in enumerate(prepared.batch.word_ids(0)):
                if word is not None and not prepared.special[position]:
                    groups.setdefault(word, []).append(position)
            assert prepared.words == list(groups.values())
            assert set(prepared.membership.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("family", FAMILIES)
def test_word_weights_keep_completeness_on_every_tokenizer(tiny, family):
    encoder = tiny[family]
    ig = attribution.word_weights(encoder, CASES, method="ig", points=(9, 17, 33))
    shap = attribution.word_weights(encoder, CASES[:3], method="shap")
    assert ig["word"].tolist() == [w for case in CASES for w in stats.tokenize(case)]
    assert shap["word"].tolist() == [w for case in CASES[:3] for w in stats.tokenize(case)]
    assert (ig.groupby("sentence_id")["completeness_error"].first() < 0.05).all()
    assert (shap["completeness_error"] < 1e-5).all()


@pytest.mark.parametrize("family", ["bpe", "sentencepiece"])
def test_shared_tokens_give_the_exact_shapley_values_of_a_linear_model(tokenizers, family):
    """On a linear encoder a word's exact Shapley vector is its shares of its tokens' exact vectors: IG and SHAP get it."""
    from test_attribution import BagOfWords

    torch.manual_seed(2)
    linear = encoders.Encoder(BagOfWords(len(tokenizers[family])), tokenizers[family], "mean", "bag")
    sentence = next(case for case in CASES if any((column > 0).sum() > 1 for column in
                                                  inputs.prepare(linear, case).membership.T))
    prepared = inputs.prepare(linear, sentence)
    with torch.no_grad():
        exact_tokens = linear.model.linear(prepared.inputs - prepared.baseline) / prepared.length
    exact = prepared.to_words(exact_tokens)
    shap = attribution.word_shap(linear, [sentence])[0].values
    ig = attribution.word_integrated_gradients(linear, [sentence], points=3, rule="gauss-legendre")[0].values
    assert (shap - exact).abs().max().item() < 1e-6
    assert (ig - exact).abs().max().item() < 1e-6
    owner_only = prepared.membership.gt(0).float() @ exact_tokens  # a rule without shares would give this
    assert (owner_only - exact).abs().max().item() > 1e-4, "the sentence has no shared token to test"


def test_a_long_sentence_is_cut_after_a_whole_word(tiny):
    encoder = tiny["bpe"]
    short = encoders.Encoder(encoder.model, encoder.tokenizer, "mean", "bpe-short", max_length=12)
    text, cut = attribution.fit_to_length(short, CASES[0])
    assert cut and CASES[0].startswith(text) and len(short.tokenizer(text)["input_ids"]) <= 12
    assert stats.tokenize(text) == stats.tokenize(CASES[0])[: len(stats.tokenize(text))]
    assert text == text.rstrip() and not text[-1].isspace()
