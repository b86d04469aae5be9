"""What checking artefacts on read costs: sha256 of the biggest artefacts against reading them unchecked.

    CWI_CACHE_DIR=~/.cache/cwi python benchmarks/integrity.py [--repeat 3]

Read-only: it opens the artefacts of the cache ``CWI_CACHE_DIR`` names and writes
nothing there (no manifest, no record), so it can run on a cache another run is
building.  For the biggest checkpoint (one snapshot's folder), the biggest
statistics table and the biggest word-weight table it times, in the same run and on
a warm page cache, reading the artefact as a chapter does (the model with
``load_transformer`` and its tokenizer, the tables with ``read_parquet``) and
hashing its files as :func:`cwi.integrity.file_sha256` does on the first read in a
process (a later read in the same process costs a ``stat``).  Then it hashes every
artefact of the cache once: what the first read of each in a process adds, at
most, and what adopting a cache from before checksums costs once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path


def best_of(repeat: int, work) -> float:
    """Median seconds of `repeat` calls of `work` after one untimed call (which warms the page cache)."""
    work()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def files_of(artefact: Path) -> list[Path]:
    """An artefact's files: itself, or every file under a folder (hidden ones, writes in progress, left out)."""
    if artefact.is_file():
        return [artefact]
    return [path for path in sorted(artefact.rglob("*"))
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(artefact).parts)]


def size_of(artefact: Path) -> int:
    return sum(path.stat().st_size for path in files_of(artefact))


def checkpoints(root: Path) -> list[Path]:
    """Every model folder of the cache: the masked-LM bases and each snapshot of each SimCSE run."""
    folders = []
    for folder in (root / "checkpoints").glob("[!.]*"):
        folders += [folder] if (folder / "config.json").exists() else sorted(folder.glob("step-*"))
    return folders


def read_checkpoint(folder: Path) -> None:
    from transformers import AutoTokenizer

    from cwi.encoders import load_transformer

    load_transformer(folder)
    AutoTokenizer.from_pretrained(folder)


def read_table(path: Path) -> None:
    import pandas as pd

    pd.read_parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from cwi import cache, integrity

    root = cache.cache_dir()
    print(f"cache {root}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    candidates = {
        "checkpoint (one snapshot)": (checkpoints(root), read_checkpoint),
        "statistics table": (sorted((root / "word_statistics").glob("[!.]*.parquet")), read_table),
        "word-weight table": (sorted((root / "word_weights").glob("[!.]*.parquet")), read_table),
    }
    print(f"\n{'artefact':28} {'MB':>8} {'read s':>8} {'sha256 s':>9} {'sha256/read':>12}")
    for label, (found, read) in candidates.items():
        if not found:
            print(f"{label:28} (none in this cache)")
            continue
        biggest = max(found, key=size_of)

        def verify(biggest=biggest) -> None:
            integrity.forget()  # as the first read in a new process
            for path in files_of(biggest):
                integrity.file_sha256(path)

        reading = best_of(args.repeat, lambda biggest=biggest, read=read: read(biggest))
        hashing = best_of(args.repeat, verify)
        print(f"{label:28} {size_of(biggest) / 2**20:8.1f} {reading:8.3f} {hashing:9.3f} {hashing / reading:12.2f}")
        print(f"  {biggest}")

    print("\nhashing every artefact of the cache once (the most one process adds; adopting an old cache, once):")
    print(f"{'kind':20} {'files':>7} {'MB':>9} {'sha256 s':>9}")
    total_bytes = total_seconds = 0.0
    for kind in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        paths = [path for path in files_of(kind) if path.suffix != ".json" or path.parent != kind]
        integrity.forget()
        start = time.perf_counter()
        for path in paths:
            integrity.file_sha256(path)
        seconds = time.perf_counter() - start
        size = sum(path.stat().st_size for path in paths)
        total_bytes += size
        total_seconds += seconds
        print(f"{kind.name:20} {len(paths):7d} {size / 2**20:9.1f} {seconds:9.3f}")
    print(f"{'all':20} {'':7} {total_bytes / 2**20:9.1f} {total_seconds:9.3f}")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
