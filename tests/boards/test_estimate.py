"""The resource model: devices and targets, Yosys' memory mapping, the calibrated estimate,
and ``khop estimate``."""

import json
import subprocess
from dataclasses import replace

import pytest

from khop.boards.estimate import (
    dsp_blocks,
    estimate,
    load_calibration,
    map_memory,
    memory_maps,
    model_terms,
    multiplier_dsp_blocks,
    split_multiply_add_bits,
    synth_luts,
)
from khop.boards.targets import DEVICES, device_target, get_board, get_device
from khop.cli import main
from khop.hw.params import hardware_params
from khop.model.fixed import sharp_kernel_bits


def device_params(device, n, p, **options):
    return device_target(device).params(n, p, **options)


def test_devices_and_their_resources():
    assert {d: (DEVICES[d].luts, DEVICES[d].bram, DEVICES[d].spram, DEVICES[d].dsp)
            for d in DEVICES} == {
        "up5k": (5280, 30, 4, 8), "hx8k": (7680, 32, 0, 0), "ecp5-25f": (24288, 56, 0, 28),
        "ecp5-85f": (83640, 208, 0, 156)}
    assert get_device("ecp5-85f").bram_cell == "DP16KD"
    assert [(get_device(d).dsp_cell, get_device(d).dsp_width) for d in ("up5k", "ecp5-85f")] \
        == [("SB_MAC16", 16), ("MULT18X18D", 18)]
    assert get_device("up5k").as_dict()["dsp"] == 8
    assert get_device("up5k").weights_in_spram and not get_device("hx8k").weights_in_spram


def test_unknown_device_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown device 'xc7a35t'; choose one of up5k, hx8k, "
                                         "ecp5-25f, ecp5-85f"):
        get_device("xc7a35t")


# (family, depth, width) -> (kind, cells), each from a Yosys 0.70 synth_ice40/synth_ecp5 run of
# hw.word_memory.WordMemory (tests/boards/test_sweep.py reruns two of them).
YOSYS_MAPPINGS = [
    ("ice40", 17, 4, "logic", 0),        # cheaper as flip-flops than a block
    ("ice40", 8, 16, "bram", 1),
    ("ice40", 600, 16, "bram", 3),       # 256 x 16, three banks
    ("ice40", 600, 10, "bram", 2),       # 256 x 16, three banks side by side in 2 blocks
    ("ice40", 300, 100, "bram", 13),     # 512 x 8 (the ridge network's patterns)
    ("ice40", 17446, 8, "bram", 36),     # 2048 x 2, not 35 in 512 x 8 (a 35-way read mux)
    ("ice40", 5161, 276, "bram", 380),
    ("ice40", 15031, 1, "bram", 4),
    ("ice40", 152, 8, "bram", 1),        # former threshold memories (digit-sliced): N=64, 8 lanes
    ("ice40", 38, 32, "bram", 2),        # N=64, 32 lanes: 256 x 16, side by side
    ("ecp5", 17, 4, "lutram", 2),        # TRELLIS_DPR16X4
    ("ecp5", 8, 16, "lutram", 4),
    ("ecp5", 3, 281, "lutram", 71),
    ("ecp5", 101, 16, "bram", 1),
    ("ecp5", 300, 100, "bram", 3),       # 512 x 36 (PDPW16KD mode)
    ("ecp5", 2370, 240, "bram", 34),
    ("ecp5", 13391, 277, "bram", 217),
    ("ecp5", 6589, 6, "bram", 3),
    ("ecp5", 80, 16, "lutram", 20),      # former threshold memories: N=64, 8 lanes
    ("ecp5", 40, 64, "lutram", 48),      # N=100, 32 lanes
    ("ecp5", 130, 16, "bram", 1),        # N=100, 8 lanes
    ("ecp5", 96, 16, "bram", 1),         # ECP5-25F kernel buffer, P=96: 24 DPR16X4 cost 1 more
    ("ecp5", 80, 64, "bram", 2),         # N=256, 32 lanes
]


@pytest.mark.parametrize("family, depth, width, kind, cells", YOSYS_MAPPINGS)
def test_memory_mapping_equals_yosys(family, depth, width, kind, cells):
    mm = map_memory(depth, width, family)
    assert (mm.kind, mm.cells) == (kind, cells)


def test_weights_go_to_spram_on_the_up5k_only():
    params = device_params("up5k", 100, 300, bits=2, lanes=8)
    maps = memory_maps(params, "up5k")
    assert (maps["weight"].kind, maps["weight"].cells) == ("spram", 1)   # 3900 x 16
    assert memory_maps(params, "hx8k")["weight"].kind == "bram"


def test_the_threshold_memory_is_mapped_like_the_other_memories():
    for device in ("up5k", "hx8k", "ecp5-85f"):
        params = device_params(device, 100, 300, bits=2, lanes=16)
        mm = memory_maps(params, device)["threshold"]
        assert (mm.depth, mm.width) == params.memory_shapes["threshold"]
        assert mm == map_memory(mm.depth, mm.width, get_device(device).family, "threshold")
    params = device_params("up5k", 100, 300, bits=2, lanes=8)
    # 13 blocks of one group of the target's 8 threshold units, each a threshold of
    # k + R + 2 = 12 bits (the target's R = 8).
    assert (params.threshold_units, params.threshold_groups) == (8, 1)
    assert params.memory_shapes["threshold"] == (13, 8 * 12)
    assert memory_maps(params, "up5k")["threshold"].describe() == "6 SB_RAM40_4K (13 x 96)"
    # 20 lanes: 3 groups of 8 units a block (the last of 4 lanes), 5 blocks.
    params = device_params("up5k", 100, 300, bits=2, lanes=20)
    assert params.memory_shapes["threshold"] == (5 * 3, 8 * 12)


def test_device_params_use_a_pattern_per_cycle_and_the_device_kernel_width():
    assert device_params("hx8k", 100, 300).kernel_bits == 12
    # Block-outer: the distance units work in block 0 only, a pattern per cycle.
    p = device_params("up5k", 100, 300, lanes=16)
    assert (p.popcount_width, p.chunks, p.blocks) == (100, 1, 7)
    # The board's kernel width follows N and P (and the training gamma: no network given).
    assert get_board("icebreaker").defaults.kernel_bits is None
    assert p.kernel_bits == sharp_kernel_bits(0.02, 100, 300) == 4
    assert device_params("up5k", 256, 768).kernel_bits == sharp_kernel_bits(0.02, 256, 768) == 11
    assert device_params("ecp5-85f", 100, 300, lanes=16, kernel_bits=10).kernel_bits == 10


def _calibration(luts=None, ffs=None, packing=0.0):
    coef = {"luts": luts or {"const": 100.0, "acc": 1.0},
            "carries": {"const": 0.0, "acc": 0.5},
            "ffs": ffs or {"const": 50.0, "ring": 1.0}}
    fam = {"models": {k: {"coefficients": v} for k, v in coef.items()},
           "packing": packing, "tolerance": {"luts": 0.15, "ffs": 0.15}}
    return {"tools": {"yosys": "test"}, "families": {"ice40": fam, "ecp5": fam}}


def test_estimate_applies_the_calibrated_coefficients():
    params = hardware_params(64, 128, bits=2, lanes=16, popcount_width=16, kernel_bits=12)
    est = estimate(params, "hx8k", calibration=_calibration(packing=0.5))
    assert est.luts == 100 + 16 * params.acc_bits
    assert est.ffs == 50 + params.accumulator_bits
    assert est.carries == round(0.5 * 16 * params.acc_bits)
    assert est.logic == round(est.luts + est.ffs - 0.5 * min(est.luts, est.ffs))
    ecp5 = estimate(params, "ecp5-25f", calibration=_calibration())
    # lookup table 65 x 12 in 15 TRELLIS_DPR16X4, thresholds 16 x 80 (4 blocks of 4 groups of
    # 4 units of 20 bits) in 20
    assert params.memory_shapes["threshold"] == (16, 80)
    assert ecp5.logic == ecp5.luts + 4 * ecp5.lutram and ecp5.lutram == 15 + 20


def test_estimate_cycles_and_retrieval_rate():
    params = device_params("up5k", 100, 300, lanes=8, batch=1)
    est = estimate(params, "up5k", calibration=_calibration(), steps=3, clock_mhz=20)
    assert est.cycles_per_step == params.cycles_per_step
    # Back to back: 3 steps each, plus the two handshake edges (docs/datasheet.md).
    assert est.retrievals_per_s == pytest.approx(20e6 / (3 * params.cycles_per_step + 2))
    assert (estimate(params, "up5k", calibration=_calibration()).clock_mhz
            == get_board("icebreaker").clock_mhz)


def test_estimate_says_which_resource_is_short_and_by_how_much():
    big = device_params("up5k", 1000, 3000, lanes=16)
    est = estimate(big, "up5k", calibration=_calibration())
    assert not est.fits
    text = " ".join(est.short)
    assert (f"block RAM (SB_RAM40_4K): {est.bram} needed, 30 available "
            f"({est.bram - 30} short)") in text
    assert f"SPRAM: {est.spram} needed, 4 available ({est.spram - 4} short)" in text
    assert "does NOT fit the iCE40UP5K" in est.format()


def test_estimate_rejects_bad_arguments():
    params = hardware_params(16, 32, bits=1, lanes=4)
    with pytest.raises(ValueError, match="steps must be positive"):
        estimate(params, "up5k", calibration=_calibration(), steps=0)
    with pytest.raises(ValueError, match="clock must be positive"):
        estimate(params, "up5k", calibration=_calibration(), clock_mhz=-1)
    with pytest.raises(ValueError, match="no model of the ecp5 family"):
        estimate(params, "ecp5-85f", calibration={"families": {}})
    with pytest.raises(TypeError, match="params must be an AccelParams"):
        estimate({"n": 16}, "up5k", calibration=_calibration())


def test_model_terms_hold_the_accumulator_ring_and_the_memory_emulation():
    params = device_params("hx8k", 100, 300, lanes=16)
    terms = model_terms(params, "hx8k")
    assert terms["ffs"]["ring"] == params.accumulator_bits
    maps = memory_maps(params, "hx8k")
    assert terms["ffs"]["mem"] == sum(2 * m.width + m.addr_bits + 2 for m in maps.values()
                                      if m.kind == "bram")
    assert terms["luts"]["acc"] == 16 * params.acc_bits
    assert terms["ffs"]["mem"] > 0 and maps["threshold"].kind == "bram"


def test_model_terms_of_the_sign_update_follow_the_threshold_units():
    """Per threshold unit the select of its lane's sum among the beat's groups ((groups - 1) x
    accumulator width); the multiply-add's adder (compare_bits less the fractional bits below
    ``T * 2^R`` per unit) is logic except in an iCE40 SB_MAC16 that holds the whole multiplier;
    the units' multipliers are the ``mult`` term (units x a x (b + 1)) only on a device without
    DSP blocks, where they are logic; more units, more flip-flops."""
    params = device_params("up5k", 100, 300, bits=2, kernel_bits=7)
    assert (params.lanes, params.threshold_units, params.threshold_groups) == (20, 8, 3)
    assert (params.acc_bits, params.compare_bits) == (16, 28)
    terms = model_terms(params, "up5k")
    assert terms["luts"]["sign"] == 8 * 2 * 16 == 256
    assert terms["luts"]["compare"] == 0                # the adders are in the SB_MAC16s
    assert terms["luts"]["mult"] == 0                   # so are the multipliers
    # Units for every lane: one group, no select; the ECP5's MULT18X18D has no adder.
    one = hardware_params(100, 300, bits=2, lanes=8, threshold_units=8, kernel_bits=7,
                          threshold_frac_bits=8)
    assert multiplier_dsp_blocks(*one.multiplier_shape, "ecp5-85f") == 1
    assert model_terms(one, "ecp5-85f")["luts"]["sign"] == 0
    assert model_terms(one, "ecp5-85f")["luts"]["compare"] == 8 * (one.compare_bits
                                                                   - one.threshold_frac_bits)
    # No DSP blocks on the HX8K: 2 multipliers of 20 x 25 bits in logic.
    hx = hardware_params(100, 300, bits=2, lanes=16, threshold_units=2)
    assert hx.multiplier_shape == (20, 24) and hx.threshold_groups == 8
    assert model_terms(hx, "hx8k")["luts"]["mult"] == 2 * 20 * 25
    assert model_terms(hx, "ecp5-85f")["luts"]["mult"] == 0
    assert model_terms(hx, "hx8k")["luts"]["sign"] == 2 * 7 * hx.acc_bits
    assert model_terms(hx, "hx8k")["luts"]["compare"] == 2 * (hx.compare_bits
                                                               - hx.threshold_frac_bits)
    more = hardware_params(100, 300, bits=2, lanes=16, threshold_units=4)
    assert model_terms(more, "hx8k")["ffs"]["pipe"] > model_terms(hx, "hx8k")["ffs"]["pipe"]


def test_model_terms_of_a_multiplier_beyond_one_dsp_block():
    """A threshold unit's multiplier in one SB_MAC16 takes its registers and the adder in
    (``dspregs``, no ``compare``); with S_K of 16 bits (a signed 17-bit operand) Yosys still
    uses one SB_MAC16 per unit but leaves the registers and the adder in the fabric (N=256,
    P=512 on the UP5K, synthesised: 232 flip-flops of the units' results and 807 carries)."""
    small = device_params("up5k", 100, 300, bits=2, kernel_bits=7)
    big = device_params("up5k", 256, 512, bits=2, kernel_bits=7)
    assert small.multiplier_shape == (12, 15) and big.multiplier_shape == (12, 16)
    assert dsp_blocks(small, "up5k") == dsp_blocks(big, "up5k") == 8
    for prm, packed in ((small, True), (big, False)):
        terms = model_terms(prm, "up5k")
        assert (terms["ffs"]["dspregs"] > 0) == packed
        assert (terms["luts"]["compare"] == 0) == packed
        assert terms["luts"]["slices"] == 0
    # The ECP5-25F's 16-bit kernels: 20 x 24 bits in 4 MULT18X18D per unit: the multiply-add
    # is the slices term (split_multiply_add_bits, 132 LUT4 sites per unit), not compare.
    wide = device_params("ecp5-25f", 100, 300, bits=2)
    assert (wide.multiplier_shape, wide.threshold_units) == ((20, 24), 4)
    assert dsp_blocks(wide, "ecp5-25f") == 16
    terms = model_terms(wide, "ecp5-25f")["luts"]
    assert (terms["slices"], terms["compare"]) == (4 * 132, 0)


#: ``synth_ecp5`` (Yosys 0.70) on a threshold unit's multiply-add alone, ``y <= r * s + (t <<
#: R)`` with registered operands (``multiply_add_verilog``): r of ``a`` bits signed, s of
#: ``s + 1`` signed, t of ``acc`` bits, a ``y``-bit result, R fractional bits; the LUT4 sites
#: (LUT4 + 2 x CCU2C) and MULT18X18D. Every shape of the ECP5 sweeps whose multiplier is split,
#: and some that are not (their adder: the ``y - R`` bits of ``compare``, within one site).
YOSYS_MULTIPLY_ADD = [
    # a, s, acc, R, y: sites, blocks
    ((11, 9, 9, 8, 21), (14, 1)),
    ((12, 14, 15, 8, 27), (20, 1)),
    ((14, 15, 19, 8, 30), (22, 1)),
    ((11, 20, 20, 8, 32), (79, 2)),         # N=256's 11-bit kernels: S_K split 18 + 3
    ((12, 20, 21, 8, 33), (83, 2)),
    ((13, 20, 22, 8, 34), (85, 2)),
    ((12, 23, 24, 8, 36), (91, 2)),         # 16-bit kernels (make sweep-kernels)
    ((12, 23, 25, 8, 36), (91, 2)),
    ((20, 22, 24, 16, 43), (125, 4)),       # the ECP5-25F: both operands split
    ((20, 23, 24, 16, 44), (127, 4)),
    ((20, 24, 26, 16, 45), (133, 4)),
    ((22, 22, 26, 16, 45), (135, 4)),
    ((22, 23, 27, 16, 46), (137, 4)),
    ((22, 24, 28, 16, 47), (143, 4)),
]


def multiply_add_verilog(a, s, acc, r, y):
    """The threshold unit's stage B (:mod:`khop.hw.sign_update`) alone, as Verilog."""
    return (f"module t(input clk, input signed [{a - 1}:0] ri, input signed [{s}:0] si, "
            f"input [{acc - 1}:0] ti, output reg signed [{y - 1}:0] d);\n"
            f"reg signed [{a - 1}:0] rr; reg signed [{s}:0] sr; reg [{acc - 1}:0] tr;\n"
            f"always @(posedge clk) begin rr <= ri; sr <= si; tr <= ti; "
            f"d <= rr * sr + $signed({{1'b0, tr, {r}'d0}}); end\nendmodule\n")


@pytest.mark.parametrize("shape, measured", YOSYS_MULTIPLY_ADD)
def test_split_multiply_add_equals_yosys(shape, measured):
    a, s, _, r, y = shape
    sites, blocks = measured
    assert multiplier_dsp_blocks(a, s, "ecp5-85f") == blocks
    model = split_multiply_add_bits(a, s, y, r, "ecp5-85f")
    assert (model > 0) == (blocks > 1)
    assert abs((model or y - r) - sites) <= 1
    assert split_multiply_add_bits(a, s, y, r, "up5k") == 0     # the SB_MAC16 adds


@pytest.mark.synth
@pytest.mark.parametrize("shape, measured", [YOSYS_MULTIPLY_ADD[i] for i in (1, 3, 10)])
def test_split_multiply_add_table_is_what_yosys_gives(shape, measured, tmp_path):
    """The table above still holds for the pinned Yosys: one unsplit, a 2-way and a 4-way
    split multiply-add."""
    from khop.boards.build import parse_yosys_stats, toolchain_env

    (tmp_path / "t.v").write_text(multiply_add_verilog(*shape))
    subprocess.run([toolchain_env()["YOSYS"], "-q", "-p",
                    "read_verilog t.v; synth_ecp5 -top t; tee -q -o t.rpt stat"],
                   cwd=tmp_path, check=True, capture_output=True)
    stats = parse_yosys_stats((tmp_path / "t.rpt").read_text(), "ecp5")
    assert (synth_luts(stats, "ecp5"), stats["dsp"]) == measured


def test_a_lookup_table_read_by_several_queries_is_a_ram_per_query_or_logic():
    """A RAM has one read port: the lookup table takes a copy per query at that many times the
    cost, while flip-flops hold its words once. Yosys (make sweep): N=64, P=128 on the UP5K with
    2-bit kernels puts the 65 x 2 table in logic with 2 queries (12 SB_RAM40_4K in all) and in a
    SB_RAM40_4K with one (13), and N=32, P=96 with 7-bit kernels its 33 x 7 table read by 3
    queries in 3 SB_RAM40_4K (make estimate-check); the ULX3S' 101 x 4 table is 8 copies of 7
    TRELLIS_DPR16X4."""
    assert map_memory(65, 2, "ice40", read_ports=1).kind == "bram"
    two = map_memory(65, 2, "ice40", read_ports=2)
    assert (two.kind, two.cells, two.copies) == ("logic", 0, 2)
    assert two.describe() == "logic (65 x 2, 2 read ports)"
    three = map_memory(33, 7, "ice40", read_ports=3)
    assert (three.kind, three.cells, three.copies) == ("bram", 3, 3)
    prm = device_params("up5k", 64, 128, bits=2, lanes=16, batch=2)
    assert prm.kernel_bits == 2 and memory_maps(prm, "up5k")["lut"].kind == "logic"
    assert estimate(prm, "up5k").bram == 12
    assert estimate(device_params("up5k", 64, 128, bits=2, lanes=16, batch=1), "up5k").bram == 13
    ulx = memory_maps(device_params("ecp5-85f", 100, 300), "ecp5-85f")["lut"]
    assert (ulx.kind, ulx.cells, ulx.copies) == ("lutram", 56, 8)
    # Its flip-flops: the 130 bits of its words once and a 2-bit read register per port.
    rams = [mm for mm in memory_maps(prm, "up5k").values() if mm.kind == "bram"]
    assert model_terms(prm, "up5k")["ffs"]["mem"] == \
        sum((2 * mm.width + mm.addr_bits + 2) * mm.copies for mm in rams) + 65 * 2 + 2 * 2


def test_model_terms_count_a_memory_left_in_logic_with_its_read_register():
    """N=32, P=64, 8 lanes on the UP5K: the threshold memory (4 words of 8 units x 12 bits) is
    flip-flops, its words and its read register (Yosys: 384 + 96)."""
    prm = device_params("up5k", 32, 64, bits=2, lanes=8, kernel_bits=7)
    maps = memory_maps(prm, "up5k")
    assert (maps["threshold"].kind, maps["threshold"].depth, maps["threshold"].width) \
        == ("logic", 4, 96)
    inferred = [mm for mm in maps.values() if mm.kind in ("bram", "lutram")]
    emulation = sum((2 * mm.width + mm.addr_bits + 2) * mm.copies for mm in inferred)
    assert model_terms(prm, "up5k")["ffs"]["mem"] == emulation + 4 * 96 + 96


# (a, s) -> (SB_MAC16, MULT18X18D): the DSP blocks of a threshold unit's multiplier, r_fx of a
# bits (signed) times S_K of s bits (a signed register of s + 1 bits) into a + s bits, each from
# a Yosys 0.70 synth_ice40 -dsp / synth_ecp5 run of such a registered multiplier (the real
# SignUpdate of (12, 15), (12, 16), (12, 24) and, on the ECP5, (20, 24) gave the same).
YOSYS_DSP = [
    ((12, 15), (1, 1)),     # the boards' 8 fractional threshold bits, P = 300
    ((12, 16), (1, 1)),     # S_K as wide as the block: its sign bit, a constant 0, is no slice
    ((12, 17), (2, 1)),
    ((12, 19), (2, 2)),
    ((12, 24), (2, 2)),     # kernel_bits 16
    ((12, 33), (3, 2)),
    ((17, 15), (1, 1)),     # one bit over: the top bit's product is logic
    ((18, 15), (2, 1)),
    ((20, 15), (2, 2)),
    ((19, 19), (3, 2)),     # both operands sliced: not the product of the slice counts
    ((20, 24), (4, 4)),     # the generic 16 fractional threshold bits, kernel_bits 16
    ((20, 36), (5, 4)),
    ((33, 33), (6, 4)),
    ((5, 6), (1, 1)),
    ((5, 5), (0, 1)),       # a product under 11 bits is logic on the iCE40
    ((2, 2), (0, 1)),
]


@pytest.mark.parametrize("shape, blocks", YOSYS_DSP)
def test_multiplier_dsp_blocks_equal_yosys(shape, blocks):
    assert (multiplier_dsp_blocks(*shape, "up5k"), multiplier_dsp_blocks(*shape, "ecp5-85f"),
            multiplier_dsp_blocks(*shape, "hx8k")) == (*blocks, 0)


def test_dsp_blocks_are_the_threshold_units_multipliers():
    """Each threshold unit's multiplier ``r_fx * S_K`` in one DSP block or several
    (:data:`YOSYS_DSP`); none on a device without them."""
    ridge = device_params("up5k", 100, 300, bits=2, kernel_bits=7)   # the iCEBreaker's 8 units
    assert ridge.multiplier_shape == (12, 15)
    assert dsp_blocks(ridge, "up5k") == 8
    assert dsp_blocks(device_params("up5k", 100, 1000, bits=2, kernel_bits=7), "up5k") == 8
    wide = device_params("up5k", 100, 300, bits=2, kernel_bits=16)   # S_K of 24 bits
    assert wide.multiplier_shape == (12, 24) and wide.threshold_units == 8
    assert dsp_blocks(wide, "up5k") == 8 * 2            # two SB_MAC16 a unit
    assert dsp_blocks(wide, "ecp5-85f") == 8 * 2        # and two MULT18X18D
    assert dsp_blocks(wide, "hx8k") == 0
    generic = hardware_params(100, 300, bits=2, lanes=16)   # R = 16: 20 x 25 bits
    assert generic.multiplier_shape == (20, 24)
    assert dsp_blocks(generic, "ecp5-25f") == 4 * 2 * 2
    est = estimate(wide, "up5k")
    assert (est.dsp, est.dsp_available) == (16, 8)
    assert (est.as_dict()["dsp"], est.as_dict()["dsp_available"]) == (16, 8)


def test_estimate_checks_the_dsp_blocks():
    """9 threshold units need 9 of the UP5K's 8 SB_MAC16: short, by one."""
    nine = device_params("up5k", 100, 300, bits=2, threshold_units=9)
    est = estimate(nine, "up5k", calibration=_calibration())
    assert not est.fits and est.dsp == 9
    assert est.short == [("DSP blocks (SB_MAC16, 1 per threshold unit, 9 units): 9 needed, "
                          "8 available (1 short)")]
    text = est.format()
    assert "  DSP blocks       9/8 (112 %, 9 threshold units)" in text
    assert "does NOT fit the iCE40UP5K: DSP blocks" in text
    eight = estimate(device_params("up5k", 100, 300, bits=2, threshold_units=8), "up5k",
                     calibration=_calibration())
    assert eight.fits and eight.dsp == 8
    # No DSP blocks, no line and no check: the multipliers are logic.
    hx = estimate(device_params("hx8k", 64, 128, bits=2), "hx8k", calibration=_calibration())
    assert (hx.dsp, hx.dsp_available) == (0, 0) and "DSP" not in hx.format()


def test_a_design_short_only_of_logic_within_the_tolerance_may_fit(capsys):
    """The verdict follows khop build's check before synthesis: short of nothing but logic, by
    less than the model's LUT tolerance, a design may fit (exit status 0, "may not fit"); beyond
    it, or short of blocks, it does not (exit status 1)."""
    base = estimate(device_params("up5k", 100, 300, bits=2, lanes=20, batch=2), "up5k")
    tol = base.calibration["tolerance"]["luts"]
    for logic, verdict in ((base.logic_available, "fits"),
                           (base.logic_available + 1, "may not fit"),
                           (int(base.logic_available * (1 + tol)), "may not fit"),
                           (int(base.logic_available * (1 + tol)) + 1, "does NOT fit")):
        est = replace(base, logic=logic, fits=logic <= base.logic_available,
                      short=[] if logic <= base.logic_available else [f"logic cells: {logic}"])
        assert est.format().splitlines()[-1].strip().startswith(verdict), logic
        assert est.borderline == (verdict == "may not fit")
        assert est.as_dict()["borderline"] == est.borderline
    # Short of DSP blocks as well: does not fit, whatever the logic.
    nine = estimate(device_params("up5k", 100, 300, bits=2, threshold_units=9), "up5k")
    assert not nine.borderline
    for args, status in ((["-N", "100", "-P", "300", "--lanes", "25", "--batch", "2"], None),
                         (["-N", "100", "-P", "300", "--lanes", "20", "--batch", "4"], 1)):
        est = estimate(device_params("up5k", 100, 300, bits=2, lanes=int(args[5]),
                                     batch=int(args[7])), "up5k")
        code = main(["estimate", "--device", "up5k", *args])
        out = capsys.readouterr().out
        assert code == (0 if est.fits or est.borderline else 1)
        if status is not None:
            assert code == status and "does NOT fit" in out


def test_committed_calibration_covers_both_families():
    cal = load_calibration()
    assert set(cal["families"]) == {"ice40", "ecp5"}
    assert cal["tools"]["yosys"]
    for fam in cal["families"].values():
        assert set(fam["models"]) == {"luts", "carries", "ffs"}
        assert fam["tolerance"]["luts"] <= 0.15 and fam["tolerance"]["bram"] == 0


def test_cli_estimate_prints_the_figures(capsys):
    assert main(["estimate", "--device", "up5k", "-N", "100", "-P", "300", "--lanes", "8",
                 "--batch", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("up5k (iCE40UP5K): N=100 P=300 2-bit, 8 lanes, batch 1")
    assert "SPRAM            1/4 (exact)" in out and "fits the iCE40UP5K" in out
    assert "DSP blocks       8/8 (100 %, 8 threshold units)" in out
    assert "thresholds       6 SB_RAM40_4K (13 x 96)" in out
    params = device_params("up5k", 100, 300, lanes=8, batch=1)
    assert f"cycles per step  {params.cycles_per_step}" in out


def test_cli_estimate_json_and_exit_status_when_short(capsys):
    assert main(["estimate", "--device", "up5k", "-N", "1000", "-P", "3000", "--kernel-bits", "7",
                 "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["fits"] is False and doc["device"] == "up5k" and doc["params"]["n"] == 1000
    # P = 3000: S_K of 18 bits, 12 x 19-bit multipliers, two SB_MAC16 for each of the 8 units.
    assert (doc["dsp"], doc["dsp_available"]) == (16, 8)
    assert any(s.startswith("DSP blocks (SB_MAC16, 2 per threshold unit, 8 units): 16 needed")
               for s in doc["short"])


def test_cli_estimate_bad_device_is_one_line_error(capsys):
    assert main(["estimate", "--device", "xc7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'xc7'" in err and "ecp5-85f" in err


def test_cli_estimate_lanes_above_n_is_one_line_error(capsys):
    assert main(["estimate", "--device", "hx8k", "-N", "8", "--lanes", "16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lanes must be in 1..8, not 16" in err


@pytest.mark.parametrize("device", ["up5k", "hx8k", "ecp5-25f", "ecp5-85f"])
def test_cli_estimate_defaults_come_from_the_target_table(device, capsys):
    target = device_target(device)
    assert main(["estimate", "--device", device, "-N", "100", "-P", "300", "--json"]) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    assert doc["clock_mhz"] == target.clock_mhz
    expect = target.params(100, 300)
    assert doc["params"] == expect.as_dict()
    assert doc["params"]["lanes"] == min(100, target.defaults.lanes)
    assert doc["params"]["kernel_bits"] == (target.defaults.kernel_bits
                                            or sharp_kernel_bits(0.02, 100, 300))
