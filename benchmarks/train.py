"""Throughput of the book's training steps against the model's raw forward+backward.

    CWI_DATA_DIR=../shared/data python benchmarks/train.py [--profile default] [--steps 20]

For masked-LM and unsupervised SimCSE on the same batch of Wikipedia sentences,
and supervised SimCSE on a batch of SNLI triplets, with the model of the profile:

* ``training step``: what ``cwi.train`` runs per step (tokenize, mask, forward,
  loss, backward, clip, AdamW, schedule);
* ``raw forward+backward``: the same model's forward, loss and backward on the
  already tokenized batch, nothing else: the bound a training loop can reach;
* ``naive masked-LM``: ``BertForMaskedLM(labels=...)``, which projects every
  position onto the vocabulary rather than the masked ones only;
* ``training step, bf16 autocast``: the training step under
  ``torch.autocast(dtype=torch.bfloat16)``, a lever the book does not pull
  (it changes every number it trains, and is slower where the CPU has no
  bfloat16 instructions): this row says what it would buy on this machine.

Tokens per second count the non-padding tokens. Peak memory is the process's
maximum resident set size (and the GPU's peak allocation when one is used).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from cwi import config, data, encoders, train


def timed(step, repeats: int) -> float:
    """Median seconds of `step()` over `repeats` calls, after two warm-up calls."""
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def in_bf16(step):
    """`step` under bfloat16 autocast on the training device."""
    def wrapped():
        with torch.autocast(train.device().type, dtype=torch.bfloat16):
            step()
    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", choices=sorted(config.PROFILES))
    parser.add_argument("--steps", type=int, default=20, help="timed repetitions per case")
    args = parser.parse_args()
    settings = config.get_profile(args.profile).finetune
    mlm, unsup, sup = settings.mlm, settings.unsup, settings.sup
    torch.manual_seed(0)

    sentences = data.load_wiki(limit=20_000)
    tokenizer = train.train_wordpiece(sentences, mlm.vocab_size)
    model = train.new_mlm_model(mlm, tokenizer)
    model.train()
    texts = sentences[1000 : 1000 + mlm.batch_size]
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    batch = train.mlm_batch(tokenizer, texts, mlm, generator)
    tokens = int(batch[1].sum())

    def full_step():
        train.mlm_step(model, optimizer, schedule, train.mlm_batch(tokenizer, texts, mlm, generator))

    def raw_step():
        loss, _ = train.mlm_loss(model, *batch)
        loss.backward()
        model.zero_grad(set_to_none=True)

    ids, mask, picked, labels = batch
    naive_labels = labels.masked_fill(~picked, -100)

    def naive_step():
        model(input_ids=ids, attention_mask=mask, labels=naive_labels).loss.backward()
        model.zero_grad(set_to_none=True)

    rows = [("masked-LM", "training step", timed(full_step, args.steps)),
            ("masked-LM", "raw forward+backward", timed(raw_step, args.steps)),
            ("masked-LM", "naive masked-LM (all positions)", timed(naive_step, args.steps)),
            ("masked-LM", "training step, bf16 autocast", timed(in_bf16(full_step), args.steps))]

    # Unsupervised SimCSE on the same transformer (mean pooling, duplicated batch).
    encoder = model.bert
    sim_optimizer = torch.optim.AdamW(encoder.parameters(), lr=1e-5)
    sim_texts = sentences[2000 : 2000 + unsup.batch_size]
    encoded = tokenizer(sim_texts + sim_texts, padding=True, truncation=True, max_length=unsup.max_length,
                        return_tensors="pt").to(train.device())
    sim_tokens = int(encoded["attention_mask"].sum())

    def sim_full():
        train.simcse_step(encoder, tokenizer, sim_optimizer, schedule, sim_texts, unsup, supervised=False)

    def sim_raw():
        both = encoders.pool(encoder(**encoded).last_hidden_state, encoded["attention_mask"], "mean")
        train.simcse_loss(both[: len(sim_texts)], both[len(sim_texts):], unsup.temperature).backward()
        encoder.zero_grad(set_to_none=True)

    rows += [("unsup-SimCSE", "training step", timed(sim_full, args.steps)),
             ("unsup-SimCSE", "raw forward+backward", timed(sim_raw, args.steps)),
             ("unsup-SimCSE", "training step, bf16 autocast", timed(in_bf16(sim_full), args.steps))]

    # Supervised SimCSE: (premise, entailed, contradicting) triplets, the last as hard negatives.
    triplets = data.snli_triplets()[: sup.batch_size]
    parts = [tokenizer(list(texts), padding=True, truncation=True, max_length=sup.max_length,
                       return_tensors="pt").to(train.device()) for texts in zip(*triplets)]
    sup_tokens = sum(int(part["attention_mask"].sum()) for part in parts)

    def sup_full():
        train.simcse_step(encoder, tokenizer, sim_optimizer, schedule, triplets, sup, supervised=True)

    def sup_raw():
        pooled = [encoders.pool(encoder(**part).last_hidden_state, part["attention_mask"], "mean") for part in parts]
        train.simcse_loss(*pooled[:2], sup.temperature, pooled[2]).backward()
        encoder.zero_grad(set_to_none=True)

    rows += [("sup-SimCSE", "training step", timed(sup_full, args.steps)),
             ("sup-SimCSE", "raw forward+backward", timed(sup_raw, args.steps)),
             ("sup-SimCSE", "training step, bf16 autocast", timed(in_bf16(sup_full), args.steps))]

    parameters = sum(p.numel() for p in model.parameters())
    print(f"profile {args.profile}: {parameters / 1e6:.2f} M parameters, device {train.device()}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"masked-LM batch: {mlm.batch_size} sentences, {tokens} tokens; "
          f"unsup-SimCSE batch: 2 x {unsup.batch_size} sentences, {sim_tokens} tokens; "
          f"sup-SimCSE batch: {sup.batch_size} triplets, {sup_tokens} tokens\n")
    raw = {objective: seconds for objective, case, seconds in rows if case == "raw forward+backward"}
    counts = {"masked-LM": tokens, "unsup-SimCSE": sim_tokens, "sup-SimCSE": sup_tokens}
    for objective, case, seconds in rows:
        n = counts[objective]
        print(f"{objective:<13} {case:<32} {seconds * 1000:8.1f} ms/step {n / seconds:10,.0f} tokens/s  "
              f"{raw[objective] / seconds:5.2f} x raw")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if torch.cuda.is_available():
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
