"""Training runs of the book's encoder pair for a profile: the masked-LM base, SimCSE, the dev search, the seeds.

Orchestration, like :mod:`cwi.pipeline`: it reads a profile, calls
:mod:`cwi.train` and stores what it returns in the artefact store.

* :func:`mlm_checkpoint`: the masked-LM base, trained once per profile;
* :func:`simcse_run`: one SimCSE run from that base, as a :class:`Run` folder
  holding a checkpoint at every snapshot step and the STS-B dev score of each;
* :func:`search`: the profile's grid of SimCSE settings, each run with the first
  seed, scored by the best dev snapshot; :func:`chosen` is its argmax;
* :func:`seed_runs`: the chosen recipe with every seed;
* :func:`book_checkpoint`: the checkpoint a registered book model loads.

Every run keeps its best STS-B dev snapshot (step 0, the base, excluded), as
SimCSE keeps its best dev checkpoint.  STS-B *test* is never read here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from . import cache, config, data, evaluation, train
from .encoders import Encoder
from .integrity import IntegrityError
from .models import MODELS

__all__ = ["Run", "mlm_checkpoint", "mlm_search", "mlm_base", "dev_rows", "training_examples", "simcse_run", "search", "chosen", "seed_runs",
           "setting_text", "book_checkpoint", "BOOK_NAMES"]

# Checkpoint names of the book's models (the ``location`` of their registry entries).
BOOK_NAMES = ("mlm", "unsup-simcse", "sup-simcse")
RUN_FILE = "cwi_run.json"
log = logging.getLogger(__name__)


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

    def checkpoint(self, step: int | None = None) -> Path:
        """The checkpoint folder at `step` (default: the best dev snapshot), its files checked.

        Checked against the run's manifest when first asked for in a process (a
        run's other snapshots are not read); a damaged one is logged with its path
        and the run is trained again (:attr:`retrain`), or, without `retrain`,
        refused with :class:`~cwi.integrity.IntegrityError`.
        """
        step = self.best_step if step is None else step
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
    return evaluation.sts_pairs("stsb", "dev", profile.finetune.sts_max_pairs)


def training_examples(profile: config.Profile, supervised: bool, settings: config.SimCSESettings) -> list:
    """What SimCSE trains on: the profile's corpus up to ``settings.corpus_limit``, or SNLI triplets (supervised).

    No triplet holds a sentence of any STS dataset (:func:`cwi.data.evaluation_sentences`,
    compared by :func:`cwi.data.normalise_sentence`): STS-B's image captions were
    drawn from SNLI.  (The Wikipedia corpus is not filtered; the Fine-tuning
    chapter counts its STS sentences.)
    """
    if supervised:
        return data.snli_triplets(exclude=data.evaluation_sentences())
    return data.load_corpus(profile.corpus, settings.corpus_limit)


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
    bases = [(settings, mlm_base(profile, settings)) for settings in finetune.mlm_candidates()]
    dev = dev_rows(profile)
    key = {"bases": [folder.name for _, folder in bases], "pooling": MODELS["book-mlm"].pooling,
           "dev_sha256": cache.fingerprint_texts([*dev["sentence1"], *dev["sentence2"], *dev["score"].astype(str)])}

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


def simcse_run(profile, supervised: bool, settings: config.SimCSESettings, seed: int, label: str | None = None) -> Run:
    """One SimCSE run from the profile's masked-LM base, trained on a miss.

    A checkpoint is saved, and scored on STS-B dev, before the first update
    and after every step of ``settings.snapshots`` and the last; the run folder
    appears whole or not at all, with a manifest of its files' sha256.  Keyed by
    the base, the settings, the seed and the training data.  A cached run's record
    is checked now, each snapshot when :meth:`Run.checkpoint` gives it; a damaged
    one is logged with its path and trained again.  `label` names the run in the terminal's progress lines
    (default: its kind); it is not part of the key.
    """
    profile = config.get_profile(profile)
    base = mlm_checkpoint(profile)
    kind = "sup-simcse" if supervised else "unsup-simcse"
    examples = training_examples(profile, supervised, settings)
    pooling = MODELS[f"book-{kind}"].pooling
    settings = _with_last_step(settings)
    dev = dev_rows(profile)
    key = {"kind": kind, "version": train.TRAIN_VERSION, "base": base.name, "settings": asdict(settings),
           "seed": seed, "pooling": pooling,
           "dev_sha256": cache.fingerprint_texts([*dev["sentence1"], *dev["sentence2"], *dev["score"].astype(str)]),
           "data_sha256": cache.fingerprint_texts("\t".join(e) if supervised else e for e in examples)}
    target = cache.artefact_path("checkpoints", key, "")

    def retrain() -> Run:
        return simcse_run(profile, supervised, settings, seed, label)

    if cache.folder_intact(target, RUN_FILE, last_file=RUN_FILE):  # the record now, each snapshot when loaded
        try:
            return Run.load(target, retrain)
        except IntegrityError as err:  # a run from before manifests, its record damaged
            log.warning("%s; training it again", err)
            cache.discard(target)

    def fit(folder: Path) -> None:
        def snapshot(step, model, tokenizer):
            train.save_checkpoint(folder / f"step-{step:06d}", model, tokenizer,
                                  {"kind": kind, "step": step, "seed": seed, "base": str(base)}, pooling)
            return {"stsb_dev": evaluation.encoder_spearman(Encoder(model, tokenizer, pooling, kind), dev)}

        _, _, record = train.train_simcse(base, examples, settings, supervised, seed, pooling, snapshot=snapshot,
                                          label=label)
        (folder / RUN_FILE).write_text(json.dumps(record))

    cache.atomic_write(target, fit, folder=True)  # another run's, if it finished this one first
    return Run.load(target, retrain)


def _with_last_step(settings: config.SimCSESettings) -> config.SimCSESettings:
    """`settings` with its last step among the snapshots: a run always keeps its final model."""
    from dataclasses import replace

    if settings.steps in settings.snapshots:
        return settings
    return replace(settings, snapshots=tuple(settings.snapshots) + (settings.steps,))


def search(profile, supervised: bool) -> pd.DataFrame:
    """The dev search of the profile's SimCSE grid: one row per candidate, in grid order.

    Columns: the searched fields, ``best_step``, ``stsb_dev`` (the best
    snapshot's score), ``dev@<step>`` for every snapshot, and ``chosen`` (the
    argmax of ``stsb_dev``, the first of ties).  Runs use the first seed.
    """
    profile = config.get_profile(profile)
    finetune = profile.finetune
    grid = finetune.sup_search if supervised else finetune.unsup_search
    fields = [field for field, _ in grid]
    candidates = finetune.candidates(supervised)
    rows = []
    for number, settings in enumerate(candidates, 1):
        values = " ".join(f"{field}={setting_text(getattr(settings, field))}" for field in fields)
        label = _label(supervised, f"{number}/{len(candidates)} {values}".rstrip())
        run = simcse_run(profile, supervised, settings, finetune.seed_list(profile.seed)[0], label)
        scores = run.dev_scores()
        rows.append({**{field: getattr(settings, field) for field in fields}, "best_step": run.best_step,
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


def seed_runs(profile, supervised: bool) -> list[Run]:
    """The chosen recipe trained with every seed of the profile (the first is the search's own run)."""
    profile = config.get_profile(profile)
    settings = chosen(profile, supervised)
    return [simcse_run(profile, supervised, settings, seed, _label(supervised, f"seed {seed}"))
            for seed in profile.finetune.seed_list(profile.seed)]


def _label(supervised: bool, detail: str) -> str:
    """What the terminal's progress lines call a run: ``unsup-SimCSE 3/6 dropout=0.2 temperature=0.05``."""
    return f"{'sup' if supervised else 'unsup'}-SimCSE {detail}"


def setting_text(value) -> str:
    """A setting as a reader types it: 3e-05, not 0.00003 (search labels and tables)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def book_checkpoint(name: str, profile, seed: int | None = None) -> Path:
    """The checkpoint of the book's model `name` (``mlm``, ``unsup-simcse``, ``sup-simcse``).

    For SimCSE: the best dev snapshot of the chosen recipe's run with `seed`
    (default: the profile's seed, the run of the search).  Trained on a miss.
    """
    profile = config.get_profile(profile)
    if name not in BOOK_NAMES:
        raise ValueError(f"unknown book checkpoint {name!r}: choose one of {', '.join(BOOK_NAMES)}")
    if name == "mlm":
        return mlm_checkpoint(profile)
    supervised = name == "sup-simcse"
    seeds = profile.finetune.seed_list(profile.seed)
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise ValueError(f"seed {seed} is not one of the profile's contrastive seeds {seeds} "
                         "(FinetuneSettings.seeds)")
    return simcse_run(profile, supervised, chosen(profile, supervised), seed).checkpoint()
