"""The book's run profiles: one frozen settings object per profile.

Every size, seed and corpus choice a chapter uses is read from a profile, never
typed into a chapter, so that ``smoke`` (tests and CI), ``default`` (the offline
main job) and ``paper`` (the paper's scale, models from the Hugging Face Hub) run
the same code.  Chapters receive the profile *name* as a papermill parameter and
call :func:`get_profile`.

Later chapters add their own settings block (for example ``finetune`` or
``attribution``) beside :class:`StatsSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StatsSettings", "Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class StatsSettings:
    """How the word statistics of the Statistics chapter are computed.

    Attributes
    ----------
    corpus_limit
        Number of Wikipedia sentences read by :func:`cwi.data.load_wiki`, in file
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
    """

    corpus_limit: int | None
    min_count: int = 10
    correction: str | None = "shuffle"
    n_shuffles: int = 1


@dataclass(frozen=True)
class Profile:
    """All settings of one run of the book.

    Attributes
    ----------
    name
        ``"smoke"``, ``"default"`` or ``"paper"``.
    seed
        Master seed; every random draw of the book derives from it.
    stats
        Settings of the word statistics.
    """

    name: str
    seed: int
    stats: StatsSettings


PROFILES: dict[str, Profile] = {
    # Tiny sizes: every chapter end to end in seconds, for tests and CI.
    "smoke": Profile(
        name="smoke",
        seed=0,
        stats=StatsSettings(corpus_limit=20_000, min_count=5),
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
    ),
}


def get_profile(name: str | Profile) -> Profile:
    """Return the profile called `name` (a :class:`Profile` passes through).

    Raises
    ------
    ValueError
        If `name` is not one of :data:`PROFILES`.
    """
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(
            f"unknown profile {name!r}: choose one of {known} "
            "(smoke for tests, default for the offline main job, paper for the Hub models)"
        ) from None
