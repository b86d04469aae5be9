"""The attribution engines on all-MiniLM-L6-v2 against the naive ways: forward mode against captum, our SHAP against shap's defaults.

    CWI_DATA_DIR=../shared/data python benchmarks/attribution_engines.py [--sentences 2] [--steps 20]

Sentences of exactly 20 tokens from STS-B test.

* Vector Integrated Gradients: captum's ``IntegratedGradients`` looped over the
  384 output dimensions against forward mode (``jvp`` + ``vmap``), with the same
  Gauss-Legendre rule and number of steps, so they must agree to float32 precision.
* SHAP: shap's defaults, as a user starts (``shap.Explainer`` on a function of
  strings, the tokenizer as masker: masked tokens become "[MASK]" in a string
  that is tokenized again, batches of 5, 500 evaluations) against
  :func:`cwi.attribution.shap_values` (tokens masked with the baseline
  embedding, shap's hierarchy over words with each word's tokens nested, each
  distinct coalition evaluated once) with the same 500 evaluations, and with enough to
  expand every group of tokens (the book's setting).  The two explain slightly
  different games, so the speed and the rank agreement of the token values are
  compared, not the values.

Also printed: the model's plain forward throughput on the same sentences, which
bounds what any method can reach (IG needs ``steps`` forwards per sentence, SHAP
one per evaluation).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from scipy import stats as scistats

from cwi import attribution, data, models


def timed(function, sentences):
    """Results of `function` on each sentence, and seconds per sentence."""
    start = time.perf_counter()
    results = [function(s) for s in sentences]
    return results, (time.perf_counter() - start) / len(sentences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")  # shap's deprecation notices, and the budget warning of the 500-evaluation run
    import shap

    encoder = models.load_encoder("all-MiniLM-L6-v2")
    pool = data.load_sts("stsb").query("split == 'test'")["sentence1"].tolist()
    sentences = [s for s in pool if len(encoder.tokenize([s])["input_ids"][0]) == 20][: args.sentences]

    fast, fast_seconds = timed(lambda s: attribution.integrated_gradients(encoder, s, steps=args.steps)[0], sentences)
    reference, captum_seconds = timed(
        lambda s: attribution.integrated_gradients_captum(encoder, s, steps=args.steps), sentences)

    default_explainer = shap.Explainer(lambda texts: encoder.encode(list(texts)), encoder.tokenizer, silent=True)
    warm_up = pool[0]  # first calls pay for shap's lazy imports: not part of either figure
    default_explainer([warm_up]), attribution.shap_values(encoder, warm_up, max_evals=50)
    default_shap, default_shap_seconds = timed(lambda s: default_explainer([s]).values[0], sentences)
    budget_shap, budget_shap_seconds = timed(lambda s: attribution.shap_values(encoder, s, max_evals=500)[0],
                                             sentences)
    book_shap, book_shap_seconds = timed(lambda s: attribution.shap_values(encoder, s)[0], sentences)

    start = time.perf_counter()
    repeats = 20
    for _ in range(repeats):
        encoder.encode(sentences, batch_size=len(sentences))
    forward_seconds = (time.perf_counter() - start) / (repeats * len(sentences))

    difference = max((a - b).abs().max().item() for a, b in zip(fast, reference))
    agreement = [scistats.spearmanr(a.norm(dim=1)[1:-1].numpy(), np.linalg.norm(b, axis=1)[1:-1]).statistic
                 for a, b in zip(book_shap, default_shap)]
    print(f"all-MiniLM-L6-v2, {len(sentences)} sentences of 20 tokens, d = {encoder.model.config.hidden_size}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"plain forward:                                     {1 / forward_seconds:8.1f} sentences/s")
    print(f"IG, {args.steps} Gauss-Legendre steps")
    print(f"  captum IntegratedGradients, loop over dimensions: {1 / captum_seconds:8.3f} sentences/s "
          f"({forward_seconds / captum_seconds:.5f} of plain forward)")
    print(f"  forward-mode jvp + vmap:                          {1 / fast_seconds:8.3f} sentences/s "
          f"({forward_seconds / fast_seconds:.4f} of plain forward; {captum_seconds / fast_seconds:.1f}x faster, "
          "target >= 20x)")
    print(f"  largest |difference|: {difference:.2e} (target <= 1e-5)")
    print("SHAP, Partition explainer")
    print(f"  shap defaults (strings, [MASK], 500 evaluations): {1 / default_shap_seconds:8.3f} sentences/s "
          f"({forward_seconds / default_shap_seconds:.4f} of plain forward)")
    print(f"  cwi.attribution.shap_values, 500 evaluations:     {1 / budget_shap_seconds:8.3f} sentences/s "
          f"({forward_seconds / budget_shap_seconds:.4f} of plain forward; "
          f"{default_shap_seconds / budget_shap_seconds:.1f}x faster than the defaults at the same budget)")
    print(f"  cwi.attribution.shap_values, every group (exact): {1 / book_shap_seconds:8.3f} sentences/s "
          f"({forward_seconds / book_shap_seconds:.4f} of plain forward; "
          f"{default_shap_seconds / book_shap_seconds:.1f}x the defaults' speed)")
    print(f"  Spearman of token weights between the two: {', '.join(f'{r:.2f}' for r in agreement)}")


if __name__ == "__main__":
    main()
