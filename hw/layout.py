"""Stream payload layouts, load targets, and packing of a network into memory words.

The layouts are the single definition used by the hardware, the testbenches and the host-side
packers; no bit offsets are re-declared elsewhere.

Memory words (bit 0 is the LSB):

- pattern memory: word ``mu * chunks + c`` holds bits ``c*W .. c*W + W - 1`` of pattern mu
  (bit i = neuron i, 1 means +1); bits past n are 0.
- weight memory: word ``mu * blocks + b`` holds the codes of neurons ``b*L .. b*L + L - 1`` of
  pattern mu, lane l in bits ``l*k .. l*k + k - 1``; lanes past n are 0.
- lookup table: word d (0..n) holds ``LUT[d]``.
- threshold: the signed constant ``r_fx`` (two's complement in ``threshold_bits``).

``i_load`` payload, from the LSB: ``target`` (2 bits, :class:`LoadTarget`), ``addr``
(``load_addr_bits``), ``data`` (``load_data_bits``).

``o_result`` payload, from the LSB: ``state`` (n bits), ``steps`` (8 bits), ``converged`` (1 bit).
"""

import numpy as np
from amaranth.lib import data, enum

from .params import AccelParams

__all__ = ["LoadTarget", "load_layout", "result_layout", "pattern_words", "weight_words",
           "load_words", "pack_load", "pack_result_fields", "unpack_result"]


class LoadTarget(enum.Enum, shape=2):
    PATTERN = 0
    WEIGHT = 1
    LUT = 2
    THRESHOLD = 3


def load_layout(params: AccelParams):
    return data.StructLayout({"target": LoadTarget, "addr": params.load_addr_bits,
                              "data": params.load_data_bits})


def result_layout(params: AccelParams):
    return data.StructLayout({"state": params.n, "steps": 8, "converged": 1})


def _pack_rows(values, width, per_word, field_bits):
    """Pack (rows, cols) small unsigned ints into words of ``per_word`` fields each."""
    rows, cols = values.shape
    words_per_row = -(-cols // per_word)
    padded = np.zeros((rows, words_per_row * per_word), dtype=np.uint64)
    padded[:, :cols] = values
    fields = padded.reshape(rows, words_per_row, per_word)
    out = []
    for row in fields:
        for word in row:
            v = 0
            for i, f in enumerate(word.tolist()):
                v |= int(f) << (i * field_bits)
            out.append(v)
    assert all(v < (1 << width) for v in out)
    return out


def pattern_words(params: AccelParams, patterns):
    """Pattern memory contents from (p, n) 0/1 bits."""
    patterns = np.asarray(patterns)
    _check_shape(params, patterns, "patterns")
    return _pack_rows(patterns.astype(np.uint64), params.pattern_width, params.popcount_width, 1)


def weight_words(params: AccelParams, codes):
    """Weight memory contents from (p, n) codes in 0 .. 2^k - 1."""
    codes = np.asarray(codes)
    _check_shape(params, codes, "weight codes")
    if codes.size and int(codes.max()) >= 2 ** params.weight_bits:
        raise ValueError(f"weight codes must be below 2^{params.weight_bits}, "
                         f"found {int(codes.max())}")
    return _pack_rows(codes.astype(np.uint64), params.weight_width, params.lanes,
                      params.weight_bits)


def _check_shape(params, array, what):
    if array.shape != (params.p, params.n):
        raise ValueError(f"{what} have shape {array.shape}, but the accelerator is built for "
                         f"p={params.p}, n={params.n}")


def load_words(params: AccelParams, inet):
    """Every ``(target, addr, data)`` write that loads integer network ``inet``."""
    if (inet.p, inet.n) != (params.p, params.n):
        raise ValueError(f"network is p={inet.p}, n={inet.n} but the accelerator is built for "
                         f"p={params.p}, n={params.n}")
    if inet.config.weight_bits != params.weight_bits:
        raise ValueError(f"network has {inet.config.weight_bits}-bit weights but the "
                         f"accelerator is built for weight_bits={params.weight_bits}")
    if inet.config.kernel_bits != params.kernel_bits:
        raise ValueError(f"network has kernel_bits={inet.config.kernel_bits} but the "
                         f"accelerator is built for kernel_bits={params.kernel_bits}")
    writes = [(LoadTarget.PATTERN, a, w) for a, w in enumerate(pattern_words(params,
                                                                              inet.patterns))]
    writes += [(LoadTarget.WEIGHT, a, w) for a, w in enumerate(weight_words(params, inet.codes))]
    writes += [(LoadTarget.LUT, a, int(v)) for a, v in enumerate(inet.lut)]
    writes.append((LoadTarget.THRESHOLD, 0, inet.r_fx & ((1 << params.threshold_bits) - 1)))
    return writes


def pack_load(params: AccelParams, target, addr, value):
    """The ``i_load`` payload integer for one write."""
    return (LoadTarget(target).value | (addr << 2)
            | (value << (2 + params.load_addr_bits)))


def pack_result_fields(params: AccelParams, state, steps, converged):
    return state | (steps << params.n) | (int(converged) << (params.n + 8))


def unpack_result(params: AccelParams, value):
    """``(state, steps, converged)`` from an ``o_result`` payload integer."""
    n = params.n
    return value & ((1 << n) - 1), (value >> n) & 0xFF, bool((value >> (n + 8)) & 1)
