"""A memory of packed words with one synchronous read port and one write port."""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from .ports import ReadPortSignature, WritePortSignature

__all__ = ["WordMemory"]


class WordMemory(wiring.Component):
    """``depth`` words of ``width`` bits, read one cycle after the address (block RAM style).

    Members
    -------
    read : In(ReadPortSignature)
    write : In(WritePortSignature)
        Writes at run time (the load port); a write and a read of the same address in one cycle
        return the old word.
    """

    def __init__(self, depth, width, init=()):
        self._depth = depth
        self._width = width
        self._init = list(init)
        if len(self._init) > depth:
            raise ValueError(f"{len(self._init)} initial words do not fit a depth of {depth}")
        addr_width = max(1, (depth - 1).bit_length())
        super().__init__({"read": In(ReadPortSignature(addr_width, width)),
                          "write": In(WritePortSignature(addr_width, width))})

    @property
    def depth(self):
        return self._depth

    @property
    def width(self):
        return self._width

    @property
    def memory_bits(self):
        return self._depth * self._width

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self._width, depth=self._depth, init=self._init)
        rd = mem.read_port()
        wr = mem.write_port()
        m.d.comb += [
            rd.addr.eq(self.read.addr), rd.en.eq(self.read.en), self.read.data.eq(rd.data),
            wr.addr.eq(self.write.addr), wr.en.eq(self.write.en), wr.data.eq(self.write.data),
        ]
        return m
