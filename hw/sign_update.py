"""The sign-update FSM: owns the state, runs the steps, decides convergence, emits results."""

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, signed
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

    The thresholds come from the threshold memory (``thresholds``: word ``b * G + g`` holds
    the thresholds of lanes ``g * U .. g * U + U - 1`` of block b, ``U = threshold_units``,
    ``G = threshold_groups``), read in the order the beats use them. ``U`` shared *threshold
    units* go through a beat in ``G`` cycles, group after group: each multiplies its neuron's
    ``r_fx`` by the slot's ``S_K`` (one multiplier, which the boards' synthesis maps to a DSP
    block) and compares the product with ``T * 2^R``. A pipeline of three stages: register
    the group's sums (a ``G``-to-1 select per unit), its thresholds and ``-S_K``; register
    ``T * 2^R - theta = r_fx * (-S_K) + T * 2^R`` (a multiply-add: on the iCE40 one SB_MAC16
    with its registers); register the signs of these differences into two shift registers
    that hold the beat's decisions (1: ``T * 2^R > theta``, 0: less). The beat is accepted
    with its last group, and a cycle after its last group's compare the decisions are applied
    to the slot's state; a cycle after the last beat's application every slot's step is
    decided from registered flags. A beat costs ``G + 1`` cycles (the MAC array offers the
    next beat at the earliest two cycles after one is taken).

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
    thresholds : Out(ReadPortSignature(addr, threshold_units * threshold_bits))
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
        units, groups, tbits = prm.threshold_units, prm.threshold_groups, prm.threshold_bits
        frac = prm.threshold_frac_bits

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

        # The beats: block `mblock`, slot `bslot`, the group `group` of it the units take next.
        mblock = Signal(range(blocks))
        bslot = Signal(range(batch))
        group = Signal(range(groups))
        # i_sums.ready is a register (the MAC array clears a slot's accumulators on it): high
        # while the next group to take is a beat's last, so the beat is accepted with it.
        sums_ready = Signal()
        m.d.comb += self.i_sums.ready.eq(sums_ready)
        sums = self.i_sums.payload
        sum_k = Array(Value.cast(self.i_sum_k[j]) for j in range(batch))
        rd = self.thresholds

        # Stage A: a group taken, its sums (lanes past `lanes` read 0), thresholds and -S_K. The
        # pipeline's data registers have no reset (their valid bits have), so that synthesis can
        # pack them into the DSP blocks' own registers.
        a_valid, a_last, a_slot, a_final = Signal(), Signal(), Signal(range(batch)), Signal()
        a_t = [Signal(prm.acc_bits, name=f"a_t{u}", reset_less=True) for u in range(units)]
        a_r = [Signal(signed(tbits), name=f"a_r{u}", reset_less=True) for u in range(units)]
        a_neg_sk = Signal(signed(prm.sum_bits + 1), reset_less=True)
        take = Signal()                    # a group is taken this cycle
        m.d.sync += a_valid.eq(take)
        with m.If(take):
            m.d.sync += [a_last.eq(group == groups - 1), a_slot.eq(bslot),
                         a_final.eq(mblock == blocks - 1), a_neg_sk.eq(-sum_k[bslot])]
            for u in range(units):
                lane_sums = [sums[g * units + u] if g * units + u < lanes else Const(0)
                             for g in range(groups)]
                m.d.sync += [a_t[u].eq(Array(lane_sums)[group] if groups > 1 else lane_sums[0]),
                             a_r[u].eq(rd.data[u * tbits:(u + 1) * tbits])]
        # Stage B: T * 2^R - theta = r_fx * (-S_K) + T * 2^R, a multiply-add (on the iCE40 the
        # whole stage is one SB_MAC16: its multiplier, adder and registers).
        b_valid, b_last, b_slot, b_final = Signal(), Signal(), Signal(range(batch)), Signal()
        b_diff = [Signal(signed(prm.compare_bits), name=f"b_diff{u}", reset_less=True)
                  for u in range(units)]
        m.d.sync += [b_valid.eq(a_valid), b_last.eq(a_last), b_slot.eq(a_slot),
                     b_final.eq(a_final)]
        m.d.sync += [b_diff[u].eq(a_r[u] * a_neg_sk + (a_t[u] << frac)) for u in range(units)]
        # Stage C: the signs of the differences, shifted into the beat's decisions (after a
        # beat's G groups, lane l's in bit l).
        u_gt = Signal(groups * units)      # T * 2^R > theta: the neuron becomes 1
        u_lt = Signal(groups * units)      # T * 2^R < theta: the neuron becomes 0
        gt = [~d[-1] & d.any() for d in b_diff]
        lt = [d[-1] for d in b_diff]
        u_valid = Signal()
        u_slot = Signal(range(batch))
        u_last = Signal()                       # the beat is of the last block
        decide = Signal()                       # the step's last beat is applied
        m.d.sync += u_valid.eq(0)
        with m.If(b_valid):
            m.d.sync += [u_gt.eq(Cat(u_gt[units:], *gt)), u_lt.eq(Cat(u_lt[units:], *lt))]
            with m.If(b_last):
                m.d.sync += [u_valid.eq(1), u_slot.eq(b_slot), u_last.eq(b_final)]

        # Application: the new bits of the beat decided last cycle, into its slot if running.
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

        # The threshold words are read in the order the groups use them: for each block, for
        # each slot, its `groups` words. The memory's output holds the next group's word, and
        # the read pointer (group `rp_group` of slot `rp_slot` at block base `rp_base`) is the
        # one after it.
        depth = prm.threshold_depth
        rp_group = Signal(range(max(groups, 2)))
        rp_slot = Signal(range(batch))
        rp_base = Signal(range(depth + groups))

        def advance(g, slot, base):
            """Read the word at the pointer (``g``, ``slot``, ``base``) and move it on."""
            m.d.comb += [rd.addr.eq(base + g), rd.en.eq(base < depth)]
            last_g = g == groups - 1
            last_slot = slot == batch - 1
            m.d.sync += [rp_group.eq(Mux(last_g, 0, g + 1)),
                         rp_slot.eq(Mux(last_g, Mux(last_slot, 0, slot + 1), slot)),
                         rp_base.eq(Mux(last_g & last_slot, base + groups, base))]

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
                             mblock.eq(0), bslot.eq(0), group.eq(0), decide.eq(0),
                             sums_ready.eq(groups == 1)]
                # The first word of the sequence is read now, the pointer moves to the second.
                advance(Const(0, rp_group.shape()), Const(0, rp_slot.shape()),
                        Const(0, rp_base.shape()))
                m.next = "SWEEP"

            with m.State("SWEEP"):
                # A group of the offered beat each cycle; the beat is accepted with its last.
                with m.If(self.i_sums.valid):
                    m.d.comb += take.eq(1)
                    advance(rp_group, rp_slot, rp_base)
                    with m.If(group == groups - 1):
                        m.d.sync += [group.eq(0), sums_ready.eq(groups == 1),
                                     bslot.eq(Mux(bslot == batch - 1, 0, bslot + 1))]
                        with m.If(bslot == batch - 1):
                            with m.If(mblock == blocks - 1):
                                m.d.sync += sums_ready.eq(0)
                                m.next = "FINISH"
                            with m.Else():
                                m.d.sync += mblock.eq(mblock + 1)
                    with m.Else():
                        m.d.sync += [group.eq(group + 1), sums_ready.eq(group + 2 == groups)]

            with m.State("FINISH"):
                # After the last beat's application: decide every running slot from the
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
