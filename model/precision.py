"""How far the bit-exact integer model is from the float quantized model, against kernel_bits.

The integer model differs from the float k-bit model only by the rounding of the kernel values
(``kernel_bits - 1`` fractional bits) and of the threshold ``r`` (``threshold_frac_bits``). This
module measures the effect: one-step bit accuracy, noisy recall, and the fraction of single-step
neuron decisions that differ, on the same queries.
"""

from dataclasses import asdict, dataclass

import numpy as np

from .compress import quantize
from .fixed import FixedConfig, integer_network, to_bipolar, to_bits
from .metrics import bit_accuracy, noisy_queries, summarize_recall
from .retrieval import potentials, retrieve, sign_update

__all__ = ["PrecisionRow", "precision_sweep"]


@dataclass
class PrecisionRow:
    kernel_bits: int
    float_bit_accuracy: float
    int_bit_accuracy: float
    float_recall_accuracy: float
    int_recall_accuracy: float
    recall_difference_pp: float      # integer minus float, percentage points
    decision_disagreement: float     # fraction of one-step decisions that differ on the queries
    final_state_disagreement: float  # fraction of final bits that differ

    def as_dict(self):
        return asdict(self)


_DEFAULT = FixedConfig()


def precision_sweep(patterns, alpha, gamma, weight_bits=_DEFAULT.weight_bits,
                    kernel_bits=range(8, 21), noise=0.2, queries=300, seed=0,
                    threshold_frac_bits=_DEFAULT.threshold_frac_bits,
                    max_steps=_DEFAULT.max_steps, quantizer=_DEFAULT.quantizer,
                    center=_DEFAULT.center):
    """Compare the integer model with the float ``weight_bits`` model for each ``kernel_bits``.

    Both use the codes and per-neuron thresholds of ``quantizer``; the float model's weights are
    ``offset_i + scale_i * codes``. The arithmetic not swept defaults to :class:`FixedConfig`'s.
    """
    X = np.asarray(patterns)
    wq = quantize(alpha, weight_bits, center, quantizer).values
    qs, targets = noisy_queries(X, noise, queries, np.random.default_rng(seed))
    f_acc = bit_accuracy(X, wq, gamma)
    f_res = retrieve(qs, X, wq, gamma, max_steps)
    f_rec = summarize_recall(f_res.states, X[targets], f_res.steps, f_res.converged)
    f_step = sign_update(potentials(qs, X, wq, gamma), qs)
    rows = []
    for kb in kernel_bits:
        cfg = FixedConfig(weight_bits=weight_bits, kernel_bits=int(kb),
                          threshold_frac_bits=threshold_frac_bits, max_steps=max_steps,
                          center=center, quantizer=quantizer)
        inet = integer_network(X, alpha, gamma, cfg)
        i_res = inet.retrieve(to_bits(qs))
        i_states = to_bipolar(i_res.states)
        i_rec = summarize_recall(i_states, X[targets], i_res.steps, i_res.converged)
        i_step = to_bipolar(inet.step(to_bits(qs)))
        rows.append(PrecisionRow(
            kernel_bits=int(kb),
            float_bit_accuracy=f_acc,
            int_bit_accuracy=inet.bit_accuracy(),
            float_recall_accuracy=f_rec.recall_accuracy,
            int_recall_accuracy=i_rec.recall_accuracy,
            recall_difference_pp=100 * (i_rec.recall_accuracy - f_rec.recall_accuracy),
            decision_disagreement=float(np.mean(i_step != f_step)),
            final_state_disagreement=float(np.mean(i_states != f_res.states)),
        ))
    return rows
