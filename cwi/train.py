"""Training the book's own encoder pair: masked-LM pre-training, then SimCSE.

* :func:`train_wordpiece`: a WordPiece vocabulary fitted to the corpus;
* :func:`pretrain_mlm`: a small BERT pre-trained from scratch with masked-LM;
* :func:`train_simcse`: SimCSE from that same checkpoint, unsupervised (dropout
  positives, in-batch negatives) or supervised (SNLI entailment positives,
  contradiction hard negatives);
* :func:`save_checkpoint`, :func:`history`: a trained model on disk.

Each takes its data and settings and returns the trained model; which sentences
and which cached checkpoint a profile uses is :mod:`cwi.pipeline`'s business.
Training is seeded and deterministic on CPU and uses a GPU when torch sees one.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .encoders import POOLING_FILE, default_device, load_transformer, pool
from .progress import Progress

if TYPE_CHECKING:  # settings objects are plain inputs here; profiles are the pipeline's business
    from .config import MLMSettings, SimCSESettings

__all__ = [
    "TRAIN_VERSION",
    "device",
    "train_wordpiece",
    "mask_tokens",
    "mlm_loss",
    "simcse_loss",
    "init_word_embeddings",
    "new_mlm_model",
    "mlm_batch",
    "mlm_step",
    "MLPHead",
    "set_dropout",
    "simcse_step",
    "pretrain_mlm",
    "train_simcse",
    "save_checkpoint",
    "history",
]

# Bump when training changes what a checkpoint holds: it is part of every checkpoint key.
TRAIN_VERSION = 1
HISTORY_FILE = "cwi_history.json"


def device() -> torch.device:
    """Where training runs: :func:`cwi.encoders.default_device` (``$CWI_DEVICE``, else a GPU if torch sees one)."""
    return default_device()


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

    from tokenizers import Tokenizer, decoders, models, processors
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
    model.normalizer = stats.BERT_NORMALIZER  # the words of the statistics, exactly
    model.pre_tokenizer = stats.BERT_PRE_TOKENIZER
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


def save_checkpoint(folder: Path, model, tokenizer, record: dict, pooling: str = "mean") -> None:
    """Write model, tokenizer, pooling and training history into `folder`.

    :func:`cwi.cache.atomic_write` calls it on a staging folder, so a
    checkpoint appears whole or not at all.
    """
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Writing model shards" bar per save: in a notebook, a widget
    # per snapshot that the rendered book cannot draw. Training reports its own progress.
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
    tokenizer.save_pretrained(folder)
    (folder / POOLING_FILE).write_text(json.dumps({"pooling": pooling}))
    (folder / HISTORY_FILE).write_text(json.dumps(record))


def history(checkpoint: Path) -> dict:
    """Training history stored with a checkpoint (losses, settings, evaluation)."""
    return json.loads((Path(checkpoint) / HISTORY_FILE).read_text())


def _linear_warmup_decay(optimizer, warmup: int, steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / max(1, warmup), max(0.0, (steps - step) / max(1, steps - warmup)))
    )


def init_word_embeddings(model, tokenizer, words: list[str], vectors: np.ndarray, seed: int) -> float:
    """Start the input embeddings of whole-word tokens from static word vectors; return the share covered.

    A vocabulary entry that is a word of `words` (not a ``##`` piece, not a
    special token) gets that word's vector, mapped into the model's width by a
    seeded matrix with orthonormal rows (cosines between words are kept) and
    scaled to unit mean norm; the others keep their random start.  The
    masked-LM head shares these weights, so both ends start from the vectors.
    """
    embeddings = model.get_input_embeddings().weight
    hidden = embeddings.shape[1]
    if vectors.shape[1] > hidden:
        raise ValueError(f"word vectors of dimension {vectors.shape[1]} cannot be mapped into a model of width "
                         f"{hidden}: use hidden_size >= {vectors.shape[1]}")
    index = {word: i for i, word in enumerate(words)}
    rows, sources = [], []
    for token, token_id in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):  # a fixed order
        if token in index and not token.startswith("##") and token not in tokenizer.all_special_tokens:
            rows.append(token_id)
            sources.append(index[token])
    if not rows:
        raise ValueError("no vocabulary entry has a word vector: are the vectors lower-cased words?")
    generator = torch.Generator().manual_seed(seed)
    projection, _ = torch.linalg.qr(torch.randn(hidden, vectors.shape[1], generator=generator))
    chosen = torch.as_tensor(vectors[sources], dtype=torch.float32) @ projection.T
    chosen /= chosen.norm(dim=1).mean()
    with torch.no_grad():
        embeddings[torch.as_tensor(rows)] = chosen.to(embeddings.device)
    return len(rows) / len(tokenizer)


def new_mlm_model(settings: MLMSettings, tokenizer):
    """A randomly initialised BERT masked-LM of the sizes in `settings`."""
    from transformers import BertConfig, BertForMaskedLM

    bert_config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=settings.hidden_size, num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads, intermediate_size=settings.intermediate_size,
        max_position_embeddings=max(128, settings.max_length), pad_token_id=tokenizer.pad_token_id,
    )
    return BertForMaskedLM(bert_config).to(device())


def mlm_batch(tokenizer, texts: list[str], settings: MLMSettings, generator: torch.Generator):
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


def pretrain_mlm(train_sentences: list[str], heldout: list[str], settings: MLMSettings, seed: int = 0,
                 progress: bool = True, word_vectors: tuple[list[str], np.ndarray] | None = None,
                 label: str = "masked-LM"):
    """Pre-train a small BERT with masked-LM on `train_sentences`; return (model, tokenizer, record).

    The WordPiece vocabulary is fitted to `train_sentences`; the record holds the
    losses and the masked-LM loss and accuracy on `heldout` (fixed masks).  With
    `word_vectors` (words, array), whole-word embeddings start from them
    (:func:`init_word_embeddings`).  `label` names the run in the terminal's progress lines.
    """
    if not heldout:
        raise ValueError("pretrain_mlm needs held-out sentences to report its masked-LM loss")
    _seed_everything(seed)
    tokenizer = train_wordpiece(train_sentences, settings.vocab_size)
    model = new_mlm_model(settings, tokenizer)
    covered = None if word_vectors is None else init_word_embeddings(model, tokenizer, *word_vectors, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    schedule = _linear_warmup_decay(optimizer, settings.warmup, settings.steps)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_sentences), generator=generator)

    losses = []
    model.train()
    with Progress(settings.steps, label, show_bar=progress, announce_start=True) as bar:
        for step in range(settings.steps):
            start = (step * settings.batch_size) % len(order)
            texts = [train_sentences[i] for i in order[start : start + settings.batch_size].tolist()]
            losses.append(mlm_step(model, optimizer, schedule, mlm_batch(tokenizer, texts, settings, generator)))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            bar.update()

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
              "heldout_tokens": total, "parameters": sum(p.numel() for p in model.parameters()),
              "vocabulary_with_word_vectors": covered}
    return model, tokenizer, record


class MLPHead(torch.nn.Module):
    """SimCSE's training-time head: a dense layer and tanh over the pooled vector.

    SimCSE (``mlp_only_train``) trains with it and drops it at evaluation, so the
    encoder's sentence vector is the pooled vector before it.
    """

    def __init__(self, width: int):
        super().__init__()
        self.dense = torch.nn.Linear(width, width)
        torch.nn.init.normal_(self.dense.weight, std=0.02)  # BERT's initialisation
        torch.nn.init.zeros_(self.dense.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(pooled))


def set_dropout(model, probability: float) -> None:
    """Set every dropout of `model` to `probability` (the saved config keeps its own value)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = probability


def simcse_step(model, tokenizer, optimizer, schedule, chosen: list, settings: SimCSESettings,
                supervised: bool, pooling: str = "mean", head: torch.nn.Module | None = None) -> float:
    """One SimCSE update on `chosen` (sentences, or triplets when `supervised`); returns the loss.

    `head` (:class:`MLPHead`), when given, maps the pooled vectors before the loss.
    """

    def embed(texts):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=settings.max_length,
                          return_tensors="pt").to(device())
        pooled = pool(model(**batch).last_hidden_state, batch["attention_mask"], pooling)
        return pooled if head is None else head(pooled)

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


def train_simcse(base: Path, examples: list, settings: SimCSESettings, supervised: bool, seed: int = 0,
                 pooling: str = "mean", progress: bool = True, snapshot=None, label: str | None = None):
    """Fine-tune the checkpoint `base` with SimCSE; return (model, tokenizer, record).

    Unsupervised: `examples` are sentences, each encoded twice in training mode,
    and the two dropout masks make the positive pair.  Supervised: `examples`
    are (premise, entailed, contradicting) triplets (:func:`cwi.data.snli_triplets`).
    Sentences are pooled with `pooling` on both sides, through SimCSE's MLP head
    when ``settings.mlp_head`` (dropped afterwards); the checkpoint should be
    evaluated with the same pooling (:func:`save_checkpoint` stores it).

    `snapshot`, if given, is called as ``snapshot(step, model, tokenizer)`` with
    the model in evaluation mode before the first update (step 0) and after each
    step of ``settings.snapshots``; what it returns is stored in the record's
    ``snapshots`` under that step.  The trajectory and the dev-set choice of
    the pipeline are built on it.  `label` names the run in its progress lines
    (default: ``unsup-SimCSE`` or ``sup-SimCSE``).
    """
    from transformers import AutoTokenizer

    _seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = load_transformer(base).to(device())
    set_dropout(model, settings.dropout)
    head = MLPHead(model.config.hidden_size).to(device()) if settings.mlp_head else None
    parameters = list(model.parameters()) + ([] if head is None else list(head.parameters()))
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.0)
    schedule = _linear_warmup_decay(optimizer, 0, settings.steps)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(examples), generator=generator).tolist()

    def take(step):
        if snapshot is None:
            return
        model.eval()
        snapshots[step] = snapshot(step, model, tokenizer)
        model.train()

    losses, snapshots = [], {}
    take(0)
    model.train()  # dropout on: it makes the positive pairs of unsupervised SimCSE
    with Progress(settings.steps, label or f"{'sup' if supervised else 'unsup'}-SimCSE", show_bar=progress,
                  announce_start=True) as bar:
        for step in range(1, settings.steps + 1):
            start = ((step - 1) * settings.batch_size) % len(order)
            chosen = [examples[i] for i in order[start : start + settings.batch_size]]
            losses.append(simcse_step(model, tokenizer, optimizer, schedule, chosen, settings, supervised, pooling,
                                      head))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            bar.update()
            if step in settings.snapshots:
                take(step)

    model.eval()
    record = {"kind": "sup-simcse" if supervised else "unsup-simcse", "settings": asdict(settings),
              "seed": seed, "losses": losses, "base": str(base), "examples": len(examples),
              "snapshots": {str(k): v for k, v in snapshots.items()}}
    return model, tokenizer, record
