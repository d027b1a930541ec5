"""Metrics of docs/model.md section 4, vectorized over patterns and neurons."""

from dataclasses import dataclass

import numpy as np

from .memory import check_queries
from .retrieval import DEFAULT_MAX_STEPS, potentials, retrieve, sign_update

__all__ = ["bit_accuracy", "stability_margin", "noisy_queries", "RecallStats", "recall_stats",
           "summarize_recall"]


def bit_accuracy(patterns, weights, gamma):
    """Fraction of neurons whose one-step update from each stored pattern keeps the stored bit.

    The tie rule applies: ``h == 0`` keeps the (stored) bit.
    """
    X = np.asarray(patterns)
    s = sign_update(potentials(X, X, weights, gamma), X)
    return float(np.mean(s == X))


def stability_margin(patterns, weights, gamma):
    """Mean over patterns and neurons of ``h_i(xi^mu) * xi^mu_i``."""
    X = np.asarray(patterns)
    return float(np.mean(potentials(X, X, weights, gamma) * X))


def noisy_queries(patterns, noise, count, rng):
    """Noisy copies of stored patterns: ``round(noise * N)`` distinct bits flipped in each.

    Targets are drawn without replacement when ``count <= P``, else with replacement. A count
    whose queries and their retrieval would not fit the machine's memory is refused first
    (:func:`~khop.model.memory.check_queries`).
    Returns ``(queries (count, N) int8, targets (count,) int64)``.
    """
    X = np.asarray(patterns)
    p, n = X.shape
    if not (0.0 <= noise <= 1.0):
        raise ValueError(f"noise must be in [0, 1], not {noise!r}")
    if count < 1:
        raise ValueError(f"the query count must be positive, not {count!r}")
    check_queries(count, n, p)
    targets = rng.choice(p, size=count, replace=count > p)
    flips = int(round(noise * n))
    # For each query, the `flips` positions of smallest random keys are flipped.
    keys = rng.random((count, n))
    idx = np.argsort(keys, axis=1)[:, :flips]
    mask = np.zeros((count, n), dtype=bool)
    np.put_along_axis(mask, idx, True, axis=1)
    q = np.where(mask, -X[targets], X[targets]).astype(np.int8)
    return q, targets


@dataclass
class RecallStats:
    recall_accuracy: float   # bit-wise: fraction of final bits equal to the target
    exact_recall: float      # fraction of queries whose final state equals the target
    converged: float         # fraction of queries that reached a fixed point
    mean_steps: float


def summarize_recall(final_states, targets_states, steps, converged):
    eq = np.asarray(final_states) == np.asarray(targets_states)
    return RecallStats(recall_accuracy=float(eq.mean()),
                       exact_recall=float(np.all(eq, axis=1).mean()),
                       converged=float(np.mean(converged)),
                       mean_steps=float(np.mean(steps)))


def recall_stats(patterns, weights, gamma, queries, targets, max_steps=DEFAULT_MAX_STEPS):
    """Run float retrieval from ``queries`` and compare with the stored ``targets``."""
    res = retrieve(queries, patterns, weights, gamma, max_steps)
    return summarize_recall(res.states, np.asarray(patterns)[targets], res.steps, res.converged)
