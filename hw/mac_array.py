"""The multiplier-free MAC array: ``batch * lanes`` accumulators, block-outer loop order."""

from amaranth import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fanout import FANOUT_COPY, FANOUT_LANES, fanout_groups
from .params import AccelParams
from .ports import ReadPortSignature

__all__ = ["MacArray", "shift_add", "SHARED_MULTIPLE_BITS"]

#: Weight codes of at most this many bits select one of the ``2^k`` multiples of ``K_mu``
#: formed once per query; wider codes shift and add in each lane.
SHARED_MULTIPLE_BITS = 2


def shift_add(code, value):
    """``code * value`` for a small unsigned ``code``: a sum of shifted copies, no multiplier."""
    terms = [Mux(code[j], value << j, 0) for j in range(len(code))]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


class MacArray(wiring.Component):
    """Accumulates ``T_i = sum_mu q[mu, i] * K_mu`` and ``S_K = sum_mu K_mu`` for ``batch``
    queries at once, one block of ``lanes`` neurons at a time.

    Loop order is block-outer: for block b = 0 .. blocks-1, for pattern mu = 0 .. p-1, the
    weight word of (mu, b) (address ``mu * blocks + b``) is read once and each of its ``lanes``
    codes q is multiplied by the kernel ``K_mu`` of every query of the batch and added into that
    query's accumulator of the lane. So a query needs ``lanes`` accumulators, not n, and every
    weight read serves the whole batch. No multipliers: for codes of up to
    :data:`SHARED_MULTIPLE_BITS` bits the ``2^k`` multiples of each query's ``K_mu`` are formed
    once (:func:`shift_add` of each constant code: ``3K = K + 2K``) and each lane selects its
    own; for wider codes each lane adds shifted copies itself.

    Block 0 takes the kernels from ``i_kernel`` (``batch`` kernels per beat, pattern order) as
    the distance units make them, adds them into ``S_K`` and writes them into the kernel buffer
    (``p`` words of ``batch * kernel_bits``, a block RAM); blocks 1 .. blocks-1 read them back,
    one pattern per cycle.

    After the last pattern of a block, the block's sums are drained on ``o_sums``: ``batch``
    beats, beat j holding query j's accumulators of neurons ``b*L .. b*L+L-1`` (zeros past n);
    each accepted beat clears that query's accumulators. The next block starts after the last
    beat. ``o_sum_k[j]`` holds query j's ``S_K`` from the first beat of block 0 until the next
    ``i_start``.

    Pipeline: issue the weight (and kernel-buffer) read (1) -> register the word and the
    kernels (2) -> register the ``batch * lanes`` products (3) -> accumulate (4): a memory output
    meets no logic, the product and accumulator adders are in different cycles.

    Cycles: in block 0 a kernel beat is taken whenever one is offered; a later block issues one
    read per cycle; the first beat of a block is presented 4 cycles after the block's last read
    (:data:`khop.hw.params.STEP_CYCLE_TERMS`); with several queries a beat is presented at the
    earliest two cycles after the one before (the sign update takes one every
    ``threshold_groups + 1`` cycles or slower).

    Members
    -------
    i_start : In(1)
        Clears ``S_K`` and begins a pass over every block (the accumulators are clear after a
        drain).
    i_kernel : In(stream.Signature(ArrayLayout(kernel_bits, batch)))
    weights : Out(ReadPortSignature)
        Read port of the weight memory.
    o_sums : Out(stream.Signature(ArrayLayout(acc_bits, lanes)))
    o_sum_k : Out(ArrayLayout(sum_bits, batch))
    """

    def __init__(self, params: AccelParams):
        self._params = params
        weight_addr = max(1, (params.weight_depth - 1).bit_length())
        super().__init__({
            "i_start": In(1),
            "i_kernel": In(stream.Signature(data.ArrayLayout(params.kernel_bits,
                                                             params.batch))),
            "weights": Out(ReadPortSignature(weight_addr, params.weight_width)),
            "o_sums": Out(stream.Signature(data.ArrayLayout(params.acc_bits, params.lanes))),
            "o_sum_k": Out(data.ArrayLayout(params.sum_bits, params.batch)),
        })

    def elaborate(self, platform):
        m = Module()
        prm = self._params
        lanes, blocks, k, batch, p = prm.lanes, prm.blocks, prm.weight_bits, prm.batch, prm.p
        kernels_layout = data.ArrayLayout(prm.kernel_bits, batch)
        sums_layout = data.ArrayLayout(prm.acc_bits, lanes)

        acc = [Signal(sums_layout, name=f"acc{j}") for j in range(batch)]
        sum_k = Signal(data.ArrayLayout(prm.sum_bits, batch))
        m.d.comb += self.o_sum_k.eq(sum_k)

        # The kernel buffer: block 0 writes it, the later blocks read it.
        kbuf_rd = None
        if blocks > 1:
            m.submodules.kernel_buffer = kbuf = Memory(shape=kernels_layout, depth=p, init=[])
            kbuf_rd = kbuf.read_port()
            kbuf_wr = kbuf.write_port()

        block = Signal(range(blocks))
        first_block = Signal()             # block == 0, registered
        mu = Signal(range(p + 1))          # reads issued in this block
        more = Signal()                    # mu != p, registered (it gates the kernel stream's
                                           # ready, which enables the distance pipeline)
        addr = Signal.like(self.weights.addr)
        slot = Signal(range(batch))        # the drain's beat

        # Stage 1: a read issued last cycle (and, in block 0, its kernels).
        v1 = Signal()
        k1 = Signal(kernels_layout)
        # Stage 2: the word and the kernels, registered; the kernels in one copy per
        # FANOUT_LANES lanes, so that no kernel net drives every lane's product (copy g serves
        # lanes g*FANOUT_LANES ..).
        v2 = Signal()
        k2 = [Signal(kernels_layout, name=f"kernels_{FANOUT_COPY}{g}")
              for g in range(fanout_groups(lanes))]
        word = Signal(prm.weight_width)
        # Stage 3: the products.
        v3 = Signal()
        product_bits = prm.kernel_bits + k
        products = [Signal(data.ArrayLayout(product_bits, lanes), name=f"products{j}")
                    for j in range(batch)]

        # A beat is accepted on a registered ready (o_sums.ready). What every accumulator or
        # sum register of a lane group does next is decided from registers of the group's own:
        # `clear` (a copy per group: bit j clears query j's accumulators, a cycle after its beat
        # was taken; the next block's first products are three cycles further) and, with
        # several queries, `beat_slot` (a copy per group of the drain's slot). The beat's sums
        # come from a register loaded every cycle with the accumulators of the drain's slot (no
        # enable: the ULX3S' critical path was the drain decision into the enable of every sum
        # register), so the slot multiplexer and the sign update's adders are in different
        # cycles; it holds the taken beat's sums for the cycle after, when `fresh` keeps the
        # beat invalid (the sign update takes a beat at most every two cycles).
        draining = Signal()
        taken = self.o_sums.valid & self.o_sums.ready
        groups = fanout_groups(lanes)
        clear = [Signal(batch, name=f"clear_{FANOUT_COPY}{g}") for g in range(groups)]
        for copy in clear:
            m.d.sync += copy.eq(Mux(taken, 1 << slot, 0))
        if batch == 1:
            m.d.comb += [self.o_sums.valid.eq(draining), self.o_sums.payload.eq(acc[0])]
        else:
            fresh = Signal(init=1)
            m.d.sync += fresh.eq(~taken)
            m.d.comb += self.o_sums.valid.eq(draining & fresh)
            beat = Signal(sums_layout)
            m.d.comb += self.o_sums.payload.eq(beat)
            beat_slot = [Signal(range(batch), name=f"beat_slot_{FANOUT_COPY}{g}")
                         for g in range(groups)]
            for lane in range(lanes):
                chosen = Array(acc[j][lane] for j in range(batch))
                m.d.sync += beat[lane].eq(chosen[beat_slot[lane // FANOUT_LANES]])
        # The accumulators add the products every cycle: a stage without a valid word carries
        # the word 0 (codes 0), so its products are 0 and no enable drives every accumulator.
        for j in range(batch):
            for lane in range(lanes):
                with m.If(clear[lane // FANOUT_LANES][j]):
                    m.d.sync += acc[j][lane].eq(0)
                with m.Else():
                    m.d.sync += acc[j][lane].eq(acc[j][lane] + products[j][lane])

        m.d.sync += [v2.eq(v1), v3.eq(v2), word.eq(Mux(v1, self.weights.data, 0))]
        with m.If(v1):
            kernels = k1 if kbuf_rd is None else Mux(first_block, k1, kbuf_rd.data)
            m.d.sync += [copy.eq(kernels) for copy in k2]
        codes = data.View(data.ArrayLayout(k, lanes), word)
        if k > SHARED_MULTIPLE_BITS:
            # Each lane shifts and adds its own products.
            for lane in range(lanes):
                kernels = k2[lane // FANOUT_LANES]
                m.d.sync += [products[j][lane].eq(shift_add(codes[lane], kernels[j]))
                             for j in range(batch)]
        else:
            # The 2^k multiples of K_mu, once per query and group of lanes; each lane selects
            # its own.
            for g, kernels in enumerate(k2):
                for j in range(batch):
                    multiples = [Signal(product_bits, name=f"multiple{j}_{c}_{g}")
                                 for c in range(2 ** k)]
                    for c, sig in enumerate(multiples):
                        m.d.comb += sig.eq(shift_add(Const(c, k), kernels[j]))
                    m.d.sync += [products[j][lane].eq(Array(multiples)[codes[lane]])
                                 for lane in range(g * FANOUT_LANES,
                                                   min(lanes, (g + 1) * FANOUT_LANES))]

        issue = Signal()
        m.d.comb += [self.weights.addr.eq(addr), self.weights.en.eq(1)]
        m.d.sync += v1.eq(issue)
        if kbuf_rd is not None:
            m.d.comb += [kbuf_rd.addr.eq(mu), kbuf_rd.en.eq(1),
                         kbuf_wr.addr.eq(mu), kbuf_wr.data.eq(self.i_kernel.payload)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.i_start):
                    m.d.sync += [block.eq(0), first_block.eq(1), mu.eq(0), addr.eq(0),
                                 sum_k.eq(0), slot.eq(0), more.eq(1)]
                    m.next = "ACCUMULATE"

            with m.State("ACCUMULATE"):
                with m.If(first_block):
                    m.d.comb += [self.i_kernel.ready.eq(more),
                                 issue.eq(more & self.i_kernel.valid)]
                    with m.If(issue):
                        m.d.sync += [k1.eq(self.i_kernel.payload),
                                     [sum_k[j].eq(sum_k[j] + self.i_kernel.payload[j])
                                      for j in range(batch)]]
                        if kbuf_rd is not None:
                            m.d.comb += kbuf_wr.en.eq(1)
                with m.Else():
                    m.d.comb += issue.eq(more)
                with m.If(issue):
                    m.d.sync += [mu.eq(mu + 1), addr.eq(addr + blocks), more.eq(mu + 1 != p)]
                with m.If(~more & ~v1 & ~v2 & ~v3):
                    m.d.sync += draining.eq(1)
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                with m.If(taken):
                    m.d.sync += slot.eq(slot + 1)
                    if batch > 1:
                        # Each group's copy of the drain's slot: the next, 0 after the last.
                        following = Mux(slot == batch - 1, 0, slot + 1)
                        m.d.sync += [copy.eq(following) for copy in beat_slot]
                    with m.If(slot == batch - 1):
                        m.d.sync += [draining.eq(0), slot.eq(0), mu.eq(0), more.eq(1),
                                     first_block.eq(0), block.eq(block + 1),
                                     addr.eq(block + 1)]
                        with m.If(block == blocks - 1):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "ACCUMULATE"
        return m

