"""The artefact store: results keyed by everything that produced them.

An artefact is addressed by a *kind* (``"word_statistics"``) and a *key*: a
JSON-serialisable dict of every input that determines it (settings, a fingerprint
of the data, the algorithm's version).  The key is hashed into the file name and
written beside the artefact, so a cache can be inspected by hand.  Writes go to a
temporary file that is renamed into place, so an interrupted run never leaves a
half-written artefact behind.

The store lives in ``$CWI_CACHE_DIR``, else ``~/.cache/cwi``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pandas as pd

__all__ = [
    "cache_dir", "key_hash", "fingerprint_texts", "artefact_path", "cached", "cached_frame", "atomic_write",
]

T = TypeVar("T")
log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Root folder of the artefact store (``$CWI_CACHE_DIR`` or ``~/.cache/cwi``)."""
    root = os.environ.get("CWI_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "cwi"


def key_hash(key: dict) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable key."""
    try:
        text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    except TypeError as err:
        raise TypeError(f"cache key must be JSON-serialisable, got {key!r}: {err}") from None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint_texts(texts: Iterable[str]) -> str:
    """sha256 of a sequence of strings, order included (a corpus's identity)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")  # separator: ["ab"] and ["a", "b"] differ
    return digest.hexdigest()


def artefact_path(kind: str, key: dict, suffix: str) -> Path:
    """Where the artefact of `kind` with `key` lives (it may not exist yet)."""
    return cache_dir() / kind / f"{key_hash(key)}{suffix}"


def atomic_write(path: Path, write: Callable[[Path], None], folder: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file (or, with `folder`, folder) beside `path`, then rename it to `path`.

    The rename is atomic on POSIX, so readers see the old artefact or the new
    one, never a partial one; on error the temporary file or folder is removed.
    A folder replaces only a missing or empty `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.")
    else:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    try:
        write(Path(tmp))
        if folder:
            Path(tmp).chmod(0o755)  # mkdtemp makes it private; an artefact is readable like any file
        os.replace(tmp, path)
    except BaseException:
        if folder:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def cached(kind: str, key: dict, suffix: str, compute: Callable[[], T], save: Callable[[T, Path], None],
           load: Callable[[Path], T]) -> T:
    """Return the artefact of `kind` and `key`, computing and storing it on a miss.

    ``save(value, path)`` writes an artefact and ``load(path)`` reads it back; the
    key is written as JSON beside it.  An unreadable stored artefact is reported
    and recomputed, never returned.
    """
    path = artefact_path(kind, key, suffix)
    if path.exists():
        try:
            return load(path)
        except Exception as err:  # a foreign or damaged file: say so, recompute
            log.warning("ignoring unreadable artefact %s (%s); recomputing", path, err)
    value = compute()
    atomic_write(path, lambda tmp: save(value, tmp))
    atomic_write(
        path.with_suffix(".json"),
        lambda tmp: tmp.write_text(json.dumps({"kind": kind, "key": key}, indent=2, sort_keys=True)),
    )
    return value


def cached_frame(kind: str, key: dict, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """Return the cached DataFrame of `kind` and `key`, computing and storing it on a miss.

    The frame is stored as Parquet (index and ``DataFrame.attrs`` included), its
    key as JSON beside it; ``frame.attrs["cache_path"]`` tells where.
    """
    frame = cached(kind, key, ".parquet", compute, lambda value, tmp: value.to_parquet(tmp), pd.read_parquet)
    frame.attrs["cache_path"] = str(artefact_path(kind, key, ".parquet"))  # where it lives, not part of it
    return frame
