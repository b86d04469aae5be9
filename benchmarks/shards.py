"""Distributed attribution (cwi.shards on a local Dask cluster) against the serial loop, in one run.

    CWI_DATA_DIR=../shared/data python benchmarks/shards.py [--profile smoke] [--workers 2]

The profile's whole attribution (every model of ``attribution.models`` x dataset x
method) is computed twice from an empty word-weight cache: serially in this
process (``cwi.pipeline.profile_word_weights``, torch's default threads), then by
``cwi.shards.run`` on a local cluster (workers x 1 torch thread, the cores shared
out).  The models are trained or loaded before either clock starts, into a
temporary cache.  The figures include what each way really costs: the
cluster's start and every worker loading its models.  It also checks that both
ways give the same tables (to float32 rounding: the thread counts differ).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("CWI_CACHE_DIR", tempfile.mkdtemp(prefix="cwi-bench-shards-"))
    import logging

    import numpy as np
    import torch

    from cwi import cache, pipeline, shards

    logging.getLogger("distributed").setLevel(logging.ERROR)
    pipeline.profile_word_weights(args.profile)  # models trained / loaded, tables computed once: not timed

    def clear():
        shutil.rmtree(cache.cache_dir() / "word_weights", ignore_errors=True)

    clear()
    start = time.perf_counter()
    serial = pipeline.profile_word_weights(args.profile)
    serial_seconds = time.perf_counter() - start
    clear()
    start = time.perf_counter()
    report = shards.run(args.profile, workers=args.workers)
    distributed_seconds = time.perf_counter() - start
    merged = pipeline.profile_word_weights(args.profile)
    difference = np.abs(merged["weight"].to_numpy() - serial["weight"].to_numpy()) / serial["weight"].abs().to_numpy()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} torch threads "
          f"serially, load average {load[0]:.2f} / {load[1]:.2f} (1 / 5 min) at the end")
    print(f"profile {args.profile}: {len(report)} shards, {len(serial):,} word weights")
    print(f"serial (one process)         {serial_seconds:7.1f} s")
    print(f"{args.workers} Dask workers (local)      {distributed_seconds:7.1f} s  "
          f"({report['seconds'].sum():.1f} s of worker time in the shards, model loading included; "
          "the rest is the cluster start)")
    print(f"same tables: words {merged['word'].equals(serial['word'])}, "
          f"largest relative difference of a weight {difference.max():.1e}")


if __name__ == "__main__":
    main()
