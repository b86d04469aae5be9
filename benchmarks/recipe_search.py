"""A wider SimCSE grid than the book's, scored on STS-B dev only: which settings move this model?

    CWI_DATA_DIR=../shared/data python benchmarks/recipe_search.py [--profile default] [--supervised]
        [--grid dropout=0.1,0.2,0.3 --grid temperature=0.05,0.1 ...] [--workers 1] [--base CHECKPOINT]
    CWI_DATA_DIR=../shared/data python benchmarks/recipe_search.py --mlm [--grid vocab_size=8192,16384 ...]

Every combination of the ``--grid`` values (fields of ``cwi.config.SimCSESettings``,
plus ``pooling``: ``mean`` or ``cls_before_pooler``) starts from the profile's
masked-LM base (trained on a miss, as the book does; ``--base`` takes another
checkpoint) with the profile's SimCSE settings and first seed, and is scored on
STS-B dev at every snapshot, as ``cwi.runs.simcse_run`` scores the book's runs.
STS-B test is never read. Nothing is cached: this is the exploration the
book's own grid (``finetune.unsup_search``, ``sup_search``) was narrowed from.
A GPU runs the default grid (36 unsupervised runs) in minutes with
``--workers 14``; on 2 CPU cores each unsupervised run takes about 80 s.

Prints one row per candidate, best kept dev score first, with the dev score at
every snapshot and the mean loss over the 10 steps before it.

``--mlm`` searches the masked-LM base instead: every combination of the
``--grid`` values (fields of ``cwi.config.MLMSettings``) replaces the profile's
masked-LM settings, trains a base as the book does (``cwi.runs.mlm_base``:
cached and keyed like the book's, so the profile's own settings cost nothing and a
printed checkpoint can be passed to ``--base``) and scores it on STS-B dev with the
book-mlm pooling. On 2 CPU cores one default-sized base takes 11 to 15 minutes.
"""

from __future__ import annotations

import argparse
import itertools
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd

DEFAULT_GRIDS = {
    False: {"batch_size": (64, 256), "temperature": (0.05, 0.1), "dropout": (0.1, 0.2, 0.3), "lr": (1e-4, 3e-4),
            "mlp_head": (True,), "pooling": ("mean",)},
    True: {"lr": (1e-4, 3e-4, 1e-3), "mlp_head": (False, True), "steps": (2_000,)},
    "mlm": {"vocab_size": (8_192, 16_384, 30_522)},
}


def parse_value(text: str):
    """``0.1`` -> 0.1, ``64`` -> 64, ``true`` -> True, ``mean`` -> "mean"."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def candidates(grid: dict[str, tuple]) -> list[dict]:
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*grid.values())]


def score(job: tuple) -> dict:
    """Train one candidate and score its snapshots on STS-B dev (one worker process)."""
    import numpy as np
    import torch

    from cwi import config, evaluation, runs, train
    from cwi.encoders import Encoder

    profile_name, supervised, candidate, base, threads = job
    if threads:
        torch.set_num_threads(threads)
    profile = config.get_profile(profile_name)
    start_settings = profile.finetune.sup if supervised else profile.finetune.unsup
    pooling = candidate.get("pooling", "mean")
    settings = replace(start_settings, **{k: v for k, v in candidate.items() if k != "pooling"})
    steps = settings.steps
    snapshots = tuple(s for s in (25, 50, 100, 200, 300, 500, 1_000, 1_500, 2_000) if s < steps) + (steps,)
    settings = replace(settings, snapshots=snapshots)
    dev = runs.dev_rows(profile)
    examples = runs.training_examples(profile, supervised, settings)
    base = Path(base) if base else runs.mlm_checkpoint(profile)

    def snapshot(step, model, tokenizer):
        return {"stsb_dev": evaluation.encoder_spearman(Encoder(model, tokenizer, pooling, "candidate"), dev)}

    start = time.perf_counter()
    _, _, record = train.train_simcse(base, examples, settings, supervised, profile.finetune.search_seed(profile.seed),
                                      pooling, progress=False, snapshot=snapshot)
    dev_scores = {int(step): value["stsb_dev"] for step, value in record["snapshots"].items()}
    losses = np.array(record["losses"])
    best = max((s for s in dev_scores if s), key=lambda s: (dev_scores[s], -s))
    return {**candidate, "kept step": best, "kept dev": dev_scores[best],
            **{f"@{s}": dev_scores[s] for s in sorted(dev_scores)},
            **{f"loss@{s}": losses[max(0, s - 10):s].mean() for s in snapshots},
            "seconds": time.perf_counter() - start}


def score_base(job: tuple) -> dict:
    """Train one masked-LM base (or find it cached) and score it on STS-B dev (one worker process)."""
    import torch
    from transformers import AutoTokenizer

    from cwi import config, evaluation, runs, train
    from cwi.encoders import Encoder, load_transformer
    from cwi.models import MODELS

    profile_name, candidate, threads = job
    if threads:
        torch.set_num_threads(threads)
    profile = config.get_profile(profile_name)
    finetune = profile.finetune
    wall_start, start = time.time(), time.perf_counter()
    folder = runs.mlm_base(profile, replace(finetune.mlm, **candidate))
    seconds = time.perf_counter() - start
    trained = folder.stat().st_mtime >= wall_start  # else an earlier run's base, found in the cache
    record = train.history(folder)
    encoder = Encoder(load_transformer(folder), AutoTokenizer.from_pretrained(folder), MODELS["book-mlm"].pooling,
                      "candidate")
    # The held-out loss compares bases of one vocabulary only: it is a cross-entropy over that vocabulary.
    return {**candidate, "dev": evaluation.encoder_spearman(encoder, runs.dev_rows(profile)),
            "heldout loss": record["heldout_loss"], "heldout accuracy": record["heldout_accuracy"],
            "parameters": record["parameters"], "trained (s)": round(seconds) if trained else "cached",
            "checkpoint": str(folder)}


def print_table(table: pd.DataFrame, grid: dict, key: str) -> pd.DataFrame:
    """Sort by `key` (best first) and print; floats of the grid keep their own form (3e-05, not 0.00)."""
    from cwi.runs import setting_text

    table = table.sort_values(key, ascending=False)
    for field in grid:
        table[field] = table[field].map(setting_text)
    with pd.option_context("display.width", 250, "display.max_columns", 60, "display.max_colwidth", 200,
                           "display.float_format", "{:.2f}".format):
        print(table.drop(columns=[c for c in table.columns if c.startswith("loss@")]).to_string(index=False))
    return table


def main() -> None:
    from cwi import config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", choices=sorted(config.PROFILES))
    parser.add_argument("--supervised", action="store_true")
    parser.add_argument("--mlm", action="store_true", help="search the masked-LM base (MLMSettings fields)")
    parser.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                        help="values of one field (repeatable; replaces the default grid)")
    parser.add_argument("--workers", type=int, default=1, help="runs at a time (one torch thread each if > 1)")
    parser.add_argument("--base", help="start from this checkpoint instead of the profile's masked-LM base")
    args = parser.parse_args()

    if args.mlm and (args.supervised or args.base):
        parser.error("--mlm searches the masked-LM base: it takes neither --supervised nor --base")
    grid = DEFAULT_GRIDS["mlm" if args.mlm else args.supervised]
    if args.grid:
        grid = {}
        for item in args.grid:
            field, _, values = item.partition("=")
            grid[field] = tuple(parse_value(v) for v in values.split(","))
    settings_class = config.MLMSettings if args.mlm else config.SimCSESettings
    known = {f.name for f in fields(settings_class)} - {"heldout", "snapshots"} | (set() if args.mlm else {"pooling"})
    unknown = set(grid) - known
    if unknown:
        parser.error(f"--grid names {', '.join(sorted(unknown))}, not {settings_class.__name__} fields: choose among "
                     f"{', '.join(sorted(known))}")

    threads = 1 if args.workers > 1 else 0  # 0: torch's default
    if args.mlm:
        jobs = [(args.profile, c, threads) for c in candidates(grid)]
        print(f"{len(jobs)} masked-LM bases, {args.workers} at a time; STS-B dev Spearman x100", flush=True)
        start = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            print_table(pd.DataFrame(list(pool.map(score_base, jobs))), grid, "dev")
        print(f"\n{len(jobs)} bases in {time.perf_counter() - start:.0f} s, {args.workers} worker(s)")
        return
    jobs = [(args.profile, args.supervised, c, args.base, threads) for c in candidates(grid)]
    print(f"{len(jobs)} {'supervised' if args.supervised else 'unsupervised'} SimCSE candidates, "
          f"{args.workers} at a time; STS-B dev Spearman x100", flush=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = []
        for row in pool.map(score, jobs):
            rows.append(row)
            print(f"  {len(rows)}/{len(jobs)} kept dev {row['kept dev']:.2f} "
                  f"({', '.join(f'{k}={row[k]}' for k in jobs[0][2])})", flush=True)
    table = print_table(pd.DataFrame(rows), grid, "kept dev")
    print("\nmean loss over the 10 steps before each snapshot:")
    print(table[list(grid) + [c for c in table.columns if c.startswith("loss@")]].to_string(index=False,
          float_format="{:.4f}".format))
    print(f"\n{len(jobs)} runs in {time.perf_counter() - start:.0f} s, {args.workers} worker(s)")


if __name__ == "__main__":
    main()
