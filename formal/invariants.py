"""Mined white-box invariants: the accelerator's control registers as a function of the cycle.

k-induction proves a property only if it is inductive: a run of ``depth`` cycles that keeps
every assertion must keep it one cycle more. A design with counters and pipelines has many
unreachable states that keep the port-level assertions for any number of cycles (a MAC array
draining while its controller idles, a pipeline stage valid with no sweep running) and only
break them later, so the port-level contract alone is not inductive. The harness therefore also
asserts, for every register of the design that is constant in a given *phase* of a query, that
constant (a white-box invariant, proven together with the contract).

The accelerator's control flow does not depend on the data: between the transfer of a query and
its result, every control register (FSM states, counters, pipeline valid bits, addresses) has
the same value at the same cycle of every query. :func:`mine` simulates random loads, queries,
backpressure and resets with Amaranth's simulator, records every register at every *phase*
(:func:`phase_of`: idle, the cycle after the n-th edge of a running query, or a result
waiting), and keeps the
registers whose value was the same in every visit of a phase. Mining only proposes: a register
that depends on the data may have shown one value in a rarely visited phase by chance.
:func:`refine` then removes, Houdini style, every candidate that the induction step refutes
(the registers the counterexample's last cycle contradicts, in that phase), until the harness
is k-inductive. Every invariant left is proven with the contract (a wrong one is a FAIL or the
proof does not close, never an unsound PASS). Because the invariants are derived from the
design, a redesigned datapath gets its own.
"""

import random
from pathlib import Path

from amaranth.hdl import ClockDomain, Fragment, Module, Signal
from amaranth.sim import Simulator

from khop.hw.accelerator import RetrievalAccelerator
from khop.hw.layout import LoadTarget, pack_load
from khop.hw.params import AccelParams

__all__ = ["registers", "phases", "phase_of", "mine", "Invariants", "vcd_last_values",
           "contradicted", "refine"]


def registers(fragment, path=()):
    """``[(path, signal)]``: every signal assigned in a ``sync`` domain of ``fragment`` and its
    subfragments, in a fixed order (the order of elaboration), ``path`` = submodule names."""
    out = []
    seen = set()
    for domain, stmts in fragment.statements.items():
        if domain == "comb":
            continue
        for stmt in stmts:
            for sig in sorted(stmt._lhs_signals(), key=lambda s: s.name):
                if id(sig) not in seen:
                    seen.add(id(sig))
                    out.append((path, sig))
    for sub, name, _ in fragment.subfragments:
        out += registers(sub, (*path, str(name)))
    return out


def phases(params: AccelParams):
    """Number of phases: 0 idle, 1 .. L the cycles of a running query (L = ``max_steps *
    cycles_per_step``), L + 1 a result waiting."""
    return params.max_steps * params.cycles_per_step + 2


def phase_of(params: AccelParams, outstanding, since, result_valid):
    """The phase of a cycle (:func:`phases`), from the harness's view of the ports: no query
    outstanding -> 0; a result presented -> L + 1; else ``since + 1`` (``since``: edges after
    the query's transfer edge, 0 in the cycle after it)."""
    if not outstanding:
        return 0
    if result_valid:
        return phases(params) - 1
    return since + 1


class Invariants:
    """``names`` (``"path/signal"`` of every register, in :func:`registers` order),
    ``table[phase]`` = ``{index: value}`` of the registers constant in that phase, ``cycles``
    simulated, ``dropped``: the ``name@phase`` :func:`refine` removed."""

    def __init__(self, names, table, cycles, dropped=()):
        self.names, self.table, self.cycles, self.dropped = names, table, cycles, list(dropped)

    def without(self, phase, indices):
        """These invariants without those of registers ``indices`` in ``phase``."""
        table = [dict(row) for row in self.table]
        for i in indices:
            table[phase].pop(i, None)
        dropped = [f"{self.names[i]}@{phase}" for i in indices]
        return Invariants(self.names, table, self.cycles, [*self.dropped, *dropped])

    @property
    def count(self):
        return sum(len(t) for t in self.table)


def _name(path, sig):
    return "/".join((*path, sig.name))


def _random_network(rng, params):
    """Load words that fill every memory word with random contents (lookup-table entries at
    most ``2^F``, as the datasheet asks), in random order. A third of the networks are
    degenerate, so that registers that almost always take one value see the other: an all-zero
    lookup table (every neuron ties, no state changes) or all-zero weights."""
    words = []
    degenerate = rng.choice((None, None, None, None, LoadTarget.LUT, LoadTarget.WEIGHT))
    for target, depth in ((LoadTarget.PATTERN, params.pattern_depth),
                          (LoadTarget.WEIGHT, params.weight_depth),
                          (LoadTarget.LUT, params.lut_depth),
                          (LoadTarget.THRESHOLD, params.threshold_depth)):
        for addr in range(depth):
            data = rng.getrandbits(params.load_data_bits)
            if target == LoadTarget.LUT:
                data = rng.randrange(2 ** (params.kernel_bits - 1) + 1)
            if target == degenerate:
                data = 0
            words.append(pack_load(params, target, addr, data))
    rng.shuffle(words)
    return words


def mine(params: AccelParams, *, queries=40, seed=0, fault=None):
    """Simulate ``queries`` random queries (each after random loads, with random backpressure
    and an occasional reset) and return the :class:`Invariants` of the design."""
    dut = RetrievalAccelerator(params, fault=fault)
    frag = Fragment.get(dut, platform=None)
    regs = registers(frag)
    names = [_name(p, s) for p, s in regs]
    n_phases = phases(params)
    seen = [dict() for _ in range(n_phases)]     # phase -> {index: value or None (varies)}
    rng = random.Random(seed)
    cycles = 0
    reset = Signal()

    async def bench(ctx):
        nonlocal cycles
        outstanding, since = 0, 0
        lcap = n_phases - 2

        def record(phase):
            row = seen[phase]
            for i, (_, sig) in enumerate(regs):
                v = ctx.get(sig)
                v = int(v) if not hasattr(v, "as_value") else int(v.as_value())
                if row.get(i, v) != v:
                    row[i] = None
                elif i not in row:
                    row[i] = v

        done = 0
        pending = _random_network(rng, params)
        while done < queries:
            # A new random network every few queries (so every data register varies), loaded
            # while idle; then queries with random backpressure and an occasional reset.
            mode = rng.random()
            ctx.set(dut.i_load.valid, 0)
            ctx.set(dut.i_query.valid, 0)
            rst = 0
            if not outstanding and pending:
                ctx.set(dut.i_load.valid, 1)
                ctx.set(dut.i_load.payload.as_value(), pending[-1])
            elif not outstanding and mode < 0.6:
                ctx.set(dut.i_query.valid, 1)
                ctx.set(dut.i_query.payload, rng.getrandbits(params.n))
            elif mode > 0.995:
                rst = 1
            ctx.set(dut.o_result.ready, int(rng.random() < 0.6))
            valid = ctx.get(dut.o_result.valid)
            if not rst:
                record(phase_of(params, outstanding, since, valid))
            q_xfer = ctx.get(dut.i_query.valid) and ctx.get(dut.i_query.ready)
            if ctx.get(dut.i_load.valid) and ctx.get(dut.i_load.ready) and not rst:
                pending.pop()
            r_xfer = valid and ctx.get(dut.o_result.ready)
            ctx.set(reset, rst)
            await ctx.tick()
            ctx.set(reset, 0)
            cycles += 1
            if rst:
                outstanding, since = 0, 0
                continue
            if r_xfer:
                outstanding, since = 0, 0
                done += 1
                if rng.random() < 0.25:
                    pending = _random_network(rng, params)
            if q_xfer:
                outstanding, since = 1, 0
            elif outstanding and not valid:
                since = min(since + 1, lcap)

    top = Module()
    top.submodules.dut = frag
    top.domains.sync = sync = ClockDomain()
    top.d.comb += sync.rst.eq(reset)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    table = [{i: v for i, v in row.items() if v is not None} for row in seen]
    return Invariants(names, table, cycles)


def vcd_last_values(path):
    """``{"scope/.../name": value}`` at the last time step of a VCD written by SymbiYosys (the
    top scope left out; x read as 0)."""
    scope, ids, vals = [], {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            t = line.split()
            if not t:
                continue
            if t[0] == "$scope":
                scope.append(t[2])
            elif t[0] == "$upscope":
                scope.pop()
            elif t[0] == "$var":
                ids.setdefault(t[3], []).append("/".join([*scope[1:], t[4]]))
            elif t[0].startswith("b") and len(t) == 2:
                for name in ids.get(t[1], ()):
                    vals[name] = int(t[0][1:].replace("x", "0").replace("z", "0"), 2)
            elif t[0][0] in "01xz" and len(t) == 1 and len(t[0]) > 1:
                for name in ids.get(t[0][1:], ()):
                    vals[name] = int(t[0][0] in "1")
    return vals


def contradicted(params, invariants, vcd):
    """``(phase, [index])``: the registers whose mined invariant the last cycle of
    counterexample ``vcd`` breaks, and in which phase."""
    v = vcd_last_values(vcd)
    phase = phase_of(params, v.get("outstanding", 0), v.get("since", 0),
                     v.get("dut/o_result__valid", 0))
    row = invariants.table[phase] if phase < len(invariants.table) else {}
    return phase, [i for i, want in row.items()
                   if v.get("dut/" + invariants.names[i], want) != want]


def refine(params, invariants, workdir, *, depth, rounds=60):
    """Remove the candidates the prover refutes until the harness with the invariants alone is
    k-inductive (``depth``); returns ``(invariants, status)`` (``PASS`` when it closed)."""
    from .accelerator import AcceleratorHarness
    from .sby import run_sby

    status = "ERROR"
    for n in range(rounds):
        harness = AcceleratorHarness(params, invariants=invariants)
        out = run_sby(harness, harness.ports, Path(workdir) / f"refine{n}", mode="prove",
                      depth=depth)
        status = out.status
        if status == "PASS" or out.trace is None:
            break
        phase, bad = contradicted(params, invariants, out.trace)
        if not bad:         # a harness invariant failed: nothing to refine
            break
        invariants = invariants.without(phase, bad)
    return invariants, status
