"""Sentence encoders: a tokenizer, a transformer and a pooling, with nothing of the book around them.

:class:`Encoder` turns sentences into vectors (:meth:`Encoder.encode`) and offers
the differentiable :meth:`Encoder.forward` from input embeddings that the
attribution methods need.  :func:`load_transformer` loads the bare transformer of a
checkpoint; :func:`weights_fingerprint` names a model by its weights, for cache
keys.  This module imports nothing of :mod:`cwi`: the registry (:mod:`cwi.models`)
and the profile layer (:mod:`cwi.pipeline`) build on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel

__all__ = ["POOLINGS", "POOLING_FILE", "Encoder", "NormalizedEncoder", "normalized", "default_device", "pool",
           "load_transformer", "load_masked_lm", "weights_fingerprint"]

# SimCSE's names (its evaluation's ``--pooler``): "cls" is the [CLS] output through the
# checkpoint's trained MLP pooler (dense + tanh), "cls_before_pooler" the [CLS] output
# itself; "mean" averages every token of the attention mask (SimCSE's "avg", and
# sentence-transformers' mean pooling).
POOLINGS = ("mean", "cls", "cls_before_pooler")
POOLING_FILE = "cwi_pooling.json"  # written beside the book's checkpoints
WITH_POOLER = ("bert", "roberta", "mpnet")  # model types whose AutoModel adds a pooler head by default


def default_device() -> torch.device:
    """Where models run: ``$CWI_DEVICE`` if set (``cpu``, ``cuda:1``), else the first GPU torch sees, else the CPU."""
    import os

    chosen = os.environ.get("CWI_DEVICE")
    if chosen:
        return torch.device(chosen)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Sentence vectors from token vectors (B, T, d): masked mean or the first ([CLS]) token.

    ``"cls"`` (through the pooler) needs the model's pooler head: :meth:`Encoder.forward` applies it.
    """
    if how == "cls_before_pooler":
        return hidden[:, 0]
    if how == "cls":
        raise ValueError("pooling 'cls' goes through the model's pooler head: use Encoder.forward, or "
                         "'cls_before_pooler' for the [CLS] token vector itself")
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
        One of :data:`POOLINGS`; ``"cls"`` needs a model loaded with its pooler
        (``load_transformer(..., pooler=True)``).
    name
        How the model is called in tables and figures.
    max_length
        Sentences are truncated to this many tokens.
    revision
        The Hub commit the weights came from (``None`` for a local folder).
    folder
        The folder the model was loaded from, if any (another process can load it again from there).
    """

    def __init__(self, model, tokenizer, pooling: str, name: str, max_length: int = 128, revision: str | None = None,
                 folder: Path | None = None):
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} for {name}: choose one of {POOLINGS}")
        if pooling == "cls" and getattr(model, "pooler", None) is None:
            raise ValueError(f"{name}: pooling 'cls' needs the model's pooler head, and it was loaded without one: "
                             "load it with load_transformer(..., pooler=True), or choose 'cls_before_pooler'")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.name = name
        self.max_length = max_length
        self.revision = revision
        self.folder = folder

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
        if self.pooling == "cls":
            return output.pooler_output
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


class NormalizedEncoder(Encoder):
    """An :class:`Encoder` whose sentence vector is scaled to unit length.

    What sentence-transformers' ``Normalize`` module adds after pooling: the
    vector users of those models compare.  Its attributions split
    ``f(x)/||f(x)|| - f(x')/||f(x')||`` among the words.
    """

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None) -> torch.Tensor:
        return torch.nn.functional.normalize(super().forward(input_ids, attention_mask, inputs_embeds), dim=-1)


def normalized(encoder: Encoder) -> NormalizedEncoder:
    """The same model, tokenizer and pooling as `encoder`, with the sentence vector normalised."""
    return NormalizedEncoder(encoder.model, encoder.tokenizer, encoder.pooling, f"{encoder.name} (normalised)",
                             encoder.max_length, encoder.revision, encoder.folder)


def weights_fingerprint(encoder: Encoder) -> str:
    """sha256 of the model's parameters and buffers: cache keys follow the weights, not the name."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _quietly(auto_class, path_or_id, **options):
    """``auto_class.from_pretrained`` without transformers' log lines and "Loading weights" bar (a dead widget in a chapter)."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        return auto_class.from_pretrained(path_or_id, **options)
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def load_masked_lm(path: str | Path):
    """A checkpoint's transformer with its masked-LM head (eager attention), to train further with masked-LM."""
    from transformers import AutoModelForMaskedLM

    return _quietly(AutoModelForMaskedLM, path, attn_implementation="eager")


def load_transformer(path_or_id: str | Path, pooler: bool = False, revision: str | None = None):
    """The bare transformer of a checkpoint, with eager attention (it has forward-mode rules).

    Parameters
    ----------
    pooler
        Build the pooler head and load its trained weights (pooling ``"cls"``).
        Without it the head is never built (for the model types of
        :data:`WITH_POOLER`; others are built as ``AutoModel`` builds them): a checkpoint without pooler weights
        (the book's, ``roberta-base``) would otherwise get a randomly initialised
        one, different at every load.
    revision
        The Hub commit (or branch) to load; ``None`` for a folder or the default branch.

    Raises
    ------
    ValueError
        If `pooler` is asked for and the checkpoint ships no pooler weights.
    """
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(path_or_id, revision=revision).model_type
    extra = {"add_pooling_layer": pooler} if model_type in WITH_POOLER else {}
    model, info = _quietly(AutoModel, path_or_id, revision=revision, attn_implementation="eager",
                           output_loading_info=True, **extra)
    untrained = [key for key in info["missing_keys"] if "pooler" in key]
    if pooler and (untrained or getattr(model, "pooler", None) is None):
        raise ValueError(f"{path_or_id} ships no trained pooler weights ({', '.join(untrained) or 'no pooler head'}): "
                         "pooling 'cls' would use a random pooler; choose 'cls_before_pooler' or 'mean'")
    return model
