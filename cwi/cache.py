"""The artefact store: results keyed by everything that produced them, written whole and checked when read.

An artefact is addressed by a *kind* (``"word_statistics"``) and a *key*: a
JSON-serialisable dict of every input that determines it (settings, a fingerprint
of the data, the algorithm's version).  The key is hashed into the file name and
written beside the artefact, so a cache can be inspected by hand.

* **Whole or absent.**  Writes go to a staging file or folder beside the target,
  named ``.NAME.stage-HOST-PID-XXXX``, renamed into place when complete: an
  interrupted run never leaves a half-written artefact, and :func:`sweep_staging`
  removes what a killed run left behind.
* **First writer wins.**  Two runs that compute the same artefact at once both
  finish: the second to finish finds the target complete, discards its own copy
  and uses the target (a key fixes the result, so both are the same).
* **Checked when read.**  The sha256 of a file artefact is recorded in its key
  JSON, and a folder artefact (a checkpoint) carries a manifest of its files
  (:data:`cwi.integrity.MANIFEST`), written inside its staging folder.  A read
  checks them (each file hashed once per process, :func:`cwi.integrity.file_sha256`);
  a mismatch is logged with the path and the artefact is computed again, never
  served.  An artefact stored before checksums were kept is adopted: its checksum
  is recorded on its first read, and checked from then on.

The store lives in ``$CWI_CACHE_DIR``, else ``~/.cache/cwi``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pandas as pd

from . import integrity

__all__ = [
    "cache_dir", "key_hash", "fingerprint_texts", "artefact_path", "cached", "cached_frame", "atomic_write",
    "folder_intact", "discard", "sweep_staging", "process_running", "STALE_AFTER",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

# Staging left by a process this machine cannot check (another host's, or cwi's before it named the
# writer) is removed once untouched this long: longer than any run writes one artefact.
STALE_AFTER = 6 * 3600.0
_STAGED = re.compile(r"^\..+\.stage-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+(\.tmp)?$")
_LEGACY_STAGED = re.compile(r"^\..+\.[a-z0-9_]{8}(\.tmp)?$")  # tempfile's names, before the writer was named


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


# --- writing -------------------------------------------------------------------------


def _staging_prefix(path: Path) -> str:
    """Staging names say who writes them, so a sweep can tell a dead writer's from a live one's."""
    return f".{path.name}.stage-{socket.gethostname()}-{os.getpid()}-"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _manifest_text(folder: Path) -> str:
    return json.dumps({"version": 1, "files": integrity.digests(folder)}, indent=1, sort_keys=True)


def _publish(tmp: Path, path: Path, folder: bool, keep_existing: bool) -> bool:
    """Rename the staged `tmp` to `path`; ``False`` (nothing renamed) when a kept target is already there."""
    if folder:
        try:
            os.replace(tmp, path)  # onto a missing or empty folder only
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST) and path.is_dir():
                return False
            raise
        return True
    if not keep_existing:
        os.replace(tmp, path)
        return True
    try:
        os.link(tmp, path)  # atomic, and never onto an existing file
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: the check and the rename are two steps there
        if path.exists():
            return False
        os.replace(tmp, path)
        return True
    tmp.unlink()
    return True


def _stage(path: Path, write: Callable[[Path], None], folder: bool, keep_existing: bool) -> bool:
    """:func:`atomic_write`, saying whether this call's copy is the one at `path` now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_staging_prefix(path)))
    else:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=_staging_prefix(path), suffix=".tmp")
        os.close(handle)
        tmp = Path(name)
    try:
        write(tmp)
        if folder:
            (tmp / integrity.MANIFEST).write_text(_manifest_text(tmp))  # inside the staging: it appears with them
            tmp.chmod(0o755)  # mkdtemp makes it private; an artefact is readable like any file
        published = _publish(tmp, path, folder, keep_existing)
    except BaseException:
        _remove(tmp)
        raise
    if not published:
        log.info("%s was completed by another run first: using it, and discarding this run's copy", path)
        _remove(tmp)
    return published


def atomic_write(path: Path, write: Callable[[Path], None], folder: bool = False,
                 keep_existing: bool = False) -> Path:
    """Call ``write(tmp)`` on a staging file (or, with `folder`, folder) beside `path`, then rename it to `path`.

    The rename is atomic on POSIX, so readers see the old artefact or the new
    one, never a partial one; on error the staging copy is removed.  A folder
    gets a manifest of its files' sha256 (:data:`cwi.integrity.MANIFEST`) before
    the rename, and never replaces a complete folder: if `path` is one already
    (another run finished first), the staging copy is discarded and `path` kept.
    With `keep_existing`, a file is kept the same way; otherwise it is replaced.
    """
    _stage(path, write, folder, keep_existing)
    return path


def discard(path: Path) -> None:
    """Remove a damaged artefact: moved aside first (one rename, atomic for readers), then deleted."""
    aside = path.with_name(f"{_staging_prefix(path)}{os.urandom(4).hex()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return  # another run removed it first
    _remove(aside)


def sweep_staging(root: Path | None = None, stale_after: float = STALE_AFTER) -> list[Path]:
    """Remove the staging files and folders that killed runs left in the cache; return what was removed.

    A staging copy of a process of this machine that is no longer running is
    removed; one of another machine, or named the old way (before writers were
    named), once untouched for `stale_after` seconds; a younger one is reported
    (logged with its path), since a run may still be writing it.
    """
    root = Path(root) if root is not None else cache_dir()
    if not root.is_dir():
        return []
    removed, host, now = [], socket.gethostname(), time.time()
    for entry in [*root.glob("*/.*"), *root.glob("*/*/.*")]:
        named = _STAGED.match(entry.name)
        if named and named["host"] == host:
            stale = not process_running(int(named["pid"]))
        elif named or _LEGACY_STAGED.match(entry.name):
            stale = now - _touched(entry) > stale_after
            if not stale:
                log.warning("%s looks like a run's unfinished write; it is left alone while it may be in use: "
                            "delete it if no run is writing to %s", entry, root)
        else:
            continue
        if stale:
            _remove(entry)
            removed.append(entry)
    if removed:
        log.info("removed %d unfinished writes of runs that ended: %s", len(removed), ", ".join(map(str, removed)))
    return removed


def process_running(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _touched(entry: Path) -> float:
    """When `entry` (or, for a folder, anything directly in it) last changed."""
    try:
        times = [entry.stat().st_mtime] + ([child.stat().st_mtime for child in entry.iterdir()]
                                          if entry.is_dir() else [])
    except OSError:
        return time.time()
    return max(times)


# --- reading -------------------------------------------------------------------------


def folder_intact(folder: Path, part: str | None = None, last_file: str | None = None) -> bool:
    """Whether the folder artefact `folder` is whole; a damaged one is logged with its path and removed.

    Its files (only those under `part`, a path relative to `folder`, when given)
    are checked against its manifest.  A folder without a manifest, written before
    checksums were kept, is adopted: its manifest is written now (atomically),
    once, with a log line, provided it holds `last_file` (what its writer wrote
    last).

    Returns
    -------
    bool
        ``True`` when it is whole; ``False`` when it is missing or was damaged
        (and is now removed): compute it again.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return False
    try:
        if integrity.verify(folder, part, remedy="the cached artefact is damaged; computing it again"):
            return True
        if last_file is not None and not (folder / last_file).is_file():
            raise integrity.IntegrityError(f"{folder} lacks {last_file}, so it was never completed; "
                                           "computing it again")
    except integrity.IntegrityError as err:
        log.warning("%s", err)
        discard(folder)
        return False
    text = _manifest_text(folder)
    atomic_write(folder / integrity.MANIFEST, lambda tmp: tmp.write_text(text))
    log.info("%s was stored before checksums were kept: recorded the sha256 of its %d files, checked from now on",
             folder, len(json.loads(text)["files"]))
    return True


def _recorded_sha256(record: Path) -> str | None:
    """The sha256 the key JSON `record` holds; ``None`` for a missing record or one from before checksums."""
    if not record.exists():
        return None
    try:
        stored = json.loads(record.read_text(encoding="utf-8"))
        digest = stored.get("sha256")
        if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", str(digest)):
            raise ValueError(f"sha256 {digest!r} is not 64 hex digits")
        return digest
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as err:
        raise integrity.IntegrityError(f"the key record {record} is unreadable ({type(err).__name__}: {err}), "
                                       "so its artefact cannot be checked; computing it again") from None


def _write_record(record: Path, kind: str, key: dict, digest: str) -> None:
    text = json.dumps({"kind": kind, "key": key, "sha256": digest}, indent=2, sort_keys=True)
    atomic_write(record, lambda tmp: tmp.write_text(text))


def cached(kind: str, key: dict, suffix: str, compute: Callable[[], T], save: Callable[[T, Path], None],
           load: Callable[[Path], T]) -> T:
    """Return the artefact of `kind` and `key`, computing and storing it on a miss.

    ``save(value, path)`` writes an artefact and ``load(path)`` reads it back; the
    key is written as JSON beside it with the artefact's sha256.  A stored
    artefact whose bytes do not match that sha256, or that cannot be read, is
    reported with its path and computed again, never returned.  One stored before
    checksums were kept gets its sha256 recorded on this first read.  If another
    run stores the same artefact first, its copy is the one kept and returned.
    """
    path = artefact_path(kind, key, suffix)
    record = path.with_suffix(".json")
    if path.exists():
        try:
            recorded = _recorded_sha256(record)
            if recorded is not None and integrity.file_sha256(path) != recorded:
                raise integrity.IntegrityError(f"{path} does not match the sha256 recorded in {record}; "
                                               "computing it again")
            value = load(path)
            if recorded is None:
                _write_record(record, kind, key, integrity.file_sha256(path))
                log.info("%s was stored before checksums were kept: recorded its sha256 in %s", path, record)
            return value
        except integrity.IntegrityError as err:
            log.warning("%s", err)
        except Exception as err:  # a foreign or damaged file: say so, recompute
            log.warning("ignoring unreadable artefact %s (%s); recomputing", path, err)
        discard(path)
    value = compute()
    if not _stage(path, lambda tmp: save(value, tmp), folder=False, keep_existing=True):
        try:
            value = load(path)  # the first writer's copy: what every later read returns
        except Exception as err:
            log.warning("could not read %s, which another run stored (%s); keeping this run's result", path, err)
    _write_record(record, kind, key, integrity.file_sha256(path))
    return value


def cached_frame(kind: str, key: dict, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """Return the cached DataFrame of `kind` and `key`, computing and storing it on a miss.

    The frame is stored as Parquet (index and ``DataFrame.attrs`` included), its
    key as JSON beside it; ``frame.attrs["cache_path"]`` tells where.
    """
    frame = cached(kind, key, ".parquet", compute, lambda value, tmp: value.to_parquet(tmp), pd.read_parquet)
    frame.attrs["cache_path"] = str(artefact_path(kind, key, ".parquet"))  # where it lives, not part of it
    return frame
