"""The sign-update FSM: owns the state, runs the steps, decides convergence, emits results."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layout import STEPS_BITS, result_layout
from .params import AccelParams
from .ports import ReadPortSignature

__all__ = ["SignUpdate", "FAULTS"]

#: Test-only injectable bugs: ``"tie_sets_one"`` makes a tie set the neuron to 1 instead of
#: keeping it, the wrong tie rule.
FAULTS = ("tie_sets_one",)


class SignUpdate(wiring.Component):
    """Controller of a retrieval: query in, synchronous sign updates, result out.

    A query accepted on ``i_query`` becomes the state. Each step pulses ``o_start`` (the kernel
    distance unit and the MAC array then sweep all patterns with ``o_state``); once ``i_sums``
    presents its first beat (``S_K`` is final), it consumes the ``blocks`` beats of ``i_sums``:
    neuron i becomes 1 if ``T_i * 2^R > theta_i = r_fx[i] * S_K``, 0 if less, and keeps its value
    on a tie; neurons past n stay 0. The state register rotates by ``lanes`` bits per beat, so
    beat b always meets neurons ``b*L ..`` in the low bits.

    The thresholds come from the threshold memory (``thresholds``, word b = the ``lanes``
    thresholds of block b). Each lane computes its product ``theta = r * S_K`` digit-serially,
    least significant digit first: ``threshold_digits`` cycles of ``threshold_digit_bits`` bits
    of r times ``S_K`` (the top digit signed), the accumulator shifting right by a digit per
    cycle. The bits shifted out below ``2^R`` only matter as "nonzero" (a sticky bit); the bits
    above ``2^R`` and the accumulator form ``Q = floor(theta / 2^R)``. Then ``T * 2^R > theta``
    is ``T > Q`` and ``T * 2^R < theta`` is ``T < Q`` or ``T == Q`` with a nonzero fraction:
    compares as wide as ``T``, no ceiling adder. The products of block b + 1 start in the cycle
    that compares block b, so a block costs ``threshold_digits`` cycles.

    The update is a two-stage pipeline: stage 1 (COMPARE) registers the two decisions of every
    lane of a beat; stage 2, a cycle later, applies them to the state; a cycle after the last
    beat's stage 2, the step is decided from registered flags.

    After a step: unchanged state -> converged; else after ``max_steps`` steps -> not converged;
    else the next step. ``o_result`` then presents ``{state, steps, converged}`` until accepted.

    Cycles per step without backpressure (:data:`khop.hw.params.STEP_CYCLE_TERMS`):
    ``1 (START) + wait for the first sum beat + blocks * threshold_digits + 2``.

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
    thresholds : Out(ReadPortSignature(addr, lanes * threshold_bits))
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
        frac, tbits = prm.threshold_frac_bits, prm.threshold_bits
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
        # Comb: a digit step this cycle, of digit `dj` of block `sblock`.
        do_step = Signal()
        dj = Signal(range(max(digits, 2)))
        sblock = Signal(range(blocks))
        first = dj == 0
        top = dj == digits - 1

        rd = self.thresholds
        s_k = self.i_sum_k
        high_bits = digits * dbits - frac           # product bits from 2^R to the digits' top
        acc = [Signal(signed(sbits + 2), name=f"acc{lane}") for lane in range(lanes)]
        high = [Signal(high_bits, name=f"high{lane}") for lane in range(lanes)]
        sticky = [Signal(name=f"sticky{lane}") for lane in range(lanes)]
        for lane in range(lanes):
            r = Signal(signed(digits * dbits), name=f"r{lane}")
            m.d.comb += r.eq(rd.data[lane * tbits:(lane + 1) * tbits].as_signed())
            digit = r.as_unsigned().word_select(dj, dbits) if digits > 1 else r.as_unsigned()
            if dbits == 1:
                prod = Mux(digit[0], Mux(top, -s_k, s_k), 0)
            else:
                dval = Signal(signed(dbits + 1), name=f"digit{lane}")
                m.d.comb += dval.eq(Mux(top, digit.as_signed(), digit))
                prod = dval * s_k
            t = Signal(signed(sbits + dbits + 2), name=f"t{lane}")
            m.d.comb += t.eq(Mux(first, 0, acc[lane]) + prod)
            with m.If(do_step):
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

        def step_outcome():
            """After a digit step: the next digit, or the compare of the block."""
            m.d.sync += mblock.eq(sblock)
            with m.If(top):
                m.d.sync += sums_ready.eq(1)
                m.next = "COMPARE"
                with m.If(sblock != blocks - 1):
                    m.d.comb += [rd.addr.eq(sblock + 1), rd.en.eq(1)]
            with m.Else():
                m.d.sync += digit_reg.eq(dj + 1)
                m.next = "MULTIPLY"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.o_idle.eq(1), self.i_query.ready.eq(~self.i_hold)]
                with m.If(self.i_query.valid & ~self.i_hold):
                    m.d.sync += [state.eq(self.i_query.payload), steps.eq(0)]
                    m.next = "START"

            with m.State("START"):
                m.d.comb += [self.o_start.eq(1), rd.addr.eq(0), rd.en.eq(1)]
                m.d.sync += [changed.eq(0), beat.eq(0), decide.eq(0),
                             last_step.eq(steps + 1 == prm.max_steps)]
                m.next = "WAIT"

            with m.State("WAIT"):
                # S_K is final once the MAC array presents its first sum beat.
                with m.If(self.i_sums.valid):
                    m.d.comb += [do_step.eq(1), dj.eq(0), sblock.eq(0)]
                    step_outcome()

            with m.State("MULTIPLY"):
                m.d.comb += [do_step.eq(1), dj.eq(digit_reg), sblock.eq(mblock)]
                step_outcome()

            with m.State("COMPARE"):
                # Stage 1: accept the beat of block mblock, register its decisions.
                accept = Signal()
                m.d.comb += accept.eq(self.i_sums.valid & sums_ready)
                sums = self.i_sums.payload
                with m.If(accept):
                    gt, lt = [], []
                    for lane in range(lanes):
                        q = Cat(high[lane], acc[lane]).as_signed()
                        gt.append(sums[lane] > q)
                        lt.append(~gt[-1] & ~((sums[lane] == q) & ~sticky[lane]))
                    m.d.sync += [u_valid.eq(1), u_gt.eq(Cat(*gt)), u_lt.eq(Cat(*lt)),
                                 sums_ready.eq(0)]
                    with m.If(mblock == blocks - 1):
                        m.next = "FINISH"
                    with m.Else():
                        # The products of the next block start now.
                        m.d.comb += [do_step.eq(1), dj.eq(0), sblock.eq(mblock + 1)]
                        step_outcome()

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
                payload = self.o_result.payload
                m.d.comb += [
                    self.o_result.valid.eq(1),
                    payload.state.eq(state[:n]),
                    payload.steps.eq(steps),
                    payload.converged.eq(converged),
                ]
                with m.If(self.o_result.ready):
                    m.next = "IDLE"
        return m
