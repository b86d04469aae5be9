"""Faithfulness curves: the book's batched, de-duplicated curves against one forward per curve step.

    CWI_DATA_DIR=../shared/data python benchmarks/faithfulness.py [--models all-MiniLM-L6-v2 book-mlm]
        [--sentences 10] [--words 12] [--threads 2]

On `--sentences` STS-B test sentences of `--words` words, for each model, with
the default profile's orders (two method orders, frequency, information gain
and five random orders) and both removals:

* **naive**: every step of every curve (deletion and insertion, k = 0 ... W,
  each order) and every leave-one-out state its own forward pass, one sentence
  per call;
* **book** (:func:`cwi.faithfulness.removal_curves`): each distinct set of
  removed words once (the full sentence and the empty one are shared by every
  order), baseline removals batched through ``inputs_embeds``, text removals
  through one padded batch; then the book's own call, which adds the greedy
  oracles of both measures (each step's candidates in one batch);
* the same sentences attributed by Integrated Gradients with the default
  profile's settings, the cost the curves are set against.

Printed: forward passes per sentence, seconds per sentence, and the largest
difference between the two ways' cosines (they compute the same curves).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from cwi import attribution, config, faithfulness, inputs

# The same models and sentences as the attribution benchmark beside this script.
from attribution import load, sentences_of  # noqa: E402  (benchmarks/attribution.py)


def orders_for(encoder, text: str, seed: int) -> dict[str, list[int]]:
    """Nine orders, as many as the default profile draws: their content does not change the cost."""
    index = list(inputs.prepare(encoder, text).word_index)
    rng = np.random.default_rng(seed)
    named = {"ig": index, "shap": index[::-1], "frequency": sorted(index, key=lambda w: (w % 3, w)),
             "information gain": sorted(index, key=lambda w: (-(w % 4), w))}
    return named | {f"random {d}": order for d, order in enumerate(faithfulness.random_orders(index, 5, rng))}


@torch.no_grad()
def naive(encoder, text: str, orders: dict, baseline: str = "pad") -> tuple[dict, int]:
    """One forward per curve step and per leave-one-out state, one sentence per call."""
    prepared = inputs.prepare(encoder, text, baseline)
    position = {w: k for k, w in enumerate(prepared.word_index)}
    owned = prepared.owned_tokens()
    mask = torch.ones(1, prepared.length, dtype=torch.long)

    def embed(removal: str, removed: frozenset) -> np.ndarray:
        if removal == "text":
            return encoder.encode([faithfulness._remove_text(text, prepared.spans, removed)])[0]
        replaced = torch.zeros(prepared.length, 1, dtype=torch.bool)
        for w in removed:
            replaced[owned[w]] = True
        inputs_embeds = torch.where(replaced, prepared.baseline, prepared.inputs)[None]
        return encoder.forward(attention_mask=mask, inputs_embeds=inputs_embeds)[0].numpy()

    cosines, forwards = {}, 0
    for removal in faithfulness.REMOVALS:
        full = embed(removal, frozenset())
        forwards += 1
        for name, order in orders.items():
            ranked = [position[w] for w in order]
            for k in range(len(ranked) + 1):
                for direction, removed in (("deletion", ranked[:k]), ("insertion", ranked[k:])):
                    vector = embed(removal, frozenset(removed))
                    forwards += 1
                    cosines[(removal, name, direction, k)] = float(
                        vector @ full / np.linalg.norm(vector) / np.linalg.norm(full))
        for k in range(len(ranked)):
            embed(removal, frozenset([k]))
            forwards += 1
    return cosines, forwards


def book_forwards(orders: dict) -> int:
    """Distinct removed-word sets per removal, as :func:`cwi.faithfulness.removal_curves` runs them."""
    words = len(next(iter(orders.values())))
    states = {frozenset()} | {frozenset([k]) for k in range(words)}
    for order in orders.values():
        ranked = [sorted(order).index(w) for w in order]
        for k in range(words + 1):
            states |= {frozenset(ranked[:k]), frozenset(ranked[k:])}
    return len(states) * len(faithfulness.REMOVALS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["all-MiniLM-L6-v2", "book-mlm"])
    parser.add_argument("--sentences", type=int, default=10)
    parser.add_argument("--words", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {args.threads} "
          f"threads, load average before {os.getloadavg()[0]:.2f}")
    sentences = sentences_of(args.words, args.sentences)
    ig_settings = config.get_profile("default").attribution.method_settings("ig")
    for name in args.models:
        try:
            encoder = load(name)
        except Exception as error:  # a book model not trained here, or a Hub model offline
            print(f"{name}: not available here ({error})")
            continue
        orders = [orders_for(encoder, text, seed) for seed, text in enumerate(sentences)]
        start = time.perf_counter()
        slow = [naive(encoder, text, o) for text, o in zip(sentences, orders)]
        naive_seconds = (time.perf_counter() - start) / len(sentences)
        start = time.perf_counter()
        fast = [faithfulness.removal_curves(encoder, text, o, oracle=False)[0] for text, o in zip(sentences, orders)]
        book_seconds = (time.perf_counter() - start) / len(sentences)
        start = time.perf_counter()
        for text, o in zip(sentences, orders):  # the book's call: the greedy oracles of both measures too
            faithfulness.removal_curves(encoder, text, o)
        oracle_seconds = (time.perf_counter() - start) / len(sentences)
        start = time.perf_counter()
        attribution.word_weights(encoder, sentences, "ig", **ig_settings)
        ig_seconds = (time.perf_counter() - start) / len(sentences)
        difference = max(abs(row.cosine - cosines[(row.removal, row.order, row.direction, row.k)])
                         for (cosines, _), curves in zip(slow, fast) for row in curves.itertuples())
        naive_forwards = np.mean([n for _, n in slow])
        print(f"{name}: {len(sentences)} sentences of {args.words} words, {len(orders[0])} orders, "
              f"{len(faithfulness.REMOVALS)} removals")
        print(f"  naive: {naive_forwards:,.0f} forwards/sentence, {naive_seconds:.3f} s/sentence")
        print(f"  book:  {np.mean([book_forwards(o) for o in orders]):,.0f} forwards/sentence, "
              f"{book_seconds:.3f} s/sentence ({naive_seconds / book_seconds:.1f}x faster)")
        print(f"  book with the greedy oracles (cosine and Euclidean, deletion and insertion): "
              f"{oracle_seconds:.3f} s/sentence ({oracle_seconds / book_seconds:.2f}x the curves without them)")
        print(f"  Integrated Gradients (default settings): {ig_seconds:.3f} s/sentence; the curves with oracles cost "
              f"{oracle_seconds / ig_seconds:.2f}x the attribution")
        print(f"  largest difference between the two ways' cosines: {difference:.1e}")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
