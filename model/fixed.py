"""The bit-exact integer model of the retrieval accelerator: the oracle of every hardware test.

Arithmetic (docs/architecture.md, docs/model.md section 3), all in unsigned/signed integers:

- Kernel lookup table, ``F = kernel_bits - 1`` fractional bits, one entry per distance 0..N:
  ``LUT[d] = round(2^F * exp(-4 gamma d))`` (round half to even, as NumPy's ``rint``), so
  ``LUT[0] = 2^F`` fits in ``kernel_bits`` unsigned bits and entries decay to 0.
- Distance ``d_mu = popcount(s XOR xi_mu)`` over N bits (bit value 1 means +1),
  ``K_mu = LUT[d_mu]``.
- Accumulators ``T_i = sum_mu q[mu, i] * K_mu`` with the k-bit weight codes ``q``, and the shared
  ``S_K = sum_mu K_mu``.
- One threshold per neuron, ``r_i = -offset_i / scale_i`` of the quantizer
  (:attr:`khop.model.compress.Quantized.threshold`; the paper's quantizer gives every neuron
  ``-x_min / Delta``, or 1/2 for one bit), as a signed fixed-point integer with
  ``R = threshold_frac_bits`` fractional bits, ``r_fx[i] = round(r_i * 2^R)`` clamped to
  ``[-2^R, 2^(k+R)]``. The clamp changes no decision: since ``0 <= T_i <= (2^k - 1) S_K``, any
  ``r_i < 0`` or ``r_i > 2^k - 1`` decides neuron i the same way as the clamped value.
- Sign update: ``s_i <- 1`` if ``T_i * 2^R > r_fx[i] * S_K``, ``0`` if less, unchanged on a tie.
  It decides like ``sign(h_i)`` of the float quantized weights ``offset_i + scale_i * codes``
  (``scale_i > 0``) up to the rounding of the kernel values and of ``r_i``.
- Dynamics, step counting and the converged flag as :mod:`model.retrieval`.
"""

import math
from dataclasses import dataclass

import numpy as np

from .compress import CENTERS, DEFAULT_QUANTIZER, check_quantizer, quantize
from .netfile import StoredPatterns
from .retrieval import DEFAULT_MAX_STEPS, MAX_STEPS_RANGE, RecallResult, run_dynamics

__all__ = ["FixedConfig", "IntegerNetwork", "kernel_lut", "kernel_reach", "random_within",
           "sharp_kernel_bits", "KERNEL_CROSSTALK", "WIDE_KERNEL_BITS", "threshold_fixed",
           "integer_network", "to_bits", "to_bipolar", "pack_bits", "unpack_bits"]


def _check_int(name, value, lo, hi):
    if not (isinstance(value, int | np.integer) and not isinstance(value, bool)
            and lo <= value <= hi):
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class FixedConfig:
    """The arithmetic of the integer model and the hardware: the one home of these parameters,
    their ranges, defaults and the register widths they imply.

    The hardware's :class:`khop.hw.params.AccelParams` contains one (``params.fixed``) and adds
    the shape and the datapath geometry; :func:`integer_network` builds the model from the same
    object.

    Parameters
    ----------
    weight_bits : int
        Bits per dual weight code ``k``, 1..4.
    kernel_bits : int
        Width of the kernel lookup-table entries, 2..24 (``F = kernel_bits - 1`` fractional bits).
    threshold_frac_bits : int
        Fractional bits ``R`` of the threshold constant ``r_fx``, 1..24.
    max_steps : int
        Retrieval step limit, 1..255 (the result's ``steps`` field is 8 bits wide).
    center : str
        Binarization center of 1-bit weights, ``"median"`` or ``"mean"``.
    quantizer : str
        How the dual weights become codes and per-neuron thresholds
        (:data:`khop.model.compress.QUANTIZERS`).
    """

    weight_bits: int = 2
    kernel_bits: int = 16
    threshold_frac_bits: int = 16
    max_steps: int = DEFAULT_MAX_STEPS
    center: str = "median"
    quantizer: str = DEFAULT_QUANTIZER

    #: Allowed range of each integer field, ``(lo, hi)`` inclusive.
    RANGES = {"weight_bits": (1, 4), "kernel_bits": (2, 24), "threshold_frac_bits": (1, 24),
              "max_steps": MAX_STEPS_RANGE}

    def __post_init__(self):
        for name, (lo, hi) in self.RANGES.items():
            object.__setattr__(self, name, _check_int(name, getattr(self, name), lo, hi))
        if self.center not in CENTERS:
            raise ValueError(f"center must be one of {', '.join(CENTERS)}, not {self.center!r}")
        check_quantizer(self.quantizer)

    @property
    def kernel_frac_bits(self):
        """``F = kernel_bits - 1``: ``LUT[0] = 2^F`` is the kernel value 1."""
        return self.kernel_bits - 1

    @property
    def threshold_bits(self):
        """Signed width of ``r_fx`` in ``[-2^R, 2^(k+R)]``: ``k + R + 2``."""
        return self.weight_bits + self.threshold_frac_bits + 2

    def acc_bits(self, p):
        """Unsigned width of an accumulator ``T_i``: holds ``p (2^k - 1) 2^F``."""
        return (p * (2 ** self.weight_bits - 1) * 2 ** self.kernel_frac_bits).bit_length()

    def sum_bits(self, p):
        """Unsigned width of ``S_K = sum_mu K_mu``: holds ``p 2^F``."""
        return (p * 2 ** self.kernel_frac_bits).bit_length()

    def product_bits(self, p):
        """Signed width of ``theta = r_fx * S_K``."""
        return self.threshold_bits + self.sum_bits(p)

    def as_dict(self):
        return {"weight_bits": self.weight_bits, "kernel_bits": self.kernel_bits,
                "threshold_frac_bits": self.threshold_frac_bits, "max_steps": self.max_steps,
                "center": self.center, "quantizer": self.quantizer}


def kernel_lut(gamma, n, kernel_bits):
    """The kernel lookup table for distances 0..n, ``int64`` of length n + 1."""
    frac = kernel_bits - 1
    d = np.arange(n + 1, dtype=np.float64)
    return np.rint(np.exp(-4.0 * gamma * d) * 2.0 ** frac).astype(np.int64)


def kernel_reach(gamma, n, kernel_bits):
    """The largest distance whose kernel value is not 0 in the lookup table (-1 if none): a
    pattern farther from the state than this adds nothing to any sum."""
    nonzero = np.flatnonzero(kernel_lut(gamma, n, kernel_bits))
    return int(nonzero[-1]) if nonzero.size else -1


#: The crosstalk the kernel width of the boards allows (:func:`sharp_kernel_bits`): the expected
#: number of other stored patterns, random ones, within the lookup table's reach of a state.
KERNEL_CROSSTALK = 0.5


def random_within(n, d):
    """The probability that a random pattern of n bits lies at most ``d`` bits from a given
    state: the Binomial(n, 1/2) distribution function (exact integers, then one division)."""
    return sum(math.comb(n, k) for k in range(max(d, -1) + 1)) / 2 ** n


#: The kernel width when every table reaches more crosstalk than :data:`KERNEL_CROSSTALK`
#: (:func:`sharp_kernel_bits`): nearly every pattern then adds a small value, and from 7 bits
#: up the ridge network's integer model recalls as often as the float model (README).
WIDE_KERNEL_BITS = 7


def sharp_kernel_bits(gamma, n, p, crosstalk=KERNEL_CROSSTALK):
    """The widest ``kernel_bits`` up to the default 16 whose lookup table reaches
    (:func:`kernel_reach`) fewer than ``crosstalk`` of the ``p - 1`` other patterns of a stored
    pattern, if they are random: ``(p - 1) * random_within(n, reach) <= crosstalk``; if even 2
    bits reach more, :data:`WIDE_KERNEL_BITS`.

    Rounding the kernel values of far patterns to 0 removes their crosstalk, and a wider table
    reaches noisier queries: on the ridge network (N=100, P=300, gamma 0.02) 4 bits (values 0
    beyond distance 34; random patterns lie 50 +- 5 away) recall the whole pattern of more
    queries than 7 to 16 bits at 20 % and at 30 % noise, in half the steps, while 5 and 6 bits,
    which reach 10 and 62 % of the other patterns, recall almost none (``khop precision``,
    README). The width follows N, P and gamma: 5 bits at N=128, P=384, 11 at N=256, P=768.
    """
    lo, hi = FixedConfig.RANGES["kernel_bits"][0], FixedConfig.kernel_bits
    sharp = [k for k in range(lo, hi + 1)
             if (p - 1) * random_within(n, kernel_reach(gamma, n, k)) <= crosstalk]
    return sharp[-1] if sharp else WIDE_KERNEL_BITS


def threshold_fixed(r, weight_bits, frac_bits):
    """Fixed-point thresholds ``round(r * 2^R)`` (half to even) clamped to ``[-2^R, 2^(k+R)]``,
    ``int64`` of ``r``'s shape (an ``int`` for a scalar ``r``)."""
    r_fx = np.clip(np.rint(np.asarray(r, dtype=np.float64) * 2.0 ** frac_bits),
                   -(2 ** frac_bits), 2 ** (weight_bits + frac_bits)).astype(np.int64)
    return int(r_fx) if r_fx.ndim == 0 else r_fx


def to_bits(states):
    """Bipolar +-1 states to 0/1 bits (1 means +1), ``uint8``."""
    return (np.asarray(states) > 0).astype(np.uint8)


def to_bipolar(bits):
    """0/1 bits to bipolar +-1 states, ``int8``."""
    return np.where(np.asarray(bits) != 0, 1, -1).astype(np.int8)


def pack_bits(bits):
    """Pack rows of 0/1 bits into Python integers, bit i of the integer = column i."""
    bits = np.atleast_2d(np.asarray(bits, dtype=np.uint8))
    return [int.from_bytes(np.packbits(row, bitorder="little").tobytes(), "little")
            for row in bits]


def unpack_bits(values, n):
    """Inverse of :func:`pack_bits`: integers to an (len(values), n) ``uint8`` array."""
    nbytes = (n + 7) // 8
    raw = np.frombuffer(b"".join(int(v).to_bytes(nbytes, "little") for v in values),
                        dtype=np.uint8).reshape(len(values), nbytes)
    return np.unpackbits(raw, axis=1, count=n, bitorder="little")


@dataclass(frozen=True)
class IntegerNetwork(StoredPatterns):
    """A network in the hardware's integer form, with its retrieval."""

    patterns: np.ndarray    # (P, N) uint8 bits, 1 means +1
    codes: np.ndarray       # (P, N) uint8 weight codes, 0 .. 2^k - 1
    lut: np.ndarray         # (N+1,) int64 kernel table
    r_fx: np.ndarray        # (N,) int64 signed fixed-point thresholds, R fractional bits
    config: FixedConfig

    def __post_init__(self):
        # One threshold per neuron; a scalar means the same threshold for every neuron.
        r_fx = np.asarray(self.r_fx, dtype=np.int64)
        object.__setattr__(self, "r_fx", np.broadcast_to(r_fx, (self.n,)).copy())

    @property
    def uniform_threshold(self):
        """``r_fx`` as one ``int`` when every neuron has the same threshold, else ``None``."""
        return int(self.r_fx[0]) if np.all(self.r_fx == self.r_fx[0]) else None

    def kernels(self, bits):
        """``K_mu = LUT[d_mu]`` for 0/1 states ``bits`` (Q, N): int64 (Q, P)."""
        bits = np.atleast_2d(np.asarray(bits, dtype=np.uint8))
        # popcount(s XOR xi) as an exact float64 product.
        s = bits.astype(np.float64)
        x = self.patterns.astype(np.float64)
        d = (s @ (1 - x).T + (1 - s) @ x.T).astype(np.int64)
        return self.lut[d]

    def sums(self, bits):
        """``(T, S_K)`` for 0/1 states ``bits`` (Q, N): int64 (Q, N) and (Q,)."""
        K = self.kernels(bits)
        S = K.sum(axis=1)
        # float64 is exact here: every partial sum is below 2^53 (checked in integer_network).
        T = np.rint(K.astype(np.float64) @ self.codes.astype(np.float64)).astype(np.int64)
        return T, S

    def step(self, bits):
        """One synchronous update of 0/1 states ``bits`` (Q, N), integer arithmetic."""
        bits = np.atleast_2d(np.asarray(bits, dtype=np.uint8))
        T, S = self.sums(bits)
        lhs = T << self.config.threshold_frac_bits
        rhs = S[:, None] * self.r_fx[None, :]
        return np.where(lhs > rhs, 1, np.where(lhs < rhs, 0, bits)).astype(np.uint8)

    def retrieve(self, bits, max_steps=None):
        """Retrieval from 0/1 states (Q, N); returns :class:`RecallResult` with 0/1 ``states``."""
        max_steps = self.config.max_steps if max_steps is None else max_steps

        def update(cur):
            return to_bipolar(self.step(to_bits(cur)))

        res = run_dynamics(to_bipolar(bits), update, max_steps)
        return RecallResult(states=to_bits(res.states), steps=res.steps, converged=res.converged)

    def bit_accuracy(self):
        """One-step bit accuracy from every stored pattern, like ``metrics.bit_accuracy``."""
        return float(np.mean(self.step(self.patterns) == self.patterns))


def integer_network(patterns, alpha, gamma, config=FixedConfig()):
    """Build the integer form of a trained network for the hardware arithmetic ``config``: codes
    and per-neuron thresholds from ``config.quantizer``, the kernel table from ``gamma``."""
    patterns = np.asarray(patterns)
    q = quantize(alpha, config.weight_bits, config.center, config.quantizer)
    inet = IntegerNetwork(patterns=to_bits(patterns), codes=q.codes.astype(np.uint8),
                          lut=kernel_lut(gamma, patterns.shape[1], config.kernel_bits),
                          r_fx=threshold_fixed(q.threshold, config.weight_bits,
                                               config.threshold_frac_bits),
                          config=config)
    acc_bits = config.acc_bits(inet.p)
    if acc_bits > 52 or acc_bits + config.threshold_frac_bits > 62 \
            or config.product_bits(inet.p) > 62:
        raise ValueError(f"P={inet.p} with weight_bits={config.weight_bits}, "
                         f"kernel_bits={config.kernel_bits}: accumulators too wide for the model")
    return inet
