"""The accelerator's configuration, its validation, the derived figures and the cycle model.

:class:`AccelParams` is the one configuration object of the hardware: the integer model's
arithmetic (:class:`khop.model.fixed.FixedConfig`, held as ``params.fixed``) plus the network's
shape and the datapath geometry. Every figure the hardware and its users need (memory shapes and
bits, register widths, the cycle model) is computed here once, so the components, the Verilog
export, the testbenches and the resource estimator agree by construction.

:func:`hardware_params` resolves a user's hardware options (``None`` = the default, a target's
preference first) into an :class:`AccelParams` for a shape; :func:`configure` is the one function
that derives the configuration and the integer network from a trained network.
"""

import ast
import operator
from dataclasses import dataclass, field

import numpy as np

from khop.model.errors import ParameterError
from khop.model.fixed import FixedConfig, integer_network, sharp_kernel_bits
from khop.model.klr import TrainConfig

__all__ = ["AccelParams", "HardwareDefaults", "GENERIC_DEFAULTS", "HARDWARE_OPTIONS",
           "STEP_CYCLE_TERMS", "QUERY_HANDSHAKE_CYCLES", "MAX_BATCH", "step_cycle_formula",
           "ceil_div",
           "hardware_params", "configure"]


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


def _view_of_fixed(name):
    """A read-only property of :class:`AccelParams` that reads ``params.fixed.<name>``."""
    return property(lambda self: getattr(self.fixed, name),
                    doc=f"``fixed.{name}`` (:class:`FixedConfig`), read-only.")


def _shape_of(memory, axis):
    """A read-only property of :class:`AccelParams`: the depth (``axis`` 0) or width (1) of
    ``memory`` in :attr:`AccelParams.memory_shapes`."""
    return property(lambda self: self.memory_shapes[memory][axis],
                    doc=f"{('depth', 'width')[axis]} of the {memory} memory "
                        f"(:attr:`memory_shapes`).")


@dataclass(frozen=True)
class AccelParams:
    """Configuration of :class:`khop.hw.accelerator.RetrievalAccelerator`.

    Parameters
    ----------
    n : int
        Neurons (pattern width), >= 2.
    p : int
        Stored patterns, >= 1.
    fixed : FixedConfig
        The arithmetic (weight bits, kernel bits, threshold fraction bits, step limit, 1-bit
        center), shared with the integer model.
    lanes : int
        Neurons accumulated in parallel by the MAC array for each query, 1..n.
    batch : int
        Queries in flight, 1..:data:`MAX_BATCH`: every pattern and weight read serves each of
        them (``batch`` distance units and ``batch * lanes`` accumulators); results leave in
        the order the queries came.
    popcount_width : int or None
        Bits of the XNOR/popcount per cycle, 1..n; ``None`` means n (one cycle per pattern).
    threshold_units : int or None
        Threshold units of the sign update, 1..lanes: each multiplies a neuron's threshold
        ``r_fx[i]`` by ``S_K`` (one multiplier, a DSP block on the boards) and compares the
        product with ``T_i * 2^R``, one neuron per cycle, so a beat of ``lanes`` sums takes
        :attr:`threshold_groups` cycles (:mod:`khop.hw.sign_update`); ``None`` means
        :attr:`HardwareDefaults.threshold_units` capped at ``lanes``. Fewer units: fewer
        multipliers, more cycles per step (:data:`STEP_CYCLE_TERMS`).

    Members
    -------
    weight_bits, kernel_bits, threshold_frac_bits, max_steps : int
        Read-only views of ``fixed``.
    """

    n: int
    p: int
    fixed: FixedConfig = field(default_factory=FixedConfig)
    lanes: int = 16
    popcount_width: int | None = None
    threshold_units: int | None = None
    batch: int = 1

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "n", _int_param("n", self.n, 2))
        set_(self, "p", _int_param("p", self.p, 1))
        if not isinstance(self.fixed, FixedConfig):
            raise TypeError(f"fixed must be a FixedConfig, not {self.fixed!r}")
        set_(self, "lanes", _int_param("lanes", self.lanes, 1, self.n))
        set_(self, "batch", _int_param("batch", self.batch, 1, MAX_BATCH))
        if self.popcount_width is None:
            set_(self, "popcount_width", self.n)
        set_(self, "popcount_width",
             _int_param("popcount_width", self.popcount_width, 1, self.n))
        if self.threshold_units is None:
            set_(self, "threshold_units", min(GENERIC_DEFAULTS.threshold_units, self.lanes))
        set_(self, "threshold_units",
             _int_param("threshold_units", self.threshold_units, 1, self.lanes))

    # The arithmetic -------------------------------------------------------------------------

    weight_bits = _view_of_fixed("weight_bits")
    kernel_bits = _view_of_fixed("kernel_bits")
    threshold_frac_bits = _view_of_fixed("threshold_frac_bits")
    max_steps = _view_of_fixed("max_steps")

    def check_network(self, inet):
        """Raise ``ValueError`` naming the first difference if integer network ``inet`` was not
        built for this configuration (shape and arithmetic)."""
        if (inet.p, inet.n) != (self.p, self.n):
            raise ValueError(f"network is p={inet.p}, n={inet.n} but the accelerator is built "
                             f"for p={self.p}, n={self.n}")
        for name in ("weight_bits", "kernel_bits", "threshold_frac_bits"):
            have, want = getattr(inet.config, name), getattr(self.fixed, name)
            if have != want:
                raise ValueError(f"network has {name}={have} but the accelerator is built for "
                                 f"{name}={want}")
        lo, hi = self.threshold_range
        r_fx = np.asarray(inet.r_fx)
        if r_fx.shape != (self.n,) or r_fx.min() < lo or r_fx.max() > hi:
            raise ValueError(f"network thresholds r_fx must be {self.n} values in {lo}..{hi}")

    # Shapes ---------------------------------------------------------------------------------

    @property
    def blocks(self):
        """``ceil(n / lanes)``: the MAC array's passes over the patterns per step (block-outer
        order, one block of ``lanes`` neurons per pass)."""
        return ceil_div(self.n, self.lanes)

    @property
    def chunks(self):
        """``ceil(n / popcount_width)``: distance cycles per pattern."""
        return ceil_div(self.n, self.popcount_width)

    @property
    def kernel_frac_bits(self):
        return self.fixed.kernel_frac_bits

    @property
    def distance_bits(self):
        """Width of a Hamming distance 0..n."""
        return self.n.bit_length()

    @property
    def acc_bits(self):
        """Unsigned width of an accumulator ``T_i`` (:meth:`FixedConfig.acc_bits`)."""
        return self.fixed.acc_bits(self.p)

    @property
    def sum_bits(self):
        """Unsigned width of ``S_K`` (:meth:`FixedConfig.sum_bits`)."""
        return self.fixed.sum_bits(self.p)

    @property
    def threshold_bits(self):
        """Signed width of the threshold constant ``r_fx`` (:attr:`FixedConfig.threshold_bits`)."""
        return self.fixed.threshold_bits

    @property
    def threshold_range(self):
        """``(lo, hi)``: the thresholds ``r_fx[i]`` the hardware takes, ``-2^R .. 2^(k+R)``."""
        frac = self.threshold_frac_bits
        return -(2 ** frac), 2 ** (self.weight_bits + frac)

    @property
    def threshold_groups(self):
        """``ceil(lanes / threshold_units)``: cycles in which the threshold units go through a
        beat of ``lanes`` sums, ``threshold_units`` neurons per cycle (group g: lanes
        ``g * threshold_units ..``)."""
        return ceil_div(self.lanes, self.threshold_units)

    @property
    def multiplier_shape(self):
        """``(a, b)``: a threshold unit's multiplier, ``r_fx`` (``a`` bits, signed) times
        ``S_K`` (``b`` bits, unsigned)."""
        return self.threshold_bits, self.sum_bits

    @property
    def compare_bits(self):
        """Signed width of a threshold unit's difference ``T_i * 2^R - r_fx[i] * S_K``."""
        return max(self.acc_bits + self.threshold_frac_bits + 1, self.product_bits) + 1

    @property
    def product_bits(self):
        """Signed width of ``theta = r_fx * S_K``."""
        return self.fixed.product_bits(self.p)

    # Memories -------------------------------------------------------------------------------

    @property
    def memory_shapes(self):
        """``{memory: (depth, width)}``, the one home of the memory shapes: ``pattern``
        (``p * chunks`` words of ``popcount_width`` bits), ``weight`` (``p * blocks`` words of
        ``lanes * weight_bits``), ``lut`` (``n + 1`` entries of ``kernel_bits``) and
        ``threshold`` (``blocks * threshold_groups`` words of ``threshold_units *
        threshold_bits``, the thresholds of one group of lanes)."""
        return {"pattern": (self.p * self.chunks, self.popcount_width),
                "weight": (self.p * self.blocks, self.lanes * self.weight_bits),
                "lut": (self.n + 1, self.kernel_bits),
                "threshold": (self.blocks * self.threshold_groups,
                              self.threshold_units * self.threshold_bits)}

    pattern_depth = _shape_of("pattern", 0)
    pattern_width = _shape_of("pattern", 1)
    weight_depth = _shape_of("weight", 0)
    weight_width = _shape_of("weight", 1)
    lut_depth = _shape_of("lut", 0)
    threshold_depth = _shape_of("threshold", 0)
    threshold_width = _shape_of("threshold", 1)

    @property
    def memory_bits(self):
        """Bits of every memory: pattern, weight, kernel lookup table and thresholds."""
        return {name: depth * width for name, (depth, width) in self.memory_shapes.items()}

    @property
    def accumulator_bits(self):
        """Flip-flops of the accumulators: ``lanes`` per query of the batch."""
        return self.batch * self.lanes * self.acc_bits

    @property
    def kernel_buffer_shape(self):
        """``(depth, width)`` of the MAC array's kernel buffer (``p`` words of ``batch``
        kernels, written in block 0, read by the later blocks), ``None`` for one block."""
        return None if self.blocks == 1 else (self.p, self.batch * self.kernel_bits)

    # Load port ------------------------------------------------------------------------------

    @property
    def load_addr_bits(self):
        return max(1, max(self.pattern_depth, self.weight_depth, self.lut_depth,
                          self.threshold_depth) - 1).bit_length()

    @property
    def load_data_bits(self):
        return max(self.pattern_width, self.weight_width, self.kernel_bits,
                   self.threshold_width)

    # Cycle model ----------------------------------------------------------------------------

    @property
    def bound_cycles_per_step(self):
        """The weight-read bound of a step, ``p * ceil(n / lanes)`` cycles: every weight word is
        read once per step, whatever the batch (docs/architecture.md)."""
        return self.p * self.blocks

    @property
    def bound_cycles_per_query_step(self):
        """The bound per query: :attr:`bound_cycles_per_step` shared by the ``batch`` queries
        of a step, ``p * ceil(n / lanes) / batch``."""
        return self.bound_cycles_per_step / self.batch

    @property
    def cycles_per_step(self):
        """Exact cycles of one retrieval step without backpressure: the sum of
        :data:`STEP_CYCLE_TERMS` (see :mod:`khop.hw.sign_update`)."""
        names = self.cycle_names()
        return sum(eval(code, {"__builtins__": {}}, names) for code in _STEP_CYCLE_CODE)

    def cycle_names(self):
        """The values of the names :data:`STEP_CYCLE_TERMS` is written in."""
        return {"chunks": self.chunks, "blocks": self.blocks, "p": self.p,
                "batch": self.batch, "threshold_groups": self.threshold_groups, "max": max}

    @property
    def join_cycles(self):
        """Cycles of the join window before a step that starts from idle: ``batch - 1`` (a
        burst of queries joins the first step; none with one slot). After a step that finished
        a query, the next step waits :attr:`rejoin_cycles` for the replacements
        (:mod:`khop.hw.timing`)."""
        return self.batch - 1

    @property
    def rejoin_cycles(self):
        """Cycles of the join window after a step that finished a query and before the next
        step: ``batch`` (the replacements arrive one per cycle as the results are taken), 0
        with one slot."""
        return self.batch if self.batch > 1 else 0

    def cycles_per_query(self, steps):
        """Latency of a query that takes ``steps`` steps and finds the accelerator idle:
        ``o_result`` becomes valid just after the clock edge ``join_cycles + steps *
        cycles_per_step`` edges after the one that transferred the query (so a result is
        transferred at the earliest one edge later). With queries in flight,
        :mod:`khop.hw.timing` gives each latency."""
        return self.join_cycles + steps * self.cycles_per_step

    def query_interval(self, steps):
        """Edges between two back-to-back queries without backpressure, the first taking
        ``steps`` steps (a mean is fine: the interval is linear in it): its latency
        :meth:`cycles_per_query` plus :data:`QUERY_HANDSHAKE_CYCLES` (docs/datasheet.md,
        "Timing"). With ``batch == 1``, ``clock_hz / query_interval(steps)`` is the retrieval
        rate; with more queries in flight :func:`khop.hw.timing.back_to_back` gives it."""
        return self.cycles_per_query(steps) + QUERY_HANDSHAKE_CYCLES

    def as_dict(self):
        """Flat ``{name: value}`` of every parameter (inverse: :meth:`from_dict`)."""
        return {"n": self.n, "p": self.p, **self.fixed.as_dict(), "lanes": self.lanes,
                "popcount_width": self.popcount_width,
                "threshold_units": self.threshold_units, "batch": self.batch}

    def options(self):
        """This configuration as the hardware options of :func:`hardware_params` /
        :func:`configure` (every one set, the 1-bit ``center`` included): a network of the same
        shape configured with them gets exactly this configuration."""
        return {"bits": self.weight_bits, "lanes": self.lanes,
                "popcount_width": self.popcount_width, "kernel_bits": self.kernel_bits,
                "threshold_frac_bits": self.threshold_frac_bits, "max_steps": self.max_steps,
                "center": self.fixed.center, "quantizer": self.fixed.quantizer,
                "threshold_units": self.threshold_units, "batch": self.batch}

    @classmethod
    def from_dict(cls, values):
        """The configuration :meth:`as_dict` printed (unknown keys are an error)."""
        values = dict(values)
        fixed = {k: values.pop(k) for k in FixedConfig.__dataclass_fields__ if k in values}
        return cls(fixed=FixedConfig(**fixed), **values)


#: The most queries in flight (:attr:`AccelParams.batch`).
MAX_BATCH = 32

#: Edges between a result's transfer-ready edge and the next query's transfer, back to back: the
#: result is taken one edge after it is valid, the next query one edge later
#: (:meth:`AccelParams.query_interval`).
QUERY_HANDSHAKE_CYCLES = 2

#: The cycle model of one retrieval step (a sweep serving every query of the batch), term by
#: term, each an expression in ``chunks``, ``blocks``, ``p``, ``batch`` and
#: ``threshold_groups`` (:meth:`AccelParams.cycle_names`): :attr:`AccelParams.cycles_per_step`
#: sums them and the Verilog export prints them, so the model and its description cannot drift
#: (docs/architecture.md).
STEP_CYCLE_TERMS = (
    ("START", "1"),
    ("distance pipeline fill", "5"),
    ("block 0: a pattern per distance pass", "p * chunks"),
    ("MAC pipeline tail", "4"),
    ("blocks 1 .. blocks-1: a pattern per cycle, pipeline tail", "(blocks - 1) * (p + 3)"),
    ("threshold units, a beat per query and block", "blocks * batch * (threshold_groups + 1)"),
    ("threshold pipeline, last beat applied, decision", "3"),
)

_STEP_CYCLE_CODE = tuple(compile(expr, f"<cycle term {what}>", "eval")
                         for what, expr in STEP_CYCLE_TERMS)


def step_cycle_formula():
    """:data:`STEP_CYCLE_TERMS` as one formula, the constants summed at the end:
    ``"cycles_per_step = p * chunks + (blocks - 1) * (p + 5) + ... + 12"``."""
    parts, constant = [], 0

    def flatten(node):
        nonlocal constant
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            flatten(node.left)
            flatten(node.right)
        elif isinstance(node, ast.Constant):
            constant += node.value
        else:
            parts.append(ast.unparse(node))

    for _, expr in STEP_CYCLE_TERMS:
        flatten(ast.parse(expr, mode="eval").body)
    return "cycles_per_step = " + " + ".join([*parts, str(constant)])


# From options to a configuration ------------------------------------------------------------

@dataclass(frozen=True)
class HardwareDefaults:
    """A target's preferred geometry and arithmetic: what an unset hardware option becomes.

    ``threshold_units`` is the sign update's threshold multipliers (:class:`AccelParams`),
    capped at ``lanes``; ``batch`` the queries in flight; ``kernel_bits`` and
    ``threshold_frac_bits`` the arithmetic's widths (:class:`FixedConfig`); ``kernel_bits``
    ``None`` means the widest lookup table without crosstalk for the network's N, P and gamma
    (:func:`khop.model.fixed.sharp_kernel_bits`).
    """

    lanes: int = 16
    kernel_bits: int | None = FixedConfig.kernel_bits
    threshold_frac_bits: int = FixedConfig.threshold_frac_bits
    threshold_units: int = 4
    batch: int = 1


#: The defaults when no target is named (``khop verilog``, ``khop cosim``).
GENERIC_DEFAULTS = HardwareDefaults()

#: The hardware options a user sets (``None`` = default), as keyword names of
#: :func:`hardware_params`; the command line's option group is built from this list.
HARDWARE_OPTIONS = ("bits", "lanes", "batch", "popcount_width", "kernel_bits",
                    "threshold_frac_bits", "max_steps", "quantizer")


def hardware_params(n, p, *, bits=None, lanes=None, batch=None, popcount_width=None,
                    kernel_bits=None, threshold_frac_bits=None, max_steps=None, center=None,
                    quantizer=None, threshold_units=None, gamma=None, defaults=GENERIC_DEFAULTS):
    """The :class:`AccelParams` for an n x p network and the user's hardware options.

    Unset options (``None``) take ``defaults`` (a target's :class:`HardwareDefaults`), then the
    defaults of :class:`FixedConfig`; ``lanes`` is capped at ``n``, ``threshold_units`` at
    ``lanes``. ``threshold_units`` is not a command-line option: the target's preference
    unless given. ``gamma`` is the network's kernel width, for a target whose kernel width
    follows it (``defaults.kernel_bits`` ``None``); unset, the training default
    (:class:`khop.model.klr.TrainConfig`). A bad value raises one
    :class:`~khop.model.errors.ParameterError` naming it, its allowed range and the shape.
    """
    fixed_defaults = FixedConfig()
    try:
        if lanes is None:
            lanes = min(int(n), defaults.lanes)
        if kernel_bits is None:
            kernel_bits = defaults.kernel_bits
        if kernel_bits is None:
            kernel_bits = sharp_kernel_bits(TrainConfig.gamma if gamma is None else gamma,
                                            _int_param("n", n, 2), _int_param("p", p, 1))
        fixed = FixedConfig(
            weight_bits=fixed_defaults.weight_bits if bits is None else bits,
            kernel_bits=kernel_bits,
            threshold_frac_bits=(defaults.threshold_frac_bits if threshold_frac_bits is None
                                 else threshold_frac_bits),
            max_steps=fixed_defaults.max_steps if max_steps is None else max_steps,
            center=fixed_defaults.center if center is None else center,
            quantizer=fixed_defaults.quantizer if quantizer is None else quantizer)
        if threshold_units is None and isinstance(lanes, int) and lanes >= 1:
            threshold_units = min(defaults.threshold_units, lanes)
        return AccelParams(n=n, p=p, fixed=fixed, lanes=lanes, popcount_width=popcount_width,
                           threshold_units=threshold_units,
                           batch=defaults.batch if batch is None else batch)
    except (ValueError, TypeError) as e:
        raise ParameterError(f"{e} (network N={n}, P={p})") from None


def configure(net, *, defaults=GENERIC_DEFAULTS, **options):
    """``(AccelParams, IntegerNetwork)`` for trained network ``net`` (a
    :class:`khop.model.netfile.Network`) and hardware ``options`` (:data:`HARDWARE_OPTIONS`).

    The one place a configuration is derived from a network: the integer network is built with
    the configuration's own :class:`FixedConfig`, so the two agree by construction. An unset
    ``quantizer`` is the network's own (``net.quantizer``: the one its file records; ``paper``
    for a file of format version 1).
    """
    if options.get("quantizer") is None and getattr(net, "quantizer", None) is not None:
        options = {**options, "quantizer": net.quantizer}
    params = hardware_params(net.n, net.p, gamma=net.gamma, defaults=defaults, **options)
    try:
        inet = integer_network(net.patterns, net.alpha, net.gamma, params.fixed)
    except ValueError as e:
        raise ParameterError(f"{e} (network N={net.n}, P={net.p})") from None
    return params, inet
