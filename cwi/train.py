"""Training the book's own encoder pair, and STS evaluation.

* :func:`train_wordpiece`: a WordPiece vocabulary fitted to the corpus;
* :func:`pretrain_mlm`: a small BERT pre-trained from scratch with masked-LM;
* :func:`train_simcse`: SimCSE from that same checkpoint, unsupervised (dropout
  positives, in-batch negatives) or supervised (SNLI entailment positives,
  contradiction hard negatives);
* :func:`book_checkpoint`: the checkpoint a profile asks for, trained once and
  cached, keyed by the full training configuration;
* :func:`evaluate_sts`: Spearman x100 between cosine similarity and gold scores.

Training is seeded and deterministic on CPU and uses a GPU when torch sees one.
A checkpoint is written to a temporary folder and renamed into place, so an
interrupted run never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from scipy import stats as scistats
from tqdm.auto import tqdm

from . import cache, config, data
from .models import POOLING_FILE, Encoder, load_transformer, pool

__all__ = [
    "TRAIN_VERSION",
    "device",
    "train_wordpiece",
    "mask_tokens",
    "mlm_loss",
    "simcse_loss",
    "new_mlm_model",
    "mlm_batch",
    "mlm_step",
    "simcse_step",
    "pretrain_mlm",
    "train_simcse",
    "book_checkpoint",
    "snli_triplets",
    "paired_cosine",
    "sts_spearman",
    "sts_pairs",
    "evaluate_sts",
    "history",
]

# Bump when training changes what a checkpoint holds: it is part of every checkpoint key.
TRAIN_VERSION = 1
HISTORY_FILE = "cwi_history.json"


def device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


# --- vocabulary and masked-LM -------------------------------------------------------


def train_wordpiece(sentences: list[str], vocab_size: int):
    """A lower-cased WordPiece tokenizer for `sentences`, as a fast tokenizer.

    The vocabulary is built deterministically: the special tokens, every
    character seen at least twice (alone and as a ``##`` continuation), then the
    most frequent words (ties broken alphabetically) up to `vocab_size`.  A rarer
    word is split into the longest known pieces, down to characters.  (The
    ``tokenizers`` WordPiece trainer breaks ties between equally frequent merges
    in hash order, which differs between runs, so a seed could not reproduce it.)
    Normalizer and pre-tokenizer are BERT's, so the words (``word_ids()``) are
    exactly those of :func:`cwi.stats.tokenize`.
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from . import stats

    corpus = stats.encode_corpus(sentences)
    counts = np.bincount(corpus.ids, minlength=len(corpus.vocab))
    characters: Counter = Counter()
    for word, count in zip(corpus.vocab, counts):
        for char in word:
            characters[char] += int(count)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    alphabet = sorted(c for c, n in characters.items() if n >= 2)
    vocab = specials + alphabet + [f"##{c}" for c in alphabet]
    if len(vocab) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} cannot hold the {len(vocab)} specials and characters of the corpus")
    known = set(vocab)
    by_frequency = sorted(zip(-counts, corpus.vocab))
    vocab += [w for _, w in by_frequency if w not in known][: vocab_size - len(vocab)]

    model = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    model.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                  strip_accents=True, lowercase=True)
    model.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    model.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )
    model.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=model, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int,
                probability: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: pick `probability` of the non-special tokens; 80 % [MASK], 10 % random, 10 % kept.

    Returns the corrupted ids and the boolean mask of the picked positions.
    """
    picked = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special
    draw = torch.rand(input_ids.shape, generator=generator)
    corrupted = input_ids.clone()
    corrupted[picked & (draw < 0.8)] = mask_id
    random_positions = picked & (draw >= 0.8) & (draw < 0.9)
    corrupted[random_positions] = torch.randint(vocab_size, input_ids.shape, generator=generator)[random_positions]
    return corrupted, picked


def mlm_loss(model, input_ids, attention_mask, picked, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the masked-LM head at the picked positions only, and their accuracy.

    The vocabulary projection, the largest matrix of a small BERT, is applied to
    the ~15 % masked positions rather than to every token.
    """
    hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    logits = model.cls(hidden[picked])
    target = labels[picked]
    return torch.nn.functional.cross_entropy(logits, target), (logits.argmax(-1) == target).float().mean()


def simcse_loss(anchors: torch.Tensor, positives: torch.Tensor, temperature: float,
                hard_negatives: torch.Tensor | None = None) -> torch.Tensor:
    """SimCSE's InfoNCE on cosine similarity: row i's positive is column i.

    With `hard_negatives`, each anchor also scores every hard negative of the
    batch (supervised SimCSE).
    """
    if len(anchors) < 2:
        raise ValueError("SimCSE needs a batch of at least 2 sentences: the others are the negatives")
    a = torch.nn.functional.normalize(anchors, dim=-1)
    candidates = positives if hard_negatives is None else torch.cat([positives, hard_negatives])
    logits = a @ torch.nn.functional.normalize(candidates, dim=-1).T / temperature
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(a), device=a.device))


# --- checkpoints ----------------------------------------------------------------------


def _checkpoint_dir(kind: str, key: dict) -> Path:
    return cache.artefact_path("checkpoints", {"kind": kind, **key}, "")


def _save_atomically(target: Path, save) -> Path:
    """Call ``save(folder)`` on a temporary folder, then rename it to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        save(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; a checkpoint is readable like any file
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _save_checkpoint(target: Path, model, tokenizer, record: dict) -> Path:
    """Write model, tokenizer, pooling (mean) and training history to `target`, atomically."""

    def save(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / POOLING_FILE).write_text(json.dumps({"pooling": "mean"}))
        (folder / HISTORY_FILE).write_text(json.dumps(record))

    return _save_atomically(target, save)


def history(checkpoint: Path) -> dict:
    """Training history stored with a checkpoint (losses, settings, evaluation)."""
    return json.loads((Path(checkpoint) / HISTORY_FILE).read_text())


def _linear_warmup_decay(optimizer, warmup: int, steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / max(1, warmup), max(0.0, (steps - step) / max(1, steps - warmup)))
    )


def new_mlm_model(settings: config.MLMSettings, tokenizer):
    """A randomly initialised BERT masked-LM of the sizes in `settings`."""
    from transformers import BertConfig, BertForMaskedLM

    bert_config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=settings.hidden_size, num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads, intermediate_size=settings.intermediate_size,
        max_position_embeddings=max(128, settings.max_length), pad_token_id=tokenizer.pad_token_id,
    )
    return BertForMaskedLM(bert_config).to(device())


def mlm_batch(tokenizer, texts: list[str], settings: config.MLMSettings, generator: torch.Generator):
    """Tokenize and mask `texts`: (corrupted ids, attention mask, picked positions, original ids)."""
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=settings.max_length,
                        return_tensors="pt", return_special_tokens_mask=True)
    special = encoded["special_tokens_mask"].bool() | (encoded["attention_mask"] == 0)
    ids, picked = mask_tokens(encoded["input_ids"], special, tokenizer.mask_token_id, len(tokenizer),
                              settings.mask_probability, generator)
    return tuple(t.to(device()) for t in (ids, encoded["attention_mask"], picked, encoded["input_ids"]))


def mlm_step(model, optimizer, schedule, batch) -> float:
    """One masked-LM update (gradient clipped at norm 1); returns the loss."""
    loss, _ = mlm_loss(model, *batch)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    return loss.item()


def pretrain_mlm(settings: config.MLMSettings, seed: int = 0, progress: bool = True) -> Path:
    """Pre-train a small BERT with masked-LM on Wikipedia sentences; return its checkpoint folder.

    The last `settings.heldout` sentences are held out: the history records the
    masked-LM loss and accuracy on them (fixed masks).  Cached: a second call with
    the same settings, seed and corpus returns the stored checkpoint.
    """
    sentences = data.load_wiki(limit=settings.corpus_limit)
    if len(sentences) <= settings.heldout:
        raise ValueError(f"{len(sentences)} sentences cannot hold out {settings.heldout}: raise corpus_limit")
    key = {"version": TRAIN_VERSION, "settings": asdict(settings), "seed": seed,
           "corpus_sha256": cache.fingerprint_texts(sentences)}
    target = _checkpoint_dir("mlm", key)
    if target.exists():
        return target

    _seed_everything(seed)
    train_sentences, heldout = sentences[: -settings.heldout], sentences[-settings.heldout:]
    tokenizer = train_wordpiece(train_sentences, settings.vocab_size)
    model = new_mlm_model(settings, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    schedule = _linear_warmup_decay(optimizer, settings.warmup, settings.steps)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_sentences), generator=generator)

    losses = []
    model.train()
    bar = tqdm(range(settings.steps), desc="masked-LM", disable=not progress)
    for step in bar:
        start = (step * settings.batch_size) % len(order)
        texts = [train_sentences[i] for i in order[start : start + settings.batch_size].tolist()]
        losses.append(mlm_step(model, optimizer, schedule, mlm_batch(tokenizer, texts, settings, generator)))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")

    model.eval()
    heldout_generator = torch.Generator().manual_seed(seed + 1)
    total_loss, total_correct, total = 0.0, 0.0, 0
    with torch.no_grad():
        for start in range(0, len(heldout), settings.batch_size):
            batch = mlm_batch(tokenizer, heldout[start : start + settings.batch_size], settings, heldout_generator)
            loss, accuracy = mlm_loss(model, *batch)
            n = int(batch[2].sum())
            total_loss, total_correct, total = total_loss + loss.item() * n, total_correct + accuracy.item() * n, total + n
    record = {"kind": "mlm", "settings": asdict(settings), "seed": seed, "losses": losses,
              "heldout_loss": total_loss / total, "heldout_accuracy": total_correct / total,
              "heldout_tokens": total, "parameters": sum(p.numel() for p in model.parameters())}

    return _save_checkpoint(target, model, tokenizer, record)


def snli_triplets() -> list[tuple[str, str, str]]:
    """(premise, entailed hypothesis, contradicting hypothesis) from the SNLI rows of :func:`cwi.data.load_nli`.

    SICK rows are left out: they are the SICK-R evaluation pairs.
    """
    nli = data.load_nli()
    snli = nli[nli["source"] == "snli"]
    triplets = []
    for premise, group in snli.groupby("premise", sort=True):
        entailed = group.loc[group["label"] == "entailment", "hypothesis"].tolist()
        contradicting = group.loc[group["label"] == "contradiction", "hypothesis"].tolist()
        triplets.extend((premise, e, c) for e, c in zip(entailed, contradicting))
    return triplets


def simcse_step(model, tokenizer, optimizer, schedule, chosen: list, settings: config.SimCSESettings,
                supervised: bool) -> float:
    """One SimCSE update on `chosen` (sentences, or triplets when `supervised`); returns the loss."""

    def embed(texts):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=settings.max_length,
                          return_tensors="pt").to(device())
        return pool(model(**batch).last_hidden_state, batch["attention_mask"], "mean")

    if supervised:
        premises, entailed, contradicting = map(list, zip(*chosen))
        loss = simcse_loss(embed(premises), embed(entailed), settings.temperature, embed(contradicting))
    else:
        both = embed(chosen + chosen)  # one forward: two dropout masks per sentence
        loss = simcse_loss(both[: len(chosen)], both[len(chosen):], settings.temperature)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.item()


def train_simcse(base: Path, settings: config.SimCSESettings, supervised: bool, seed: int = 0,
                 progress: bool = True) -> Path:
    """Fine-tune the checkpoint `base` with SimCSE; return the new checkpoint folder.

    Unsupervised: each Wikipedia sentence is encoded twice in training mode, and
    the two dropout masks make the positive pair.  Supervised: SNLI triplets.
    Mean pooling on both sides.
    """
    from transformers import AutoTokenizer

    if supervised:
        examples = snli_triplets()
    else:
        sentences = data.load_wiki(limit=settings.corpus_limit)
        examples = sentences
    key = {"version": TRAIN_VERSION, "base": str(Path(base).name), "settings": asdict(settings),
           "supervised": supervised, "seed": seed, "data_sha256": cache.fingerprint_texts(
               "\t".join(e) if supervised else e for e in examples)}
    target = _checkpoint_dir("sup-simcse" if supervised else "unsup-simcse", key)
    if target.exists():
        return target

    _seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = load_transformer(base).to(device())
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.0)
    schedule = _linear_warmup_decay(optimizer, 0, settings.steps)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(examples), generator=generator).tolist()

    losses = []
    model.train()  # dropout on: it makes the positive pairs of unsupervised SimCSE
    bar = tqdm(range(settings.steps), desc=f"{'sup' if supervised else 'unsup'}-SimCSE", disable=not progress)
    for step in bar:
        start = (step * settings.batch_size) % len(order)
        chosen = [examples[i] for i in order[start : start + settings.batch_size]]
        losses.append(simcse_step(model, tokenizer, optimizer, schedule, chosen, settings, supervised))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")

    record = {"kind": "sup-simcse" if supervised else "unsup-simcse", "settings": asdict(settings),
              "seed": seed, "losses": losses, "base": str(base), "examples": len(examples)}

    return _save_checkpoint(target, model, tokenizer, record)


def book_checkpoint(name: str, profile="default") -> Path:
    """The book's checkpoint `name` (``mlm``, ``unsup-simcse``, ``sup-simcse``) for `profile`."""
    settings = config.get_profile(profile)
    finetune = settings.finetune
    base = pretrain_mlm(finetune.mlm, seed=settings.seed)
    if name == "mlm":
        return base
    if name in ("unsup-simcse", "sup-simcse"):
        supervised = name == "sup-simcse"
        return train_simcse(base, finetune.sup if supervised else finetune.unsup, supervised, seed=settings.seed)
    raise ValueError(f"unknown book checkpoint {name!r}: choose mlm, unsup-simcse or sup-simcse")


# --- STS evaluation ---------------------------------------------------------------------


def paired_cosine(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `first` with the same row of `second` (0 for a zero vector)."""
    first = first / np.linalg.norm(first, axis=1, keepdims=True).clip(min=1e-12)
    second = second / np.linalg.norm(second, axis=1, keepdims=True).clip(min=1e-12)
    return (first * second).sum(axis=1)


def sts_spearman(first: np.ndarray, second: np.ndarray, gold) -> float:
    """Spearman x100 between the cosine similarity of paired rows and the gold scores."""
    return 100 * scistats.spearmanr(paired_cosine(first, second), np.asarray(gold)).statistic


def sts_pairs(name: str, split: str = "test", max_pairs: int | None = None):
    """The `split` rows of STS dataset `name`: ``sentence1``, ``sentence2``, ``score`` and the rest.

    For the SICK-R copy fetched from the Hub, whose one split is named "all",
    every row.  `max_pairs` keeps the first pairs only (quick checks; not a
    comparable score).
    """
    frame = data.load_sts(name)
    splits = set(frame["split"])
    if split not in splits and splits != {"all"}:
        raise ValueError(f"{name} has no split {split!r}; it has {sorted(splits)}")
    rows = frame[frame["split"] == split] if split in splits else frame
    return (rows if max_pairs is None else rows.iloc[:max_pairs]).reset_index(drop=True)


def evaluate_sts(encoder: Encoder, name: str, split: str = "test", batch_size: int = 64,
                 max_pairs: int | None = None) -> float:
    """Spearman x100 of `encoder` on the `split` rows of STS dataset `name` (:func:`sts_pairs`).

    All subsets pooled (SentEval's "all"), as SimCSE reports STS12-16.
    """
    rows = sts_pairs(name, split, max_pairs)
    return sts_spearman(encoder.encode(rows["sentence1"], batch_size), encoder.encode(rows["sentence2"], batch_size),
                        rows["score"])
