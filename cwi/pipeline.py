"""Profile-level artefacts: a profile's settings in, cached results out.

The algorithm modules (:mod:`cwi.theory`, :mod:`cwi.weighting`, ...) take plain
inputs and know nothing of profiles or the cache; the functions here read a
profile, call them, and store what they return in the artefact store
(:mod:`cwi.cache`), keyed by everything that produced it.  Chapters call these,
so a chapter run on its own reuses what an earlier chapter computed.

* :func:`corpus_statistics`: the word statistics of the profile's corpus;
* :func:`book_checkpoint` and :func:`load_encoder`: the book's masked-LM and
  SimCSE models, trained once per profile, and every registered model by name;
* :func:`sts_scores`: STS test Spearman of the profile's transformer models
  (the Fine-tuning chapter computes them, later chapters read them);
* :func:`word_weights` and :func:`profile_word_weights`: the attribution tables;
* :func:`correlation_results`: the Correlations chapter's regressions, as CSV;
* :func:`contrastive_additive_encoder`: the Theory chapter's additive encoder
  trained with InfoNCE on Wikipedia half-sentence pairs (the Weighting chapter
  weights words by its squared norms).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, attribution, cache, config, data, evaluation, stats, theory, train
from .encoders import Encoder, weights_fingerprint
from .models import MODELS
from .models import load_encoder as load_registered
from .progress import Progress

__all__ = [
    "corpus_statistics", "book_checkpoint", "load_encoder", "sts_scores", "word_weights", "profile_word_weights",
    "correlation_results", "AdditiveRun", "contrastive_additive_encoder",
]

# Bump when what a function here stores changes: it is part of the keys below.
PIPELINE_VERSION = 1


def corpus_statistics(profile) -> pd.DataFrame:
    """Word statistics (:func:`cwi.stats.word_statistics`) of the profile's corpus (`Profile.corpus`), cached.

    The table is keyed by the corpus contents, the statistics settings and
    :data:`cwi.stats.STATS_VERSION`.
    """
    profile = config.get_profile(profile)
    settings = profile.stats
    sentences = data.load_corpus(profile.corpus, settings.corpus_limit)
    key = {
        "version": stats.STATS_VERSION,
        "corpus_sha256": cache.fingerprint_texts(sentences),
        "n_sentences": len(sentences),
        "correction": settings.correction,
        "n_shuffles": settings.n_shuffles,
        "seed": profile.seed,
    }
    return cache.cached_frame(
        "word_statistics",
        key,
        lambda: stats.word_statistics(
            sentences, correction=settings.correction, n_shuffles=settings.n_shuffles, seed=profile.seed
        ),
    )


def _checkpoint(kind: str, key: dict, fit) -> Path:
    """The checkpoint folder of `kind` and `key`; on a miss ``fit()`` trains it and it is saved atomically."""
    target = cache.artefact_path("checkpoints", {"kind": kind, **key}, "")
    if not target.exists():
        model, tokenizer, record = fit()
        cache.atomic_write(target, lambda folder: train.save_checkpoint(folder, model, tokenizer, record), folder=True)
    return target


def _mlm_checkpoint(settings: config.MLMSettings, seed: int, corpus: str) -> Path:
    sentences = data.load_corpus(corpus, settings.corpus_limit)
    if len(sentences) <= settings.heldout:
        raise ValueError(f"{len(sentences)} sentences cannot hold out {settings.heldout}: raise mlm.corpus_limit")
    key = {"version": train.TRAIN_VERSION, "settings": asdict(settings), "seed": seed,
           "corpus_sha256": cache.fingerprint_texts(sentences)}
    return _checkpoint("mlm", key, lambda: train.pretrain_mlm(
        sentences[: -settings.heldout], sentences[-settings.heldout:], settings, seed))


def _simcse_checkpoint(base: Path, settings: config.SimCSESettings, supervised: bool, seed: int,
                       corpus: str) -> Path:
    examples = data.snli_triplets() if supervised else data.load_corpus(corpus, settings.corpus_limit)
    key = {"version": train.TRAIN_VERSION, "base": base.name, "settings": asdict(settings),
           "supervised": supervised, "seed": seed,
           "data_sha256": cache.fingerprint_texts("\t".join(e) if supervised else e for e in examples)}
    return _checkpoint("sup-simcse" if supervised else "unsup-simcse", key,
                       lambda: train.train_simcse(base, examples, settings, supervised, seed))


def book_checkpoint(name: str, profile) -> Path:
    """The book's checkpoint `name` (``mlm``, ``unsup-simcse``, ``sup-simcse``) for `profile`.

    Trained on the first call (SimCSE from the masked-LM checkpoint of the same
    profile), loaded from the cache afterwards; keyed by the full training
    settings, the seed and the training data.
    """
    profile = config.get_profile(profile)
    finetune = profile.finetune
    if name not in ("mlm", "unsup-simcse", "sup-simcse"):
        raise ValueError(f"unknown book checkpoint {name!r}: choose mlm, unsup-simcse or sup-simcse")
    base = _mlm_checkpoint(finetune.mlm, profile.seed, profile.corpus)
    if name == "mlm":
        return base
    supervised = name == "sup-simcse"
    return _simcse_checkpoint(base, finetune.sup if supervised else finetune.unsup, supervised, profile.seed,
                              profile.corpus)


def load_encoder(name_or_path: str | Path, profile, pooling: str | None = None, max_length: int = 128) -> Encoder:
    """Any model by registered name or folder: the book's own (trained for `profile`) like the others.

    See :func:`cwi.models.load_encoder` for the parameters and errors.
    """
    spec = MODELS.get(str(name_or_path))
    if spec is not None and spec.kind == "book":
        return load_registered(book_checkpoint(spec.location, profile), pooling or spec.pooling, max_length,
                               name=str(name_or_path))
    return load_registered(name_or_path, pooling, max_length)


def word_weights(encoder: Encoder, dataset: str, method: str, profile, progress: bool = False) -> pd.DataFrame:
    """Word weights (:func:`cwi.attribution.word_weights`) of `encoder` on the profile's sample of `dataset`, cached.

    The key holds the model's weight fingerprint, pooling and ``max_length``, the
    sentences, the method and its settings, so changing any of them recomputes.
    The frame gets a ``sentence`` column and ``attrs`` with model, dataset and method.
    """
    profile = config.get_profile(profile)
    settings = profile.attribution
    sentences = data.sample_sts_sentences(dataset, settings.sentences(encoder.name), profile.seed)
    method_settings = settings.method_settings(method)
    key = {
        "model": encoder.name, "weights": weights_fingerprint(encoder), "pooling": encoder.pooling,
        "max_length": encoder.max_length, "dataset": dataset, "sentences": cache.fingerprint_texts(sentences),
        "method": method, "baseline": settings.baseline, **method_settings, "version": attribution.ALGORITHM_VERSION,
    }

    def compute():
        frame = attribution.word_weights(encoder, sentences, method, baseline=settings.baseline, progress=progress,
                                         memory_gb=settings.memory_gb, **method_settings)
        frame.insert(1, "sentence", [sentences[i] for i in frame["sentence_id"]])
        return frame

    frame = cache.cached_frame("word_weights", key, compute)
    frame.attrs.update({"model": encoder.name, "dataset": dataset, "method": method})
    return frame


def profile_word_weights(profile, encoders: dict[str, Encoder] | None = None) -> pd.DataFrame:
    """Every word weight of the profile: each model x dataset x method, from the cache or computed.

    `encoders` reuses models already loaded (name -> :class:`cwi.encoders.Encoder`);
    the others are loaded with :func:`load_encoder`.

    Returns
    -------
    pandas.DataFrame
        The :func:`cwi.attribution.word_weights` columns plus ``model``,
        ``dataset``, ``method`` and ``sentence``.
    """
    profile = config.get_profile(profile)
    settings = profile.attribution
    encoders = dict(encoders or {})
    frames = []
    methods = attribution.METHODS
    tables = len(settings.models) * len(settings.datasets) * len(methods)
    with Progress(tables, "word weights", "tables", announce_start=True) as bar:
        for name in settings.models:
            encoder = encoders.get(name) or load_encoder(name, profile)
            for dataset in settings.datasets:
                for method in methods:
                    bar.set_postfix(last=f"{name} {dataset} {method}")
                    frame = word_weights(encoder, dataset, method, profile)
                    frames.append(frame.assign(model=name, dataset=dataset, method=method))
                    bar.update()
    columns = ["model", "dataset", "method"]
    table = pd.concat(frames, ignore_index=True)
    return table[columns + [c for c in table.columns if c not in columns]]


def correlation_results(profile, frame: pd.DataFrame, pairs: dict) -> pd.DataFrame:
    """Every regression of :func:`cwi.analysis.pair_table` on `frame`, also written to the cache as CSV.

    `frame` is :func:`cwi.analysis.attach_statistics` of the profile's word
    weights; the CSV is keyed by a hash of it, the pairs and the analysis
    settings, and ``attrs["cache_path"]`` says where it is.
    """
    profile = config.get_profile(profile)
    settings = profile.analysis
    results = analysis.pair_table(frame, pairs, n_boot=settings.n_bootstrap, seed=profile.seed, level=settings.level)
    key = {"data": int(pd.util.hash_pandas_object(frame, index=False).sum() % 2**63),
           "pairs": sorted(pairs), "analysis": vars(settings), "seed": profile.seed}
    path = cache.artefact_path("correlations", key, ".csv")
    cache.atomic_write(path, lambda tmp: results.to_csv(tmp, index=False))
    results.attrs["cache_path"] = str(path)
    return results


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
    sentences = data.load_corpus(profile.corpus, th.real_sentences)
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
    profile = config.get_profile(profile)
    finetune = profile.finetune
    names = finetune.models if models is None else models
    pairs = {name: evaluation.sts_pairs(name, "test", finetune.sts_max_pairs) for name in finetune.sts_datasets}
    data_key = {name: cache.fingerprint_texts(rows[["sentence1", "sentence2"]].stack().tolist()
                                              + rows["score"].astype(str).tolist())
                for name, rows in pairs.items()}
    frames = []
    for name in names:
        encoder = load_encoder(name, profile)
        key = {"version": PIPELINE_VERSION, "model": name, "weights": weights_fingerprint(encoder),
               "pooling": encoder.pooling, "max_length": encoder.max_length, "data": data_key}

        def evaluate(encoder=encoder, name=name) -> pd.DataFrame:
            return pd.DataFrame([
                {"model": name, "dataset": dataset, "spearman": evaluation.encoder_spearman(encoder, rows)}
                for dataset, rows in pairs.items()
            ])

        frames.append(cache.cached_frame("sts_scores", key, evaluate))
    return pd.concat(frames, ignore_index=True)
