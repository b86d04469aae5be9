"""Vector Integrated Gradients by forward-mode differentiation.

A sentence encoder outputs d numbers.  The attribution vector of token i is

    c_i = integral_0^1 J_i(x(a)) (x_i - x'_i) da,    x(a) = x' + a (x - x'),

with ``J_i`` the Jacobian of the sentence embedding with respect to token i's
input embedding.  Each ``J_i(x(a)) (x_i - x'_i)`` is a Jacobian-vector product,
so forward-mode differentiation (``torch.func.jvp``, vectorised with ``vmap``)
yields all d dimensions in one pass per tangent and path point, where a
backward-mode tool needs one pass per output dimension.  Completeness:
``sum_i c_i = f(x) - f(x')`` up to the quadrature error.

* :func:`integrated_gradients`: one sentence, one tangent per token (token attributions).
* :func:`word_integrated_gradients`: many sentences at once, one tangent per
  *word* (the Jacobian-vector product is linear in the tangent, so a tangent
  holding all of a word's token differences gives the sum of their vectors, the
  word's vector, in one pass), sentences of similar length in one padded call,
  and adaptive path points: each sentence keeps the first rule of a doubling
  sequence whose completeness error meets the target.  By default the rules are
  Clenshaw-Curtis (:func:`clenshaw_curtis`), which nest, so going on to the next
  rule reuses every point already computed.
* :func:`integrated_gradients_captum`: the reference, captum looped over output dimensions.

The token path and captum use the Gauss-Legendre rule (:func:`quadrature`); the
word path takes either.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import jvp, vmap

from .encoders import Encoder
from .inputs import MEMORY_GB, Attribution, Prepared, WordAttribution, pad, prepare, rows_per_call

__all__ = ["quadrature", "clenshaw_curtis", "integrated_gradients", "word_integrated_gradients",
           "integrated_gradients_captum", "completeness_error", "word_error", "unconverged", "completeness_by_rule",
           "ADAPTIVE_POINTS", "RULES"]

# The adaptive rule's default sequence: nested Clenshaw-Curtis rules of 8, 16, 32 and 64 intervals.
ADAPTIVE_POINTS = (9, 17, 33, 65)
RULES = ("clenshaw-curtis", "gauss-legendre")


def quadrature(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre points ``a`` in (0, 1) and their weights, `steps` of each.

    The rule of ``numpy.polynomial.legendre.leggauss`` moved from (-1, 1) to
    (0, 1); captum's ``gausslegendre`` method computes the same numbers.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    # float32, as the models compute: the same tensors captum's rule gives.
    return torch.tensor((0.5 * (1 + nodes)).tolist()), torch.tensor((0.5 * weights).tolist())


def clenshaw_curtis(points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clenshaw-Curtis points ``a = (1 - cos(j pi / n)) / 2``, j = 0..n, in [0, 1] and their weights (n = points - 1).

    Exact for polynomials of degree n; the rule of 2n intervals contains every
    point of the rule of n, so a doubling sequence of rules reuses all earlier work.
    """
    if points < 2:
        raise ValueError(f"a Clenshaw-Curtis rule has at least 2 points, got {points}")
    n = points - 1
    j = np.arange(n + 1)
    weights = np.empty(n + 1)
    for k in j:  # Waldvogel's closed form, term by term (n <= a few hundred)
        m = np.arange(1, n // 2 + 1)
        factor = np.where(2 * m == n, 1.0, 2.0)
        tail = np.sum(factor / (4 * m**2 - 1) * np.cos(2 * m * np.pi * k / n))
        weights[k] = (1.0 if k in (0, n) else 2.0) / n * (1 - tail)
    return torch.tensor((0.5 * (1 - np.cos(np.pi * j / n))).tolist()), torch.tensor((0.5 * weights).tolist())


def completeness_error(values: torch.Tensor, delta: torch.Tensor) -> float:
    """``||sum of the rows of values - delta|| / ||delta||``: 0 for a complete attribution."""
    return ((values.sum(0) - delta).norm() / delta.norm().clamp(min=1e-12)).item()


def integrated_gradients(encoder: Encoder, sentence: str, steps: int = 20, baseline: str = "pad",
                         chunk_points: int | None = None) -> Attribution:
    """Vector Integrated Gradients of every token of `sentence`, one tangent per token.

    `chunk_points` path points are differentiated in one vectorised call; by
    default as many as :func:`cwi.inputs.rows_per_call` allows.

    Returns
    -------
    Attribution
        ``values`` (T, d): token i's vector c_i, special tokens included (their
        difference to the baseline is 0, so are their vectors);
        ``delta = f(x) - f(x')``; the tokenizer output.
    """
    s = prepare(encoder, sentence, baseline)
    alphas, weights = quadrature(steps)
    difference = s.inputs - s.baseline  # (T, e)
    n_tokens = s.length
    tangents = torch.eye(n_tokens, dtype=difference.dtype, device=difference.device).unsqueeze(-1) * difference.unsqueeze(0)  # (T, T, e)
    mask = s.batch["attention_mask"]

    def embed(inputs):
        return encoder.forward(inputs_embeds=inputs.unsqueeze(0), attention_mask=mask)[0]

    def token_jvps(point):
        return vmap(lambda tangent: jvp(embed, (point,), (tangent,))[1])(tangents)  # (T, d)

    points = s.baseline + alphas.to(difference)[:, None, None] * difference  # (S, T, e)
    chunk_points = chunk_points or max(1, rows_per_call(encoder, n_tokens) // n_tokens)
    with torch.no_grad():
        per_point = torch.cat([vmap(token_jvps)(chunk) for chunk in points.split(chunk_points)])  # (S, T, d)
        total = torch.einsum("s,std->td", weights.to(per_point), per_point).cpu()
        delta = (embed(s.inputs) - embed(s.baseline)).cpu()
    return Attribution(total, delta, s.batch)


def _buckets(sentences: list[Prepared], rows_for) -> list[list[int]]:
    """Indices of `sentences` grouped by length: each group fits one call (``rows_for(length) >= rows``)."""
    order = sorted(range(len(sentences)), key=lambda i: (sentences[i].length, len(sentences[i].word_text)))
    groups: list[list[int]] = []
    for i in order:
        # A new group once padding would add more than a sixth to the group's shortest sentence.
        if groups and sentences[i].length <= 1 + 7 * sentences[groups[-1][0]].length // 6:
            trial = groups[-1] + [i]
            length = max(sentences[j].length for j in trial)
            words = max(len(sentences[j].word_text) for j in trial)
            if words * len(trial) <= rows_for(length):
                groups[-1] = trial
                continue
        groups.append([i])
    return groups


def _deltas(encoder: Encoder, sentences: list[Prepared], memory_gb: float) -> list[torch.Tensor]:
    """``f(x) - f(x')`` of each sentence, sentences of similar length batched."""
    deltas: list[torch.Tensor] = [torch.empty(0)] * len(sentences)
    with torch.no_grad():
        for group in _buckets(sentences, lambda length: rows_per_call(encoder, length, memory_gb, tangents=False)):
            inputs, baselines, mask = pad(encoder, [sentences[i] for i in group])
            both = encoder.forward(inputs_embeds=torch.cat([inputs, baselines]), attention_mask=mask.repeat(2, 1))
            for g, i in enumerate(group):
                deltas[i] = (both[g] - both[len(group) + g]).float().cpu()
    return deltas


def _word_paths(encoder: Encoder, sentences: list[Prepared], alphas: torch.Tensor, memory_gb: float
                ) -> list[torch.Tensor]:
    """The (S, W, d) Jacobian-vector products of each sentence's words at path points `alphas`, unweighted.

    The rows of one call are (sentence, path point) primals; ``vmap`` runs the
    words' tangents over all of them, so the primal pass is shared by the
    tangents.  Sentences with fewer words than the longest of their group get
    zero tangents in the spare slots.
    """
    steps = len(alphas)
    results: list[torch.Tensor] = [torch.empty(0)] * len(sentences)

    def rows_for(length):
        return max(1, rows_per_call(encoder, length, memory_gb) // steps)

    for group in _buckets(sentences, rows_for):
        chosen = [sentences[i] for i in group]
        inputs, baselines, mask = pad(encoder, chosen)  # (G, T, e), (G, T)
        difference = inputs - baselines
        n_words = max(len(s.word_text) for s in chosen)
        membership = torch.zeros(n_words, len(chosen), inputs.shape[1], 1, dtype=inputs.dtype,
                                 device=inputs.device)  # (W, G, T, 1): each token's share in word w
        for g, s in enumerate(chosen):
            membership[: len(s.word_text), g, : s.length, 0] = s.word_membership().to(inputs.dtype)
        tangents = membership * difference.unsqueeze(0)  # (W, G, T, e): word w's tokens' differences
        points = baselines.unsqueeze(1) + alphas.to(inputs)[None, :, None, None] * difference.unsqueeze(1)
        rows = points.reshape(-1, *points.shape[2:])  # (G*S, T, e), sentence-major
        row_mask = mask.repeat_interleave(steps, dim=0)
        row_tangents = tangents.repeat_interleave(steps, dim=1)  # (W, G*S, T, e)

        def embed(x):
            return encoder.forward(inputs_embeds=x, attention_mask=row_mask)

        # A word-tangent chunk per call when one word's rows of the whole group exceed the budget
        # (only a single very long sentence can: groups are sized to fit).
        per_call = max(1, rows_per_call(encoder, inputs.shape[1], memory_gb) // len(rows))
        with torch.no_grad():
            per_row = torch.cat([vmap(lambda t: jvp(embed, (rows,), (t,))[1])(chunk)
                                 for chunk in row_tangents.split(per_call)])  # (W, G*S, d)
        per_row = per_row.reshape(n_words, len(chosen), steps, -1)
        for g, (i, s) in enumerate(zip(group, chosen)):
            results[i] = per_row[: len(s.word_text), g].transpose(0, 1).float().cpu()  # (S, W, d)
    return results


def _levels(points, rule: str):
    """The checked sequence of rule sizes, the path points ``alphas``, and per rule its nodes' indices and weights.

    `points` is one rule size or an increasing sequence of them.  Clenshaw-Curtis
    rules of a doubling sequence nest (every node of a rule is a node of the
    next), so all of them index one grid, that of the last rule; Gauss-Legendre
    rules share no node, so their nodes are simply concatenated.  Each level
    also carries its chain of *embedded* rules (:func:`_embedded_chain`: the rule
    of half its intervals, and the rule of half of those), possibly empty.
    """
    points = (points,) if isinstance(points, int) else tuple(points)
    if not points or list(points) != sorted(set(points)) or points[0] < (2 if rule == "clenshaw-curtis" else 1):
        raise ValueError(f"points must be one rule size or an increasing sequence of them, got {points}")
    if rule == "clenshaw-curtis":
        intervals = [p - 1 for p in points]
        if any(n < 1 or intervals[-1] % n for n in intervals):
            raise ValueError(f"Clenshaw-Curtis rules nest when each has 2^k times the intervals of the one before: "
                             f"points - 1 must divide {intervals[-1]}, got points {points}")
        alphas, _ = clenshaw_curtis(points[-1])
        levels = [(list(range(0, intervals[-1] + 1, intervals[-1] // n)), clenshaw_curtis(n + 1)[1])
                  for n in intervals]
        return points, alphas, [(nodes, weights, _embedded_chain(nodes)) for nodes, weights in levels]
    if rule == "gauss-legendre":
        rules = [quadrature(p) for p in points]
        offsets = np.cumsum([0] + list(points))
        return points, torch.cat([a for a, _ in rules]), [(list(range(o, o + p)), w, [])
                                                          for o, p, (_, w) in zip(offsets, points, rules)]
    raise ValueError(f"unknown quadrature rule {rule!r}: choose one of {RULES}")


def _embedded(nodes: list[int]):
    """The Clenshaw-Curtis rule of half the intervals on every other node of `nodes`: ``(nodes, weights)`` or ``None``.

    Its nodes are already computed, so comparing the two rules checks every
    word's vector without another forward pass.
    """
    if len(nodes) < 3 or (len(nodes) - 1) % 2:
        return None
    return nodes[::2], clenshaw_curtis((len(nodes) - 1) // 2 + 1)[1]


def _embedded_chain(nodes: list[int]) -> list:
    """The rules embedded in the rule on `nodes`: half its intervals, then half of those (as many as exist, up to 2)."""
    chain = []
    while len(chain) < 2 and (embedded := _embedded(nodes)) is not None:
        chain.append(embedded)
        nodes = embedded[0]
    return chain


def unconverged(completeness, word_errors, target: float):
    """Whether an attribution misses the adaptive rule's `target`: its completeness or its word error at or above it.

    Scalars or arrays; a word error of NaN (no coarser rule to compare with) does not count against it.
    """
    return (np.asarray(completeness) >= target) | (np.asarray(word_errors) >= target)


def word_error(values: torch.Tensor, coarser: torch.Tensor, coarsest: torch.Tensor | None = None) -> float:
    """The estimated error of the largest word's vector under a rule, relative to the sentence's mean word weight.

    The sum of the words can converge while single words have not (their errors
    cancel); this looks at each word, on the scale of the normalised weights
    (a word weight over the sentence's mean), so a word error under 1% moves no
    normalised weight by more than about 0.01.

    ``d1 = ||values - coarser||``, a word's change from the rule of half the
    intervals, measures the *coarser* rule's error.  With `coarsest` (the rule
    of half of those), the finer rule's own error is extrapolated geometrically,
    ``d1 * min(1, d1 / d2)`` with ``d2 = ||coarser - coarsest||`` (the rules
    converge geometrically in the number of points, each doubling multiplying
    the error by about ``d1 / d2``); the ratio is capped at 1, so where the
    rules are not seen converging the estimate is ``d1`` itself, the
    conservative check.  Without `coarsest` it is ``d1``.
    """
    scale = float(values.norm(dim=1).mean()) or 1.0
    change = (values - coarser).norm(dim=1)
    if coarsest is not None:
        before = (coarser - coarsest).norm(dim=1)
        ratio = torch.where(before > 0, change / before.clamp(min=1e-30), (change > 0).to(change.dtype))
        change = change * ratio.clamp(max=1.0)
    return float(change.max()) / scale


def word_integrated_gradients(encoder: Encoder, sentences: list[str], points=ADAPTIVE_POINTS,
                              rule: str = "clenshaw-curtis", baseline: str = "pad", target: float = 0.01,
                              memory_gb: float = MEMORY_GB, progress=None, extrapolate: bool = True
                              ) -> list[WordAttribution]:
    """Integrated Gradients word vectors of many sentences, with adaptive path points.

    Parameters
    ----------
    points
        An increasing sequence of rule sizes (or one size).  Every sentence runs
        the first rule; a sentence whose completeness error, or whose word error
        (:func:`word_error`: for nested Clenshaw-Curtis rules, each word's
        vector against the two rules embedded in it, the rule's own error
        extrapolated from their differences; for Gauss-Legendre, the change from
        the previous rule, from the second rule on), is at or over `target` runs
        the next, and so on; the last is kept whatever its errors.
    rule
        ``"clenshaw-curtis"`` (the default: nested rules, so a sentence that goes
        on to the next rule reuses every path point already computed and the
        sequence 9, 17, 33, 65 costs at most 65 points) or ``"gauss-legendre"``
        (captum's rule: nothing is shared between sizes).  Both converge alike on
        the book's models (``benchmarks/attribution.py``).
    target
        Relative completeness error a rule must stay under.
    memory_gb
        Memory of one vectorised call; sentences of similar length share calls up to it.
    progress
        Anything with ``update(n)`` (a tqdm bar): advanced by each finished sentence.
    extrapolate
        Estimate each Clenshaw-Curtis rule's own word error (the default); false:
        the change from the embedded rule, which is the coarser rule's error and
        keeps about one rule more than needed (the book's rule until
        :data:`cwi.attribution.ALGORITHM_VERSION` 7; ``benchmarks/attribution.py``
        compares the two).

    Returns
    -------
    list of WordAttribution
        In the order of `sentences`; ``path_points`` is the size of the rule kept,
        ``evaluations`` counts the distinct path points computed x words, and
        ``word_error`` is the kept rule's word error (NaN when nothing checks it).
    """
    points, alphas, levels = _levels(points, rule)
    prepared = [prepare(encoder, text, baseline) for text in sentences]
    deltas = _deltas(encoder, prepared, memory_gb)
    results: list[WordAttribution | None] = [None] * len(prepared)
    computed: dict[int, dict[int, torch.Tensor]] = {i: {} for i in range(len(prepared))}  # node -> (W, d)
    pending = list(range(len(prepared)))
    previous: dict[int, torch.Tensor] = {}  # the last rule's word vectors (Gauss-Legendre's check)

    def rule(i, nodes, weights):
        return torch.einsum("s,swd->wd", weights, torch.stack([computed[i][j] for j in nodes]))

    for size, (nodes, weights, embedded) in zip(points, levels):
        new = [j for j in nodes if j not in computed[pending[0]]]  # the pending sentences share their history
        for i, vectors in zip(pending, _word_paths(encoder, [prepared[i] for i in pending], alphas[new], memory_gb)):
            computed[i].update(zip(new, vectors))
        still = []
        for i in pending:
            values = rule(i, nodes, weights)
            # Clenshaw-Curtis: the rules embedded in this one; Gauss-Legendre: the previous rule, if any.
            nested = [rule(i, *e) for e in embedded] or [previous.get(i)]
            coarser, coarsest = (nested + [None])[:2]
            coarsest = coarsest if extrapolate else None
            words = word_error(values, coarser, coarsest) if coarser is not None else float("nan")
            converged = not unconverged(completeness_error(values, deltas[i]), words, target)
            if converged or size == points[-1]:
                evaluations = 2 + len(computed[i]) * len(prepared[i].word_text)
                results[i] = WordAttribution(values, deltas[i], prepared[i], size, evaluations, word_error=words)
                del computed[i]
                previous.pop(i, None)
                if progress is not None:
                    progress.update(1)
            else:
                previous[i] = values
                still.append(i)
        pending = still
        if not pending:
            break
    return results


def completeness_by_rule(encoder: Encoder, sentences: list[str], points, rule: str = "clenshaw-curtis",
                         baseline: str = "pad", memory_gb: float = MEMORY_GB) -> np.ndarray:
    """Completeness errors of every rule size of `points` on every sentence: (rules, sentences).

    Each distinct path point is computed once: nested Clenshaw-Curtis rules cost
    as much as their largest.
    """
    points, alphas, levels = _levels(points, rule)
    prepared = [prepare(encoder, text, baseline) for text in sentences]
    deltas = _deltas(encoder, prepared, memory_gb)
    vectors = _word_paths(encoder, prepared, alphas, memory_gb)  # (S, W, d) each
    return np.array([[completeness_error(torch.einsum("s,swd->wd", weights, v[nodes]), delta)
                      for v, delta in zip(vectors, deltas)] for nodes, weights, _ in levels])


def integrated_gradients_captum(encoder: Encoder, sentence: str, steps: int = 20, baseline: str = "pad") -> torch.Tensor:
    """The reference: captum's IntegratedGradients (its Gauss-Legendre rule), one call per output dimension; (T, d)."""
    from captum.attr import IntegratedGradients

    s = prepare(encoder, sentence, baseline)
    mask = s.batch["attention_mask"]

    def forward(inputs):
        return encoder.forward(inputs_embeds=inputs, attention_mask=mask.expand(len(inputs), -1))

    explainer = IntegratedGradients(forward)
    dims = encoder.model.config.hidden_size
    columns = [
        explainer.attribute(s.inputs.unsqueeze(0), baselines=s.baseline.unsqueeze(0), target=k, n_steps=steps,
                           method="gausslegendre")[0].sum(-1)
        for k in range(dims)
    ]
    return torch.stack(columns, dim=1).detach().cpu()
