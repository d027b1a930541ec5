"""The sign-update FSM: owns the state, runs the steps, decides convergence, emits results."""

from typing import NamedTuple

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .fanout import FANOUT_COPY, FANOUT_LANES, fanout_groups
from .layout import STEPS_BITS, result_layout
from .params import AccelParams
from .ports import ReadPortSignature

__all__ = ["SignUpdate", "FAULTS", "LaneWidths", "lane_widths"]

#: Test-only injectable bugs: ``"tie_sets_one"`` makes a tie set the neuron to 1 instead of
#: keeping it, the wrong tie rule; ``"drop_under_backpressure"`` presents a result for one cycle
#: only, so a result the consumer does not take at once is lost.
FAULTS = ("tie_sets_one", "drop_under_backpressure")


class LaneWidths(NamedTuple):
    """The widths of one lane's registers and adders in the sign update.

    ``acc``: the signed accumulator of the digit-serial product ``r_i * S_K`` (shifted right a
    digit per step, so it ends holding the product's bits above the digits' top); ``adder``:
    the adder of a digit step (``acc`` plus a digit's multiple of ``S_K``); ``high``: the
    product's bits from ``2^R`` up to the digits' top, in their own register; ``compare``: the
    signed compare of ``acc`` with the bits of ``T_i`` above the low ``high`` bits.
    """

    acc: int
    adder: int
    high: int
    compare: int


def lane_widths(params: AccelParams) -> LaneWidths:
    """The :class:`LaneWidths` of ``params``' sign update (the one home of these widths)."""
    prm = params
    high = prm.threshold_digits * prm.threshold_digit_bits - prm.threshold_frac_bits
    acc = prm.sum_bits + 2
    return LaneWidths(acc=acc, adder=prm.sum_bits + prm.threshold_digit_bits + 2, high=high,
                      compare=max(acc, prm.acc_bits - high + 1))


class SignUpdate(wiring.Component):
    """Controller of the retrievals: queries in, synchronous sign updates, results out.

    The accelerator holds up to ``batch`` queries, one per *slot*. A query accepted on
    ``i_query`` goes into the next slot in turn (when that slot is free) and joins at the next
    step; every step (a *sweep*) pulses ``o_start``, and the kernel distance units and the MAC
    array then sweep all patterns once for every slot. With ``batch > 1`` a step is preceded
    by a join window (JOIN): ``batch - 1`` cycles when it starts from idle, ``batch`` cycles
    after a step that finished a query (none otherwise), so that a burst of queries, or the
    replacements of finished queries (one per cycle as their results are taken), join it. A
    slot whose query has converged or reached ``max_steps`` holds its result until it is
    presented on ``o_result``; results are presented slot after slot in turn, so in the order
    the queries came, and a slot is free again once its result is taken. A sweep runs while a
    slot has a query running or waiting to join.

    The MAC array presents its sums block by block: for block b, ``batch`` beats on ``i_sums``
    (beat j: slot j's accumulators of neurons ``b*L ..``). For each beat the slot's neurons
    become 1 if ``T_i * 2^R > theta_i = r_fx[i] * S_K``, 0 if less, and keep their value on a
    tie; neurons past n stay 0. A slot's state register rotates by ``lanes`` bits per beat, so
    beat b always meets neurons ``b*L ..`` in the low bits. Slots without a running query are
    swept too, but their beats change nothing.

    The thresholds come from the threshold memory (``thresholds``, digit-sliced: word
    ``b * threshold_digits + j`` = digit j of the ``lanes`` thresholds of block b), read once
    per beat in order. Each lane computes its product ``theta = r * S_K`` digit-serially, least
    significant digit first: ``threshold_digits`` cycles of ``threshold_digit_bits`` bits of r
    times ``S_K`` (the top digit signed), the accumulator shifting right by a digit per cycle.
    Bit b of a digit adds the shared register ``S_K * 2^b`` of the beat's slot (negated for the
    top bit of the top digit), no multiplier. The digit's position, the step and compare flags
    and the operands are registers in one copy per :data:`~khop.hw.fanout.FANOUT_LANES` lanes,
    each copy deciding its next value from registers only (its own, the beat's valid and ready,
    the next beat's slot), so a lane's adder and enables see flip-flops and the memory's output
    only. The bits shifted out below ``2^R`` only matter as "nonzero" (a sticky bit); the bits
    above ``2^R`` and the accumulator form ``Q = floor(theta / 2^R)``. Then ``T * 2^R > theta``
    is ``T > Q`` and ``T * 2^R < theta`` is ``T < Q`` or ``T == Q`` with a nonzero fraction.

    The update is a two-stage pipeline: stage 1 (COMPARE, one cycle after a beat's last digit)
    compares ``Q`` with ``T`` in each lane, registers the two decisions of every lane and
    accepts the beat; stage 2, a cycle later, applies them to the slot's state while the next
    beat's products run; a cycle after the last beat's stage 2 every slot's step is decided
    from registered flags. A beat costs ``threshold_digits + 1`` cycles.

    After a step: unchanged state -> converged; else after ``max_steps`` steps -> not
    converged; else the next step.

    Cycles per step without backpressure: :data:`khop.hw.params.STEP_CYCLE_TERMS`.

    Members
    -------
    i_query : In(stream.Signature(n))
    o_result : Out(stream.Signature(result_layout))
    i_hold : In(1)
        While high no query is accepted (a load is waiting).
    o_idle : Out(1)
        No query is held (none running, waiting or with its result not yet taken).
    o_start : Out(1)
    o_state : Out(ArrayLayout(n, batch))
    i_sums : In(stream.Signature(ArrayLayout(acc_bits, lanes)))
    i_sum_k : In(ArrayLayout(sum_bits, batch))
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
            "o_state": Out(data.ArrayLayout(params.n, params.batch)),
            "i_sums": In(stream.Signature(data.ArrayLayout(params.acc_bits, params.lanes))),
            "i_sum_k": In(data.ArrayLayout(params.sum_bits, params.batch)),
            "thresholds": Out(ReadPortSignature(addr_width, params.threshold_width)),
        })

    def elaborate(self, platform):
        m = Module()
        prm = self._params
        lanes, blocks, n, batch = prm.lanes, prm.blocks, prm.n, prm.batch
        frac = prm.threshold_frac_bits
        dbits, digits = prm.threshold_digit_bits, prm.threshold_digits
        sbits = prm.sum_bits

        # Per slot: the state (rotating by `lanes` bits per beat of its own), the steps taken,
        # and its condition: running (in the current sweep), pending (joins at the next
        # sweep), done (its result waits to be taken; `converged` is valid); free otherwise.
        state = [Signal(blocks * lanes, name=f"state{j}") for j in range(batch)]
        steps = [Signal(STEPS_BITS, name=f"steps{j}") for j in range(batch)]
        running = Signal(batch)
        pending = Signal(batch)
        done = Signal(batch)
        converged = Signal(batch)
        changed = Signal(batch)
        in_slot = Signal(range(batch))     # the slot the next query goes into
        out_slot = Signal(range(batch))    # the slot whose result is presented next
        for j in range(batch):
            m.d.comb += self.o_state[j].eq(state[j][:n])

        # The beats: block `mblock`, slot `bslot`; `next_slot` is the slot of the block's next
        # beat (0 after the last), so `next_slot != 0` says a beat of another slot follows.
        mblock = Signal(range(blocks))
        bslot = Signal(range(batch))
        next_slot = Signal(range(batch))
        more_slots = next_slot != 0
        # i_sums.ready is a register: the MAC array clears a slot's accumulators on it.
        sums_ready = Signal()
        m.d.comb += self.i_sums.ready.eq(sums_ready)

        rd = self.thresholds
        sums = self.i_sums.payload
        sum_k = Array(Value.cast(self.i_sum_k[j]) for j in range(batch))
        widths = lane_widths(prm)
        high_bits, acc_width, t_width = widths.high, widths.acc, widths.adder
        assert high_bits >= 1 and prm.acc_bits - high_bits >= 1
        # The S_K of the next beat's slot (final once the first sum beat is presented).
        beat_sum_k = Signal(sbits)
        m.d.comb += beat_sum_k.eq(sum_k[next_slot])

        # The digit steps' control, in one copy per group of FANOUT_LANES lanes (decided once
        # and sent to every group's copy, the step was the critical path of the ULX3S build of
        # 100 lanes x 6 queries: 11.4 ns of its 13.1 ns in routing). Each copy has:
        # `step_digit`, the digit of this cycle's step, one-hot (bit j: a step of digit j;
        # none: no step); `do_step`, a step this cycle; `in_compare`, the FSM is in COMPARE;
        # `in_wait`, the FSM waits in WAIT for the block's first beat (its memory words primed).
        groups = fanout_groups(lanes)
        step_digit = [Signal(digits, name=f"step_digit_{FANOUT_COPY}{g}") for g in range(groups)]
        do_step = [Signal(name=f"do_step_{FANOUT_COPY}{g}") for g in range(groups)]
        in_compare = [Signal(name=f"in_compare_{FANOUT_COPY}{g}") for g in range(groups)]
        in_wait = [Signal(name=f"in_wait_{FANOUT_COPY}{g}") for g in range(groups)]
        # The operands every lane adds on a digit step: bit b of a digit adds `shared[b]` = S_K *
        # 2^b, or -S_K * 2^b for the top bit of the top digit (two's complement), with the S_K
        # of the beat's slot, loaded as the beat starts (the top bit's negated before the top
        # digit's step), so the adders see flip-flops and the memory's output only.
        shared = [[Signal(signed(sbits + b + 1), name=f"shared{b}_{FANOUT_COPY}{g}")
                   for b in range(dbits)] for g in range(groups)]
        # The compare of a beat (COMPARE and a beat accepted), and the start of a beat (its
        # first step is next cycle), for each group of lanes from the group's own copies; the
        # FSM below takes the same decisions from its state.
        group_compare = [Signal(name=f"compare{g}") for g in range(groups)]
        top_shift = dbits - 1
        for g in range(groups):
            accepted = in_compare[g] & self.i_sums.valid & sums_ready
            start = (in_wait[g] & self.i_sums.valid) | (accepted & more_slots)
            m.d.comb += group_compare[g].eq(accepted)
            m.d.sync += [step_digit[g].eq(Mux(start, 1, step_digit[g] << 1)),
                         do_step[g].eq(start | (do_step[g] & ~step_digit[g][-1]))]
            with m.If(start):
                m.d.sync += [shared[g][b].eq(beat_sum_k << b) for b in range(top_shift)]
                first_top = -(beat_sum_k << top_shift) if digits == 1 else beat_sum_k << top_shift
                m.d.sync += shared[g][-1].eq(first_top)
            if digits > 1:
                with m.Elif(step_digit[g][-2]):
                    m.d.sync += shared[g][-1].eq(-shared[g][-1])
        top = step_digit[0][-1]            # this cycle's step is of the top digit (for the FSM)

        acc = [Signal(signed(acc_width), name=f"acc{lane}") for lane in range(lanes)]
        high = [Signal(high_bits, name=f"high{lane}") for lane in range(lanes)]
        sticky = [Signal(name=f"sticky{lane}") for lane in range(lanes)]
        gt, lt = [], []
        # The digit word of this cycle's step, registered off the memory (a block RAM's output
        # has a long clock-to-output; the lanes' adders see only flip-flops). The memory's
        # output holds the word after it: a two-deep prefetch, refilled by every step.
        word = Signal(prm.threshold_width)
        for lane in range(lanes):
            group = lane // FANOUT_LANES
            digit = word[lane * dbits:(lane + 1) * dbits]
            operands = shared[group]
            prod = Mux(digit[0], operands[0], 0)
            for b in range(1, dbits):
                prod = prod + Mux(digit[b], operands[b], 0)
            t = Signal(signed(t_width), name=f"t{lane}")
            m.d.comb += t.eq(acc[lane] + prod)
            # The compare: Q - T = (acc - T_hi - borrow) * 2^high_bits + (high - T_lo) mod
            # 2^high_bits, so T > Q when acc < T_hi, or acc == T_hi and high < T_lo (the
            # borrow). The two compares are separate carry chains side by side, not one chain
            # feeding the other (on the iCE40 the chained form was the critical path, 28.9 ns).
            t_lo = sums[lane][:high_bits]
            t_hi = sums[lane][high_bits:]
            eq_hi = acc[lane] == t_hi
            gt_lane = Signal(name=f"gt{lane}")
            m.d.comb += gt_lane.eq((acc[lane] < t_hi) | (eq_hi & (high[lane] < t_lo)))
            gt.append(gt_lane)
            eq = eq_hi & (high[lane] == t_lo)                   # Q == T
            lt.append(~gt_lane & ~(eq & ~sticky[lane]))
            with m.If(group_compare[group]):
                m.d.sync += acc[lane].eq(0)
            with m.Elif(do_step[group]):
                m.d.sync += acc[lane].eq(t >> dbits)
                for j in range(digits):
                    with m.If(step_digit[group][j]):
                        below = [t[b] for b in range(dbits) if j * dbits + b < frac]
                        for b in range(dbits):
                            if j * dbits + b >= frac:
                                m.d.sync += high[lane][j * dbits + b - frac].eq(t[b])
                        kept = Const(0) if j == 0 else sticky[lane]
                        if below:
                            m.d.sync += sticky[lane].eq(kept | Cat(*below).any())
                        else:
                            m.d.sync += sticky[lane].eq(kept)

        u_valid = Signal()
        u_slot = Signal(range(batch))
        u_last = Signal()                       # the beat is of the last block
        u_gt = Signal(lanes)
        u_lt = Signal(lanes)
        decide = Signal()                       # the step's last beat is applied
        m.d.sync += u_valid.eq(0)

        # Stage 2: the new bits of the beat compared last cycle, into its slot if running.
        old = Signal(lanes)
        m.d.comb += old.eq(Array(state[j][:lanes] for j in range(batch))[u_slot])
        new = Signal(lanes)
        pad = blocks * lanes - n
        for lane in range(lanes):
            tie = 1 if self._fault == "tie_sets_one" else old[lane]
            bit = Mux(u_gt[lane], 1, Mux(u_lt[lane], 0, tie))
            if pad and lane >= lanes - pad:
                bit = Mux(u_last, 0, bit)        # neurons past n stay 0
            m.d.comb += new[lane].eq(bit)
        with m.If(u_valid):
            for j in range(batch):
                with m.If((u_slot == j) & running[j]):
                    m.d.sync += [state[j].eq(Cat(state[j][lanes:], new)),
                                 changed[j].eq(changed[j] | (new != old))]
            with m.If(u_last & (u_slot == batch - 1)):
                m.d.sync += decide.eq(1)

        # The threshold words are read in the order the beats use them: for each block, for
        # each slot, its `digits` words. `word` holds the step's own, the memory's output the
        # next, and the read pointer (digit `rp_digit` of slot `rp_slot` at block base
        # `rp_base`) is the one two steps ahead.
        depth = prm.threshold_depth
        rp_digit = Signal(range(max(digits, 2)))
        rp_slot = Signal(range(batch))
        rp_base = Signal(range(depth + digits))
        primed = Signal()                  # the first two words are in `word` and the output

        def advance(d, slot, base):
            """Read the word at the pointer (``d``, ``slot``, ``base``) and move it on."""
            m.d.comb += [rd.addr.eq(base + d), rd.en.eq(base < depth)]
            last_d = d == digits - 1
            last_slot = slot == batch - 1
            m.d.sync += [rp_digit.eq(Mux(last_d, 0, d + 1)),
                         rp_slot.eq(Mux(last_d, Mux(last_slot, 0, slot + 1), slot)),
                         rp_base.eq(Mux(last_d & last_slot, base + digits, base))]

        def start_beat():
            """The next cycle is the first digit step of the beat of slot ``next_slot`` (the
            lanes' copies take the same decision, :data:`group_compare` and ``start`` above)."""
            m.d.sync += [bslot.eq(next_slot),
                         next_slot.eq(Mux(next_slot == batch - 1, 0, next_slot + 1))]
            m.next = "MULTIPLY"

        # The queries: into the next slot in turn when it is free and no load waits.
        free = ~running & ~pending & ~done
        accept = Signal()
        m.d.comb += [self.i_query.ready.eq(free.bit_select(in_slot, 1) & ~self.i_hold),
                     accept.eq(self.i_query.valid & self.i_query.ready)]

        # The results: slot after slot in turn.
        payload = self.o_result.payload     # meaningful while o_result.valid
        m.d.comb += [
            self.o_result.valid.eq(done.bit_select(out_slot, 1)),
            payload.state.eq(Array(state[j][:n] for j in range(batch))[out_slot]),
            payload.steps.eq(Array(steps)[out_slot]),
            payload.converged.eq(converged.bit_select(out_slot, 1)),
        ]
        taken = self.o_result.valid & self.o_result.ready
        if self._fault == "drop_under_backpressure":
            taken = self.o_result.valid

        # The step's decision for every running slot (registered flags only).
        finished = Signal(batch)       # converged or at max_steps, this step
        staying = Signal(batch)        # running the next step too
        for j in range(batch):
            at_max = steps[j] + 1 == prm.max_steps
            m.d.comb += [finished[j].eq(running[j] & (~changed[j] | at_max)),
                         staying[j].eq(running[j] & changed[j] & ~at_max)]

        # The join window: before a step starts, queries arriving within `batch` cycles join
        # it (from IDLE, a burst fills the slots; after a step that finished queries, their
        # replacements, one per cycle as the results are taken, join the next step).
        window = Signal(range(batch + 1))

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.o_idle.eq(free == (1 << batch) - 1)
                with m.If(pending.any() | accept):
                    if batch == 1:
                        m.next = "START"
                    else:
                        m.d.sync += window.eq(batch - 2)
                        m.next = "JOIN"

            with m.State("JOIN"):
                with m.If(window == 0):
                    m.next = "START"
                with m.Else():
                    m.d.sync += window.eq(window - 1)

            with m.State("START"):
                m.d.comb += [self.o_start.eq(1)]
                m.d.sync += [running.eq(running | pending), pending.eq(0), changed.eq(0),
                             mblock.eq(0), next_slot.eq(0), decide.eq(0), primed.eq(0)]
                # The first word of the sequence is read now, the pointer moves to the second.
                first_d = Const(0, rp_digit.shape())
                first_slot = Const(0, rp_slot.shape())
                first_base = Const(0, rp_base.shape())
                advance(first_d, first_slot, first_base)
                m.next = "WAIT"

            with m.State("WAIT"):
                # First cycle: word 0 into `word`, word 1 read (the MAC array's first sum beat
                # is many cycles away). Then wait for the block's first beat.
                with m.If(~primed):
                    m.d.sync += [word.eq(rd.data), primed.eq(1), *(c.eq(1) for c in in_wait)]
                    advance(rp_digit, rp_slot, rp_base)
                with m.Elif(self.i_sums.valid):
                    m.d.sync += [c.eq(0) for c in in_wait]
                    start_beat()

            with m.State("MULTIPLY"):
                # A digit step: then the next digit, or the compare of the beat.
                m.d.sync += word.eq(rd.data)
                advance(rp_digit, rp_slot, rp_base)
                with m.If(top):
                    m.d.sync += [sums_ready.eq(1), *(c.eq(1) for c in in_compare)]
                    m.next = "COMPARE"

            with m.State("COMPARE"):
                # Stage 1: accept the beat of slot bslot, register its decisions (the lanes'
                # adders subtract T from Q) and clear the accumulators.
                with m.If(self.i_sums.valid & sums_ready):
                    m.d.sync += [u_valid.eq(1), u_gt.eq(Cat(*gt)), u_lt.eq(Cat(*lt)),
                                 u_slot.eq(bslot), u_last.eq(mblock == blocks - 1),
                                 sums_ready.eq(0), *(c.eq(0) for c in in_compare)]
                    with m.If(more_slots):
                        # The next slot's products start in the next cycle.
                        start_beat()
                    with m.Elif(mblock == blocks - 1):
                        m.next = "FINISH"
                    with m.Else():
                        m.d.sync += [mblock.eq(mblock + 1), primed.eq(1),
                                     *(c.eq(1) for c in in_wait)]
                        m.next = "WAIT"

            with m.State("FINISH"):
                # After the last beat's stage 2: decide every running slot from the
                # registered flags.
                with m.If(decide):
                    for j in range(batch):
                        with m.If(running[j]):
                            m.d.sync += steps[j].eq(steps[j] + 1)
                    m.d.sync += [running.eq(staying), done.eq(done | finished),
                                 converged.eq((converged & ~finished)
                                              | (finished & ~changed))]
                    with m.If(staying.any() | pending.any() | accept):
                        if batch == 1:
                            m.next = "START"
                        else:
                            with m.If(finished.any()):
                                m.d.sync += window.eq(batch - 1)
                                m.next = "JOIN"
                            with m.Else():
                                m.next = "START"
                    with m.Else():
                        m.next = "IDLE"

        # After the FSM: a query accepted and a result taken (other slots than any above).
        # A query taken in the START cycle joins that step (the distance units read the states
        # from the next cycle on); any other waits for the next.
        with m.If(accept):
            m.d.sync += [Array(state)[in_slot].eq(self.i_query.payload),
                         Array(steps)[in_slot].eq(0),
                         in_slot.eq(Mux(in_slot == batch - 1, 0, in_slot + 1))]
            with m.If(self.o_start):
                m.d.sync += running.bit_select(in_slot, 1).eq(1)
            with m.Else():
                m.d.sync += pending.bit_select(in_slot, 1).eq(1)
        with m.If(taken):
            m.d.sync += [done.bit_select(out_slot, 1).eq(0),
                         out_slot.eq(Mux(out_slot == batch - 1, 0, out_slot + 1))]
        return m
