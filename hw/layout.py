"""Stream payload layouts, load targets, and packing of a network into memory words.

The layouts are the single definition used by the hardware, the testbenches, the host-side
packers and the Verilog export's description: every packer and unpacker here reads the field
offsets and widths from the :class:`~amaranth.lib.data.StructLayout`, none is re-declared.

Memory words (bit 0 is the LSB):

- pattern memory: word ``mu * chunks + c`` holds bits ``c*W .. c*W + W - 1`` of pattern mu
  (bit i = neuron i, 1 means +1); bits past n are 0.
- weight memory: word ``mu * blocks + b`` holds the codes of neurons ``b*L .. b*L + L - 1`` of
  pattern mu, lane l in bits ``l*k .. l*k + k - 1``; lanes past n are 0.
- lookup table: word d (0..n) holds ``LUT[d]``.
- threshold memory: word ``b * G + g`` (``G = threshold_groups``) holds the thresholds
  ``r_fx[i]`` of the neurons of group g of block b, ``i = b*L + g*U + u`` (``U =
  threshold_units``), unit u in bits ``u*R' .. u*R' + R' - 1`` (``R' = threshold_bits``, two's
  complement); units past the block's lanes or past n are 0. A load writes one such word.

``i_load`` payload (:func:`load_layout`), from the LSB: ``target`` (:class:`LoadTarget`),
``addr`` (``load_addr_bits``), ``data`` (``load_data_bits``).

``o_result`` payload (:func:`result_layout`), from the LSB: ``state`` (n bits), ``steps``
(:data:`STEPS_BITS`), ``converged`` (1 bit).
"""

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data, enum

from khop.model.fixed import FixedConfig

from .params import AccelParams

__all__ = ["LoadTarget", "STEPS_BITS", "load_layout", "result_layout", "field_slices",
           "pattern_words", "weight_words", "load_words", "pack_load", "unpack_load",
           "pack_result_fields", "unpack_result", "unpack_pattern_words", "unpack_weight_words",
           "threshold_words", "unpack_threshold_words", "threshold_writes"]


class LoadTarget(enum.Enum, shape=2):
    """What an ``i_load`` write addresses."""

    PATTERN = 0
    WEIGHT = 1
    LUT = 2
    THRESHOLD = 3


#: Width of the result's ``steps`` field: holds the largest allowed ``max_steps``.
STEPS_BITS = FixedConfig.RANGES["max_steps"][1].bit_length()


def load_layout(params: AccelParams):
    return data.StructLayout({"target": LoadTarget, "addr": params.load_addr_bits,
                              "data": params.load_data_bits})


def result_layout(params: AccelParams):
    return data.StructLayout({"state": params.n, "steps": STEPS_BITS, "converged": 1})


def field_slices(layout):
    """``{name: (offset, width)}`` of every field of a ``StructLayout``, from the LSB."""
    return {name: (field.offset, Shape.cast(field.shape).width) for name, field in layout}


def _pack(layout, **values):
    """The integer of ``layout`` with each field set to an unsigned ``values[name]``."""
    word = 0
    for name, (offset, width) in field_slices(layout).items():
        value = int(values[name])
        if not 0 <= value < 1 << width:
            raise ValueError(f"{name}={value} does not fit the field's {width} bits")
        word |= value << offset
    return word


def _unpack(layout, value):
    """``{name: unsigned field value}`` of an integer of ``layout``."""
    return {name: (value >> offset) & ((1 << width) - 1)
            for name, (offset, width) in field_slices(layout).items()}


# Memory words -------------------------------------------------------------------------------

def _pack_rows(values, per_word, field_bits):
    """Pack (rows, cols) small unsigned ints into words of ``per_word`` fields each."""
    rows, cols = values.shape
    words_per_row = -(-cols // per_word)
    padded = np.zeros((rows, words_per_row * per_word), dtype=np.uint64)
    padded[:, :cols] = values
    shifts = [i * field_bits for i in range(per_word)]
    return [sum(int(f) << s for f, s in zip(word.tolist(), shifts, strict=True))
            for row in padded.reshape(rows, words_per_row, per_word) for word in row]


def _unpack_rows(params, words, per_word, field_bits, depth, what):
    """Inverse of :func:`_pack_rows`: (p, n) ``uint8`` from ``depth`` memory words."""
    words = [int(w) for w in words]
    if len(words) != depth:
        raise ValueError(f"{what} needs {depth} words, not {len(words)}")
    mask = (1 << field_bits) - 1
    flat = [(w >> (i * field_bits)) & mask for w in words for i in range(per_word)]
    rows = np.array(flat, dtype=np.uint8).reshape(params.p, -1)
    return np.ascontiguousarray(rows[:, :params.n])


def _check_shape(params, array, what):
    if array.shape != (params.p, params.n):
        raise ValueError(f"{what} have shape {array.shape}, but the accelerator is built for "
                         f"p={params.p}, n={params.n}")


def pattern_words(params: AccelParams, patterns):
    """Pattern memory contents from (p, n) 0/1 bits."""
    patterns = np.asarray(patterns)
    _check_shape(params, patterns, "patterns")
    return _pack_rows(patterns.astype(np.uint64), params.popcount_width, 1)


def unpack_pattern_words(params: AccelParams, words):
    """Inverse of :func:`pattern_words`: the (p, n) ``uint8`` 0/1 patterns."""
    return _unpack_rows(params, words, params.popcount_width, 1, params.pattern_depth,
                        "the pattern memory")


def weight_words(params: AccelParams, codes):
    """Weight memory contents from (p, n) codes in 0 .. 2^k - 1."""
    codes = np.asarray(codes)
    _check_shape(params, codes, "weight codes")
    if codes.size and int(codes.max()) >= 2 ** params.weight_bits:
        raise ValueError(f"weight codes must be below 2^{params.weight_bits}, "
                         f"found {int(codes.max())}")
    return _pack_rows(codes.astype(np.uint64), params.lanes, params.weight_bits)


def unpack_weight_words(params: AccelParams, words):
    """Inverse of :func:`weight_words`: the (p, n) ``uint8`` weight codes."""
    return _unpack_rows(params, words, params.lanes, params.weight_bits, params.weight_depth,
                        "the weight memory")


def _threshold_fields(params: AccelParams, r_fx):
    """The (n,) thresholds ``r_fx`` (a scalar: the same for every neuron), range-checked, as
    unsigned two's complement of ``threshold_bits`` bits."""
    r_fx = np.broadcast_to(np.asarray(r_fx, dtype=np.int64), (params.n,))
    lo, hi = params.threshold_range
    if r_fx.size and (int(r_fx.min()) < lo or int(r_fx.max()) > hi):
        raise ValueError(f"thresholds r_fx must be in {lo}..{hi}, found "
                         f"{int(r_fx.min())}..{int(r_fx.max())}")
    mask = (1 << params.threshold_bits) - 1
    return [int(r) & mask for r in r_fx.tolist()]


def _threshold_slots(params: AccelParams):
    """``[(address, unit, neuron or None)]`` of every unit of every threshold word."""
    lanes, units, groups = params.lanes, params.threshold_units, params.threshold_groups
    slots = []
    for b in range(params.blocks):
        for g in range(groups):
            for u in range(units):
                lane = g * units + u
                i = b * lanes + lane
                slots.append((b * groups + g, u, i if lane < lanes and i < params.n else None))
    return slots


def threshold_words(params: AccelParams, r_fx):
    """Threshold memory contents from the (n,) signed thresholds ``r_fx`` (a scalar: the same
    for every neuron), each in :attr:`AccelParams.threshold_range`."""
    fields = _threshold_fields(params, r_fx)
    words = [0] * params.threshold_depth
    width = params.threshold_bits
    for addr, u, i in _threshold_slots(params):
        if i is not None:
            words[addr] |= fields[i] << (u * width)
    return words


def threshold_writes(params: AccelParams, r_fx):
    """The ``(addr, data)`` THRESHOLD loads of the (n,) thresholds ``r_fx`` (a scalar: the same
    for every neuron): one per threshold memory word (:func:`threshold_words`)."""
    return list(enumerate(threshold_words(params, r_fx)))


def unpack_threshold_words(params: AccelParams, words):
    """Inverse of :func:`threshold_words`: the (n,) ``int64`` thresholds."""
    words = [int(w) for w in words]
    if len(words) != params.threshold_depth:
        raise ValueError(f"the threshold memory needs {params.threshold_depth} words, "
                         f"not {len(words)}")
    width = params.threshold_bits
    values = np.zeros(params.n, dtype=np.int64)
    for addr, u, i in _threshold_slots(params):
        if i is not None:
            v = (words[addr] >> (u * width)) & ((1 << width) - 1)
            values[i] = v - (1 << width) if v >> (width - 1) else v
    return values


def load_words(params: AccelParams, inet):
    """Every ``(target, addr, data)`` write that loads integer network ``inet``."""
    params.check_network(inet)
    writes = [(LoadTarget.PATTERN, a, w)
              for a, w in enumerate(pattern_words(params, inet.patterns))]
    writes += [(LoadTarget.WEIGHT, a, w) for a, w in enumerate(weight_words(params, inet.codes))]
    writes += [(LoadTarget.LUT, a, int(v)) for a, v in enumerate(inet.lut)]
    writes += [(LoadTarget.THRESHOLD, a, w) for a, w in threshold_writes(params, inet.r_fx)]
    return writes


# Stream payloads ----------------------------------------------------------------------------

def pack_load(params: AccelParams, target, addr, value):
    """The ``i_load`` payload integer for one write (``target`` a :class:`LoadTarget` or its
    number)."""
    return _pack(load_layout(params), target=LoadTarget(target).value, addr=addr, data=value)


def unpack_load(params: AccelParams, value):
    """Inverse of :func:`pack_load`: ``(LoadTarget, addr, data)`` of an ``i_load`` payload."""
    f = _unpack(load_layout(params), value)
    return LoadTarget(f["target"]), f["addr"], f["data"]


def pack_result_fields(params: AccelParams, state, steps, converged):
    """The ``o_result`` payload integer of a result."""
    return _pack(result_layout(params), state=state, steps=steps, converged=int(converged))


def unpack_result(params: AccelParams, value):
    """``(state, steps, converged)`` from an ``o_result`` payload integer."""
    f = _unpack(result_layout(params), value)
    return f["state"], f["steps"], bool(f["converged"])
