"""cwi.train and the book checkpoints of cwi.pipeline: losses by hand, masking, determinism, the cache."""

import dataclasses
import math
import os

import pytest
import torch

from cwi import config, data, models, pipeline, train


def test_simcse_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # cosine: the norm must not matter
    assert train.simcse_loss(a, a, 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)))
    hard = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    # row 0 scores positives [1, 0] and hard negatives [0, 1]: softmax over (1, 0, 0, 1)
    assert train.simcse_loss(a, a, 1.0, hard).item() == pytest.approx(math.log(2 + 2 / math.e))
    assert train.simcse_loss(a, a, 0.5).item() == pytest.approx(math.log(1 + math.exp(-2)))
    with pytest.raises(ValueError, match="at least 2"):
        train.simcse_loss(a[:1], a[:1], 0.05)


def test_mask_tokens_never_masks_special_or_padding():
    ids = torch.arange(10, 1010).reshape(10, 100)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    corrupted, picked = train.mask_tokens(ids, special, mask_id=3, vocab_size=2000, probability=0.15,
                                          generator=torch.Generator().manual_seed(0))
    assert not picked[special].any()
    assert 0.12 < picked.float().mean() < 0.18
    share_masked = (corrupted[picked] == 3).float().mean()
    assert 0.7 < share_masked < 0.9
    assert torch.equal(corrupted[~picked], ids[~picked])


SMOKE = config.get_profile("smoke")


def test_mlm_checkpoint_trains_caches_and_reproduces(data_dir, tmp_path, monkeypatch):
    settings = SMOKE.finetune.mlm
    first = pipeline.book_checkpoint("mlm", SMOKE)
    record = train.history(first)
    assert len(record["losses"]) == settings.steps
    assert 0 <= record["heldout_accuracy"] <= 1 and record["heldout_loss"] > 0
    # Cache hit: same settings return the stored folder without training.
    stamp = os.path.getmtime(first / "model.safetensors")
    assert pipeline.book_checkpoint("mlm", SMOKE) == first
    assert os.path.getmtime(first / "model.safetensors") == stamp
    # Cache miss: a changed hyperparameter trains a new checkpoint.
    changed_profile = dataclasses.replace(
        SMOKE, finetune=dataclasses.replace(SMOKE.finetune, mlm=dataclasses.replace(settings, lr=5e-4)))
    assert pipeline.book_checkpoint("mlm", changed_profile) != first
    # Same settings in a fresh cache: the same weights, bit for bit.
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path))
    again = pipeline.book_checkpoint("mlm", SMOKE)
    assert again != first
    a = models.load_encoder(first).model.state_dict()
    b = models.load_encoder(again).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_simcse_step_changes_the_weights(data_dir):
    base = pipeline.book_checkpoint("mlm", SMOKE)
    sentences = data.load_wiki(limit=SMOKE.finetune.unsup.corpus_limit)
    model, _, record = train.train_simcse(base, sentences, dataclasses.replace(SMOKE.finetune.unsup, steps=1),
                                          supervised=False, progress=False)
    before = models.load_encoder(base).model.state_dict()
    after = model.state_dict()
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert changed, "one SimCSE step left every weight unchanged"
    assert len(record["losses"]) == 1


def test_snli_triplets_leave_sick_out(data_dir):
    triplets = data.snli_triplets()
    assert len(triplets) > 5_000
    premise, entailed, contradicting = triplets[0]
    assert premise and entailed and contradicting and entailed != contradicting
    nli = data.load_nli()
    sick = set(nli.loc[nli["source"] == "sick", "premise"])
    snli = set(nli.loc[nli["source"] == "snli", "premise"])
    in_triplets = {premise for premise, _, _ in triplets}
    assert sick - snli, "the data pack has SICK premises that the triplets must leave out"
    assert in_triplets <= snli and not in_triplets & (sick - snli), "a SICK premise made it into training"


def test_book_checkpoint_rejects_unknown_names(data_dir):
    with pytest.raises(ValueError, match="unknown book checkpoint"):
        pipeline.book_checkpoint("cls-simcse", "smoke")


def test_book_models_load_by_name_through_the_pipeline_only(data_dir):
    with pytest.raises(ValueError, match="cwi.pipeline.load_encoder"):
        models.load_encoder("book-mlm")
    encoder = pipeline.load_encoder("book-mlm", SMOKE)
    assert encoder.name == "book-mlm" and encoder.pooling == models.MODELS["book-mlm"].pooling


def test_wordpiece_vocabulary_splits_words_like_the_statistics(data_dir):
    from cwi import data, stats

    sentences = data.load_wiki(limit=3000)
    tokenizer = train.train_wordpiece(sentences, 2000)
    assert len(tokenizer) == 2000
    text = "The Mortimer Wheeler excavations weren't finished."
    encoded = tokenizer(text)
    assert tokenizer.unk_token_id not in encoded["input_ids"]
    words = stats.tokenize(text)
    word_ids = [w for w in encoded.word_ids() if w is not None]
    assert sorted(set(word_ids)) == list(range(len(words)))
    pieces = {}
    for token, w in zip(encoded.tokens(), encoded.word_ids()):
        if w is not None:
            pieces.setdefault(w, []).append(token.removeprefix("##"))
    assert ["".join(pieces[i]) for i in range(len(words))] == words
