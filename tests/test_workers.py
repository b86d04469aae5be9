"""cwi.workers: independent cache fills in single-thread worker processes give what the calling process computes."""


import numpy as np
import pandas as pd
import pytest
import torch

from cwi import config, models, pipeline, progress, runs, workers

SMOKE = config.get_profile("smoke")


def test_the_worker_count_follows_the_setting_and_the_device(monkeypatch):
    monkeypatch.setenv(workers.ENVIRONMENT, "3")
    assert workers.workers(10) == 3 and workers.workers(2) == 2
    monkeypatch.setenv(workers.ENVIRONMENT, "0")
    with pytest.raises(ValueError, match="CWI_WORKERS must be a positive whole number"):
        workers.workers(4)
    monkeypatch.delenv(workers.ENVIRONMENT)
    assert workers.workers(10) == torch.get_num_threads() or torch.get_num_threads() > 10
    monkeypatch.setenv("CWI_DEVICE", "cuda")  # one accelerator: the jobs queue in this process
    assert workers.workers(10) == 1


def test_too_little_work_stays_in_this_process(monkeypatch, tmp_path):
    monkeypatch.setenv(workers.ENVIRONMENT, "2")
    log = tmp_path / "progress.log"
    monkeypatch.setenv(progress.ENVIRONMENT, str(log))
    assert not workers.fill([workers.Job(progress.announce, ("a",), 1)] * 2, min_work=10)
    assert not log.exists()  # nothing ran: the caller computes the jobs itself
    assert workers.fill([workers.Job(progress.announce, (f"job {i}",), 10) for i in range(3)], min_work=10, what="notes")
    lines = log.read_text().splitlines()
    assert lines[0] == "3 notes in 2 single-thread worker processes" and sorted(lines[1:]) == ["job 0", "job 1", "job 2"]


def test_runs_trained_by_workers_are_the_runs_this_process_trains(data_dir, tmp_path, monkeypatch):
    """Two fresh seeds in two worker processes, then again in this process (another cache): the same models."""
    monkeypatch.setenv(workers.ENVIRONMENT, "2")
    monkeypatch.setattr(runs, "PARALLEL_MIN_WORK", 0)
    specs = [spec for spec in runs.draw_specs(SMOKE) if spec.kind == "unsup-control" and spec.base is None]
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path / "parallel"))
    runs.mlm_search(SMOKE), runs.search(SMOKE, False), runs.search(SMOKE, True)  # the bases and the recipes
    parallel = runs.train_runs(SMOKE, specs)
    monkeypatch.setenv(workers.ENVIRONMENT, "1")
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path / "serial"))
    serial = runs.train_runs(SMOKE, specs)
    for a, b in zip(parallel, serial):
        assert a.record["losses"] == pytest.approx(b.record["losses"], rel=1e-4)
        first = models.load_encoder(a.checkpoint(a.last_step)).model.state_dict()
        second = models.load_encoder(b.checkpoint(b.last_step)).model.state_dict()
        assert all(torch.allclose(first[k], second[k], atol=1e-5) for k in first)


def test_word_weights_computed_by_workers_are_read_back_alike(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path))
    chosen = ["book-mlm", "book-sup-simcse"]
    serial = pipeline.profile_word_weights(SMOKE, models=chosen, methods=["ig"])
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path / "parallel"))
    for folder in ("checkpoints", "mlm_search"):  # the trained models, not their word weights
        (tmp_path / "parallel").mkdir(exist_ok=True)
        (tmp_path / "parallel" / folder).symlink_to(tmp_path / folder)
    monkeypatch.setenv(workers.ENVIRONMENT, "2")
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_SENTENCES", 0)
    parallel = pipeline.profile_word_weights(SMOKE, models=chosen, methods=["ig"])
    pd.testing.assert_frame_equal(parallel.drop(columns=["weight", "normalised_weight", "completeness_error",
                                                         "word_error"]),
                                  serial.drop(columns=["weight", "normalised_weight", "completeness_error",
                                                       "word_error"]))
    assert np.allclose(parallel["weight"], serial["weight"], rtol=1e-4)
