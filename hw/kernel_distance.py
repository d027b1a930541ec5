"""Kernel-distance unit: XNOR/popcount Hamming distance and the kernel lookup table."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .params import AccelParams
from .ports import ReadPortSignature, WritePortSignature

__all__ = ["KernelDistance", "popcount"]


def popcount(value):
    """Number of set bits of ``value``, as a balanced adder tree (combinational)."""
    terms = [value[i] for i in range(len(value))]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class KernelDistance(wiring.Component):
    """For each stored pattern mu in order, ``K_mu = LUT[popcount(s XOR xi_mu)]``.

    A pulse on ``i_start`` begins a sweep over all ``p`` patterns with the state ``i_state``
    (which must stay constant until the sweep ends); the unit reads ``chunks`` pattern words per
    pattern, ``popcount_width`` bits each, and emits ``p`` kernel values on ``o_kernel``.

    Pipeline: issue read (A) -> register the word XOR the state (X) -> register its popcount (C)
    -> accumulate the distance, lookup-table read (B) -> ``o_kernel`` (the lookup-table read port
    is the output register). No stage holds more than one adder tree or one memory output, so
    the block-RAM outputs and the popcount never share a cycle. The whole pipeline advances when
    ``~o_kernel.valid | o_kernel.ready``, so backpressure stalls it without loss.

    Latency: the first kernel is valid ``chunks + 4`` cycles after ``i_start``; then one kernel
    per ``chunks`` cycles when not stalled.

    Parameters
    ----------
    params : AccelParams
    lut : sequence of int or None
        Initial lookup table, ``n + 1`` entries of ``kernel_bits`` bits.

    Members
    -------
    i_start : In(1)
    i_state : In(n)
    patterns : Out(ReadPortSignature)
        Read port of the pattern memory.
    lut_write : In(WritePortSignature)
        Run-time writes of lookup-table entries.
    o_kernel : Out(stream.Signature(kernel_bits))
    """

    def __init__(self, params: AccelParams, lut=None):
        self._params = params
        self._lut = [] if lut is None else [int(v) for v in lut]
        if len(self._lut) not in (0, params.lut_depth):
            raise ValueError(f"the lookup table needs {params.lut_depth} entries (n + 1), "
                             f"not {len(self._lut)}")
        if any(not 0 <= v < 2 ** params.kernel_bits for v in self._lut):
            raise ValueError(f"lookup-table entries must fit kernel_bits={params.kernel_bits}")
        pattern_addr = max(1, (params.pattern_depth - 1).bit_length())
        super().__init__({
            "i_start": In(1),
            "i_state": In(params.n),
            "patterns": Out(ReadPortSignature(pattern_addr, params.pattern_width)),
            "lut_write": In(WritePortSignature(params.distance_bits, params.kernel_bits)),
            "o_kernel": Out(stream.Signature(params.kernel_bits)),
        })

    @property
    def latency(self):
        """Cycles from ``i_start`` to the first valid kernel."""
        return self._params.chunks + 4

    @property
    def cycles_per_kernel(self):
        return self._params.chunks

    def elaborate(self, platform):
        m = Module()
        prm = self._params
        chunks, width = prm.chunks, prm.popcount_width

        m.submodules.lut = lut = Memory(shape=prm.kernel_bits, depth=prm.lut_depth,
                                        init=self._lut)
        lut_rd = lut.read_port()
        lut_wr = lut.write_port()
        m.d.comb += [lut_wr.addr.eq(self.lut_write.addr), lut_wr.en.eq(self.lut_write.en),
                     lut_wr.data.eq(self.lut_write.data)]

        advance = Signal()
        m.d.comb += advance.eq(~self.o_kernel.valid | self.o_kernel.ready)

        # Stage A: issue pattern-memory reads, one word per cycle, addresses 0 .. p*chunks-1.
        running = Signal()
        addr = Signal.like(self.patterns.addr)
        chunk = Signal(range(chunks))
        issue = Signal()
        m.d.comb += [
            issue.eq(running & advance),
            self.patterns.addr.eq(addr),
            self.patterns.en.eq(advance),
        ]
        with m.If(self.i_start):
            m.d.sync += [running.eq(1), addr.eq(0), chunk.eq(0)]
        with m.Elif(issue):
            m.d.sync += addr.eq(addr + 1)
            m.d.sync += chunk.eq(Mux(chunk == chunks - 1, 0, chunk + 1))
            with m.If(addr == prm.pattern_depth - 1):
                m.d.sync += running.eq(0)

        # With the read, the matching chunk of the state is selected and registered.
        state = Cat(self.i_state, Const(0, chunks * width - prm.n))
        a_valid = Signal()
        a_last = Signal()
        state_chunk = Signal(width)
        with m.If(advance):
            m.d.sync += [a_valid.eq(issue), a_last.eq(chunk == chunks - 1),
                         state_chunk.eq(state.word_select(chunk, width) if chunks > 1 else state)]

        # Stage X: the pattern word XOR that chunk.
        x_valid = Signal()
        x_last = Signal()
        x_word = Signal(width)
        with m.If(advance):
            m.d.sync += [x_valid.eq(a_valid), x_last.eq(a_last),
                         x_word.eq(self.patterns.data ^ state_chunk)]

        # Stage C: its popcount.
        c_valid = Signal()
        c_last = Signal()
        c_count = Signal(range(width + 1))
        with m.If(advance):
            m.d.sync += [c_valid.eq(x_valid), c_last.eq(x_last), c_count.eq(popcount(x_word))]

        # Stage B: distance accumulation and the lookup-table read.
        dist_acc = Signal(prm.distance_bits)
        dist = Signal(prm.distance_bits)
        m.d.comb += [
            dist.eq(dist_acc + c_count),
            lut_rd.addr.eq(dist),
            lut_rd.en.eq(advance),
        ]
        b_valid = Signal()
        with m.If(advance):
            m.d.sync += b_valid.eq(c_valid & c_last)
            with m.If(c_valid):
                m.d.sync += dist_acc.eq(Mux(c_last, 0, dist))

        # Output: the lookup-table read port holds the kernel while stalled (en = advance).
        m.d.comb += [self.o_kernel.valid.eq(b_valid), self.o_kernel.payload.eq(lut_rd.data)]
        return m
