"""Kernel-distance unit: XNOR/popcount Hamming distance and the kernel lookup table."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .params import AccelParams
from .ports import ReadPortSignature, WritePortSignature

__all__ = ["KernelDistance", "popcount", "POPCOUNT_GROUP"]


#: Bits per group of the first popcount stage (:class:`KernelDistance`, stage G).
POPCOUNT_GROUP = 16


def _tree_sum(values):
    """The sum of ``values`` as a balanced adder tree (combinational)."""
    terms = list(values)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def popcount(value):
    """Number of set bits of ``value``, as a balanced adder tree (combinational)."""
    if not len(value):
        return Const(0, 1)
    return _tree_sum(value[i] for i in range(len(value)))


class KernelDistance(wiring.Component):
    """For each stored pattern mu in order, ``K_mu = LUT[popcount(s XOR xi_mu)]`` for each of
    the ``batch`` states.

    A pulse on ``i_start`` begins a sweep over all ``p`` patterns with the states ``i_state``
    (which must stay constant until the sweep ends); the unit reads ``chunks`` pattern words per
    pattern, ``popcount_width`` bits each, shared by the ``batch`` distance pipelines (each with
    its own read port of the lookup table), and emits ``p`` beats of ``batch`` kernels on
    ``o_kernel``.

    Pipeline: issue read (A) -> register the word XOR the state (X) -> register the popcounts of
    its groups of :data:`POPCOUNT_GROUP` bits (G) -> register their sum (C) -> accumulate the
    distance, lookup-table read (B) -> ``o_kernel`` (the lookup-table read port is the output
    register). No stage holds more than one small adder tree or one memory output, so the
    block-RAM outputs and the popcount never share a cycle, and a wide word's popcount is two
    short trees. The whole pipeline advances when
    ``~o_kernel.valid | o_kernel.ready``, so backpressure stalls it without loss.

    Latency: the first kernel is valid ``chunks + 5`` cycles after ``i_start``; then one kernel
    per ``chunks`` cycles when not stalled.

    Parameters
    ----------
    params : AccelParams
    lut : sequence of int or None
        Initial lookup table, ``n + 1`` entries of ``kernel_bits`` bits.

    Members
    -------
    i_start : In(1)
    i_state : In(ArrayLayout(n, batch))
    patterns : Out(ReadPortSignature)
        Read port of the pattern memory.
    lut_write : In(WritePortSignature)
        Run-time writes of lookup-table entries.
    o_kernel : Out(stream.Signature(ArrayLayout(kernel_bits, batch)))
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
            "i_state": In(data.ArrayLayout(params.n, params.batch)),
            "patterns": Out(ReadPortSignature(pattern_addr, params.pattern_width)),
            "lut_write": In(WritePortSignature(params.distance_bits, params.kernel_bits)),
            "o_kernel": Out(stream.Signature(data.ArrayLayout(params.kernel_bits,
                                                              params.batch))),
        })

    @property
    def latency(self):
        """Cycles from ``i_start`` to the first valid kernel."""
        return self._params.chunks + 5

    @property
    def cycles_per_kernel(self):
        return self._params.chunks

    def elaborate(self, platform):
        m = Module()
        prm = self._params
        chunks, width = prm.chunks, prm.popcount_width

        batch = prm.batch
        m.submodules.lut = lut = Memory(shape=prm.kernel_bits, depth=prm.lut_depth,
                                        init=self._lut)
        lut_rds = [lut.read_port() for _ in range(batch)]
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

        a_valid = Signal()
        a_last = Signal()
        x_valid = Signal()
        x_last = Signal()
        g_valid = Signal()
        g_last = Signal()
        c_valid = Signal()
        c_last = Signal()
        b_valid = Signal()
        with m.If(advance):
            m.d.sync += [a_valid.eq(issue), a_last.eq(chunk == chunks - 1),
                         x_valid.eq(a_valid), x_last.eq(a_last),
                         g_valid.eq(x_valid), g_last.eq(x_last),
                         c_valid.eq(g_valid), c_last.eq(g_last),
                         b_valid.eq(c_valid & c_last)]
        m.d.comb += self.o_kernel.valid.eq(b_valid)

        for j, lut_rd in enumerate(lut_rds):
            # With the read, the matching chunk of the state is selected and registered (with one
            # chunk, the state itself: it holds still during the sweep).
            state = Cat(self.i_state[j], Const(0, chunks * width - prm.n))
            state_chunk = Signal(width, name=f"state_chunk{j}")
            # Stage X: the pattern word XOR that chunk.
            x_word = Signal(width, name=f"x_word{j}")
            # Stage G: the popcounts of its groups of POPCOUNT_GROUP bits.
            groups = [x_word[g:g + POPCOUNT_GROUP] for g in range(0, width, POPCOUNT_GROUP)]
            g_counts = [Signal(range(len(grp) + 1), name=f"g_count{j}_{i}")
                        for i, grp in enumerate(groups)]
            # Stage C: their sum, the word's popcount.
            c_count = Signal(range(width + 1), name=f"c_count{j}")
            if chunks == 1:
                m.d.comb += state_chunk.eq(state)
            with m.If(advance):
                if chunks > 1:
                    m.d.sync += state_chunk.eq(state.word_select(chunk, width))
                m.d.sync += [
                    x_word.eq(self.patterns.data ^ state_chunk),
                    [cnt.eq(popcount(grp)) for cnt, grp in zip(g_counts, groups, strict=True)],
                    c_count.eq(_tree_sum(g_counts)),
                ]
            # Stage B: distance accumulation and the lookup-table read.
            dist_acc = Signal(prm.distance_bits, name=f"dist_acc{j}")
            dist = Signal(prm.distance_bits, name=f"dist{j}")
            m.d.comb += [
                dist.eq(dist_acc + c_count if chunks > 1 else c_count),
                lut_rd.addr.eq(dist),
                lut_rd.en.eq(advance),
            ]
            if chunks > 1:
                with m.If(advance & c_valid):
                    m.d.sync += dist_acc.eq(Mux(c_last, 0, dist))
            # Output: the lookup-table read port holds the kernel while stalled (en = advance).
            m.d.comb += self.o_kernel.payload[j].eq(lut_rd.data)
        return m
