"""The sign-update FSM: owns the state, runs the steps, decides convergence, emits results."""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layout import STEPS_BITS, result_layout
from .params import AccelParams

__all__ = ["SignUpdate", "FAULTS"]

#: Test-only injectable bugs: ``"tie_sets_one"`` makes a tie set the neuron to 1 instead of
#: keeping it, the wrong tie rule.
FAULTS = ("tie_sets_one",)


class SignUpdate(wiring.Component):
    """Controller of a retrieval: query in, synchronous sign updates, result out.

    A query accepted on ``i_query`` becomes the state. Each step pulses ``o_start`` (the kernel
    distance unit and the MAC array then sweep all patterns with ``o_state``), computes
    ``theta = r_fx * S_K`` with a serial shift-and-add multiplier (``threshold_bits`` cycles, MSB
    first, two's complement) once ``i_sums`` presents its first beat, then consumes the
    ``blocks`` beats of ``i_sums``: neuron i becomes 1 if ``T_i * 2^R > theta``, 0 if less, and
    keeps its value on a tie; neurons past n stay 0. The state register rotates by ``lanes`` bits
    per beat, so beat b always meets neurons ``b*L ..`` in the low bits.

    For timing, the update is a two-stage pipeline. ``PREPARE`` turns ``theta`` into
    ``floor(theta / 2^R)`` and ``ceil(theta / 2^R)`` once per step, so that ``T_i * 2^R > theta``
    is ``T_i > floor`` and ``T_i * 2^R < theta`` is ``T_i < ceil``: compares as wide as ``T``, not
    ``R`` bits wider. Stage 1 registers the two compares of every lane of a beat; stage 2, a cycle
    later, applies them to the state; a cycle after the last beat's stage 2, the step is decided
    from registered flags.

    After a step: unchanged state -> converged; else after ``max_steps`` steps -> not converged;
    else the next step. ``o_result`` then presents ``{state, steps, converged}`` until accepted.

    Cycles per step without backpressure (:data:`khop.hw.params.STEP_CYCLE_TERMS`):
    ``1 (START) + wait for the first sum beat + threshold_bits + 1 (PREPARE) + blocks + 2``.

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
    i_threshold : In(signed(threshold_bits))
    """

    def __init__(self, params: AccelParams, *, fault=None):
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be None or one of {', '.join(FAULTS)}, not {fault!r}")
        self._params = params
        self._fault = fault
        super().__init__({
            "i_query": In(stream.Signature(params.n)),
            "o_result": Out(stream.Signature(result_layout(params))),
            "i_hold": In(1),
            "o_idle": Out(1),
            "o_start": Out(1),
            "o_state": Out(params.n),
            "i_sums": In(stream.Signature(data.ArrayLayout(params.acc_bits, params.lanes))),
            "i_sum_k": In(params.sum_bits),
            "i_threshold": In(signed(params.threshold_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        prm = self._params
        lanes, blocks, n = prm.lanes, prm.blocks, prm.n
        frac = prm.threshold_frac_bits

        state = Signal(blocks * lanes)     # rotates by `lanes` bits per update beat
        steps = Signal(STEPS_BITS)
        last_step = Signal()               # this step is the max_steps-th
        converged = Signal()
        changed = Signal()
        beat = Signal(range(blocks))
        m.d.comb += self.o_state.eq(state[:n])

        theta = Signal(signed(prm.product_bits))
        r_shift = Signal(prm.threshold_bits)
        mul_count = Signal(range(prm.threshold_bits + 1))

        # T_i * 2^R vs theta as T_i vs floor/ceil(theta / 2^R), signed.
        quot_bits = prm.quotient_bits
        q_floor = Signal(signed(quot_bits))
        q_ceil = Signal(signed(quot_bits))

        # Update stage 1: the compares of one beat; stage 2 applies them a cycle later.
        taken = Signal(range(blocks))           # beats accepted this step
        # i_sums.ready is a register: the MAC array's ring rotates on it, thousands of
        # flip-flops, so no logic may precede it.
        sums_ready = Signal()
        m.d.comb += self.i_sums.ready.eq(sums_ready)
        u_valid = Signal()
        u_gt = Signal(lanes)
        u_lt = Signal(lanes)
        decide = Signal()                       # the step's last beat is applied

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.o_idle.eq(1), self.i_query.ready.eq(~self.i_hold)]
                with m.If(self.i_query.valid & ~self.i_hold):
                    m.d.sync += [state.eq(self.i_query.payload), steps.eq(0)]
                    m.next = "START"

            with m.State("START"):
                m.d.comb += self.o_start.eq(1)
                m.d.sync += [changed.eq(0), beat.eq(0), taken.eq(0), u_valid.eq(0), decide.eq(0),
                             last_step.eq(steps + 1 == prm.max_steps),
                             theta.eq(0), r_shift.eq(self.i_threshold), mul_count.eq(0)]
                m.next = "WAIT"

            with m.State("WAIT"):
                # S_K is final once the MAC array presents its first sum beat.
                with m.If(self.i_sums.valid):
                    m.next = "MULTIPLY"

            with m.State("MULTIPLY"):
                # theta = r_fx * S_K, MSB first: theta <- 2 theta +- bit * S_K.
                msb = r_shift[-1]
                term = Mux(msb, self.i_sum_k, 0)
                first = mul_count == 0
                m.d.sync += [
                    theta.eq(Mux(first, -term, (theta << 1) + term)),
                    r_shift.eq(r_shift << 1),
                    mul_count.eq(mul_count + 1),
                ]
                with m.If(mul_count == prm.threshold_bits - 1):
                    m.next = "PREPARE"

            with m.State("PREPARE"):
                m.d.sync += [q_floor.eq(theta >> frac),
                             q_ceil.eq((theta + (2 ** frac - 1)) >> frac),
                             sums_ready.eq(1)]
                m.next = "UPDATE"

            with m.State("UPDATE"):
                # Stage 1: accept a beat, register its compares.
                accept = Signal()
                m.d.comb += accept.eq(self.i_sums.valid & sums_ready)
                sums = self.i_sums.payload
                m.d.sync += u_valid.eq(accept)
                with m.If(accept):
                    with m.If(taken == blocks - 1):
                        m.d.sync += sums_ready.eq(0)
                    m.d.sync += [
                        taken.eq(taken + 1),
                        u_gt.eq(Cat(sums[lane] > q_floor for lane in range(lanes))),
                        u_lt.eq(Cat(sums[lane] < q_ceil for lane in range(lanes))),
                    ]

                # Stage 2: the new bits of the beat accepted last cycle.
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

                # Stage 3, after the last beat: decide from the registered flags.
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
