"""Resource and performance model of the accelerator on an FPGA, before any synthesis.

What is modelled is the design ``khop sweep`` synthesises and ``khop build`` puts on a board:
the accelerator behind the UART frame bridge (:class:`boards.core.BoardCore`), memories empty
(the network is loaded at run time). On a device with SPRAM (the UP5K) the weights go to SPRAM,
as on the iCEBreaker; everywhere else every memory is inferred by Yosys.

- **Memory blocks are exact**: :func:`map_memory` repeats the choice Yosys' ``memory_libmap``
  makes for each memory shape (the cost of every block mode of the family's RAM library,
  including the soft logic it adds, against soft logic or distributed RAM), so the block RAM,
  SPRAM and distributed-RAM counts equal what ``synth_ice40``/``synth_ecp5`` infer.
- **DSP blocks** are the sign update's threshold multipliers, split as Yosys' ``mul2dsp``
  splits them (:func:`dsp_blocks`: one or more per threshold unit, by the multiplier's width;
  none on a device without them, where the multipliers are logic).
- **LUTs, carries and flip-flops** come from a linear model of a few physical terms of the
  parameters (:func:`model_terms`) whose coefficients are fitted per FPGA family against Yosys
  runs (:mod:`boards.calibrate`) and stored with the tool versions and per-figure tolerances in
  ``boards/calibration.json``.
- **Cycles** come from :attr:`khop.hw.params.AccelParams.cycles_per_step`; retrievals per second
  at a clock (default: the device's target clock, :mod:`boards.targets`) are those of a stream
  of queries of the given mean number of steps, back to back
  (:func:`khop.hw.timing.steady_rate`).
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from khop.hw.fanout import fanout_groups
from khop.hw.kernel_distance import POPCOUNT_GROUP
from khop.hw.layout import STEPS_BITS
from khop.hw.mac_array import SHARED_MULTIPLE_BITS
from khop.hw.params import AccelParams, ceil_div
from khop.hw.timing import steady_rate

from .protocol import RX_BUFFER, LinkFormat
from .spram import spram_blocks
from .targets import device_target, get_device

__all__ = ["LINK_MEMORIES", "synth_luts", "MemoryMap", "map_memory", "memory_maps",
           "block_shortages", "memory_counts", "multiplier_dsp_blocks", "split_multiply_add_bits",
           "dsp_blocks", "model_terms", "CALIBRATION_PATH", "load_calibration", "Estimate",
           "estimate"]

CALIBRATION_PATH = Path(__file__).with_name("calibration.json")


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
        # emu 2: the read-first emulation and the output register of its asynchronous read (a
        # 96 x 16 memory, 24 of them at 1 less than a DP16KD otherwise, goes to a DP16KD)
        _RamType("TRELLIS_DPR16X4", "lutram", 4, (4,), 4, 0, (0, 0), 2),
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
    copies: int = 1     # read ports: a RAM's copies, a logic memory's read registers

    @property
    def bits(self):
        """Bits of all its copies (in logic, read through ``copies`` ports)."""
        return self.depth * self.width * self.copies

    @property
    def addr_bits(self):
        return max(1, (self.depth - 1).bit_length())

    def describe(self):
        where = "logic" if self.kind == "logic" else f"{self.cells} {self.cell}"
        what = "read ports" if self.kind == "logic" else "copies"
        copies = f", {self.copies} {what}" if self.copies > 1 else ""
        return f"{where} ({self.depth} x {self.width}{copies})"


def _geometry(ram, depth, width, read_ports=1):
    """``(cost, cells, banks)`` of the cheapest base width of ``ram`` (memory_libmap's
    handle_geom for non-wide ports with a uniform write enable), ``cells`` per copy: a copy per
    read port, each at the blocks' and multiplexers' cost, the write port's emulation once."""
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
        cost = ((ram.cost * cells + _FACTOR_MUX * (banks - 1) * width + _FACTOR_DEMUX * demux)
                * read_ports + _FACTOR_EMU * ram.emu)
        if best is None or cost < best[0]:
            best = (cost, cells, banks)
    return best


def map_memory(depth, width, family, name="memory", read_ports=1):
    """The :class:`MemoryMap` Yosys chooses for a ``depth`` x ``width`` memory with
    ``read_ports`` synchronous read ports and one write port on ``family`` ("ice40" or
    "ecp5"): a RAM has one read port, so it takes a copy per read port (``copies``), its
    blocks at that many times their cost (the emulation of the write port's behaviour counted
    once), where flip-flops hold the words once whatever the ports. So Yosys keeps a 65 x 2
    lookup table read by two queries in flip-flops on the UP5K (2 x 64 + 14 against 130) and a
    33 x 7 one read by three queries in 3 SB_RAM40_4K (3 x 64 + 14 against 231)."""
    best, chosen = int(width * depth * _LOGIC_COST_RAM), None
    for ram in _RAM_LIBRARY[family]:
        cost, cells, banks = _geometry(ram, depth, width, read_ports)
        if cost < best:
            best, chosen = cost, (ram, cells, banks)
    if chosen is None:
        return MemoryMap(name, depth, width, "logic", "", 0, copies=read_ports)
    ram, cells, banks = chosen
    return MemoryMap(name, depth, width, ram.kind, ram.cell, cells * read_ports, banks,
                     copies=read_ports)


def _spram_map(depth, width, name):
    cols, banks = spram_blocks(depth, width)
    return MemoryMap(name, depth, width, "spram", "SB_SPRAM256KA", cols * banks, banks)


#: Memories of the UART link around the accelerator (:class:`boards.bridge.Bridge`): the
#: receive buffer, a :class:`~amaranth.lib.fifo.SyncFIFOBuffered` of ``RX_BUFFER`` bytes (its
#: memory holds one byte fewer, the last one waits in its output register).
LINK_MEMORIES = {"rx_buffer": (RX_BUFFER - 1, 8)}


def memory_maps(params: AccelParams, device):
    """The :class:`MemoryMap` of each memory of the accelerator
    (:attr:`~khop.hw.params.AccelParams.memory_shapes`: patterns, weights, lookup table,
    thresholds; each with one synchronous read port and one word-wide write port; the lookup
    table has a read port per query of the batch: :func:`map_memory`), the
    MAC array's kernel buffer (:attr:`~khop.hw.params.AccelParams.kernel_buffer_shape`) and the
    link's memories (:data:`LINK_MEMORIES`)."""
    dev = get_device(device)
    maps = {}
    for name, (depth, width) in params.memory_shapes.items():
        if name == "weight" and dev.weights_in_spram:
            maps[name] = _spram_map(depth, width, name)
        else:
            maps[name] = map_memory(depth, width, dev.family, name,
                                    read_ports=params.batch if name == "lut" else 1)
    if params.kernel_buffer_shape is not None:
        depth, width = params.kernel_buffer_shape
        maps["kernel_buffer"] = map_memory(depth, width, dev.family, "kernel_buffer")
    for name, (depth, width) in LINK_MEMORIES.items():
        maps[name] = map_memory(depth, width, dev.family, name)
    return maps


# Logic model --------------------------------------------------------------------------------

def _link_buffer_bits(params: AccelParams):
    """Bits of the frame parser's shift register: the longest request payload and the CRC."""
    return 8 * (LinkFormat(params).max_payload + 2)


#: What Yosys' ``mul2dsp`` techmap (``share/mul2dsp.v``, as ``synth_ice40 -dsp`` and
#: ``synth_ecp5`` run it) puts in a DSP block, by family: operands of at least 2 bits and, on
#: the iCE40, products of at least 11 bits (``DSP_[AB]_MINWIDTH``, ``DSP_Y_MINWIDTH``); a
#: smaller (partial) product stays logic.
_DSP_MIN_OPERAND = 2
_DSP_MIN_PRODUCT = {"ice40": 11, "ecp5": 0}


@dataclass(frozen=True)
class _Split:
    """An ``a`` x ``b``-bit multiplier as ``mul2dsp`` maps it: ``blocks`` DSP blocks;
    ``products`` the partial products its top level sums (1: one block, or logic); ``cascade``
    the bits of that level's adders (``partial_sum[i] = (partial[i] << i * width) +
    partial_sum[i - 1]``: the product's width less the shift, the bits below it pass through);
    ``nested`` the bits of the adders of the products that are split again."""

    blocks: int
    products: int = 1
    cascade: int = 0
    nested: int = 0


def _mul2dsp(a, b, y, width, min_y):
    """How Yosys' ``mul2dsp`` splits an ``a`` x ``b``-bit multiplier with a ``y``-bit product
    (no sign headroom on the iCE40 and the ECP5): the wider operand in slices of ``width``
    bits and a last one of the rest, each slice's product split again (a :class:`_Split`)."""
    if a < b:
        a, b = b, a
    if b < _DSP_MIN_OPERAND or y < min_y:
        return _Split(blocks=0)
    if a <= width:
        return _Split(blocks=1)
    n = (a - 1) // width
    last = a - n * width
    parts = [_mul2dsp(width, b, min(y, b + width), width, min_y)] * n \
        + [_mul2dsp(last, b, b + last, width, min_y)]
    return _Split(blocks=sum(p.blocks for p in parts), products=n + 1,
                  cascade=sum(y - i * width for i in range(1, n + 1)),
                  nested=sum(p.cascade + p.nested for p in parts))


def _unit_multiplier(a, s, device):
    """One threshold unit's multiplier on ``device`` (a :class:`_Split`): ``r_fx`` of ``a``
    bits (signed) times ``S_K`` of ``s`` bits (unsigned: a signed operand of ``s + 1`` bits)
    into a product of ``a + s`` bits (:attr:`~khop.hw.params.AccelParams.multiplier_shape`);
    logic (no blocks) on a device without DSP blocks."""
    dev = get_device(device)
    if not dev.dsp:
        return _Split(blocks=0)
    return _mul2dsp(a, s + 1, a + s, dev.dsp_width, _DSP_MIN_PRODUCT[dev.family])


def multiplier_dsp_blocks(a, s, device):
    """DSP blocks of one threshold unit's multiplier (:func:`_unit_multiplier`) as Yosys maps
    it; 0 on a device without DSP blocks. A slice of one bit (a multiplier one bit wider than
    the blocks, or ``S_K`` exactly as wide) is logic, not a block: 12 x 16 bits take one
    SB_MAC16, 12 x 17 two."""
    return _unit_multiplier(a, s, device).blocks


def split_multiply_add_bits(a, s, y, r, device):
    """LUT4 sites of one threshold unit's multiply-add ``T * 2^R + r_fx * (-S_K)`` on the ECP5
    (``r_fx`` of ``a`` bits, ``S_K`` of ``s``, as :func:`multiplier_dsp_blocks`; a ``y``-bit
    result, :attr:`~khop.hw.params.AccelParams.compare_bits`; ``R = r`` fractional bits) when
    ``mul2dsp`` splits the multiplier into several products; 0 when it does not, or on the
    iCE40. Yosys' ``alumacc`` merges the top level's adders with the addend ``T * 2^R`` into one
    multi-operand adder of ``y`` bits, which ``maccmap`` builds as rows of full adders (two LUT4s
    per bit: sum and carry), one per addend beyond two, over the ``y - r`` bits from ``R`` up,
    and one carry chain of ``y`` bits; the adders of a product split again stay carry chains of
    their own. Equal to ``synth_ecp5`` within one LUT4 site on every multiply-add shape of the
    ECP5 sweeps (``YOSYS_MULTIPLY_ADD`` in ``tests/boards/test_estimate.py``)."""
    if get_device(device).family != "ecp5":
        return 0
    split = _unit_multiplier(a, s, device)
    if split.products == 1:
        return 0
    return y + 2 * (split.products - 1) * (y - r) + split.nested


def dsp_blocks(params: AccelParams, device):
    """DSP blocks of the sign update's threshold units on ``device``: each unit's multiplier
    ``r_fx * S_K`` (:func:`multiplier_dsp_blocks`); 0 on a device without DSP blocks, where
    the multipliers are logic (the ``mult`` term of :func:`model_terms`)."""
    return params.threshold_units * multiplier_dsp_blocks(*params.multiplier_shape, device)


def _distance_registers(prm: AccelParams):
    """Registers of one distance unit (:mod:`khop.hw.kernel_distance`): the XOR word, the
    popcounts of its groups of :data:`~khop.hw.kernel_distance.POPCOUNT_GROUP` bits and their
    sum; with several chunks per pattern also the state chunk and the distance sum."""
    width = prm.popcount_width
    groups = [min(POPCOUNT_GROUP, width - g) for g in range(0, width, POPCOUNT_GROUP)]
    regs = width + sum(g.bit_length() for g in groups) + width.bit_length()
    return regs + (width + prm.distance_bits if prm.chunks > 1 else 0)


def model_terms(params: AccelParams, device):
    """The physical terms of the LUT/carry model and of the flip-flop model.

    LUT and carry terms: ``const``; ``acc`` the accumulate adders (batch x lanes x accumulator
    width); ``select`` for 1- and 2-bit codes, each lane's choice among the shared multiples of
    ``K_mu`` (batch x lanes x product bits x (2^k - 1) two-way choices); ``mac`` for 3- and
    4-bit codes, each lane's shift-and-add (:func:`khop.hw.mac_array.shift_add`): a shifted
    copy of ``K_mu`` per code bit, selected by it, and the adders summing them (batch x lanes x
    (weight bits x kernel bits + (weight bits - 1) x product bits));
    ``sign`` the sign update's threshold units (:mod:`khop.hw.sign_update`, shared by the
    batch): per unit, the select of its lane's sum among the beat's groups ((groups - 1) x
    accumulator width); ``compare`` the adder of the units' multiply-add ``T * 2^R - r_fx *
    S_K`` where it is logic: always on the ECP5 (a MULT18X18D has no adder), on the iCE40 when
    the multiplier does not fit one SB_MAC16 (which holds the adder too); units x the bits from
    ``R`` up (:attr:`~khop.hw.params.AccelParams.compare_bits` less ``threshold_frac_bits``:
    the bits below pass through); ``mult`` the units' multipliers where they are not DSP blocks
    (units x the multiplier's bits, :func:`dsp_blocks`); ``slices`` the sum of the products of
    a multiplier split over several DSP blocks: on the ECP5 the whole multiply-add as Yosys
    builds it (units x :func:`split_multiply_add_bits`; ``compare`` is then 0), on the iCE40,
    whose SB_MAC16 takes adders in, units x (blocks per unit - 1) x product bits;
    ``lanes`` (per-lane control: tie rule, state bit); ``pop`` the distance units (batch x
    popcount width: XOR and popcount tree); ``state`` the slots' states (batch x n: the state
    registers and the link's query and result words); ``statemux`` the choice among the slots'
    states ((batch - 1) x n: the result presented, the query written, the bits a beat updates;
    why it is a term of its own: README, "Resource estimation and sweeps"); ``slots`` each
    slot's own adders and counters (its ``S_K`` sum, its step count and decision); ``copies``
    the adders forming the multiples of ``K_mu`` (``3K = K + 2K``), once per query and copy of
    the kernels (one per :data:`khop.hw.fanout.FANOUT_LANES` lanes); ``summux`` the multiplexer
    choosing a slot's accumulators for the sign update ((batch - 1) x lanes x accumulator
    width); ``mem`` the width of each inferred memory times its banks and copies
    (Yosys' read-first emulation and bank multiplexers; a memory left in logic counts its
    bits); ``macbank`` the products again for each extra bank of the weight memory (the bank
    multiplexer feeds every product bit).

    Flip-flop terms: ``const``; ``ring`` the accumulators (batch x lanes x accumulator width,
    and with batch > 1 the register of the beat being drained, lanes x accumulator width);
    ``pipe`` the per-lane registers (the weight word, the products ``q * K`` of each query,
    the beat's two decision flags) and the threshold units' sums (and their other registers
    where the multipliers are not each in one DSP block); ``dspregs`` the threshold units'
    registers next to a multiplier in one DSP block (the threshold, ``-S_K``, the multiply-add's
    result), which the iCE40's SB_MAC16 takes in and the ECP5's MULT18X18D only in part (a
    multiplier split into slices leaves them in the fabric: ``pipe``); ``regs`` the other
    registers whose width depends on the parameters (each slot's state, steps, flags, S_K,
    kernels in the MAC pipeline (a copy per group of lanes) and distance unit
    (:func:`_distance_registers`); the threshold units' ``S_K``; the MAC array's drain control
    (a copy per group of lanes: a clear flag per query and, with batch > 1, the drained query's
    number), counters and addresses, the link's frame buffer); ``mem`` the registers of Yosys'
    read-first emulation of each inferred memory (2 x width + address + 2, per copy), and the
    words and read register of a memory left in logic.

    The terms count what the design has, so that the fitted coefficients stay near their
    physical values (a LUT or flip-flop per counted bit, a constant for the link and the
    control) and the model extrapolates: README, "Resource estimation and sweeps".
    """
    prm = params
    batch = prm.batch
    maps = memory_maps(prm, device)
    inferred = [mm for mm in maps.values() if mm.kind in ("bram", "lutram")]
    logic = [mm for mm in maps.values() if mm.kind == "logic"]
    units, tgroups = prm.threshold_units, prm.threshold_groups
    mult_a, mult_b = prm.multiplier_shape
    # The units' registers a DSP block may take in (its threshold, -S_K and multiply-add).
    unit_regs = units * (mult_a + prm.compare_bits) + mult_b + 1
    unit = _unit_multiplier(mult_a, mult_b, device)
    blocks_per_unit = unit.blocks
    in_dsp = blocks_per_unit > 0
    # A multiplier in one DSP block takes the registers around it in; one split into slices
    # leaves them in the fabric.
    dev = get_device(device)
    packed = blocks_per_unit == 1 and unit.products == 1
    # The iCE40's SB_MAC16 also holds the multiply-add's adder; the ECP5's MULT18X18D has none.
    adder_in_dsp = packed and dev.family == "ice40"
    split_sum = split_multiply_add_bits(mult_a, mult_b, prm.compare_bits,   # on the ECP5
                                        prm.threshold_frac_bits, device)
    k = prm.weight_bits
    groups = fanout_groups(prm.lanes)           # copies of broadcast registers
    shared = k <= SHARED_MULTIPLE_BITS          # hw/mac_array.py: select a shared multiple
    products = batch * prm.lanes * (prm.kernel_bits + k) * (2 ** k - 1 if shared else k)
    luts = {
        "const": 1.0,
        "acc": batch * prm.lanes * prm.acc_bits,
        "select": products if shared else 0,
        "mac": (0 if shared else batch * prm.lanes
                * (k * prm.kernel_bits + (k - 1) * (prm.kernel_bits + k))),
        "sign": units * (tgroups - 1) * prm.acc_bits,
        "compare": (0 if adder_in_dsp or split_sum
                    else units * (prm.compare_bits - prm.threshold_frac_bits)),
        "mult": 0 if in_dsp else units * mult_a * (mult_b + 1),
        "slices": (units * split_sum if dev.family == "ecp5"
                   else units * (blocks_per_unit - 1) * (mult_a + mult_b) if in_dsp else 0),
        "lanes": prm.lanes,
        "pop": batch * prm.popcount_width,
        "state": batch * prm.n,
        "statemux": (batch - 1) * prm.n,
        "slots": batch * (prm.sum_bits + prm.kernel_bits + STEPS_BITS),
        "copies": (batch * groups * (prm.kernel_bits + k)
                   * sum(bin(c).count("1") - 1 for c in range(1, 2 ** k)) if shared else 0),
        "summux": (batch - 1) * prm.lanes * prm.acc_bits,
        "mem": (sum(mm.width * mm.banks * mm.copies for mm in inferred)
                + sum(mm.bits for mm in logic)),
        "macbank": (products
                    * (maps["weight"].banks - 1 if maps["weight"].kind != "spram" else 0)),
    }
    addr = (max(1, (prm.pattern_depth - 1).bit_length())
            + max(1, (prm.weight_depth - 1).bit_length()))
    slot_bits = max(1, (batch - 1).bit_length())    # a slot's number
    drain = groups * (batch + (slot_bits if batch > 1 else 0))
    counters = (2 * (max(tgroups, 2) - 1).bit_length() + 2 * prm.blocks.bit_length()
                + 4 * slot_bits)                            # group, block; slot pointers
    per_slot = (prm.blocks * prm.lanes                    # state register
                + STEPS_BITS + 5                          # steps and flags
                + prm.sum_bits                            # S_K
                + (1 + groups) * prm.kernel_bits          # kernels in the MAC pipeline
                + _distance_registers(prm))
    regs = (batch * per_slot + drain
            + counters + prm.threshold_depth.bit_length() # threshold read pointer
            + prm.p.bit_length() + 2 * addr               # pattern count, memory addresses
            + _link_buffer_bits(prm))
    ffs = {
        "const": 1.0,
        "ring": prm.accumulator_bits + (prm.lanes * prm.acc_bits if batch > 1 else 0),
        "pipe": (prm.lanes * batch * (prm.kernel_bits + prm.weight_bits)  # products q * K
                 + prm.weight_width                               # the weight word
                 + 2 * tgroups * units                            # the decision flags
                 + units * prm.acc_bits                           # each unit's sum
                 + (0 if packed else unit_regs)),
        "dspregs": unit_regs if packed else 0,
        "regs": regs,
        "mem": (sum((2 * mm.width + mm.addr_bits + 2) * mm.copies for mm in inferred)
                # a logic memory's words, once, and a read register per port
                + sum(mm.depth * mm.width + mm.width * mm.copies for mm in logic)),
    }
    return {"luts": luts, "carries": luts, "ffs": ffs}


def synth_luts(synth, family):
    """The LUTs of a synthesis result as the model counts them: the device's LUT4 sites, that
    is LUT4 cells plus, on the ECP5, the two LUT4s of each CCU2C carry cell (on the iCE40 a
    carry shares its logic cell with a LUT4)."""
    return synth["luts"] + (2 * synth["carries"] if family == "ecp5" else 0)


# Calibration --------------------------------------------------------------------------------

def load_calibration(path=None):
    """The calibration document (``boards/calibration.json`` unless ``path``)."""
    path = CALIBRATION_PATH if path is None else Path(path)
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"no calibration file {path} (make one with "
                         f"'python -m khop.boards.calibrate RESULTS.json')") from None


def _predict(coefficients, terms):
    return sum(coefficients.get(name, 0.0) * value for name, value in terms.items())


# The estimate -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """Resources, cycles and throughput of a configuration on a device (:func:`estimate`).

    ``memories`` says where each memory goes; ``bram``, ``spram``, ``lutram`` are exact;
    ``dsp`` the DSP blocks of the threshold units (:func:`dsp_blocks`) against
    ``dsp_available``; ``luts`` (LUT4 sites, :func:`synth_luts`), ``carries``, ``ffs`` come
    from the calibrated model; ``logic`` is the device's logic figure (iCE40 logic cells, ECP5
    LUT4s with the four of each 16x4 distributed RAM) against ``logic_available``;
    ``retrievals_per_s`` is at ``clock_mhz`` with ``steps`` steps per query; ``short`` has one
    message per resource that does not fit, with by how much. :meth:`as_dict` is the JSON of
    ``khop estimate --json``, :meth:`format` its text.
    """

    device: str
    part: str
    family: str
    params: dict
    memories: dict
    bram: int
    bram_available: int
    spram: int
    spram_available: int
    dsp: int
    dsp_available: int
    lutram: int
    luts: int
    carries: int
    ffs: int
    logic: int
    logic_name: str
    logic_available: int
    ffs_available: int
    cycles_per_step: int
    bound_cycles_per_step: int
    steps: float
    clock_mhz: float
    retrievals_per_s: float
    fits: bool
    short: list
    calibration: dict

    def as_dict(self):
        return {**asdict(self), "borderline": self.borderline}

    @property
    def logic_tolerance(self):
        """The model's relative LUT tolerance (0 without one)."""
        return self.calibration["tolerance"].get("luts", 0.0)

    @property
    def logic_over_tolerance(self):
        """Whether the logic estimate exceeds the device by more than the model's LUT tolerance
        (``khop build`` refuses such a design before synthesis)."""
        return self.logic > self.logic_available * (1 + self.logic_tolerance)

    @property
    def borderline(self):
        """Short of nothing but logic, and that within the model's tolerance: the design may
        fit (place and route decides; ``khop build`` tries it)."""
        return (not self.fits and len(self.short) == 1 and self.logic > self.logic_available
                and not self.logic_over_tolerance)

    def format(self):
        """The text ``khop estimate`` prints."""
        p = self.params
        tol = self.calibration["tolerance"]

        def tol_text(key):
            return f" (model, +-{100 * tol[key]:.0f} %)" if key in tol else " (model)"

        lines = [(f"{self.device} ({self.part}): N={p['n']} P={p['p']} {p['weight_bits']}-bit, "
                  f"{p['lanes']} lanes, batch {p['batch']}, popcount width "
                  f"{p['popcount_width']}, kernel_bits "
                  f"{p['kernel_bits']}")]
        labels = {"pattern": "patterns", "weight": "weights", "lut": "lookup table",
                  "threshold": "thresholds", "rx_buffer": "receive buffer"}
        for name, mm in self.memories.items():
            lines.append(f"  {labels.get(name, name):16s} {mm['where']}")
        lines.append(f"  block RAM        {self.bram}/{self.bram_available} "
                     f"({_pct(self.bram, self.bram_available)}, exact)")
        if self.spram_available or self.spram:
            lines.append(f"  SPRAM            {self.spram}/{self.spram_available} (exact)")
        if self.dsp_available or self.dsp:
            lines.append(f"  DSP blocks       {self.dsp}/{self.dsp_available} "
                         f"({_pct(self.dsp, self.dsp_available)}, "
                         f"{p['threshold_units']} threshold units)")
        if self.lutram:
            lines.append(f"  distributed RAM  {self.lutram} TRELLIS_DPR16X4 (exact)")
        lut4 = "LUT4 (+2/CCU2C)" if self.family == "ecp5" else "LUT4"
        lines.append(f"  {lut4:16s} {self.luts}{tol_text('luts')}")
        lines.append(f"  carries          {self.carries}{tol_text('carries')}")
        lines.append(f"  flip-flops       {self.ffs}/{self.ffs_available}{tol_text('ffs')}")
        lines.append(f"  {self.logic_name:16s} {self.logic}/{self.logic_available} "
                     f"({_pct(self.logic, self.logic_available)})")
        lines.append(f"  cycles per step  {self.cycles_per_step} (bound "
                     f"{self.bound_cycles_per_step})")
        lines.append(f"  retrievals/s     {self.retrievals_per_s:.0f} at {self.clock_mhz:g} MHz "
                     f"with {self.steps:g} steps per query")
        if self.fits:
            lines.append(f"  fits the {self.part}")
        elif self.borderline:
            lines.append(f"  may not fit the {self.part}: {self.short[0]}, within the model's "
                         f"+-{100 * self.logic_tolerance:.0f} % (khop build tries it: place and "
                         "route decides)")
        else:
            lines.append(f"  does NOT fit the {self.part}: " + "; ".join(self.short))
        return "\n".join(lines)


def memory_counts(maps):
    """``{"bram", "spram", "lutram": cells}`` of :func:`memory_maps`' result (exact)."""
    return {kind: sum(mm.cells for mm in maps.values() if mm.kind == kind)
            for kind in ("bram", "spram", "lutram")}


def _shortage(what, needed, available):
    """``"what: N needed, M available (K short)"``, or ``None`` when it fits."""
    if needed > available:
        return f"{what}: {needed} needed, {available} available ({needed - available} short)"
    return None


def block_shortages(params: AccelParams, device, bram, spram, dsp):
    """The messages of the memory and DSP blocks (``bram``, ``spram``, ``dsp`` of ``params``,
    counted exactly) that ``device`` does not have: what :func:`estimate` and ``khop build``'s
    check before synthesis say."""
    dev = get_device(device)
    short = [_shortage(f"block RAM ({dev.bram_cell})", bram, dev.bram),
             _shortage("SPRAM", spram, dev.spram),
             _shortage(f"DSP blocks ({dev.dsp_cell}, {dsp // params.threshold_units} per "
                       f"threshold unit, {params.threshold_units} units)", dsp, dev.dsp)]
    return [text for text in short if text]


def estimate(params: AccelParams, device, *, clock_mhz=None, steps=2.0, calibration=None):
    """The :class:`Estimate` of ``params`` on ``device`` (a name or a
    :class:`~boards.targets.Device`); ``clock_mhz`` ``None``: the device's target clock."""
    dev = get_device(device)
    if not isinstance(params, AccelParams):
        raise TypeError(f"params must be an AccelParams, not {params!r}")
    if not steps > 0:
        raise ValueError(f"steps must be positive, not {steps!r}")
    clock = device_target(dev).clock_mhz if clock_mhz is None else float(clock_mhz)
    if not clock > 0:
        raise ValueError(f"the clock must be positive, not {clock_mhz!r} MHz")
    cal = load_calibration() if calibration is None else calibration
    try:
        fam = cal["families"][dev.family]
    except KeyError:
        raise ValueError(f"the calibration has no model of the {dev.family} family") from None

    maps = memory_maps(params, dev)
    count = memory_counts(maps)
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
    dsp = dsp_blocks(params, dev)
    others = (_shortage(logic_name, logic, dev.luts),
              _shortage("flip-flops", figures["ffs"], dev.ffs))
    short = (block_shortages(params, dev, count["bram"], count["spram"], dsp)
             + [text for text in others if text])
    cycles = params.cycles_per_step
    return Estimate(
        device=dev.name, part=dev.part, family=dev.family, params=params.as_dict(),
        memories={name: {"depth": mm.depth, "width": mm.width, "kind": mm.kind,
                         "cell": mm.cell, "cells": mm.cells, "where": mm.describe()}
                  for name, mm in maps.items()},
        bram=count["bram"], bram_available=dev.bram,
        spram=count["spram"], spram_available=dev.spram, dsp=dsp, dsp_available=dev.dsp,
        lutram=count["lutram"],
        **figures,
        logic=logic, logic_name=logic_name, logic_available=dev.luts, ffs_available=dev.ffs,
        cycles_per_step=cycles, bound_cycles_per_step=params.bound_cycles_per_step,
        steps=steps, clock_mhz=clock,
        retrievals_per_s=steady_rate(params, steps) * clock * 1e6,
        fits=not short, short=short,
        calibration={"yosys": cal.get("tools", {}).get("yosys"),
                     "tolerance": fam.get("tolerance", {})})


def _pct(used, available):
    return f"{100 * used / available:.0f} %" if available else "--"
