"""What every attribution method starts from: a tokenised sentence, its words, its baseline.

:func:`prepare` tokenises one sentence and groups its tokens into words (the fast
tokenizer's ``word_ids()``; special tokens belong to no word).
:func:`baseline_embeddings` gives the input the words are compared with.
:func:`pad` stacks several prepared sentences into one padded, masked batch, and
:func:`rows_per_call` sizes a vectorised call from a memory budget.  The methods
(:mod:`cwi.integrated_gradients`, :mod:`cwi.shapley`) return :class:`Attribution`
(one vector per token) or :class:`WordAttribution` (one vector per word).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .encoders import Encoder

__all__ = ["BASELINES", "Attribution", "WordAttribution", "Prepared", "baseline_embeddings", "prepare", "pad",
           "rows_per_call"]

BASELINES = ("pad", "mask", "zero")
# Memory of one vectorised call (IG's Jacobian-vector products, SHAP's masked inputs).
MEMORY_GB = 1.0


class Attribution(NamedTuple):
    """One sentence's attribution by token.

    Attributes
    ----------
    values
        (T, d): the attribution vector of every token, special tokens included
        (rows of zeros where a method leaves them out).
    delta
        (d,): ``f(x) - f(x')``, which the rows sum to for an exact, complete method.
    batch
        The tokenizer output: ``batch.word_ids()`` aligns tokens with words.
    """

    values: torch.Tensor
    delta: torch.Tensor
    batch: object


class WordAttribution(NamedTuple):
    """One sentence's attribution by word: what :data:`cwi.attribution.METHODS` return.

    Attributes
    ----------
    values
        (W, d): the attribution vector of every word, in sentence order; a word's
        vector is the sum of its tokens' vectors.
    delta
        (d,): ``f(x) - f(x')``.
    sentence
        The :class:`Prepared` sentence: words, their tokens and character spans.
    path_points
        Gauss-Legendre points of the rule kept (Integrated Gradients; ``None`` otherwise).
    evaluations
        Sequences the model ran for this sentence, every tried rule included:
        path points x words for IG, distinct coalitions for SHAP.
    """

    values: torch.Tensor
    delta: torch.Tensor
    sentence: "Prepared"
    path_points: int | None
    evaluations: int


@dataclass
class Prepared:
    """A tokenised sentence with its input and baseline embeddings and its words.

    Attributes
    ----------
    text
        The sentence.
    batch
        The tokenizer output of ``[text]`` (``word_ids()``, ``word_to_chars()``).
    input_ids, special
        (T,) token ids, and which of them are special tokens.
    inputs, baseline
        (T, e) input embeddings of the sentence and of its baseline.
    words
        Token positions of each word, in sentence order.
    word_ids
        The tokenizer's index of each word (its ``word_ids()`` value).
    """

    text: str
    batch: object
    input_ids: torch.Tensor
    special: torch.Tensor
    inputs: torch.Tensor
    baseline: torch.Tensor
    words: list[list[int]]
    word_ids: list[int]

    @property
    def length(self) -> int:
        return len(self.input_ids)

    def word_membership(self) -> torch.Tensor:
        """(W, T) boolean: row w marks the tokens of word w."""
        membership = torch.zeros(len(self.words), self.length, dtype=torch.bool)
        for w, positions in enumerate(self.words):
            membership[w, positions] = True
        return membership


def baseline_embeddings(encoder: Encoder, input_ids: torch.Tensor, special: torch.Tensor, kind: str = "pad"):
    """Input embeddings of the baseline: every non-special token replaced by [PAD] or [MASK], or zero.

    Special tokens ([CLS], [SEP]) keep their embeddings, so the baseline is still
    a well-formed input and the attributions of the words carry the difference.
    """
    embeddings = encoder.input_embeddings(input_ids)
    if kind == "zero":
        replacement = torch.zeros_like(embeddings)
    elif kind in ("pad", "mask"):
        token = encoder.tokenizer.pad_token_id if kind == "pad" else encoder.tokenizer.mask_token_id
        if token is None:
            raise ValueError(f"{encoder.name} has no [{kind.upper()}] token: choose another baseline")
        replacement = encoder.input_embeddings(torch.full_like(input_ids, token))
    else:
        raise ValueError(f"unknown baseline {kind!r}: choose one of {BASELINES}")
    return torch.where(special.unsqueeze(-1), embeddings, replacement)


def prepare(encoder: Encoder, text: str, baseline: str = "pad") -> Prepared:
    """Tokenise `text`, embed it and its baseline, and group its tokens into words."""
    batch = encoder.tokenize([text])
    ids = batch["input_ids"]
    special = torch.tensor(encoder.tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True),
                           dtype=torch.bool)
    with torch.no_grad():
        inputs = encoder.input_embeddings(ids)[0]
        base = baseline_embeddings(encoder, ids, special.unsqueeze(0), baseline)[0]
    groups: dict[int, list[int]] = {}
    for position, word in enumerate(batch.word_ids(0)):
        if word is not None and not special[position]:
            groups.setdefault(word, []).append(position)
    return Prepared(text, batch, ids[0], special, inputs, base, list(groups.values()), list(groups))


def pad(encoder: Encoder, sentences: list[Prepared]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack prepared sentences, right-padded to the longest: inputs, baselines (G, T, e) and attention mask (G, T).

    Padded positions hold the [PAD] embedding in both inputs and baselines (no
    difference to attribute) and are masked out of attention and pooling.
    """
    length = max(s.length for s in sentences)
    pad_id = encoder.tokenizer.pad_token_id or 0
    with torch.no_grad():
        filler = encoder.input_embeddings(torch.tensor([pad_id]))[0]
    inputs = filler.expand(len(sentences), length, -1).clone()
    baselines = inputs.clone()
    mask = torch.zeros(len(sentences), length, dtype=torch.long)
    for g, s in enumerate(sentences):
        inputs[g, : s.length], baselines[g, : s.length], mask[g, : s.length] = s.inputs, s.baseline, 1
    return inputs, baselines, mask


def rows_per_call(encoder: Encoder, length: int, memory_gb: float = MEMORY_GB, tangents: bool = True) -> int:
    """Sequences of `length` tokens that one vectorised call may hold within `memory_gb`.

    The estimate counts, per token, the hidden, feed-forward and attention
    activations a layer keeps alive at once (doubled for a Jacobian-vector
    product's tangents); ``benchmarks/attribution.py`` measures the peak.
    """
    config = encoder.model.config
    hidden = config.hidden_size
    intermediate = getattr(config, "intermediate_size", 4 * hidden)
    heads = getattr(config, "num_attention_heads", 1)
    floats = 10 * hidden + 3 * intermediate + 4 * heads * length
    bytes_per_token = 4 * floats * (2 if tangents else 1)
    return max(1, int(memory_gb * 2**30 / (bytes_per_token * length)))
