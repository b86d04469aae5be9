"""Distributed attribution: shards on a local Dask cluster of 2 workers give the serial tables, and are cached."""

import pandas as pd
import pytest
import torch

from cwi import cache, config, pipeline, shards

MODELS = ["book-mlm", "book-sup-simcse"]  # trained for the profile before any shard runs


def test_the_plan_covers_every_block_of_every_table():
    profile = config.get_profile("smoke")
    plan = shards.plan(profile, MODELS)
    settings = profile.attribution
    assert len(plan) == len(set(plan)) == len(MODELS) * len(settings.datasets) * 2  # smoke: one block per table
    assert str(plan[0]) == "book-mlm / stsb / ig / block 0"


def test_a_table_is_its_blocks(data_dir, tiny_encoder):
    from dataclasses import replace

    profile = config.get_profile("smoke")
    blocked = replace(profile, attribution=replace(profile.attribution, block_sentences=3))
    whole = pipeline.word_weights(tiny_encoder, "stsb", "ig", profile)
    parts = pipeline.word_weights(tiny_encoder, "stsb", "ig", blocked)
    assert pipeline.word_weight_blocks("tiny", "stsb", blocked) == 2 and len(parts.attrs["cache_paths"]) == 2
    assert parts["sentence_id"].tolist() == whole["sentence_id"].tolist()
    pd.testing.assert_frame_equal(parts[["sentence_id", "sentence", "word"]], whole[["sentence_id", "sentence", "word"]])
    pd.testing.assert_series_equal(parts["weight"], whole["weight"], rtol=1e-5)  # other batches: rounding only


def test_two_workers_give_the_serial_tables_and_never_recompute(data_dir, tmp_path, tiny_encoder):
    """`python -m cwi attribute --profile study.toml`: a study's own folder model beside the book's, on 2 workers.

    The workers rebuild the study from its file; the book then reads every block.
    """
    folder = tmp_path / "tiny-simcse"
    tiny_encoder.model.save_pretrained(folder)
    tiny_encoder.tokenizer.save_pretrained(folder)
    study = tmp_path / "study.toml"
    study.write_text('extends = "smoke"\n[models.tiny-simcse]\nlocation = "tiny-simcse"\npooling = "mean"\n'
                     'contrastive = true\n[pairs.mine]\npretrained = "book-mlm"\nfinetuned = "tiny-simcse"\n')
    study, wanted = str(study), ["book-mlm", "tiny-simcse"]
    pipeline.profile_word_weights(study, models=wanted)  # the book's model trained first, with the usual threads
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the serial run as each of 2 workers on 2 cores: reductions split alike
    try:
        clear_tables()
        serial = pipeline.profile_word_weights(study, models=wanted)
    finally:
        torch.set_num_threads(threads)
    clear_tables()
    report = shards.run(study, workers=2, models=wanted, torch_threads=1)
    assert (report["status"] == "computed").all() and len(report) == len(shards.plan(study, wanted))
    distributed = pipeline.profile_word_weights(study, models=wanted)  # every block read from the cache
    pd.testing.assert_frame_equal(distributed, serial, check_exact=True)
    again = shards.run(study, workers=2, models=wanted)
    assert (again["status"] == "cached").all()


def test_workers_refuse_a_profile_they_cannot_rebuild():
    from dataclasses import replace

    changed = replace(config.get_profile("smoke"), seed=1)
    with pytest.raises(ValueError, match="write the change into a study file"):
        shards.run(changed, workers=2)


def clear_tables():
    """Remove the word-weight tables only: the trained models stay."""
    for path in (cache.cache_dir() / "word_weights").glob("*"):
        path.unlink()


def test_a_failing_shard_is_reported_by_name(data_dir, monkeypatch):
    plan = shards.plan("smoke", MODELS[:1])
    broken = shards.Shard("book-mlm", "stsb", "ig", 7)  # past the table's one block
    monkeypatch.setattr(shards, "plan", lambda profile, models=None: plan[:1] + [broken])
    real_missing = shards._missing
    monkeypatch.setattr(shards, "_missing", lambda profile, wanted: (list(wanted), real_missing(profile, plan[:1])[1]))
    with pytest.raises(shards.ShardsFailed, match=r"book-mlm / stsb / ig / block 7: ValueError: block 7 .* past"):
        shards.run("smoke", workers=2, models=MODELS[:1], retries=0)


def test_the_estimate_counts_every_planned_sentence(data_dir):
    from cwi import attribution

    smoke = config.get_profile("smoke")
    rough = shards.estimate(smoke, shards.plan(smoke, ["book-mlm"]))
    assert sorted(rough["method"]) == sorted(attribution.METHODS)
    assert (rough["sentences"] == smoke.attribution.sentences("book-mlm") * len(smoke.attribution.datasets)).all()
    assert (rough["seconds"] > 0).all()


def test_the_fingerprint_ignores_what_a_call_left_in_the_tokenizer(tiny_encoder):
    """Tokenizing with padding and truncation leaves them set on the tokenizer: the cache key must not see it."""
    before = pipeline.encoder_fingerprint(tiny_encoder)
    tiny_encoder.tokenize(["a sentence to pad and to truncate", "short"])
    assert pipeline.encoder_fingerprint(tiny_encoder) == before
