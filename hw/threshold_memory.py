"""Threshold memory: one signed threshold ``r_fx[i]`` per neuron, ``lanes`` per word."""

from amaranth import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from .layout import threshold_words
from .params import AccelParams
from .ports import ReadPortSignature

__all__ = ["ThresholdMemory", "ThresholdWriteSignature"]


class ThresholdWriteSignature(wiring.Signature):
    """Write port of one threshold, from the writer's side: ``data`` (``threshold_bits``) is
    written into lane ``lane`` of word ``addr`` on a cycle with ``en`` high."""

    def __init__(self, params: AccelParams):
        super().__init__({"addr": wiring.Out(max(1, (params.threshold_depth - 1).bit_length())),
                          "lane": wiring.Out(max(1, params.threshold_lane_bits)),
                          "data": wiring.Out(params.threshold_bits), "en": wiring.Out(1)})


class ThresholdMemory(wiring.Component):
    """The n thresholds as ``blocks`` words of ``lanes * threshold_bits`` bits.

    Word b holds ``r_fx`` of neurons ``b*L .. b*L+L-1``, lane l in bits ``l*t .. l*t+t-1``
    (two's complement, ``t = threshold_bits``), zero past n (see :mod:`khop.hw.layout`). Read
    once per block and step by the sign update (one cycle latency; the word holds while ``en``
    is low); written one threshold (one lane) at a time, so a load word is as wide as one
    threshold, not a whole word.

    Parameters
    ----------
    params : AccelParams
    r_fx : (n,) array of signed thresholds, or None
        Initial contents; ``None`` leaves the memory zero until loaded.

    Members
    -------
    read : In(ReadPortSignature(addr, lanes * threshold_bits))
    write : In(ThresholdWriteSignature(params))
    """

    def __init__(self, params: AccelParams, r_fx=None):
        self._params = params
        self._init = [] if r_fx is None else threshold_words(params, r_fx)
        addr_width = max(1, (params.threshold_depth - 1).bit_length())
        super().__init__({"read": In(ReadPortSignature(addr_width, params.threshold_width)),
                          "write": In(ThresholdWriteSignature(params))})

    def elaborate(self, platform):
        m = Module()
        prm = self._params
        m.submodules.mem = mem = Memory(shape=prm.threshold_width, depth=prm.threshold_depth,
                                        init=self._init)
        rd = mem.read_port()
        wr = mem.write_port(granularity=prm.threshold_bits)
        lane_en = Mux(self.write.en, 1 << self.write.lane, 0) if prm.lanes > 1 else self.write.en
        m.d.comb += [
            rd.addr.eq(self.read.addr), rd.en.eq(self.read.en), self.read.data.eq(rd.data),
            wr.addr.eq(self.write.addr), wr.data.eq(self.write.data.replicate(prm.lanes)),
            wr.en.eq(lane_en),
        ]
        return m
