"""Post-training compression of the dual weights (docs/model.md section 3).

- Uniform k-bit quantization over the whole matrix:
  ``Delta = (x_max - x_min) / (2^k - 1)``, ``code = round((x - x_min) / Delta)`` in 0..2^k-1,
  ``Q_k(x) = x_min + Delta * code``.
- 1 bit: the sign of each weight relative to the median (or mean) ``c`` of A. The binarized weight
  is ``+-m`` with ``m = mean |alpha - c|``; codes are 1 for ``alpha > c``, else 0. Because the
  levels are symmetric, ``sign(h) = sign(T - S_K / 2)``: the hardware form with ``r = 1/2``.
- Magnitude pruning to sparsity S: the ``floor(S * size)`` weights of smallest magnitude become 0.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["QUANTIZERS", "DEFAULT_QUANTIZER", "check_quantizer", "Quantized", "quantize",
           "quantize_uniform", "binarize", "prune_magnitude", "CENTERS"]

CENTERS = ("median", "mean")


@dataclass(frozen=True)
class Quantized:
    """A quantized weight matrix: ``values = offset + scale * codes`` element-wise.

    For k >= 2 bits ``offset = x_min`` and ``scale = Delta``; for 1 bit ``codes`` in {0, 1} map to
    ``-m`` and ``+m`` (``offset = -m``, ``scale = 2m``).
    """

    bits: int
    codes: np.ndarray   # (P, N) uint8, 0 .. 2^bits - 1
    offset: float       # value of code 0 (x_min for k >= 2)
    scale: float        # step between adjacent codes (Delta for k >= 2)

    @property
    def levels(self):
        """The ``2^bits`` representable values, ascending."""
        return self.offset + self.scale * np.arange(2 ** self.bits)

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

def quantize_uniform(alpha, bits):
    """Uniform ``bits``-bit quantization of the whole matrix (bits >= 2)."""
    if not (isinstance(bits, int | np.integer) and 2 <= bits <= 16):
        raise ValueError(f"bits must be an integer in 2..16 for uniform quantization, not {bits!r}")
    a = np.asarray(alpha, dtype=np.float64)
    x_min, x_max = float(a.min()), float(a.max())
    if x_max == x_min:
        delta = 1.0  # all weights equal: every code 0 represents them exactly
        codes = np.zeros(a.shape, dtype=np.uint16)
    else:
        delta = (x_max - x_min) / (2 ** bits - 1)
        codes = np.clip(np.rint((a - x_min) / delta), 0, 2 ** bits - 1).astype(np.uint16)
    dtype = np.uint8 if bits <= 8 else np.uint16
    return Quantized(bits=int(bits), codes=codes.astype(dtype), offset=x_min, scale=delta)


def binarize(alpha, center="median"):
    """1-bit binarization relative to the median or mean of all weights."""
    if center not in CENTERS:
        raise ValueError(f"center must be one of {', '.join(CENTERS)}, not {center!r}")
    a = np.asarray(alpha, dtype=np.float64)
    c = float(np.median(a)) if center == "median" else float(a.mean())
    m = float(np.mean(np.abs(a - c)))
    if m == 0:
        m = 1.0
    codes = (a > c).astype(np.uint8)
    return Quantized(bits=1, codes=codes, offset=-m, scale=2 * m)


#: The quantizers by name (each gives codes and one threshold per neuron), and the default.
QUANTIZERS = ("paper",)
DEFAULT_QUANTIZER = "paper"


def check_quantizer(name):
    """``name`` if it is a quantizer; ``ValueError`` listing the allowed names otherwise."""
    if name not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, not {name!r}")
    return name


def quantize(alpha, bits, center="median", quantizer=DEFAULT_QUANTIZER):
    """k-bit quantization by the named ``quantizer``. ``"paper"``: the paper's, ``binarize`` for
    1 bit, ``quantize_uniform`` otherwise."""
    check_quantizer(quantizer)
    return binarize(alpha, center) if bits == 1 else quantize_uniform(alpha, bits)


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
