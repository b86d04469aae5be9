"""SHAP vectors of sentence encoders: shap's Partition explainer over words (or tokens).

The game: the players are the sentence's words; a coalition's payoff is the
encoder's d-dimensional output with the other words' tokens set to the baseline
embeddings (the ones Integrated Gradients starts from; special tokens always
stay).  shap's Partition explainer computes Owen values over a hierarchy of the
players: exact Shapley values for additive models, always efficient (the values
sum to ``f(x) - f(x')``), at a cost that grows with the square of the number of
players rather than exponentially, and all d outputs share each model call.

The hierarchy is shap's own text heuristic (``shap.maskers._text.partition_tree``,
what its Text masker builds over tokens) applied to the words.  An Owen value
splits a node's credit among its children without changing the sum, so a word's
value is the same whether the word is one player or its tokens are players
nested under it: :func:`shap_values` (tokens) and :func:`word_shap` (words) agree
on every word, and the word game needs far fewer model calls.  Coalitions that
the explainer asks for twice (about half of them) are evaluated once.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import torch

from .encoders import Encoder
from .inputs import MEMORY_GB, Attribution, Prepared, WordAttribution, prepare, rows_per_call

__all__ = ["word_shap", "shap_values", "word_tree", "sentence_tree", "nested_tree"]


def word_tree(words: list[str], attached: list[bool]) -> np.ndarray:
    """shap's text hierarchy over `words`: a scipy linkage matrix, shap's Text-masker conventions.

    ``attached[i]`` says word i follows word i-1 without a space and starts with a
    letter (shap's rule for a piece of the same written word: merged first).
    """
    from shap.maskers._text import partition_tree

    tokens = [("##" if glued else "") + word for word, glued in zip(words, attached)]
    tree = partition_tree(tokens, [])
    tree[:, 2] = tree[:, 3] / tree[:, 3].max()  # as shap's Text masker: cluster sizes as heights
    return tree


def nested_tree(tree: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """The hierarchy over the members of `groups` that nests each group as a subtree under `tree`.

    `tree` is a linkage matrix over the groups; a group's members are merged
    left to right first.  Leaves are numbered by the flattened order of `groups`.
    """
    n_leaves = sum(len(g) for g in groups)
    rows, node_of_group, start = [], [], 0
    for group in groups:
        node = start
        for k in range(1, len(group)):
            rows.append([node, start + k, 0.0, k + 1])
            node = n_leaves + len(rows) - 1
        node_of_group.append(node)
        start += len(group)
    sizes = [len(g) for g in groups]
    node_size = dict(zip(node_of_group, sizes))
    mapping = {i: node for i, node in enumerate(node_of_group)}
    for k, (left, right, height, _) in enumerate(tree):
        new = n_leaves + len(rows)
        a, b = mapping[int(left)], mapping[int(right)]
        size = node_size[a] + node_size[b]
        rows.append([a, b, float(height), size])
        mapping[len(groups) + k] = new
        node_size[new] = size
    # Heights grow with size, as shap's trees: the explainer only needs them non-negative.
    matrix = np.array(rows, dtype=float).reshape(-1, 4)
    if len(matrix):
        matrix[:, 2] = matrix[:, 3] / matrix[:, 3].max()
    return matrix


class _Players:
    """A shap masker whose input is a row of M player flags: it hands the mask itself to the model."""

    immutable_outputs = True

    def __init__(self, clustering: np.ndarray, n_players: int):
        self.clustering = clustering
        self.shape = (1, n_players)

    def __call__(self, mask, row):
        return np.asarray(mask, dtype=bool).reshape(1, -1)


class _Game:
    """The encoder on coalitions of players of one sentence, each distinct coalition evaluated once."""

    def __init__(self, encoder: Encoder, sentence: Prepared, membership: torch.Tensor, memory_gb: float):
        self.encoder, self.sentence = encoder, sentence
        self.membership = membership.float().to(sentence.inputs.device)  # (M, T) share of each token in each player
        # Shares strictly between 0 and 1 exist only where a token straddles words: without any, a
        # coalition keeps or drops whole tokens, which a plain selection does more cheaply.
        self.fractional = bool(((self.membership > 0) & (self.membership < 1)).any())
        self.mask = sentence.batch["attention_mask"]
        self.batch_size = rows_per_call(encoder, sentence.length, memory_gb, tangents=False)
        self.seen: dict[bytes, np.ndarray] = {}

    def __call__(self, masks) -> np.ndarray:
        masks = np.asarray(masks, dtype=bool).reshape(-1, self.membership.shape[0])
        keys = [np.packbits(m).tobytes() for m in masks]
        new = {k: m for k, m in zip(keys, masks) if k not in self.seen}
        if new:
            chosen = torch.as_tensor(np.stack(list(new.values())), dtype=torch.float32, device=self.membership.device)
            # A token is present in the share its present players hold (1 or 0 unless it straddles words).
            present = torch.where(self.sentence.special, 1.0, chosen @ self.membership)  # (n, T)
            outputs = []
            inputs, baseline = self.sentence.inputs, self.sentence.baseline
            with torch.no_grad():
                for chunk in present.split(self.batch_size):
                    share = chunk.unsqueeze(-1).to(inputs.dtype)
                    if self.fractional:
                        embeddings = torch.where(share == 1, inputs, torch.where(
                            share == 0, baseline, baseline + share * (inputs - baseline)))
                    else:
                        embeddings = torch.where(share.bool(), inputs, baseline)
                    outputs.append(self.encoder.forward(inputs_embeds=embeddings,
                                                        attention_mask=self.mask.expand(len(chunk), -1)))
            for key, output in zip(new, torch.cat(outputs).float().cpu().numpy()):
                self.seen[key] = output
        return np.stack([self.seen[k] for k in keys])


def _owen(encoder: Encoder, sentence: Prepared, membership: torch.Tensor, clustering: np.ndarray,
          max_evals: int | None, memory_gb: float) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Owen values of the players under `clustering`: (M, d), delta, evaluations, whether the budget was spent.

    Row m of `membership` (M, T) holds player m's share of each token.
    """
    import shap

    n_players = len(membership)
    game = _Game(encoder, sentence, membership, memory_gb)
    everyone, nobody = game(np.ones((1, n_players))), game(np.zeros((1, n_players)))
    delta = torch.as_tensor(everyone[0] - nobody[0])
    if n_players == 1:  # one player takes the whole difference: nothing for the explainer to split
        return delta.unsqueeze(0), delta, len(game.seen), False
    budget = max_evals or 3 * n_players**2
    explainer = shap.explainers.Partition(game, _Players(clustering, n_players))
    explanation = explainer(np.ones((1, n_players)), max_evals=budget, batch_size=max(budget, 2), silent=True)
    # The explainer stops expanding within a batch of its budget: that is a spent budget. Efficiency still
    # holds then (unexpanded groups share their credit equally), so only this count can show it.
    spent = explainer.last_eval_count >= budget - 4
    if spent:
        warnings.warn(f"SHAP used all max_evals={budget} on {sentence.text[:40]!r}... before expanding every group "
                      "of players: groups share credit equally; raise max_evals (None expands all)", stacklevel=3)
    values = torch.as_tensor(np.asarray(explanation.values[0]), dtype=torch.float32)
    return values, delta, len(game.seen), spent


def sentence_tree(sentence: Prepared, keep: list[int] | None = None) -> np.ndarray:
    """:func:`word_tree` of the words of `sentence`, or of those indexed by `keep` (an empty matrix for one word).

    A word counts as attached to the one before (shap's rule for pieces of one
    written word) when no space separates them, it starts with a letter and the
    one before does not end with a non-word character.
    """
    spans = sentence.spans if keep is None else [sentence.spans[w] for w in keep]
    words = [sentence.text[start:end] for start, end in spans]
    if len(words) == 1:
        return np.zeros((0, 4))
    attached = [False] + [previous[1] == span[0] and re.match(r"[A-Za-z]", word) is not None
                          and re.match(r"^.*\W$", before) is None
                          for previous, span, word, before in zip(spans, spans[1:], words[1:], words)]
    return word_tree(words, attached)


def word_shap(encoder: Encoder, sentences: list[str], baseline: str = "pad", max_evals: int | None = None,
              memory_gb: float = MEMORY_GB, progress=None) -> list[WordAttribution]:
    """SHAP (Owen) vectors of the words of each sentence.

    Parameters
    ----------
    max_evals
        Coalitions the explainer may ask for per sentence (repeats included).
        Past them the hierarchy is not expanded further and a group's credit is
        shared equally by its words, which keeps efficiency but blurs the group;
        a warning says so.  ``None`` (the default) allows ``3 W^2`` for W words,
        enough to expand every group.
    memory_gb
        Memory of one batch of coalitions.
    progress
        Anything with ``update(n)``: advanced by each finished sentence.

    Returns
    -------
    list of WordAttribution
        ``evaluations`` counts the distinct coalitions the model ran; ``budget_spent``
        says whether the explainer used all of its budget.
    """
    results = []
    for text in sentences:
        sentence = prepare(encoder, text, baseline)
        values, delta, evaluations, spent = _owen(encoder, sentence, sentence.membership, sentence_tree(sentence),
                                                  max_evals, memory_gb)
        results.append(WordAttribution(values, delta, sentence, None, evaluations, budget_spent=spent))
        if progress is not None:
            progress.update(1)
    return results


def shap_values(encoder: Encoder, sentence: str, baseline: str = "pad", max_evals: int | None = None,
                memory_gb: float = MEMORY_GB) -> Attribution:
    """SHAP vectors of every token of `sentence`, under the word hierarchy with each word's tokens nested.

    The players are the non-special tokens; each word's tokens form a subtree
    (merged left to right) under :func:`word_tree`, so the sum of a word's token
    values equals its :func:`word_shap` value.  A token that straddles words
    (:func:`cwi.inputs.align_words`) is nested under the word holding its
    largest share, which changes the game: in a sentence with such a token the
    equality does not hold.  ``max_evals`` as
    there, with ``3 T^2`` for T players by default.

    Returns
    -------
    Attribution
        (T, d) token vectors with zero rows for the special tokens, ``f(x) - f(x')``, the tokenizer output.
    """
    prepared = prepare(encoder, sentence, baseline)
    owned = prepared.owned_tokens()
    holders = [w for w, positions in enumerate(owned) if positions]  # a word may hold only shares of tokens
    owned = [owned[w] for w in holders]
    tokens = [p for word in owned for p in word]
    clustering = nested_tree(sentence_tree(prepared, holders), owned)
    players = torch.zeros(len(tokens), prepared.length)
    players[range(len(tokens)), tokens] = 1.0
    values, delta, _, _ = _owen(encoder, prepared, players, clustering, max_evals, memory_gb)
    full = torch.zeros(prepared.length, values.shape[1])
    full[tokens] = values
    return Attribution(full, delta, prepared.batch)
