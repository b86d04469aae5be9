"""`python -m cwi explain --pairs`: many pairs at once against one call per pair.

    CWI_DATA_DIR=../shared/data python benchmarks/explain.py [--model all-MiniLM-L6-v2] [--pairs 20]
        [--threads 2]

On the first `--pairs` STS-B test pairs (the data pack, offline), with the model
loaded once (its load time printed apart):

* one pair: :func:`cwi.explain.similarity` of the first pair, the time a user
  waits for `python -m cwi explain MODEL "a" "b"` once the model is loaded;
* the naive way: one :func:`cwi.explain.similarity` call per pair (each call
  attributes its two sentences in one batch);
* the command's way: :func:`cwi.explain.similarities` (every distinct sentence
  attributed once, sentences of similar length batched across pairs);

with pairs per second for both, and the largest difference between their
cosine parts (the same attributions: it should be float rounding).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from cwi import data, explain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = data.load_sts("stsb")
    test = test[test["split"] == "test"].head(args.pairs)
    pairs = list(zip(test["sentence1"], test["sentence2"]))
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, torch "
          f"{torch.__version__}, {args.threads} threads; {len(pairs)} STS-B test pairs, {args.model}")
    begin = time.perf_counter()
    encoder = explain.load(args.model)
    print(f"model loaded in {time.perf_counter() - begin:.1f} s")
    explain.similarity(encoder, "A warm-up.", "Another one.")  # first-call costs (allocations) out of the timings

    begin = time.perf_counter()
    explain.similarity(encoder, *pairs[0])
    print(f"one pair: {time.perf_counter() - begin:.2f} s")

    begin = time.perf_counter()
    naive = [explain.similarity(encoder, a, b) for a, b in pairs]
    naive_seconds = time.perf_counter() - begin
    begin = time.perf_counter()
    batched = explain.similarities(encoder, pairs)
    batched_seconds = time.perf_counter() - begin
    gap = max(float(np.abs(np.array(list(x.terms.values())) - np.array(list(y.terms.values()))).max())
              for x, y in zip(naive, batched))
    print(f"one call per pair: {naive_seconds:.1f} s, {len(pairs) / naive_seconds:.2f} pairs/s")
    print(f"--pairs (batched): {batched_seconds:.1f} s, {len(pairs) / batched_seconds:.2f} pairs/s "
          f"({naive_seconds / batched_seconds:.2f}x); largest difference of a cosine part {gap:.1e}")


if __name__ == "__main__":
    main()
