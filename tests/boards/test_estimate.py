"""The resource model: devices and targets, Yosys' memory mapping, the calibrated estimate,
and ``khop estimate``."""

import json

import pytest

from khop.boards.estimate import (
    estimate,
    load_calibration,
    map_memory,
    memory_maps,
    model_terms,
)
from khop.boards.targets import DEVICES, device_target, get_board, get_device
from khop.cli import main
from khop.hw.params import hardware_params


def device_params(device, n, p, **options):
    return device_target(device).params(n, p, **options)


def test_devices_and_their_resources():
    assert {d: (DEVICES[d].luts, DEVICES[d].bram, DEVICES[d].spram) for d in DEVICES} == {
        "up5k": (5280, 30, 4), "hx8k": (7680, 32, 0), "ecp5-25f": (24288, 56, 0),
        "ecp5-85f": (83640, 208, 0)}
    assert get_device("ecp5-85f").bram_cell == "DP16KD"
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
    ("ice40", 152, 8, "bram", 1),        # thresholds of N=64, 8 lanes, 1-bit digits
    ("ice40", 38, 32, "bram", 2),        # thresholds of N=64, 32 lanes: 256 x 16, side by side
    ("ecp5", 17, 4, "lutram", 2),        # TRELLIS_DPR16X4
    ("ecp5", 8, 16, "lutram", 4),
    ("ecp5", 3, 281, "lutram", 71),
    ("ecp5", 101, 16, "bram", 1),
    ("ecp5", 300, 100, "bram", 3),       # 512 x 36 (PDPW16KD mode)
    ("ecp5", 2370, 240, "bram", 34),
    ("ecp5", 13391, 277, "bram", 217),
    ("ecp5", 6589, 6, "bram", 3),
    ("ecp5", 80, 16, "lutram", 20),      # thresholds of N=64, 8 lanes, 2-bit digits
    ("ecp5", 40, 64, "lutram", 48),      # thresholds of N=100, 32 lanes
    ("ecp5", 130, 16, "bram", 1),        # thresholds of N=100, 8 lanes
    ("ecp5", 80, 64, "bram", 2),         # thresholds of N=256, 32 lanes
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
    # 13 blocks x 12 1-bit digits (threshold bits k + R + 2 with the target's R = 8), 8 lanes.
    assert params.memory_shapes["threshold"] == (13 * 12, 8)
    assert memory_maps(params, "up5k")["threshold"].describe() == "1 SB_RAM40_4K (156 x 8)"


def test_device_params_use_a_pattern_per_cycle_and_the_device_kernel_width():
    assert device_params("hx8k", 100, 300).kernel_bits == 12
    # Block-outer: the distance units work in block 0 only, a pattern per cycle.
    p = device_params("up5k", 100, 300, lanes=16)
    assert (p.popcount_width, p.chunks, p.blocks) == (100, 1, 7)
    assert p.kernel_bits == get_board("icebreaker").defaults.kernel_bits
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
    # lookup table 65 x 12 in 15 TRELLIS_DPR16X4, thresholds 20 x 64 in 32
    assert ecp5.logic == ecp5.luts + 4 * ecp5.lutram and ecp5.lutram == 15 + 32


def test_estimate_cycles_and_retrieval_rate():
    params = device_params("up5k", 100, 300, lanes=8)
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


def test_model_terms_of_the_sign_update_follow_the_digit_serial_lanes():
    """Per lane one adder of sum_bits + digit bits + 2 bits (the product r_i * S_K), the
    compare of its accumulator (sum_bits + 2 bits, signed) with the sum's bits above the
    product's bits past 2^R, and those bits; a digit of D bits adds D - 1 adders; no
    multiplier, no quotient registers."""
    params = device_params("up5k", 100, 300, bits=2, lanes=8)
    d, s = params.threshold_digit_bits, params.sum_bits
    high = params.threshold_digits * d - params.threshold_frac_bits
    compare = max(s + 2, params.acc_bits - high + 1)
    terms = model_terms(params, "up5k")
    assert d == 1 and terms["luts"]["sign"] == 8 * (s + d + 2 + compare + high)
    wide = hardware_params(100, 300, bits=2, lanes=8, kernel_bits=16, threshold_digit_bits=2)
    d, s = wide.threshold_digit_bits, wide.sum_bits
    high = wide.threshold_digits * d - wide.threshold_frac_bits
    compare = max(s + 2, wide.acc_bits - high + 1)
    assert d == 2
    assert (model_terms(wide, "ecp5-85f")["luts"]["sign"]
            == 8 * (s + d + 2 + compare + (s + d) + high))
    narrow = hardware_params(100, 300, bits=2, lanes=8, threshold_digit_bits=1)
    one = model_terms(narrow, "hx8k")["ffs"]["regs"]
    two = model_terms(hardware_params(100, 300, bits=2, lanes=8, threshold_digit_bits=2),
                      "hx8k")["ffs"]["regs"]
    assert two > one     # one more registered multiple of S_K


def test_committed_calibration_covers_both_families():
    cal = load_calibration()
    assert set(cal["families"]) == {"ice40", "ecp5"}
    assert cal["tools"]["yosys"]
    for fam in cal["families"].values():
        assert set(fam["models"]) == {"luts", "carries", "ffs"}
        assert fam["tolerance"]["luts"] <= 0.15 and fam["tolerance"]["bram"] == 0


def test_cli_estimate_prints_the_figures(capsys):
    assert main(["estimate", "--device", "up5k", "-N", "100", "-P", "300", "--lanes", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("up5k (iCE40UP5K): N=100 P=300 2-bit, 8 lanes")
    assert "SPRAM            1/4 (exact)" in out and "fits the iCE40UP5K" in out
    assert "thresholds       1 SB_RAM40_4K (156 x 8)" in out
    assert f"cycles per step  {device_params('up5k', 100, 300, lanes=8).cycles_per_step}" in out


def test_cli_estimate_json_and_exit_status_when_short(capsys):
    assert main(["estimate", "--device", "up5k", "-N", "1000", "-P", "3000", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["fits"] is False and doc["device"] == "up5k" and doc["params"]["n"] == 1000


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
    assert doc["params"]["kernel_bits"] == target.defaults.kernel_bits
