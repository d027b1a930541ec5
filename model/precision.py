"""How far the bit-exact integer model is from the float quantized model, against kernel_bits.

The integer model differs from the float k-bit model only by the rounding of the kernel values
(``kernel_bits - 1`` fractional bits) and of the threshold ``r`` (``threshold_frac_bits``). This
module measures the effect on the same queries: one-step bit accuracy, exact and bit-wise noisy
recall and mean steps (over several query sets), and the fraction of single-step neuron
decisions that differ; next to each width, the distance its lookup table reaches (beyond it
every kernel value is 0: a query farther than that from its stored pattern is not recalled).
"""

from dataclasses import asdict, dataclass

import numpy as np

from .compress import quantize
from .fixed import FixedConfig, integer_network, kernel_reach, to_bipolar, to_bits
from .metrics import bit_accuracy, noisy_queries, summarize_recall
from .retrieval import potentials, retrieve, sign_update

__all__ = ["PrecisionRow", "precision_sweep", "nonzero_kernels"]


@dataclass
class PrecisionRow:
    """One kernel width; recall figures are means over the query sets of the seeds, with the
    exact recall of the integer model also as its lowest and highest over the seeds."""

    kernel_bits: int
    reach: int                       # the largest distance with a kernel value above 0
    seeds: int                       # independent query sets
    float_bit_accuracy: float        # one step from every stored pattern
    int_bit_accuracy: float
    float_recall_accuracy: float     # bit-wise: final bits equal to the target
    int_recall_accuracy: float
    float_exact_recall: float        # the whole pattern: final state equal to the target
    int_exact_recall: float
    int_exact_recall_min: float
    int_exact_recall_max: float
    float_mean_steps: float
    int_mean_steps: float
    recall_difference_pp: float      # exact recall, integer minus float, percentage points
    decision_disagreement: float     # fraction of one-step decisions that differ on the queries
    final_state_disagreement: float  # fraction of final bits that differ
    int_nonzero_kernels: float       # kernel values above 0 in a step (of P), mean over steps

    def as_dict(self):
        return asdict(self)


_DEFAULT = FixedConfig()


def nonzero_kernels(inet, bits, steps):
    """Kernel values above 0 in each step the integer network ``inet`` computes when it
    retrieves from 0/1 states ``bits`` (Q, N) in ``steps`` (Q,) steps: a flat array, one entry
    per step of every query (the patterns a step adds; the rest round to 0)."""
    cur = np.atleast_2d(np.asarray(bits, dtype=np.uint8))
    steps = np.asarray(steps)
    counts = []
    for t in range(int(steps.max(initial=0))):
        counts.append(np.count_nonzero(inet.kernels(cur), axis=1)[steps > t])
        cur = inet.step(cur)     # a converged query's state stays: its fixed point
    return np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)


def precision_sweep(patterns, alpha, gamma, weight_bits=_DEFAULT.weight_bits,
                    kernel_bits=range(8, 21), noise=0.2, queries=300, seeds=(0,),
                    threshold_frac_bits=_DEFAULT.threshold_frac_bits,
                    max_steps=_DEFAULT.max_steps, quantizer=_DEFAULT.quantizer,
                    center=_DEFAULT.center):
    """Compare the integer model with the float ``weight_bits`` model for each ``kernel_bits``,
    on ``queries`` noisy queries drawn with each of ``seeds``.

    Both use the codes and per-neuron thresholds of ``quantizer``; the float model's weights are
    ``offset_i + scale_i * codes``. The arithmetic not swept defaults to :class:`FixedConfig`'s.
    """
    X = np.asarray(patterns)
    seeds = list(seeds)
    if not seeds:
        raise ValueError("precision_sweep needs at least one seed")
    wq = quantize(alpha, weight_bits, center, quantizer).values
    f_acc = bit_accuracy(X, wq, gamma)
    sets = []
    for seed in seeds:
        qs, targets = noisy_queries(X, noise, queries, np.random.default_rng(seed))
        f_res = retrieve(qs, X, wq, gamma, max_steps)
        f_rec = summarize_recall(f_res.states, X[targets], f_res.steps, f_res.converged)
        f_step = sign_update(potentials(qs, X, wq, gamma), qs)
        sets.append((qs, targets, f_res, f_rec, f_step))
    rows = []
    for kb in kernel_bits:
        cfg = FixedConfig(weight_bits=weight_bits, kernel_bits=int(kb),
                          threshold_frac_bits=threshold_frac_bits, max_steps=max_steps,
                          center=center, quantizer=quantizer)
        inet = integer_network(X, alpha, gamma, cfg)
        per_seed = []
        for qs, targets, f_res, f_rec, f_step in sets:
            i_res = inet.retrieve(to_bits(qs))
            i_states = to_bipolar(i_res.states)
            i_rec = summarize_recall(i_states, X[targets], i_res.steps, i_res.converged)
            i_step = to_bipolar(inet.step(to_bits(qs)))
            per_seed.append({
                "float_recall_accuracy": f_rec.recall_accuracy,
                "int_recall_accuracy": i_rec.recall_accuracy,
                "float_exact_recall": f_rec.exact_recall,
                "int_exact_recall": i_rec.exact_recall,
                "float_mean_steps": f_rec.mean_steps,
                "int_mean_steps": i_rec.mean_steps,
                "decision_disagreement": float(np.mean(i_step != f_step)),
                "final_state_disagreement": float(np.mean(i_states != f_res.states)),
                "int_nonzero_kernels": float(np.mean(nonzero_kernels(inet, to_bits(qs),
                                                                     i_res.steps))),
            })
        mean = {key: float(np.mean([s[key] for s in per_seed])) for key in per_seed[0]}
        exact = [s["int_exact_recall"] for s in per_seed]
        rows.append(PrecisionRow(
            kernel_bits=int(kb), reach=kernel_reach(gamma, X.shape[1], int(kb)),
            seeds=len(seeds),
            float_bit_accuracy=f_acc, int_bit_accuracy=inet.bit_accuracy(),
            int_exact_recall_min=min(exact), int_exact_recall_max=max(exact),
            recall_difference_pp=100 * (mean["int_exact_recall"]
                                        - mean["float_exact_recall"]),
            **mean))
    return rows
