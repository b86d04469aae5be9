"""Checksums of stored files: sha256 recorded when an artefact is written, checked when it is read.

A file artefact's sha256 is recorded in the key JSON beside it (:func:`cwi.cache.cached`);
a folder artefact (a checkpoint, a SimCSE run) carries a manifest, :data:`MANIFEST`,
with the size and sha256 of every file under it, written inside its atomic write
(:func:`cwi.cache.atomic_write`), so it appears with the folder.

Hashing is memoised per process by the file's identity and state (device, inode,
size, modification time): a file read again in the same process is not hashed
again, and one whose bytes change on disk is.  This module reads only; the cache
writes.  It imports nothing of :mod:`cwi`, so the model loader can check a folder a
user supplied (:func:`verify`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["MANIFEST", "IntegrityError", "file_sha256", "digests", "manifest_for", "verify", "forget"]

MANIFEST = "cwi_manifest.json"
_CHUNK = 1 << 20
_memo: dict[tuple[int, int, int, int], str] = {}


class IntegrityError(OSError):
    """A stored file does not match the checksum recorded when it was written (or cannot be checked)."""


def file_sha256(path: Path) -> str:
    """sha256 of the file at `path`, hashed at most once per process while the file is unchanged."""
    state = os.stat(path)
    identity = (state.st_dev, state.st_ino, state.st_size, state.st_mtime_ns)
    if identity not in _memo:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        _memo[identity] = digest.hexdigest()
    return _memo[identity]


def forget() -> None:
    """Forget every memoised hash (tests, and a process that wants to check again)."""
    _memo.clear()


def digests(folder: Path) -> dict[str, dict]:
    """Size and sha256 of every file under `folder`, by path relative to it (``/``-separated), sorted.

    The manifest itself and hidden files (a write in progress) are left out.
    """
    folder = Path(folder)
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts) and relative.name != MANIFEST:
            found[relative.as_posix()] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return found


def manifest_for(folder: Path) -> tuple[Path, str] | None:
    """The manifest that covers `folder` (its own, else its parent's, as a run's covers its snapshots) and
    `folder`'s path relative to the manifest's folder (``""`` for its own); ``None`` if there is none."""
    folder = Path(folder)
    if (folder / MANIFEST).exists():
        return folder / MANIFEST, ""
    if (folder.parent / MANIFEST).exists():
        return folder.parent / MANIFEST, folder.name
    return None


def _read_manifest(manifest: Path, remedy: str) -> dict[str, dict]:
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not a mapping")
        return files
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise IntegrityError(f"the manifest {manifest} is unreadable ({type(err).__name__}: {err}): {remedy}") from None


def verify(folder: Path, part: str | None = None, remedy: str | None = None) -> bool:
    """Check the files of `folder` (or only those under its relative path `part`) against their manifest.

    Parameters
    ----------
    folder
        A folder with a manifest, or one inside a folder with one (a run's ``step-NNNNNN/``).
    part
        A file or subfolder of `folder`, relative to it (``"cwi_run.json"``, ``"step-000100"``);
        ``None`` checks everything the manifest lists under `folder`.
    remedy
        What the error tells the user to do (default: restore or delete the folder).

    Returns
    -------
    bool
        ``True`` when the files were checked and match; ``False`` when no manifest covers `folder`
        (the parent's manifest covers it only if it lists it).

    Raises
    ------
    IntegrityError
        Naming the first file that is missing, of another size or of another sha256, and `remedy`.
    """
    found = manifest_for(folder)
    if found is None:
        return False
    manifest, prefix = found
    root = manifest.parent
    remedy = remedy or (f"the files are damaged; restore {root} from a copy, or delete it "
                        "(a checkpoint in the cache is then trained again)")
    scope = "/".join(p for p in (prefix, part or "") if p)
    listed = {name: entry for name, entry in _read_manifest(manifest, remedy).items()
              if not scope or name == scope or name.startswith(scope + "/")}
    if prefix and not listed and not part:
        return False  # a parent's manifest that does not list this folder is not its own
    if scope and not listed:
        raise IntegrityError(f"{root / scope} is not listed in its manifest {manifest}: {remedy}")
    for name, entry in listed.items():
        path = root / name
        if not path.is_file():
            raise IntegrityError(f"{path} is missing (its manifest {manifest} lists it): {remedy}")
        size = path.stat().st_size
        if size != entry.get("size"):
            raise IntegrityError(f"{path} has {size} bytes, its manifest {manifest} recorded {entry.get('size')}: "
                                 f"{remedy}")
        if file_sha256(path) != entry.get("sha256"):
            raise IntegrityError(f"{path} does not match the sha256 its manifest {manifest} recorded: {remedy}")
    return True
