"""Integrated Gradients for vector-valued sentence encoders (the core of the Attribution chapter).

A sentence encoder outputs d numbers.  The attribution vector of token i is

    c_i = integral_0^1 J_i(x(a)) (x_i - x'_i) da,    x(a) = x' + a (x - x'),

with ``J_i`` the Jacobian of the sentence embedding with respect to token i's
input embedding.  Each ``J_i(x(a)) (x_i - x'_i)`` is a Jacobian-vector product,
so forward-mode differentiation (``torch.func.jvp``, vectorised over tokens with
``vmap``) yields all d dimensions in one pass per token and path point, where a
backward-mode tool needs one pass per output dimension.  Completeness:
``sum_i c_i = f(x) - f(x')`` up to the quadrature error.

:func:`integrated_gradients` is the fast implementation;
:func:`integrated_gradients_captum` is the reference, captum's
``IntegratedGradients`` looped over output dimensions as a captum user would.
Both use the same quadrature (captum's Gauss-Legendre rule by default).
"""

from __future__ import annotations

import torch
from torch.func import jvp, vmap

from . import stats
from .models import Encoder

__all__ = [
    "BASELINES", "baseline_embeddings", "quadrature", "integrated_gradients", "integrated_gradients_captum",
    "word_weights",
]

BASELINES = ("pad", "mask", "zero")


def quadrature(steps: int, method: str = "gausslegendre") -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``a`` in (0, 1) and weights of captum's rule `method` with `steps` points."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    step_sizes, alphas = approximation_parameters(method)
    return torch.tensor(alphas(steps)), torch.tensor(step_sizes(steps))


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


def _prepare(encoder: Encoder, sentence: str, baseline: str):
    batch = encoder.tokenize([sentence])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    special = torch.tensor(encoder.tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True),
                           dtype=torch.bool).unsqueeze(0)
    with torch.no_grad():
        inputs = encoder.input_embeddings(ids)
        base = baseline_embeddings(encoder, ids, special, baseline)
    return batch, mask, inputs[0], base[0]


def integrated_gradients(encoder: Encoder, sentence: str, steps: int = 20, baseline: str = "pad",
                         method: str = "gausslegendre", chunk_points: int = 20) -> tuple[torch.Tensor, torch.Tensor, object]:
    """Vector Integrated Gradients of every token of `sentence`, by forward-mode differentiation.

    `chunk_points` path points are differentiated in one vectorised call (memory
    grows with it).

    Returns
    -------
    (attributions, delta, batch)
        ``attributions`` is (T, d): token i's vector c_i, special tokens included;
        ``delta`` is ``f(x) - f(x')`` (d,), which the rows sum to (completeness);
        ``batch`` is the tokenizer output (``word_ids()`` groups tokens into words).
    """
    batch, mask, x, base = _prepare(encoder, sentence, baseline)
    alphas, weights = quadrature(steps, method)
    difference = x - base  # (T, e)
    n_tokens = x.shape[0]
    # Tangent of token i: its row of (x - x'), zero elsewhere.
    tangents = torch.eye(n_tokens, dtype=x.dtype).unsqueeze(-1) * difference.unsqueeze(0)  # (T, T, e)

    def embed(inputs):
        return encoder.forward(inputs_embeds=inputs.unsqueeze(0), attention_mask=mask)[0]

    def token_jvps(point):
        return vmap(lambda tangent: jvp(embed, (point,), (tangent,))[1])(tangents)  # (T, d)

    points = base + alphas.to(x.dtype)[:, None, None] * difference  # (S, T, e)
    with torch.no_grad():
        # One vectorised call for every (path point, token) pair: larger matrix products.
        per_point = torch.cat([vmap(token_jvps)(chunk) for chunk in points.split(chunk_points)])  # (S, T, d)
        total = torch.einsum("s,std->td", weights.to(x.dtype), per_point)
        delta = embed(x) - embed(base)
    return total, delta, batch


def integrated_gradients_captum(encoder: Encoder, sentence: str, steps: int = 20, baseline: str = "pad",
                                method: str = "gausslegendre") -> torch.Tensor:
    """The reference: captum's IntegratedGradients, one call per output dimension; (T, d)."""
    from captum.attr import IntegratedGradients

    batch, mask, x, base = _prepare(encoder, sentence, baseline)

    def forward(inputs):
        return encoder.forward(inputs_embeds=inputs, attention_mask=mask.expand(len(inputs), -1))

    explainer = IntegratedGradients(forward)
    dims = encoder.model.config.hidden_size
    columns = [
        explainer.attribute(x.unsqueeze(0), baselines=base.unsqueeze(0), target=k, n_steps=steps, method=method)[0].sum(-1)
        for k in range(dims)
    ]
    return torch.stack(columns, dim=1).detach()


def word_weights(encoder: Encoder, sentences: list[str], steps: int = 20, baseline: str = "pad",
                 method: str = "gausslegendre"):
    """Word weights from vector Integrated Gradients: one row per (sentence, word).

    A word's vector is the sum of its tokens' attribution vectors (tokens grouped
    by the fast tokenizer's ``word_ids()``); its weight is that vector's norm.
    Special tokens stay in the input and out of the table.

    Returns
    -------
    pandas.DataFrame
        ``sentence_id``, ``word_index``, ``word``, ``n_tokens``, ``weight``,
        ``normalised_weight`` (weight / mean weight of the sentence's words),
        ``completeness_error`` (``||sum_i c_i - (f(x) - f(x'))|| / ||f(x) - f(x')||``
        of the sentence) and ``truncated`` (the sentence was longer than the
        model's ``max_length``; its remaining words have no row).

    Raises
    ------
    ValueError
        For a sentence with no word.
    """
    import pandas as pd

    rows = []
    for sentence_id, sentence in enumerate(sentences):
        attributions, delta, batch = integrated_gradients(encoder, sentence, steps, baseline, method)
        word_ids = batch.word_ids(0)
        if all(w is None for w in word_ids):
            raise ValueError(f"sentence {sentence_id} ({sentence!r}) has no word to attribute")
        complete = len(encoder.tokenizer(sentence)["input_ids"]) <= encoder.max_length
        error = ((attributions.sum(0) - delta).norm() / delta.norm().clamp(min=1e-12)).item()
        words: dict[int, list[int]] = {}
        for position, word in enumerate(word_ids):
            if word is not None:
                words.setdefault(word, []).append(position)
        weights = {w: attributions[positions].sum(0).norm().item() for w, positions in words.items()}
        mean = sum(weights.values()) / len(weights)
        for word, positions in words.items():
            span = batch.word_to_chars(0, word)
            rows.append({
                # Normalised as cwi.stats does (lower case, accents stripped), to join the statistics.
                "sentence_id": sentence_id, "word_index": word,
                "word": "".join(stats.tokenize(sentence[span.start:span.end])),
                "n_tokens": len(positions), "weight": weights[word], "normalised_weight": weights[word] / mean,
                "completeness_error": error, "truncated": not complete,
            })
    return pd.DataFrame(rows)
