"""Float versus quantized networks: the four metrics of docs/model.md section 4 side by side.

Every variant of a network (the float weights, their k-bit quantizations) is scored on the same
noisy queries, so differences in recall come from the weights alone.
"""

from dataclasses import asdict, dataclass

import numpy as np

from .compress import quantize
from .metrics import bit_accuracy, noisy_queries, recall_stats, stability_margin
from .retrieval import DEFAULT_MAX_STEPS

__all__ = ["METRICS", "Evaluation", "evaluate_weights", "variant_label", "weight_variants",
           "compare", "small_weight_fraction", "format_table"]

METRICS = ("bit_accuracy", "stability_margin", "recall_accuracy", "exact_recall")


@dataclass(frozen=True)
class Evaluation:
    """The four metrics of one weight matrix (field order = :data:`METRICS`)."""

    bit_accuracy: float       # one-step, from every stored pattern
    stability_margin: float   # mean h_i(xi^mu) xi^mu_i
    recall_accuracy: float    # bit-wise, after retrieval from the noisy queries
    exact_recall: float       # fraction of queries retrieved exactly

    def as_dict(self):
        return asdict(self)


def evaluate_weights(patterns, weights, gamma, queries, targets, max_steps=DEFAULT_MAX_STEPS):
    """Score dual ``weights`` (P, N) of a network storing ``patterns`` on noisy ``queries``."""
    rec = recall_stats(patterns, weights, gamma, queries, targets, max_steps)
    return Evaluation(bit_accuracy=bit_accuracy(patterns, weights, gamma),
                      stability_margin=stability_margin(patterns, weights, gamma),
                      recall_accuracy=rec.recall_accuracy, exact_recall=rec.exact_recall)


def variant_label(bits):
    """``"float"`` for ``None``, else ``"<k>-bit"``."""
    return "float" if bits is None else f"{bits}-bit"


def weight_variants(alpha, bits_list):
    """``{label: weights}`` for each entry of ``bits_list`` (``None`` = the float weights)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    return {variant_label(b): alpha if b is None else quantize(alpha, b).values
            for b in bits_list}


def compare(net, bits_list, noise, count, seed, max_steps=DEFAULT_MAX_STEPS):
    """Evaluate the variants ``bits_list`` of ``net`` on one shared set of noisy queries.

    The ``count`` queries come from :func:`~model.metrics.noisy_queries` with
    ``default_rng(seed)``. Returns ``{label: Evaluation}`` in the order of ``bits_list``.
    """
    queries, targets = noisy_queries(net.patterns, noise, count, np.random.default_rng(seed))
    return {label: evaluate_weights(net.patterns, w, net.gamma, queries, targets, max_steps)
            for label, w in weight_variants(net.alpha, bits_list).items()}


def small_weight_fraction(weights, bound=1.0):
    """Fraction of weights with ``|w| < bound`` (docs/model.md R7: the valley at 0 is empty)."""
    return float(np.mean(np.abs(np.asarray(weights)) < bound))


def format_table(rows, columns, formats=None):
    """A plain-text table: ``rows`` is ``{label: {column: value}}``, ``columns`` ``{key: title}``.

    ``formats`` maps a column key to a format spec (default ``".4f"``).
    """
    formats = formats or {}
    head = ["weights", *columns.values()]
    body = [[label, *(format(row[k], formats.get(k, ".4f")) for k in columns)]
            for label, row in rows.items()]
    widths = [max(len(r[j]) for r in [head, *body]) for j in range(len(head))]

    def line(cells):
        return "  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                         for j, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body)])
