"""cwi.train and the book checkpoints of cwi.runs: losses by hand, masking, determinism, the cache, the search."""

import dataclasses
import math
import os
import re

import pytest
import torch

import numpy as np

from cwi import config, data, models, pipeline, runs, train


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
    first = runs.book_checkpoint("mlm", SMOKE)
    record = train.history(first)
    assert len(record["losses"]) == settings.steps
    assert 0 <= record["heldout_accuracy"] <= 1 and record["heldout_loss"] > 0
    # Cache hit: same settings return the stored folder without training.
    stamp = os.path.getmtime(first / "model.safetensors")
    assert runs.book_checkpoint("mlm", SMOKE) == first
    assert os.path.getmtime(first / "model.safetensors") == stamp
    # Cache miss: a changed hyperparameter trains a new checkpoint.
    changed_profile = dataclasses.replace(
        SMOKE, finetune=dataclasses.replace(SMOKE.finetune, mlm=dataclasses.replace(settings, lr=5e-4)))
    assert runs.book_checkpoint("mlm", changed_profile) != first
    # Same settings in a fresh cache: the same weights, bit for bit.
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path))
    again = runs.book_checkpoint("mlm", SMOKE)
    assert again != first
    a = models.load_encoder(first).model.state_dict()
    b = models.load_encoder(again).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_simcse_step_changes_the_weights(data_dir):
    base = runs.book_checkpoint("mlm", SMOKE)
    sentences = data.load_wiki(limit=SMOKE.finetune.unsup.corpus_limit)
    model, _, record = train.train_simcse(base, sentences, dataclasses.replace(SMOKE.finetune.unsup, steps=1, snapshots=()),
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
        runs.book_checkpoint("cls-simcse", "smoke")


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


def test_word_vectors_start_whole_word_embeddings_and_keep_their_cosines(data_dir):
    sentences = data.load_wiki(limit=3000)
    tokenizer = train.train_wordpiece(sentences, 2000)
    settings = SMOKE.finetune.mlm
    model = train.new_mlm_model(settings, tokenizer)
    before = model.get_input_embeddings().weight.detach().clone()
    rng = np.random.default_rng(0)
    words = ["the", "city", "river", "##s", "zzzznotaword"]
    vectors = rng.normal(size=(len(words), 8)).astype(np.float32)
    covered = train.init_word_embeddings(model, tokenizer, words, vectors, seed=0)
    after = model.get_input_embeddings().weight.detach()
    vocab = tokenizer.get_vocab()
    assert covered == pytest.approx(3 / len(tokenizer))  # "##s" is a piece, the last word is not in the vocabulary
    rows = [vocab[w] for w in words[:3]]
    cosine = torch.nn.functional.cosine_similarity
    for i in range(3):
        for j in range(3):
            expected = cosine(torch.tensor(vectors[i]), torch.tensor(vectors[j]), dim=0)
            assert cosine(after[rows[i]], after[rows[j]], dim=0).item() == pytest.approx(expected.item(), abs=1e-5)
    assert after[rows].norm(dim=1).mean().item() == pytest.approx(1.0, abs=1e-5)
    untouched = [i for i in range(len(tokenizer)) if i not in rows]
    assert torch.equal(before[untouched], after[untouched])
    assert torch.equal(model.cls.predictions.decoder.weight, model.get_input_embeddings().weight)  # tied head
    with pytest.raises(ValueError, match="hidden_size >= 300"):
        train.init_word_embeddings(model, tokenizer, words, np.zeros((len(words), 300)), seed=0)


def test_search_keeps_each_runs_best_dev_snapshot_and_chooses_the_dev_argmax(data_dir):
    """The recipe is chosen by code: the candidate whose best dev snapshot scores highest, never test."""
    table = runs.search(SMOKE, supervised=False)
    candidates = SMOKE.finetune.candidates(False)
    assert len(table) == len(candidates) >= 2
    assert table["chosen"].sum() == 1 and table["stsb_dev"].idxmax() == table.index[table["chosen"]][0]
    chosen = runs.chosen(SMOKE, supervised=False)
    assert chosen == candidates[int(table["stsb_dev"].idxmax())]
    run = runs.simcse_run(SMOKE, False, chosen, SMOKE.seed)
    scores = run.dev_scores()
    assert list(scores.index) == sorted({0, *chosen.snapshots, chosen.steps}) and run.best_step == scores.drop(0).idxmax()
    assert table.loc[table["chosen"], "stsb_dev"].item() == scores.drop(0).max()
    assert runs.book_checkpoint("unsup-simcse", SMOKE) == run.checkpoint() == run.folder / f"step-{run.best_step:06d}"
    assert (run.checkpoint(0) / "model.safetensors").exists()  # the base, kept for the trajectory


def test_runs_are_cached_and_a_rerun_trains_nothing(data_dir, monkeypatch):
    settings = SMOKE.finetune.candidates(True)[0]
    first = runs.simcse_run(SMOKE, True, settings, SMOKE.seed)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a cached run must not train again")

    monkeypatch.setattr(train, "train_simcse", must_not_train)
    assert runs.simcse_run(SMOKE, True, settings, SMOKE.seed).folder == first.folder
    with pytest.raises(AssertionError, match="must not train"):  # another setting is another key
        runs.simcse_run(SMOKE, True, dataclasses.replace(settings, lr=settings.lr * 2), SMOKE.seed)


def test_the_trajectory_has_every_snapshot_and_a_rerun_computes_nothing(data_dir, monkeypatch):
    import pandas as pd

    from cwi import analysis, attribution

    first = pipeline.trajectory(SMOKE, supervised=False)
    run = runs.simcse_run(SMOKE, False, runs.chosen(SMOKE, False), SMOKE.finetune.search_seed(SMOKE.seed))
    assert set(first["seed"]) == {SMOKE.seed}  # the search seed's run of the chosen recipe
    assert sorted(first["step"].unique()) == list(run.dev_scores().index)
    assert set(first["quantity"]) == set(analysis.QUANTITIES)
    kept = first.drop_duplicates("step").set_index("step")
    assert kept["chosen"].sum() == 1 and kept.index[kept["chosen"]][0] == run.best_step
    assert (first["low"] <= first["beta"]).all() and (first["beta"] <= first["high"]).all()
    # The change since the base is paired: zero at the base, and inside its interval elsewhere.
    base = first[first["step"] == 0]
    assert (base["delta"] == 0).all() and (base["delta_low"] == 0).all()
    later = first[first["step"] > 0]
    assert (later["delta_low"] <= later["delta"]).all() and (later["delta"] <= later["delta_high"]).all()

    def must_not_compute(*args, **kwargs):
        raise AssertionError("a rerun must read the snapshots' weights from the cache")

    second = pipeline.trajectory(SMOKE, supervised=True)
    monkeypatch.setattr(train, "train_simcse", must_not_compute)
    monkeypatch.setattr(attribution, "word_weights", must_not_compute)
    pd.testing.assert_frame_equal(pipeline.trajectory(SMOKE, supervised=False), first)
    pd.testing.assert_frame_equal(pipeline.trajectory(SMOKE, supervised=True), second)
    # Step 0 is the base itself, under its own name: both runs' trajectories read the same tables.
    at_base = [frame[frame["step"] == 0].set_index("quantity")["beta"].sort_index() for frame in (first, second)]
    pd.testing.assert_series_equal(*at_base)


def test_two_seeds_give_different_weights_and_one_seed_the_same(data_dir, tmp_path, monkeypatch):
    """Model weights and the word weights read from them: seeds differ, a seed repeats bit for bit."""
    from cwi import attribution

    settings = runs.chosen(SMOKE, supervised=False)
    first_seed, second_seed = SMOKE.finetune.seed_list(SMOKE.seed)[:2]
    sentence = ["A man is playing a large flute."]

    def trained(seed):
        encoder = models.load_encoder(runs.simcse_run(SMOKE, False, settings, seed).checkpoint(settings.steps))
        return encoder.model.state_dict(), attribution.word_weights(encoder, sentence, "ig")["weight"].to_numpy()

    (model_a, words_a), (model_b, words_b) = trained(first_seed), trained(second_seed)
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path))  # a fresh cache: everything is trained again
    model_again, words_again = trained(first_seed)
    assert all(torch.equal(model_a[k], model_again[k]) for k in model_a)
    assert np.array_equal(words_a, words_again)
    assert not all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    assert not np.allclose(words_a, words_b)
    with pytest.raises(ValueError, match="contrastive seeds"):
        runs.book_checkpoint("unsup-simcse", SMOKE, seed=999)


def test_every_drawn_model_has_one_name_and_no_seed_of_the_search():
    """The Fine-tuning and Correlations chapters read a drawn model's tables under these names."""
    profile = dataclasses.replace(SMOKE, seed=7, finetune=dataclasses.replace(SMOKE.finetune, seeds=3,
                                                                                replication_seeds=2))
    names = pipeline.seed_model_names("book-sup-simcse", profile)
    assert names == {8: "book-sup-simcse (seed 8)", 9: "book-sup-simcse (seed 9)", 10: "book-sup-simcse (seed 10)"}
    draws = pipeline.draw_models(profile)
    assert draws["book-unsup-control (seed 9)"] == ("book-unsup-control", 9)
    assert draws["book-mlm-2"] == ("book-mlm-2", None)
    assert sorted(s for m, s in draws.values() if m == "book-unsup-simcse-2") == [8, 9]
    assert 7 not in {seed for _, seed in draws.values()}  # the search's seed draws nothing
    assert len(draws) == 4 * 3 + 1 + 2 * 2
    comparisons = pipeline.comparisons(profile)
    assert comparisons["book-sup"].controls == tuple(f"book-sup-control (seed {s})" for s in (8, 9, 10))
    assert comparisons["book-sup (selected)"].finetuned == ("book-sup-simcse",)
    assert comparisons["book-unsup-2"].pretrained == "book-mlm-2"
    alone = dataclasses.replace(profile, finetune=dataclasses.replace(profile.finetune, controls=False,
                                                                       replication_seeds=0))
    assert not any("control" in name or "-2" in name for name in pipeline.draw_models(alone))


def test_a_drawn_run_is_the_search_runs_schedule_stopped_at_the_recipes_step(data_dir):
    """A fresh seed stops at the recipe's step; its control trains on the same batches with another loss."""
    specs = runs.draw_specs(SMOKE)
    stop = {False: runs.recipe_step(SMOKE, False), True: runs.recipe_step(SMOKE, True)}
    assert {(s.kind, s.seed) for s in specs if s.base is None} == {
        (kind, seed) for kind in runs.KINDS for seed in SMOKE.finetune.seed_list(SMOKE.seed)}
    assert all(s.stop == stop[s.supervised] and s.settings == runs.chosen(SMOKE, s.supervised) for s in specs)
    second = [s for s in specs if s.base is not None]
    assert {s.kind for s in second} == {"unsup-simcse", "unsup-control"} and len(second) == 2 * SMOKE.finetune.replication_seeds
    assert all(s.base == runs.second_base(SMOKE) for s in second)
    simcse = runs.seed_runs(SMOKE, "unsup-simcse")
    control = runs.seed_runs(SMOKE, "unsup-control")
    seed = SMOKE.finetune.seed_list(SMOKE.seed)[0]
    assert simcse[seed].last_step == control[seed].last_step == stop[False]
    assert len(simcse[seed].record["losses"]) == stop[False] and control[seed].record["objective"] == "control"
    assert list(simcse[seed].dev_scores().index) == [0, stop[False]]  # no snapshot of its own to choose from
    assert runs.book_checkpoint("unsup-control", SMOKE, seed) == control[seed].checkpoint(stop[False])
    assert runs.book_checkpoint("unsup-simcse-2", SMOKE, seed) != runs.book_checkpoint("unsup-simcse", SMOKE, seed)
    # The search run, to the same step, is the same model a fresh seed would be with the search's seed.
    search_run = runs.simcse_run(SMOKE, False, runs.chosen(SMOKE, False), SMOKE.seed)
    stopped = runs.simcse_run(SMOKE, False, runs.chosen(SMOKE, False), SMOKE.seed, stop=stop[False])
    a = models.load_encoder(search_run.checkpoint(stop[False])).model.state_dict()
    b = models.load_encoder(stopped.checkpoint(stop[False])).model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_control_trains_on_simcses_batches_with_its_own_loss(tmp_path):
    """The masked-LM control and the NLI classifier: the loss at step 1 is the objective's, on the same examples."""
    tokenizer = train.train_wordpiece(["a man plays a guitar", "a woman sings", "the dog runs fast"] * 20, 60)
    mlm = config.MLMSettings(corpus_limit=None, heldout=1, steps=1, vocab_size=60, hidden_size=16, layers=1,
                             heads=2, intermediate_size=32, max_length=16, batch_size=4)
    model = train.new_mlm_model(mlm, tokenizer)
    train.save_checkpoint(tmp_path / "base", model, tokenizer, {"kind": "mlm"})
    triplets = [("a man plays a guitar", "a man plays", "a woman sings")] * 8
    settings = config.SimCSESettings(steps=3, batch_size=4, lr=1e-3, snapshots=(2,))
    _, _, record = train.train_control(tmp_path / "base", triplets, settings, True, seed=0, progress=False)
    assert record["objective"] == "control" and record["kind"] == "sup-control"
    assert record["losses"][0] == pytest.approx(math.log(2), abs=0.3)  # two labels, an untrained classifier
    sentences = [t[0] for t in triplets]
    _, _, record = train.train_control(tmp_path / "base", sentences, settings, False, seed=0, progress=False, stop=2)
    assert len(record["losses"]) == 2 and record["losses"][0] == pytest.approx(math.log(60), abs=1.0)
    with pytest.raises(ValueError, match="stop must be a step"):
        train.train_control(tmp_path / "base", sentences, settings, False, stop=9, progress=False)


def test_length_sorted_chunks_give_one_padded_batchs_vectors(tiny_encoder):
    """Chunking by length changes the padding, not a sentence's vector (eval mode: no dropout draws)."""
    texts = ["a", "a much longer sentence than the others here", "two words", "three words here", "x y"]
    model = tiny_encoder.model.eval()
    with torch.no_grad():
        chunked = train.encode_pooled(model, tiny_encoder.tokenizer, texts, 32, "mean", chunks=3)
        batch = tiny_encoder.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        whole = train.pool(model(**batch).last_hidden_state, batch["attention_mask"], "mean")
    assert torch.allclose(chunked, whole, atol=1e-5)
    assert train.length_chunks([5, 1, 3, 2], 2) == [[1, 3], [2, 0]]


def test_a_saved_checkpoint_draws_no_progress_bar(tiny_encoder, tmp_path, capfd):
    """transformers' "Writing model shards" bar would be one dead widget per snapshot in the book."""
    from transformers.utils import logging as transformers_logging

    train.save_checkpoint(tmp_path / "checkpoint", tiny_encoder.model, tiny_encoder.tokenizer, {"kind": "test"})
    assert "Writing model shards" not in capfd.readouterr().err
    assert (tmp_path / "checkpoint" / train.HISTORY_FILE).exists()
    assert transformers_logging.is_progress_bar_enabled()  # put back for the user's own saves


def test_the_terminal_names_each_search_candidate_and_seed(data_dir, tmp_path, monkeypatch):
    """A search of many minutes tells its terminal which candidate of how many is training, with which values."""
    log = tmp_path / "progress.log"
    monkeypatch.setenv("CWI_PROGRESS_FILE", str(log))
    grid = (("temperature", (0.07, 0.09)),)  # values no other test trains: these runs are cache misses
    profile = dataclasses.replace(SMOKE, finetune=dataclasses.replace(SMOKE.finetune, sup_search=grid, seeds=2))
    runs.search(profile, supervised=True)
    runs.seed_runs(profile, "sup-simcse")
    starts = [line for line in log.read_text().splitlines() if line.endswith("steps to do")]
    steps, stop = profile.finetune.sup.steps, runs.recipe_step(profile, True)
    assert starts[:2] == [f"sup-SimCSE 1/2 temperature=0.07: {steps} steps to do",
                          f"sup-SimCSE 2/2 temperature=0.09: {steps} steps to do"]
    fresh = SMOKE.seed + 1  # the search's own seed draws nothing
    assert f"sup-SimCSE seed {fresh}: {stop} steps to do" in starts
    assert f"sup-control seed {fresh}: {stop} steps to do" in starts


def test_damaged_checkpoints_are_trained_again_and_a_supplied_one_is_refused(data_dir, tmp_path, monkeypatch, caplog):
    """One flipped byte in checkpoint weights or a truncated run record: named, retrained, never served."""
    import shutil

    from cwi import integrity

    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path / "cache"))
    finetune = SMOKE.finetune
    tiny = dataclasses.replace(SMOKE, finetune=dataclasses.replace(
        finetune, sts_max_pairs=40,
        mlm=dataclasses.replace(finetune.mlm, steps=2, corpus_limit=400, word_vectors=None)))
    settings = dataclasses.replace(finetune.unsup, steps=2, snapshots=(1,), corpus_limit=64)

    def flip(path):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        integrity.forget()  # as a new process would: this one hashed the file already

    base = runs.mlm_checkpoint(tiny)
    weights = (base / "model.safetensors").read_bytes()
    flip(base / "model.safetensors")
    with caplog.at_level("WARNING", logger="cwi.cache"):
        assert runs.mlm_checkpoint(tiny) == base
    assert f"{base / 'model.safetensors'} does not match" in caplog.text
    assert (base / "model.safetensors").read_bytes() == weights  # trained again, bit for bit

    run = runs.simcse_run(tiny, False, settings, 0)
    step = run.checkpoint(1)
    weights, record = (step / "model.safetensors").read_bytes(), run.record
    flip(step / "model.safetensors")
    caplog.clear()
    with caplog.at_level("WARNING", logger="cwi.cache"):
        assert runs.simcse_run(tiny, False, settings, 0).checkpoint(1) == step
    assert f"{step / 'model.safetensors'} does not match" in caplog.text
    assert (step / "model.safetensors").read_bytes() == weights
    (run.folder / runs.RUN_FILE).write_text((run.folder / runs.RUN_FILE).read_text()[:40])  # truncated
    integrity.forget()
    caplog.clear()
    with caplog.at_level("WARNING", logger="cwi.cache"):
        assert runs.simcse_run(tiny, False, settings, 0).record == record
    assert f"{run.folder / runs.RUN_FILE} has" in caplog.text  # before: a bare JSONDecodeError

    supplied = tmp_path / "supplied"  # a user's copy of the run, manifest included
    shutil.copytree(run.folder, supplied)
    assert models.load_encoder(supplied / step.name).name == step.name
    flip(supplied / step.name / "model.safetensors")
    with pytest.raises(integrity.IntegrityError) as info:
        models.load_encoder(supplied / step.name)
    assert str(supplied / step.name / "model.safetensors") in str(info.value)
    assert "restore it from its source" in str(info.value)
    (supplied / integrity.MANIFEST).unlink()  # no manifest: loaded unchecked, as before
    models.load_encoder(supplied / step.name)
    (supplied / step.name / "model.safetensors").write_bytes(weights[:1000])  # truncated, no manifest
    with pytest.raises(models.ModelNotAvailableError, match=re.escape(str(supplied / step.name))):
        models.load_encoder(supplied / step.name)
