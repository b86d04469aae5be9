"""Training the book's own encoder pair: masked-LM pre-training, then SimCSE.

* :func:`train_wordpiece`: a WordPiece vocabulary fitted to the corpus;
* :func:`pretrain_mlm`: a small BERT pre-trained from scratch with masked-LM;
* :func:`train_simcse`: SimCSE from that same checkpoint, unsupervised (dropout
  positives, in-batch negatives) or supervised (SNLI entailment positives,
  contradiction hard negatives);
* :func:`train_control`: the matched non-contrastive twin of a SimCSE run: the
  same base, sentences, batches, steps, learning rate, schedule and dropout, with
  masked-LM (unsupervised) or a softmax classifier of the NLI label
  (supervised, Sentence-BERT's objective) in place of the contrastive loss;
* :func:`save_checkpoint`, :func:`history`: a trained model on disk.

Each step encodes its sentences in length-sorted chunks (:func:`encode_pooled`,
:func:`mlm_chunks`): the same batch and the same loss as one padded batch, with
far less padding.

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

from .encoders import POOLING_FILE, default_device, load_masked_lm, load_transformer, pool
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
    "control_step",
    "NLIClassifier",
    "LENGTH_CHUNKS",
    "length_chunks",
    "encode_pooled",
    "mlm_chunks",
    "pretrain_mlm",
    "train_simcse",
    "train_control",
    "OBJECTIVES",
    "save_checkpoint",
    "history",
]

# Bump when training changes what a checkpoint holds: it is part of every checkpoint key.
# 2: every step encodes its sentences in LENGTH_CHUNKS length-sorted chunks (other dropout and masking
#    draws than one padded batch, so other trained numbers within seed noise); runs keep no step-0 copy of the base.
TRAIN_VERSION = 2
HISTORY_FILE = "cwi_history.json"
# Length-sorted chunks per training step: the same batch and loss with about a third of the padding
# (benchmarks/train.py).  It changes the dropout and masking draws, so it is part of every checkpoint key.
LENGTH_CHUNKS = 4
# What a fine-tuning run optimises: SimCSE's contrastive loss, or the matched non-contrastive control's.
OBJECTIVES = ("simcse", "control")


def device() -> torch.device:
    """Where training runs: :func:`cwi.encoders.default_device` (``$CWI_DEVICE``, else a GPU if torch sees one)."""
    return default_device()


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


# --- length-sorted chunks ---------------------------------------------------------------


def length_chunks(lengths, chunks: int) -> list[list[int]]:
    """Indices of `lengths` sorted by length (stable) and cut into `chunks` parts of equal size (the last smaller)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    size = max(1, -(-len(order) // max(1, chunks)))
    return [order[start:start + size] for start in range(0, len(order), size)]


def encode_pooled(model, tokenizer, texts: list[str], max_length: int, pooling: str = "mean",
                  chunks: int = LENGTH_CHUNKS) -> torch.Tensor:
    """Pooled sentence vectors of `texts` (in their order), the forward pass run on length-sorted chunks.

    A sentence's vector does not depend on the padding around it (attention and
    the mean skip padded positions), so this equals one padded batch up to
    floating-point rounding and the dropout draws, with less padding to compute.
    """
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    pooled, where = [], []
    for index in length_chunks([len(ids) for ids in encoded["input_ids"]], chunks):
        batch = tokenizer.pad({key: [encoded[key][i] for i in index] for key in encoded.keys()},
                              return_tensors="pt").to(device())
        pooled.append(pool(model(**batch).last_hidden_state, batch["attention_mask"], pooling))
        where += index
    inverse = torch.empty(len(where), dtype=torch.long)
    inverse[torch.tensor(where)] = torch.arange(len(where))
    return torch.cat(pooled)[inverse.to(device())]


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


def mlm_chunks(tokenizer, texts: list[str], max_length: int, probability: float, generator: torch.Generator,
               chunks: int = LENGTH_CHUNKS) -> list[tuple]:
    """`texts` cut into length-sorted chunks, each tokenized, padded and masked: a list of :func:`mlm_batch` tuples."""
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    parts = []
    for index in length_chunks(lengths, chunks):
        encoded = tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt", return_special_tokens_mask=True)
        special = encoded["special_tokens_mask"].bool() | (encoded["attention_mask"] == 0)
        ids, picked = mask_tokens(encoded["input_ids"], special, tokenizer.mask_token_id, len(tokenizer),
                                  probability, generator)
        parts.append(tuple(t.to(device()) for t in (ids, encoded["attention_mask"], picked, encoded["input_ids"])))
    return parts


def _chunked_mlm_loss(model, parts: list[tuple]) -> torch.Tensor:
    """The masked-LM loss of a batch given as chunks: the mean cross-entropy over all picked positions."""
    picked = [int(part[2].sum()) for part in parts]
    if not any(picked):  # nothing masked in the whole batch (tiny batches only): a step that changes nothing
        return torch.zeros((), device=device(), requires_grad=True)
    total = sum(picked)
    return sum(mlm_loss(model, *part)[0] * n / total for part, n in zip(parts, picked) if n)


def mlm_step(model, optimizer, schedule, batch, clip: float | None = 1.0) -> float:
    """One masked-LM update (gradient clipped at norm `clip`); returns the loss.

    `batch` is one :func:`mlm_batch` tuple or a list of them (:func:`mlm_chunks`).
    """
    loss = _chunked_mlm_loss(model, batch if isinstance(batch, list) else [batch])
    optimizer.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
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
            losses.append(mlm_step(model, optimizer, schedule, mlm_chunks(
                tokenizer, texts, settings.max_length, settings.mask_probability, generator)))
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
                supervised: bool, pooling: str = "mean", head: torch.nn.Module | None = None,
                chunks: int = LENGTH_CHUNKS) -> float:
    """One SimCSE update on `chosen` (sentences, or triplets when `supervised`); returns the loss.

    `head` (:class:`MLPHead`), when given, maps the pooled vectors before the loss.
    Every sentence of the step is encoded in one call of :func:`encode_pooled`,
    in `chunks` length-sorted chunks (1: one padded batch).
    """
    n = len(chosen)
    texts = [s for part in zip(*chosen) for s in part] if supervised else chosen + chosen
    pooled = encode_pooled(model, tokenizer, texts, settings.max_length, pooling, chunks)
    pooled = pooled if head is None else head(pooled)
    if supervised:  # premises, entailed, contradicting
        loss = simcse_loss(pooled[:n], pooled[n:2 * n], settings.temperature, pooled[2 * n:])
    else:  # one forward for both copies: two dropout masks per sentence
        loss = simcse_loss(pooled[:n], pooled[n:], settings.temperature)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.item()


class NLIClassifier(torch.nn.Module):
    """Sentence-BERT's training head: a softmax classifier over ``(u, v, |u - v|)`` of two pooled sentences.

    The supervised control's objective (Reimers and Gurevych 2019); like SimCSE's
    MLP head, it is dropped after training.
    """

    def __init__(self, width: int, labels: int = 2):
        super().__init__()
        self.linear = torch.nn.Linear(3 * width, labels)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([u, v, (u - v).abs()], dim=-1))


def control_step(model, tokenizer, optimizer, schedule, chosen: list, settings: SimCSESettings, supervised: bool,
                 pooling: str, head: torch.nn.Module | None, generator: torch.Generator,
                 mask_probability: float) -> float:
    """One update of the matched non-contrastive control on the SimCSE step's own examples; returns the loss.

    Unsupervised: masked-LM on the step's sentences (`model` a masked-LM with its
    head, `mask_probability` of the tokens picked).  Supervised: each triplet
    gives two labelled pairs, (premise, entailed) and (premise, contradicting),
    classified by `head` (:class:`NLIClassifier`) over the pooled sentences.
    """
    if supervised:
        n = len(chosen)
        texts = [s for part in zip(*chosen) for s in part]
        pooled = encode_pooled(model, tokenizer, texts, settings.max_length, pooling)
        premises = pooled[:n].repeat(2, 1)
        logits = head(premises, pooled[n:])  # entailed then contradicting hypotheses
        labels = torch.arange(2, device=logits.device).repeat_interleave(n)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        return loss.item()
    return mlm_step(model, optimizer, schedule, mlm_chunks(tokenizer, chosen, settings.max_length, mask_probability,
                                                           generator), clip=None)


def train_simcse(base: Path, examples: list, settings: SimCSESettings, supervised: bool, seed: int = 0,
                 pooling: str = "mean", progress: bool = True, snapshot=None, label: str | None = None,
                 stop: int | None = None):
    """Fine-tune the checkpoint `base` with SimCSE; return (model, tokenizer, record).

    Unsupervised: `examples` are sentences, each encoded twice in training mode,
    and the two dropout masks make the positive pair.  Supervised: `examples`
    are (premise, entailed, contradicting) triplets (:func:`cwi.data.snli_triplets`).
    Sentences are pooled with `pooling` on both sides, through SimCSE's MLP head
    when ``settings.mlp_head`` (dropped afterwards); the checkpoint should be
    evaluated with the same pooling (:func:`save_checkpoint` stores it).

    `snapshot`, if given, is called as ``snapshot(step, model, tokenizer)`` with
    the model in evaluation mode after each step of ``settings.snapshots``; what
    it returns is stored in the record's ``snapshots`` under that step.  (Step 0
    is the base itself: its caller scores it once, not every run.)  The
    trajectory and the dev-set choice of the pipeline are built on it.  `stop`
    ends the run after that many steps of the schedule of ``settings.steps``
    (the model a full run has at that step: a recipe's fixed step).  `label`
    names the run in its progress lines (default: ``unsup-SimCSE`` or ``sup-SimCSE``).
    """
    return _fine_tune(base, examples, settings, supervised, "simcse", seed, pooling, progress, snapshot, label, stop)


def train_control(base: Path, examples: list, settings: SimCSESettings, supervised: bool, seed: int = 0,
                  pooling: str = "mean", progress: bool = True, snapshot=None, label: str | None = None,
                  stop: int | None = None, mask_probability: float = 0.15):
    """The matched non-contrastive control of a SimCSE run; arguments and return as :func:`train_simcse`.

    Everything but the loss is the SimCSE run's: the base, the examples in the
    same seeded order and batches, the steps and `stop`, the learning rate and
    its schedule, the optimiser, the dropout and the pooling of the saved model.
    The loss is masked-LM on the batch's sentences (unsupervised;
    `mask_probability` as in pre-training, the masked-LM head of the base
    trained on) or a softmax classifier of entailment against contradiction
    over ``(u, v, |u - v|)`` (supervised: :class:`NLIClassifier`, Sentence-BERT's
    objective, dropped afterwards, as SimCSE's MLP head is).  SimCSE's MLP head
    and temperature play no part.
    """
    return _fine_tune(base, examples, settings, supervised, "control", seed, pooling, progress, snapshot, label, stop,
                      mask_probability)


def _fine_tune(base: Path, examples: list, settings: SimCSESettings, supervised: bool, objective: str, seed: int,
               pooling: str, progress: bool, snapshot, label: str | None, stop: int | None,
               mask_probability: float = 0.15):
    """The loop :func:`train_simcse` and :func:`train_control` share: only the step differs."""
    from transformers import AutoTokenizer

    if objective not in OBJECTIVES:
        raise ValueError(f"unknown training objective {objective!r}: choose one of {OBJECTIVES}")
    stop = settings.steps if stop is None else stop
    if not 0 < stop <= settings.steps:
        raise ValueError(f"stop must be a step in 1..{settings.steps} (SimCSESettings.steps), got {stop}")
    _seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    masked_lm = objective == "control" and not supervised
    trained = (load_masked_lm(base) if masked_lm else load_transformer(base)).to(device())
    model = trained.base_model if masked_lm else trained  # the encoder a snapshot saves and scores
    set_dropout(trained, settings.dropout)
    width = model.config.hidden_size
    if objective == "simcse":
        head = MLPHead(width).to(device()) if settings.mlp_head else None
    else:
        head = NLIClassifier(width).to(device()) if supervised else None
    parameters = list(trained.parameters()) + ([] if head is None else list(head.parameters()))
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.0)
    schedule = _linear_warmup_decay(optimizer, 0, settings.steps)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(examples), generator=generator).tolist()
    kind = f"{'sup' if supervised else 'unsup'}-{'SimCSE' if objective == 'simcse' else 'control'}"

    losses, snapshots = [], {}
    trained.train()  # dropout on: it makes the positive pairs of unsupervised SimCSE
    with Progress(stop, label or kind, show_bar=progress, announce_start=True) as bar:
        for step in range(1, stop + 1):
            start = ((step - 1) * settings.batch_size) % len(order)
            chosen = [examples[i] for i in order[start : start + settings.batch_size]]
            if objective == "simcse":
                loss = simcse_step(model, tokenizer, optimizer, schedule, chosen, settings, supervised, pooling, head)
            else:
                loss = control_step(trained, tokenizer, optimizer, schedule, chosen, settings, supervised, pooling,
                                    head, generator, mask_probability)
            losses.append(loss)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            bar.update()
            if snapshot is not None and (step in settings.snapshots or step == stop):
                trained.eval()
                snapshots[step] = snapshot(step, model, tokenizer)
                trained.train()

    trained.eval()
    record = {"kind": kind.lower(), "objective": objective, "settings": asdict(settings), "seed": seed,
              "losses": losses, "base": str(base), "examples": len(examples), "stop": stop,
              "snapshots": {str(k): v for k, v in snapshots.items()}}
    return model, tokenizer, record
