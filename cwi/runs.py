"""Training runs of the book's models for a profile: the masked-LM bases, SimCSE, its controls, the seeds.

Orchestration, like :mod:`cwi.pipeline`: it reads a profile, calls
:mod:`cwi.train` and stores what it returns in the artefact store.

* :func:`mlm_search`, :func:`mlm_checkpoint`: the masked-LM bases of the
  profile's base search and the one STS-B dev chose; :func:`second_base` the
  runner-up, which carries the replication;
* :func:`training_run`: one fine-tuning run (:class:`RunSpec`: SimCSE or its
  matched non-contrastive control, from a base, with a seed, up to a step), as a
  :class:`Run` folder holding a checkpoint at every snapshot step and the STS-B
  dev score of each;
* :func:`search`: the profile's grid of SimCSE settings, each run with the
  search seed (the profile's), scored by its best dev snapshot; :func:`chosen`
  is the argmax and :func:`recipe_step` that candidate's best step;
* :func:`draw_specs`, :func:`seed_runs`: the recipe drawn again with fresh seeds
  (none of them played a part in any choice), every one stopped at the recipe's
  step, with their matched controls and the replication on the second base;
* :func:`train_runs`: many runs at once, in single-thread worker processes
  where the machine has the CPUs for them;
* :func:`book_checkpoint`: the checkpoint a registered book model loads.

The search runs keep their best STS-B dev snapshot, as SimCSE keeps its best
dev checkpoint: that is the *selected* model (``book-unsup-simcse``,
``book-sup-simcse``).  The fresh seeds keep no choice of their own: each is the
model at the recipe's step.  STS-B *test* is never read here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import pandas as pd

from . import cache, config, data, evaluation, train, workers
from .encoders import Encoder
from .integrity import IntegrityError
from .models import MODELS

__all__ = ["Run", "RunSpec", "KINDS", "mlm_checkpoint", "mlm_search", "mlm_base", "second_base", "dev_rows",
           "training_examples", "training_run", "simcse_run", "train_runs", "search_specs", "search", "chosen",
           "recipe_step", "draw_specs", "seed_runs", "setting_text", "book_checkpoint", "BOOK_NAMES"]

# What a fine-tuning run trains: SimCSE, or its matched non-contrastive control, unsupervised or supervised.
KINDS = ("unsup-simcse", "sup-simcse", "unsup-control", "sup-control")
# Checkpoint names of the book's models (the ``location`` of their registry entries); "-2": on the second base.
BOOK_NAMES = ("mlm", "mlm-2", *KINDS, "unsup-simcse-2", "unsup-control-2")
# Worker processes start in seconds (torch and transformers imported anew): worth it for this much work only,
# in sentences encoded (steps x sentences per step); the smoke profile's runs stay in the calling process.
PARALLEL_MIN_WORK = 20_000
RUN_FILE = "cwi_run.json"


@dataclass(frozen=True)
class Run:
    """A SimCSE run on disk: ``step-NNNNNN/`` checkpoints and :data:`RUN_FILE`.

    Attributes
    ----------
    folder
        The run's folder in the artefact store.
    record
        Settings, seed, losses and ``snapshots``: step -> ``{"stsb_dev": score}``.
    retrain
        Trains the run again (:func:`simcse_run` sets it): :meth:`checkpoint` calls it
        when a snapshot's files do not match the run's manifest.
    """

    folder: Path
    record: dict
    retrain: Callable[[], Run] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def load(cls, folder: Path, retrain: Callable[[], Run] | None = None) -> Run:
        """Read the run in `folder`; an unreadable :data:`RUN_FILE` raises :class:`~cwi.integrity.IntegrityError`."""
        path = folder / RUN_FILE
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            record["snapshots"].items()
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise IntegrityError(f"{path} is not a whole run record ({type(err).__name__}: {err}): delete {folder} "
                                 "and run again to train it again") from None
        return cls(folder, record, retrain)

    @property
    def seed(self) -> int:
        return int(self.record["seed"])

    def dev_scores(self) -> pd.Series:
        """STS-B dev Spearman x100 at every snapshot, indexed by step (0 is the base)."""
        scores = {int(step): values["stsb_dev"] for step, values in self.record["snapshots"].items()}
        return pd.Series(scores, name="stsb_dev").rename_axis("step").sort_index()

    @property
    def best_step(self) -> int:
        """The trained snapshot with the best dev score (the earliest of ties)."""
        trained = self.dev_scores().drop(0)
        return int(trained.idxmax())

    @property
    def last_step(self) -> int:
        """The run's last step: the recipe's fixed step for a fresh seed, the schedule's end for a search run."""
        return int(self.dev_scores().index.max())

    def checkpoint(self, step: int | None = None) -> Path:
        """The checkpoint folder at `step` (default: the best dev snapshot), its files checked.

        Step 0 is the base the run started from (a run keeps no copy of it).
        Checked against the run's manifest when first asked for in a process (a
        run's other snapshots are not read); a damaged one is logged with its path
        and the run is trained again (:attr:`retrain`), or, without `retrain`,
        refused with :class:`~cwi.integrity.IntegrityError`.
        """
        step = self.best_step if step is None else step
        if step == 0:  # the base, in the same checkpoint store
            return self.folder.parent / Path(self.record["base"]).name
        folder = self.folder / f"step-{step:06d}"
        if step in self.dev_scores().index and not cache.folder_intact(self.folder, folder.name, last_file=RUN_FILE):
            if self.retrain is None:
                raise IntegrityError(f"the snapshot {folder} was damaged and is removed: run again to train "
                                     f"{self.folder.name} again")
            return self.retrain().checkpoint(step)
        if not folder.exists():
            raise ValueError(f"run {self.folder.name} has no snapshot at step {step}; it has "
                             f"{list(self.dev_scores().index)}")
        return folder


def dev_rows(profile: config.Profile) -> pd.DataFrame:
    """The STS-B dev pairs every SimCSE snapshot of `profile` is scored on."""
    return _dev(profile.finetune.sts_max_pairs, str(data.data_dir()))[0]


@lru_cache(maxsize=8)
def _dev(max_pairs: int | None, data_folder: str) -> tuple[pd.DataFrame, str]:
    """The dev pairs and their fingerprint, once per process and data folder (every run's key holds it)."""
    dev = evaluation.sts_pairs("stsb", "dev", max_pairs)
    return dev, cache.fingerprint_texts([*dev["sentence1"], *dev["sentence2"], *dev["score"].astype(str)])


def training_examples(profile: config.Profile, supervised: bool, settings: config.SimCSESettings) -> list:
    """What SimCSE trains on: the profile's corpus up to ``settings.corpus_limit``, or SNLI triplets (supervised).

    No triplet holds a sentence of any STS dataset (:func:`cwi.data.evaluation_sentences`,
    compared by :func:`cwi.data.normalise_sentence`): STS-B's image captions were
    drawn from SNLI.  (The Wikipedia corpus is not filtered; the Fine-tuning
    chapter counts its STS sentences.)
    """
    return _examples(profile.corpus, supervised, None if supervised else settings.corpus_limit,
                     str(data.data_dir()))[0]


@lru_cache(maxsize=16)
def _examples(corpus: str, supervised: bool, limit: int | None, data_folder: str) -> tuple[list, str]:
    """Training examples and their fingerprint, once per process and data folder (every run's key holds it)."""
    if supervised:
        examples = data.snli_triplets(exclude=data.evaluation_sentences())
        return examples, cache.fingerprint_texts("\t".join(e) for e in examples)
    examples = data.load_corpus(corpus, limit)
    return examples, cache.fingerprint_texts(examples)


@lru_cache(maxsize=8)
def _mlm_key(profile: config.Profile, settings: config.MLMSettings, data_folder: str) -> dict:
    """The masked-LM checkpoint's key: hashing the corpus and the word vectors takes seconds, so once per process.

    `data_folder` (``CWI_DATA_DIR``) is part of the memo: another data pack is another corpus.
    """
    sentences = data.load_corpus(profile.corpus, settings.corpus_limit)
    if len(sentences) <= settings.heldout:
        raise ValueError(f"{len(sentences)} sentences cannot hold out {settings.heldout}: raise mlm.corpus_limit")
    key = {"kind": "mlm", "version": train.TRAIN_VERSION, "settings": asdict(settings), "seed": profile.seed,
           "corpus_sha256": cache.fingerprint_texts(sentences)}
    if settings.word_vectors == "glove":
        words, vectors = _word_vectors(settings.word_vectors)
        key["word_vectors_sha256"] = hashlib.sha256(cache.fingerprint_texts(words).encode() + vectors.tobytes()).hexdigest()
    return key


@lru_cache(maxsize=1)
def _word_vectors(name: str | None):
    """The start vectors of the masked-LM's word embeddings (once per process: the key and the training read them)."""
    if name is None:
        return None
    from .theory import load_glove

    return load_glove()


def mlm_checkpoint(profile) -> Path:
    """The masked-LM base of `profile`: the best of its search on STS-B dev (:func:`mlm_search`)."""
    table = mlm_search(profile)
    return Path(table.loc[table["chosen"], "checkpoint"].iloc[0])


def second_base(profile) -> config.MLMSettings | None:
    """The settings of the base search's runner-up on STS-B dev (``None`` without one): the replication's base."""
    profile = config.get_profile(profile)
    table = mlm_search(profile)
    others = table[~table["chosen"]]
    if not len(others):
        return None
    return profile.finetune.mlm_candidates()[int(others["stsb_dev"].idxmax())]


def _base_settings(profile: config.Profile, base: config.MLMSettings | None) -> config.MLMSettings:
    """`base`, or the chosen base's settings."""
    if base is not None:
        return base
    table = mlm_search(profile)
    return profile.finetune.mlm_candidates()[int(table.index[table["chosen"]][0])]


def mlm_search(profile) -> pd.DataFrame:
    """The masked-LM bases of the profile's ``finetune.mlm_search``, each scored on STS-B dev.

    One row per candidate, in grid order: the searched fields, ``stsb_dev`` (the
    base as it is, with the book's mean pooling: what step 0 of every SimCSE run
    scores), ``checkpoint`` and ``chosen`` (the argmax, the first of ties).
    Bases are trained on a miss (:func:`mlm_base`); the table is cached, keyed by
    the bases and the dev pairs.  STS-B test is never read.
    """
    profile = config.get_profile(profile)
    finetune = profile.finetune
    fields = [field for field, _ in finetune.mlm_search]
    candidates = finetune.mlm_candidates()
    _parallel([(mlm_base, (profile, settings), settings.steps * settings.batch_size, _mlm_done(profile, settings))
               for settings in candidates])
    bases = [(settings, mlm_base(profile, settings)) for settings in candidates]
    dev, dev_digest = _dev(profile.finetune.sts_max_pairs, str(data.data_dir()))
    key = {"bases": [folder.name for _, folder in bases], "pooling": MODELS["book-mlm"].pooling,
           "dev_sha256": dev_digest}

    def score() -> pd.DataFrame:
        from .models import load_encoder

        return pd.DataFrame([
            {**{field: str(getattr(settings, field)) for field in fields},
             "stsb_dev": evaluation.encoder_spearman(load_encoder(folder, MODELS["book-mlm"].pooling), dev)}
            for settings, folder in bases])

    table = cache.cached_frame("mlm_search", key, score).copy()
    table["checkpoint"] = [str(folder) for _, folder in bases]
    table["chosen"] = False
    table.loc[table["stsb_dev"].idxmax(), "chosen"] = True
    return table


def _mlm_done(profile: config.Profile, settings: config.MLMSettings) -> bool:
    return cache.artefact_path("checkpoints", _mlm_key(profile, settings, str(data.data_dir())), "").is_dir()


def mlm_base(profile, settings: config.MLMSettings) -> Path:
    """One masked-LM base of `profile` with `settings`, trained on a miss (keyed by settings, seed, corpus, vectors).

    A cached one is checked against its manifest first (once per process); a
    damaged one is logged with its path and trained again.
    """
    profile = config.get_profile(profile)
    target = cache.artefact_path("checkpoints", _mlm_key(profile, settings, str(data.data_dir())), "")
    if not cache.folder_intact(target, last_file=train.HISTORY_FILE):  # missing, or damaged and removed
        sentences = data.load_corpus(profile.corpus, settings.corpus_limit)
        model, tokenizer, record = train.pretrain_mlm(sentences[: -settings.heldout], sentences[-settings.heldout:],
                                                      settings, profile.seed,
                                                      word_vectors=_word_vectors(settings.word_vectors),
                                                      label=_mlm_label(profile, settings))
        cache.atomic_write(target, lambda folder: train.save_checkpoint(folder, model, tokenizer, record), folder=True)
    return target


def _mlm_label(profile: config.Profile, settings: config.MLMSettings) -> str:
    """What the terminal calls a base: ``masked-LM word_vectors=None`` where it differs from the profile's."""
    base = asdict(profile.finetune.mlm)
    changed = " ".join(f"{name}={setting_text(value)}" for name, value in asdict(settings).items() if base[name] != value)
    return f"masked-LM {changed}".strip()




@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run of a profile: what :func:`training_run` trains (and a worker process receives).

    Attributes
    ----------
    kind
        One of :data:`KINDS`: SimCSE or its matched control, unsupervised or supervised.
    settings
        The recipe (a candidate of the search, or the chosen one).
    seed
        Training seed (the profile's for the search, a fresh one for a draw).
    base
        The masked-LM base's settings; ``None``: the base STS-B dev chose.
    stop
        End the run at this step of the recipe's schedule (the recipe's fixed
        step); ``None``: train the whole schedule, snapshots and all.
    label
        What the terminal calls the run (not part of the key).
    """

    kind: str
    settings: config.SimCSESettings
    seed: int
    base: config.MLMSettings | None = None
    stop: int | None = None
    label: str | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown run kind {self.kind!r}: choose one of {KINDS}")

    @property
    def supervised(self) -> bool:
        return self.kind.startswith("sup")

    @property
    def objective(self) -> str:
        return "simcse" if self.kind.endswith("simcse") else "control"

    @property
    def work(self) -> int:
        """Sentences encoded over the run (steps x sentences per step): what orders the workers' queue."""
        per_example = {"unsup-simcse": 2, "sup-simcse": 3, "unsup-control": 1, "sup-control": 3}[self.kind]
        return (self.stop or self.settings.steps) * self.settings.batch_size * per_example


def _run_target(profile: config.Profile, spec: RunSpec) -> tuple[Path, dict, Path, list]:
    """The run's folder in the store, its key, its base's folder and its training examples."""
    base_settings = _base_settings(profile, spec.base)
    base = mlm_base(profile, base_settings)
    examples, digest = _examples(profile.corpus, spec.supervised,
                                 None if spec.supervised else spec.settings.corpus_limit, str(data.data_dir()))
    settings = _with_last_step(spec.settings)
    key = {"kind": spec.kind, "version": train.TRAIN_VERSION, "chunks": train.LENGTH_CHUNKS, "base": base.name,
           "settings": asdict(settings), "seed": spec.seed, "stop": spec.stop, "pooling": _pooling(spec.kind),
           "dev_sha256": _dev(profile.finetune.sts_max_pairs, str(data.data_dir()))[1], "data_sha256": digest}
    if spec.kind == "unsup-control":  # masked-LM: the base's masking rate
        key["mask_probability"] = base_settings.mask_probability
    return cache.artefact_path("checkpoints", key, ""), key, base, examples


def _pooling(kind: str) -> str:
    return MODELS["book-unsup-simcse" if kind.startswith("unsup") else "book-sup-simcse"].pooling


def training_run(profile, spec: RunSpec) -> Run:
    """One fine-tuning run (:class:`RunSpec`) from a masked-LM base, trained on a miss.

    A checkpoint is saved, and scored on STS-B dev, after every step of
    ``settings.snapshots`` and the last step (``spec.stop`` if given); step 0
    is the base, whose dev score the base search measured.  The run folder
    appears whole or not at all, with a manifest of its files' sha256.  Keyed by
    the kind, the base, the settings, the seed, the stop, the training data and
    the dev pairs.  A cached run's record is checked now, each snapshot when
    :meth:`Run.checkpoint` gives it; a damaged one is logged with its path and
    trained again.
    """
    profile = config.get_profile(profile)
    target, key, base, examples = _run_target(profile, spec)
    settings = _with_last_step(spec.settings)

    def retrain() -> Run:
        return training_run(profile, spec)

    if cache.folder_intact(target, RUN_FILE, last_file=RUN_FILE):  # the record now, each snapshot when loaded
        try:
            return Run.load(target, retrain)
        except IntegrityError as err:  # a run from before manifests, its record damaged
            cache.report_damage(f"{err}; training it again")
            cache.discard(target)
    dev = dev_rows(profile)
    pooling = _pooling(spec.kind)
    table = mlm_search(profile)
    base_dev = float(table.loc[table["checkpoint"] == str(base), "stsb_dev"].iloc[0])

    def fit(folder: Path) -> None:
        def snapshot(step, model, tokenizer):
            train.save_checkpoint(folder / f"step-{step:06d}", model, tokenizer,
                                  {"kind": spec.kind, "step": step, "seed": spec.seed, "base": str(base)}, pooling)
            return {"stsb_dev": evaluation.encoder_spearman(Encoder(model, tokenizer, pooling, spec.kind), dev)}

        trainer = train.train_simcse if spec.objective == "simcse" else train.train_control
        extra = {"mask_probability": key["mask_probability"]} if "mask_probability" in key else {}
        _, _, record = trainer(base, examples, settings, spec.supervised, spec.seed, pooling, snapshot=snapshot,
                               label=spec.label, stop=spec.stop, **extra)
        record["snapshots"] = {"0": {"stsb_dev": base_dev}, **record["snapshots"]}  # the base, scored once
        (folder / RUN_FILE).write_text(json.dumps(record))

    cache.atomic_write(target, fit, folder=True)  # another run's, if it finished this one first
    return Run.load(target, retrain)


def simcse_run(profile, supervised: bool, settings: config.SimCSESettings, seed: int, label: str | None = None,
               stop: int | None = None) -> Run:
    """One SimCSE run from the chosen masked-LM base (:func:`training_run`)."""
    return training_run(profile, RunSpec("sup-simcse" if supervised else "unsup-simcse", settings, seed, stop=stop,
                                         label=label))


def _with_last_step(settings: config.SimCSESettings) -> config.SimCSESettings:
    """`settings` with its last step among the snapshots: a run always keeps its final model."""
    if settings.steps in settings.snapshots:
        return settings
    return replace(settings, snapshots=tuple(settings.snapshots) + (settings.steps,))


def _parallel(jobs: list[tuple]) -> None:
    """Train the missing jobs ``(function, args, work, done)`` in worker processes where it pays (:func:`cwi.workers.fill`).

    The caller then reads (or, where no worker ran, trains) every artefact in order.
    """
    workers.fill([workers.Job(function, args, work) for function, args, work, done in jobs if not done],
                 PARALLEL_MIN_WORK, "training runs")


def train_runs(profile, specs: list[RunSpec]) -> list[Run]:
    """Every run of `specs`, those missing trained first (in worker processes where it pays: :func:`_parallel`)."""
    profile = config.get_profile(profile)
    _parallel([(training_run, (profile, spec), spec.work, _run_target(profile, spec)[0].is_dir()) for spec in specs])
    return [training_run(profile, spec) for spec in specs]


def search_specs(profile, supervised: bool) -> list[RunSpec]:
    """The dev search's runs: every candidate of the grid, with the search seed (the profile's), the whole schedule."""
    profile = config.get_profile(profile)
    finetune = profile.finetune
    grid = finetune.sup_search if supervised else finetune.unsup_search
    fields = [field for field, _ in grid]
    candidates = finetune.candidates(supervised)
    kind = "sup-simcse" if supervised else "unsup-simcse"
    return [RunSpec(kind, settings, finetune.search_seed(profile.seed), label=_label(
        kind, f"{number}/{len(candidates)} " + " ".join(f"{f}={setting_text(getattr(settings, f))}" for f in fields)))
        for number, settings in enumerate(candidates, 1)]


def search(profile, supervised: bool) -> pd.DataFrame:
    """The dev search of the profile's SimCSE grid: one row per candidate, in grid order.

    Columns: the searched fields, ``best_step``, ``stsb_dev`` (the best
    snapshot's score), ``dev@<step>`` for every snapshot, and ``chosen`` (the
    argmax of ``stsb_dev``, the first of ties).  Runs use the search seed.
    """
    profile = config.get_profile(profile)
    grid = profile.finetune.sup_search if supervised else profile.finetune.unsup_search
    fields = [field for field, _ in grid]
    specs = search_specs(profile, supervised)
    rows = []
    for spec, run in zip(specs, train_runs(profile, specs)):
        scores = run.dev_scores()
        rows.append({**{field: getattr(spec.settings, field) for field in fields}, "best_step": run.best_step,
                     "stsb_dev": scores[run.best_step], **{f"dev@{step}": value for step, value in scores.items()}})
    table = pd.DataFrame(rows)
    table["chosen"] = False
    table.loc[table["stsb_dev"].idxmax(), "chosen"] = True
    return table


def chosen(profile, supervised: bool) -> config.SimCSESettings:
    """The SimCSE settings of the search's argmax (:func:`search`)."""
    profile = config.get_profile(profile)
    table = search(profile, supervised)
    return profile.finetune.candidates(supervised)[int(table.index[table["chosen"]][0])]


def recipe_step(profile, supervised: bool) -> int:
    """The recipe's fixed step: the chosen candidate's best STS-B dev snapshot in the search (the search seed's run).

    Chosen on dev once, for the recipe; every fresh seed and control stops there.
    """
    profile = config.get_profile(profile)
    table = search(profile, supervised)
    return int(table.loc[table["chosen"], "best_step"].iloc[0])


def draw_specs(profile, kinds: tuple[str, ...] = KINDS, second: bool = True) -> list[RunSpec]:
    """The runs drawn with fresh seeds: each recipe, its control, and the replication on the second base.

    For each kind of `kinds` whose recipe the profile searches: the chosen recipe
    (the SimCSE one for both objectives) with every fresh seed
    (:meth:`cwi.config.FinetuneSettings.seed_list`), stopped at the recipe's
    step (:func:`recipe_step`); controls only where ``finetune.controls``.  With
    `second` and ``finetune.replication_seeds``: the unsupervised recipe and its
    control on the second base (:func:`second_base`), with the first that many
    fresh seeds, at the same step (chosen on the first base: nothing is searched again).
    """
    profile = config.get_profile(profile)
    finetune = profile.finetune
    seeds = finetune.seed_list(profile.seed)
    specs = []
    for kind in kinds:
        if kind.endswith("control") and not finetune.controls:
            continue
        supervised = kind.startswith("sup")
        recipe, stop = chosen(profile, supervised), recipe_step(profile, supervised)
        specs += [RunSpec(kind, recipe, seed, stop=stop, label=_label(kind, f"seed {seed}")) for seed in seeds]
    other = second_base(profile) if second and finetune.replication_seeds else None
    if other is not None:
        recipe, stop = chosen(profile, False), recipe_step(profile, False)
        for kind in ("unsup-simcse", "unsup-control") if finetune.controls else ("unsup-simcse",):
            if kind in kinds:
                specs += [RunSpec(kind, recipe, seed, base=other, stop=stop,
                                  label=_label(kind, f"seed {seed}, second base"))
                          for seed in seeds[:finetune.replication_seeds]]
    return specs


def seed_runs(profile, kind: str, second: bool = False) -> dict[int, Run]:
    """The fresh seeds' runs of `kind` (a key of :data:`KINDS`), on the chosen base or the `second`: seed -> run.

    Trains every drawn run that is missing (all kinds at once, so that the
    workers share the whole queue).
    """
    profile = config.get_profile(profile)
    specs = draw_specs(profile)
    trained = train_runs(profile, specs)
    return {spec.seed: run for spec, run in zip(specs, trained)
            if spec.kind == kind and (spec.base is not None) == second}


def _label(kind: str, detail: str) -> str:
    """What the terminal's progress lines call a run: ``unsup-SimCSE 3/6 dropout=0.2 temperature=0.05``."""
    head, objective = kind.split("-")
    return f"{head}-{'SimCSE' if objective == 'simcse' else 'control'} {detail}"


def setting_text(value) -> str:
    """A setting as a reader types it: 3e-05, not 0.00003 (search labels and tables)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def book_checkpoint(name: str, profile, seed: int | None = None) -> Path:
    """The checkpoint of the book's model `name` (a location of :data:`BOOK_NAMES`).

    ``mlm`` is the base STS-B dev chose, ``mlm-2`` the runner-up (:func:`second_base`).
    ``unsup-simcse`` and ``sup-simcse`` without `seed`: the *selected* model, the
    search run's best dev snapshot of the chosen recipe.  With `seed` (a fresh
    seed, :meth:`cwi.config.FinetuneSettings.seed_list`), and for the controls
    and the second base's models (default: the first fresh seed), the drawn run
    at the recipe's step.  Trained on a miss.
    """
    profile = config.get_profile(profile)
    if name not in BOOK_NAMES:
        raise ValueError(f"unknown book checkpoint {name!r}: choose one of {', '.join(BOOK_NAMES)}")
    if name == "mlm":
        return mlm_checkpoint(profile)
    if name == "mlm-2":
        other = second_base(profile)
        if other is None:
            raise ValueError(f"profile {profile.name!r} searches one masked-LM base (finetune.mlm_search): it has no "
                             "second base")
        return mlm_base(profile, other)
    kind, second = name.removesuffix("-2"), name.endswith("-2")
    supervised = kind.startswith("sup")
    seeds = profile.finetune.seed_list(profile.seed)
    if seed is None and kind.endswith("simcse") and not second:
        return simcse_run(profile, supervised, chosen(profile, supervised),
                          profile.finetune.search_seed(profile.seed)).checkpoint()
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise ValueError(f"seed {seed} is not one of the profile's fresh contrastive seeds {seeds} "
                         "(FinetuneSettings.seeds)")
    found = [spec for spec in draw_specs(profile) if spec.kind == kind and spec.seed == seed
             and (spec.base is not None) == second]
    if not found:
        raise ValueError(f"profile {profile.name!r} trains no {name} with seed {seed} (finetune.controls, "
                         "finetune.replication_seeds)")
    run = training_run(profile, found[0])
    return run.checkpoint(run.last_step)
