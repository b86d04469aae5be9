"""Shared test setup: an isolated artefact cache and the data folder."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Two lanes (pyproject.toml: pytest-xdist, -n auto --dist loadgroup): each worker is one process with one torch
# thread, and so are the chapter kernels it starts (the runner keeps a user's OMP_NUM_THREADS). Two single-thread
# processes do more on two cores than one process with two threads (README, "Threads").
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


# The two whole-book tests first, so that each lane starts one at once (xdist hands out tests in this order): the
# study book in one, the smoke book's build in the other, which the smoke book's other tests then read.
FIRST = ("test_a_study_file_runs_the_whole_book", "test_whole_book_runs_with_the_smoke_profile")


def pytest_collection_modifyitems(items):
    """Put the :data:`FIRST` tests first, the rest in their order."""
    items.sort(key=lambda item: next((i for i, name in enumerate(FIRST) if item.name.startswith(name)), len(FIRST)))


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: two lanes where the machine has two usable CPUs or more, else one."""
    from cwi.__main__ import usable_cpus

    return min(2, usable_cpus())

# No test may reach the Hugging Face Hub: the offline path is what we test. Set before
# any test module imports huggingface_hub, which reads these once at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# The tests' expectations are CPU ones (tensors built on the CPU, exact equalities): models stay there.
os.environ["CWI_DEVICE"] = "cpu"
# The Hub cache the tests see is their own (the `hub_cache` fixture fills it), never the user's.
HF_HOME = Path(tempfile.mkdtemp(prefix="cwi-hf-home-"))
os.environ["HF_HOME"] = str(HF_HOME)
atexit.register(shutil.rmtree, HF_HOME, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory, worker_id):
    """Every test session writes artefacts to a fresh folder, never the user's cache.

    The lanes of one session share it (the folder beside their own temporary folders), as two runs of the book
    may: the first to finish an artefact wins and the other reads it.
    """
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if worker_id != "master" else base) / "cwi-cache"
    folder.mkdir(exist_ok=True)
    os.environ["CWI_CACHE_DIR"] = str(folder)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline data pack; the tests need it (README: CWI_DATA_DIR=../shared/data)."""
    folder = os.environ.get("CWI_DATA_DIR")
    assert folder, "set CWI_DATA_DIR to the offline data pack, e.g. CWI_DATA_DIR=../shared/data"
    folder = Path(folder).resolve()
    assert (folder / "sts" / "stsb.tsv").exists(), f"CWI_DATA_DIR={folder} does not hold the data pack"
    os.environ["CWI_DATA_DIR"] = str(folder)  # kernels run in other working directories
    return folder


@pytest.fixture(scope="session")
def tiny_encoder():
    """A tiny random BERT (mean pooling) with the all-MiniLM tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from cwi import encoders, models

    minilm = models.load_encoder("all-MiniLM-L6-v2")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=minilm.tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32, attn_implementation="eager")
    return encoders.Encoder(BertModel(config), minilm.tokenizer, "mean", "tiny")


@pytest.fixture(scope="session")
def hub_cache(data_dir) -> Path:
    """Every Hub model of the registry, tiny and random, in the Hub cache the tests' HF_HOME names.

    ``cwi.models.load_encoder`` then loads them by their real ids, offline, with
    the ordinary Hub code (``tests/hub_models.py`` says what each keeps of its original).
    """
    import hub_models

    return hub_models.build_hub_cache(HF_HOME)
