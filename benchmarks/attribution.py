"""Vector Integrated Gradients on all-MiniLM-L6-v2: captum's per-dimension loop against forward mode.

    CWI_DATA_DIR=../shared/data python benchmarks/attribution.py [--sentences 2] [--steps 20]

Sentences of about 20 tokens from STS-B test; both implementations use the same
Gauss-Legendre rule with the same number of steps, so they must agree to float32
precision.  Also printed: the model's plain forward throughput on the same
sentences, which bounds what any attribution method can reach (IG needs at least
``steps`` forwards per sentence).
"""

from __future__ import annotations

import argparse
import time

import torch

from cwi import attribution, data, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)

    encoder = models.load_encoder("all-MiniLM-L6-v2")
    pool = data.load_sts("stsb").query("split == 'test'")["sentence1"].tolist()
    sentences = [s for s in pool if len(encoder.tokenize([s])["input_ids"][0]) == 20][: args.sentences]

    start = time.perf_counter()
    fast = [attribution.integrated_gradients(encoder, s, steps=args.steps)[0] for s in sentences]
    fast_seconds = (time.perf_counter() - start) / len(sentences)

    start = time.perf_counter()
    reference = [attribution.integrated_gradients_captum(encoder, s, steps=args.steps) for s in sentences]
    captum_seconds = (time.perf_counter() - start) / len(sentences)

    start = time.perf_counter()
    repeats = 20
    for _ in range(repeats):
        encoder.encode(sentences, batch_size=len(sentences))
    forward_seconds = (time.perf_counter() - start) / (repeats * len(sentences))

    difference = max((a - b).abs().max().item() for a, b in zip(fast, reference))
    print(f"all-MiniLM-L6-v2, {len(sentences)} sentences of 20 tokens, {args.steps} Gauss-Legendre steps, "
          f"d = {encoder.model.config.hidden_size}, torch threads {torch.get_num_threads()}")
    print(f"captum IntegratedGradients, loop over dimensions: {1 / captum_seconds:8.3f} sentences/s")
    print(f"forward-mode jvp + vmap:                          {1 / fast_seconds:8.3f} sentences/s "
          f"({captum_seconds / fast_seconds:.1f}x faster; target >= 20x)")
    print(f"largest |difference|: {difference:.2e} (target <= 1e-5)")
    print(f"plain forward: {1 / forward_seconds:.1f} sentences/s; forward-mode IG is "
          f"{forward_seconds / fast_seconds:.4f} of it, captum {forward_seconds / captum_seconds:.5f}")


if __name__ == "__main__":
    main()
