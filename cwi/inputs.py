"""What every attribution method starts from: a tokenised sentence, its words, its baseline.

:func:`prepare` tokenises one sentence and aligns its tokens with its words, the
words of :func:`cwi.stats.tokenize` that the statistics are counted on, by
character offsets (:func:`align_words`), whatever the model's tokenizer
(WordPiece, byte-level BPE, SentencePiece); special tokens belong to no word.
:func:`baseline_embeddings` gives the input the words are compared with.
:func:`pad` stacks several prepared sentences into one padded, masked batch, and
:func:`rows_per_call` sizes a vectorised call from a memory budget.  The methods
(:mod:`cwi.integrated_gradients`, :mod:`cwi.shapley`) return :class:`Attribution`
(one vector per token) or :class:`WordAttribution` (one vector per word).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import stats
from .encoders import Encoder

__all__ = ["BASELINES", "BASELINE_WORDS", "Attribution", "WordAttribution", "Prepared", "align_words",
           "baseline_embeddings", "prepare", "pad", "memory_budget", "rows_per_call"]

BASELINES = ("pad", "mask", "zero")
# What each baseline is, for prose: every word token replaced, the special tokens kept.
BASELINE_WORDS = {
    "pad": "every word token's embedding replaced by [PAD]'s, special tokens kept",
    "mask": "every word token's embedding replaced by [MASK]'s, special tokens kept",
    "zero": "every word token's embedding set to zero, special tokens kept",
}
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
        The tokenizer output (its words are the tokenizer's own; :class:`Prepared`
        holds the statistics' words).
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
        vector is the attribution of its tokens, each by the word's share of it
        (:func:`align_words`).
    delta
        (d,): ``f(x) - f(x')``.
    sentence
        The :class:`Prepared` sentence: words, their tokens and character spans.
    path_points
        Gauss-Legendre points of the rule kept (Integrated Gradients; ``None`` otherwise).
    evaluations
        Sequences the model ran for this sentence, every tried rule included:
        path points x words for IG, distinct coalitions for SHAP.
    word_error
        Integrated Gradients: the kept rule's largest change of a word's vector
        against a coarser rule, relative to the sentence's mean word weight (NaN where unchecked).
    budget_spent
        SHAP: whether the explainer used its whole ``max_evals`` (then some
        groups of words were not expanded and share their credit equally).
    """

    values: torch.Tensor
    delta: torch.Tensor
    sentence: "Prepared"
    path_points: int | None
    evaluations: int
    word_error: float | None = None
    budget_spent: bool | None = None


@dataclass
class Prepared:
    """A tokenised sentence with its input and baseline embeddings and its words.

    Attributes
    ----------
    text
        The sentence.
    batch
        The tokenizer output of ``[text]``.
    input_ids, special
        (T,) token ids, and which of them are special tokens.
    inputs, baseline
        (T, e) input embeddings of the sentence and of its baseline.
    word_text, spans, word_index
        The words of ``cwi.stats.tokenize(text)`` that have tokens, in order, their
        character spans in `text` and their positions in ``tokenize(text)``.
    membership
        (W, T) share of each token in each word (:func:`align_words`): a column
        sums to 1 for a token of the sentence's words, to 0 for a special token.
    """

    text: str
    batch: object
    input_ids: torch.Tensor
    special: torch.Tensor
    inputs: torch.Tensor
    baseline: torch.Tensor
    word_text: list[str]
    spans: list[tuple[int, int]]
    membership: torch.Tensor
    word_index: list[int]

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def words(self) -> list[list[int]]:
        """Token positions with a share in each word, in sentence order."""
        return [torch.nonzero(row).flatten().tolist() for row in self.membership]

    def word_membership(self) -> torch.Tensor:
        """(W, T) share of each token in each word (rows of 0/1 where no token straddles words)."""
        return self.membership

    def owned_tokens(self) -> list[list[int]]:
        """Token positions of each word where every token goes to the word of its largest share (the first on ties)."""
        owner = self.membership.argmax(dim=0).tolist()
        shared = self.membership.sum(dim=0) > 0
        return [[t for t in range(self.length) if shared[t] and owner[t] == w] for w in range(len(self.word_text))]

    def to_words(self, token_values: torch.Tensor) -> torch.Tensor:
        """(W, d) word vectors from (T, d) token vectors: each token's vector shared by its words' shares."""
        return self.membership.to(token_values) @ token_values


def align_words(text: str, offsets: list[tuple[int, int]], special: list[bool]):
    """Align a tokenizer's tokens with the words of :func:`cwi.stats.tokenize` by character offsets.

    The rule, for every non-special token with character span ``[start, end)``:

    * a token inside one word belongs to it (WordPiece pieces, ``##ing``);
    * a token that straddles words (byte-level BPE's ``'t`` of ``don't``, or
      ``."`` of a sentence end) is **split**: each word gets the share of the
      token's characters that lie in it, and those shares are what a word's
      attribution takes of the token (IG's tangent, SHAP's presence);
    * a token that covers no character of a word (a bare ``Ġ`` or ``▁`` space
      piece) belongs wholly to the next word, or to the last one at the end.

    Parameters
    ----------
    text
        The sentence the tokenizer saw.
    offsets
        ``(start, end)`` character span of each token, as a fast tokenizer's
        ``offset_mapping`` gives it.
    special
        Which tokens are special ([CLS], ``<s>``, ...): they belong to no word.

    Returns
    -------
    words, spans, membership, index
        The words and their spans (:func:`cwi.stats.word_spans`), the (W, T)
        float shares, and each word's position in ``cwi.stats.tokenize(text)``.

    A word that gets no token (the tokenizer dropped its characters) cannot be
    weighted: it is left out, with a warning that names it.
    """
    found = stats.word_spans(text)
    words = [word for word, _, _ in found]
    spans = [(start, end) for _, start, end in found]
    membership = torch.zeros(len(words), len(offsets))
    starts = [start for start, _ in spans]
    for t, ((start, end), is_special) in enumerate(zip(offsets, special)):
        if is_special or not words:
            continue
        overlaps = [max(0, min(end, w_end) - max(start, w_start)) for w_start, w_end in spans]
        total = sum(overlaps)
        if total:
            for w, overlap in enumerate(overlaps):
                if overlap:
                    membership[w, t] = overlap / total
        else:
            following = [w for w, w_start in enumerate(starts) if w_start >= start]
            membership[following[0] if following else len(words) - 1, t] = 1.0
    kept = [w for w in range(len(words)) if membership[w].any()]
    if len(kept) < len(words):
        dropped = [words[w] for w in range(len(words)) if w not in kept]
        warnings.warn(f"the tokenizer gives no token to the word(s) {dropped} "
                      f"of {text[:60]!r} (it drops their characters): they are left out of this sentence's words",
                      stacklevel=3)
        words, spans, membership = [words[w] for w in kept], [spans[w] for w in kept], membership[kept]
    return words, spans, membership, kept


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
    """Tokenise `text`, embed it and its baseline, and align its tokens with its words (:func:`align_words`)."""
    batch = encoder.tokenizer([text], padding=True, truncation=True, max_length=encoder.max_length,
                              return_tensors="pt", return_offsets_mapping=True, return_special_tokens_mask=True)
    offsets = batch.pop("offset_mapping")[0].tolist()
    # The tokens the template added ([CLS], </s>): not get_special_tokens_mask, which also marks [UNK].
    special = batch.pop("special_tokens_mask")[0].bool().to(encoder.device)
    batch = batch.to(encoder.device)
    ids = batch["input_ids"]
    with torch.no_grad():
        inputs = encoder.input_embeddings(ids)[0]
        base = baseline_embeddings(encoder, ids, special.unsqueeze(0), baseline)[0]
    words, spans, membership, index = align_words(text, offsets, special.tolist())
    if not words:
        raise ValueError(f"no word of {text[:60]!r} has a token of {encoder.name}'s tokenizer: nothing to attribute")
    return Prepared(text, batch, ids[0], special, inputs, base, words, spans, membership.to(inputs.device), index)


def pad(encoder: Encoder, sentences: list[Prepared]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack prepared sentences, right-padded to the longest: inputs, baselines (G, T, e) and attention mask (G, T).

    Padded positions hold the [PAD] embedding in both inputs and baselines (no
    difference to attribute) and are masked out of attention and pooling.
    """
    length = max(s.length for s in sentences)
    pad_id = encoder.tokenizer.pad_token_id or 0
    with torch.no_grad():
        filler = encoder.input_embeddings(torch.tensor([pad_id], device=encoder.device))[0]
    inputs = filler.expand(len(sentences), length, -1).clone()
    baselines = inputs.clone()
    mask = torch.zeros(len(sentences), length, dtype=torch.long, device=filler.device)
    for g, s in enumerate(sentences):
        inputs[g, : s.length], baselines[g, : s.length], mask[g, : s.length] = s.inputs, s.baseline, 1
    return inputs, baselines, mask


def memory_budget(encoder: Encoder, memory_gb: float | None = None) -> float:
    """GB one vectorised call may use: `memory_gb` if given, else half the free memory of the model's GPU, else 1 GB."""
    if memory_gb is not None:
        return memory_gb
    if encoder.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(encoder.device)
        # Memory torch's allocator holds but no tensor uses is free to us too: count it, so the
        # budget does not shrink after the first call.
        free += torch.cuda.memory_reserved(encoder.device) - torch.cuda.memory_allocated(encoder.device)
        return free / 2 / 2**30
    return MEMORY_GB


def rows_per_call(encoder: Encoder, length: int, memory_gb: float | None = MEMORY_GB, tangents: bool = True) -> int:
    """Sequences of `length` tokens that one vectorised call may hold within `memory_gb` (``None``: :func:`memory_budget`).

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
    return max(1, int(memory_budget(encoder, memory_gb) * 2**30 / (bytes_per_token * length)))
