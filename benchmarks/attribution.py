"""Word attribution: the book's batched word-level methods against the one-sentence token-level way.

    CWI_DATA_DIR=../shared/data python benchmarks/attribution.py [--models book-mlm all-MiniLM-L6-v2]
        [--sentences 12] [--threads 2] [--memory]

On `--sentences` STS-B test sentences of 12 words, for each model:

* the plain forward pass per sentence (one batch of 96 such sentences), the unit
  of every cost below: "forwards per sentence" = method seconds per sentence /
  forward seconds per sentence, so machine speed cancels;
* Integrated Gradients before (one sentence per call, one tangent per token, 32
  Gauss-Legendre points: the book's way until ALGORITHM_VERSION 3) and after
  (sentences of similar length in one padded call, one tangent per word, the
  adaptive nested Clenshaw-Curtis rules of 9/17/33/65 points, and the same
  word path at a fixed 32 Gauss-Legendre points), with the largest relative
  difference between the 32-point word vectors of the two paths;
* SHAP before (shap's Text masker over tokens, one model call per batch of
  256 coalitions, repeats evaluated again) and after (shap's Partition explainer
  over words, each distinct coalition evaluated once), with the median
  within-sentence Spearman of the two's word weights (the hierarchies differ,
  so the values are not equal).

`--rule` compares IG's stopping rules on `--rule-sentences` sentences of the
default profile's STS-B test sample (all lengths), for each model: the
extrapolated word error (the book's rule since ALGORITHM_VERSION 7) against
the change from the embedded rule (before), with the path points each keeps,
the time, and every word's true error against a 129-point reference (relative
to the sentence's mean word weight, the scale of the 1 % target).  Besides the
registry's models, ``random-bert`` is an untrained BERT of the default
masked-LM's sizes (useful before the default book has trained its own).

`--memory` runs the batched IG path on 50 sentences per model in a fresh
process and prints the growth of its peak resident memory.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
from scipy import stats as scistats

from cwi import attribution, data, inputs, models, pipeline, stats

BEFORE_IG_STEPS = 32


def load(name: str):
    """A registered model: the book's from the default profile's checkpoint cache, the others by the registry.

    ``random-bert``: an untrained BERT of the default masked-LM's sizes, with all-MiniLM-L6-v2's tokenizer.
    """
    if name == "random-bert":
        from similarity import book_size_bert  # benchmarks/similarity.py

        return book_size_bert()
    if name.startswith("book-"):
        return pipeline.load_encoder(name, "default")
    return models.load_encoder(name)


def rule_comparison(name: str, sentences: list[str], reference: int = 129) -> None:
    """IG's stopping rules on `sentences`: points kept, time and true word errors against a `reference`-point rule."""
    from cwi import config

    settings = config.PROFILES["default"].attribution
    encoder = load(name)
    attribution.word_integrated_gradients(encoder, sentences[:2])  # warm-up
    exact = attribution.word_integrated_gradients(encoder, sentences, reference)
    print(f"\n{name}: IG stopping rules on {len(sentences)} STS-B test sentences ({settings.path_points} "
          f"Clenshaw-Curtis points, target {settings.completeness_target:.0%}), true word error against "
          f"{reference} points")
    print(f"  {'rule':44s} {'points/sent':>11s} {'s/sent':>8s} {'worst true':>10s} {'median true':>11s} "
          f"{'within':>7s} {'worst weight':>12s}")
    for label, extrapolate in (("before: change from the embedded rule", False),
                               ("after: extrapolated from two embedded rules", True)):
        results, seconds, _ = seconds_per_sentence(
            lambda ss: attribution.word_integrated_gradients(encoder, ss, settings.path_points,
                                                             target=settings.completeness_target,
                                                             extrapolate=extrapolate), sentences)
        true, shift = [], []
        for result, best in zip(results, exact):
            scale = float(best.values.norm(dim=1).mean()) or 1.0
            true.append(float((result.values - best.values).norm(dim=1).max()) / scale)
            w, b = result.values.norm(dim=1), best.values.norm(dim=1)
            shift.append(float((w / w.mean() - b / b.mean()).abs().max()))
        kept = [r.path_points for r in results]
        print(f"  {label:44s} {np.mean(kept):11.1f} {seconds:8.3f} {max(true):10.2e} {np.median(true):11.2e} "
              f"{np.mean(np.array(true) < settings.completeness_target):7.0%} {max(shift):12.2e}"
              f"   kept {dict(zip(*np.unique(kept, return_counts=True)))}")


def sentences_of(n_words: int, count: int) -> list[str]:
    pool = data.load_sts("stsb").query("split == 'test'")["sentence1"].drop_duplicates()
    return [s for s in pool if len(stats.tokenize(s)) == n_words][:count]


def seconds_per_sentence(function, sentences) -> tuple[object, float, float]:
    """Result, wall seconds and CPU seconds (user + system, all threads) per sentence."""
    start, cpu = time.perf_counter(), time.process_time()
    result = function(sentences)
    return result, (time.perf_counter() - start) / len(sentences), (time.process_time() - cpu) / len(sentences)


def text_masker_shap(encoder, sentence: str, baseline: str = "pad", batch_size: int = 256) -> torch.Tensor:
    """SHAP as the book computed it until ALGORITHM_VERSION 3: shap's Text masker over tokens; (T, d)."""
    import shap

    s = inputs.prepare(encoder, sentence, baseline)
    n_tokens, mask = s.length, s.batch["attention_mask"]

    def model(ids):
        ids = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=encoder.device).reshape(-1, n_tokens)
        outputs = []
        with torch.no_grad():
            for chunk in ids.split(batch_size):
                embeddings = torch.where((chunk == -1).unsqueeze(-1), s.baseline,
                                         encoder.input_embeddings(chunk.clamp(min=0)))
                outputs.append(encoder.forward(inputs_embeds=embeddings, attention_mask=mask.expand(len(chunk), -1)))
        return torch.cat(outputs).cpu().numpy()

    explainer = shap.explainers.Partition(model, shap.maskers.Text(encoder.tokenizer, mask_token=-1,
                                                                   output_type="token_ids"))
    explanation = explainer([sentence], max_evals=3 * n_tokens**2, batch_size=batch_size, silent=True)
    return torch.as_tensor(np.asarray(explanation.values[0]), dtype=torch.float32)


def word_sums(encoder, sentence: str, values: torch.Tensor) -> torch.Tensor:
    return inputs.prepare(encoder, sentence).to_words(values)


def benchmark(name: str, sentences: list[str]) -> None:
    encoder = load(name)
    forward_pool = sentences_of(12, 96)
    encoder.encode(forward_pool[:8])  # warm-up
    start = time.perf_counter()
    for _ in range(5):
        encoder.encode(forward_pool, batch_size=len(forward_pool))
    forward = (time.perf_counter() - start) / (5 * len(forward_pool))
    attribution.word_shap(encoder, sentences[:1]), text_masker_shap(encoder, sentences[0])  # shap's lazy imports

    before_ig, ig_before_s, ig_before_cpu = seconds_per_sentence(
        lambda ss: [attribution.integrated_gradients(encoder, s, steps=BEFORE_IG_STEPS).values for s in ss], sentences)
    adaptive, ig_after_s, ig_after_cpu = seconds_per_sentence(
        lambda ss: attribution.word_integrated_gradients(encoder, ss), sentences)
    fixed, ig_fixed_s, _ = seconds_per_sentence(
        lambda ss: attribution.word_integrated_gradients(encoder, ss, points=BEFORE_IG_STEPS, rule="gauss-legendre"), sentences)
    before_shap, shap_before_s, shap_before_cpu = seconds_per_sentence(
        lambda ss: [text_masker_shap(encoder, s) for s in ss], sentences)
    after_shap, shap_after_s, shap_after_cpu = seconds_per_sentence(
        lambda ss: attribution.word_shap(encoder, ss), sentences)

    difference = max(((f.values - word_sums(encoder, s, b)).norm(dim=1) / f.values.norm(dim=1)).max().item()
                     for s, f, b in zip(sentences, fixed, before_ig))
    rho = np.median([scistats.spearmanr(a.values.norm(dim=1), word_sums(encoder, s, b).norm(dim=1)).statistic
                     for s, a, b in zip(sentences, after_shap, before_shap)])
    points = [r.path_points for r in adaptive]
    tokens = np.mean([inputs.prepare(encoder, s).length for s in sentences])
    parameters = sum(p.numel() for n, p in encoder.model.named_parameters() if "embeddings" not in n)
    print(f"\n{name}: {parameters / 1e6:.1f} M non-embedding parameters, {len(sentences)} sentences of 12 words "
          f"({tokens:.1f} tokens on average), torch threads {torch.get_num_threads()}")
    print(f"  plain forward: {1 / forward:8.1f} sentences/s (batch of {len(forward_pool)})")
    rows = [
        ("IG before: tokens, one sentence/call, 32 points", ig_before_s, ig_before_cpu, ig_before_s),
        ("IG after: words, batched, adaptive 9/17/33/65 CC", ig_after_s, ig_after_cpu, ig_before_s),
        ("IG after, fixed 32 Gauss-Legendre points", ig_fixed_s, float("nan"), ig_before_s),
        ("SHAP before: Text masker over tokens", shap_before_s, shap_before_cpu, shap_before_s),
        ("SHAP after: words, repeats evaluated once", shap_after_s, shap_after_cpu, shap_before_s),
    ]
    print(f"  {'method':50s} {'sent/s':>8s} {'forwards/sent':>14s} {'x before':>9s} {'CPU/wall':>9s}")
    for label, seconds, cpu, reference in rows:
        print(f"  {label:50s} {1 / seconds:8.2f} {seconds / forward:14.0f} {seconds / reference:9.2f} "
              f"{cpu / seconds:9.2f}")
    print(f"  adaptive rule: points kept {dict(zip(*np.unique(points, return_counts=True)))}; "
          f"IG word vectors at 32 points vs summed token vectors: largest relative difference {difference:.1e}")
    print(f"  SHAP after vs before: median within-sentence Spearman of word weights {rho:.3f}; "
          f"distinct coalitions per sentence {np.mean([r.evaluations for r in after_shap]):.0f}")


def memory_probe(name: str) -> None:
    """Peak RSS growth of the batched IG path on 50 STS-B sentences (run in a fresh process)."""
    encoder = load(name)
    sentences = data.sample_sts_sentences("stsb", 50, 0)
    inputs.prepare(encoder, sentences[0])
    with open("/proc/self/clear_refs", "w") as handle:  # Linux: reset the peak (VmHWM) to the current RSS
        handle.write("5")
    before = status_kb("VmRSS")
    start = time.perf_counter()
    attribution.word_integrated_gradients(encoder, sentences)
    peak = status_kb("VmHWM")
    print(f"  {name}: batched IG on 50 STS-B sentences in {time.perf_counter() - start:.1f} s; peak resident "
          f"memory {(peak - before) / 2**20:.2f} GB above the loaded model's {before / 2**20:.2f} GB "
          f"(budget per call {inputs.MEMORY_GB} GB; target: within 3 GB)")


def status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in kB."""
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["book-mlm", "all-MiniLM-L6-v2"])
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--memory", action="store_true", help="also measure the peak memory of the batched path")
    parser.add_argument("--rule", action="store_true", help="compare IG's stopping rules (only that)")
    parser.add_argument("--rule-models", nargs="+", default=["random-bert", "all-MiniLM-L6-v2"])
    parser.add_argument("--rule-sentences", type=int, default=24)
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # shap's deprecation notices
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args.memory_probe)
        return
    torch.manual_seed(0)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}; load average {open('/proc/loadavg').read().split()[:3]}")
    if args.rule:
        sample = data.sample_sts_sentences("stsb", args.rule_sentences, 0)
        for name in args.rule_models:
            rule_comparison(name, sample)
        return
    sentences = sentences_of(12, args.sentences)
    for name in args.models:
        benchmark(name, sentences)
    if args.memory:
        print("\npeak memory of the batched IG path (fresh process per model):")
        for name in args.models:
            subprocess.run([sys.executable, __file__, "--memory-probe", name]
                           + (["--threads", str(args.threads)] if args.threads else []), check=True)


if __name__ == "__main__":
    main()
