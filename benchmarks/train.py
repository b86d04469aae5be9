"""Throughput of the book's training steps: length-sorted chunks against one padded batch, and the raw bound.

    CWI_DATA_DIR=../shared/data python benchmarks/train.py [--profile default] [--steps 20] [--threads 1]

For masked-LM and unsupervised SimCSE on batches of Wikipedia sentences,
supervised SimCSE on batches of SNLI triplets, and the two matched controls
(masked-LM on SimCSE's sentences, the NLI classifier on its triplets), with the
model of the profile, each over `--steps` different batches:

* ``chunked step``: what ``cwi.train`` runs per step (since TRAIN_VERSION 2):
  the batch's sentences sorted by length and encoded in ``LENGTH_CHUNKS``
  chunks, each padded to its own longest; the same batch and loss;
* ``one padded batch``: every sentence of the step padded to the longest (the
  masked-LM's and unsupervised SimCSE's step as it was); for supervised SimCSE
  the step as it was, ``three parts, each padded (before)``: premises, entailed
  and contradicting sentences in three forwards, each padded to its own
  longest;
* ``raw forward+backward`` (masked-LM, SimCSE): the model's forward, loss and
  backward on an already tokenized padded batch: nothing of the loop;
* ``bf16 autocast`` (SimCSE steps): a lever the book does not pull (it changes every
  trained number, and is slower where the CPU has no bfloat16 instructions).

Each row reports ms per step, real (non-padding) tokens per second and the
share of computed positions that are real tokens.  Peak memory is the
process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from cwi import config, data, train


def timed(step, batches, repeats: int) -> float:
    """Median seconds of ``step(batch)`` over `repeats` batches (cycled), after two warm-up calls."""
    for batch in batches[:2]:
        step(batch)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        step(batches[i % len(batches)])
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def padding(tokenizer, parts: list[list[str]], max_length: int, chunks: int) -> tuple[int, int]:
    """Real tokens and computed positions of encoding `parts` (lists of sentences), each in `chunks` chunks."""
    real = computed = 0
    for texts in parts:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
        for index in train.length_chunks(lengths, chunks):
            real += sum(lengths[i] for i in index)
            computed += len(index) * max(lengths[i] for i in index)
    return real, computed


def before_supervised(model, tokenizer, optimizer, schedule, chosen, settings) -> float:
    """Supervised SimCSE's step as it was: each of the three parts padded to its own longest sentence."""
    def embed(texts):
        batch = tokenizer(list(texts), padding=True, truncation=True, max_length=settings.max_length,
                          return_tensors="pt").to(train.device())
        return train.pool(model(**batch).last_hidden_state, batch["attention_mask"], "mean")

    premises, entailed, contradicting = zip(*chosen)
    loss = train.simcse_loss(embed(premises), embed(entailed), settings.temperature, embed(contradicting))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.item()


def part_padding(tokenizer, batches, max_length: int, n: int) -> tuple[float, float]:
    """Real tokens per step and their share of the computed positions when each triplet part is padded apart."""
    real, computed = padding(tokenizer, [list(part) for batch in batches for part in zip(*batch)], max_length, 1)
    return real / n, real / computed


def in_bf16(step):
    def wrapped(batch):
        with torch.autocast(train.device().type, dtype=torch.bfloat16):
            step(batch)
    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", choices=sorted(config.PROFILES))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case (different batches)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = config.get_profile(args.profile).finetune
    mlm, unsup, sup = settings.mlm, settings.unsup, settings.sup
    torch.manual_seed(0)

    sentences = data.load_wiki(limit=40_000)
    tokenizer = train.train_wordpiece(sentences[:20_000], mlm.vocab_size)
    model = train.new_mlm_model(mlm, tokenizer)
    model.train()
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    n = args.steps + 2
    mlm_batches = [sentences[20_000 + i * mlm.batch_size: 20_000 + (i + 1) * mlm.batch_size] for i in range(n)]
    unsup_batches = [sentences[30_000 + i * unsup.batch_size: 30_000 + (i + 1) * unsup.batch_size] for i in range(n)]
    triplets = data.snli_triplets()
    sup_batches = [triplets[i * sup.batch_size: (i + 1) * sup.batch_size] for i in range(n)]
    chunks = train.LENGTH_CHUNKS
    rows = []

    def case(objective, label, seconds, parts, max_length, chunked):
        real, computed = padding(tokenizer, parts, max_length, chunks if chunked else 1)
        rows.append((objective, label, seconds, real / n, real / computed))

    # Masked-LM pre-training: one padded batch, or length-sorted chunks (what pretrain_mlm runs).
    for label, k in (("one padded batch", 1), (f"{chunks} length-sorted chunks", chunks)):
        seconds = timed(lambda texts: train.mlm_step(model, optimizer, schedule, train.mlm_chunks(
            tokenizer, texts, mlm.max_length, mlm.mask_probability, generator, k)), mlm_batches, args.steps)
        case("masked-LM", label, seconds, [b for b in mlm_batches], mlm.max_length, k > 1)
    fixed = train.mlm_batch(tokenizer, mlm_batches[0], mlm, generator)

    def raw(_):
        loss, _ = train.mlm_loss(model, *fixed)
        loss.backward()
        model.zero_grad(set_to_none=True)

    case("masked-LM", "raw forward+backward (one batch)", timed(raw, mlm_batches, args.steps), mlm_batches,
         mlm.max_length, False)

    encoder = model.bert  # SimCSE trains the transformer without the masked-LM head
    head = train.MLPHead(encoder.config.hidden_size)
    sim_optimizer = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=1e-5)
    for objective, batches, recipe, supervised in (("unsup-SimCSE", unsup_batches, unsup, False),
                                                  ("sup-SimCSE", sup_batches, sup, True)):
        parts = [[s for part in zip(*b) for s in part] if supervised else b + b for b in batches]
        use_head = head if recipe.mlp_head else None
        if supervised:  # the step until TRAIN_VERSION 2: premises, entailed and contradicting sentences apart
            seconds = timed(lambda chosen: before_supervised(encoder, tokenizer, sim_optimizer, schedule, chosen,
                                                             recipe), batches, args.steps)
            rows.append((objective, "three parts, each padded (before)", seconds,
                         *part_padding(tokenizer, batches, recipe.max_length, n)))
        for label, k in (("one padded batch", 1), (f"{chunks} length-sorted chunks", chunks)):
            seconds = timed(lambda chosen: train.simcse_step(encoder, tokenizer, sim_optimizer, schedule, chosen, recipe,
                                                             supervised, "mean", use_head, chunks=k),
                            batches, args.steps)
            case(objective, label, seconds, parts, recipe.max_length, k > 1)
        seconds = timed(in_bf16(lambda chosen: train.simcse_step(encoder, tokenizer, sim_optimizer, schedule, chosen,
                                                                 recipe, supervised, "mean", use_head)),
                        batches, args.steps)
        case(objective, f"{chunks} chunks, bf16 autocast", seconds, parts, recipe.max_length, True)

    # The matched controls, chunked as the book trains them.
    classifier = train.NLIClassifier(encoder.config.hidden_size)
    control_optimizer = torch.optim.AdamW(list(model.parameters()) + list(classifier.parameters()), lr=1e-5)
    seconds = timed(lambda chosen: train.control_step(model, tokenizer, control_optimizer, schedule, chosen, unsup, False,
                                                      "mean", None, generator, mlm.mask_probability),
                    unsup_batches, args.steps)
    case("unsup-control", f"{chunks} length-sorted chunks", seconds, unsup_batches, unsup.max_length, True)
    seconds = timed(lambda chosen: train.control_step(encoder, tokenizer, control_optimizer, schedule, chosen, sup, True,
                                                      "mean", classifier, generator, mlm.mask_probability),
                    sup_batches, args.steps)
    case("sup-control", f"{chunks} length-sorted chunks", seconds,
         [[s for part in zip(*b) for s in part] for b in sup_batches], sup.max_length, True)

    parameters = sum(p.numel() for p in model.parameters())
    print(f"profile {args.profile}: {parameters / 1e6:.2f} M parameters, device {train.device()}, torch threads "
          f"{torch.get_num_threads()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average {open('/proc/loadavg').read().split()[:3]}")
    print(f"batches: masked-LM {mlm.batch_size} sentences, unsup-SimCSE 2 x {unsup.batch_size} sentences, "
          f"sup-SimCSE {sup.batch_size} triplets; {args.steps} timed steps each\n")
    reference = {objective: seconds for objective, label, seconds, *_ in rows if label == "one padded batch"}
    reference |= {objective: seconds for objective, label, seconds, *_ in rows if label.endswith("(before)")}
    print(f"{'objective':<14} {'case':<34} {'ms/step':>9} {'tokens/s':>10} {'real share':>10} {'x before':>9}")
    for objective, label, seconds, tokens, share in rows:
        base = reference.get(objective)
        print(f"{objective:<14} {label:<34} {seconds * 1000:9.1f} {tokens / seconds:10,.0f} {share:10.0%} "
              f"{(base / seconds if base else float('nan')):9.2f}")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if torch.cuda.is_available():
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
