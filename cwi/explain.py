"""Explain any sentence encoder: each word's weight, and which word pairs make two sentences similar.

The door to what the book computes for its own models, for a model and
sentences of your own:

* :func:`word_weights`: each sentence's words with their weights (Integrated
  Gradients or SHAP), as the Attribution chapter tabulates them;
* :func:`similarity`: the cosine of two sentences split, up to the attribution's
  completeness error, into word pairs (``c_w . c_v / N``: a product of two
  single-sentence attributions, not an interaction), each word against the other
  sentence's baseline (``c_w . f(b') / N``) and the two baselines
  (``f(a') . f(b') / N``); the last two depend on the baseline (PAD by default).
  The Similarity chapter's decomposition, :mod:`cwi.similarity`;
* :func:`similarities`: many pairs, each distinct sentence attributed once, in
  batches of sentences of similar length;
* :func:`load`: a registry name, a model folder, a Hub id at a revision, or a
  model already loaded (sentence-transformers, or transformers with its tokenizer).

Nothing is computed another way than in the book: the same loader, pooling,
word alignment (:func:`cwi.stats.tokenize`'s words, tokens shared by character),
attribution methods and decomposition.  ``python -m cwi explain`` is its command
line (:mod:`cwi.explain_cli`).

Example
-------
>>> from cwi import explain
>>> pair = explain.similarity("all-MiniLM-L6-v2", "A man plays a guitar.", "A man is playing the guitar.")
>>> pair.terms          # the parts that sum to pair.score (up to pair.error)
>>> pair.top_pairs(5)   # the word pairs that carry it
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .encoders import POOLINGS, Encoder
from .similarity import PairDecomposition, SentenceVectors, attributed_sentences, decompose, word_contributions

__all__ = ["load", "word_weights", "similarity", "similarities", "PairExplanation", "read_pairs", "TERM_NAMES"]

# What each term of a decomposition is called where readers see it (the keys of PairExplanation.terms).
TERM_NAMES = {
    "same_words": "the same word in both sentences",
    "other_words": "different words",
    "word_baseline": "a word against the other sentence's baseline",
    "baselines": "the two baselines (no word carries it)",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load(model, pooling: str | None = None, revision: str | None = None, tokenizer=None, max_length: int = 128,
         name: str | None = None) -> Encoder:
    """The :class:`~cwi.encoders.Encoder` of `model`, however it is given.

    Parameters
    ----------
    model
        A key of :data:`cwi.models.MODELS` (``"all-MiniLM-L6-v2"`` is installed
        offline); a folder saved with ``save_pretrained`` (its tokenizer beside
        it); a Hugging Face Hub id (``"owner/name"``, loaded at `revision`); a
        loaded ``sentence_transformers.SentenceTransformer`` (its transformer,
        tokenizer, pooling and maximum length are used); a loaded transformers
        model with its `tokenizer`; or an :class:`~cwi.encoders.Encoder`.  A
        loaded model is put in evaluation mode and its attention switched to the
        eager implementation, in place (forward-mode differentiation has no rule
        for fused attention; the numbers are the same up to float rounding).
    pooling
        ``"mean"``, ``"cls"`` (through the checkpoint's trained pooler) or
        ``"cls_before_pooler"``; default: the registry's, the folder's stored
        one, the sentence-transformers model's, else ``"mean"``.
    revision
        The Hub commit (40 hex digits) a Hub id is loaded at; without one the
        default branch is loaded, with a warning.
    tokenizer
        The fast tokenizer of a loaded transformers model.
    name
        What tables call the model (default: the name, id or folder name).

    Raises
    ------
    ValueError
        For a model that is none of these, a pooling the model cannot do, or a
        transformers model without its tokenizer.
    cwi.models.ModelNotAvailableError
        When a Hub model cannot be fetched (offline) or a folder cannot be loaded.
    """
    from . import models

    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}: choose one of {POOLINGS}")
    if isinstance(model, Encoder):
        if pooling is not None and pooling != model.pooling:
            raise ValueError(f"{model.name} is an Encoder with pooling {model.pooling!r}; load it again for {pooling!r}")
        return model
    if isinstance(model, (str, Path)):
        key = str(model)
        if key in models.MODELS or Path(key).expanduser().is_dir():
            if revision is not None:
                raise ValueError(f"--revision pins a Hub id; {key} is a registered model or a folder")
            return models.load_encoder(key, pooling, max_length, name=name)
        if isinstance(model, Path) or key.startswith((".", "/", "~")):
            raise ValueError(f"the folder {key} does not exist")
        if _HUB_ID.match(key):
            spec = models.ModelSpec("hub", key, pooling or "mean", contrastive=False, revision=revision)
            return models.load_spec(spec, name or key, pooling, max_length)
        raise ValueError(f"unknown model {key!r}: not a folder, not a Hub id (owner/name), and not one of "
                         f"{', '.join(models.MODELS)}")
    if hasattr(model, "_first_module") and hasattr(model, "encode"):  # a sentence-transformers model
        return _from_sentence_transformer(model, pooling, name)
    if hasattr(model, "config") and callable(getattr(model, "forward", None)):
        if tokenizer is None:
            raise ValueError("a transformers model needs its tokenizer: load(model, tokenizer=tokenizer)")
        base = getattr(model, "base_model", model)
        pooling = pooling or "mean"
        if pooling == "cls" and getattr(base, "pooler", None) is None:
            raise ValueError(f"{type(model).__name__} has no pooler head: pooling 'cls' is not possible; choose "
                             "'cls_before_pooler' or 'mean'")
        return Encoder(_eager(base), tokenizer, pooling,
                       name or Path(str(getattr(model.config, "_name_or_path", "") or "model")).name, max_length)
    raise ValueError(f"cannot explain a {type(model).__name__}: give a registry name, a folder, a Hub id, a "
                     "sentence-transformers model, or a transformers model with its tokenizer")


def _eager(model):
    """`model` with eager attention: forward-mode differentiation (IG) has no rule for fused (SDPA) attention.

    The book loads every model so; a model loaded elsewhere is switched in place
    (the same numbers, up to float rounding).
    """
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.set_attn_implementation("eager")
    return model


def _from_sentence_transformer(model, pooling: str | None, name: str | None) -> Encoder:
    """The Encoder of a loaded SentenceTransformer: its Transformer module and its Pooling module's mode.

    Only a Transformer, a Pooling and optionally a Normalize module (which leaves
    the cosine as it is) are explained as they are; a model with other modules
    (a Dense projection, say) is refused rather than explained as another model.
    """
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    transformer = modules[0]
    if not hasattr(transformer, "auto_model"):
        raise ValueError(f"the sentence-transformers model starts with {names[0]}, not a Transformer module: only "
                         "transformer encoders can be explained")
    if names[1:2] != ["Pooling"] or any(n != "Normalize" for n in names[2:]):
        raise ValueError(f"the sentence-transformers model is {' -> '.join(names)}: only Transformer -> Pooling "
                         "(-> Normalize) is explained as it is; explain its transformer folder with --pooling instead")
    if getattr(transformer, "do_lower_case", False):
        raise ValueError("the sentence-transformers model lower-cases its input (do_lower_case): give lower-cased "
                         "sentences to explain.load(model[0].auto_model, tokenizer=model.tokenizer, pooling=...)")
    if pooling is None:
        mode = getattr(modules[1], "pooling_mode", None)
        if mode is None and hasattr(modules[1], "get_pooling_mode_str"):  # sentence-transformers before 5
            mode = modules[1].get_pooling_mode_str()
        # sentence-transformers' "cls" takes the [CLS] token's output itself, not BERT's pooler head.
        pooling = {"mean": "mean", "cls": "cls_before_pooler"}.get(mode if isinstance(mode, str) else None)
        if pooling is None:
            raise ValueError(f"the model pools by {mode!r}; the book's attributions pool by mean or [CLS]: pass "
                             "pooling='mean' or 'cls_before_pooler' to explain it with another pooling")
    label = name or Path(str(getattr(transformer.auto_model.config, "_name_or_path", "") or "model")).name
    return Encoder(_eager(transformer.auto_model), transformer.tokenizer, pooling, label,
                   int(getattr(transformer, "max_seq_length", None) or 128))


def word_weights(model, sentences: list[str] | str, method: str = "ig", pooling: str | None = None,
                 baseline: str = "pad", **settings) -> pd.DataFrame:
    """Each word's weight in each sentence: :func:`cwi.attribution.word_weights` with the sentence's text beside.

    Parameters
    ----------
    model
        Anything :func:`load` takes.
    sentences
        One sentence or a list of them.
    method
        ``"ig"`` (Integrated Gradients, adaptive points) or ``"shap"``.
    baseline
        What a word is compared with: ``"pad"``, ``"mask"`` or ``"zero"`` input embeddings.
    **settings
        The method's own (``points``, ``target`` for IG; ``max_evals`` for SHAP).

    Returns
    -------
    pandas.DataFrame
        One row per (sentence, word): ``sentence`` and every column of
        :func:`cwi.attribution.word_weights` (``word``, ``weight``,
        ``normalised_weight``: the weight over the sentence's mean,
        ``completeness_error``, ``word_error``, ``path_points``, ...).
    """
    from .attribution import word_weights as attribute

    sentences = [sentences] if isinstance(sentences, str) else list(sentences)
    encoder = load(model, pooling)
    table = attribute(encoder, sentences, method=method, baseline=baseline, **settings)
    table.insert(1, "sentence", [sentences[i] for i in table["sentence_id"]])
    return table


@dataclass(frozen=True)
class PairExplanation:
    """Why a model finds two sentences similar: its cosine split into word pairs (:func:`similarity`).

    Attributes
    ----------
    decomposition
        The :class:`cwi.similarity.PairDecomposition`: the pair matrix, each word
        against the other's baseline, the baselines' part.
    model, method
        The model's name and the attribution method.
    gold
        A gold similarity score, if the pair came with one.
    truncated
        Whether each sentence was cut to the model's maximum length (the cosine
        and its split are then those of the cut texts).
    """

    decomposition: PairDecomposition
    model: str
    method: str
    gold: float | None = None
    truncated: tuple[bool, bool] = (False, False)

    @property
    def score(self) -> float:
        """The model's cosine of the two sentences."""
        return self.decomposition.score

    @property
    def error(self) -> float:
        """What the terms miss of the score (IG's quadrature; 0 for an exact attribution)."""
        return self.decomposition.error

    @property
    def terms(self) -> dict[str, float]:
        """The parts of :attr:`score` (:data:`TERM_NAMES`): they sum to it up to :attr:`error`."""
        d = self.decomposition
        same = d.same_words
        return {"same_words": same, "other_words": float(d.matrix.sum()) - same,
                "word_baseline": float(d.left.sum() + d.right.sum()), "baselines": d.reference}

    @property
    def matrix(self) -> pd.DataFrame:
        """The pair matrix: row word of the first sentence, column word of the second, value its part of the cosine.

        Words repeat as often as they occur; each cell is the dot product of the
        two words' attribution vectors over the product of the final norms.
        """
        d = self.decomposition
        return pd.DataFrame(d.matrix, index=pd.Index(d.a.words, name="first"),
                            columns=pd.Index(d.b.words, name="second"))

    def contributions(self) -> pd.DataFrame:
        """Each word's part of the word-pair terms (its row or column sum): :func:`cwi.similarity.word_contributions`."""
        return word_contributions(self.decomposition)

    def top_pairs(self, k: int = 5) -> pd.DataFrame:
        """The `k` word pairs with the largest parts of the cosine, by magnitude (signed: some pull apart)."""
        d = self.decomposition
        order = np.argsort(-np.abs(d.matrix), axis=None, kind="stable")[:k]
        rows, columns = np.unravel_index(order, d.matrix.shape)
        return pd.DataFrame({"first": [d.a.words[i] for i in rows], "second": [d.b.words[j] for j in columns],
                             "part": d.matrix[rows, columns], "same_word": d.matches[rows, columns]})

    def to_dict(self) -> dict:
        """Plain data (JSON-ready): the sentences, words, score, terms, matrix and each word's part."""
        d = self.decomposition
        rows, columns = d.contributions()
        return {"model": self.model, "method": self.method, "first": d.a.text, "second": d.b.text,
                "gold": self.gold, "truncated": list(self.truncated), "score": self.score, "error": self.error, "error_bound": d.error_bound,
                "terms": self.terms, "words_first": list(d.a.words), "words_second": list(d.b.words),
                "matrix": d.matrix.tolist(), "first_against_baseline": d.left.tolist(),
                "second_against_baseline": d.right.tolist(), "contributions_first": rows.tolist(),
                "contributions_second": columns.tolist(),
                "path_points": [d.a.path_points, d.b.path_points]}


def _vectors(encoder: Encoder, texts: list[str], method: str, baseline: str, **settings
             ) -> dict[str, tuple[SentenceVectors, bool]]:
    """:func:`cwi.similarity.attributed_sentences`, after checking the method and that every text has a word."""
    from . import stats
    from .attribution import METHODS

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}: choose one of {tuple(METHODS)}")
    for text in dict.fromkeys(texts):
        if not isinstance(text, str) or not stats.tokenize(text):
            raise ValueError(f"the sentence {text!r} has no word to attribute")
    return attributed_sentences(encoder, texts, method, baseline, **settings)


def similarities(model, pairs, gold=None, method: str = "ig", pooling: str | None = None, baseline: str = "pad",
                 **settings) -> list[PairExplanation]:
    """:func:`similarity` of many pairs: each distinct sentence is attributed once, sentences batched.

    Parameters
    ----------
    pairs
        (first, second) sentence pairs, or a DataFrame with ``sentence1``,
        ``sentence2`` and optionally ``gold`` (:func:`read_pairs`).
    gold
        Gold similarity scores, one per pair (optional).
    """
    if isinstance(pairs, pd.DataFrame):
        if gold is None and "gold" in pairs:
            gold = pairs["gold"].tolist()
        pairs = list(zip(pairs["sentence1"], pairs["sentence2"]))
    pairs = [tuple(pair) for pair in pairs]
    for number, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"pair {number} has {len(pair)} sentences, not 2: {pair!r}")
    if gold is not None and len(gold) != len(pairs):
        raise ValueError(f"{len(gold)} gold scores for {len(pairs)} pairs")
    encoder = load(model, pooling)
    vectors = _vectors(encoder, [text for pair in pairs for text in pair], method, baseline, **settings)
    golds = [None] * len(pairs) if gold is None else [None if g is None or not math.isfinite(g) else float(g)
                                                       for g in gold]
    return [PairExplanation(decompose(vectors[a][0], vectors[b][0]), encoder.name, method, g,
                            (vectors[a][1], vectors[b][1]))
            for (a, b), g in zip(pairs, golds)]


def similarity(model, first: str, second: str, method: str = "ig", pooling: str | None = None,
               baseline: str = "pad", **settings) -> PairExplanation:
    """Which words make two sentences similar: the model's cosine split exactly into word pairs.

    ``cos(f(a), f(b)) = sum over word pairs + each word against the other's
    baseline + the baselines' own part``, each divided by the product of the
    two final norms (the module docstring of :mod:`cwi.similarity`; exact up to
    IG's completeness error, :attr:`PairExplanation.error`).  A cell is the
    product of two single-sentence attributions, not an interaction
    attribution, and a word's part (its row or column sum of the word pairs) is
    not its effect on the cosine if it were removed (attributions are path
    integrals from the baseline, not removal differences).

    Parameters
    ----------
    model
        Anything :func:`load` takes.
    method, pooling, baseline, settings
        As :func:`word_weights`.
    """
    return similarities(model, [(first, second)], method=method, pooling=pooling, baseline=baseline, **settings)[0]


def read_pairs(path: Path) -> pd.DataFrame:
    """Sentence pairs from a TSV file: two tab-separated columns and an optional third, a gold score.

    A first line ``sentence1<TAB>sentence2[<TAB>gold]`` is a header; blank lines
    are skipped.  Every line has the same number of fields (2 or 3), no sentence
    is empty and every gold score is a number.

    Raises
    ------
    cwi.data.DataFormatError
        Starting with ``path:line:``, saying what is wrong and what to do.
    FileNotFoundError
        For a missing file.
    """
    from .data import DataFormatError

    path = Path(path)

    def malformed(line: int, message: str) -> DataFormatError:
        return DataFormatError(f"{path}:{line}: {message}")

    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is no part of the first sentence
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise malformed(line, f"byte {err.object[err.start]:#04x} is not UTF-8: save the file as UTF-8") from None
    rows, width = [], None
    # Lines end at "\n" (and "\r\n") only: str.splitlines would also break at characters a sentence may hold.
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if (not rows and width is None and len(fields) in (2, 3)
                and [f.strip().lower() for f in fields[:2]] == ["sentence1", "sentence2"]):
            width = len(fields)  # the header fixes the width
            continue
        if len(fields) not in (2, 3):
            raise malformed(number, f"{len(fields)} tab-separated fields; expected 2 (sentence, sentence) or 3 "
                                    "(sentence, sentence, gold score)")
        if width is not None and len(fields) != width:
            raise malformed(number, f"{len(fields)} fields where the lines before have {width}: give every pair a "
                                    "gold score, or none")
        width = len(fields)
        for k in (0, 1):
            if not fields[k].strip():
                raise malformed(number, f"sentence {k + 1} is empty (a tab too many?)")
        gold = None
        if width == 3:
            try:
                gold = float(fields[2])
            except ValueError:
                raise malformed(number, f"the gold score {fields[2]!r} is not a number") from None
            if not math.isfinite(gold):
                raise malformed(number, f"the gold score {fields[2]!r} is not a finite number")
        rows.append({"sentence1": fields[0].strip(), "sentence2": fields[1].strip(), "gold": gold})
    if not rows:
        raise malformed(1, "no pair: expected lines of two tab-separated sentences (and an optional gold score)")
    frame = pd.DataFrame(rows)
    if width == 2:
        frame = frame.drop(columns="gold")
    return frame
