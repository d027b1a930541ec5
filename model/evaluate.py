"""Float versus quantized networks: the four metrics of docs/model.md section 4 side by side.

Every variant of a network (the float weights, their k-bit quantizations by each quantizer of
:mod:`model.compress`) is scored on the same noisy queries, so differences in recall come from
the weights alone. A variant is ``None`` (the float weights), ``k`` (k bits, the paper's
quantizer) or ``(k, quantizer)``; its label is ``"float"``, ``"<k>-bit"`` (the paper's) or
``"<k>-bit <quantizer>"``. The quantized weights are ``offset_i + scale_i * codes``, so the float
quantized model decides like the integer model with one threshold per neuron.
"""

from dataclasses import asdict, dataclass

import numpy as np

from .compress import check_quantizer, quantize
from .metrics import bit_accuracy, noisy_queries, recall_stats, stability_margin
from .retrieval import DEFAULT_MAX_STEPS

__all__ = ["METRICS", "Evaluation", "evaluate_weights", "variant_label", "variant_spec",
           "weight_variants", "compare", "small_weight_fraction", "format_table",
           "score_variants", "RecallSweep", "recall_sweep", "plot_recall_sweep"]

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


def variant_spec(variant):
    """``(bits, quantizer)`` of a variant: ``(None, None)`` for the float weights."""
    if variant is None:
        return None, None
    bits, quantizer = (variant, "paper") if np.ndim(variant) == 0 else variant
    return int(bits), check_quantizer(quantizer)


def variant_label(bits, quantizer="paper"):
    """``"float"`` for ``bits=None``, else ``"<k>-bit"`` (the paper's quantizer) or
    ``"<k>-bit <quantizer>"``."""
    if bits is None:
        return "float"
    return f"{bits}-bit" if quantizer == "paper" else f"{bits}-bit {quantizer}"


def weight_variants(alpha, variants):
    """``{label: weights}`` for each of ``variants`` (module docstring)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    out = {}
    for v in variants:
        bits, quantizer = variant_spec(v)
        out[variant_label(bits, quantizer)] = alpha if bits is None else \
            quantize(alpha, bits, quantizer=quantizer).values
    return out


def compare(net, variants, noise, count, seed, max_steps=DEFAULT_MAX_STEPS):
    """Evaluate the ``variants`` of ``net`` on one shared set of noisy queries.

    The ``count`` queries come from :func:`~model.metrics.noisy_queries` with
    ``default_rng(seed)``. Returns ``{label: Evaluation}`` in the order of ``variants``.
    """
    queries, targets = noisy_queries(net.patterns, noise, count, np.random.default_rng(seed))
    return {label: evaluate_weights(net.patterns, w, net.gamma, queries, targets, max_steps)
            for label, w in weight_variants(net.alpha, variants).items()}


def score_variants(net, variants, noises, count, seed, max_steps=DEFAULT_MAX_STEPS):
    """Bit accuracy, stability margin and, per noise level, bit-wise and exact recall of each of
    ``variants`` of ``net``.

    Every noise level draws its ``count`` queries from a fresh ``default_rng(seed)`` (an int or
    a tuple), so the queries of a lower level flip a subset of the bits of a higher one, and one
    level alone gives the queries of :func:`compare`. Returns ``{label: {"bit_accuracy": float,
    "stability_margin": float, "recall_accuracy": [per noise], "exact_recall": [per noise]}}``.
    """
    sets = [noisy_queries(net.patterns, x, count, np.random.default_rng(seed)) for x in noises]
    out = {}
    for label, w in weight_variants(net.alpha, variants).items():
        recs = [recall_stats(net.patterns, w, net.gamma, q, t, max_steps) for q, t in sets]
        out[label] = {"bit_accuracy": bit_accuracy(net.patterns, w, net.gamma),
                      "stability_margin": stability_margin(net.patterns, w, net.gamma),
                      "recall_accuracy": [r.recall_accuracy for r in recs],
                      "exact_recall": [r.exact_recall for r in recs]}
    return out


@dataclass(frozen=True)
class RecallSweep:
    """Scores of weight variants over networks and noise levels (:func:`recall_sweep`).

    ``scores[label][metric]`` is a list over ``networks`` of a float (``bit_accuracy``,
    ``stability_margin``) or of a list over ``noises`` (``recall_accuracy``, ``exact_recall``).
    """

    networks: list          # one description per network (its file, or its training seed)
    noises: list
    queries: int
    seed: int
    max_steps: int
    scores: dict

    def summary(self, label, metric):
        """``(mean, min)`` over networks: floats, or arrays over noise levels."""
        a = np.asarray(self.scores[label][metric], dtype=np.float64)
        return a.mean(axis=0), a.min(axis=0)

    def as_dict(self):
        rows = {}
        for label, s in self.scores.items():
            rows[label] = {m: {"mean": np.mean(v, axis=0).tolist(),
                               "min": np.min(v, axis=0).tolist(), "networks": v}
                           for m, v in s.items()}
        return {"networks": self.networks, "noises": self.noises, "queries": self.queries,
                "seed": self.seed, "max_steps": self.max_steps, "rows": rows}

    def format(self):
        """A table: bit accuracy mean (min), stability margin (mean) and, per noise level,
        bit-wise recall (mean) and exact recall mean (min) over the networks (no minimum for one
        network)."""
        many = len(self.networks) > 1
        columns = {"bit_accuracy": "bit acc" + (" mean (min)" if many else ""),
                   "stability_margin": "margin"}
        rows = {}
        for label in self.scores:
            m, lo = self.summary(label, "bit_accuracy")
            row = {"bit_accuracy": f"{m:.5f}" + (f" ({lo:.4f})" if many else ""),
                   "stability_margin": f"{self.summary(label, 'stability_margin')[0]:.3f}"}
            rm, _ = self.summary(label, "recall_accuracy")
            em, elo = self.summary(label, "exact_recall")
            for k in range(len(self.noises)):
                row[f"r{k}"] = f"{rm[k]:.4f}"
                row[f"e{k}"] = f"{em[k]:.3f}" + (f" ({elo[k]:.3f})" if many else "")
            rows[label] = row
        for k, x in enumerate(self.noises):
            columns[f"r{k}"] = f"recall@{x:.0%}"
            columns[f"e{k}"] = f"exact@{x:.0%}" + (" mean (min)" if many else "")
        return format_table(rows, columns, {k: "s" for k in columns})


def plot_recall_sweep(sweep, path, title=""):
    """Bit-wise and exact recall (mean over the networks) against noise, one line per weight
    variant, written to the PNG ``path`` atomically (:func:`khop.outputs.atomic_path`)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from khop.outputs import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = 100 * np.asarray(sweep.noises)
    try:
        for k, label in enumerate(sweep.scores):
            style = dict(color="k" if label == "float" else f"C{k}", marker="o",
                         ls="--" if label.endswith("-bit") else "-",
                         label=label + (" (the paper's)" if label.endswith("-bit") else ""))
            for ax, metric in zip(axes, ("recall_accuracy", "exact_recall"), strict=True):
                ax.plot(x, sweep.summary(label, metric)[0], **style)
        for ax, what in zip(axes, ("bit-wise recall (fraction of bits)",
                                   "exact recall (fraction of queries)"), strict=True):
            ax.set_xlabel("noise (% of bits flipped in the query)")
            ax.set_ylabel(what)
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8)
        n = len(sweep.networks)
        fig.suptitle((title + "; " if title else "") + f"{sweep.queries} queries per level, "
                     f"mean over {n} network{'s' if n > 1 else ''}", fontsize=9)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


def recall_sweep(networks, variants, noises, count, seed, max_steps=DEFAULT_MAX_STEPS):
    """:func:`score_variants` over ``networks``, a list of ``(description, Network)``.

    Network ``j`` draws its queries from ``default_rng(seed)`` when it is the only one, else
    from ``default_rng((seed, j))``. Returns a :class:`RecallSweep`.
    """
    scores = {}
    for j, (_, net) in enumerate(networks):
        rng_seed = seed if len(networks) == 1 else (seed, j)
        for label, s in score_variants(net, variants, noises, count, rng_seed,
                                       max_steps).items():
            row = scores.setdefault(label, {m: [] for m in s})
            for m, v in s.items():
                row[m].append(v)
    return RecallSweep(networks=[d for d, _ in networks], noises=list(noises), queries=count,
                       seed=seed, max_steps=max_steps, scores=scores)


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
