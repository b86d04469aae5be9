"""Profile-level artefacts: a profile's settings in, cached results out.

The algorithm modules (:mod:`cwi.theory`, :mod:`cwi.weighting`, ...) take plain
inputs and know nothing of profiles or the cache; the functions here read a
profile, call them, and store what they return in the artefact store
(:mod:`cwi.cache`), keyed by everything that produced it.  Chapters call these,
so a chapter run on its own reuses what an earlier chapter computed.

* :func:`contrastive_additive_encoder`: the Theory chapter's additive encoder
  trained with InfoNCE on Wikipedia half-sentence pairs (the Weighting chapter
  weights words by its squared norms);
* :func:`sts_scores`: STS test Spearman of the profile's transformer models
  (the Fine-tuning chapter computes them, later chapters read them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import cache, config, data, theory

__all__ = ["AdditiveRun", "contrastive_additive_encoder", "sts_scores"]

# Bump when what a function here stores changes: it is part of the keys below.
PIPELINE_VERSION = 1


@dataclass(frozen=True)
class AdditiveRun:
    """An additive encoder trained on real sentences, with what it was trained on.

    Attributes
    ----------
    vocab
        Word of each row of the encoder's tables.
    encoded
        The training sentences as arrays of word ids (words outside `vocab` removed).
    model
        The trained :class:`cwi.theory.AdditiveEncoder`.
    losses
        InfoNCE loss of every training step.
    """

    vocab: list[str]
    encoded: list[np.ndarray]
    model: theory.AdditiveEncoder
    losses: list[float]

    def squared_norms(self) -> pd.Series:
        """``||u_w||^2`` indexed by word."""
        return pd.Series(self.model.squared_norms(), index=pd.Index(self.vocab, name="word"), name="squared_norm")


def contrastive_additive_encoder(profile) -> AdditiveRun:
    """The Theory chapter's check on real sentences: trained once per profile, then loaded.

    The profile's first ``theory.real_sentences`` Wikipedia sentences, restricted
    to words seen ``real_min_count`` times and present in GloVe (as the GloVe
    check of that chapter needs), positive pairs made of two random halves of a
    sentence, random initialisation (:func:`cwi.theory.train_on_sentences`).
    """
    import torch

    profile = config.get_profile(profile)
    th = profile.theory
    glove_words, _ = theory.load_glove()
    sentences = data.load_wiki(limit=th.real_sentences)
    vocab, encoded = theory.restrict_vocabulary(sentences, th.real_min_count, allowed=set(glove_words))
    key = {
        "version": PIPELINE_VERSION, "corpus_sha256": cache.fingerprint_texts(sentences),
        "glove_sha256": cache.fingerprint_texts(glove_words), "seed": profile.seed,
        **{name: value for name, value in asdict(th).items()
           if name in ("real_min_count", "real_dim", "real_steps", "batch_size", "temperature", "lr")},
    }

    def train() -> dict:
        model, losses = theory.train_on_sentences(encoded, len(vocab), th.real_dim, th.real_steps, th.batch_size,
                                                  th.temperature, th.lr, seed=profile.seed)
        return {"u": model.u.weight.detach(), "v": model.v.weight.detach(), "losses": losses}

    stored = cache.cached("additive_encoders", key, ".pt", train, lambda value, tmp: torch.save(value, tmp),
                          lambda path: torch.load(path, weights_only=True))
    model = theory.AdditiveEncoder(len(vocab), stored["u"].shape[1], init=stored["u"].numpy())
    model.v.weight.data.copy_(stored["v"])
    return AdditiveRun(vocab, encoded, model, list(stored["losses"]))


def sts_scores(profile, models: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Spearman x100 on the test split of each of the profile's STS datasets, per model.

    Parameters
    ----------
    models
        Registered model names; default the profile's ``finetune.models``.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``dataset``, ``spearman``: one row per model and dataset, in
        the order asked.  Each model's scores are cached under a key that holds
        its weights' fingerprint, pooling, the datasets' contents and
        ``finetune.sts_max_pairs``.
    """
    from . import models as registry
    from . import train

    profile = config.get_profile(profile)
    finetune = profile.finetune
    names = finetune.models if models is None else models
    pairs = {name: train.sts_pairs(name, "test", finetune.sts_max_pairs) for name in finetune.sts_datasets}
    data_key = {name: cache.fingerprint_texts(rows[["sentence1", "sentence2"]].stack().tolist()
                                              + rows["score"].astype(str).tolist())
                for name, rows in pairs.items()}
    frames = []
    for name in names:
        encoder = registry.load_encoder(name, profile)
        key = {"version": PIPELINE_VERSION, "model": name, "weights": registry.weights_fingerprint(encoder),
               "pooling": encoder.pooling, "max_length": encoder.max_length, "data": data_key}

        def evaluate(encoder=encoder, name=name) -> pd.DataFrame:
            return pd.DataFrame([
                {"model": name, "dataset": dataset,
                 "spearman": train.evaluate_sts(encoder, dataset, max_pairs=finetune.sts_max_pairs)}
                for dataset in finetune.sts_datasets
            ])

        frames.append(cache.cached_frame("sts_scores", key, evaluate))
    return pd.concat(frames, ignore_index=True)
