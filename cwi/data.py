"""The book's data: STS benchmarks, NLI pairs and Wikipedia sentences.

Files are read from ``$CWI_DATA_DIR`` in the layout of the offline data pack::

    sts/{stsb,sickr,sts12,...,sts16}.tsv   split subset score sentence1 sentence2
    nli/nli.tsv                            source split label premise hypothesis
    wiki/*.txt                             one sentence per line

TSVs are tab-separated with one header line and no quoting (sentences contain
``"``).  Every file is checked as it is read: UTF-8, the header, the number of
fields of every row, no empty field, STS scores numbers from 0 to 5, NLI labels
among the three; a :class:`DataFormatError` names ``path:line``, what is wrong and
what to do, so nothing malformed is ever scored.  When a file is missing, it is fetched from the Hugging Face Hub with
``datasets`` and written in the same layout (``$CWI_DATA_DIR``, else
``~/.cache/cwi/data``); offline, a :class:`DataNotFoundError` names the file, the
variable and the Hub id.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import atomic_write

__all__ = [
    "normalise_sentence", "evaluation_sentences", "corpus_overlap", "triplet_overlap", "sample_sts_pairs",
    "STS_DATASETS",
    "WIKI_PACK_FILES",
    "DataNotFoundError",
    "DataFormatError",
    "data_dir",
    "load_sts",
    "load_nli",
    "load_wiki",
    "CORPORA",
    "load_corpus",
    "snli_triplets",
    "sample_sts_sentences",
    "sts_split",
    "choice_sentences",
]

log = logging.getLogger(__name__)

STS_COLUMNS = ["split", "subset", "score", "sentence1", "sentence2"]
NLI_COLUMNS = ["source", "split", "label", "premise", "hypothesis"]
STS_SCORES = (0.0, 5.0)  # gold similarity: 0-5 (SICK-R's 1-5 lies inside)
NLI_LABELS = ("entailment", "neutral", "contradiction")

# The four Wikipedia files of the offline pack, read in this order.
WIKI_PACK_FILES = (
    "wiki1m_prefix.txt",
    "wikitext103_valid_test.txt",
    "wikitext103_train_prefix.txt",
    "enwiki2015_wikiextractor_sample.txt",
)
# Online, SimCSE's own 1M-sentence training corpus replaces the pack.
WIKI_HUB_FILE = "wiki1m_for_simcse.txt"
WIKI_HUB_REPO = "princeton-nlp/datasets-for-simcse"


class DataNotFoundError(FileNotFoundError):
    """A data file is neither under ``$CWI_DATA_DIR`` nor fetchable from the Hub."""


class DataFormatError(ValueError):
    """A data file breaks the pack's layout; the message starts with ``path:line:``."""


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face dataset and how its rows map onto the pack's columns."""

    dataset_id: str
    splits: dict[str, str]  # Hub split -> split name written in our layout
    to_rows: Callable[[dict, str], dict]  # (Hub row, our split) -> row in our columns
    config: str | None = None


def _sts_row(subset: Callable[[dict], str] = lambda row: "all") -> Callable[[dict, str], dict]:
    def convert(row: dict, split: str) -> dict:
        return {
            "split": split,
            "subset": subset(row),
            "score": float(row["score"]),
            "sentence1": row["sentence1"],
            "sentence2": row["sentence2"],
        }

    return convert


# Hub twins of the pack's STS files.  The MTEB copies hold the same pairs and
# gold scores (0-5), but only STS-B keeps the genre/file/year of each pair, and
# MTEB's SICK-R is all 9,927 pairs as one split, written here as split "all".
STS_DATASETS: dict[str, HubSource] = {
    "stsb": HubSource(
        "mteb/stsbenchmark-sts",
        {"train": "train", "validation": "dev", "test": "test"},
        _sts_row(lambda row: f"{row['genre']}/{row['dataset']}/{row['year']}"),
    ),
    "sickr": HubSource("mteb/sickr-sts", {"test": "all"}, _sts_row(lambda row: "SICK")),
    **{
        f"sts{year}": HubSource(f"mteb/sts{year}-sts", {"test": "test"}, _sts_row())
        for year in (12, 13, 14, 15, 16)
    },
}

_SNLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}
NLI_SOURCE = HubSource(
    "stanfordnlp/snli",
    {"train": "train", "validation": "dev", "test": "test"},
    lambda row, split: {
        "source": "snli",
        "split": split,
        "label": _SNLI_LABELS.get(row["label"], ""),  # -1: no gold label, dropped below
        "premise": row["premise"],
        "hypothesis": row["hypothesis"],
    },
)


def data_dir() -> Path:
    """The data folder: ``$CWI_DATA_DIR``, else ``~/.cache/cwi/data``."""
    root = os.environ.get("CWI_DATA_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "cwi" / "data"


def _not_found(path: Path, hub_id: str, reason: str) -> DataNotFoundError:
    where = os.environ.get("CWI_DATA_DIR")
    setting = f"CWI_DATA_DIR={where}" if where else "CWI_DATA_DIR is not set"
    return DataNotFoundError(
        f"missing data file {path} ({setting}), and fetching it from the Hugging Face Hub "
        f"({hub_id}) failed: {reason}. Point CWI_DATA_DIR at a folder with the layout of "
        "the offline data pack (see its README.md), or run once with internet access."
    )


def _malformed(path: Path, line: int, what: str, more: int = 0) -> DataFormatError:
    others = f" ({more} more line{'s' if more > 1 else ''} like it)" if more else ""
    return DataFormatError(
        f"{path}:{line}: {what}{others}. Correct the file (the layout is in the data pack's README.md), "
        "or delete it to fetch it again from the Hugging Face Hub"
    )


def _text(path: Path) -> str:
    """The file as UTF-8 text (a byte-order mark dropped); bad bytes are named with their line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise _malformed(path, line, f"byte {raw[err.start]:#04x} is not UTF-8 ({err.reason}): save the file "
                                     "as UTF-8") from None


def _read_tsv(path: Path, columns: list[str]) -> tuple[pd.DataFrame, list[int]]:
    """The rows of a TSV of the layout, all fields strings, and each row's line number in the file.

    Every row must have every field, none empty; blank lines are skipped.
    """
    lines = _text(path).split("\n")
    if not "".join(lines).strip():
        raise _malformed(path, 1, f"the file is empty; expected the header line {chr(9).join(columns)!r} and rows")
    header = lines[0].rstrip("\r").split("\t")
    if header != columns:
        raise _malformed(path, 1, f"the header is {header}, expected {columns} (tab-separated): is CWI_DATA_DIR "
                                  "pointing at the right folder?")
    rows, numbers = [], []
    for number, line in enumerate(lines[1:], 2):
        if not line.rstrip("\r"):
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != len(columns):
            raise _malformed(path, number, f"{len(fields)} tab-separated fields, expected {len(columns)} "
                                           f"({', '.join(columns)})")
        rows.append(fields)
        numbers.append(number)
    if not rows:
        raise _malformed(path, 2, "no rows after the header")
    frame = pd.DataFrame(rows, columns=columns, dtype=str)
    empty = np.column_stack([frame[column].str.strip().eq("").to_numpy() for column in columns])
    _reject(path, numbers, empty.any(axis=1),
            lambda i: f"field {columns[int(np.argmax(empty[i]))]!r} is empty (a tab too many or too few?)")
    return frame, numbers


def _reject(path: Path, numbers: list[int], bad: np.ndarray, what) -> None:
    """Raise for the first row flagged in `bad`: `what(row)` says what is wrong with it."""
    flagged = np.flatnonzero(bad)
    if len(flagged):
        raise _malformed(path, numbers[flagged[0]], what(flagged[0]), len(flagged) - 1)


def _check_scores(frame: pd.DataFrame, path: Path, numbers: list[int]) -> pd.Series:
    """The STS gold scores as floats; a score that is no number or lies outside :data:`STS_SCORES` is refused."""
    scores = frame["score"].map(_number).astype(float)  # Python's float(), as before: keys hash these values
    low, high = STS_SCORES
    _reject(path, numbers, ~scores.between(low, high).to_numpy(),
            lambda i: f"score {frame['score'].iloc[i]!r} is not a number from {low:g} to {high:g}")
    return scores


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _write_tsv(frame: pd.DataFrame, path: Path) -> None:
    # The layout has no quoting: tabs and line breaks inside a field become spaces.
    frame = frame.copy()
    for column in frame.select_dtypes(exclude="number").columns:
        frame[column] = frame[column].str.replace(r"[\t\r\n]+", " ", regex=True)
    atomic_write(path, lambda tmp: frame.to_csv(tmp, sep="\t", index=False, quoting=csv.QUOTE_NONE))


def _fetch_hub(source: HubSource, path: Path, columns: list[str]) -> None:
    """Download `source` with ``datasets`` and write it to `path` in our layout."""
    try:
        import datasets

        rows = []
        for hub_split, split in source.splits.items():
            table = datasets.load_dataset(source.dataset_id, source.config, split=hub_split)
            rows.extend(source.to_rows(row, split) for row in table)
    except Exception as err:  # offline, unknown id, changed schema: all end the same way
        raise _not_found(path, source.dataset_id, f"{type(err).__name__}: {err}") from err
    frame = pd.DataFrame(rows, columns=columns)
    if "label" in frame:
        frame = frame[frame["label"] != ""]
    try:
        _write_tsv(frame, path)
    except OSError as err:
        raise OSError(
            f"fetched {source.dataset_id} but could not write {path}: {err}. "
            "Point CWI_DATA_DIR at a writable folder."
        ) from err


_tables: dict[tuple, tuple[pd.DataFrame, list[int]]] = {}


def _load_table(path: Path, source: HubSource, columns: list[str]) -> tuple[pd.DataFrame, list[int]]:
    """:func:`_read_tsv` of `path` (fetched first if missing), read and checked once per process while unchanged."""
    if not path.exists():
        log.warning("%s is missing; fetching %s from the Hugging Face Hub", path, source.dataset_id)
        _fetch_hub(source, path, columns)
    state = path.stat()
    identity = (str(path.resolve()), state.st_size, state.st_mtime_ns, tuple(columns))
    if identity not in _tables:
        _tables[identity] = _read_tsv(path, columns)
    frame, numbers = _tables[identity]
    return frame.copy(), numbers


def load_sts(name: str) -> pd.DataFrame:
    """Load an STS benchmark.

    Parameters
    ----------
    name
        One of ``stsb``, ``sickr``, ``sts12`` ... ``sts16``.

    Returns
    -------
    pandas.DataFrame
        Columns ``split``, ``subset``, ``score`` (float, 0-5; 1-5 for SICK-R),
        ``sentence1``, ``sentence2``, one row per sentence pair.

    Raises
    ------
    DataFormatError
        For a row the file's layout does not allow (``path:line``, what, what to do).
    """
    if name not in STS_DATASETS:
        raise ValueError(f"unknown STS dataset {name!r}: choose one of {', '.join(STS_DATASETS)}")
    path = data_dir() / "sts" / f"{name}.tsv"
    frame, numbers = _load_table(path, STS_DATASETS[name], STS_COLUMNS)
    frame["score"] = _check_scores(frame, path, numbers)
    return frame


def load_nli() -> pd.DataFrame:
    """Load the labelled NLI pairs (for supervised SimCSE).

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``split``, ``label`` (entailment, neutral,
        contradiction), ``premise``, ``hypothesis``.  The offline pack holds SNLI
        dev/test and SICK; fetched from the Hub it is SNLI train/dev/test.

    Raises
    ------
    DataFormatError
        For a row the file's layout does not allow (``path:line``, what, what to do).
    """
    path = data_dir() / "nli" / "nli.tsv"
    frame, numbers = _load_table(path, NLI_SOURCE, NLI_COLUMNS)
    _reject(path, numbers, ~frame["label"].isin(NLI_LABELS).to_numpy(),
            lambda i: f"label {frame['label'].iloc[i]!r} is not one of {', '.join(NLI_LABELS)}")
    return frame


def _wiki_files() -> list[Path]:
    folder = data_dir() / "wiki"
    pack = [folder / name for name in WIKI_PACK_FILES]
    if all(path.exists() for path in pack):
        return pack
    hub_file = folder / WIKI_HUB_FILE
    if not hub_file.exists():
        missing = [path for path in pack if not path.exists()]
        log.warning("%s lacks %s; fetching SimCSE's corpus %s from the Hugging Face Hub (%s)", folder,
                    ", ".join(p.name for p in missing), WIKI_HUB_FILE, WIKI_HUB_REPO)
        try:
            import datasets

            table = datasets.load_dataset(
                "text", data_files=f"hf://datasets/{WIKI_HUB_REPO}/{WIKI_HUB_FILE}", split="train"
            )
            lines = [line.strip() for line in table["text"]]
        except Exception as err:
            raise _not_found(missing[0], WIKI_HUB_REPO, f"{type(err).__name__}: {err}") from err
        text = "\n".join(line for line in lines if line) + "\n"
        atomic_write(hub_file, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return [hub_file]


def load_wiki(limit: int | None = None) -> list[str]:
    """Wikipedia sentences, one string each, in file order.

    Reads the four files of the offline pack (:data:`WIKI_PACK_FILES`, 910,612
    sentences); where they are absent, SimCSE's ``wiki1m_for_simcse.txt`` (fetched
    from the Hub once).  Empty lines are skipped; an empty file, one of blank lines only, or a line that is not UTF-8 raises
    :class:`DataFormatError` with its ``path:line``.

    Parameters
    ----------
    limit
        Return at most this many sentences (the first ones); ``None`` for all.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, got {limit}")
    sentences: list[str] = []
    for path in _wiki_files():
        if path.stat().st_size == 0:
            raise _malformed(path, 1, "the file is empty; expected one sentence per line")
        before = len(sentences)
        try:
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    if limit is not None and len(sentences) >= limit:
                        return sentences
                    line = line.strip()
                    if line:
                        sentences.append(line)
        except UnicodeDecodeError as err:
            number, byte = _first_bad_line(path)
            raise _malformed(path, number, f"byte {byte:#04x} is not UTF-8 ({err.reason}): save the file as "
                                           "UTF-8") from None
        if len(sentences) == before:  # every line blank: its share of the corpus would silently come from the others
            raise _malformed(path, 1, "the file has no sentence, only blank lines; expected one sentence per line")
    return sentences


def _first_bad_line(path: Path) -> tuple[int, int]:
    """The number of the first line of `path` that is not UTF-8, and its first bad byte (the slow path of an error)."""
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                return number, line[err.start]
    return 1, 0


def snli_triplets(exclude: set[str] | frozenset[str] = frozenset()) -> list[tuple[str, str, str]]:
    """(premise, entailed hypothesis, contradicting hypothesis) from the SNLI rows of :func:`load_nli`.

    Rows are grouped by premise (sorted), and the i-th entailed hypothesis of a
    premise goes with its i-th contradicting one.  SICK rows are left out: they
    are the SICK-R evaluation pairs.  A triplet with a sentence in `exclude`
    (compared after :func:`normalise_sentence`; :func:`evaluation_sentences`) is
    dropped whole.
    """
    nli = load_nli()
    snli = nli[(nli["source"] == "snli") & nli["label"].isin(["entailment", "contradiction"])]
    # The i-th hypothesis of each label within its premise, in file order; the inner join keeps min(#e, #c) per premise.
    snli = snli.assign(rank=snli.groupby(["premise", "label"], sort=False).cumcount())
    entailed, contradicting = (snli.loc[snli["label"] == label, ["premise", "rank", "hypothesis"]]
                               for label in ("entailment", "contradiction"))
    both = entailed.merge(contradicting, on=["premise", "rank"], suffixes=("_e", "_c")).sort_values(
        ["premise", "rank"], kind="stable")
    triplets = list(zip(both["premise"].tolist(), both["hypothesis_e"].tolist(), both["hypothesis_c"].tolist()))
    if exclude:
        triplets = [t for t in triplets if not any(normalise_sentence(s) in exclude for s in t)]
    return triplets


def normalise_sentence(text: str) -> str:
    """A sentence as the overlap checks compare it: lower-cased, punctuation as spaces, whitespace collapsed.

    So "A man is sitting." and "a man is sitting", or "curly-haired" and "curly haired", are one sentence.
    """
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _dataset_sentences(name: str) -> set[str]:
    """Every sentence of the STS dataset `name` (both sides, all splits), normalised."""
    frame = load_sts(name)
    return {normalise_sentence(s) for s in pd.concat([frame["sentence1"], frame["sentence2"]])}


@lru_cache(maxsize=4)
def _evaluation_sentences(folder: str) -> frozenset[str]:
    return frozenset().union(*(_dataset_sentences(name) for name in STS_DATASETS))


def evaluation_sentences() -> frozenset[str]:
    """Every sentence of every STS dataset (all splits), normalised: what no training example may contain.

    Read once per data folder and process.
    """
    return _evaluation_sentences(str(data_dir()))


def corpus_overlap(sentences) -> list[str]:
    """The sentences of a corpus that are also STS sentences (:func:`evaluation_sentences`), in corpus order."""
    evaluated = evaluation_sentences()
    return [s for s in sentences if normalise_sentence(s) in evaluated]


def triplet_overlap() -> pd.DataFrame:
    """SNLI triplets that share a sentence with each STS dataset: what :func:`snli_triplets` drops.

    Returns one row per STS dataset (``triplets`` sharing a sentence with it) and
    a row ``"any"`` (the triplets dropped), with ``of`` the number of triplets.
    """
    triplets = snli_triplets()
    normalised = [{normalise_sentence(s) for s in t} for t in triplets]
    sets = {name: _dataset_sentences(name) for name in STS_DATASETS} | {"any": evaluation_sentences()}
    rows = {name: sum(bool(t & sentences) for t in normalised) for name, sentences in sets.items()}
    return pd.DataFrame({"triplets": rows}).assign(of=len(triplets))


def sts_split(name: str, split: str) -> pd.DataFrame:
    """The `split` rows of STS dataset `name` (:func:`load_sts`), in file order.

    For the SICK-R copy fetched from the Hub, whose one split is named "all",
    every row.

    Raises
    ------
    ValueError
        If the dataset has no such split (the message lists those it has).
    """
    frame = load_sts(name)
    splits = set(frame["split"])
    if split not in splits and splits != {"all"}:
        raise ValueError(f"{name} has no split {split!r}; it has {sorted(splits)}")
    return frame[frame["split"] == split] if split in splits else frame


# The split on which the book makes its choices (the masked-LM base, the SimCSE recipe, SIF's a, ...).
CHOICE_DATASET, CHOICE_SPLIT = "stsb", "dev"


@lru_cache(maxsize=4)
def _choice_sentences(folder: str) -> frozenset[str]:
    frame = sts_split(CHOICE_DATASET, CHOICE_SPLIT)
    return frozenset(normalise_sentence(s) for s in pd.concat([frame["sentence1"], frame["sentence2"]]))


def choice_sentences() -> frozenset[str]:
    """The normalised sentences of STS-B dev, on which the book makes its choices: never attributed.

    Read once per data folder and process.
    """
    return _choice_sentences(str(data_dir()))


def sample_sts_sentences(dataset: str, n: int | None, seed: int = 0, split: str = "test") -> list[str]:
    """`n` distinct sentences of the `split` pairs of an STS dataset (both sides of every pair), drawn with `seed`.

    The test split by default: the sentences whose similarity the book scores.
    A sentence of STS-B dev, where the book makes its choices
    (:func:`choice_sentences`), is never drawn, even where another dataset's test
    split holds it too (STS-B was assembled from the STS 2012-2017 sets).  The
    SICK-R copy fetched from the Hub has one split, "all" (:func:`sts_split`),
    so there every pair is a candidate.  Duplicates are removed before drawing;
    ``n=None`` or more than there are returns all of them.  Samples are nested:
    the `n` sentences are among the ``n + k`` of the same seed.
    """
    frame = sts_split(dataset, split)
    unique = pd.unique(pd.concat([frame["sentence1"], frame["sentence2"]]).str.strip())
    chosen_on = choice_sentences()
    unique = [s for s in unique if s and normalise_sentence(s) not in chosen_on]
    if n is None or n >= len(unique):
        return list(unique)
    chosen = np.random.default_rng(seed).permutation(len(unique))[:n]  # a prefix: nested samples
    return [unique[i] for i in sorted(chosen)]


def sample_sts_pairs(dataset: str, n: int | None, seed: int = 0, split: str = "test") -> pd.DataFrame:
    """`n` sentence pairs of the `split` rows of an STS dataset, with their gold scores, drawn with `seed`.

    Pairs, not sentences: the Similarity chapter attributes both sides of each.
    A pair is a candidate unless a side is a sentence of STS-B dev, where the
    book makes its choices (:func:`choice_sentences`), or has no word of
    :func:`cwi.stats.tokenize` (nothing to attribute); a pair repeated in the
    file counts once.  Samples are nested (a seeded permutation's prefix, in
    file order): the `n` pairs are among the ``n + k`` of the same seed.

    Returns
    -------
    pandas.DataFrame
        ``pair`` (the row's position in the split, a stable name), ``sentence1``,
        ``sentence2`` (stripped) and ``score`` (gold).
    """
    from .stats import tokenize  # the words the statistics count

    frame = sts_split(dataset, split).reset_index(drop=True)
    frame = pd.DataFrame({"pair": np.arange(len(frame)), "sentence1": frame["sentence1"].str.strip(),
                          "sentence2": frame["sentence2"].str.strip(), "score": frame["score"].astype(float)})
    chosen_on = choice_sentences()
    usable = [bool(tokenize(a)) and bool(tokenize(b)) and normalise_sentence(a) not in chosen_on
              and normalise_sentence(b) not in chosen_on for a, b in zip(frame["sentence1"], frame["sentence2"])]
    frame = frame[usable].drop_duplicates(["sentence1", "sentence2"]).reset_index(drop=True)
    if n is not None and n < len(frame):
        chosen = np.random.default_rng(seed).permutation(len(frame))[:n]  # a prefix: nested samples
        frame = frame.iloc[np.sort(chosen)].reset_index(drop=True)
    return frame


# Sentence corpora by name: statistics, masked-LM, unsupervised SimCSE and the Theory
# chapter's check all read the profile's corpus (``Profile.corpus``) through this table.
CORPORA: dict[str, Callable[[int | None], list[str]]] = {"wiki": load_wiki}


def load_corpus(name: str, limit: int | None = None) -> list[str]:
    """The first `limit` sentences (``None``: all) of the corpus called `name` in :data:`CORPORA`."""
    try:
        loader = CORPORA[name]
    except KeyError:
        raise ValueError(f"unknown corpus {name!r}: choose one of {', '.join(CORPORA)}, "
                         "or add a loader to cwi.data.CORPORA") from None
    return loader(limit)
