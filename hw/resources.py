"""Resource and performance model of the accelerator on an FPGA, before any synthesis.

What is modelled is the design ``khop sweep`` synthesises and ``khop build`` puts on a board:
the accelerator behind the UART frame bridge (:class:`boards.core.BoardCore`), memories empty
(the network is loaded at run time). On a device with SPRAM (the UP5K) the weights go to SPRAM,
as on the iCEBreaker; everywhere else every memory is inferred by Yosys.

- **Memory blocks are exact**: :func:`map_memory` repeats the choice Yosys' ``memory_libmap``
  makes for each memory shape (the cost of every block mode of the family's RAM library,
  including the soft logic it adds, against soft logic or distributed RAM), so the block RAM,
  SPRAM and distributed-RAM counts equal what ``synth_ice40``/``synth_ecp5`` infer.
- **LUTs, carries and flip-flops** come from a linear model of a few physical terms of the
  parameters (:func:`model_terms`) whose coefficients are fitted per FPGA family against Yosys
  runs (:mod:`boards.calibrate`) and stored with the tool versions and per-figure tolerances in
  ``hw/calibration.json``.
- **Cycles** come from :attr:`hw.params.AccelParams.cycles_per_step`; retrievals per second at a
  clock assume a mean number of steps per query.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from .params import AccelParams, ceil_div

__all__ = ["Device", "DEVICES", "LINK_MEMORIES", "synth_luts", "device_names", "get_device",
           "narrow_popcount_width", "device_params", "MemoryMap", "map_memory", "memory_maps",
           "model_terms", "CALIBRATION_PATH", "load_calibration", "estimate", "format_estimate",
           "SPRAM_DEPTH", "SPRAM_WIDTH"]

#: Geometry of an iCE40 UltraPlus SPRAM block (SB_SPRAM256KA).
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16

CALIBRATION_PATH = Path(__file__).with_name("calibration.json")


@dataclass(frozen=True)
class Device:
    """An FPGA: its logic, memories and how nextpnr names it.

    ``luts`` are LUT4s (on the iCE40 a logic cell is one LUT4, one carry and one flip-flop),
    ``bram`` block RAMs (``bram_cell``), ``spram`` SPRAM blocks. ``clock_mhz`` is the default
    clock of the retrieval-rate figure (the board defaults of :mod:`boards.top`, below the
    measured Fmax). ``kernel_bits`` is the default lookup-table width (as the boards use).
    """

    name: str
    part: str
    family: str
    luts: int
    ffs: int
    bram: int
    spram: int
    nextpnr: tuple
    clock_mhz: float
    kernel_bits: int

    @property
    def bram_cell(self):
        return "SB_RAM40_4K" if self.family == "ice40" else "DP16KD"

    @property
    def weights_in_spram(self):
        return self.spram > 0

    def as_dict(self):
        return {"name": self.name, "part": self.part, "family": self.family,
                "luts": self.luts, "ffs": self.ffs, "bram": self.bram, "spram": self.spram,
                "bram_cell": self.bram_cell, "nextpnr": list(self.nextpnr),
                "clock_mhz": self.clock_mhz, "kernel_bits": self.kernel_bits}


DEVICES = {d.name: d for d in (
    Device("up5k", "iCE40UP5K", "ice40", 5280, 5280, 30, 4,
           ("--up5k", "--package", "sg48"), 30.0, 12),
    Device("hx8k", "iCE40HX8K", "ice40", 7680, 7680, 32, 0,
           ("--hx8k", "--package", "ct256"), 30.0, 12),
    Device("ecp5-25f", "LFE5U-25F", "ecp5", 24288, 24288, 56, 0,
           ("--25k", "--package", "CABGA381"), 75.0, 16),
    Device("ecp5-85f", "LFE5U-85F", "ecp5", 83640, 83640, 208, 0,
           ("--85k", "--package", "CABGA381"), 75.0, 16),
)}


def device_names():
    return tuple(DEVICES)


def get_device(name):
    """The :class:`Device` called ``name``; ``ValueError`` listing the allowed names otherwise."""
    if isinstance(name, Device):
        return name
    try:
        return DEVICES[name]
    except KeyError:
        raise ValueError(f"unknown device {name!r}; choose one of "
                         f"{', '.join(DEVICES)}") from None


def narrow_popcount_width(n, lanes):
    """The narrowest popcount that costs no cycles: ``ceil(n / ceil(n / lanes))`` bits (the
    distance unit then takes as many cycles per pattern as the MAC array; as the boards)."""
    return ceil_div(n, ceil_div(n, lanes))


def device_params(device, n, p, *, bits=2, lanes=16, popcount_width=None, kernel_bits=None,
                  max_steps=30):
    """:class:`AccelParams` as khop puts them on ``device``: the narrow popcount and the device's
    lookup-table width unless given."""
    dev = get_device(device)
    if popcount_width is None and isinstance(lanes, int) and isinstance(n, int) \
            and 1 <= lanes <= n:
        popcount_width = narrow_popcount_width(n, lanes)
    return AccelParams(n=n, p=p, weight_bits=bits, lanes=lanes, popcount_width=popcount_width,
                       kernel_bits=dev.kernel_bits if kernel_bits is None else kernel_bits,
                       max_steps=max_steps)


# Memory mapping -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _RamType:
    """One RAM of a Yosys memory library (``share/ice40/brams.txt``, ``share/lattice/
    brams_16kd.txt``, ``lutrams_trellis.txt``) as ``memory_libmap`` sees it for a memory with
    one synchronous read port and one write port of uniform write enable (ours)."""

    cell: str        # the netlist cell it becomes
    kind: str        # "bram" or "lutram"
    abits: int
    dbits: tuple     # data widths per address-bit split
    cost: int
    byte: int        # byte width of the write enables (0: none)
    wr: tuple        # (min, max) index into dbits of the write port
    emu: int         # emulation score of our ports (read-first and transparency emulation)


# memory_libmap's cost factors (passes/memory/memory_libmap.cc) and its default cost of a bit
# in soft logic for a RAM.
_FACTOR_MUX, _FACTOR_DEMUX, _FACTOR_EMU, _LOGIC_COST_RAM = 0.5, 0.5, 2, 1.0

_RAM_LIBRARY = {
    "ice40": (
        _RamType("SB_RAM40_4K", "bram", 11, (2, 4, 8, 16), 64, 0, (0, 2), 7),   # HAS_BE 0
        _RamType("SB_RAM40_4K", "bram", 11, (2, 4, 8, 16), 64, 1, (3, 3), 7),   # HAS_BE 1
    ),
    "ecp5": (
        _RamType("TRELLIS_DPR16X4", "lutram", 4, (4,), 4, 0, (0, 0), 1),
        _RamType("DP16KD", "bram", 14, (1, 2, 4, 9, 18), 128, 9, (0, 4), 7),
        _RamType("DP16KD", "bram", 14, (1, 2, 4, 9, 18, 36), 128, 9, (5, 5), 7),  # PDPW16KD
    ),
}


@dataclass(frozen=True)
class MemoryMap:
    """Where one memory goes: ``kind`` is "bram", "lutram", "spram" or "logic" (flip-flops and
    LUTs); ``cells`` of ``cell``; ``banks`` address ranges multiplexed at the read port."""

    name: str
    depth: int
    width: int
    kind: str
    cell: str
    cells: int
    banks: int = 1

    @property
    def bits(self):
        return self.depth * self.width

    @property
    def addr_bits(self):
        return max(1, (self.depth - 1).bit_length())

    def describe(self):
        where = "logic" if self.kind == "logic" else f"{self.cells} {self.cell}"
        return f"{where} ({self.depth} x {self.width})"


def _geometry(ram, depth, width):
    """``(cost, cells, banks)`` of the cheapest base width of ``ram`` (memory_libmap's
    handle_geom for non-wide ports with a uniform write enable)."""
    byte_log2 = len(ram.dbits) - 1
    if ram.byte:
        byte_log2 = max([i for i, d in enumerate(ram.dbits) if ram.byte >= d], default=0)
    best = None
    for base in range(len(ram.dbits)):
        unit = min(base, ram.wr[1])
        if unit != base and best is not None:
            break
        if base < ram.wr[0] and base < byte_log2:
            continue
        unit_width = ram.dbits[unit]
        byte = ram.byte if 0 < ram.byte <= unit_width else unit_width
        swizzle = ceil_div(width, byte) * byte
        banks = (depth - 1) // 2 ** (ram.abits - base) + 1
        cells = ceil_div(banks * swizzle, unit_width)
        demux = banks if banks != 1 else 0
        cost = (ram.cost * cells + _FACTOR_MUX * (banks - 1) * width + _FACTOR_DEMUX * demux
                + _FACTOR_EMU * ram.emu)
        if best is None or cost < best[0]:
            best = (cost, cells, banks)
    return best


def map_memory(depth, width, family, name="memory"):
    """The :class:`MemoryMap` Yosys chooses for a ``depth`` x ``width`` memory with one
    synchronous read port and one write port on ``family`` ("ice40" or "ecp5")."""
    best, chosen = int(width * depth * _LOGIC_COST_RAM), None
    for ram in _RAM_LIBRARY[family]:
        cost, cells, banks = _geometry(ram, depth, width)
        if cost < best:
            best, chosen = cost, (ram, cells, banks)
    if chosen is None:
        return MemoryMap(name, depth, width, "logic", "", 0)
    ram, cells, banks = chosen
    return MemoryMap(name, depth, width, ram.kind, ram.cell, cells, banks)


def _spram_map(depth, width, name):
    cols, banks = ceil_div(width, SPRAM_WIDTH), ceil_div(depth, SPRAM_DEPTH)
    return MemoryMap(name, depth, width, "spram", "SB_SPRAM256KA", cols * banks, banks)


#: Memories of the UART link around the accelerator (:class:`boards.bridge.Bridge`): none (its
#: reply path is a register slice and the encoder's holding register).
LINK_MEMORIES = {}


def memory_maps(params: AccelParams, device):
    """The :class:`MemoryMap` of the pattern memory, the weight memory, the lookup table and the
    link's memories (:data:`LINK_MEMORIES`)."""
    dev = get_device(device)
    shapes = {"pattern": (params.pattern_depth, params.pattern_width),
              "weight": (params.weight_depth, params.weight_width),
              "lut": (params.lut_depth, params.kernel_bits)}
    maps = {}
    for name, (depth, width) in shapes.items():
        if name == "weight" and dev.weights_in_spram:
            maps[name] = _spram_map(depth, width, name)
        else:
            maps[name] = map_memory(depth, width, dev.family, name)
    for name, (depth, width) in LINK_MEMORIES.items():
        maps[name] = map_memory(depth, width, dev.family, name)
    return maps


# Logic model --------------------------------------------------------------------------------

def _link_buffer_bits(params: AccelParams):
    """Bits of the frame parser's shift register: the longest request payload and the CRC."""
    load_bits = 2 + params.load_addr_bits + params.load_data_bits
    return 8 * (max(1, ceil_div(params.n, 8), ceil_div(load_bits, 8)) + 2)


def model_terms(params: AccelParams, device):
    """The physical terms of the LUT/carry model and of the flip-flop model.

    LUT and carry terms: ``const``; ``acc`` lanes x accumulator width (the per-lane
    accumulate adders and the two threshold compares of each lane, as wide as ``T``); ``mac``
    lanes x weight bits x kernel bits (the shift-and-add products); ``lanes`` (per-lane
    control: tie rule, state bit, product gating); ``pop`` the popcount width (XOR/popcount
    tree); ``state`` n (state, query and result multiplexers of the accelerator and the link);
    ``mem`` the width of each inferred memory times its banks (Yosys' read-first emulation and
    bank multiplexers; a memory left in logic counts its bits); ``macbank`` the products again
    for each extra bank of the weight memory (the bank multiplexer feeds every product bit).

    Flip-flop terms: ``const``; ``ring`` the accumulator ring; ``pipe`` the per-lane pipeline
    registers (the products ``q * K``, the two compare flags); ``regs`` the other registers whose
    width depends on the parameters (state, threshold multiplier and its quotients, S_K, kernel
    and distance pipeline, addresses and counters, the link's frame buffer); ``mem`` the
    registers of Yosys' read-first emulation of each inferred memory (2 x width + address + 2).
    """
    prm = params
    maps = memory_maps(prm, device)
    inferred = [mm for mm in maps.values() if mm.kind in ("bram", "lutram")]
    logic = [mm for mm in maps.values() if mm.kind == "logic"]
    luts = {
        "const": 1.0,
        "acc": prm.lanes * prm.acc_bits,
        "mac": prm.lanes * prm.weight_bits * prm.kernel_bits,
        "lanes": prm.lanes,
        "pop": prm.popcount_width,
        "state": prm.n,
        "mem": sum(mm.width * mm.banks for mm in inferred) + sum(mm.bits for mm in logic),
        "macbank": (prm.lanes * prm.weight_bits * prm.kernel_bits
                    * (maps["weight"].banks - 1 if maps["weight"].kind != "spram" else 0)),
    }
    addr = (max(1, (prm.pattern_depth - 1).bit_length())
            + max(1, (prm.weight_depth - 1).bit_length()))
    quotient = max(prm.product_bits - prm.threshold_frac_bits + 1, prm.acc_bits + 1)
    regs = (prm.blocks * prm.lanes                        # state register
            + prm.product_bits + 2 * prm.threshold_bits   # theta, r_shift, the threshold
            + 2 * quotient                                # floor and ceil of theta / 2^R
            + prm.sum_bits + 2 * prm.kernel_bits          # S_K, k_cur, k1
            + prm.popcount_width + 2 * prm.distance_bits  # XOR word, popcount, distance sum
            + prm.p.bit_length() + 2 * addr               # accepted, memory addresses
            + _link_buffer_bits(prm))
    ffs = {
        "const": 1.0,
        "ring": prm.accumulator_bits,
        "pipe": prm.lanes * (prm.kernel_bits + prm.weight_bits + 2),
        "regs": regs,
        "mem": (sum(2 * mm.width + mm.addr_bits + 2 for mm in inferred)
                + sum(mm.bits for mm in logic)),
    }
    return {"luts": luts, "carries": luts, "ffs": ffs}


def synth_luts(synth, family):
    """The LUTs of a synthesis result as the model counts them: the device's LUT4 sites, that
    is LUT4 cells plus, on the ECP5, the two LUT4s of each CCU2C carry cell (on the iCE40 a
    carry shares its logic cell with a LUT4)."""
    return synth["luts"] + (2 * synth["carries"] if family == "ecp5" else 0)


# Calibration --------------------------------------------------------------------------------

def load_calibration(path=None):
    """The calibration document (``hw/calibration.json`` unless ``path``)."""
    path = CALIBRATION_PATH if path is None else Path(path)
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"no calibration file {path} (make one with "
                         f"'python -m boards.calibrate RESULTS.json')") from None


def _predict(coefficients, terms):
    return sum(coefficients.get(name, 0.0) * value for name, value in terms.items())


# The estimate -------------------------------------------------------------------------------

def estimate(params: AccelParams, device, *, clock_mhz=None, steps=2.0, calibration=None):
    """Resources, cycles and throughput of ``params`` on ``device``, and whether it fits.

    Returns a JSON-ready dict: ``memories`` (where each memory goes), ``bram``, ``spram``,
    ``lutram`` (exact), ``luts`` (LUT4 sites, :func:`synth_luts`), ``carries``, ``ffs``
    (calibrated model), ``logic`` (the device's logic figure: iCE40 logic cells, ECP5 LUT4s
    with the four of each 16x4 distributed RAM) with ``logic_available``, ``cycles_per_step``,
    ``retrievals_per_s`` at ``clock_mhz`` (default: the device's) with ``steps`` steps per query,
    ``fits`` and ``short`` (one message per resource that does not fit, with by how much).
    """
    dev = get_device(device)
    if not isinstance(params, AccelParams):
        raise TypeError(f"params must be an AccelParams, not {params!r}")
    if not steps > 0:
        raise ValueError(f"steps must be positive, not {steps!r}")
    clock = dev.clock_mhz if clock_mhz is None else float(clock_mhz)
    if not clock > 0:
        raise ValueError(f"the clock must be positive, not {clock_mhz!r} MHz")
    cal = load_calibration() if calibration is None else calibration
    try:
        fam = cal["families"][dev.family]
    except KeyError:
        raise ValueError(f"the calibration has no model of the {dev.family} family") from None

    maps = memory_maps(params, dev)
    count = {kind: sum(mm.cells for mm in maps.values() if mm.kind == kind)
             for kind in ("bram", "spram", "lutram")}
    terms = model_terms(params, dev)
    figures = {key: max(0, round(_predict(fam["models"][key]["coefficients"], terms[key])))
               for key in ("luts", "carries", "ffs")}
    if dev.family == "ice40":
        # A logic cell holds one LUT4, one carry and one flip-flop; nextpnr packs a fraction of
        # the flip-flops with a LUT (fitted from place-and-route runs; 0 without them).
        packed = fam.get("packing", 0.0) * min(figures["luts"], figures["ffs"])
        logic = round(figures["luts"] + figures["ffs"] - packed)
        logic_name = "logic cells"
    else:
        logic = figures["luts"] + 4 * count["lutram"]
        logic_name = "LUT4s"
    short = []

    def check(what, needed, available):
        if needed > available:
            short.append(f"{what}: {needed} needed, {available} available "
                         f"({needed - available} short)")

    check(f"block RAM ({dev.bram_cell})", count["bram"], dev.bram)
    check("SPRAM", count["spram"], dev.spram)
    check(logic_name, logic, dev.luts)
    check("flip-flops", figures["ffs"], dev.ffs)
    cycles = params.cycles_per_step
    return {
        "device": dev.name, "part": dev.part, "family": dev.family,
        "params": params.as_dict(),
        "memories": {name: {"depth": mm.depth, "width": mm.width, "kind": mm.kind,
                            "cell": mm.cell, "cells": mm.cells, "where": mm.describe()}
                     for name, mm in maps.items()},
        "bram": count["bram"], "bram_available": dev.bram,
        "spram": count["spram"], "spram_available": dev.spram,
        "lutram": count["lutram"],
        **figures,
        "logic": logic, "logic_name": logic_name, "logic_available": dev.luts,
        "ffs_available": dev.ffs,
        "cycles_per_step": cycles,
        "bound_cycles_per_step": params.bound_cycles_per_step,
        "steps": steps, "clock_mhz": clock,
        "retrievals_per_s": clock * 1e6 / (steps * cycles),
        "fits": not short, "short": short,
        "calibration": {"yosys": cal.get("tools", {}).get("yosys"),
                        "tolerance": fam.get("tolerance", {})},
    }


def _pct(used, available):
    return f"{100 * used / available:.0f} %" if available else "--"


def format_estimate(est):
    """Text of an :func:`estimate`."""
    p = est["params"]
    tol = est["calibration"]["tolerance"]

    def tol_text(key):
        return f" (model, +-{100 * tol[key]:.0f} %)" if key in tol else " (model)"

    lines = [(f"{est['device']} ({est['part']}): N={p['n']} P={p['p']} {p['weight_bits']}-bit, "
              f"{p['lanes']} lanes, popcount width {p['popcount_width']}, kernel_bits "
              f"{p['kernel_bits']}")]
    labels = {"pattern": "patterns", "weight": "weights", "lut": "lookup table",
              "reply_fifo": "reply FIFO"}
    for name, mm in est["memories"].items():
        lines.append(f"  {labels.get(name, name):16s} {mm['where']}")
    lines.append(f"  block RAM        {est['bram']}/{est['bram_available']} "
                 f"({_pct(est['bram'], est['bram_available'])}, exact)")
    if est["spram_available"] or est["spram"]:
        lines.append(f"  SPRAM            {est['spram']}/{est['spram_available']} (exact)")
    if est["lutram"]:
        lines.append(f"  distributed RAM  {est['lutram']} TRELLIS_DPR16X4 (exact)")
    lut4 = "LUT4 (+2/CCU2C)" if est["family"] == "ecp5" else "LUT4"
    lines.append(f"  {lut4:16s} {est['luts']}{tol_text('luts')}")
    lines.append(f"  carries          {est['carries']}{tol_text('carries')}")
    lines.append(f"  flip-flops       {est['ffs']}/{est['ffs_available']}{tol_text('ffs')}")
    lines.append(f"  {est['logic_name']:16s} {est['logic']}/{est['logic_available']} "
                 f"({_pct(est['logic'], est['logic_available'])})")
    lines.append(f"  cycles per step  {est['cycles_per_step']} (bound "
                 f"{est['bound_cycles_per_step']})")
    lines.append(f"  retrievals/s     {est['retrievals_per_s']:.0f} at {est['clock_mhz']:g} MHz "
                 f"with {est['steps']:g} steps per query")
    if est["fits"]:
        lines.append(f"  fits the {est['part']}")
    else:
        lines.append(f"  does NOT fit the {est['part']}: " + "; ".join(est["short"]))
    return "\n".join(lines)

