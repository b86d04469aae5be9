"""Word weights of vector-valued sentence encoders: one interface for every attribution method.

An attribution method splits ``f(x) - f(x')``, the difference between a
sentence's embedding and its baseline's, into one d-dimensional vector per word;
a word's weight is that vector's norm.  :data:`METHODS` names the methods, each a
function ``(encoder, sentences, baseline=..., progress=..., **settings) -> list of
WordAttribution``:

* ``"ig"``: Integrated Gradients by forward mode, one tangent per word, several
  sentences per call, adaptive nested path points (:mod:`cwi.integrated_gradients`);
* ``"shap"``: Owen values of the words from shap's Partition explainer (:mod:`cwi.shapley`).

Their token-level forms (:func:`integrated_gradients`, :func:`shap_values`) and
captum's reference (:func:`integrated_gradients_captum`) stay for whoever wants
token attributions.  :func:`word_weights` turns any method into one row per
(sentence, word), the table the Correlations chapter regresses
(:func:`cwi.pipeline.word_weights` caches it per model, dataset, method and settings).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import stats
from .encoders import Encoder
from .progress import Progress
from .inputs import BASELINES, Attribution, WordAttribution, baseline_embeddings
from .integrated_gradients import (ADAPTIVE_POINTS, RULES, clenshaw_curtis, completeness_by_rule, completeness_error,
                                   integrated_gradients, integrated_gradients_captum, quadrature, unconverged,
                                   word_integrated_gradients)
from .shapley import shap_values, word_shap

__all__ = [
    "Attribution", "WordAttribution", "AttributionMethod", "BASELINES", "METHODS", "baseline_embeddings",
    "quadrature", "clenshaw_curtis", "ADAPTIVE_POINTS", "RULES", "completeness_error", "integrated_gradients", "integrated_gradients_captum", "shap_values", "word_integrated_gradients",
    "unconverged", "word_shap", "fit_to_length", "word_weights", "completeness_sweep", "rule_check",
]

# Bump when a change alters what word_weights returns: it is part of every cache key.
# 3: IG by word tangents with adaptive points; SHAP over words, shap's hierarchy on words.
# 4: words are cwi.stats.tokenize's for every tokenizer, aligned by character offsets.
# 5: IG also stops on every word's convergence (word_error); SHAP records a spent budget (budget_spent).
# 6: IG's word error is relative to the sentence's mean word weight (was: to its difference norm).
# 7: IG's word error estimates the kept rule's own error (extrapolated from its two embedded rules), not the
#    coarser rule's, so sentences stop one rule earlier where the rules converge.
ALGORITHM_VERSION = 7

# An attribution method: (encoder, sentences, baseline=..., progress=..., **its settings) -> [WordAttribution].
AttributionMethod = Callable[..., list[WordAttribution]]

# The attribution methods by name: a new method is one function of the
# AttributionMethod signature and one entry here.
METHODS: dict[str, AttributionMethod] = {"ig": word_integrated_gradients, "shap": word_shap}


def fit_to_length(encoder: Encoder, sentence: str) -> tuple[str, bool]:
    """Cut `sentence` after its last word whose tokens all fit the encoder's ``max_length``.

    Words are those of :func:`cwi.stats.tokenize`, aligned with the tokens by
    character offsets (:func:`cwi.inputs.align_words`).  Returns the text to
    attribute and whether words were cut, so that a long sentence is attributed
    on whole words and its truncation is reported rather than silent.

    Raises
    ------
    ValueError
        If not even the first word fits.
    """
    budget = encoder.max_length - encoder.tokenizer.num_special_tokens_to_add()
    text, truncated = sentence, False
    while True:
        offsets = encoder.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) <= budget:
            return text, truncated
        first_left_out = offsets[budget][0]  # where the first token past the budget starts
        kept = [end for _, _, end in stats.word_spans(text) if end <= first_left_out]
        if not kept or kept[-1] >= len(text):  # (the second: no progress, a word straddles the cut)
            raise ValueError(f"the first word of {sentence[:40]!r}... has more than {budget} tokens: "
                             f"{encoder.name} cannot attribute it; raise max_length")
        # Retokenised, a shorter text can split its last word differently: check again.
        text, truncated = text[: kept[-1]], True


def word_weights(encoder: Encoder, sentences: list[str], method: str = "ig", baseline: str = "pad",
                 progress: bool = False, **settings):
    """Word weights from an attribution method of :data:`METHODS`: one row per (sentence, word).

    The words are those of :func:`cwi.stats.tokenize`, which the statistics
    count, whatever the model's tokenizer: tokens are aligned with them by
    character offsets, and a token straddling words is shared by character
    (:func:`cwi.inputs.align_words`).  A word's vector is the attribution of its
    tokens (its share of each); its weight is that vector's norm.
    Special tokens stay in the input and out of the table.  A sentence longer
    than the model's ``max_length`` is cut after its last whole word that fits
    (:func:`fit_to_length`) and flagged.

    Parameters
    ----------
    method
        A key of :data:`METHODS`: ``"ig"`` (:func:`word_integrated_gradients`) or
        ``"shap"`` (:func:`word_shap`).
    baseline
        What a word is compared with: ``"pad"``, ``"mask"`` or ``"zero"`` input embeddings.
    progress
        Show a progress bar of sentences (the runner's terminal hears of a long
        table either way: :class:`cwi.progress.Progress`).
    **settings
        The method's own settings: ``points`` (one rule size or an adaptive
        sequence), ``rule`` and ``target`` for IG, ``max_evals`` for SHAP.

    Returns
    -------
    pandas.DataFrame
        ``sentence_id``, ``word_index`` (position in ``cwi.stats.tokenize(sentence)``),
        ``word`` (as :func:`cwi.stats.tokenize` gives it, to join the statistics),
        ``n_tokens`` (tokens with a share in the word), ``weight``,
        ``normalised_weight`` (weight / mean weight of the sentence's words),
        ``completeness_error`` (``||sum_w c_w - (f(x) - f(x'))|| / ||f(x) - f(x')||``
        of the sentence; SHAP's efficiency), ``path_points`` (IG's rule for the
        sentence; missing for SHAP), ``evaluations`` (sequences the model ran for
        the sentence), ``word_error`` (IG: the largest change of a word's vector
        against a coarser rule, relative to the sentence's mean word weight; NaN for SHAP),
        ``budget_spent`` (SHAP: the explainer used all of ``max_evals``; missing
        for IG) and ``truncated`` (words were cut).

    Raises
    ------
    ValueError
        For an unknown method or baseline, or a sentence with no word.
    """
    import pandas as pd

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}: choose one of {tuple(METHODS)}")
    texts, cut = [], []
    for sentence_id, sentence in enumerate(sentences):
        if not isinstance(sentence, str) or not stats.tokenize(sentence):
            raise ValueError(f"sentence {sentence_id} ({sentence!r}) has no word to attribute")
        text, truncated = fit_to_length(encoder, sentence)
        texts.append(text)
        cut.append(truncated)
    with Progress(len(texts), f"{method.upper()} {encoder.name}", "sentences", show_bar=progress) as bar:
        results = METHODS[method](encoder, texts, baseline=baseline, progress=bar, **settings)
    rows = []
    for sentence_id, (result, truncated) in enumerate(zip(results, cut)):
        error = completeness_error(result.values, result.delta)
        weights = result.values.norm(dim=1).tolist()
        mean = sum(weights) / len(weights)
        prepared = result.sentence
        for k, (word, positions) in enumerate(zip(prepared.word_text, prepared.words)):
            rows.append({
                "sentence_id": sentence_id, "word_index": prepared.word_index[k], "word": word,
                "n_tokens": len(positions), "weight": weights[k], "normalised_weight": weights[k] / mean,
                "completeness_error": error, "path_points": result.path_points, "evaluations": result.evaluations,
                "word_error": result.word_error, "budget_spent": result.budget_spent, "truncated": truncated,
            })
    frame = pd.DataFrame(rows)
    frame["path_points"] = frame["path_points"].astype("Int64")
    frame["word_error"] = frame["word_error"].astype(float)
    frame["budget_spent"] = frame["budget_spent"].astype("boolean")
    return frame


def completeness_sweep(encoder: Encoder, sentences: list[str], points, baseline: str = "pad",
                       rule: str = "clenshaw-curtis"):
    """Integrated Gradients' completeness error on `sentences` for each rule size of `points`, run on every sentence.

    Returns
    -------
    pandas.DataFrame
        One row per rule size: ``points``, ``median error`` and ``max error`` over the sentences.
    """
    import pandas as pd

    points = (points,) if isinstance(points, int) else tuple(points)
    errors = completeness_by_rule(encoder, sentences, points, rule, baseline)
    return pd.DataFrame({"points": points, "median error": np.median(errors, axis=1), "max error": errors.max(axis=1)})


def rule_check(encoder: Encoder, sentences: list[str], points, reference: int, target: float, baseline: str = "pad"):
    """The adaptive rule of Integrated Gradients against a high-point reference, word by word.

    Each sentence is attributed with the adaptive Clenshaw-Curtis rule of `points`
    (:func:`word_integrated_gradients`) and with the single `reference`-point
    rule; a word's *true* error is the distance of its vector from the
    reference's, relative to the sentence's mean reference word weight (the
    scale of :func:`cwi.integrated_gradients.word_error`).

    Returns
    -------
    pandas.DataFrame
        One row per sentence: ``points`` (the rule kept), ``estimated`` (the
        rule's word-error estimate), ``true`` (the largest true word error),
        ``weight_error`` (the largest change of a normalised weight against the
        reference's) and ``within_target`` (``true < target``).
    """
    import pandas as pd

    adaptive = word_integrated_gradients(encoder, sentences, points, baseline=baseline, target=target)
    exact = word_integrated_gradients(encoder, sentences, reference, baseline=baseline)
    rows = []
    for result, best in zip(adaptive, exact):
        scale = float(best.values.norm(dim=1).mean()) or 1.0
        true = float((result.values - best.values).norm(dim=1).max()) / scale
        weights, reference_weights = result.values.norm(dim=1), best.values.norm(dim=1)
        shift = float((weights / weights.mean() - reference_weights / reference_weights.mean()).abs().max())
        rows.append({"points": result.path_points, "estimated": result.word_error, "true": true,
                     "weight_error": shift, "within_target": true < target})
    return pd.DataFrame(rows)
