"""Study files: a profile written as a TOML file, with the user's own encoders and pairs.

A study extends a built-in profile (or another study file), overrides any of its
settings and declares its own models and pairs; :func:`cwi.config.get_profile`
reads it (``python -m cwi book --profile study.toml``)::

    extends = "paper"
    name = "my-study"

    [attribution]
    sentences_per_dataset = 200

    [models.my-simcse]
    location = "/data/models/my-simcse"      # a folder, or a Hub id with revision = "<commit>"
    pooling = "cls_before_pooler"
    contrastive = true

    [pairs.mine]
    pretrained = "bert-base-uncased"
    finetuned = "my-simcse"

A table (``[attribution]``, ``[finetune.mlm]``) is the settings object of that
name (:class:`cwi.config.Profile`'s fields); a key is one of its attributes,
typed as the dataclass says (arrays for tuples, the string ``"none"`` for
``None``, which TOML cannot write).  The study's models join the attributed and
STS-evaluated models (``attribution.models``, ``finetune.models``) unless the file
sets those lists itself.  The whole file is checked before anything is trained or
cached: every problem is a :class:`StudyError` naming the file, the key and what
to do.  This module knows dataclasses, not the profile's classes, so
:mod:`cwi.config` can use it without a circle.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import tomllib
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Callable, Literal

from .encoders import POOLINGS
from .models import MODELS, PAIRS, ModelPair, ModelSpec

__all__ = ["StudyError", "read_study", "describe", "NONE"]

NONE = "none"  # what a study file writes for Python's None
TOP_LEVEL = ("extends", "name", "models", "pairs")
MODEL_KEYS = ("location", "pooling", "contrastive", "revision", "normalized", "note")
PAIR_KEYS = ("pretrained", "finetuned", "note")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_reading: set[Path] = set()  # study files being read: an `extends` circle is an error, not a recursion


class _Circle(Exception):
    """An `extends` chain that comes back to `path`: reported once, by the file that starts it."""

    def __init__(self, path: Path):
        self.path = path


class StudyError(ValueError):
    """A study file that cannot be used: names the file, the key and what to do."""

    def __init__(self, path: Path, key: str, message: str):
        self.path, self.key = path, key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


def read_study(path: Path, resolve: Callable[[str, Path], Any], reserved: Callable[[str], bool] = lambda name: False
               ) -> Any:
    """The profile the study file at `path` defines, checked whole.

    Parameters
    ----------
    path
        The TOML file (absolute).
    resolve
        Returns the profile an ``extends`` names, a relative study path read from
        the given folder (:func:`cwi.config.get_profile`).
    reserved
        Whether a study may not take a name (the built-in profiles' and dry runs').

    Raises
    ------
    StudyError
        For a missing or unreadable file, an unknown key (the closest valid one
        suggested), a wrong type, a value its settings reject, a model whose
        folder is missing or cannot give its pooling, a pair naming an unknown
        model, or an ``extends`` circle.
    """
    if not path.is_file():
        raise StudyError(path, "", "no such study file: check the path given to --profile (or in `extends`)")
    try:
        table = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise StudyError(path, "", f"not valid TOML ({err}): fix the line it names") from None
    if path in _reading:
        raise _Circle(path)
    _reading.add(path)
    try:
        return _build(path, table, resolve, reserved)
    finally:
        _reading.discard(path)


def _build(path: Path, table: dict, resolve: Callable[[str, Path], Any], reserved: Callable[[str], bool]) -> Any:
    extends = table.get("extends")
    if not isinstance(extends, str):
        raise StudyError(path, "extends", "say which profile the study starts from, e.g. extends = \"default\" "
                                          "(a built-in profile: smoke, default, paper; or another study file)")
    try:
        base = resolve(extends, path.parent)
    except _Circle as circle:
        if circle.path != path:
            raise
        raise StudyError(path, "extends", "the study extends itself (through a chain of `extends`): break the "
                                          "circle") from None
    except StudyError:
        raise
    except ValueError as err:
        raise StudyError(path, "extends", str(err)) from None
    name = table.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise StudyError(path, "name", f"must be a non-empty string, got {name!r}")
    if reserved(name):
        raise StudyError(path, "name", f"{name!r} is a built-in profile's name (or a dry run's): give the study a "
                                       "name of its own, so no table or record mistakes it for the built-in one")
    known = dict(base.registry)
    own_models = tuple(_model(path, model, entry, known) for model, entry in _tables(path, table, "models"))
    known.update(own_models)
    own_pairs = tuple(_pair(path, pair, entry, known, dict(base.study_pairs))
                      for pair, entry in _tables(path, table, "pairs"))
    settings = {key: value for key, value in table.items() if key not in TOP_LEVEL}
    overrides: list[tuple[str, str]] = []
    base_named = dataclasses.replace(base, name=name)
    profile = _apply(path, base_named, settings, "", overrides, skip=TOP_LEVEL + (
        "study_models", "study_pairs", "study_file", "extends", "overrides", "origin"))
    added = [model for model, _ in own_models]
    for block in ("attribution", "finetune"):
        if f"{block}.models" not in dict(overrides):
            current = getattr(profile, block)
            profile = dataclasses.replace(profile, **{block: dataclasses.replace(
                current, models=tuple(dict.fromkeys(current.models + tuple(added))))})
    _check_names(path, profile, known)
    attributed = set(profile.attribution.models)
    for pair, spec in own_pairs:
        for model in (spec.pretrained, spec.finetuned):
            if model is not None and model not in attributed:
                raise StudyError(path, f"pairs.{pair}", f"its model {model!r} is not in [attribution] models, so the "
                                                        "pair could not be compared: add it there")
    own = tuple(overrides) + tuple((f"models.{m}", s.location) for m, s in own_models) \
        + tuple((f"pairs.{p}", f"{s.pretrained} / {s.finetuned}") for p, s in own_pairs)
    merged = dict(base.overrides) | dict(own)  # a key set again down an `extends` chain: the last value, once
    try:
        study = dataclasses.replace(
            profile, study_models=base.study_models + own_models, study_pairs=base.study_pairs + own_pairs,
            study_file=str(path), extends=extends, origin=str(path), overrides=tuple(merged.items()))
        hash(study)  # caches are memoised on the profile: every value must be immutable
    except (ValueError, TypeError) as err:
        raise StudyError(path, "settings", f"{err}") from None
    return study


# The book's own models, which the Fine-tuning chapter trains and scores whatever the study.
BOOK_MODELS = ("book-mlm", "book-unsup-simcse", "book-sup-simcse")


def _check_names(path: Path, profile: Any, known: dict) -> None:
    """Every model a setting names is registered; the book's own models stay in the STS evaluation."""
    named = [("attribution.models", m) for m in profile.attribution.models] \
        + [("finetune.models", m) for m in profile.finetune.models] \
        + [("attribution.sentences_by_model", m) for m, _ in profile.attribution.sentences_by_model]
    for key, model in named:
        if model not in known:
            raise StudyError(path, key, f"unknown model {model!r}: {_closest(model, known)}declare it under "
                                        "[models.NAME] or name a built-in one")
    missing = [m for m in BOOK_MODELS if m not in profile.finetune.models]
    if missing:
        raise StudyError(path, "finetune.models", f"must keep the book's own models {', '.join(missing)}: the "
                                                  "Fine-tuning chapter trains and scores them; add yours beside them")
    from .data import CORPORA

    if profile.corpus not in CORPORA:
        raise StudyError(path, "corpus", f"unknown corpus {profile.corpus!r}: choose one of {', '.join(CORPORA)}")


def _tables(path: Path, table: dict, section: str) -> list[tuple[str, dict]]:
    entries = table.get(section, {})
    if not isinstance(entries, dict) or not all(isinstance(entry, dict) for entry in entries.values()):
        raise StudyError(path, section, f"write each as a table: [{section}.NAME] with its keys")
    return list(entries.items())


def _closest(word: str, options) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"did you mean {match[0]!r}? " if match else ""


def _unknown(path: Path, where: str, key: str, options) -> StudyError:
    return StudyError(path, where + key, f"unknown setting: {_closest(key, options)}valid keys here: "
                                         f"{', '.join(options)}")


def _model(path: Path, model: str, entry: dict, known: dict) -> tuple[str, ModelSpec]:
    where = f"models.{model}"
    for key in entry:
        if key not in MODEL_KEYS:
            raise _unknown(path, f"{where}.", key, MODEL_KEYS)
    if model in known:
        whose = "a built-in model" if model in MODELS else "a model of the study it extends"
        raise StudyError(path, where, f"{model!r} is {whose}: refer to it in a pair as it is, or give yours another "
                                      "name")
    for key, kind in (("location", str), ("pooling", str), ("contrastive", bool)):
        if key not in entry:
            raise StudyError(path, f"{where}.{key}", "missing: a model needs location (a folder or a Hub id), "
                                                     f"pooling (one of {', '.join(POOLINGS)}) and contrastive "
                                                     "(true for a contrastively trained encoder)")
        if not isinstance(entry[key], kind):
            raise StudyError(path, f"{where}.{key}", f"must be {kind.__name__}, got {entry[key]!r}")
    for key, kind in (("revision", str), ("normalized", bool), ("note", str)):
        if key in entry and not isinstance(entry[key], kind):
            raise StudyError(path, f"{where}.{key}", f"must be {kind.__name__}, got {entry[key]!r}")
    pooling, location = entry["pooling"], entry["location"]
    if pooling not in POOLINGS:
        raise StudyError(path, f"{where}.pooling", f"unknown pooling {pooling!r}: {_closest(pooling, POOLINGS)}"
                                                   f"choose one of {', '.join(POOLINGS)}")
    revision = entry.get("revision")
    # A relative folder whose first part exists beside the file is a folder, even if it is missing further down.
    looks_like_path = location.startswith((".", "/", "~")) or (path.parent / location.split("/")[0]).exists()
    if looks_like_path:
        folder = (path.parent / Path(location).expanduser()).resolve()
        if not folder.is_dir():
            raise StudyError(path, f"{where}.location", f"no folder {folder}: give the folder holding the model's "
                                                        "config.json and tokenizer (relative to the study file)")
        if not (folder / "config.json").exists():
            raise StudyError(path, f"{where}.location", f"{folder} has no config.json: save the model there with "
                                                        "save_pretrained (model and tokenizer)")
        if pooling == "cls" and not _has_pooler(folder):
            raise StudyError(path, f"{where}.pooling", f"{folder} ships no trained pooler weights, so 'cls' would use "
                                                       "a random pooler: choose 'cls_before_pooler' or 'mean'")
        if revision is not None:
            raise StudyError(path, f"{where}.revision", "a revision pins a Hub model; this model is a folder")
        kind, location = "folder", str(folder)
    else:
        if not HUB_ID.fullmatch(location):
            raise StudyError(path, f"{where}.location", f"{location!r} is neither a folder nor a Hub id "
                                                        "(organisation/name)")
        if revision is None:
            warnings.warn(f"{path}: {where}: the Hub model {location!r} has no revision: it loads the Hub's default "
                          "branch, which may change; pin it with revision = \"<40-hex commit>\" (if you meant a "
                          f"folder, {path.parent / location} does not exist)", stacklevel=4)
        kind = "hub"
    try:
        spec = ModelSpec(kind, location, pooling, entry["contrastive"], entry.get("note", f"declared in {path.name}"),
                         revision, entry.get("normalized", False))
    except ValueError as err:
        raise StudyError(path, f"{where}.revision" if "revision" in str(err) else where, str(err)) from None
    return model, spec


def _has_pooler(folder: Path) -> bool:
    """Whether the checkpoint in `folder` holds pooler weights (unknown formats count as yes: loading checks)."""
    weights = folder / "model.safetensors"
    if not weights.exists():
        return True
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        return any("pooler" in key for key in handle.keys())


def _pair(path: Path, pair: str, entry: dict, known: dict, inherited: dict) -> tuple[str, ModelPair]:
    where = f"pairs.{pair}"
    for key in entry:
        if key not in PAIR_KEYS:
            raise _unknown(path, f"{where}.", key, PAIR_KEYS)
    if pair in PAIRS:
        raise StudyError(path, where, f"{pair!r} is a built-in pair: give yours another name")
    if pair in inherited:
        raise StudyError(path, where, f"{pair!r} is a pair of the study it extends: give yours another name")
    if "finetuned" not in entry:
        raise StudyError(path, f"{where}.finetuned", "missing: a pair names its contrastive model (finetuned) and, "
                                                     "if there is one, its pre-trained start (pretrained)")
    for key in ("pretrained", "finetuned", "note"):
        model = entry.get(key)
        if model is None:
            continue
        if not isinstance(model, str):
            raise StudyError(path, f"{where}.{key}", f"must be str, got {model!r}")
        if key != "note" and model not in known:
            raise StudyError(path, f"{where}.{key}", f"unknown model {model!r}: {_closest(model, known)}declare it "
                                                     "under [models.NAME] or use a built-in one")
    if entry.get("pretrained") == entry["finetuned"]:
        raise StudyError(path, where, "pretrained and finetuned name the same model: its change would be 0 by "
                                      "construction; name the model it was fine-tuned from")
    if not known[entry["finetuned"]].contrastive:
        raise StudyError(path, f"{where}.finetuned", f"{entry['finetuned']!r} is not contrastive (contrastive = "
                                                     "false): a pair compares a pre-trained model with its "
                                                     "contrastive twin")
    return pair, ModelPair(entry.get("pretrained"), entry["finetuned"], entry.get("note", f"declared in {path.name}"))


def _apply(path: Path, settings: Any, table: dict, where: str, overrides: list, skip: tuple = ()) -> Any:
    """`settings` (a dataclass) with the values of `table`, each checked against its field's type."""
    names = [field.name for field in dataclasses.fields(settings) if field.name not in skip]
    suggestions = names + [key for key in ("extends", "name", "models", "pairs") if skip and key in skip]
    hints = typing.get_type_hints(type(settings), localns={"ModelSpec": ModelSpec, "ModelPair": ModelPair})
    changes = {}
    for key, value in table.items():
        if key not in names:
            raise _unknown(path, where, key, suggestions)
        current = getattr(settings, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise StudyError(path, where + key, f"write it as a table [{where}{key}] of settings")
            changes[key] = _apply(path, current, value, f"{where}{key}.", overrides)
        else:
            changes[key] = _convert(path, where + key, value, hints[key])
            overrides.append((where + key, repr(changes[key])))
    try:
        return dataclasses.replace(settings, **changes)
    except (ValueError, TypeError) as err:  # the settings' own checks (__post_init__): their message says what to do
        raise StudyError(path, where.rstrip(".") or "settings", str(err)) from None


def _convert(path: Path, key: str, value: Any, hint: Any) -> Any:
    """`value` read from TOML as the type `hint` wants (lists become tuples; "none" becomes None)."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value == NONE and type(None) in arguments:
            return None
        for option in (a for a in arguments if a is not type(None)):
            try:
                return _convert(path, key, value, option)
            except StudyError:
                continue
        allowed = " or ".join(_name(a) for a in arguments)
        raise StudyError(path, key, f"must be {allowed}, got {value!r}")
    if origin is Literal:
        if value == NONE and None in arguments:
            return None
        if value not in arguments:
            raise StudyError(path, key, f"must be one of {', '.join(repr(a) for a in arguments)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise StudyError(path, key, f"must be an array, got {value!r}")
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_convert(path, key, item, arguments[0]) for item in value)
        if arguments and len(arguments) != len(value):
            raise StudyError(path, key, f"must be an array of {len(arguments)} items, got {value!r}")
        return tuple(_convert(path, key, item, argument) for item, argument in zip(value, arguments or [Any] * len(value)))
    if hint is Any or hint is tuple:  # a bare tuple (a search grid's values): arrays become tuples, "none" None
        if isinstance(value, list):
            return tuple(_convert(path, key, item, Any) for item in value)
        return None if value == NONE else value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise StudyError(path, key, f"must be {_name(hint)}, got {value!r}")
        return value
    if hint is type(None):
        if value != NONE:
            raise StudyError(path, key, f"must be \"{NONE}\", got {value!r}")
        return None
    return value


def _name(hint: Any) -> str:
    if hint is type(None):
        return f'"{NONE}"'
    if typing.get_origin(hint) is tuple:
        return "an array"
    return getattr(hint, "__name__", str(hint))


def describe(profile: Any) -> str:
    """The profile in force as Markdown: its name, the file, what it extends and overrides, its own pairs."""
    if profile.study_file is None:
        return (f"This book was run with the built-in profile **{profile.name}** "
                "(`cwi.config.PROFILES`).\n")
    dry = (" It ran dry (`--dry-run`): the study's models through every chapter with the smoke profile's settings, "
           "so its own sizes and its other settings did not apply.") if profile.reference != profile.study_file else ""
    digest = hashlib.sha256(Path(profile.study_file).read_bytes()).hexdigest()[:12] \
        if Path(profile.study_file).is_file() else "(file no longer there)"
    lines = [f"This book was run with the study **{profile.name}**, from the file `{profile.study_file}` (sha256 "
             f"{digest}), which extends the profile `{profile.extends}`.{dry}", "", "| setting | value in the study |",
             "|---|---|"]
    lines += [f"| `{key}` | `{value}` |" for key, value in profile.overrides]
    pairs = [f"{name} ({pair.pretrained or 'no pre-trained twin'} / {pair.finetuned})"
             for name, pair in profile.study_pairs]
    if pairs:
        lines += ["", f"The study's own pairs, reported beside the book's in every chapter: {'; '.join(pairs)}."]
    return "\n".join(lines) + "\n"
