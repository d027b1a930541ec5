"""Parameters of the retrieval accelerator, their validation, and the derived figures.

Every figure the hardware and its users need (memory shapes and bits, register widths, the cycle
model) is computed here once, so the components, the Verilog export, the testbenches and the
resource estimator agree by construction.
"""

import operator
from dataclasses import dataclass

__all__ = ["AccelParams", "ceil_div"]


def ceil_div(a, b):
    return -(-a // b)


def _int_param(name, value, lo, hi=None):
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {value!r}") from None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if v < lo or (hi is not None and v > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be in {allowed}, not {value!r}")
    return v


@dataclass(frozen=True)
class AccelParams:
    """Parameters of :class:`hw.accelerator.RetrievalAccelerator`.

    Parameters
    ----------
    n : int
        Neurons (pattern width), >= 2.
    p : int
        Stored patterns, >= 1.
    weight_bits : int
        Bits per dual weight code, 1..4.
    lanes : int
        Neurons accumulated in parallel by the MAC array, 1..n.
    popcount_width : int or None
        Bits of the XNOR/popcount per cycle, 1..n; ``None`` means n (one cycle per pattern).
    kernel_bits : int
        Width of the kernel lookup-table entries (``kernel_bits - 1`` fractional bits), 2..24.
    threshold_frac_bits : int
        Fractional bits of the threshold constant ``r``, 1..24.
    max_steps : int
        Retrieval step limit, 1..255 (the result's ``steps`` field is 8 bits wide).
    """

    n: int
    p: int
    weight_bits: int = 2
    lanes: int = 16
    popcount_width: int | None = None
    kernel_bits: int = 16
    threshold_frac_bits: int = 16
    max_steps: int = 30

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "n", _int_param("n", self.n, 2))
        set_(self, "p", _int_param("p", self.p, 1))
        set_(self, "weight_bits", _int_param("weight_bits", self.weight_bits, 1, 4))
        set_(self, "lanes", _int_param("lanes", self.lanes, 1, self.n))
        if self.popcount_width is None:
            set_(self, "popcount_width", self.n)
        set_(self, "popcount_width",
             _int_param("popcount_width", self.popcount_width, 1, self.n))
        set_(self, "kernel_bits", _int_param("kernel_bits", self.kernel_bits, 2, 24))
        set_(self, "threshold_frac_bits",
             _int_param("threshold_frac_bits", self.threshold_frac_bits, 1, 24))
        set_(self, "max_steps", _int_param("max_steps", self.max_steps, 1, 255))

    # Shapes ---------------------------------------------------------------------------------

    @property
    def blocks(self):
        """``ceil(n / lanes)``: MAC cycles per pattern, accumulator words in the ring."""
        return ceil_div(self.n, self.lanes)

    @property
    def chunks(self):
        """``ceil(n / popcount_width)``: distance cycles per pattern."""
        return ceil_div(self.n, self.popcount_width)

    @property
    def kernel_frac_bits(self):
        return self.kernel_bits - 1

    @property
    def distance_bits(self):
        """Width of a Hamming distance 0..n."""
        return self.n.bit_length()

    @property
    def acc_bits(self):
        """Unsigned width of an accumulator ``T_i``: holds ``p (2^k - 1) 2^F``."""
        return (self.p * (2 ** self.weight_bits - 1) * 2 ** self.kernel_frac_bits).bit_length()

    @property
    def sum_bits(self):
        """Unsigned width of ``S_K = sum_mu K_mu``: holds ``p 2^F``."""
        return (self.p * 2 ** self.kernel_frac_bits).bit_length()

    @property
    def threshold_bits(self):
        """Signed width of the threshold constant ``r_fx`` in ``[-2^R, 2^(k+R)]``."""
        return self.weight_bits + self.threshold_frac_bits + 2

    @property
    def product_bits(self):
        """Signed width of ``theta = r_fx * S_K``."""
        return self.threshold_bits + self.sum_bits

    # Memories -------------------------------------------------------------------------------

    @property
    def pattern_depth(self):
        return self.p * self.chunks

    @property
    def pattern_width(self):
        return self.popcount_width

    @property
    def weight_depth(self):
        return self.p * self.blocks

    @property
    def weight_width(self):
        return self.lanes * self.weight_bits

    @property
    def lut_depth(self):
        return self.n + 1

    @property
    def memory_bits(self):
        """Bits of every memory: pattern, weight and kernel lookup table."""
        return {"pattern": self.pattern_depth * self.pattern_width,
                "weight": self.weight_depth * self.weight_width,
                "lut": self.lut_depth * self.kernel_bits}

    @property
    def accumulator_bits(self):
        """Flip-flops of the accumulator ring."""
        return self.blocks * self.lanes * self.acc_bits

    # Load port ------------------------------------------------------------------------------

    @property
    def load_addr_bits(self):
        return max(1, max(self.pattern_depth, self.weight_depth, self.lut_depth) - 1).bit_length()

    @property
    def load_data_bits(self):
        return max(self.pattern_width, self.weight_width, self.kernel_bits, self.threshold_bits)

    # Cycle model ----------------------------------------------------------------------------

    @property
    def bound_cycles_per_step(self):
        """The memory-bandwidth bound ``p * ceil(n / lanes)`` (ARCHITECTURE.md)."""
        return self.p * self.blocks

    @property
    def cycles_per_pattern(self):
        """Steady-state cycles per stored pattern: the slower of MAC and distance unit."""
        return max(self.blocks, self.chunks)

    @property
    def cycles_per_step(self):
        """Exact cycles of one retrieval step without backpressure (see :mod:`hw.sign_update`).

        ``START`` (1) + distance pipeline fill (``chunks + 4``) + ``p`` patterns of
        ``cycles_per_pattern`` + MAC tail (4) + threshold multiply (``threshold_bits``) +
        ``PREPARE`` (1) + sign update (``blocks`` + 2).
        """
        return (1 + self.chunks + 4 + (self.p - 1) * self.cycles_per_pattern + self.blocks
                + 4 + self.threshold_bits + 1 + self.blocks + 2)

    def cycles_per_query(self, steps):
        """Clock edges from the one that transfers a query to the first with its result valid."""
        return steps * self.cycles_per_step

    def as_dict(self):
        return {"n": self.n, "p": self.p, "weight_bits": self.weight_bits, "lanes": self.lanes,
                "popcount_width": self.popcount_width, "kernel_bits": self.kernel_bits,
                "threshold_frac_bits": self.threshold_frac_bits, "max_steps": self.max_steps}
