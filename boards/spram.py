"""The accelerator's weight memory in iCE40 UP5K single-port RAM (SB_SPRAM256KA).

The UP5K has 4 SPRAM blocks of 16K x 16 bits (256 Kbit each) besides its 30 block RAMs. SPRAM
cannot be initialised from the bitstream, so a network in SPRAM is always loaded at run time
(over the UART link). It is single-ported: a cycle either reads or writes. The accelerator never
reads its weights while a load writes them (loads are accepted only while no query runs, and a
query's first weight read comes many cycles after it is accepted), so a write simply takes the
port for its cycle: the cycle after the write is offered, from registers, so that the port's
address multiplexer and write enable see flip-flops only (on the iCEBreaker the load's
acceptance into the address was the critical path, 26.6 ns).
"""

from amaranth import ClockSignal, Module, Mux, Signal
from amaranth.hdl import Instance
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from khop.hw.params import AccelParams, ceil_div
from khop.hw.ports import ReadPortSignature, WritePortSignature

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "spram_blocks", "check_spram_fit",
           "SPRAMWeightMemory"]

#: Geometry of an iCE40 UltraPlus SPRAM block (SB_SPRAM256KA).
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


def spram_blocks(depth, width):
    """SPRAM blocks a ``depth`` x ``width`` memory takes: ``(columns, banks)``."""
    return ceil_div(width, SPRAM_WIDTH), ceil_div(depth, SPRAM_DEPTH)


def check_spram_fit(params: AccelParams):
    """SPRAM blocks of ``params``' weight memory; ``ValueError`` when more than the UP5K's
    (:data:`boards.targets.DEVICES`)."""
    from .targets import DEVICES  # the target table imports the tops, which import this

    available = DEVICES["up5k"].spram
    cols, banks = spram_blocks(params.weight_depth, params.weight_width)
    if cols * banks > available:
        raise ValueError(f"the weight memory ({params.weight_depth} x {params.weight_width} "
                         f"bits) needs {cols * banks} SPRAM blocks, the UP5K has {available} "
                         f"({cols * banks - available} short)")
    return cols * banks


class SPRAMWeightMemory(wiring.Component):
    """Drop-in for :class:`hw.weight_memory.WeightMemory` (same members and read latency of 1
    cycle; ``data`` holds while ``en`` is low) built from SB_SPRAM256KA blocks.

    Parameters
    ----------
    params : AccelParams
    codes : None
        Must be ``None``: SPRAM has no initial contents.
    """

    def __init__(self, params: AccelParams, codes=None):
        if codes is not None:
            raise ValueError("SPRAM cannot be initialised from the bitstream: build the "
                             "accelerator without a network and load it at run time")
        self._params = params
        self._depth, self._width = params.weight_depth, params.weight_width
        check_spram_fit(params)
        addr_width = max(1, (self._depth - 1).bit_length())
        super().__init__({"read": In(ReadPortSignature(addr_width, self._width)),
                          "write": In(WritePortSignature(addr_width, self._width))})

    @property
    def blocks(self):
        cols, banks = spram_blocks(self._depth, self._width)
        return cols * banks

    def elaborate(self, platform):
        m = Module()
        cols, banks = spram_blocks(self._depth, self._width)
        # The write, registered (see the module's docstring).
        wen = Signal()
        waddr = Signal.like(self.write.addr)
        wdata = Signal.like(self.write.data)
        m.d.sync += [wen.eq(self.write.en), waddr.eq(self.write.addr),
                     wdata.eq(self.write.data)]
        addr = Signal.like(self.read.addr)
        m.d.comb += addr.eq(Mux(wen, waddr, self.read.addr))
        bank_bits = max(0, (banks - 1).bit_length())
        low = Signal(14)
        m.d.comb += low.eq(addr[:14])
        bank = addr[14:14 + bank_bits] if bank_bits else None
        read_bank = Signal(max(1, bank_bits))
        with m.If(self.read.en & ~wen):
            m.d.sync += read_bank.eq(bank if bank is not None else 0)
        data_in = Signal(cols * SPRAM_WIDTH)
        m.d.comb += data_in.eq(wdata)
        outs = []
        for b in range(banks):
            selected = (bank == b) if bank is not None else 1
            out = Signal(cols * SPRAM_WIDTH, name=f"bank{b}_data")
            outs.append(out)
            for c in range(cols):
                m.submodules[f"spram_{b}_{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=low,
                    i_DATAIN=data_in[c * 16:(c + 1) * 16],
                    i_MASKWREN=0b1111,
                    i_WREN=wen & selected,
                    i_CHIPSELECT=(wen | self.read.en) & selected,
                    i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0,
                    i_SLEEP=0,
                    i_POWEROFF=1,
                    o_DATAOUT=out[c * 16:(c + 1) * 16],
                )
        if banks == 1:
            m.d.comb += self.read.data.eq(outs[0])
        else:
            with m.Switch(read_bank):
                for b, out in enumerate(outs):
                    with m.Case(b):
                        m.d.comb += self.read.data.eq(out)
        return m

