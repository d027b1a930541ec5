"""Post-training compression of the dual weights (docs/model.md sections 3 and 6).

- Uniform k-bit quantization over the whole matrix (the paper's):
  ``Delta = (x_max - x_min) / (2^k - 1)``, ``code = round((x - x_min) / Delta)`` in 0..2^k-1,
  ``Q_k(x) = x_min + Delta * code``.
- 1 bit: the sign of each weight relative to the median (or mean) ``c`` of A. The binarized weight
  is ``+-m`` with ``m = mean |alpha - c|``; codes are 1 for ``alpha > c``, else 0. Because the
  levels are symmetric, ``sign(h) = sign(T - S_K / 2)``: the hardware form with ``r = 1/2``.
- Per-neuron affine quantizers (docs/model.md section 6): ``values[mu, i] = offset_i + scale_i *
  codes[mu, i]`` with ``scale_i > 0``, so ``sign(h_i) = sign(T_i - r_i S_K)`` with one threshold
  ``r_i = -offset_i / scale_i`` per neuron. :data:`QUANTIZERS` names them; :func:`quantize`
  dispatches.
- Magnitude pruning to sparsity S: the ``floor(S * size)`` weights of smallest magnitude become 0.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["QUANTIZERS", "DEFAULT_QUANTIZER", "QUANTIZER_HELP", "check_quantizer", "Quantized",
           "quantize", "quantize_uniform", "quantize_per_neuron", "binarize", "bias_corrected",
           "prune_magnitude", "CENTERS"]

CENTERS = ("median", "mean")


@dataclass(frozen=True)
class Quantized:
    """A quantized weight matrix: ``values[mu, i] = offset_i + scale_i * codes[mu, i]``.

    ``offset`` and ``scale`` are floats (one for the whole matrix, the paper's quantizers) or
    (N,) arrays (one per neuron); every scale is positive. For k >= 2 bits the paper's quantizer
    has ``offset = x_min`` and ``scale = Delta``; for 1 bit ``codes`` in {0, 1} map to ``-m`` and
    ``+m`` (``offset = -m``, ``scale = 2m``).
    """

    bits: int
    codes: np.ndarray           # (P, N) uint8 (uint16 above 8 bits), 0 .. 2^bits - 1
    offset: float | np.ndarray  # value of code 0: a float, or (N,) one per neuron
    scale: float | np.ndarray   # step between adjacent codes (> 0): a float, or (N,)

    @property
    def per_neuron(self):
        """Whether ``offset`` or ``scale`` differ between neurons (arrays)."""
        return np.ndim(self.offset) > 0 or np.ndim(self.scale) > 0

    @property
    def levels(self):
        """The ``2^bits`` representable values, ascending: (2^bits,) for one offset and scale,
        (2^bits, N) when they are per neuron."""
        k = np.arange(2 ** self.bits, dtype=np.float64)
        if not self.per_neuron:
            return self.offset + self.scale * k
        return np.asarray(self.offset) + np.asarray(self.scale) * k[:, None]

    @property
    def values(self):
        return self.offset + self.scale * self.codes.astype(np.float64)

    @property
    def threshold(self):
        """Per-neuron ``r_i = -offset_i / scale_i`` (N,): ``sign(h_i) = sign(T_i - r_i S_K)``
        (docs/model.md section 3); every entry equal for a quantizer with one offset and one
        scale for the whole matrix."""
        r = -np.asarray(self.offset, dtype=np.float64) / np.asarray(self.scale, dtype=np.float64)
        return np.broadcast_to(r, (self.codes.shape[1],)).copy()


def _code_dtype(bits):
    return np.uint8 if bits <= 8 else np.uint16


def _check_bits(bits):
    if not (isinstance(bits, int | np.integer) and 2 <= bits <= 16):
        raise ValueError(f"bits must be an integer in 2..16 for uniform quantization, not {bits!r}")


def quantize_uniform(alpha, bits):
    """Uniform ``bits``-bit quantization of the whole matrix (bits >= 2): the paper's."""
    _check_bits(bits)
    a = np.asarray(alpha, dtype=np.float64)
    x_min, x_max = float(a.min()), float(a.max())
    if x_max == x_min:
        delta = 1.0  # all weights equal: every code 0 represents them exactly
        codes = np.zeros(a.shape, dtype=np.uint16)
    else:
        delta = (x_max - x_min) / (2 ** bits - 1)
        codes = np.clip(np.rint((a - x_min) / delta), 0, 2 ** bits - 1).astype(np.uint16)
    return Quantized(bits=int(bits), codes=codes.astype(_code_dtype(bits)), offset=x_min,
                     scale=delta)


def quantize_per_neuron(alpha, bits):
    """Uniform ``bits``-bit min-max quantization of each neuron's column on its own (bits >= 2):
    ``offset_i = min_mu alpha[mu, i]``, ``scale_i = (max - min) / (2^k - 1)`` (1 for a constant
    column)."""
    _check_bits(bits)
    a = np.asarray(alpha, dtype=np.float64)
    lo, hi = a.min(axis=0), a.max(axis=0)
    delta = np.where(hi > lo, (hi - lo) / (2 ** bits - 1), 1.0)
    codes = np.clip(np.rint((a - lo) / delta), 0, 2 ** bits - 1)
    return Quantized(bits=int(bits), codes=codes.astype(_code_dtype(bits)), offset=lo,
                     scale=delta)


def _center(a, center, axis=None):
    if center not in CENTERS:
        raise ValueError(f"center must be one of {', '.join(CENTERS)}, not {center!r}")
    return np.median(a, axis=axis) if center == "median" else a.mean(axis=axis)


def binarize(alpha, center="median"):
    """1-bit binarization relative to the median or mean of all weights: the paper's."""
    a = np.asarray(alpha, dtype=np.float64)
    c = float(_center(a, center))
    m = float(np.mean(np.abs(a - c)))
    if m == 0:
        m = 1.0
    codes = (a > c).astype(np.uint8)
    return Quantized(bits=1, codes=codes, offset=-m, scale=2 * m)


def bias_corrected(alpha, q):
    """``q`` with a per-neuron offset chosen so that each neuron's quantized weights have the
    mean of its float weights over the patterns: ``offset_i = mean(alpha_i) - scale_i
    mean(codes_i)``. Codes and scales are kept."""
    a = np.asarray(alpha, dtype=np.float64)
    scale = np.broadcast_to(np.asarray(q.scale, dtype=np.float64), (a.shape[1],)).copy()
    offset = a.mean(axis=0) - scale * q.codes.astype(np.float64).mean(axis=0)
    return Quantized(bits=q.bits, codes=q.codes, offset=offset, scale=scale)


#: The quantizers by name (each gives codes and one threshold per neuron), and the default.
QUANTIZERS = ("paper", "bias", "neuron")

#: One line per quantizer, for help texts and docs/model.md section 6.
QUANTIZER_HELP = {
    "paper": "the paper's: uniform min-max codes over the whole matrix (1 bit: signs about the "
             "median), one threshold for every neuron",
    "bias": "the paper's codes, a per-neuron offset keeping each neuron's mean weight",
    "neuron": "per-neuron min-max codes with the bias-corrected offset (1 bit: as bias)",
}

DEFAULT_QUANTIZER = "neuron"


def check_quantizer(name):
    """``name`` if it is a quantizer; ``ValueError`` listing the allowed names otherwise."""
    if name not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, not {name!r}")
    return name


def quantize(alpha, bits, center="median", quantizer=DEFAULT_QUANTIZER):
    """k-bit quantization of the dual weights ``alpha`` (P, N) by the named ``quantizer``.

    Parameters
    ----------
    alpha : array_like
        The (P, N) float dual weights.
    bits : int
        Bits per code: 1 (binarization about ``center``) or 2..16 (uniform).
    center : str
        Binarization center of 1-bit codes, ``"median"`` or ``"mean"``.
    quantizer : str
        One of :data:`QUANTIZERS`. ``"paper"``: :func:`binarize` for 1 bit,
        :func:`quantize_uniform` otherwise, one offset and one scale for the whole matrix.
        ``"bias"``: the same codes, :func:`bias_corrected`. ``"neuron"``:
        :func:`quantize_per_neuron`, bias corrected (for 1 bit the same as ``"bias"``: signs about
        each neuron's own median keep fewer bits, docs/model.md section 6).

    Returns
    -------
    Quantized
    """
    check_quantizer(quantizer)
    if quantizer == "paper" or bits == 1:
        base = binarize(alpha, center) if bits == 1 else quantize_uniform(alpha, bits)
        return base if quantizer == "paper" else bias_corrected(alpha, base)
    base = quantize_uniform(alpha, bits) if quantizer == "bias" else \
        quantize_per_neuron(alpha, bits)
    return bias_corrected(alpha, base)


def prune_magnitude(alpha, sparsity):
    """Zero the ``floor(sparsity * size)`` weights of smallest magnitude; returns a new array."""
    if not (0.0 <= sparsity <= 1.0):
        raise ValueError(f"sparsity must be in [0, 1], not {sparsity!r}")
    a = np.array(alpha, dtype=np.float64, copy=True)
    k = int(np.floor(sparsity * a.size))
    if k > 0:
        order = np.argsort(np.abs(a), axis=None, kind="stable")
        a.flat[order[:k]] = 0.0
    return a
