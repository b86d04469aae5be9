"""Tiny random-weight models in the on-disk shape of the Hub checkpoints the ``paper`` profile names.

:func:`build_hub_cache` writes every ``hub`` model of :data:`cwi.models.MODELS`
into a Hugging Face cache folder laid out as the Hub client lays it out::

    HF_HOME/hub/models--ORG--NAME/
        refs/main                  the commit hash
        snapshots/<commit>/        config.json, model.safetensors, tokenizer files

so that, with ``HF_HUB_OFFLINE=1`` and ``HF_HOME`` pointing there, the registry's
ordinary Hub loading code (:func:`cwi.models.load_encoder`) loads them by their real
ids and pinned revisions.  Each model keeps what matters to the book of its
original: the architecture class it was saved as (``BertForPreTraining``,
``RobertaForMaskedLM``, ``MPNetForMaskedLM``, ``BertModel`` with the trained
pooler SimCSE ships), the tokenizer family (WordPiece uncased, byte-level BPE with
``<s>``/``</s>``, MPNet's WordPiece with ``<s>``/``</s>``) and the
sentence-transformers files.  Sizes are tiny; vocabularies are trained here on
a few thousand sentences of the data pack.

The tokenizer builders also serve the word-alignment tests (plus a SentencePiece
Unigram tokenizer, as ALBERT or XLM-R use).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import torch
from tokenizers import SentencePieceUnigramTokenizer, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer
from tokenizers.implementations import ByteLevelBPETokenizer

from cwi import data
from cwi.models import MODELS

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
MPNET_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"]  # MPNet's vocab.txt keeps BERT's [UNK] too
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=130)


def sentences(limit: int = 3_000) -> list[str]:
    """Training text for the tiny vocabularies: the first sentences of the data pack's corpus."""
    return data.load_corpus("wiki", limit)


def wordpiece(texts: list[str], specials: list[str] = BERT_SPECIALS, vocab_size: int = 1_500) -> list[str]:
    """An uncased WordPiece vocabulary (BERT's normaliser and pre-tokenizer), specials first."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.get)


def bert_tokenizer(texts: list[str], folder: Path):
    """BERT uncased: ``vocab.txt`` and a fast tokenizer, saved in `folder`."""
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(wordpiece(texts)) + "\n")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def mpnet_tokenizer(texts: list[str], folder: Path):
    """MPNet: BERT's uncased WordPiece with ``<s>``/``</s>`` specials, saved in `folder`."""
    from transformers import MPNetTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(wordpiece(texts, MPNET_SPECIALS)) + "\n")
    tokenizer = MPNetTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def roberta_tokenizer(texts: list[str], folder: Path, vocab_size: int = 1_500):
    """RoBERTa: byte-level BPE (``vocab.json``, ``merges.txt``) with ``<s>``/``</s>``, saved in `folder`."""
    from transformers import RobertaTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=ROBERTA_SPECIALS, show_progress=False)
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    return tokenizer


def sentencepiece_tokenizer(texts: list[str], vocab_size: int = 1_500):
    """A SentencePiece Unigram tokenizer (``▁`` marks a word start), as ALBERT or XLM-R use, with ``<s>``/``</s>``."""
    from transformers import PreTrainedTokenizerFast

    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=ROBERTA_SPECIALS, unk_token="<unk>",
                                show_progress=False)
    backend = unigram._tokenizer
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[(token, backend.token_to_id(token)) for token in ("<s>", "</s>")])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")


def _bert(vocab_size: int, architecture: str):
    from transformers import BertConfig, BertForPreTraining, BertModel

    config = BertConfig(vocab_size=vocab_size, **SIZES)
    return BertForPreTraining(config) if architecture == "pretraining" else BertModel(config, add_pooling_layer=True)


def _roberta(vocab_size: int, architecture: str):
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaModel

    config = RobertaConfig(vocab_size=vocab_size, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
                           **SIZES)
    return RobertaForMaskedLM(config) if architecture == "masked-lm" else RobertaModel(config, add_pooling_layer=True)


def _mpnet(vocab_size: int, architecture: str):
    from transformers import MPNetConfig, MPNetForMaskedLM, MPNetModel

    config = MPNetConfig(vocab_size=vocab_size, **SIZES)
    return MPNetForMaskedLM(config) if architecture == "masked-lm" else MPNetModel(config, add_pooling_layer=True)


# How each Hub checkpoint is saved: tokenizer family, model family, architecture, sentence-transformers files.
SHAPES = {
    "bert-base-uncased": ("bert", _bert, "pretraining", False),
    "princeton-nlp/unsup-simcse-bert-base-uncased": ("bert", _bert, "model", False),
    "princeton-nlp/sup-simcse-bert-base-uncased": ("bert", _bert, "model", False),
    "roberta-base": ("roberta", _roberta, "masked-lm", False),
    "princeton-nlp/unsup-simcse-roberta-base": ("roberta", _roberta, "model", False),
    "princeton-nlp/sup-simcse-roberta-base": ("roberta", _roberta, "model", False),
    "nreimers/MiniLM-L6-H384-uncased": ("bert", _bert, "model", False),
    "sentence-transformers/all-MiniLM-L6-v2": ("bert", _bert, "model", True),
    "microsoft/mpnet-base": ("mpnet", _mpnet, "masked-lm", False),
    "sentence-transformers/all-mpnet-base-v2": ("mpnet", _mpnet, "model", True),
}
TOKENIZERS = {"bert": bert_tokenizer, "roberta": roberta_tokenizer, "mpnet": mpnet_tokenizer}


def fixture_revision(model_id: str) -> str:
    """The commit the registry pins, or a made-up 40-hex one for a model it does not pin."""
    return MODELS[model_id].revision or hashlib.sha1(model_id.encode()).hexdigest()


def _sentence_transformers_files(folder: Path, dimension: int) -> None:
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": dimension, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))


@contextlib.contextmanager
def _quiet():
    """No "Writing model shards" bar per model."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.enable_progress_bar()


def build_hub_cache(hf_home: Path, texts: list[str] | None = None) -> Path:
    """Write every ``hub`` model of the registry, tiny and random, into the Hub cache under `hf_home`.

    Returns `hf_home`: point ``HF_HOME`` at it (with ``HF_HUB_OFFLINE=1``).
    """
    texts = texts or sentences()
    staged: dict[str, Path] = {}
    for model_id, (family, build, architecture, sentence_transformers) in SHAPES.items():
        revision = fixture_revision(model_id)
        repo = hf_home / "hub" / f"models--{model_id.replace('/', '--')}"
        snapshot = repo / "snapshots" / revision
        if family not in staged:  # one vocabulary per tokenizer family, shared as in the originals' families
            staged[family] = hf_home / "staged" / family
            TOKENIZERS[family](texts, staged[family])
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(staged[family])
        tokenizer.save_pretrained(snapshot)
        for vocabulary in ("vocab.txt", "vocab.json", "merges.txt"):  # the slow tokenizer's files, as the Hub has them
            if (staged[family] / vocabulary).exists():
                shutil.copy(staged[family] / vocabulary, snapshot / vocabulary)
        torch.manual_seed(int(hashlib.sha1(model_id.encode()).hexdigest()[:8], 16))
        model = build(len(tokenizer), architecture)
        with _quiet():
            model.save_pretrained(snapshot)
        if sentence_transformers:
            _sentence_transformers_files(snapshot, SIZES["hidden_size"])
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(revision)
    return hf_home
