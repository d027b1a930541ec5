"""The multiplier-free MAC array: ``lanes`` accumulators in a rotating ring of ``blocks`` words."""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import AccelParams
from .ports import ReadPortSignature

__all__ = ["MacArray", "shift_add"]


def shift_add(code, value):
    """``code * value`` for a small unsigned ``code``: a sum of shifted copies, no multiplier."""
    terms = [Mux(code[j], value << j, 0) for j in range(len(code))]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


class MacArray(wiring.Component):
    """Accumulates ``T_i = sum_mu q[mu, i] * K_mu`` for all n neurons and ``S_K = sum_mu K_mu``.

    Loop order is pattern-outer: for each kernel ``K_mu`` accepted on ``i_kernel`` the array
    streams the ``blocks`` weight words of pattern mu (addresses ``mu*blocks .. mu*blocks +
    blocks - 1``, in order) and adds ``q * K_mu`` into the ``lanes`` accumulators of the ring
    head, then rotates the ring by one word. After ``blocks`` rotations every accumulator is back
    in place, so no wide multiplexer selects accumulators. The product is shift-and-add.

    After ``p`` kernels, the ring is drained on ``o_sums``: ``blocks`` beats, beat b holding the
    accumulators of neurons ``b*L .. b*L+L-1`` (zeros past n), each beat clearing its word.
    ``o_sum_k`` holds ``S_K`` from the first drain beat until the next ``i_start``.

    Pipeline: issue a weight-word read (1) -> register the word (2) -> register the ``lanes``
    products ``q * K_mu`` (3) -> add them into the ring head and rotate (4): the memory output
    (slow on block RAM without its output register) meets no logic but the bank multiplexer, and
    the product and accumulator adders are in different cycles.

    Cycles: a kernel is accepted every ``blocks`` cycles when available; the drain starts 4
    cycles after the issue of the last weight word.

    Parameters
    ----------
    params : AccelParams

    Members
    -------
    i_start : In(1)
        Clears ``S_K`` and begins accumulating ``p`` kernels (the ring is clear after a drain).
    i_kernel : In(stream.Signature(kernel_bits))
    weights : Out(ReadPortSignature)
        Read port of the weight memory.
    o_sums : Out(stream.Signature(ArrayLayout(acc_bits, lanes)))
    o_sum_k : Out(sum_bits)
    """

    def __init__(self, params: AccelParams):
        self._params = params
        weight_addr = max(1, (params.weight_depth - 1).bit_length())
        super().__init__({
            "i_start": In(1),
            "i_kernel": In(stream.Signature(params.kernel_bits)),
            "weights": Out(ReadPortSignature(weight_addr, params.weight_width)),
            "o_sums": Out(stream.Signature(data.ArrayLayout(params.acc_bits, params.lanes))),
            "o_sum_k": Out(params.sum_bits),
        })

    def elaborate(self, platform):
        m = Module()
        prm = self._params
        lanes, blocks, k = prm.lanes, prm.blocks, prm.weight_bits
        word_bits = lanes * prm.acc_bits

        ring = [Signal(word_bits, name=f"ring{j}") for j in range(blocks)]
        head = data.View(data.ArrayLayout(prm.acc_bits, lanes), ring[0])

        accepted = Signal(range(prm.p + 1))
        have_k = Signal()
        k_cur = Signal(prm.kernel_bits)
        block = Signal(range(blocks))
        addr = Signal.like(self.weights.addr)
        sum_k = Signal(prm.sum_bits)
        m.d.comb += self.o_sum_k.eq(sum_k)

        # Stage 1: the weight word issued last cycle and the kernel that goes with it.
        v1 = Signal()
        k1 = Signal(prm.kernel_bits)
        # Stage 2: that word, registered, and its kernel.
        v2 = Signal()
        k2 = Signal(prm.kernel_bits)
        word = Signal(prm.weight_width)
        # Stage 3: the products of the word's codes with the kernel.
        v3 = Signal()
        product_bits = prm.kernel_bits + k
        products = Signal(data.ArrayLayout(product_bits, lanes))

        # The ring rotates on a one-LUT function of three flip-flops: its enable drives every
        # accumulator flip-flop. v3 is only ever set while accumulating and `draining` is the
        # DRAIN state, so this is "accumulate a word, or drain a beat".
        draining = Signal()
        rotate = Signal()
        new_head = Signal(data.ArrayLayout(prm.acc_bits, lanes))
        m.d.comb += [
            rotate.eq(v3 | (draining & self.o_sums.ready)),
            [new_head[lane].eq(Mux(v3, head[lane] + products[lane], 0)) for lane in range(lanes)],
            self.o_sums.valid.eq(draining),
            self.o_sums.payload.eq(ring[0]),
        ]
        with m.If(rotate):
            m.d.sync += [ring[j].eq(ring[j + 1]) for j in range(blocks - 1)]
            m.d.sync += ring[blocks - 1].eq(new_head)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.i_start):
                    m.d.sync += [accepted.eq(0), have_k.eq(0), block.eq(0), addr.eq(0),
                                 sum_k.eq(0)]
                    m.next = "ACCUMULATE"

            with m.State("ACCUMULATE"):
                last_issue = Signal()
                m.d.comb += [
                    last_issue.eq(have_k & (block == blocks - 1)),
                    self.i_kernel.ready.eq((~have_k | last_issue) & (accepted != prm.p)),
                    self.weights.addr.eq(addr),
                    self.weights.en.eq(1),
                ]
                with m.If(self.i_kernel.valid & self.i_kernel.ready):
                    m.d.sync += [k_cur.eq(self.i_kernel.payload), have_k.eq(1),
                                 accepted.eq(accepted + 1),
                                 sum_k.eq(sum_k + self.i_kernel.payload)]
                with m.Elif(last_issue):
                    m.d.sync += have_k.eq(0)
                m.d.sync += [v1.eq(have_k), k1.eq(k_cur)]
                with m.If(have_k):
                    m.d.sync += [addr.eq(addr + 1),
                                 block.eq(Mux(block == blocks - 1, 0, block + 1))]
                m.d.sync += [v2.eq(v1), v3.eq(v2)]
                with m.If(v1):
                    m.d.sync += [word.eq(self.weights.data), k2.eq(k1)]
                with m.If(v2):
                    codes = data.View(data.ArrayLayout(k, lanes), word)
                    m.d.sync += [products[lane].eq(shift_add(codes[lane], k2))
                                 for lane in range(lanes)]
                with m.If((accepted == prm.p) & ~have_k & ~v1 & ~v2):
                    m.d.sync += draining.eq(1)
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                m.d.sync += [v1.eq(0), v2.eq(0), v3.eq(0)]
                with m.If(self.o_sums.ready):
                    m.d.sync += block.eq(Mux(block == blocks - 1, 0, block + 1))
                    with m.If(block == blocks - 1):
                        m.d.sync += draining.eq(0)
                        m.next = "IDLE"
        return m
