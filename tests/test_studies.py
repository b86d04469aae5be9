"""Study files: a profile as a TOML file, checked whole, with the user's models and pairs for its run only."""

import os
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from cwi import config, models, runs, studies

ROOT = Path(__file__).resolve().parents[1]


def write(folder: Path, text: str, name: str = "study.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def folder_models(tmp_path_factory, tiny_encoder) -> dict[str, Path]:
    """Two saved tiny models: one with trained pooler weights, one without (as the book's checkpoints)."""
    from transformers import BertModel

    root = tmp_path_factory.mktemp("folder-models")
    with_pooler, without = root / "with-pooler", root / "without-pooler"
    tiny_encoder.model.save_pretrained(with_pooler)
    tiny_encoder.tokenizer.save_pretrained(with_pooler)
    BertModel(tiny_encoder.model.config, add_pooling_layer=False).save_pretrained(without)
    tiny_encoder.tokenizer.save_pretrained(without)
    return {"with": with_pooler, "without": without}


def study_text(location: str, pooling: str = "mean", extra: str = "") -> str:
    return (f'extends = "smoke"\nname = "my-study"\n{extra}\n'
            f'[models.my-simcse]\nlocation = "{location}"\npooling = "{pooling}"\ncontrastive = true\n\n'
            '[pairs.mine]\npretrained = "book-mlm"\nfinetuned = "my-simcse"\n')


def test_a_study_extends_a_profile_and_adds_its_models_and_pairs_for_its_run_only(tmp_path, folder_models):
    path = write(tmp_path, study_text(str(folder_models["with"]), extra="[attribution]\nsentences_per_dataset = 3\n"))
    study = config.get_profile(str(path))
    smoke = config.get_profile("smoke")
    assert study.name == "my-study" and study.extends == "smoke" and study.study_file == str(path)
    assert study.attribution.sentences_per_dataset == 3 and study.attribution.datasets == smoke.attribution.datasets
    assert study.attribution.models == smoke.attribution.models + ("my-simcse",)  # joined, as for STS
    assert study.finetune.models == smoke.finetune.models + ("my-simcse",)
    assert study.model("my-simcse") == models.ModelSpec("folder", str(folder_models["with"]), "mean", True,
                                                        "declared in study.toml")
    assert list(study.pairs)[0] == "mine" and study.from_study("mine") and not study.from_study("book-sup")
    assert "my-simcse" not in models.MODELS and "mine" not in models.PAIRS  # the registry itself is untouched
    assert ("attribution.sentences_per_dataset", "3") in study.overrides
    assert config.get_profile(path) is study  # one object per unchanged file: caches keyed on it stay warm
    page = studies.describe(study)
    assert "my-study" in page and str(path) in page and "attribution.sentences_per_dataset" in page
    dry = config.get_profile(str(path) + config.DRY_RUN)
    assert dry.name == "my-study-dryrun" and dry.attribution.models == study.attribution.models
    assert dry.attribution.sentences_per_dataset == smoke.attribution.sentences_per_dataset
    assert config.get_profile(dry.reference) is dry


def test_a_study_that_changes_nothing_is_its_base(tmp_path):
    """The built-in profiles are studies' bases unchanged: a file that overrides nothing gives the same settings."""
    for base in ("smoke", "default", "paper"):
        study = config.get_profile(write(tmp_path, f'extends = "{base}"\n', f"my-{base}.toml"))
        plain = replace(study, name=base, study_file=None, extends=None, overrides=(), origin=None)
        assert plain == config.get_profile(base)


def test_a_study_that_only_overrides_sizes_reuses_the_trained_checkpoints(tmp_path, data_dir):
    from cwi import cache

    smoke = config.get_profile("smoke")
    trained = runs.book_checkpoint("unsup-simcse", smoke)  # trained here unless an earlier test did
    folders = sorted((cache.cache_dir() / "checkpoints").iterdir())
    study = config.get_profile(write(tmp_path, 'extends = "smoke"\n[attribution]\nsentences_per_dataset = 2\n'))
    assert runs.book_checkpoint("unsup-simcse", study) == trained
    assert runs.mlm_checkpoint(study) == runs.mlm_checkpoint(smoke)
    assert sorted((cache.cache_dir() / "checkpoints").iterdir()) == folders  # nothing trained again


# Each problem of a study file, and what its message must name besides the file.
PROBLEMS = {
    "unknown setting": ('extends = "smoke"\n[attribution]\nsentences_per_datset = 3\n',
                        "attribution.sentences_per_datset", "did you mean 'sentences_per_dataset'"),
    "unknown top-level": ('extends = "smoke"\n[atribution]\nsentences_per_dataset = 3\n', "atribution",
                          "did you mean 'attribution'"),
    "wrong type": ('extends = "smoke"\n[attribution]\nsentences_per_dataset = "ten"\n',
                   "attribution.sentences_per_dataset", "must be int"),
    "rejected value": ('extends = "smoke"\n[finetune.mlm]\nmask_probability = 1.5\n', "finetune.mlm",
                       "mask_probability must be in (0, 1)"),
    "no extends": ('name = "x"\n', "extends", "say which profile"),
    "unknown base": ('extends = "smok"\n', "extends", "unknown profile 'smok'"),
    "unknown model in a pair": ('extends = "smoke"\n[pairs.mine]\npretrained = "book-mlm"\nfinetuned = "my-simcs"\n',
                                "pairs.mine.finetuned", "unknown model 'my-simcs'"),
    "missing folder": (study_text("./nowhere"), "models.my-simcse.location", "no folder"),
    "model key": (study_text("./nowhere").replace("pooling =", "poolng ="), "models.my-simcse.poolng",
                  "did you mean 'pooling'"),
    "built-in name": ('extends = "smoke"\n[models.book-mlm]\nlocation = "a/b"\npooling = "mean"\n'
                      'contrastive = false\n', "models.book-mlm", "is a built-in model"),
    "pair without its model attributed": (
        study_text("{with}", extra='[attribution]\nmodels = ["book-mlm"]\n'), "pairs.mine", "not in [attribution] models"),
    "not TOML": ('extends = "smoke\n', "", "not valid TOML"),
    "unknown attributed model": ('extends = "smoke"\n[attribution]\nmodels = ["book-mlm", "nope"]\n',
                                 "attribution.models", "unknown model 'nope'"),
    "book models dropped from STS": ('extends = "smoke"\n[finetune]\nmodels = ["all-MiniLM-L6-v2"]\n',
                                     "finetune.models", "must keep the book's own models"),
    "unknown corpus": ('extends = "smoke"\ncorpus = "nope"\n', "corpus", "unknown corpus"),
    "a built-in name": ('extends = "smoke"\nname = "default"\n', "name", "built-in profile's name"),
    "revision not a string": (study_text("a/b").replace("contrastive = true", "contrastive = true\nrevision = 5"),
                              "models.my-simcse.revision", "must be str"),
    "normalized not a bool": (study_text("a/b").replace("contrastive = true", 'contrastive = true\nnormalized = "no"'),
                              "models.my-simcse.normalized", "must be bool"),
    "pair model not a string": ('extends = "smoke"\n[pairs.mine]\nfinetuned = 3\n', "pairs.mine.finetuned",
                                "must be str"),
    "a pair of one model": ('extends = "smoke"\n[pairs.mine]\npretrained = "book-sup-simcse"\n'
                            'finetuned = "book-sup-simcse"\n', "pairs.mine", "name the same model"),
    "settings across blocks": ('extends = "smoke"\n[attribution]\ndraw_methods = ["shap"]\n', "settings",
                               "profile 'study': analysis.claims use ig"),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_every_problem_of_a_study_file_names_the_file_and_the_key(problem, tmp_path, folder_models):
    text, key, message = PROBLEMS[problem]
    path = write(tmp_path, text.replace("{with}", str(folder_models["with"])))
    with pytest.raises(studies.StudyError) as raised:
        config.get_profile(str(path))
    assert str(raised.value).startswith(f"{path}: {key}"), str(raised.value)
    assert message in str(raised.value) and raised.value.key == key


def test_a_folder_without_pooler_weights_cannot_pool_through_them(tmp_path, folder_models):
    path = write(tmp_path, study_text(str(folder_models["without"]), pooling="cls"))
    with pytest.raises(studies.StudyError, match=rf"^{path}: models.my-simcse.pooling: .* no trained pooler weights"):
        config.get_profile(path)
    assert config.get_profile(write(tmp_path, study_text(str(folder_models["with"]), pooling="cls"), "ok.toml"))


def test_a_hub_model_without_a_revision_is_named_in_a_warning(tmp_path):
    path = write(tmp_path, study_text("someone/my-simcse"))
    with pytest.warns(UserWarning, match=rf"{path}: models.my-simcse: the Hub model 'someone/my-simcse' has no revision"):
        study = config.get_profile(path)
    assert study.model("my-simcse").kind == "hub"
    pinned = write(tmp_path, study_text("someone/my-simcse").replace("contrastive = true",
                                                                     f'contrastive = true\nrevision = "{"a" * 40}"'),
                   "pinned.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert config.get_profile(pinned).model("my-simcse").revision == "a" * 40


def test_relative_folders_and_extends_are_read_from_the_study_files_folder(tmp_path, folder_models):
    (tmp_path / "models").symlink_to(folder_models["with"].parent)
    write(tmp_path, study_text("models/with-pooler"), "base.toml")
    child = write(tmp_path, 'extends = "base.toml"\nname = "child"\n[attribution]\nsentences_per_dataset = 2\n',
                  "child.toml")
    study = config.get_profile(child)
    assert study.model("my-simcse").location == str(folder_models["with"].resolve())
    assert "mine" in study.pairs and study.extends == "base.toml"
    write(tmp_path, 'extends = "loop.toml"\n', "loop.toml")
    with pytest.raises(studies.StudyError, match=r"^\S+loop.toml: extends: the study extends itself"):
        config.get_profile(tmp_path / "loop.toml")


def test_the_command_line_refuses_a_bad_study_before_any_work(tmp_path, data_dir):
    """Nothing is trained or cached before the file validates: the run stops with one line naming file and key."""
    path = write(tmp_path, 'extends = "smoke"\n[attribution]\nsentences_per_dataset = "ten"\n')
    cache = tmp_path / "cache"
    result = subprocess.run([sys.executable, "-m", "cwi", "--root", str(ROOT), "book", "--profile", str(path)],
                            capture_output=True, text=True, env={**os.environ, "CWI_CACHE_DIR": str(cache)})
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: {path}: attribution.sentences_per_dataset: must be int or \"none\", "
                                     "got 'ten'")
    assert not cache.exists() or not any(cache.rglob("*"))


def test_search_grids_and_nones_inside_arrays_convert_to_what_the_settings_hold(tmp_path):
    path = write(tmp_path, 'extends = "smoke"\n[finetune]\nunsup_search = [["dropout", [0.1, 0.2]]]\n'
                           'mlm_search = [["word_vectors", ["glove", "none"]]]\n'
                           '[attribution]\nsentences_by_model = [["all-MiniLM-L6-v2", 2]]\n')
    study = config.get_profile(path)
    assert study.finetune.unsup_search == (("dropout", (0.1, 0.2)),)
    assert study.finetune.mlm_search == (("word_vectors", ("glove", None)),)
    assert study.attribution.sentences_by_model == (("all-MiniLM-L6-v2", 2),)
    assert hash(study) and [s.word_vectors for s in study.finetune.mlm_candidates()] == ["glove", None]


def test_an_edit_down_the_extends_chain_is_read_again(tmp_path):
    base = write(tmp_path, 'extends = "smoke"\n[attribution]\nsentences_per_dataset = 3\n', "base.toml")
    child = write(tmp_path, 'extends = "base.toml"\nname = "child"\n', "child.toml")
    assert config.get_profile(child).attribution.sentences_per_dataset == 3
    base.write_text('extends = "smoke"\n[attribution]\nsentences_per_dataset = 2\n')
    assert config.get_profile(child).attribution.sentences_per_dataset == 2
    dry = config.get_profile(write(tmp_path, 'extends = "base.toml-dryrun"\nname = "dry-child"\n', "dry.toml"))
    assert dry.attribution.sentences_per_dataset == config.get_profile("smoke").attribution.sentences_per_dataset


def test_overrides_down_a_chain_are_listed_once_with_the_last_value(tmp_path):
    write(tmp_path, 'extends = "smoke"\n[attribution]\nsentences_per_dataset = 3\n', "base.toml")
    child = config.get_profile(write(tmp_path, 'extends = "base.toml"\nname = "c"\n[attribution]\n'
                                               'sentences_per_dataset = 2\n', "c.toml"))
    assert child.overrides == (("attribution.sentences_per_dataset", "2"),)
