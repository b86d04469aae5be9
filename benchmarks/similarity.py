"""Word-pair decompositions of a cosine: the book's way against a separate attribution per word of one sentence.

    CWI_DATA_DIR=../shared/data python benchmarks/similarity.py [--models book-size all-MiniLM-L6-v2]
        [--pairs 6] [--threads 2]

On `--pairs` STS-B test pairs, for each model:

* **book** (:func:`cwi.similarity.decompose_sentences`): one vector Integrated
  Gradients per sentence (forward mode, one tangent per word, the default
  profile's adaptive Clenshaw-Curtis rule), then the matrix as one product of
  the two sentences' word vectors;
* **naive**: the word vectors of sentence b, then for every word v of b captum's
  scalar Integrated Gradients of ``f(a) . c_v(b) / N`` with respect to a's input
  embeddings (Gauss-Legendre, as many points as the largest adaptive rule, 65),
  summed over each word's tokens: column v of the matrix, one backward-mode
  attribution per word.  (Cheaper than one attribution per *cell*, the most
  literal naive way, which would cost W_a times more.)

Printed: seconds per pair each way, the speed-up, and the largest difference
between the two matrices (both integrate the same path, with different rules).
"book-size" is a random BERT of the default profile's masked-LM sizes (the book's
trained models are not in this cache unless the default book has run): its cost
per pair, times the default chapter's pairs, estimates the chapter's cold time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from cwi import config, data, encoders, inputs, models, similarity


def book_size_bert() -> encoders.Encoder:
    """A random BERT of the default profile's masked-LM sizes, with the all-MiniLM-L6-v2 tokenizer."""
    from transformers import BertConfig, BertModel

    sizes = config.get_profile("default").finetune.mlm
    tokenizer = models.load_encoder("all-MiniLM-L6-v2").tokenizer
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=sizes.hidden_size,
                                 num_hidden_layers=sizes.layers, num_attention_heads=sizes.heads,
                                 intermediate_size=sizes.intermediate_size, attn_implementation="eager"),
                      add_pooling_layer=False)
    return encoders.Encoder(model.eval(), tokenizer, "mean", "book-size", max_length=sizes.max_length)


def naive(encoder, first: str, second: str, steps: int = 65) -> np.ndarray:
    """The matrix, one column per word of `second`, each a captum attribution of a scalar; (W_a, W_b)."""
    from captum.attr import IntegratedGradients

    ig = config.get_profile("default").attribution.method_settings("ig")
    b = similarity.decompose_sentences(encoder, second, second, **ig).a  # b's word vectors and embedding
    s = inputs.prepare(encoder, first)
    mask = s.batch["attention_mask"]
    with torch.no_grad():
        f_a = encoder.forward(inputs_embeds=s.inputs[None], attention_mask=mask)[0]
    norm = float(f_a.norm()) * float(np.linalg.norm(b.embedding))
    columns = []
    for v in range(len(b.words)):
        target = torch.as_tensor(b.vectors[v], dtype=f_a.dtype) / norm

        def scalar(x):
            return encoder.forward(inputs_embeds=x, attention_mask=mask.expand(len(x), -1)) @ target

        tokens = IntegratedGradients(scalar).attribute(s.inputs[None], baselines=s.baseline[None], n_steps=steps,
                                                       method="gausslegendre")[0].sum(-1)  # (T,)
        columns.append((s.membership.to(tokens) @ tokens).detach().double().numpy())
    return np.stack(columns, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["book-size", "all-MiniLM-L6-v2"])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {args.threads} "
          f"threads, load average before {os.getloadavg()[0]:.2f}")
    pairs = data.sample_sts_pairs("stsb", args.pairs, seed=0)
    ig = config.get_profile("default").attribution.method_settings("ig")
    default = config.get_profile("default")
    for name in args.models:
        encoder = book_size_bert() if name == "book-size" else models.load_encoder(name)
        rows = list(zip(pairs["sentence1"], pairs["sentence2"]))
        start = time.perf_counter()
        book = [similarity.decompose_sentences(encoder, a, b, **ig) for a, b in rows]
        book_seconds = (time.perf_counter() - start) / len(rows)
        start = time.perf_counter()
        slow = [naive(encoder, d.a.text, d.b.text) for d in book]
        naive_seconds = (time.perf_counter() - start) / len(rows)
        difference = max(float(np.abs(d.matrix - m).max()) for d, m in zip(book, slow))
        cells = np.mean([d.matrix.size for d in book])
        print(f"{name}: {len(rows)} STS-B test pairs, {cells:.0f} word pairs on average")
        print(f"  book:  {book_seconds:.3f} s/pair (two vector IG attributions and one matrix product)")
        print(f"  naive: {naive_seconds:.3f} s/pair (one scalar captum IG per word of sentence 2) "
              f"-> the book is {naive_seconds / book_seconds:.1f}x faster")
        print(f"  largest difference between the matrices: {difference:.1e} "
              f"(largest entry {max(float(np.abs(d.matrix).max()) for d in book):.1e})")
        if name == "book-size":
            n = default.similarity.pairs_per_dataset * len(default.attribution.datasets)
            twins = 3  # book-mlm and its two SimCSE twins
            print(f"  default chapter estimate: {n} pairs x {twins} models x {book_seconds:.3f} s = "
                  f"{n * twins * book_seconds / 60:.1f} min cold (sentences shared by pairs of a block are "
                  "attributed once, so a little less)")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
