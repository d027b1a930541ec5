"""The sign-update FSM: owns the state, runs the steps, decides convergence, emits results."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layout import STEPS_BITS, result_layout
from .params import AccelParams
from .ports import ReadPortSignature

__all__ = ["SignUpdate", "FAULTS"]

#: Test-only injectable bugs: ``"tie_sets_one"`` makes a tie set the neuron to 1 instead of
#: keeping it, the wrong tie rule; ``"drop_under_backpressure"`` presents a result for one cycle
#: only, so a result the consumer does not take at once is lost.
FAULTS = ("tie_sets_one", "drop_under_backpressure")


class SignUpdate(wiring.Component):
    """Controller of a retrieval: query in, synchronous sign updates, result out.

    A query accepted on ``i_query`` becomes the state. Each step pulses ``o_start`` (the kernel
    distance unit and the MAC array then sweep all patterns with ``o_state``); once ``i_sums``
    presents its first beat (``S_K`` is final), it consumes the ``blocks`` beats of ``i_sums``:
    neuron i becomes 1 if ``T_i * 2^R > theta_i = r_fx[i] * S_K``, 0 if less, and keeps its value
    on a tie; neurons past n stay 0. The state register rotates by ``lanes`` bits per beat, so
    beat b always meets neurons ``b*L ..`` in the low bits.

    The thresholds come from the threshold memory (``thresholds``, digit-sliced: word
    ``b * threshold_digits + j`` = digit j of the ``lanes`` thresholds of block b, read in
    address order, one word per digit step). Each lane computes its product ``theta = r * S_K``
    digit-serially, least significant digit first: ``threshold_digits`` cycles of
    ``threshold_digit_bits`` bits of r times ``S_K`` (the top digit signed), the accumulator
    shifting right by a digit per cycle. Bit b of a digit adds the shared register
    ``S_K * 2^b`` (negated for the top bit of the top digit), no multiplier; the digit's position
    and the compare flag are registered too, so a lane's adder sees flip-flops and the memory's
    output only. The bits shifted out below ``2^R`` only matter
    as "nonzero" (a sticky bit); the bits above ``2^R`` and the accumulator form
    ``Q = floor(theta / 2^R)``. Then ``T * 2^R > theta`` is ``T > Q`` and ``T * 2^R < theta`` is
    ``T < Q`` or ``T == Q`` with a nonzero fraction, no ceiling adder.

    The update is a two-stage pipeline: stage 1 (COMPARE, one cycle after a block's last digit)
    computes ``Q - T`` on the lane's own adder (its sign and whether it is zero), registers the
    two decisions of every lane of the beat and clears the accumulators; stage 2, a cycle later,
    applies them to the state while the next block's products run; a cycle after the last beat's
    stage 2, the step is decided from registered flags. A block costs
    ``threshold_digits + 1`` cycles.

    After a step: unchanged state -> converged; else after ``max_steps`` steps -> not converged;
    else the next step. ``o_result`` then presents ``{state, steps, converged}`` until accepted.

    Cycles per step without backpressure (:data:`khop.hw.params.STEP_CYCLE_TERMS`):
    ``1 (START) + wait for the first sum beat + blocks * (threshold_digits + 1) + 2``.

    Members
    -------
    i_query : In(stream.Signature(n))
    o_result : Out(stream.Signature(result_layout))
    i_hold : In(1)
        While high in IDLE, no query is accepted (a load is being written).
    o_idle : Out(1)
    o_start : Out(1)
    o_state : Out(n)
    i_sums : In(stream.Signature(ArrayLayout(acc_bits, lanes)))
    i_sum_k : In(sum_bits)
    thresholds : Out(ReadPortSignature(addr, lanes * threshold_digit_bits))
        Read port of the threshold memory (one cycle latency; the word holds while ``en`` is
        low).
    """

    def __init__(self, params: AccelParams, *, fault=None):
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be None or one of {', '.join(FAULTS)}, not {fault!r}")
        self._params = params
        self._fault = fault
        addr_width = max(1, (params.threshold_depth - 1).bit_length())
        super().__init__({
            "i_query": In(stream.Signature(params.n)),
            "o_result": Out(stream.Signature(result_layout(params))),
            "i_hold": In(1),
            "o_idle": Out(1),
            "o_start": Out(1),
            "o_state": Out(params.n),
            "i_sums": In(stream.Signature(data.ArrayLayout(params.acc_bits, params.lanes))),
            "i_sum_k": In(params.sum_bits),
            "thresholds": Out(ReadPortSignature(addr_width, params.threshold_width)),
        })

    def elaborate(self, platform):
        m = Module()
        prm = self._params
        lanes, blocks, n = prm.lanes, prm.blocks, prm.n
        frac = prm.threshold_frac_bits
        dbits, digits = prm.threshold_digit_bits, prm.threshold_digits
        sbits = prm.sum_bits

        state = Signal(blocks * lanes)     # rotates by `lanes` bits per update beat
        steps = Signal(STEPS_BITS)
        last_step = Signal()               # this step is the max_steps-th
        converged = Signal()
        changed = Signal()
        beat = Signal(range(blocks))       # beats applied this step (stage 2)
        m.d.comb += self.o_state.eq(state[:n])

        # The products: block `mblock`, next digit `digit_reg`.
        mblock = Signal(range(blocks))
        digit_reg = Signal(range(max(digits, 2)))
        # Comb: a digit step this cycle, of digit `dj` of block `sblock`; or the compare.
        do_step = Signal()
        do_compare = Signal()
        in_compare = Signal()              # registered: the FSM is in COMPARE
        dj = Signal(range(max(digits, 2)))
        sblock = Signal(range(blocks))
        top = Signal()                     # registered: digit_reg is the top digit

        rd = self.thresholds
        s_k = self.i_sum_k
        sums = self.i_sums.payload
        high_bits = digits * dbits - frac           # product bits from 2^R to the digits' top
        t_hi_bits = prm.acc_bits - high_bits        # bits of T above the quotient's high part
        assert high_bits >= 1 and t_hi_bits >= 1
        acc_width = sbits + 2
        t_width = max(sbits + dbits + 2, max(acc_width, t_hi_bits + 1) + 1)
        # The operands every lane adds on a digit step, shared: bit b of a digit adds
        # `shared[b]` = S_K * 2^b, or -S_K * 2^b for the top bit of the top digit (two's
        # complement). They are registered with the next step's digit position (S_K is final
        # once the first sum beat is presented, a cycle before the first digit step), so the
        # adders see flip-flops and the memory's output only, and no multiplier.
        shared = [Signal(signed(sbits + b + 1), name=f"shared{b}") for b in range(dbits)]

        def next_digit(j):
            """The next digit step is digit ``j`` (a value) of a block."""
            is_top = j == digits - 1
            m.d.sync += [digit_reg.eq(j), top.eq(is_top)]
            for b in range(dbits - 1):
                m.d.sync += shared[b].eq(s_k << b)
            m.d.sync += shared[-1].eq(Mux(is_top, -(s_k << (dbits - 1)), s_k << (dbits - 1)))
        acc = [Signal(signed(acc_width), name=f"acc{lane}") for lane in range(lanes)]
        high = [Signal(high_bits, name=f"high{lane}") for lane in range(lanes)]
        sticky = [Signal(name=f"sticky{lane}") for lane in range(lanes)]
        gt, lt = [], []
        # The digit word of this cycle's step, registered off the memory (a block RAM's output
        # has a long clock-to-output; the lanes' adders see only flip-flops). The memory's
        # output holds the word after it: a two-deep prefetch, refilled by every step.
        word = Signal(prm.threshold_width)
        for lane in range(lanes):
            digit = word[lane * dbits:(lane + 1) * dbits]
            prod = Mux(digit[0], shared[0], 0)
            for b in range(1, dbits):
                prod = prod + Mux(digit[b], shared[b], 0)
            # The compare reuses the adder: Q - T = (acc - T_hi - borrow) * 2^high_bits
            # + (high - T_lo) mod 2^high_bits.
            t_lo = sums[lane][:high_bits]
            t_hi = sums[lane][high_bits:]
            borrow = Signal(name=f"borrow{lane}")
            m.d.comb += borrow.eq(high[lane] < t_lo)
            operand = Signal(signed(t_width), name=f"operand{lane}")
            m.d.comb += operand.eq(Mux(in_compare, ~Cat(t_hi, Const(0, 1)).as_signed(), prod))
            t = Signal(signed(t_width), name=f"t{lane}")
            m.d.comb += t.eq(acc[lane] + operand + (in_compare & ~borrow))
            gt.append(t[-1])                                    # Q - T < 0: T > Q
            eq = (t == 0) & (high[lane] == t_lo)
            lt.append(~t[-1] & ~(eq & ~sticky[lane]))
            with m.If(do_compare):
                m.d.sync += acc[lane].eq(0)
            with m.Elif(do_step):
                m.d.sync += acc[lane].eq(t >> dbits)
                with m.Switch(dj):
                    for j in range(digits):
                        with m.Case(j):
                            below = [t[b] for b in range(dbits) if j * dbits + b < frac]
                            for b in range(dbits):
                                if j * dbits + b >= frac:
                                    m.d.sync += high[lane][j * dbits + b - frac].eq(t[b])
                            kept = Const(0) if j == 0 else sticky[lane]
                            if below:
                                m.d.sync += sticky[lane].eq(kept | Cat(*below).any())
                            else:
                                m.d.sync += sticky[lane].eq(kept)

        # i_sums.ready is a register: the MAC array's ring rotates on it, thousands of
        # flip-flops, so no logic may precede it.
        sums_ready = Signal()
        m.d.comb += self.i_sums.ready.eq(sums_ready)
        u_valid = Signal()
        u_gt = Signal(lanes)
        u_lt = Signal(lanes)
        decide = Signal()                       # the step's last beat is applied
        m.d.sync += u_valid.eq(0)

        # Stage 2: the new bits of the beat compared last cycle.
        old = state[:lanes]
        new = Signal(lanes)
        for lane in range(lanes):
            tie = 1 if self._fault == "tie_sets_one" else old[lane]
            bit = Mux(u_gt[lane], 1, Mux(u_lt[lane], 0, tie))
            pad = blocks * lanes - n
            if pad and lane >= lanes - pad:
                bit = Mux(beat == blocks - 1, 0, bit)  # neurons past n stay 0
            m.d.comb += new[lane].eq(bit)
        with m.If(u_valid):
            m.d.sync += [
                state.eq(Cat(state[lanes:], new)),
                beat.eq(beat + 1),
                changed.eq(changed | (new != old)),
            ]
            with m.If(beat == blocks - 1):
                m.d.sync += [steps.eq(steps + 1), decide.eq(1)]

        # The threshold words are read in address order, one per digit step: `word` holds the
        # step's own, the memory's output the next, and `naddr` is the address read when a
        # step moves the next word into `word` (the one two steps ahead).
        depth = prm.threshold_depth
        naddr = Signal(range(depth + 2))
        primed = Signal()                  # the first two words are in `word` and the output

        def step_outcome():
            """After a digit step: the next digit, or the compare of the block."""
            m.d.sync += [mblock.eq(sblock), naddr.eq(naddr + 1), word.eq(rd.data)]
            m.d.comb += [rd.addr.eq(naddr), rd.en.eq(naddr < depth)]
            with m.If(top):
                m.d.sync += sums_ready.eq(1)
                m.next = "COMPARE"
                m.d.sync += in_compare.eq(1)
            with m.Else():
                next_digit(dj + 1)
                m.next = "MULTIPLY"

        payload = self.o_result.payload     # meaningful while o_result.valid
        m.d.comb += [payload.state.eq(state[:n]), payload.steps.eq(steps),
                     payload.converged.eq(converged)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.o_idle.eq(1), self.i_query.ready.eq(~self.i_hold)]
                with m.If(self.i_query.valid & ~self.i_hold):
                    m.d.sync += [state.eq(self.i_query.payload), steps.eq(0)]
                    m.next = "START"

            with m.State("START"):
                m.d.comb += [self.o_start.eq(1), rd.addr.eq(0), rd.en.eq(1)]
                m.d.sync += [changed.eq(0), beat.eq(0), decide.eq(0), naddr.eq(2),
                             primed.eq(0), last_step.eq(steps + 1 == prm.max_steps)]
                m.next = "WAIT"

            with m.State("WAIT"):
                # First cycle: word 0 into `word`, word 1 read (the MAC array's first sum beat
                # is many cycles away). S_K is final once that beat is presented.
                with m.If(~primed):
                    m.d.sync += [word.eq(rd.data), primed.eq(1)]
                    m.d.comb += [rd.addr.eq(1), rd.en.eq(depth > 1)]
                with m.Elif(self.i_sums.valid):
                    m.d.sync += mblock.eq(0)
                    next_digit(0)
                    m.next = "MULTIPLY"

            with m.State("MULTIPLY"):
                m.d.comb += [do_step.eq(1), dj.eq(digit_reg), sblock.eq(mblock)]
                step_outcome()

            with m.State("COMPARE"):
                # Stage 1: accept the beat of block mblock, register its decisions (the lanes'
                # adders subtract T from Q) and clear the accumulators.
                with m.If(self.i_sums.valid & sums_ready):
                    m.d.comb += do_compare.eq(1)
                    m.d.sync += [u_valid.eq(1), u_gt.eq(Cat(*gt)), u_lt.eq(Cat(*lt)),
                                 sums_ready.eq(0), in_compare.eq(0)]
                    with m.If(mblock == blocks - 1):
                        m.next = "FINISH"
                    with m.Else():
                        # The products of the next block start in the next cycle.
                        m.d.sync += mblock.eq(mblock + 1)
                        next_digit(0)
                        m.next = "MULTIPLY"

            with m.State("FINISH"):
                # Stage 3, after the last beat's stage 2: decide from the registered flags.
                with m.If(decide):
                    with m.If(~changed):
                        m.d.sync += converged.eq(1)
                        m.next = "DONE"
                    with m.Elif(last_step):
                        m.d.sync += converged.eq(0)
                        m.next = "DONE"
                    with m.Else():
                        m.next = "START"

            with m.State("DONE"):
                m.d.comb += self.o_result.valid.eq(1)
                taken = self.o_result.ready
                if self._fault == "drop_under_backpressure":
                    taken = Const(1)
                with m.If(taken):
                    m.next = "IDLE"
        return m
