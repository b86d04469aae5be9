"""cwi.train: losses by hand, masking, determinism, the checkpoint cache, STS evaluation."""

import dataclasses
import math
import os

import numpy as np
import pytest
import torch

from cwi import config, models, train


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
    first = train.pretrain_mlm(settings, seed=0, progress=False)
    record = train.history(first)
    assert len(record["losses"]) == settings.steps
    assert 0 <= record["heldout_accuracy"] <= 1 and record["heldout_loss"] > 0
    # Cache hit: same settings return the stored folder without training.
    stamp = os.path.getmtime(first / "model.safetensors")
    assert train.pretrain_mlm(settings, seed=0, progress=False) == first
    assert os.path.getmtime(first / "model.safetensors") == stamp
    # Cache miss: a changed hyperparameter trains a new checkpoint.
    changed = train.pretrain_mlm(dataclasses.replace(settings, lr=5e-4), seed=0, progress=False)
    assert changed != first
    # Same settings in a fresh cache: the same weights, bit for bit.
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path))
    again = train.pretrain_mlm(settings, seed=0, progress=False)
    assert again != first
    a = models.load_encoder(first).model.state_dict()
    b = models.load_encoder(again).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_simcse_step_changes_the_weights(data_dir):
    base = train.pretrain_mlm(SMOKE.finetune.mlm, seed=0, progress=False)
    tuned = train.train_simcse(base, dataclasses.replace(SMOKE.finetune.unsup, steps=1), supervised=False,
                               progress=False)
    before = models.load_encoder(base).model.state_dict()
    after = models.load_encoder(tuned).model.state_dict()
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert changed, "one SimCSE step left every weight unchanged"
    assert len(train.history(tuned)["losses"]) == 1


def test_snli_triplets_leave_sick_out(data_dir):
    triplets = train.snli_triplets()
    assert len(triplets) > 5_000
    premise, entailed, contradicting = triplets[0]
    assert premise and entailed and contradicting and entailed != contradicting


def test_sts_spearman_on_a_toy_set_with_known_value():
    angles = np.array([0.1, 0.2, 0.4, 0.3])  # cosine falls with the angle
    first = np.tile([1.0, 0.0], (4, 1))
    second = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    gold = [4, 3, 2, 1]
    # ranks of cosine: 4, 3, 1, 2 against gold 4, 3, 2, 1: sum d^2 = 2, rho = 1 - 6*2/(4*15)
    assert train.sts_spearman(first, second, gold) == pytest.approx(80.0)


def test_book_checkpoint_rejects_unknown_names(data_dir):
    with pytest.raises(ValueError, match="unknown book checkpoint"):
        train.book_checkpoint("cls-simcse", "smoke")


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
