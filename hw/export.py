"""Verilog export of the accelerator and its JSON description (a machine-readable datasheet).

``khop_top.json`` holds, besides the parameters, memories and cycle model, what a driver or a
reference-model writer needs without reading the code (docs/datasheet.md): ``ports``,
``payloads`` (every field with its bit position, range and meaning, and every load word),
``arithmetic`` (the integer model's quantizers, rounding and clamps), ``latency``, ``reset``,
``priority`` and ``simulators``. Field positions come from :mod:`khop.hw.layout`, figures from
:class:`~khop.hw.params.AccelParams`, so the description cannot drift from the design.
"""

import time
from pathlib import Path

from amaranth.back import verilog

from khop.outputs import to_json, write_files

from .accelerator import RetrievalAccelerator
from .layout import LoadTarget, field_slices, load_layout, result_layout
from .params import STEP_CYCLE_TERMS, AccelParams, step_cycle_formula

__all__ = ["TOP_NAME", "SIMULATOR_FLAGS", "generate_verilog", "describe", "export"]

TOP_NAME = "khop_top"


def generate_verilog(params: AccelParams, network=None, name=TOP_NAME, *, fault=None):
    """Verilog text of :class:`RetrievalAccelerator` as module ``name``."""
    top = RetrievalAccelerator(params, network, fault=fault)
    return verilog.convert(top, name=name, emit_src=False)


def _layout_fields(layout):
    return [{"name": name, "offset": offset, "width": width}
            for name, (offset, width) in field_slices(layout).items()]


def _fields(layout, meanings):
    """Every field of ``layout`` with its position and ``meanings[name] = (range, meaning)``."""
    slices = field_slices(layout)
    assert set(slices) == set(meanings), (sorted(slices), sorted(meanings))
    return [{"name": name, "lsb": lsb, "width": width, "range": meanings[name][0],
             "meaning": meanings[name][1]} for name, (lsb, width) in slices.items()]


def _ports(params):
    load, result = load_layout(params), result_layout(params)
    stream = {
        "i_query": ("in", params.n, "a query: the initial state (see payloads.i_query)"),
        "o_result": ("out", result.size, ("a result: final state, steps, converged "
                                         "(see payloads.o_result)")),
        "i_load": ("in", load.size, "one memory or threshold write (see payloads.i_load)"),
    }
    ports = [
        {"name": "clk", "direction": "in", "width": 1,
         "meaning": "clock; everything happens on its rising edge"},
        {"name": "rst", "direction": "in", "width": 1,
         "meaning": "synchronous reset, active high (see reset)"},
    ]
    for name, (direction, width, what) in stream.items():
        back = "out" if direction == "in" else "in"
        ports += [
            {"name": f"{name}__valid", "direction": direction, "width": 1,
             "meaning": f"the payload holds {what}"},
            {"name": f"{name}__ready", "direction": back, "width": 1,
             "meaning": "the sink takes the payload: a transfer happens at a rising edge at "
                        "which valid and ready are both high"},
            {"name": f"{name}__payload", "direction": direction, "width": width,
             "meaning": what},
        ]
    return ports


def _memory_word(depth, width, meaning):
    """A load target whose words are ``width``-bit unsigned at addresses ``0..depth-1``."""
    return {"addr": [0, depth - 1], "data_bits": width, "data": [0, 2 ** width - 1],
            "meaning": meaning}


def _load_words(params):
    """What the ``addr`` and ``data`` of an ``i_load`` write mean, per target."""
    lut_max = 2 ** params.kernel_frac_bits
    k = params.weight_bits
    words = {
        LoadTarget.PATTERN: _memory_word(
            params.pattern_depth, params.pattern_width,
            "word mu * chunks + c holds bits c*W .. c*W+W-1 of stored pattern mu "
            f"(W = popcount_width = {params.popcount_width}, chunks = {params.chunks}) in data "
            "bits 0..W-1, bit value 1 meaning +1; bits of neurons past n must be 0 (they would "
            "count in the Hamming distance)"),
        LoadTarget.WEIGHT: _memory_word(
            params.weight_depth, params.weight_width,
            "word mu * blocks + b holds the weight codes of neurons b*L .. b*L+L-1 of "
            f"pattern mu (L = lanes = {params.lanes}, blocks = {params.blocks}), lane l in "
            f"data bits l*k .. l*k+k-1 (k = weight_bits = {k}); lanes of neurons past n are "
            "ignored (write 0)"),
        LoadTarget.LUT: {
            **_memory_word(params.lut_depth, params.kernel_bits,
                           "kernel value LUT[d] for Hamming distance d = addr; must not exceed "
                           f"2^(kernel_bits-1) = {lut_max} (the kernel value 1) although the "
                           "port takes wider values: the register widths assume it "
                           "(arithmetic.kernel_lut)"),
            "data": [0, lut_max],
        },
        LoadTarget.THRESHOLD: {**_memory_word(
            params.threshold_depth, params.threshold_width,
            "word b * G + g (G = threshold_groups = "
            f"{params.threshold_groups}) holds the thresholds r_fx (arithmetic.threshold) of "
            f"the lanes g*U .. g*U+U-1 (U = threshold_units = {params.threshold_units}) of "
            f"block b, that is of neurons b*L + g*U + u (L = lanes = {params.lanes}), unit u "
            f"in data bits u*{params.threshold_bits} .. (threshold_bits, two's complement); "
            "units past the lanes or past n are ignored (write 0)"),
            "values": [-(2 ** params.threshold_frac_bits), 2 ** (k + params.threshold_frac_bits)]},
    }
    return {t.name: {"target": t.value, **words[t]} for t in LoadTarget}


def _payloads(params):
    n = params.n
    state = "bit i = neuron i, 1 means +1"
    return {
        "i_query": [{"name": "state", "lsb": 0, "width": n, "range": [0, 2 ** n - 1],
                     "meaning": f"the initial state, {state}"}],
        "o_result": _fields(result_layout(params), {
            "state": ([0, 2 ** n - 1], f"the final state, {state}"),
            "steps": ([1, params.max_steps],
                      "updates computed, the last included (arithmetic.dynamics)"),
            "converged": ([0, 1], ("1 if the last update changed no bit, 0 if the step limit "
                                  "ended the retrieval")),
        }),
        "i_load": _fields(load_layout(params), {
            "target": ([0, len(LoadTarget) - 1], "the memory written: "
                       + ", ".join(f"{t.value} {t.name}" for t in LoadTarget)),
            "addr": ("per target: load_words.*.addr", ("word address within the target; "
                     "addresses past the target's last word must not be written")),
            "data": ("per target: load_words.*.data", ("the word, in its low data_bits bits "
                     "(load_words.*.data_bits); higher bits are ignored")),
        }),
        "load_words": _load_words(params),
        "load_order": "any order; a network is complete once every pattern, weight and LUT "
                      "word and the threshold have been written. The memories start with the "
                      "network given at generation (all zero without one)",
    }


#: The integer model (:mod:`khop.model.fixed`, :mod:`khop.model.compress`) in words.
ARITHMETIC = {
    "notation": "n neurons, p stored patterns, k = weight_bits, F = kernel_bits - 1, "
                "R = threshold_frac_bits; rint = round half to even (NumPy)",
    "weights_k_ge_2": "uniform min-max quantizer over the whole (p, n) matrix alpha: "
                      "Delta = (max - min) / (2^k - 1), code = rint((alpha - min) / Delta) "
                      "clipped to 0..2^k-1, r = -min / Delta (all weights equal: Delta = 1, "
                      "codes 0)",
    "weights_k_1": "code = 1 where alpha > c, else 0, with c the median of alpha (center "
                   "\"median\", the default) or its mean (center \"mean\"); r = 1/2",
    "kernel_lut": "LUT[d] = rint(2^F * exp(-4 * gamma * d)) for d = 0..n: LUT[0] = 2^F, "
                  "entries decay to 0 at large distances",
    "threshold": "one threshold per neuron: r_fx[i] = rint(r_i * 2^R) clamped to "
                 "[-2^R, 2^(k+R)], stored in threshold_bits = k + R + 2 bits two's complement; "
                 "r_i = -offset_i / scale of neuron i's quantizer (the network's quantizer); "
                 "the clamp changes no decision",
    "distance": "d_mu = popcount(s XOR xi_mu) over the n state bits, K_mu = LUT[d_mu]",
    "sums": "T_i = sum_mu code[mu, i] * K_mu, S_K = sum_mu K_mu, exact (no overflow)",
    "sign_rule": "every neuron at once: s_i <- 1 if T_i * 2^R > r_fx[i] * S_K, 0 if less, "
                 "unchanged on a tie",
    "dynamics": "repeat the update from the query state; steps counts updates, the last "
                "included; stop with converged = 1 after an update that changed no bit, or "
                "with converged = 0 after max_steps updates that all changed a bit",
}

#: What a synchronous reset does (RetrievalAccelerator; tests/hw/test_accelerator.py shows it).
RESET = {
    "kind": "synchronous, active high on rst: acts at the rising edges at which rst is high",
    "running_query": "dropped: the controller returns to idle and no result is produced",
    "waiting_result": "dropped: o_result__valid goes low and the result is lost",
    "memories": "kept: pattern, weight and LUT memories and the threshold keep their contents "
                "(no reload needed after a reset)",
    "during_reset": "the core is held idle, so i_query__ready and i_load__ready read 1: a "
                    "query transferred while rst is high is lost, a load word transferred then "
                    "is written; keep i_query__valid and i_load__valid low while rst is high",
    "power_up": "every register starts at its reset value (Verilog initializers) and the "
                "memories with the network given at generation: no first reset is needed where "
                "the FPGA loads initial values",
}

#: Loads against queries (RetrievalAccelerator's load port and the controller's IDLE state).
PRIORITY = {
    "load_vs_query": "on the same edge a load wins: i_query__ready is low while "
                     "i_load__valid is high, so a waiting query is taken only after the loads",
    "loads_during_query": "not accepted: i_load__ready is high only while no query runs, from "
                          "the transfer of a query until its result has been transferred",
    "load_visibility": "a word written at edge E is seen by a query transferred at edge E + 1 "
                       "or later",
    "queries_in_flight": 1,
}

#: Simulator flags the generated Verilog needs, per simulator (the cosimulation runner passes
#: them; a user's own testbench needs the same).
SIMULATOR_FLAGS = {
    # Yosys-generated Verilog always raises these (width-extending operators, incomplete casez
    # of FSM encodings, descending ranges), and Verilator's warnings are fatal by default.
    "verilator": ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE", "-Wno-ASCRANGE"),
    # Yosys starts every always @* block through a reg initializer: an event in Verilog-2005,
    # not in SystemVerilog, where the outputs stay X until a register moves.
    "icarus": ("-g2005",),
}

SIMULATORS = {
    "verilator": {
        "flags": list(SIMULATOR_FLAGS["verilator"]),
        "why": "the generated Verilog raises these warnings (width-extending operators, "
               "incomplete casez of FSM encodings, descending ranges), fatal by default; every "
               "other warning stays on (-Wno-fatal also works)",
    },
    "icarus": {
        "flags": list(SIMULATOR_FLAGS["icarus"]),
        "why": "with -g2012 (cocotb's default) o_result__valid reads X until the first query: "
               "the always @* blocks start through reg initializers, an event in Verilog-2005 "
               "but not in SystemVerilog",
    },
}


def _latency(params):
    return {
        "cycles_per_query": "join_cycles + steps * cycles_per_step for a query that finds the "
                            "accelerator idle (join_cycles = batch - 1)",
        "join_cycles": params.join_cycles,
        "rejoin_cycles": params.rejoin_cycles,
        "convention": "count rising clock edges from the edge that transfers the query (edge "
                      "0): for a query that finds the accelerator idle, o_result__valid goes "
                      "high just after edge L = join_cycles + steps * cycles_per_step, so the "
                      "earliest result transfer is at edge L + 1. A cocotb testbench that "
                      "subtracts the time of the query's transfer edge from the time of the "
                      "first ReadOnly phase with o_result__valid high measures L periods. With "
                      "queries in flight (batch > 1) a query joins the next step and results "
                      "leave in query order: khop.hw.timing gives every edge",
        "back_to_back": "with one slot (batch 1) and i_query__valid and o_result__ready held "
                        "high, consecutive query transfers are steps * cycles_per_step + 2 "
                        "edges apart (the result transfers at + 1, the next query at + 2); with "
                        "more, a query enters its slot one edge after that slot's previous "
                        "result is taken (khop.hw.timing.back_to_back)",
        "diagram": [
            "edge      0      1  ..  L      L+1      L+2",
            "i_query   xfer                          xfer (next)",
            "o_result  -      -  ..  valid->  xfer",
            "L = join_cycles + steps * cycles_per_step (query found the accelerator idle)",
        ],
        "cycles_per_step": params.cycles_per_step,
        "max_cycles_per_query": params.cycles_per_query(params.max_steps),
    }


def describe(params: AccelParams, network_info=None):
    """A JSON-able description: parameters, ports, payload layouts, memories, cycle model and
    the datasheet facts (arithmetic, latency, reset, priority, simulators)."""
    load = load_layout(params)
    result = result_layout(params)
    bits = params.memory_bits
    return {
        "top": TOP_NAME,
        "parameters": params.as_dict(),
        "network": network_info or {},
        "ports": _ports(params),
        "layouts": {
            "o_result__payload": _layout_fields(result),
            "i_load__payload": _layout_fields(load),
            "load_targets": {t.name: t.value for t in LoadTarget},
        },
        "payloads": _payloads(params),
        "arithmetic": ARITHMETIC,
        "latency": _latency(params),
        "reset": RESET,
        "priority": PRIORITY,
        "simulators": SIMULATORS,
        "memories": {
            "pattern": {"depth": params.pattern_depth, "width": params.pattern_width,
                        "bits": bits["pattern"],
                        "word": "mu * chunks + c holds pattern bits c*W .. c*W+W-1"},
            "weight": {"depth": params.weight_depth, "width": params.weight_width,
                       "bits": bits["weight"],
                       "word": "mu * blocks + b holds codes of neurons b*L .. b*L+L-1, "
                               "lane l at bits l*k .. l*k+k-1"},
            "lut": {"depth": params.lut_depth, "width": params.kernel_bits,
                    "bits": bits["lut"], "word": "d holds round(2^(kernel_bits-1) "
                                                 "* exp(-4 gamma d))"},
            "threshold": {"depth": params.threshold_depth, "width": params.threshold_width,
                          "bits": bits["threshold"],
                          "word": "b * threshold_groups + g holds r_fx of neurons "
                                  "b*L + g*U + u, unit u at bits u*threshold_bits .. "
                                  "(U = threshold_units)"},
            "kernel_buffer": (None if params.kernel_buffer_shape is None else
                              {"depth": params.kernel_buffer_shape[0],
                               "width": params.kernel_buffer_shape[1],
                               "word": "mu holds K_mu of each query of the batch, query j at "
                                       "bits j*kernel_bits ..; written in block 0, read by "
                                       "the later blocks; not loadable"}),
            "accumulator_flipflops": params.accumulator_bits,
        },
        "widths": {"accumulator": params.acc_bits, "kernel_sum": params.sum_bits,
                   "threshold": params.threshold_bits,
                   "threshold_units": params.threshold_units,
                   "threshold_groups": params.threshold_groups,
                   "compare": params.compare_bits,
                   "distance": params.distance_bits},
        "cycle_model": {
            "loop_order": "block-outer",
            "blocks": params.blocks,
            "chunks": params.chunks,
            "batch": params.batch,
            "cycles_per_step": params.cycles_per_step,
            "bound_cycles_per_step": params.bound_cycles_per_step,
            "bound_cycles_per_query_step": params.bound_cycles_per_query_step,
            "ratio_to_bound": params.cycles_per_step / params.bound_cycles_per_step,
            "formula": step_cycle_formula(),
            "terms": [{"what": what, "cycles": expr} for what, expr in STEP_CYCLE_TERMS],
            "cycles_per_query": "steps * cycles_per_step when the accelerator is idle; with "
                                "queries in flight, khop.hw.timing (see latency)",
        },
    }


def export(params: AccelParams, network, out_dir, network_info=None, *, fault=None):
    """Write ``khop_top.v`` and ``khop_top.json`` into ``out_dir``; returns their paths.

    The two files appear together or not at all (:func:`khop.outputs.write_files`).
    """
    out = Path(out_dir)
    t0 = time.perf_counter()
    text = generate_verilog(params, network, fault=fault)
    info = describe(params, network_info)
    info["generation_seconds"] = round(time.perf_counter() - t0, 3)
    v_path, j_path = write_files({out / f"{TOP_NAME}.v": text,
                                  out / f"{TOP_NAME}.json": to_json(info, indent=2) + "\n"})
    return v_path, j_path
