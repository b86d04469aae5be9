"""Word weights of vector-valued sentence encoders from Integrated Gradients and SHAP.

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
Both use the same Gauss-Legendre quadrature (:func:`quadrature`).

:func:`shap_values` gives the SHAP vector of every token with shap's Partition
explainer.  Masked tokens take the *same* baseline embeddings as Integrated
Gradients, so both methods split the same difference ``f(x) - f(x')`` among the
tokens and their word weights compare directly.

:func:`word_weights` turns either into one row per (sentence, word), the table
the Correlations chapter regresses (:func:`cwi.pipeline.word_weights` caches it
per model, dataset, method and settings).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

import torch
from torch.func import jvp, vmap

from . import stats
from .encoders import Encoder

__all__ = [
    "Attribution", "AttributionMethod", "BASELINES", "METHODS", "baseline_embeddings", "quadrature",
    "integrated_gradients",
    "integrated_gradients_captum", "shap_values", "fit_to_length", "word_weights", "completeness_sweep",
]

BASELINES = ("pad", "mask", "zero")
# Path points x tokens^2 differentiated in one vectorised call: 32 points of a 20-token
# sentence, about 1 GB of activations for all-MiniLM-L6-v2.
VECTORISED_SEQUENCES = 32 * 20**2
# Bump when a change alters what word_weights returns: it is part of every cache key.
ALGORITHM_VERSION = 2  # 2: IG path points chunked by sentence length (float rounding may differ)


class Attribution(NamedTuple):
    """What every attribution method returns for one sentence.

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


# An attribution method: (encoder, sentence, baseline=..., **its settings) -> Attribution.
AttributionMethod = Callable[..., Attribution]


def quadrature(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre points ``a`` in (0, 1) and their weights, `steps` of each.

    The rule of ``numpy.polynomial.legendre.leggauss`` moved from (-1, 1) to
    (0, 1); captum's ``gausslegendre`` method computes the same numbers.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    # float32, as the models compute: the same tensors captum's rule gives.
    return torch.tensor((0.5 * (1 + nodes)).tolist()), torch.tensor((0.5 * weights).tolist())


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
                         chunk_points: int | None = None) -> Attribution:
    """Vector Integrated Gradients of every token of `sentence`, by forward-mode differentiation.

    `chunk_points` path points are differentiated in one vectorised call.  Memory
    grows with ``chunk_points * T^2`` (T tangents, each a sequence of T tokens), so
    by default it is chosen to keep that product at ``32 * 20^2``: all points at
    once for short sentences, fewer for long ones.

    Returns
    -------
    Attribution
        ``values`` (T, d): token i's vector c_i, special tokens included;
        ``delta = f(x) - f(x')``, which the rows sum to (completeness); the tokenizer output.
    """
    batch, mask, x, base = _prepare(encoder, sentence, baseline)
    alphas, weights = quadrature(steps)
    difference = x - base  # (T, e)
    n_tokens = x.shape[0]
    # Tangent of token i: its row of (x - x'), zero elsewhere.
    tangents = torch.eye(n_tokens, dtype=x.dtype).unsqueeze(-1) * difference.unsqueeze(0)  # (T, T, e)

    def embed(inputs):
        return encoder.forward(inputs_embeds=inputs.unsqueeze(0), attention_mask=mask)[0]

    def token_jvps(point):
        return vmap(lambda tangent: jvp(embed, (point,), (tangent,))[1])(tangents)  # (T, d)

    points = base + alphas.to(x.dtype)[:, None, None] * difference  # (S, T, e)
    chunk_points = chunk_points or max(1, VECTORISED_SEQUENCES // n_tokens**2)
    with torch.no_grad():
        # One vectorised call for every (path point, token) pair: larger matrix products.
        per_point = torch.cat([vmap(token_jvps)(chunk) for chunk in points.split(chunk_points)])  # (S, T, d)
        total = torch.einsum("s,std->td", weights.to(x.dtype), per_point)
        delta = embed(x) - embed(base)
    return Attribution(total, delta, batch)


def integrated_gradients_captum(encoder: Encoder, sentence: str, steps: int = 20, baseline: str = "pad") -> torch.Tensor:
    """The reference: captum's IntegratedGradients (its Gauss-Legendre rule), one call per output dimension; (T, d)."""
    from captum.attr import IntegratedGradients

    batch, mask, x, base = _prepare(encoder, sentence, baseline)

    def forward(inputs):
        return encoder.forward(inputs_embeds=inputs, attention_mask=mask.expand(len(inputs), -1))

    explainer = IntegratedGradients(forward)
    dims = encoder.model.config.hidden_size
    columns = [
        explainer.attribute(x.unsqueeze(0), baselines=base.unsqueeze(0), target=k, n_steps=steps,
                           method="gausslegendre")[0].sum(-1)
        for k in range(dims)
    ]
    return torch.stack(columns, dim=1).detach()


def shap_values(encoder: Encoder, sentence: str, baseline: str = "pad", max_evals: int | None = None,
                batch_size: int = 256) -> Attribution:
    """SHAP vectors of every token of `sentence` for all d output dimensions at once.

    shap's Partition explainer with its Text masker on the encoder's own
    tokenizer, in token-id mode: a masked token is swapped for the baseline's
    input embedding (the one :func:`integrated_gradients` starts from), special
    tokens are never masked, and the attention mask is unchanged.  The explainer
    computes Owen values over the masker's hierarchy of tokens, which are exact
    Shapley values for additive models and always efficient: the rows sum to
    ``f(x) - f(x')``.  We chose it over the Kernel or Permutation explainers
    because its cost grows about linearly with the number of tokens and all d
    outputs share each model evaluation.

    Parameters
    ----------
    max_evals
        Model evaluations per sentence.  Past them the hierarchy is not expanded
        further and a group's credit is shared equally by its tokens (special
        tokens included), which keeps efficiency but blurs the group; a warning
        says so.  ``None`` (the default) allows ``3 T^2`` for T tokens, enough to
        expand every group: full expansion took at most ``2.1 T^2`` on 40 STS12
        sentences of 6-43 tokens.  shap's own default, 500, expands sentences of
        up to about 20 tokens only.
    batch_size
        Masked inputs per forward pass.

    Returns
    -------
    Attribution
        As :func:`integrated_gradients`, with zero rows for the special tokens.
    """
    import shap

    batch, mask, x, base = _prepare(encoder, sentence, baseline)
    n_tokens = x.shape[0]
    masked_id = -1  # a sentinel no vocabulary uses: positions to replace by the baseline
    budget = max_evals or 3 * n_tokens**2
    evaluations = [0]

    def model(ids):
        ids = torch.as_tensor(np.asarray(ids, dtype=np.int64)).reshape(-1, n_tokens)
        evaluations[0] += len(ids)
        outputs = []
        with torch.no_grad():
            for chunk in ids.split(batch_size):
                embeddings = torch.where((chunk == masked_id).unsqueeze(-1), base,
                                         encoder.input_embeddings(chunk.clamp(min=0)))
                outputs.append(encoder.forward(inputs_embeds=embeddings, attention_mask=mask.expand(len(chunk), -1)))
        return torch.cat(outputs).numpy()

    masker = shap.maskers.Text(encoder.tokenizer, mask_token=masked_id, output_type="token_ids")
    explainer = shap.explainers.Partition(model, masker)
    explanation = explainer([sentence], max_evals=budget, batch_size=batch_size, silent=True)
    if evaluations[0] >= budget - 2:
        warnings.warn(f"SHAP used all max_evals={budget} on {sentence[:40]!r}... before expanding every group "
                      "of tokens: groups share credit equally; raise max_evals (None expands all)", stacklevel=2)
    values = torch.as_tensor(np.asarray(explanation.values[0]), dtype=x.dtype)
    if values.shape[0] != n_tokens:
        raise RuntimeError(f"shap's Text masker split {sentence!r} into {values.shape[0]} tokens, "
                           f"{encoder.name}'s tokenizer into {n_tokens}: cannot align them to words")
    delta = torch.as_tensor(model(batch["input_ids"].numpy())[0] - np.asarray(explanation.base_values[0]))
    return Attribution(values, delta, batch)


# The attribution methods by name: a new method is one function of the
# AttributionMethod signature and one entry here.
METHODS: dict[str, AttributionMethod] = {"ig": integrated_gradients, "shap": shap_values}


def fit_to_length(encoder: Encoder, sentence: str) -> tuple[str, bool]:
    """Cut `sentence` after its last word whose tokens all fit the encoder's ``max_length``.

    Returns the text to attribute and whether words were cut, so that a long
    sentence is attributed on whole words and its truncation is reported rather
    than silent.

    Raises
    ------
    ValueError
        If not even the first word fits.
    """
    encoding = encoder.tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)
    budget = encoder.max_length - encoder.tokenizer.num_special_tokens_to_add()
    if len(encoding["input_ids"]) <= budget:
        return sentence, False
    word_ids = encoding.word_ids()
    cut_word = word_ids[budget]  # the first word with a token past the budget
    kept = [i for i in range(budget) if word_ids[i] != cut_word]
    if not kept:
        raise ValueError(f"the first word of {sentence[:40]!r}... has more than {budget} tokens: "
                         f"{encoder.name} cannot attribute it; raise max_length")
    return sentence[: encoding["offset_mapping"][kept[-1]][1]], True


def word_weights(encoder: Encoder, sentences: list[str], method: str = "ig", baseline: str = "pad",
                 progress: bool = False, **settings):
    """Word weights from an attribution method of :data:`METHODS`: one row per (sentence, word).

    A word's vector is the sum of its tokens' attribution vectors (tokens grouped
    by the fast tokenizer's ``word_ids()``); its weight is that vector's norm.
    Special tokens stay in the input and out of the table.  A sentence longer
    than the model's ``max_length`` is cut after its last whole word that fits
    (:func:`fit_to_length`) and flagged.

    Parameters
    ----------
    method
        A key of :data:`METHODS`: ``"ig"`` (:func:`integrated_gradients`) or
        ``"shap"`` (:func:`shap_values`).
    baseline
        What a word is compared with: ``"pad"``, ``"mask"`` or ``"zero"`` input embeddings.
    **settings
        The method's own settings: ``steps`` (Gauss-Legendre points) for IG,
        ``max_evals`` for SHAP.

    Returns
    -------
    pandas.DataFrame
        ``sentence_id``, ``word_index``, ``word`` (normalised as :func:`cwi.stats.tokenize`
        does, to join the statistics), ``n_tokens``, ``weight``,
        ``normalised_weight`` (weight / mean weight of the sentence's words),
        ``completeness_error`` (``||sum_i c_i - (f(x) - f(x'))|| / ||f(x) - f(x')||``
        of the sentence; SHAP's efficiency) and ``truncated`` (words were cut).

    Raises
    ------
    ValueError
        For an unknown method or baseline, or a sentence with no word.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}: choose one of {tuple(METHODS)}")
    attribute = METHODS[method]
    rows = []
    for sentence_id, sentence in enumerate(tqdm(sentences, desc=f"{method} {encoder.name}", disable=not progress)):
        if not isinstance(sentence, str) or not stats.tokenize(sentence):
            raise ValueError(f"sentence {sentence_id} ({sentence!r}) has no word to attribute")
        text, truncated = fit_to_length(encoder, sentence)
        attributions, delta, batch = attribute(encoder, text, baseline=baseline, **settings)
        error = ((attributions.sum(0) - delta).norm() / delta.norm().clamp(min=1e-12)).item()
        words: dict[int, list[int]] = {}
        for position, word in enumerate(batch.word_ids(0)):
            if word is not None:
                words.setdefault(word, []).append(position)
        weights = {w: attributions[positions].sum(0).norm().item() for w, positions in words.items()}
        mean = sum(weights.values()) / len(weights)
        for word, positions in words.items():
            span = batch.word_to_chars(0, word)
            rows.append({
                "sentence_id": sentence_id, "word_index": word,
                "word": "".join(stats.tokenize(text[span.start:span.end])),
                "n_tokens": len(positions), "weight": weights[word], "normalised_weight": weights[word] / mean,
                "completeness_error": error, "truncated": truncated,
            })
    return pd.DataFrame(rows)


def completeness_sweep(encoder: Encoder, sentences: list[str], steps_checked, baseline: str = "pad"):
    """Integrated Gradients' completeness error on `sentences` for each number of path points.

    Returns
    -------
    (errors, tables)
        ``errors``: one row per number of points with ``steps``, ``median error``
        and ``max error`` (over sentences); ``tables[steps]``: the
        :func:`word_weights` table of that run, to reuse.
    """
    import pandas as pd

    rows, tables = [], {}
    for steps in steps_checked:
        table = word_weights(encoder, sentences, "ig", baseline=baseline, steps=steps)
        errors = table.groupby("sentence_id")["completeness_error"].first()
        rows.append({"steps": steps, "median error": errors.median(), "max error": errors.max()})
        tables[steps] = table
    return pd.DataFrame(rows), tables
