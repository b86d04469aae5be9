"""Profile-level artefacts: a profile's settings in, cached results out.

The algorithm modules (:mod:`cwi.theory`, :mod:`cwi.weighting`, ...) take plain
inputs and know nothing of profiles or the cache; the functions here read a
profile, call them, and store what they return in the artefact store
(:mod:`cwi.cache`), keyed by everything that produced it.  Chapters call these,
so a chapter run on its own reuses what an earlier chapter computed.

* :func:`corpus_statistics`: the word statistics of the profile's corpus;
* :func:`load_encoder`: every registered model by name, the book's own trained
  for the profile (:mod:`cwi.runs` trains them, searches the recipe and
  runs the seeds);
* :func:`sts_scores`: STS test Spearman of the profile's transformer models
  (the Fine-tuning chapter computes them, later chapters read them);
* :func:`word_weights` and :func:`profile_word_weights`: the attribution tables;
* :func:`faithfulness_curves`: deletion and insertion curves of the word weights;
* :func:`correlation_results`: the Correlations chapter's regressions, as CSV;
* :func:`contrastive_additive_encoder`: the Theory chapter's additive encoder
  trained with InfoNCE on Wikipedia half-sentence pairs (the Weighting chapter
  weights words by its squared norms);
* :func:`pair_decompositions`: the Similarity chapter's word-pair splits of the
  cosine, from word vectors cached per block (:func:`sentence_vector_block`),
  and :func:`baseline_sensitivity`, the same under other attribution baselines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, attribution, cache, config, data, evaluation, faithfulness, runs, stats, theory, workers
from .encoders import Encoder, weights_fingerprint
from .models import MODELS
from .models import load_encoder as load_registered
from .models import load_spec
from .progress import Progress

__all__ = [
    "corpus_statistics", "load_encoder", "sts_scores", "word_weights", "word_weight_block", "word_weight_blocks",
    "word_weight_sample", "encoder_fingerprint", "profile_word_weights", "faithfulness_curves", "seed_model_name", "seed_model_names",
    "seed_encoders", "seed_word_weights", "trajectory",
    "correlation_results", "AdditiveRun", "contrastive_additive_encoder",
    "similarity_models", "similarity_sample", "sentence_vector_block", "SimilarityResults", "pair_decompositions",
    "baseline_sensitivity",
]

# Bump when what a function here stores changes: it is part of the keys below.
PIPELINE_VERSION = 1


def corpus_statistics(profile) -> pd.DataFrame:
    """Word statistics (:func:`cwi.stats.word_statistics`) of the profile's corpus (`Profile.corpus`), cached.

    The table is keyed by the corpus contents, the statistics settings and
    :data:`cwi.stats.STATS_VERSION`; the per-frequency-bin correction
    (:func:`cwi.stats.frequency_bin_correction`) is joined to it on every call.
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
    table = cache.cached_frame(
        "word_statistics",
        key,
        lambda: stats.word_statistics(
            sentences, correction=settings.correction, n_shuffles=settings.n_shuffles, seed=profile.seed
        ),
    )
    # Cheap next to the counts, so computed on every call rather than cached.
    binned = stats.frequency_bin_correction(table, settings.frequency_bins, settings.bin_percentile,
                                            settings.min_bin_words)
    joined = table.join(binned)
    joined.attrs = {**table.attrs, "frequency_bins": settings.frequency_bins, "min_bin_words": settings.min_bin_words,
                    "bin_percentile": settings.bin_percentile}
    return joined


def load_encoder(name_or_path: str | Path, profile, pooling: str | None = None, max_length: int = 128) -> Encoder:
    """Any model of the profile's registry by name, or a folder: the book's own (trained for `profile`) like the others.

    The registry is :attr:`cwi.config.Profile.registry`: the built-in models and
    a study file's; a drawn model (``book-unsup-simcse (seed 3)``, :func:`draw_models`)
    loads too.  See :func:`cwi.models.load_encoder` for the parameters and errors.
    """
    profile = config.get_profile(profile)
    name = str(name_or_path)
    spec = profile.registry.get(name)
    if spec is None:
        if name in draw_models(profile):
            return draw_encoder(name, profile)
        return load_registered(name_or_path, pooling, max_length)
    if spec.kind == "book":
        return load_registered(runs.book_checkpoint(spec.location, profile), pooling or spec.pooling, max_length,
                               name=name)
    return load_spec(spec, name, pooling, max_length)


def word_weight_sample(encoder_name: str, dataset: str, profile, sentences_per_dataset: int | None = None) -> list[str]:
    """The sentences of `dataset` that `encoder_name` is attributed on (nested samples: see :func:`word_weights`)."""
    profile = config.get_profile(profile)
    settings = profile.attribution
    count = settings.sentences(encoder_name) if sentences_per_dataset is None else sentences_per_dataset
    return data.sample_sts_sentences(dataset, count, profile.seed)


def word_weight_blocks(encoder_name: str, dataset: str, profile, sentences_per_dataset: int | None = None) -> int:
    """How many blocks of ``attribution.block_sentences`` the word-weight table of `encoder_name` on `dataset` has."""
    profile = config.get_profile(profile)
    count = len(word_weight_sample(encoder_name, dataset, profile, sentences_per_dataset))
    return -(-count // profile.attribution.block_sentences)


def encoder_fingerprint(encoder: Encoder) -> str:
    """sha256 of an encoder's weights and of its tokenizer (its vocabulary, normaliser, pre-tokenizer, template).

    Word weights depend on both: the tokenizer decides the tokens and, through
    their offsets, the words.  Hashing BERT-base's weights takes about half a
    second, so callers compute it once per encoder and pass it on.
    """
    import hashlib
    import json

    # Truncation and padding are call settings the tokenizer keeps from its last use, not what it is.
    state = {key: value for key, value in json.loads(encoder.tokenizer.backend_tokenizer.to_str()).items()
             if key not in ("truncation", "padding")}
    tokenizer = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(f"{weights_fingerprint(encoder)}:{tokenizer}".encode()).hexdigest()


def word_weight_block(encoder: Encoder, dataset: str, method: str, profile, block: int, progress: bool = False,
                      sentences_per_dataset: int | None = None, compute: bool = True,
                      fingerprint: str | None = None) -> pd.DataFrame | None:
    """Block `block` of a word-weight table (:func:`word_weights`): ``attribution.block_sentences`` sentences, cached.

    A block is the unit the cache stores and :mod:`cwi.shards` distributes.  Its
    key holds the model's weights and tokenizer (`fingerprint`, computed if not
    given: :func:`encoder_fingerprint`), pooling and ``max_length``, the block's
    sentences and where it starts, the method and its settings, so changing any
    of them recomputes.  With `compute` false, a block missing from the cache
    gives ``None`` instead of being computed.
    """
    profile = config.get_profile(profile)
    settings = profile.attribution
    sample = word_weight_sample(encoder.name, dataset, profile, sentences_per_dataset)
    start = block * settings.block_sentences
    sentences = sample[start:start + settings.block_sentences]
    if not sentences:
        raise ValueError(f"block {block} of {encoder.name} on {dataset} is past its {len(sample)} sentences")
    method_settings = settings.method_settings(method)
    key = {
        "model": encoder.name, "weights": fingerprint or encoder_fingerprint(encoder), "pooling": encoder.pooling,
        "max_length": encoder.max_length, "dataset": dataset, "sentences": cache.fingerprint_texts(sentences),
        "first_sentence": start, "method": method, "baseline": settings.baseline, **method_settings,
        "version": attribution.ALGORITHM_VERSION,
    }
    if not compute and not cache.artefact_path("word_weights", key, ".parquet").exists():
        return None

    def attribute():
        frame = attribution.word_weights(encoder, sentences, method, baseline=settings.baseline, progress=progress,
                                         memory_gb=settings.memory_gb, **method_settings)
        frame.insert(1, "sentence", [sentences[i] for i in frame["sentence_id"]])
        frame["sentence_id"] += start  # numbered within the whole sample
        return frame

    return cache.cached_frame("word_weights", key, attribute)


def word_weights(encoder: Encoder, dataset: str, method: str, profile, progress: bool = False,
                 sentences_per_dataset: int | None = None, fingerprint: str | None = None) -> pd.DataFrame:
    """Word weights (:func:`cwi.attribution.word_weights`) of `encoder` on the profile's sample of `dataset`, cached.

    The sample is the profile's number for the model
    (:meth:`cwi.config.AttributionSettings.sentences`) unless
    `sentences_per_dataset` is given; samples are nested, so a smaller one is
    a subset of a larger one (numbered by its own ``sentence_id``).  The table is the concatenation of its blocks
    (:func:`word_weight_block`), each cached on its own: those computed by
    ``python -m cwi attribute`` on a cluster are read, the others computed here.
    The frame gets a ``sentence`` column and ``attrs`` with model, dataset and method.
    `fingerprint` (:func:`encoder_fingerprint`) saves hashing the weights again
    when the caller already did.
    """
    profile = config.get_profile(profile)
    blocks = word_weight_blocks(encoder.name, dataset, profile, sentences_per_dataset)
    fingerprint = fingerprint or encoder_fingerprint(encoder)
    frames = [word_weight_block(encoder, dataset, method, profile, b, progress, sentences_per_dataset,
                                fingerprint=fingerprint) for b in range(blocks)]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame.attrs.update({"model": encoder.name, "dataset": dataset, "method": method,
                        "cache_paths": [f.attrs["cache_path"] for f in frames]})
    return frame


# Attributing in worker processes pays from this many sentence attributions still to compute, counted for a
# model of a million parameters outside its embeddings (cwi.workers).
PARALLEL_MIN_SENTENCES = 1_000


def _missing_sentences(encoder: Encoder, profile: config.Profile, methods, fingerprint: str,
                       sentences_per_dataset: int | None = None) -> int:
    """Sentence attributions of `encoder`'s word-weight tables that the cache does not hold yet."""
    settings, missing = profile.attribution, 0
    for dataset in settings.datasets:
        count = len(word_weight_sample(encoder.name, dataset, profile, sentences_per_dataset))
        for method in methods:
            for block in range(-(-count // settings.block_sentences)):
                if word_weight_block(encoder, dataset, method, profile, block, compute=False,
                                     sentences_per_dataset=sentences_per_dataset, fingerprint=fingerprint) is None:
                    missing += min(settings.block_sentences, count - block * settings.block_sentences)
    return missing


def _attribute(profile: config.Profile, name: str, checkpoint: str | None, pooling: str, max_length: int, methods,
               sentences_per_dataset: int | None = None) -> None:
    """A worker's job: every word-weight table of one model (from its checkpoint, or by name), into the cache."""
    encoder = (load_registered(checkpoint, pooling, max_length, name=name) if checkpoint is not None
               else load_encoder(name, profile))
    fingerprint = encoder_fingerprint(encoder)
    for dataset in profile.attribution.datasets:
        for method in methods:
            word_weights(encoder, dataset, method, profile, fingerprint=fingerprint,
                         sentences_per_dataset=sentences_per_dataset)


def _attribute_in_workers(profile: config.Profile, encoders: dict[str, Encoder], fingerprints: dict[str, str],
                          methods, sentences_per_dataset: int | None = None) -> None:
    """The missing word-weight tables of `encoders` (loaded from folders), in worker processes where it pays.

    One job per model and method; a job's work is its sentences x the model's
    parameters outside the embeddings (what a forward pass costs), so that the
    costliest tables start first and no long job is left running alone at the end.
    """
    jobs = []
    for name, encoder in encoders.items():
        size = sum(p.numel() for key, p in encoder.model.named_parameters() if "embeddings" not in key)
        for method in methods:
            missing = _missing_sentences(encoder, profile, [method], fingerprints[name], sentences_per_dataset)
            if missing:
                jobs.append(workers.Job(_attribute, (profile, name, encoder.folder, encoder.pooling, encoder.max_length,
                                                     [method], sentences_per_dataset), missing * size))
    if sum(job.work for job in jobs) >= PARALLEL_MIN_SENTENCES * 1e6 and workers.fill(jobs, 0, "word-weight tables"):
        # What a worker stored is what this process reads: a key built differently would recompute silently.
        left = {name: _missing_sentences(encoder, profile, methods, fingerprints[name], sentences_per_dataset)
                for name, encoder in encoders.items()}
        if any(left.values()):
            raise RuntimeError(f"worker processes left word-weight tables missing ({left}): their cache keys differ "
                               "from this process's; please report this as a bug of cwi.pipeline")


def profile_word_weights(profile, encoders: dict[str, Encoder] | None = None,
                         models: list[str] | None = None, methods=None) -> pd.DataFrame:
    """Every word weight of the profile: each model x dataset x method, from the cache or computed.

    `encoders` reuses models already loaded (name -> :class:`cwi.encoders.Encoder`);
    the others are loaded with :func:`load_encoder`.  `models` defaults to the
    profile's ``attribution.models``, `methods` to every method of
    :data:`cwi.attribution.METHODS`.  Where many tables are missing, they are
    computed in worker processes first (:mod:`cwi.workers`), one model per job.

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
    methods = list(attribution.METHODS if methods is None else methods)
    models = list(settings.models if models is None else models)
    encoders |= {name: encoders.get(name) or load_encoder(name, profile) for name in models}
    fingerprints = {name: encoder_fingerprint(encoders[name]) for name in models}  # once per model, not per table
    _attribute_in_workers(profile, {name: encoders[name] for name in models}, fingerprints, methods)
    tables = len(models) * len(settings.datasets) * len(methods)
    with Progress(tables, "word weights", "tables", announce_start=True) as bar:
        for name in models:
            encoder = encoders[name]
            for dataset in settings.datasets:
                for method in methods:
                    bar.set_postfix(last=f"{name} {dataset} {method}")
                    frame = word_weights(encoder, dataset, method, profile, fingerprint=fingerprints[name])
                    frames.append(frame.assign(model=name, dataset=dataset, method=method))
                    bar.update()
    columns = ["model", "dataset", "method"]
    table = pd.concat(frames, ignore_index=True)
    return table[columns + [c for c in table.columns if c not in columns]]


def faithfulness_curves(profile, words: pd.DataFrame, encoders: dict[str, Encoder] | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deletion and insertion curves and leave-one-out drops of every model of `words`, cached per model and dataset.

    Parameters
    ----------
    profile
        Its ``faithfulness`` settings choose the sentences (the first of each
        model's attributed sample: :func:`word_weight_sample`), those that get
        the greedy oracles too (``oracle_sentences``, nested), the random
        orders and the removals; ``attribution.baseline`` is what a removed
        word's tokens become.
    words
        Word weights with statistics (:func:`cwi.analysis.attach_statistics` of
        :func:`profile_word_weights`): they give each sentence its orders
        (:func:`cwi.faithfulness.word_orders`).
    encoders
        Models already loaded, by name; the others are loaded.

    Returns
    -------
    curves, leave_one_out
        :func:`cwi.faithfulness.removal_curves`' two tables with ``model``,
        ``dataset``, ``sentence`` (as the word-weight tables spell it) and, for
        the curves, ``draw`` (the greedy oracles are orders ``"oracle|MEASURE"``).
        Each (model, dataset) is cached under its model's weights, the
        sentences, every order of every sentence and the sentences with an
        oracle, so new weights or statistics recompute it.
    """
    profile = config.get_profile(profile)
    settings = profile.faithfulness
    methods = list(attribution.METHODS)
    encoders = dict(encoders or {})
    curves, drops, fingerprints = [], [], {}
    models = list(dict.fromkeys(words["model"]))
    jobs = []
    for name in models:
        own = words[words["model"] == name]
        for dataset in profile.attribution.datasets:
            attributed = own.loc[own["dataset"] == dataset, "sentence"].nunique()
            count = attributed if settings.sentences_per_dataset is None else min(settings.sentences_per_dataset,
                                                                                   attributed)
            sample = word_weight_sample(name, dataset, profile, count) if count else []
            oracle = word_weight_sample(name, dataset, profile, min(settings.oracle_sentences, count)) if count else []
            jobs.append((name, dataset, own[(own["dataset"] == dataset) & own["sentence"].isin(sample)], sample,
                         set(oracle)))
    with Progress(sum(len(job[3]) for job in jobs), "faithfulness curves", "sentences", announce_start=True) as bar:
        for name, dataset, rows, sample, oracle in jobs:
            if not sample:
                continue
            encoder = encoders.get(name) or load_encoder(name, profile)
            encoders[name] = encoder
            if name not in fingerprints:  # once per model, not per dataset (hashing weights is not free)
                fingerprints[name] = encoder_fingerprint(encoder)
            orders = faithfulness.word_orders(rows, methods, settings.random_orders, profile.seed)
            key = {"model": name, "weights": fingerprints[name], "pooling": encoder.pooling,
                   "max_length": encoder.max_length, "dataset": dataset, "sentences": cache.fingerprint_texts(sample),
                   "orders": cache.fingerprint_texts(f"{r.sentence}|{r.order}|{r.draw}|{r.words}"
                                                     for r in orders.itertuples()),
                   "removals": list(settings.removals), "baseline": profile.attribution.baseline,
                   "oracle": cache.fingerprint_texts(sorted(oracle)), "version": faithfulness.ALGORITHM_VERSION}

            computed = []

            def compute():
                frames = []
                for sentence, group in orders.groupby("sentence", sort=False):
                    text, _ = attribution.fit_to_length(encoder, sentence)
                    named = {f"{r.order}|{r.draw}": list(r.words) for r in group.itertuples()}
                    curve, drop = faithfulness.removal_curves(encoder, text, named, profile.attribution.baseline,
                                                              settings.removals, oracle=sentence in oracle)
                    frames.append(pd.concat([curve.assign(table="curve"), drop.assign(table="leave one out")])
                                  .assign(sentence=sentence))
                    bar.update()
                    computed.append(sentence)
                return pd.concat(frames, ignore_index=True)

            bar.set_postfix(last=f"{name} {dataset}")
            stored = cache.cached_frame("faithfulness", key, compute)
            bar.update(len(sample) - len(computed))  # those read from the cache
            stored = stored.assign(model=name, dataset=dataset)
            curve = stored[stored["table"] == "curve"]
            # "ORDER|DRAW", but the oracles are named "oracle|MEASURE" by removal_curves and drawn once.
            is_oracle = curve["order"].str.startswith(f"{faithfulness.ORACLE}|")
            named = curve["order"].str.rsplit("|", n=1, expand=True)
            curves.append(curve.assign(order=named[0].where(~is_oracle, curve["order"]),
                                       draw=named[1].where(~is_oracle, "0").astype(int))
                          [["model", "dataset", "sentence", "removal", "order", "draw", "direction", "k", "fraction",
                            "cosine", "distance"]])
            drops.append(stored[stored["table"] == "leave one out"]
                         [["model", "dataset", "sentence", "removal", "word_index", "drop"]]
                         .astype({"word_index": int}))
    return pd.concat(curves, ignore_index=True), pd.concat(drops, ignore_index=True)


def seed_model_name(model: str, seed: int) -> str:
    """What tables call the book model `model` drawn with fresh `seed` (stopped at the recipe's step)."""
    return f"{model} (seed {seed})"


def seed_model_names(model: str, profile) -> dict[int, str]:
    """Every fresh seed the book model `model` is drawn with and what tables call it (:func:`draw_models`)."""
    return {seed: name for name, (registered, seed) in draw_models(profile).items() if registered == model}


def draw_models(profile) -> dict[str, tuple[str, int | None]]:
    """Every drawn model of the profile, by the name tables give it: ``(registered book model, fresh seed)``.

    The chosen SimCSE recipes and (where ``finetune.controls``) their matched
    controls, each with every fresh seed; with ``finetune.replication_seeds``
    and a second base, that base (seed ``None``) and the unsupervised recipe and
    control on it.  Only for profiles that attribute the book's models: their
    names are known before anything is trained.
    """
    profile = config.get_profile(profile)
    finetune = profile.finetune
    attributed = set(profile.attribution.models)
    seeds = finetune.seed_list(profile.seed)
    kinds = [("book-unsup-simcse", "book-unsup-control"), ("book-sup-simcse", "book-sup-control")]
    names: dict[str, tuple[str, int | None]] = {}
    for recipe, control in kinds:
        if recipe in attributed and "book-mlm" in attributed:
            for model in (recipe, control) if finetune.controls else (recipe,):
                names |= {seed_model_name(model, seed): (model, seed) for seed in seeds}
    if (finetune.replication_seeds and len(finetune.mlm_candidates()) > 1
            and {"book-mlm", "book-unsup-simcse"} <= attributed):
        names["book-mlm-2"] = ("book-mlm-2", None)
        for model in ("book-unsup-simcse-2", "book-unsup-control-2") if finetune.controls else ("book-unsup-simcse-2",):
            names |= {seed_model_name(model, seed): (model, seed) for seed in seeds[:finetune.replication_seeds]}
    return names


def draw_encoder(name: str, profile) -> Encoder:
    """The drawn model `name` (:func:`draw_models`), trained on a miss."""
    profile = config.get_profile(profile)
    draws = draw_models(profile)
    if name not in draws:
        raise ValueError(f"profile {profile.name!r} draws no model {name!r}: it draws {', '.join(draws) or 'none'}")
    model, seed = draws[name]
    spec = MODELS[model]
    return load_registered(runs.book_checkpoint(spec.location, profile, seed), spec.pooling, name=name)


def seed_encoders(profile) -> dict[str, Encoder]:
    """Every drawn model of the profile (:func:`draw_models`), loaded, by name (the runs trained first, together)."""
    profile = config.get_profile(profile)
    draws = draw_models(profile)
    if any(seed is not None for _, seed in draws.values()):
        runs.train_runs(profile, runs.draw_specs(profile))  # the whole queue at once: the workers share it
    return {name: draw_encoder(name, profile) for name in draws}


def comparisons(profile, models=None) -> dict[str, analysis.Comparison]:
    """The pairs of the profile as the regressions compare them (:class:`cwi.analysis.Comparison`), by pair name.

    A pair whose fine-tuned model the profile draws with fresh seeds compares
    the seeds (and, for a pair with a control, the control's seeds); it is
    also compared as ``"PAIR (selected)"``: its registered fine-tuned model, the
    search's selected snapshot, alone, reported apart.  Other pairs compare
    their two registered models.  Only pairs whose models are all among
    `models` (default: every attributed and drawn model) are kept.
    """
    profile = config.get_profile(profile)
    draws = draw_models(profile)
    models = set(profile.attribution.models) | set(draws) if models is None else set(models)
    by_model: dict[str, list[str]] = {}
    for name, (registered, seed) in draws.items():
        if seed is not None:
            by_model.setdefault(registered, []).append(name)
    found = {}
    for name, pair in profile.pairs.items():
        finetuned = tuple(by_model.get(pair.finetuned, [pair.finetuned]))
        control = tuple(by_model.get(pair.control, [])) if pair.control else ()
        comparison = analysis.Comparison(pair.pretrained, finetuned, control)
        if comparison.models <= models:
            found[name] = comparison
        selected = analysis.Comparison(pair.pretrained, (pair.finetuned,))
        if pair.finetuned in by_model and selected.models <= models:
            found[f"{name} (selected)"] = selected
    return found


def seed_word_weights(profile) -> pd.DataFrame:
    """Word weights of every drawn model (:func:`draw_models`) with ``attribution.draw_methods``.

    Same sentences and columns as :func:`profile_word_weights`, whose registered
    models' tables these extend.
    """
    profile = config.get_profile(profile)
    encoders = seed_encoders(profile)
    if not encoders:
        return pd.DataFrame()
    return profile_word_weights(profile, encoders, models=list(encoders), methods=profile.attribution.draw_methods)


def trajectory(profile, supervised: bool, scales: dict[str, float] | None = None) -> pd.DataFrame:
    """The weighting along the chosen SimCSE recipe's search run, one row per snapshot and quantity.

    At every snapshot of the search seed's run of the chosen recipe (step 0 is
    the masked-LM base): its STS-B dev score, and the slope beta of the
    normalised Integrated Gradients weight on each quantity of
    :data:`cwi.analysis.QUANTITIES` (no covariates, all datasets pooled) on a
    sample of ``attribution.trajectory_sentences`` sentences of each dataset,
    with its change since the base.  All snapshots are fitted on the same words
    with the same sentence-bootstrap draws (:func:`cwi.analysis.fit_models`), so
    the change has a paired interval.  `scales` (:func:`cwi.analysis.quantity_scales`
    of the chapter's words) puts beta on the Correlations chapter's scale;
    default the sample's own.

    Returns
    -------
    pandas.DataFrame
        ``seed``, ``step``, ``stsb_dev``, ``chosen`` (the snapshot the selected model is),
        ``quantity``, ``beta``, ``low``, ``high``, ``delta`` (beta minus the base's),
        ``delta_low``, ``delta_high``, ``n_words``.
    """
    profile = config.get_profile(profile)
    settings = profile.attribution
    kind = "sup-simcse" if supervised else "unsup-simcse"
    recipe = runs.chosen(profile, supervised)
    table = corpus_statistics(profile)
    level, rows = profile.analysis.level, []
    seed = profile.finetune.search_seed(profile.seed)
    run = runs.simcse_run(profile, supervised, recipe, seed)
    scores = run.dev_scores()
    frames = []
    # Step 0 is the base: its tables are book-mlm's, under the base's own name and weights.
    snapshot_encoders = {step: load_registered(run.checkpoint(step), MODELS[f"book-{kind}"].pooling,
                                               name="book-mlm" if step == 0 else f"book-{kind} step {step}")
                         for step in scores.index}
    fingerprints = {encoder.name: encoder_fingerprint(encoder) for encoder in snapshot_encoders.values()}
    _attribute_in_workers(profile, {e.name: e for e in snapshot_encoders.values()}, fingerprints, ["ig"],
                          settings.trajectory_sentences)
    with Progress(len(scores), f"trajectory {kind}", "snapshots", announce_start=True) as bar:
        for step, encoder in snapshot_encoders.items():
            frames += [word_weights(encoder, dataset, "ig", profile, fingerprint=fingerprints[encoder.name],
                                    sentences_per_dataset=settings.trajectory_sentences)
                       .assign(model=f"step {step}", dataset=dataset, method="ig") for dataset in settings.datasets]
            bar.update()
    frame = analysis.attach_statistics(pd.concat(frames, ignore_index=True), table, profile.stats.min_count)
    bootstrap = analysis.SentenceBootstrap(frame, profile.analysis.n_bootstrap, profile.seed)
    usable = frame[frame["status"] == "ok"]
    snapshots = [f"step {step}" for step in scores.index]
    for quantity in analysis.QUANTITIES:
        fit = analysis.fit_models(usable, snapshots, quantity, bootstrap, (scales or {}).get(quantity))
        change = fit.beta_draws - fit.beta_draws[:, [0]]
        for i, (step, dev) in enumerate(scores.items()):
            low, high = np.quantile(fit.beta_draws[:, i], [(1 - level) / 2, (1 + level) / 2])
            delta_low, delta_high = np.quantile(change[:, i], [(1 - level) / 2, (1 + level) / 2])
            rows.append({"seed": seed, "step": step, "stsb_dev": dev, "chosen": step == run.best_step,
                         "quantity": quantity, "beta": fit.beta[i], "low": low, "high": high,
                         "delta": fit.beta[i] - fit.beta[0], "delta_low": delta_low if i else 0.0,
                         "delta_high": delta_high if i else 0.0, "n_words": fit.n_words})
    return pd.DataFrame(rows)


def correlation_results(profile, frame: pd.DataFrame, comparisons: dict) -> analysis.PairFits:
    """Every regression of :func:`cwi.analysis.pair_table` on `frame`, the table also written to the cache as CSV.

    `frame` is :func:`cwi.analysis.attach_statistics` of the profile's word
    weights (the drawn models' too); `comparisons` (:func:`comparisons`) says
    which models each pair compares.  The sentence bootstrap is drawn once over
    all its sentences with the profile's seed, and each quantity is scaled by
    its SD over the usable words (:func:`cwi.analysis.quantity_scales`).  The
    CSV is keyed by a hash of `frame`, the comparisons and the analysis
    settings; ``table.attrs["cache_path"]`` says where it is.
    """
    profile = config.get_profile(profile)
    settings = profile.analysis
    bootstrap = analysis.SentenceBootstrap(frame, settings.n_bootstrap, profile.seed)
    results = analysis.pair_table(frame, comparisons, bootstrap, analysis.quantity_scales(frame), level=settings.level)
    data_hash = int(pd.util.hash_pandas_object(frame, index=False).sum() % 2**63)
    key = {"version": analysis.ANALYSIS_VERSION, "data": data_hash,
           "comparisons": {name: asdict(c) for name, c in sorted(comparisons.items())},
           "analysis": asdict(settings), "seed": profile.seed}
    path = cache.export("correlations", key, ".csv", lambda tmp: results.table.to_csv(tmp, index=False))
    results.table.attrs["cache_path"] = str(path)
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
                                                  th.temperature, th.lr, seed=profile.seed,
                                                  label="InfoNCE on Wikipedia sentences, random start")
        return {"u": model.u.weight.detach(), "v": model.v.weight.detach(), "losses": losses}

    stored = cache.cached("additive_encoders", key, ".pt", train, lambda value, tmp: torch.save(value, tmp),
                          lambda path: torch.load(path, weights_only=True))
    model = theory.AdditiveEncoder(len(vocab), stored["u"].shape[1], init=stored["u"].numpy())
    model.v.weight.data.copy_(stored["v"])
    return AdditiveRun(vocab, encoded, model, list(stored["losses"]))


def sts_scores(profile, models: tuple[str, ...] | None = None, encoders: dict[str, Encoder] | None = None
               ) -> pd.DataFrame:
    """Spearman x100 on the test split of each of the profile's STS datasets, per model.

    Parameters
    ----------
    models
        Model names; default the profile's ``finetune.models``.
    encoders
        Models already loaded, by name (:func:`seed_encoders`, say); the
        other names are loaded with :func:`load_encoder`.

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
    # The test sets share many sentences (about 31 % of the default profile's 37,700 are repeats): each
    # distinct sentence is encoded once per model (the vectors do not depend on the batch around them).
    distinct = list(dict.fromkeys(s for rows in pairs.values() for s in (*rows["sentence1"], *rows["sentence2"])))
    frames = []
    with Progress(len(names), "STS test scores", "models", announce_start=len(names) > 1) as bar:
        for name in names:
            frames.append(_sts_frame(name, profile, encoders, pairs, data_key, distinct))
            bar.update()
    return pd.concat(frames, ignore_index=True)


def _sts_frame(name: str, profile, encoders, pairs: dict, data_key: dict, distinct: list[str]) -> pd.DataFrame:
    """One model's STS test scores (:func:`sts_scores`), cached: each of the `distinct` sentences encoded once."""
    encoder = (encoders or {}).get(name) or load_encoder(name, profile)
    key = {"version": PIPELINE_VERSION, "sts_version": 2, "model": name, "weights": weights_fingerprint(encoder),
           "pooling": encoder.pooling, "max_length": encoder.max_length, "data": data_key}

    def evaluate() -> pd.DataFrame:
        vectors = dict(zip(distinct, encoder.encode(distinct)))
        return pd.DataFrame([
            {"model": name, "dataset": dataset,
             "spearman": evaluation.sts_spearman(np.stack([vectors[s] for s in rows["sentence1"]]),
                                                 np.stack([vectors[s] for s in rows["sentence2"]]), rows["score"])}
            for dataset, rows in pairs.items()
        ])

    return cache.cached_frame("sts_scores", key, evaluate)


def similarity_models(profile) -> tuple[list[str], dict]:
    """The models the Similarity chapter decomposes and the pairs of them it compares.

    ``similarity.models`` if set (its pairs: the profile's pairs with both
    models among them); else both models of every pair of the profile with a
    pre-trained twin whose models are attributed (``attribution.models``).
    """
    profile = config.get_profile(profile)
    chosen = profile.similarity.models or profile.attribution.models
    pairs = {name: pair for name, pair in analysis.present_pairs(profile.pairs, chosen).items()
             if pair.pretrained is not None}
    if profile.similarity.models is not None:
        return list(profile.similarity.models), pairs
    return list(dict.fromkeys(m for pair in pairs.values() for m in (pair.pretrained, pair.finetuned))), pairs


def similarity_sample(dataset: str, profile) -> pd.DataFrame:
    """The profile's pair sample of `dataset` (:func:`cwi.data.sample_sts_pairs` with the profile's seed)."""
    profile = config.get_profile(profile)
    return data.sample_sts_pairs(dataset, profile.similarity.pairs_per_dataset, profile.seed)


def _vector_key(encoder: Encoder, sentences: list[str], profile: config.Profile, fingerprint: str | None) -> dict:
    """The cache key of a block of word vectors (:func:`sentence_vector_block`)."""
    from . import similarity

    settings, method = profile.attribution, profile.similarity.method
    return {"model": encoder.name, "weights": fingerprint or encoder_fingerprint(encoder), "pooling": encoder.pooling,
            "max_length": encoder.max_length, "sentences": cache.fingerprint_texts(sentences), "method": method,
            "baseline": settings.baseline, **settings.method_settings(method), "version": attribution.ALGORITHM_VERSION,
            "similarity_version": similarity.SIMILARITY_VERSION}


def _vector_blocks(profile: config.Profile, name: str, checkpoint, pooling: str, max_length: int,
                   blocks: list[list[str]]) -> None:
    """A worker's job: blocks of word vectors of one model (from its folder, or by name), into the cache."""
    encoder = (load_registered(checkpoint, pooling, max_length, name=name) if checkpoint is not None
               else load_encoder(name, profile))
    fingerprint = encoder_fingerprint(encoder)
    for sentences in blocks:
        sentence_vector_block(encoder, sentences, profile, fingerprint)


def sentence_vector_block(encoder: Encoder, sentences: list[str], profile, fingerprint: str | None = None,
                          progress=None) -> dict:
    """Word vectors, embeddings and baselines of `sentences` (:func:`cwi.similarity.sentence_vectors`), cached as one block.

    The key holds the model's weights and tokenizer, pooling, ``max_length``,
    the sentences, the method, its settings and the baseline, and both
    algorithm versions, so a change of any recomputes.  A sentence longer than
    ``max_length`` is cut after its last whole word (:func:`cwi.attribution.fit_to_length`).
    Returns sentence -> :class:`cwi.similarity.SentenceVectors`, whose ``text``
    is shorter than the sentence where it was cut.  `progress` (a
    :class:`cwi.progress.Progress`) advances by one per sentence, computed or read.
    """
    import torch

    from . import similarity

    profile = config.get_profile(profile)
    settings, method = profile.attribution, profile.similarity.method
    method_settings = settings.method_settings(method)
    key = _vector_key(encoder, sentences, profile, fingerprint)

    ran = []

    def compute() -> dict:
        ran.append(True)
        texts = [attribution.fit_to_length(encoder, s)[0] for s in sentences]
        results = attribution.METHODS[method](encoder, texts, baseline=settings.baseline, progress=progress,
                                              memory_gb=settings.memory_gb, **method_settings)
        vectors = [similarity.sentence_vectors(encoder, r) for r in results]
        return {"texts": texts, "words": [v.words for v in vectors], "word_index": [v.word_index for v in vectors],
                "vectors": [torch.from_numpy(v.vectors).float() for v in vectors],
                "embedding": torch.from_numpy(np.stack([v.embedding for v in vectors])).float(),
                "baseline": torch.from_numpy(np.stack([v.baseline for v in vectors])).float(),
                "path_points": [v.path_points for v in vectors], "word_error": [v.word_error for v in vectors]}

    stored = cache.cached("word_vectors", key, ".pt", compute, lambda value, tmp: torch.save(value, tmp),
                          lambda path: torch.load(path, weights_only=True))
    if progress is not None and not ran:  # read from the cache: the terminal hears of it too
        progress.update(len(sentences))
    return {sentence: similarity.SentenceVectors(
        text, list(words), list(index), vectors.double().numpy(), embedding.double().numpy(), baseline.double().numpy(),
        points, float(error))
        for sentence, text, words, index, vectors, embedding, baseline, points, error in zip(
            sentences, stored["texts"], stored["words"], stored["word_index"], stored["vectors"],
            stored["embedding"], stored["baseline"], stored["path_points"], stored["word_error"])}


def baseline_sensitivity(profile, results: "SimilarityResults | None" = None,
                         encoders: dict[str, Encoder] | None = None) -> pd.DataFrame:
    """The same-word share, its excess over random partners and the terms under each baseline, on a nested subsample.

    The first ``similarity.baseline_pairs`` pairs of every dataset's seeded
    sample (a nested subsample: :func:`cwi.data.sample_sts_pairs`) are
    decomposed with each of ``similarity.other_baselines`` (each its own cached
    blocks, the missing ones in worker processes, one job per model and
    baseline); the row of ``attribution.baseline`` reads the same pairs from
    `results` (:func:`pair_decompositions` of `profile`, computed if not given),
    so nothing is attributed twice.  One row per model and baseline with the
    columns of :func:`cwi.similarity_references.excess_share`, the mean of each
    term of :data:`cwi.similarity.TERMS` and ``pairs``.
    """
    from . import similarity, similarity_references

    profile = config.get_profile(profile)
    settings = profile.similarity
    count = min(settings.baseline_pairs, settings.pairs_per_dataset or settings.baseline_pairs)
    varied = {baseline: replace(profile, attribution=replace(profile.attribution, baseline=baseline),
                                similarity=replace(settings, pairs_per_dataset=count, block_pairs=count))
              for baseline in settings.other_baselines if baseline != profile.attribution.baseline}
    models, _ = similarity_models(profile)
    encoders = dict(encoders or {})
    encoders |= {name: encoders.get(name) or load_encoder(name, profile) for name in models}
    fingerprints = {name: encoder_fingerprint(encoders[name]) for name in models}
    # One job per model and baseline (every dataset's blocks as one group), so a worker loads each model once.
    jobs = [job for variant in varied.values()
            for job in _vector_jobs(variant, encoders, fingerprints,
                                    {"all": [b for bs in _pair_blocks(variant).values() for b in bs]})]
    # A worker starts in seconds, so the re-attribution pays from a tenth of the chapter's own threshold.
    workers.fill(jobs, PARALLEL_MIN_SENTENCES * 1e5, "baseline checks")
    own = results if results is not None else pair_decompositions(profile, encoders)
    subsample = replace(profile, similarity=replace(settings, pairs_per_dataset=count))
    first = pd.concat([similarity_sample(d, subsample)[["pair"]].assign(dataset=d) for d in own.pairs["dataset"].unique()])
    tables = {profile.attribution.baseline: own.pairs.merge(first, on=["dataset", "pair"])}
    tables |= {baseline: pair_decompositions(variant, encoders).pairs for baseline, variant in varied.items()}
    frames = []
    for baseline, pairs in tables.items():
        shares = similarity_references.excess_share(pairs)
        means = pairs.groupby("model", sort=False)[list(similarity.TERMS)].mean()
        frames.append(shares.join(means).assign(baseline=baseline, pairs=pairs.groupby("model").size())
                      .rename_axis("model").reset_index())
    return pd.concat(frames, ignore_index=True)


@dataclass
class SimilarityResults:
    """Every pair decomposition of a profile (:func:`pair_decompositions`).

    Attributes
    ----------
    pairs
        One row per (model, dataset, pair): ``model``, ``dataset``, ``pair``,
        ``sentence1``, ``sentence2``, ``gold`` and the columns of
        :func:`cwi.similarity.pair_summary`, plus ``truncated`` (a side was cut to fit).
    words
        One row per (model, dataset, pair, side, word): the columns of
        :func:`cwi.similarity.word_contributions` with ``model``, ``dataset``, ``pair``.
    decompositions
        (model, dataset, pair) -> :class:`cwi.similarity.PairDecomposition`.
    """

    pairs: pd.DataFrame
    words: pd.DataFrame
    decompositions: dict


def _pair_blocks(profile: config.Profile) -> dict[str, list[pd.DataFrame]]:
    """Each dataset's pair sample cut into blocks of ``similarity.block_pairs`` pairs: the unit the cache stores."""
    settings = profile.similarity
    samples = {d: similarity_sample(d, profile) for d in settings.datasets or profile.attribution.datasets}
    return {d: [sample.iloc[start:start + settings.block_pairs] for start in range(0, len(sample), settings.block_pairs)]
            for d, sample in samples.items()}


def _block_sentences(block: pd.DataFrame) -> list[str]:
    """The distinct sentences of a block of pairs, each attributed once."""
    return list(dict.fromkeys(block["sentence1"].tolist() + block["sentence2"].tolist()))


def _vector_jobs(profile: config.Profile, encoders: dict, fingerprints: dict, blocks: dict) -> list:
    """The word-vector blocks the cache lacks, one worker job per fingerprinted model and group of `blocks`.

    `blocks` maps a group (a dataset) to its blocks of pairs; jobs are weighed by sentences x model size.
    """
    jobs = []
    for name, fingerprint in fingerprints.items():
        encoder = encoders[name]
        size = sum(p.numel() for key, p in encoder.model.named_parameters() if "embeddings" not in key)
        for dataset_blocks in blocks.values():
            missing = [_block_sentences(b) for b in dataset_blocks if not cache.artefact_path(
                "word_vectors", _vector_key(encoder, _block_sentences(b), profile, fingerprint), ".pt").exists()]
            if missing:
                jobs.append(workers.Job(_vector_blocks, (profile, name, encoder.folder, encoder.pooling,
                                                         encoder.max_length, missing),
                                        sum(map(len, missing)) * size))
    return jobs


def pair_decompositions(profile, encoders: dict[str, Encoder] | None = None) -> SimilarityResults:
    """The Similarity chapter's decompositions: each model of :func:`similarity_models` on each dataset's pair sample.

    Both sentences of every pair are attributed (``similarity.method`` with the
    ``attribution`` settings), ``similarity.block_pairs`` pairs per cached block
    (:func:`sentence_vector_block`); a sentence in two pairs of a block is
    attributed once.  `encoders` reuses models already loaded, by name.
    """
    from . import similarity

    profile = config.get_profile(profile)
    settings = profile.similarity
    models, _ = similarity_models(profile)
    blocks = _pair_blocks(profile)
    total = len(models) * sum(len(_block_sentences(b)) for bs in blocks.values() for b in bs)
    encoders = dict(encoders or {})
    encoders |= {name: encoders.get(name) or load_encoder(name, profile) for name in models}
    fingerprints = {name: encoder_fingerprint(encoders[name]) for name in models}
    # The missing blocks in worker processes first, one job per model and dataset (cwi.workers).
    jobs = _vector_jobs(profile, encoders, fingerprints, blocks)
    if sum(job.work for job in jobs) >= PARALLEL_MIN_SENTENCES * 1e6:
        workers.fill(jobs, 0, "word-vector blocks")
    pair_rows, word_frames, decompositions = [], [], {}
    with Progress(total, "similarity word vectors", "sentences", announce_start=True) as bar:
        for name in models:
            encoder, fingerprint = encoders[name], fingerprints[name]
            for dataset, dataset_blocks in blocks.items():
                bar.set_postfix(last=f"{name} {dataset}")
                for block in dataset_blocks:
                    vectors = sentence_vector_block(encoder, _block_sentences(block), profile, fingerprint, bar)
                    for row in block.itertuples():
                        a, b = vectors[row.sentence1], vectors[row.sentence2]
                        d = similarity.decompose(a, b)
                        decompositions[(name, dataset, row.pair)] = d
                        pair_rows.append({"model": name, "dataset": dataset, "pair": row.pair,
                                          "sentence1": row.sentence1, "sentence2": row.sentence2, "gold": row.score,
                                          "truncated": a.text != row.sentence1 or b.text != row.sentence2})
                        word_frames.append(similarity.word_contributions(d).assign(model=name, dataset=dataset,
                                                                                   pair=row.pair))
    summary = similarity.pair_summary(list(decompositions.values()))
    pairs = pd.concat([pd.DataFrame(pair_rows), summary], axis=1)
    words = pd.concat(word_frames, ignore_index=True)
    words = words[["model", "dataset", "pair"] + [c for c in words.columns if c not in ("model", "dataset", "pair")]]
    return SimilarityResults(pairs, words, decompositions)
