"""The book's run profiles: one frozen settings object per profile.

Every size, seed and corpus choice a chapter uses is read from a profile, never
typed into a chapter, so that ``smoke`` (tests and CI), ``default`` (the offline
main job) and ``paper`` (the paper's scale, models from the Hugging Face Hub) run
the same code.  A user's study is the same kind of object, read from a TOML file
that extends one of these (:mod:`cwi.studies`).  Chapters receive a profile
*reference* as the papermill parameter ``profile`` (a built-in name, a study
file's path, either with ``-dryrun`` appended) and call :func:`get_profile`.

Later chapters add their own settings block (for example ``finetune`` or
``attribution``) beside :class:`StatsSettings`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .models import ModelPair, ModelSpec

__all__ = [
    "STS_DATASETS", "QUANTITY_NAMES", "METHOD_NAMES", "OFFLINE_MODELS", "PAPER_MODELS", "StatsSettings", "TheorySettings", "MLMSettings", "SimCSESettings", "FinetuneSettings",
    "AttributionSettings", "FaithfulnessSettings", "AnalysisSettings", "WeightingSettings", "Profile", "PROFILES", "get_profile",
    "dry_run", "DRY_RUN",
]


# The seven STS test sets of SimCSE's evaluation, in its order (cwi.data knows where each lives).
STS_DATASETS = ("stsb", "sickr", "sts12", "sts13", "sts14", "sts15", "sts16")
# The models that load offline: the book's pair (see cwi.models) and all-MiniLM-L6-v2.
OFFLINE_MODELS = ("book-mlm", "book-unsup-simcse", "book-sup-simcse", "all-MiniLM-L6-v2")
# The paper's models, from the Hugging Face Hub: BERT-base and RoBERTa-base with their unsupervised
# and supervised SimCSE twins, and the sentence-transformers models with their pre-trained bases.
PAPER_MODELS = (
    "bert-base-uncased", "princeton-nlp/unsup-simcse-bert-base-uncased", "princeton-nlp/sup-simcse-bert-base-uncased",
    "roberta-base", "princeton-nlp/unsup-simcse-roberta-base", "princeton-nlp/sup-simcse-roberta-base",
    "nreimers/MiniLM-L6-H384-uncased", "sentence-transformers/all-MiniLM-L6-v2",
    "microsoft/mpnet-base", "sentence-transformers/all-mpnet-base-v2",
)
BASELINES = ("pad", "mask", "zero")
# The word quantities of the Correlations chapter (cwi.analysis.QUANTITIES labels them) and the methods.
QUANTITY_NAMES = ("information_gain", "information_gain_corrected", "information_gain_binned", "self_information")
METHOD_NAMES = ("ig", "shap")
_INFORMATION_GAIN = QUANTITY_NAMES[:3]


def _require(condition: bool, message: str) -> None:
    """Raise ValueError(`message`) unless `condition`: settings say what is wrong and what to do."""
    if not condition:
        raise ValueError(message)


def _positive(settings, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        _require(value is None or value > 0,
                 f"{type(settings).__name__}.{name} must be > 0 (or None where allowed), got {value}")


def _check_bootstrap(settings) -> None:
    """``n_bootstrap`` and ``level`` of a settings object that computes percentile intervals."""
    name = type(settings).__name__
    _require(settings.n_bootstrap >= 100,
             f"{name}.n_bootstrap must be >= 100 for a percentile interval, got {settings.n_bootstrap}")
    _require(0 < settings.level < 1, f"{name}.level must be in (0, 1), got {settings.level}")


@dataclass(frozen=True)
class StatsSettings:
    """How the word statistics of the Statistics chapter are computed.

    Attributes
    ----------
    corpus_limit
        Number of sentences read from the profile's corpus (:func:`cwi.data.load_corpus`), in file
        order; ``None`` reads them all (910,612 in the offline data pack).
    min_count
        Words seen fewer times are kept in the table but left out of figures and
        regressions, where their information gain is dominated by sampling noise.
    correction
        Frequency-bias correction of the information gain: ``"shuffle"``
        subtracts the value each word gets on a corpus whose tokens were shuffled
        across sentences; ``None`` skips it.
    n_shuffles
        Number of shuffled corpora averaged for the correction.
    frequency_bins, min_bin_words, bin_percentile
        The second correction (after Oyama, Yokoi and Shimodaira 2023;
        :func:`cwi.stats.frequency_bin_correction`): words are cut into
        `frequency_bins` bins of equal width in log count, each widened to hold
        at least `min_bin_words` words, and the `bin_percentile` percentile of
        each bin's information gain is subtracted.
    length_sample, zipf_top, scatter_sample, top_frequent, wikipedia_top
        What the chapter's figures and tables show: sentences whose lengths are
        counted, the most frequent words of the Zipf fit, words in a scatter,
        the most frequent words ranked, the words compared with Wikipedia counts.
    count_bands
        Upper edges of the count bands in which negative corrected values are counted.
    """

    corpus_limit: int | None
    min_count: int = 10
    correction: Literal["shuffle"] | None = "shuffle"
    n_shuffles: int = 1
    # PAPER (Oyama et al. 2023): a low percentile per frequency bin; the binning and the percentile
    # are our choice. Equal width in log count (not equal numbers of words, which put the ~2,000 most
    # frequent words, most of the running tokens, into one bin), at least 50 words a bin.
    frequency_bins: int = 100
    min_bin_words: int = 50
    bin_percentile: float = 5.0
    length_sample: int = 20_000
    zipf_top: int = 10_000
    scatter_sample: int = 15_000
    top_frequent: int = 2_000
    wikipedia_top: int = 5_000
    count_bands: tuple[int, ...] = (30, 100, 1_000, 10_000)

    def __post_init__(self):
        _require(0 <= self.bin_percentile <= 100,
                 f"StatsSettings.bin_percentile must be a percentile in [0, 100], got {self.bin_percentile}")
        _positive(self, "corpus_limit", "min_count", "n_shuffles", "frequency_bins", "min_bin_words", "length_sample",
                  "zipf_top", "scatter_sample", "top_frequent", "wikipedia_top")
        _require(self.correction in (None, "shuffle"),
                 f"StatsSettings.correction must be 'shuffle' or None, got {self.correction!r}")
        _require(list(self.count_bands) == sorted(set(self.count_bands)) and self.count_bands[0] > self.min_count,
                 f"StatsSettings.count_bands must increase and start above min_count={self.min_count}, "
                 f"got {self.count_bands}")


@dataclass(frozen=True)
class TheorySettings:
    """Sizes of the numerical checks of the Theory chapter.

    Attributes
    ----------
    synthetic_words, synthetic_topics, max_topicality
        The topic corpus with known statistics (:func:`cwi.theory.make_topic_corpus`).
    sentence_length
        Words per synthetic sentence.
    dim, steps, batch_size, temperature, lr
        The additive encoder and its InfoNCE training on the synthetic corpus.
    sweep_steps, sweep_batch_sizes, sweep_temperatures
        The sweeps of R^2 over batch size and temperature (each run `sweep_steps`).
    real_sentences, real_min_count, real_dim, real_steps
        The check on Wikipedia sentences: how many, which words get a vector, the
        encoder's dimension and training steps (also for the GloVe check).
    """

    synthetic_words: int = 400
    synthetic_topics: int = 20
    max_topicality: float = 2.0
    sentence_length: int = 2
    dim: int = 32
    steps: int = 3000
    batch_size: int = 512
    temperature: float = 0.05
    lr: float = 0.003
    sweep_steps: int = 1500
    sweep_batch_sizes: tuple[int, ...] = (16, 64, 256, 512)
    sweep_temperatures: tuple[float, ...] = (0.02, 0.05, 0.2, 1.0)
    real_sentences: int = 100_000
    real_min_count: int = 20
    real_dim: int = 64
    real_steps: int = 3000

    def __post_init__(self):
        _positive(self, "synthetic_words", "synthetic_topics", "max_topicality", "sentence_length", "dim", "steps",
                  "temperature", "lr", "sweep_steps", "real_sentences", "real_min_count", "real_dim", "real_steps")
        _require(self.batch_size >= 2 and min(self.sweep_batch_sizes) >= 2,
                 "TheorySettings batch sizes must be >= 2: InfoNCE uses the other pairs as negatives")
        _require(min(self.sweep_temperatures) > 0, "TheorySettings.sweep_temperatures must be > 0")


@dataclass(frozen=True)
class MLMSettings:
    """Masked-LM pre-training of the book's small BERT (:func:`cwi.train.pretrain_mlm`).

    The model is sized for 2 CPU cores: see the Fine-tuning chapter for why.
    """

    corpus_limit: int | None
    heldout: int
    steps: int
    vocab_size: int = 8192
    hidden_size: int = 128
    layers: int = 4
    heads: int = 2
    intermediate_size: int = 512
    max_length: int = 48
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    mask_probability: float = 0.15
    # Whole-word input embeddings start from GloVe 6B 50-d (cwi.train.init_word_embeddings); None: random.
    word_vectors: Literal["glove"] | None = None

    def __post_init__(self):
        _positive(self, "corpus_limit", "heldout", "steps", "vocab_size", "hidden_size", "layers", "heads",
                  "intermediate_size", "max_length", "batch_size", "lr")
        _require(self.word_vectors in (None, "glove"),
                 f"MLMSettings.word_vectors must be 'glove' or None, got {self.word_vectors!r}")
        _require(self.hidden_size % self.heads == 0,
                 f"MLMSettings.hidden_size ({self.hidden_size}) must be a multiple of heads ({self.heads})")
        _require(self.corpus_limit is None or self.corpus_limit > self.heldout,
                 f"MLMSettings.corpus_limit ({self.corpus_limit}) must exceed heldout ({self.heldout})")
        _require(0 < self.mask_probability < 1, f"MLMSettings.mask_probability must be in (0, 1), "
                                                f"got {self.mask_probability}")


@dataclass(frozen=True)
class SimCSESettings:
    """SimCSE fine-tuning (:func:`cwi.train.train_simcse`).

    Attributes
    ----------
    steps
        Updates of one run.
    corpus_limit
        Wikipedia sentences of unsupervised SimCSE (the supervised triplets are all used).
    batch_size, lr, temperature, max_length
        As in SimCSE.
    dropout
        Dropout of every layer while training: the noise that makes unsupervised
        SimCSE's positive pairs.
    mlp_head
        Train through SimCSE's MLP head over the pooled vector and drop it
        afterwards (SimCSE's ``mlp_only_train``).
    snapshots
        Steps after which the model is evaluated (and kept, for the trajectory);
        step 0 (the base) is always one.
    """

    steps: int
    corpus_limit: int | None = 100_000
    batch_size: int = 64
    lr: float = 1e-4
    temperature: float = 0.05
    max_length: int = 32
    dropout: float = 0.1
    mlp_head: bool = False
    snapshots: tuple[int, ...] = ()

    def __post_init__(self):
        _positive(self, "steps", "corpus_limit", "lr", "temperature", "max_length")
        _require(self.batch_size >= 2, "SimCSESettings.batch_size must be >= 2: the other sentences are the negatives")
        _require(0 <= self.dropout < 1, f"SimCSESettings.dropout must be in [0, 1), got {self.dropout}")
        _require(list(self.snapshots) == sorted(set(self.snapshots)) and all(0 < s <= self.steps for s in self.snapshots),
                 f"SimCSESettings.snapshots must be increasing steps in 1..steps={self.steps}, got {self.snapshots}")


@dataclass(frozen=True)
class FinetuneSettings:
    """The Fine-tuning chapter: the book's pair, how its recipe is chosen, and the STS evaluation.

    Attributes
    ----------
    mlm
        The masked-LM base, trained once per profile.
    mlm_search
        The base's grid searched on STS-B dev: ``(field of MLMSettings, values)``
        pairs; each base is scored on dev as it is (mean pooling, step 0 of every
        SimCSE run), and the best is the base (:func:`cwi.runs.mlm_search`).
    unsup, sup
        SimCSE runs from that base: the settings every candidate starts from.
    unsup_search, sup_search
        The grid searched on STS-B dev: ``(field of SimCSESettings, values)``
        pairs, every combination tried with the search seed (the profile's).
        Every run keeps its snapshot with the best STS-B dev score (SimCSE's
        practice), and the candidate whose kept snapshot scores best is the
        recipe; its kept step is the recipe's step.
    seeds
        Fresh seeds the chosen recipe is drawn with, ``seed + 1, ..., seed +
        seeds`` of the profile: no search used them, and each is the
        model at the recipe's step (no seed keeps a best snapshot of its own).
        At least 2, so that the seeds' spread can be measured.
    controls
        Train each drawn seed's matched non-contrastive control
        (:func:`cwi.train.train_control`): the difference in differences
        against it is what credits an effect to the contrastive objective.
    replication_seeds
        Fresh seeds of the unsupervised recipe and its control on the base
        search's runner-up (the second base), as a replication; 0: none.
    sts_datasets, models, sts_max_pairs
        The STS evaluation: test sets, models, first pairs only (smoke).
    target_gain, target_gain_sup, target_base
        What counts as "contrastive training worked" (STS-B test Spearman x100):
        the gain of unsupervised and of supervised SimCSE over the base, and the
        base's own score.
    reference_tolerance
        A model reproduces its published STS-B test score (:data:`cwi.models.REFERENCE_STSB`) within this many points.
    """

    mlm: MLMSettings
    unsup: SimCSESettings
    sup: SimCSESettings
    unsup_search: tuple[tuple[str, tuple], ...] = ()
    sup_search: tuple[tuple[str, tuple], ...] = ()
    # Whether whole-word embeddings start from GloVe or at random is chosen on STS-B dev.
    mlm_search: tuple[tuple[str, tuple], ...] = (("word_vectors", ("glove", None)),)
    seeds: int = 5
    controls: bool = True
    replication_seeds: int = 3
    sts_datasets: tuple[str, ...] = STS_DATASETS
    models: tuple[str, ...] = OFFLINE_MODELS
    sts_max_pairs: int | None = None
    target_gain: float = 5.0
    target_gain_sup: float = 15.0
    target_base: float = 45.0
    reference_tolerance: float = 0.2

    def __post_init__(self):
        _require(set(self.sts_datasets) <= set(STS_DATASETS),
                 f"FinetuneSettings.sts_datasets must be among {STS_DATASETS}, got {self.sts_datasets}")
        _require("stsb" in self.sts_datasets, "FinetuneSettings.sts_datasets must include stsb: later chapters read it")
        _positive(self, "sts_max_pairs", "reference_tolerance")
        _require(self.seeds >= 2, f"FinetuneSettings.seeds must be >= 2 (a spread between seeds needs two), "
                                  f"got {self.seeds}")
        _require(0 <= self.replication_seeds <= self.seeds,
                 f"FinetuneSettings.replication_seeds must be between 0 and seeds={self.seeds}, "
                 f"got {self.replication_seeds}")
        for name, grid in (("unsup_search", self.unsup_search), ("sup_search", self.sup_search)):
            base = self.unsup if name == "unsup_search" else self.sup
            for field, values in grid:
                _require(hasattr(base, field) and field not in ("steps", "snapshots"),
                         f"FinetuneSettings.{name} searches {field!r}, which is not a SimCSESettings field "
                         "(steps are chosen through snapshots, not searched)")
                _require(len(values) > 0, f"FinetuneSettings.{name} gives {field!r} no values")
            self.candidates(name == "sup_search")  # every combination must be valid settings
        for field, values in self.mlm_search:
            _require(hasattr(self.mlm, field) and field not in ("steps", "corpus_limit", "heldout"),
                     f"FinetuneSettings.mlm_search searches {field!r}, which is not a searchable MLMSettings field")
            _require(len(values) > 0, f"FinetuneSettings.mlm_search gives {field!r} no values")
        self.mlm_candidates()

    def mlm_candidates(self) -> list[MLMSettings]:
        """Every masked-LM setting of the base's search, in grid order (``mlm`` alone without a grid)."""
        from dataclasses import replace
        from itertools import product

        fields = [field for field, _ in self.mlm_search]
        return [replace(self.mlm, **dict(zip(fields, values))) for values in product(*(v for _, v in self.mlm_search))]

    def candidates(self, supervised: bool) -> list[SimCSESettings]:
        """Every SimCSE setting of the search, in grid order (the base settings alone without a grid)."""
        from dataclasses import replace
        from itertools import product

        base, grid = (self.sup, self.sup_search) if supervised else (self.unsup, self.unsup_search)
        fields = [field for field, _ in grid]
        return [replace(base, **dict(zip(fields, values))) for values in product(*(v for _, v in grid))]

    @staticmethod
    def search_seed(profile_seed: int) -> int:
        """The seed of every search run (and of the selected models): the profile's."""
        return profile_seed

    def seed_list(self, profile_seed: int) -> list[int]:
        """The fresh seeds the recipe is drawn with: the ``seeds`` after the profile's (which the search used)."""
        return [profile_seed + i for i in range(1, self.seeds + 1)]


@dataclass(frozen=True)
class AttributionSettings:
    """Word weights of the Attribution chapter (:func:`cwi.pipeline.word_weights`).

    Attributes
    ----------
    models
        Registered models to attribute.
    datasets
        STS datasets whose sentences are attributed.
    sentences_per_dataset
        Distinct sentences drawn from each dataset (``None``: all), for every model
        not named in `sentences_by_model`.
    sentences_by_model
        ``(model, sentences per dataset)`` pairs for models that get another
        number.  Samples are nested: a smaller one is a subset of a larger one
        (in dataset order, so its ``sentence_id`` numbers differ; pairs match
        words by sentence text).
    path_points
        Integrated Gradients' adaptive rule: an increasing sequence of rule sizes;
        each (model, sentence) keeps the first whose completeness error is under
        `completeness_target` (:func:`cwi.attribution.word_integrated_gradients`).
    quadrature
        ``"clenshaw-curtis"`` (nested rules: a sentence that needs the next rule
        reuses every path point computed) or ``"gauss-legendre"`` (captum's rule).
    shap_max_evals
        Coalitions per sentence of SHAP's Partition explainer; ``None`` expands
        every group of words (exact Owen values).
    baseline
        Input embedding a word is compared with: ``"pad"``, ``"mask"`` or ``"zero"``.
    baseline_sentences
        Sentences per model of the completeness and baseline checks.
    completeness_target
        Relative completeness error each sentence's IG rule must keep under.
    captum_check_steps
        Gauss-Legendre points of the one-sentence check of forward mode against captum.
    draw_methods
        Methods the drawn models (the fresh seeds, the controls, the second
        base: :func:`cwi.pipeline.draw_models`) are attributed with; the primary
        claims may use only these.
    reference_points
        The Clenshaw-Curtis rule the Attribution chapter checks the adaptive
        rule against, word by word, on its check sentences (the nested rule
        after ``path_points``' last).
    trajectory_sentences
        Sentences per dataset attributed (Integrated Gradients) at every snapshot
        of the chosen recipe's search run, for the trajectory of the weighting
        (a smaller sample of the same seeded draw).
    memory_gb
        Memory of one vectorised call.  It changes how sentences are batched, not
        the results (equal to 1e-6, tested), so it is not part of the cache keys.
        ``None``: half the free memory of the model's GPU, or 1 GB on a CPU
        (:func:`cwi.inputs.memory_budget`).
    block_sentences
        Sentences per block of a word-weight table: the unit the cache stores
        and ``python -m cwi attribute`` distributes over a cluster
        (:mod:`cwi.shards`).  Blocks are attributed on their own, so this is
        part of the cache keys (through each block's sentences).
    explorer_sentences
        Sentences per dataset the chapter's explorer offers (those attributed by
        the most models first): they travel inside the HTML page, so this keeps
        it light in profiles that attribute thousands.
    """

    models: tuple[str, ...] = OFFLINE_MODELS
    datasets: tuple[str, ...] = STS_DATASETS
    # PAPER: the paper attributes larger samples (its exact sample is not available offline).
    # 50 sentences x 7 datasets for the book's small models; all-MiniLM-L6-v2 costs several times
    # more per sentence (a 4x slower forward pass, 33 path points where they need 9), so it keeps 15
    # and the default chapter stays under its earlier 15-minute time on 2 cores (README).
    sentences_per_dataset: int | None = 50
    sentences_by_model: tuple[tuple[str, int | None], ...] = (("all-MiniLM-L6-v2", 15),)
    path_points: tuple[int, ...] = (9, 17, 33, 65)
    quadrature: Literal["clenshaw-curtis", "gauss-legendre"] = "clenshaw-curtis"
    shap_max_evals: int | None = None
    baseline: Literal["pad", "mask", "zero"] = "pad"
    baseline_sentences: int = 10
    completeness_target: float = 0.01
    captum_check_steps: int = 8
    # The 24 drawn models of the default profile are attributed with Integrated Gradients only: SHAP for them
    # would add about 15 minutes on 2 cores, and the claims are decided on IG (the registered models get both).
    draw_methods: tuple[str, ...] = ("ig",)
    reference_points: int = 129
    trajectory_sentences: int = 20
    memory_gb: float | None = None
    block_sentences: int = 100
    explorer_sentences: int = 60

    def __post_init__(self):
        _require(set(self.datasets) <= set(STS_DATASETS),
                 f"AttributionSettings.datasets must be among {STS_DATASETS}, got {self.datasets}")
        _require(self.baseline in BASELINES, f"AttributionSettings.baseline must be one of {BASELINES}, "
                                             f"got {self.baseline!r}")
        _positive(self, "sentences_per_dataset", "shap_max_evals", "baseline_sentences", "completeness_target",
                  "captum_check_steps", "trajectory_sentences", "memory_gb", "block_sentences",
                  "explorer_sentences")
        for model, count in self.sentences_by_model:
            _require(count is None or count > 0, f"AttributionSettings.sentences_by_model gives {model} {count} "
                                                 "sentences: use a positive number or None (all)")
        points = list(self.path_points)
        _require(bool(points) and points == sorted(set(points)) and points[0] >= 2,
                 f"AttributionSettings.path_points must be an increasing sequence of rule sizes >= 2, got {points}")
        _require(self.quadrature in ("clenshaw-curtis", "gauss-legendre"),
                 f"AttributionSettings.quadrature must be clenshaw-curtis or gauss-legendre, got {self.quadrature!r}")
        if self.quadrature == "clenshaw-curtis":
            _require(all((points[-1] - 1) % (p - 1) == 0 for p in points),
                     f"AttributionSettings.path_points {points}: nested Clenshaw-Curtis rules need each size - 1 "
                     "to divide the last size - 1, as in (9, 17, 33, 65)")
        _require(self.reference_points > points[-1] and (self.reference_points - 1) % (points[-1] - 1) == 0,
                 f"AttributionSettings.reference_points must be a finer nested rule than path_points' last "
                 f"({points[-1]}), such as {2 * points[-1] - 1}; got {self.reference_points}")
        _require(bool(self.draw_methods) and set(self.draw_methods) <= set(METHOD_NAMES),
                 f"AttributionSettings.draw_methods must be among {METHOD_NAMES}, got {self.draw_methods}")

    def sentences(self, model: str) -> int | None:
        """Sentences per dataset attributed with `model`."""
        return dict(self.sentences_by_model).get(model, self.sentences_per_dataset)

    def method_settings(self, method: str) -> dict:
        """The settings of attribution `method` (a key of :data:`cwi.attribution.METHODS`) that shape its results."""
        if method == "ig":
            return {"points": self.path_points, "rule": self.quadrature, "target": self.completeness_target}
        if method == "shap":
            return {"max_evals": self.shap_max_evals}
        raise ValueError(f"no settings for attribution method {method!r}: add them to AttributionSettings")




# The adjustments a regression can be made under (cwi.analysis.CONTROLS names them, in this order).
CONTROL_NAMES = ("none", "covariates", "content words", "frequency", "sentence effects")


@dataclass(frozen=True)
class AnalysisSettings:
    """Regressions of the Correlations chapter (:mod:`cwi.analysis`) and the tests that read them (:mod:`cwi.inference`).

    Attributes
    ----------
    n_bootstrap
        Bootstrap replicates (sentences resampled) shared by every fit: the
        standard errors.
    level
        1 - the family-wise error rate of the primary family, and the coverage
        of every exploratory interval.
    claims
        The primary claims, fixed before a run: ``(name, methods, quantities,
        control)``.  Each is one contrast per pair, the mean difference over
        those methods and quantities, all datasets pooled, under that control
        (a key of :data:`CONTROL_NAMES`); read against the pre-trained model and,
        where the pair has a matched control, against the control (the
        difference in differences).  Every pair x claim x statistic (Δβ, Δr) x
        reading is one member of the family decided together.
    per_dataset_claim
        The claim whose contrast is also tested on each dataset alone (a family of its own).
    permutations
        Relabellings of each pair's models within sentences whose max-T
        statistics give the family's critical value (:func:`cwi.inference.permutation_maxima`).
    null_simulations
        Fresh relabellings on which the rule's false-positive rate is measured
        (no effect: the sharp null).
    scenario_simulations
        Simulations of each other scenario: a planted effect (the power) and
        seeds that wander around no effect.
    power_multiples
        The planted effects of the power curve, in multiples of the standard
        error of each pair's first-claim delta beta.
    median_bins
        Equal-count bins of the binned-median trend lines.
    """

    n_bootstrap: int = 2000
    level: float = 0.95
    # Fixed on 2026-12-06, before the default run of this version; earlier runs had shown the pooled
    # contrasts on overlapping data (issue 38): the content-word and frequency claims answer them.
    claims: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
        ("information gain", ("ig",), ("information_gain",), "none"),
        ("information gain, content words", ("ig",), ("information_gain",), "content words"),
        ("information gain beyond frequency", ("ig",), ("information_gain",), "frequency"),
        ("self-information", ("ig",), ("self_information",), "none"),
    )
    per_dataset_claim: str = "information gain"
    permutations: int = 999
    null_simulations: int = 500
    scenario_simulations: int = 200
    power_multiples: tuple[float, ...] = (1.0, 2.0, 3.0)
    median_bins: int = 15

    def __post_init__(self):
        _check_bootstrap(self)
        _positive(self, "median_bins", "null_simulations", "scenario_simulations")
        _require(self.permutations >= 19,
                 f"AnalysisSettings.permutations must be >= 19 (a 95% critical value needs that many), "
                 f"got {self.permutations}")
        _require(bool(self.power_multiples) and min(self.power_multiples) > 0,
                 f"AnalysisSettings.power_multiples must be positive multiples, got {self.power_multiples}")
        names = [claim[0] for claim in self.claims]
        _require(bool(names) and len(set(names)) == len(names),
                 f"AnalysisSettings.claims must name at least one claim, each once; got {names}")
        for claim in self.claims:
            _require(len(claim) == 4, f"AnalysisSettings.claims: each claim is (name, methods, quantities, control), "
                                      f"got {claim}")
            name, methods, quantities, control = claim
            _require(bool(methods) and set(methods) <= set(METHOD_NAMES),
                     f"AnalysisSettings.claims: {name!r} must use methods among {METHOD_NAMES}, got {methods}")
            _require(bool(quantities) and set(quantities) <= set(QUANTITY_NAMES),
                     f"AnalysisSettings.claims: {name!r} must use quantities among {QUANTITY_NAMES}, got {quantities}")
            _require(control in CONTROL_NAMES,
                     f"AnalysisSettings.claims: {name!r} must use a control among {CONTROL_NAMES}, got {control!r}")
            _require(not (control == "frequency" and "self_information" in quantities),
                     f"AnalysisSettings.claims: {name!r} partials frequency out of self-information, which is minus "
                     "log frequency: nothing is left to fit")
        _require(self.per_dataset_claim in names,
                 f"AnalysisSettings.per_dataset_claim {self.per_dataset_claim!r} is not one of the claims {names}")


@dataclass(frozen=True)
class FaithfulnessSettings:
    """Deletion and insertion curves of the Attribution chapter (:mod:`cwi.faithfulness`).

    Attributes
    ----------
    sentences_per_dataset
        Sentences per dataset whose curves are drawn, a nested subset of each
        model's attributed sample (no sentence is attributed again); a model
        attributed on fewer keeps all of its own.  ``None``: all of them.
    random_orders
        Random word orders per sentence (their scores are averaged: the random rival).
    oracle_sentences
        Sentences per dataset (a nested subset of those with curves) on which
        the greedy oracle of each measure and direction is followed too: the
        ceiling of the normalised AOPC (:func:`cwi.faithfulness.normalised_aopc`).
        Its four searches cost up to 2 W² embeddings per sentence and removal.
    removals
        How a word is removed: ``"baseline"`` (its tokens become the
        attribution baseline's) and ``"text"`` (its characters are deleted).
    flips
        Random sign flips of the randomisation test that compares the orders
        (:func:`cwi.faithfulness.compare_orders`).
    null_simulations
        Data sets with no effect on which the test's family-wise error is
        measured (:func:`cwi.faithfulness.sign_flip_null`; 1,000 sign flips each).
    level
        Joint coverage of the comparisons (family-wise error ``1 - level``).
    """

    sentences_per_dataset: int | None = 20
    random_orders: int = 5
    # The oracle only scales the scores, so a quarter of the sentences serves; on all 20 it took longer than the
    # curves themselves (2026-12-07, default profile, 2 cores).
    oracle_sentences: int = 5
    removals: tuple[str, ...] = ("baseline", "text")
    flips: int = 5_000
    null_simulations: int = 1_000
    level: float = 0.95

    def __post_init__(self):
        _positive(self, "sentences_per_dataset", "random_orders", "oracle_sentences", "flips", "null_simulations")
        _require(bool(self.removals) and set(self.removals) <= {"baseline", "text"},
                 f"FaithfulnessSettings.removals must be among ('baseline', 'text'), got {self.removals}")
        _require(0 < self.level < 1, f"FaithfulnessSettings.level must be in (0, 1), got {self.level}")


@dataclass(frozen=True)
class WeightingSettings:
    """Static weighted-average encoders of the Weighting chapter (:mod:`cwi.weighting`).

    They are scored on the Fine-tuning chapter's STS datasets (``finetune.sts_datasets``,
    ``finetune.sts_max_pairs``), beside its transformer models.

    Attributes
    ----------
    sif_a_grid
        Values of SIF's ``a`` tried on STS-B dev; the best is used on test.
    remove_components
        Each weighting is scored with each of these numbers of principal
        components removed (SIF as defined: 1).
    n_bootstrap, level
        Replicates and coverage of the paired bootstrap over sentence pairs.
    """

    # PAPER (Arora, Liang and Ma 2017): a from 1e-5 to 1e-1, best near 1e-3 on their data.
    sif_a_grid: tuple[float, ...] = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    remove_components: tuple[int, ...] = (0, 1)
    n_bootstrap: int = 1000
    level: float = 0.95

    def __post_init__(self):
        _require(bool(self.sif_a_grid) and min(self.sif_a_grid) > 0,
                 f"WeightingSettings.sif_a_grid must hold values > 0, got {self.sif_a_grid}")
        _require(1 in self.remove_components and min(self.remove_components) >= 0,
                 f"WeightingSettings.remove_components must include 1 (SIF as defined) and no negative number, "
                 f"got {self.remove_components}")
        _check_bootstrap(self)


@dataclass(frozen=True)
class SimilaritySettings:
    """Word-pair decompositions of the Similarity chapter (:mod:`cwi.similarity`).

    Attributes
    ----------
    pairs_per_dataset
        Sentence pairs drawn from each dataset's test split (both sides
        attributed), with :func:`cwi.data.sample_sts_pairs`: nested samples, no
        sentence of STS-B dev.
    datasets
        STS datasets the pairs come from; ``None``: ``attribution.datasets``.
    models
        Models decomposed; ``None``: both models of every pair of the profile
        (:attr:`Profile.pairs`) with a pre-trained twin whose models are among
        ``attribution.models`` (the first contrastive seed of the book's).
    method
        The attribution method whose word vectors are multiplied: ``"ig"``
        (Integrated Gradients, with ``attribution``'s rule and target).
    block_pairs
        Pairs per cached block of word vectors (the unit the cache stores).
    explorer_pairs
        Pairs per dataset the chapter's explorer carries inside the HTML page.
    worst_pairs
        Pairs per model in the table of the largest rank gaps.
    baseline_pairs
        Pairs per dataset (a nested subsample of each) decomposed again with
        each baseline of `other_baselines`, to show how much of the split the
        attribution baseline decides.
    other_baselines
        Baselines of that check, beside ``attribution.baseline``.
    """

    # PAPER: the paper has no similarity-level analysis; 100 pairs per dataset (200 sentences,
    # both sides attributed by each decomposed model) is the size for the default book.
    pairs_per_dataset: int | None = 100
    datasets: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    method: Literal["ig"] = "ig"
    block_pairs: int = 25
    explorer_pairs: int = 12
    worst_pairs: int = 3
    # Each other baseline re-attributes both sentences of these pairs with every model: 5 per dataset took
    # 207 s of the default chapter on 2 cores one baseline after the other (2026-12-07); each runs in a worker now.
    baseline_pairs: int = 5
    other_baselines: tuple[str, ...] = ("mask", "zero")

    def __post_init__(self):
        _positive(self, "pairs_per_dataset", "block_pairs", "explorer_pairs", "worst_pairs", "baseline_pairs")
        _require(set(self.other_baselines) <= set(BASELINES),
                 f"SimilaritySettings.other_baselines must be among {BASELINES}, got {self.other_baselines}")
        _require(self.datasets is None or (bool(self.datasets) and set(self.datasets) <= set(STS_DATASETS)),
                 f"SimilaritySettings.datasets must be None or among {STS_DATASETS}, got {self.datasets}")
        # SHAP's word vectors sum to f(x) - f(x') exactly too; one method keeps the chapter in its budget.
        _require(self.method == "ig", f"SimilaritySettings.method must be 'ig', got {self.method!r}")


@dataclass(frozen=True)
class Profile:
    """All settings of one run of the book.

    Attributes
    ----------
    name
        ``"smoke"``, ``"default"``, ``"paper"``, ``"paper-dryrun"``, or a study's name.
    seed
        Master seed; every random draw of the book derives from it.
    corpus
        The sentence corpus (a key of :data:`cwi.data.CORPORA`) of the statistics,
        the masked-LM and unsupervised SimCSE training and the Theory chapter's check.
    stats
        Settings of the word statistics.
    theory
        Sizes of the Theory chapter's numerical checks.
    finetune
        Training of the book's encoder pair and the STS evaluation.
    attribution
        Models, sentences and settings of the word weights.
    faithfulness
        The deletion and insertion curves that check the word weights.
    analysis
        Bootstrap of the regressions.
    weighting
        The static weighted-average encoders of the Weighting chapter.
    similarity
        The word-pair decompositions of the Similarity chapter.
    study_models, study_pairs
        The models and pairs a study file declares (:mod:`cwi.studies`), by name;
        empty for the built-in profiles.  Read them through :attr:`registry` and
        :attr:`pairs`, which add them to the built-in registry.
    study_file, extends, overrides
        For a study: its file, the profile it extends, and each setting it sets
        (dotted key, value), as the book's first page shows them.
    origin
        The reference :func:`get_profile` rebuilds this profile from (a study
        file's path, with ``-dryrun`` for its dry run); ``None``: :attr:`name`.
    """

    name: str
    seed: int
    stats: StatsSettings
    corpus: str = "wiki"
    theory: TheorySettings = TheorySettings()
    finetune: FinetuneSettings = FinetuneSettings(
        # Whole-word embeddings start from GloVe or at random: mlm_search chooses on STS-B dev.
        mlm=MLMSettings(corpus_limit=None, heldout=5_000, steps=3_000, word_vectors="glove"),
        # PAPER: SimCSE trains unsupervised BERT-base for one epoch of 1M sentences (15.6k steps) at
        # lr 3e-5 with the MLP head at training only, dropout 0.1 and temperature 0.05, evaluates
        # STS-B dev every 250 steps and keeps the best checkpoint. Here: 300 steps (the dev score
        # levels off well before), dev scored at log-spaced snapshots. lr 1e-4 with the head won the
        # book's earlier dev search (lr 3e-5 / 1e-4, head or not: the head at 1e-4 first); a wider
        # dev-only search (benchmarks/recipe_search.py, issue 10) found dropout and temperature to be
        # what moves this small model's dev score, so those two are searched.
        unsup=SimCSESettings(steps=300, lr=1e-4, mlp_head=True, snapshots=(25, 50, 100, 200)),
        # PAPER: supervised SimCSE trains on 275k SNLI+MNLI triplets with batch 512 at lr 5e-5;
        # offline there are about 6k SNLI dev/test triplets: batch 64, 1,000 steps (about 10
        # passes; the dev score still rose after 500), lr searched on dev.
        sup=SimCSESettings(steps=1_000, lr=1e-4, snapshots=(25, 50, 100, 200, 500)),
        unsup_search=(("dropout", (0.1, 0.2, 0.3)), ("temperature", (0.05, 0.1))),
        sup_search=(("lr", (1e-4, 3e-4)),),
        # Five fresh seeds per recipe (and per control) that played no part in the search, each stopped at the
        # recipe's step; three of the unsupervised recipe and its control replicate on the second base.
        seeds=5,
        replication_seeds=3,
    )
    attribution: AttributionSettings = AttributionSettings()
    faithfulness: FaithfulnessSettings = FaithfulnessSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    weighting: WeightingSettings = WeightingSettings()
    similarity: SimilaritySettings = SimilaritySettings()
    study_models: tuple[tuple[str, ModelSpec], ...] = ()
    study_pairs: tuple[tuple[str, ModelPair], ...] = ()
    study_file: str | None = None
    extends: str | None = None
    overrides: tuple[tuple[str, str], ...] = ()
    origin: str | None = None

    @property
    def reference(self) -> str:
        """What :func:`get_profile` rebuilds this profile from: a papermill parameter, a Dask worker's argument."""
        return self.origin or self.name

    @property
    def registry(self) -> dict[str, ModelSpec]:
        """Every model this profile can name: the built-in ones (:data:`cwi.models.MODELS`) and the study's."""
        from .models import MODELS

        return {**MODELS, **dict(self.study_models)}

    @property
    def pairs(self) -> dict[str, ModelPair]:
        """The pairs this profile compares, where its models are attributed: the study's first, then the built-in ones."""
        from .models import PAIRS

        return {**dict(self.study_pairs), **PAIRS}

    def model(self, name: str) -> ModelSpec:
        """The registered model `name` (built in or the study's), with an error that lists the known ones."""
        registry = self.registry
        if name not in registry:
            raise ValueError(f"profile {self.name!r} has no model {name!r}: known models are {', '.join(registry)}")
        return registry[name]

    def from_study(self, name: str) -> bool:
        """Whether the pair or model `name` is one a study file declares (the user's), not a built-in one."""
        return name in dict(self.study_pairs) or name in dict(self.study_models)

    def __post_init__(self):
        undrawn = sorted({m for _, methods, _, _ in self.analysis.claims for m in methods}
                         - set(self.attribution.draw_methods))
        _require(not undrawn,
                 f"profile {self.name!r}: analysis.claims use {', '.join(undrawn)}, but the drawn seeds and controls "
                 f"are attributed with {', '.join(self.attribution.draw_methods)} only: add "
                 f"{', '.join(undrawn)} to attribution.draw_methods, or leave it out of the claims")



PROFILES: dict[str, Profile] = {
    # Tiny sizes: every chapter end to end in seconds, for tests and CI.
    "smoke": Profile(
        name="smoke",
        seed=0,
        stats=StatsSettings(corpus_limit=20_000, min_count=5),
        theory=TheorySettings(
            steps=400, sweep_steps=150, sweep_batch_sizes=(16, 256), sweep_temperatures=(0.05, 1.0),
            real_sentences=5_000, real_min_count=10, real_dim=32, real_steps=150,
        ),
        finetune=FinetuneSettings(
            mlm=MLMSettings(corpus_limit=3_000, heldout=200, steps=20, vocab_size=2_000, hidden_size=64,
                            layers=2, heads=2, intermediate_size=128, max_length=32, batch_size=16, warmup=5,
                            word_vectors="glove"),
            unsup=SimCSESettings(steps=10, corpus_limit=1_000, batch_size=16, snapshots=(5,)),
            sup=SimCSESettings(steps=10, batch_size=16, snapshots=(5,)),
            unsup_search=(("mlp_head", (False, True)),),
            seeds=2,
            replication_seeds=2,
            sts_datasets=("stsb", "sickr"),
            sts_max_pairs=300,
        ),
        attribution=AttributionSettings(
            datasets=("stsb", "sickr"), sentences_per_dataset=4, sentences_by_model=(("all-MiniLM-L6-v2", 3),),
            baseline_sentences=2, trajectory_sentences=2,
        ),
        faithfulness=FaithfulnessSettings(sentences_per_dataset=2, random_orders=2, oracle_sentences=1, flips=500,
                                          null_simulations=200),
        analysis=AnalysisSettings(n_bootstrap=200, permutations=99, null_simulations=50, scenario_simulations=20),
        weighting=WeightingSettings(sif_a_grid=(1e-4, 1e-3, 1e-2), n_bootstrap=200),
        similarity=SimilaritySettings(pairs_per_dataset=3, block_pairs=2, explorer_pairs=3, worst_pairs=2,
                                      baseline_pairs=1),
    ),
    # The offline main job: the whole Wikipedia pack (910k sentences, 20.9M words),
    # the same scale as SimCSE's 1M-sentence training corpus.
    "default": Profile(
        name="default",
        seed=0,
        stats=StatsSettings(corpus_limit=None, min_count=10, n_shuffles=3),
    ),
    # PAPER: the paper counts words on SimCSE's wiki1m corpus; offline we read the
    # data pack, which is of the same size and source. More shuffles make the
    # correction less noisy for rare words.
    "paper": Profile(
        name="paper",
        seed=0,
        stats=StatsSettings(corpus_limit=None, min_count=10, n_shuffles=5),
        finetune=replace(Profile.finetune, models=OFFLINE_MODELS + PAPER_MODELS),
        # PAPER: the paper's pre-trained / contrastive pairs from the Hub, beside the book's own
        # pair (its seeds and trajectory); all-MiniLM-L6-v2 comes from the Hub here. How many
        # sentences the paper attributed is not in what we have offline; 1,000 per dataset needs a GPU.
        attribution=AttributionSettings(models=OFFLINE_MODELS[:3] + PAPER_MODELS, sentences_per_dataset=1_000,
                                        sentences_by_model=(), baseline_sentences=100),
    ),
}


def dry_run(full: Profile, small: Profile) -> Profile:
    """`full`'s code path at `small`'s sizes: its models and Hub loading, every chapter, in minutes.

    The models (``finetune.models``, ``attribution.models``), the seed and the
    corpus are `full`'s; every size (corpus sample, training steps, sentences,
    bootstrap replicates) is `small`'s.  ``paper-dryrun`` is ``dry_run(paper, smoke)``:
    CI runs it on tiny Hub-shaped models (``tests/hub_models.py``); with the
    Hub reachable it tries the paper's real models before a long run.
    """
    return replace(
        full, name=f"{full.name}-dryrun", stats=small.stats, theory=small.theory,
        finetune=replace(small.finetune, models=full.finetune.models),
        attribution=replace(small.attribution, models=full.attribution.models, sentences_by_model=()),
        faithfulness=small.faithfulness, analysis=small.analysis, weighting=small.weighting,
        similarity=replace(small.similarity, models=full.similarity.models),
    )


PROFILES["paper-dryrun"] = dry_run(PROFILES["paper"], PROFILES["smoke"])


DRY_RUN = "-dryrun"  # appended to a profile reference: its code path at the smoke profile's sizes (dry_run)


def get_profile(reference: str | Path | Profile, relative_to: Path | None = None) -> Profile:
    """The profile `reference` names (a :class:`Profile` passes through).

    Parameters
    ----------
    reference
        A built-in profile's name (:data:`PROFILES`); the path of a study file
        (``.toml``, :mod:`cwi.studies`), relative to the working directory; or
        either with ``-dryrun`` appended: :func:`dry_run` of it at the smoke
        profile's sizes (``python -m cwi book --dry-run``).  The same reference
        gives the same object within a process while a study file is unchanged.
    relative_to
        The folder a relative study path is read from (a study's ``extends``: its
        own folder); default the working directory.

    Raises
    ------
    ValueError
        For an unknown name; :class:`cwi.studies.StudyError` (a ValueError) for a
        study file that does not validate, naming the file and the key.
    """
    if isinstance(reference, Profile):
        return reference
    reference = str(reference)
    if reference in PROFILES:
        return PROFILES[reference]
    if reference.endswith(DRY_RUN) and len(reference) > len(DRY_RUN):
        return _dry(get_profile(reference[:-len(DRY_RUN)], relative_to))
    path = _study_file(reference, relative_to)
    if path is not None:
        return _study(path, _chain_digest(path))
    known = ", ".join(sorted(PROFILES))
    raise ValueError(
        f"unknown profile {reference!r}: choose one of {known} "
        "(smoke for tests, default for the offline main job, paper for the Hub models), or give a study file "
        "(study.toml: README, 'Your own encoders'); append -dryrun for any profile's code path at smoke sizes"
    )


@lru_cache(maxsize=16)
def _dry(full: Profile) -> Profile:
    return replace(dry_run(full, PROFILES["smoke"]), origin=full.reference + DRY_RUN)


def _study_file(reference: str, folder: Path | None = None) -> Path | None:
    """The absolute path of the study file `reference` names (``-dryrun`` or not); ``None`` for a built-in name."""
    stem = reference.removesuffix(DRY_RUN)
    if not stem.endswith(".toml"):
        return None
    return (Path(folder or ".") / Path(stem).expanduser()).resolve()


def _chain_digest(path: Path, seen: frozenset = frozenset()) -> str:
    """sha256 of a study file and of every study file it extends: an edit anywhere down the chain is read again."""
    import tomllib

    content = path.read_bytes() if path.is_file() else b""
    digest = hashlib.sha256(content)
    try:
        extends = tomllib.loads(content.decode()).get("extends")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        extends = None  # read_study reports it
    extended = _study_file(extends, path.parent) if isinstance(extends, str) else None
    if extended is not None and path not in seen:
        digest.update(_chain_digest(extended, seen | {path}).encode())
    return digest.hexdigest()


@lru_cache(maxsize=16)
def _study(path: Path, digest: str) -> Profile:
    """The study file at `path` whose chain hashes to `digest` (the memo's key: an edited file is read again)."""
    from .studies import read_study

    return read_study(path, get_profile, reserved=lambda name: name in PROFILES or name.endswith(DRY_RUN))
