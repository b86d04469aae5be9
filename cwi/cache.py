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
  a mismatch is reported with the path (logged, and one line in the terminal of
  ``python -m cwi``) and the artefact is computed again, never served.
* **A missing checksum is damage.**  A cache that has kept checksums since it
  began carries :data:`MARKER` at its root (:func:`ready` writes it); there an
  artefact without its recorded sha256 (the key JSON deleted, a folder's manifest
  removed) cannot be checked, so it is computed again like a damaged one.  Only
  in a cache without the marker, one that predates checksums, is such an
  artefact adopted: its checksum is recorded on its first read, or for all of
  them at once by :func:`adopt` (``python -m cwi cache adopt``), which then marks the cache.
* **Writable first.**  :func:`ready` checks, before any work, that the cache and
  each folder in it can be written (:class:`CacheNotWritable` names the folder).
* **Shared permissions.**  Artefacts get the permissions of a file (0666) or
  folder (0777) created the ordinary way, less the umask (:func:`permissions`):
  with ``umask 002`` a group can share one cache.

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
from .progress import announce

__all__ = [
    "cache_dir", "key_hash", "fingerprint_texts", "artefact_path", "cached", "cached_frame", "atomic_write",
    "export", "folder_intact", "discard", "sweep_staging", "process_running", "report_damage", "ready", "adopt",
    "checksummed", "permissions", "CacheNotWritable", "MARKER", "STALE_AFTER",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

# Staging left by a process this machine cannot check (another host's, or cwi's before it named the
# writer) is removed once untouched this long: longer than any run writes one artefact.
STALE_AFTER = 6 * 3600.0
_STAGED = re.compile(r"^\..+\.stage-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+(\.tmp)?$")
_LEGACY_STAGED = re.compile(r"^\..+\.[a-z0-9_]{8}(\.tmp)?$")  # tempfile's names, before the writer was named
# At a cache's root: every artefact in it has had its checksum recorded when written (see the module's docstring).
MARKER = "cwi_cache.json"


class CacheNotWritable(OSError):
    """The cache folder, or a folder in it, cannot be created or written."""


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


def _where() -> str:
    """Where :func:`cache_dir` comes from, for error messages."""
    if os.environ.get("CWI_CACHE_DIR"):
        return "set by CWI_CACHE_DIR"
    return "the default, as CWI_CACHE_DIR is not set"


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (changing it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def permissions(folder: bool = False) -> int:
    """The mode an artefact gets: that of a file (0666) or folder (0777) created the ordinary way, less the umask.

    Staging copies are created private (``tempfile``); this is set before they
    are renamed into place, so files and folders of a cache agree, and a group
    shares a cache written with ``umask 002``.
    """
    return (0o777 if folder else 0o666) & ~_umask()


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
        tmp.chmod(permissions(folder))  # tempfile makes it private; an artefact is shared like any file
        published = _publish(tmp, path, folder, keep_existing)
    except BaseException:
        _remove(tmp)
        raise
    if not published:
        log.info("%s was completed by another run first: using it, and discarding this run's copy", path)
        _remove(tmp)
    return published


def _stage_hashed(path: Path, write: Callable[[Path], None], keep_existing: bool) -> str | None:
    """Stage a file artefact as :func:`_stage` does, hashing it before it appears: its sha256, or ``None`` if kept out.

    Hashed while still staged, the record can follow the rename at once (a reader
    that finds the artefact waits only for that write).
    """
    staged: dict[str, str] = {}

    def write_and_hash(tmp: Path) -> None:
        write(tmp)
        staged["sha256"] = integrity.file_sha256(tmp)

    return staged["sha256"] if _stage(path, write_and_hash, folder=False, keep_existing=keep_existing) else None


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


def report_damage(message: str) -> None:
    """A damaged artefact, about to be computed again: logged, and one line in the runner's terminal."""
    log.warning("%s", message)
    announce(f"cache: {message}")


def checksummed(path: Path) -> bool:
    """Whether `path` (an artefact, or a cache's root) lies in a cache marked as checksummed from its start."""
    path = Path(path)
    return any((folder / MARKER).is_file() for folder in [path, *list(path.parents)[:2]])


def folder_intact(folder: Path, part: str | None = None, last_file: str | None = None) -> bool:
    """Whether the folder artefact `folder` is whole; a damaged one is reported with its path and removed.

    Its files (only those under `part`, a path relative to `folder`, when given)
    are checked against its manifest.  A folder without a manifest is damage in a
    checksummed cache (:func:`checksummed`); in a cache from before checksums it
    is adopted: its manifest is written now (atomically), once, with a log line,
    provided it holds `last_file` (what its writer wrote last).

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
        if checksummed(folder):
            raise integrity.IntegrityError(f"{folder} has lost its manifest {integrity.MANIFEST}, which this cache "
                                           f"keeps for every folder ({MARKER}), so it cannot be checked; "
                                           "computing it again")
        if last_file is not None and not (folder / last_file).is_file():
            raise integrity.IntegrityError(f"{folder} lacks {last_file}, so it was never completed; "
                                           "computing it again")
    except integrity.IntegrityError as err:
        report_damage(str(err))
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


RECORD_WAIT = 30.0  # seconds: a writer records an artefact's sha256 right after renaming it into place


def _awaited_record(path: Path, record: Path) -> str | None:
    """The sha256 of an artefact another run stored a moment ago and is recording now (``None``: none comes).

    A writer renames the artefact into place, then writes its record: a reader
    in between sees a new file without one, which is not damage.
    """
    deadline = time.monotonic() + RECORD_WAIT  # this clock, not the file server's, bounds the wait
    while True:
        recorded = _recorded_sha256(record)
        try:
            young = abs(time.time() - path.stat().st_mtime) < RECORD_WAIT
        except OSError:
            return recorded
        if recorded is not None or not young or time.monotonic() > deadline:
            return recorded
        time.sleep(0.2)


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
            marked = recorded is None and checksummed(path)
            if marked:
                recorded = _awaited_record(path, record)  # another run may have just stored it
            if recorded is None and marked:
                raise integrity.IntegrityError(f"{path} has no sha256 recorded in {record}, which this cache keeps "
                                               f"for every artefact ({MARKER}), so it cannot be checked; "
                                               "computing it again")
            if recorded is not None and integrity.file_sha256(path) != recorded:
                raise integrity.IntegrityError(f"{path} does not match the sha256 recorded in {record}; "
                                               "computing it again")
            value = load(path)
            if recorded is None:
                _write_record(record, kind, key, integrity.file_sha256(path))
                log.info("%s was stored before checksums were kept: recorded its sha256 in %s", path, record)
            return value
        except integrity.IntegrityError as err:
            report_damage(str(err))
        except Exception as err:  # a foreign or damaged file: say so, recompute
            report_damage(f"{path} cannot be read ({type(err).__name__}: {err}); computing it again")
        discard(path)
        discard(record)  # its sha256 is the damaged one's: a reader must not check the new artefact against it
    value = compute()
    digest = _stage_hashed(path, lambda tmp: save(value, tmp), keep_existing=True)
    if digest is not None:
        _write_record(record, kind, key, digest)
        return value
    try:
        value = load(path)  # the first writer's copy: what every later read returns
    except Exception as err:
        log.warning("could not read %s, which another run stored (%s); keeping this run's result", path, err)
    _write_record(record, kind, key, integrity.file_sha256(path))
    return value


def export(kind: str, key: dict, suffix: str, write: Callable[[Path], None]) -> Path:
    """Write a file the book leaves for its readers (never read back) as an artefact: atomically, with its record.

    ``write(tmp)`` writes it; its key and sha256 go in the JSON beside it, as
    for every artefact, so a checksummed cache holds nothing unchecked.
    """
    path = artefact_path(kind, key, suffix)
    _write_record(path.with_suffix(".json"), kind, key, _stage_hashed(path, write, keep_existing=False))
    return path


# --- the cache as a whole ------------------------------------------------------------


def _unchecked(root: Path) -> list[Path]:
    """The artefacts of `root` stored before checksums: files whose key JSON holds no sha256, folders without a manifest.

    A file with no key JSON at all is not counted: before checksums only the
    book's exports (``correlations/``, never read back) were written so; an
    artefact whose JSON was lost is damage once the cache is marked.
    """
    found = []
    for kind in sorted(root.iterdir()):
        if not kind.is_dir() or kind.name.startswith("."):
            continue
        for entry in sorted(kind.iterdir()):
            if entry.name.startswith(".") or entry.suffix == ".json" and not entry.is_dir():
                continue
            if entry.is_dir():
                if not (entry / integrity.MANIFEST).is_file():
                    found.append(entry)
                continue
            record = entry.with_suffix(".json")
            try:
                if record.exists() and _recorded_sha256(record) is None:
                    found.append(entry)
            except integrity.IntegrityError:
                found.append(entry)
    return found


def _mark(root: Path) -> None:
    text = json.dumps({"checksums": "every artefact here has its sha256 recorded when written and checked when "
                                    "read; one without a recorded sha256 is damage and is computed again",
                       "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1)
    atomic_write(root / MARKER, lambda tmp: tmp.write_text(text), keep_existing=True)


def ready(root: Path | None = None) -> list[Path]:
    """Before any work: check that the cache can be written, and mark it checksummed where nothing in it is unchecked.

    The root is created if missing; it and each folder directly in it must
    accept a new file (tried, not inferred from the mode: root ignores modes, a
    read-only mount does not).  A cache with no artefact lacking its checksum
    gets :data:`MARKER` (a new cache always does).

    Returns
    -------
    list of Path
        The artefacts stored before checksums were kept (empty for a marked
        cache): adopted one by one when read, or all at once by :func:`adopt`.

    Raises
    ------
    CacheNotWritable
        Naming the folder, where it comes from, and what to do.
    """
    root = Path(root) if root is not None else cache_dir()
    advice = f"make it writable (chmod -R u+w {root}), or set CWI_CACHE_DIR to a folder you can write"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CacheNotWritable(f"the cache folder {root} ({_where()}) cannot be created: {err.strerror or err}; "
                               f"{advice}") from None
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]:
        try:
            handle, probe = tempfile.mkstemp(dir=folder, prefix=".cwi-write-check-")
            os.close(handle)
            os.unlink(probe)
        except OSError as err:
            inside = "" if folder == root else f", in the cache {root}"
            raise CacheNotWritable(f"the cache folder {folder}{inside} ({_where()}) cannot be written: "
                                   f"{err.strerror or err}; {advice}") from None
    if (root / MARKER).is_file():
        return []
    unchecked = _unchecked(root)
    if not unchecked:
        _mark(root)
    return unchecked


def adopt(root: Path | None = None, last_files: tuple[str, ...] = ()) -> list[Path]:
    """Record the checksum of every artefact of a cache from before checksums, then mark it; return what was adopted.

    What is recorded is taken as it is now: run it on a cache you trust.  A
    folder is adopted only if it holds one of `last_files` (what its writer
    wrote last: it was completed); one that does not is reported and removed.
    From then on an artefact without its checksum is damage.
    """
    root = Path(root) if root is not None else cache_dir()
    ready(root)
    adopted = []
    for artefact in _unchecked(root):
        if artefact.is_dir():
            if not any((artefact / name).is_file() for name in last_files):
                report_damage(f"{artefact} holds none of {', '.join(last_files) or 'the files its writer ends with'}, "
                              "so it was never completed: removed, to be computed again")
                discard(artefact)
                continue
            text = _manifest_text(artefact)
            atomic_write(artefact / integrity.MANIFEST, lambda tmp, text=text: tmp.write_text(text))
            adopted.append(artefact)
            continue
        record = artefact.with_suffix(".json")
        try:
            stored = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        stored = stored if isinstance(stored, dict) else {}
        _write_record(record, stored.get("kind", artefact.parent.name), stored.get("key"),
                      integrity.file_sha256(artefact))
        adopted.append(artefact)
    _mark(root)
    return adopted


def cached_frame(kind: str, key: dict, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """Return the cached DataFrame of `kind` and `key`, computing and storing it on a miss.

    The frame is stored as Parquet (index and ``DataFrame.attrs`` included), its
    key as JSON beside it; ``frame.attrs["cache_path"]`` tells where.
    """
    frame = cached(kind, key, ".parquet", compute, lambda value, tmp: value.to_parquet(tmp), pd.read_parquet)
    frame.attrs["cache_path"] = str(artefact_path(kind, key, ".parquet"))  # where it lives, not part of it
    return frame
