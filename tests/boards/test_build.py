"""Board builds: the resource estimate, the report parsers, the command line, and (marked
``synth``) real Yosys/nextpnr runs through YoWASP."""

import json
import re
from pathlib import Path

import pytest

from khop.boards.build import (
    BuildError,
    build_board,
    design_instances,
    estimate,
    failed_dir,
    format_module_utilisation,
    module_utilisation,
    parse_nextpnr_utilisation,
    parse_yosys_stats,
)
from khop.boards.pll import ecp5_pll, ice40_pll
from khop.boards.spram import check_spram_fit
from khop.boards.targets import get_board
from khop.cli import main
from khop.hw.params import hardware_params
from khop.model.fixed import sharp_kernel_bits
from khop.model.netfile import Network, save_network


def board_params(name, n, p, **options):
    return get_board(name).params(n, p, **options)


RIDGE = hardware_params(100, 300, bits=2, lanes=16)


def test_unsupported_board_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unsupported board 'de10'; choose one of "
                                         "icebreaker, ulx3s-85f"):
        get_board("de10")


def test_estimate_ridge_on_icebreaker_puts_weights_in_spram():
    est = estimate("icebreaker", RIDGE)
    # patterns 300 x 100 bits: 13 block RAMs in 512 x 8 mode; LUT 101 x 16: 1; thresholds
    # (7 blocks x 4 groups of the generic 4 threshold units of 20 bits: 28 words x 80 bits): 5;
    # the kernel buffer (300 x 16, block-outer): 2; the link's receive buffer (511 x 8): 1.
    # The memories of these generic defaults (16-bit kernels, 16 fractional threshold bits)
    # fit the UP5K, their multipliers do not: 20 x 25 bits, 4 SB_MAC16 for each of the 4
    # threshold units.
    assert (est["bram"], est["spram"]) == (22, 2)
    assert (est["dsp"], est["dsp_available"]) == (16, 8)
    assert ("DSP blocks (SB_MAC16, 4 per threshold unit, 4 units): 16 needed, 8 available "
            "(8 short)" in est["short"])
    assert not [s for s in est["short"] if s.startswith(("block RAM", "SPRAM"))]
    assert est["accumulator_ffs"] == 16 * 25      # one query: the lanes' accumulators


def test_estimate_says_which_resource_is_short_and_by_how_much():
    big = hardware_params(1000, 3000, bits=2, lanes=16, batch=32)
    est = estimate("icebreaker", big)
    text = " ".join(est["short"])
    assert "block RAM" in text and "SPRAM" in text and "flip-flops" in text
    assert f"({est['bram'] - 30} short)" in text
    with pytest.raises(ValueError, match=r"needs \d+ SPRAM blocks, the UP5K has 4"):
        check_spram_fit(big)


def test_build_refuses_before_running_when_the_estimate_is_short(tmp_path):
    with pytest.raises(BuildError, match="does not fit the iCEBreaker.*block RAM"):
        build_board("icebreaker", hardware_params(1000, 3000, bits=2, lanes=16), tmp_path / "b",
                    run=False)
    assert not (tmp_path / "b").exists()


def test_build_refuses_logic_that_the_estimate_puts_beyond_its_tolerance(tmp_path):
    """Memories (28 of 30 blocks) and DSP blocks (8 of 8) fit, but 20 lanes x 4 queries need
    about twice the UP5K's logic cells: refused before synthesis. One query (within the
    tolerance) is not."""
    big = board_params("icebreaker", 100, 300, bits=2, lanes=20, batch=4)
    est = estimate("icebreaker", big)
    assert est["bram"] <= 30 and est["dsp"] == 8 and est["logic_estimate"] > 5280 * 1.15
    with pytest.raises(BuildError, match=r"20 lanes x 4 queries does not fit the iCEBreaker.*"
                                         r"logic cells: about \d+ needed.*5280 available"):
        build_board("icebreaker", big, tmp_path / "b", run=False)
    assert not (tmp_path / "b").exists()
    one = board_params("icebreaker", 100, 300, bits=2, lanes=20, batch=1)
    assert estimate("icebreaker", one)["short"] == []


def test_build_refuses_threshold_units_beyond_the_dsp_blocks(tmp_path):
    """9 threshold units need 9 SB_MAC16, the UP5K has 8: refused before synthesis."""
    nine = board_params("icebreaker", 100, 300, bits=2, threshold_units=9, batch=1)
    est = estimate("icebreaker", nine)
    assert (est["dsp"], est["dsp_available"]) == (9, 8)
    with pytest.raises(BuildError, match=r"DSP blocks \(SB_MAC16, 1 per threshold unit, 9 "
                                         r"units\): 9 needed, 8 available \(1 short\)"):
        build_board("icebreaker", nine, tmp_path / "b", run=False)
    assert not (tmp_path / "b").exists()


def test_plls_match_icepll_and_ecppll():
    pll = ice40_pll(12e6, 30e6)      # icepll -i 12 -o 30: DIVR 0, DIVF 79, DIVQ 5, FILTER 1
    assert (pll.divr, pll.divf, pll.divq, pll.filter_range, pll.f_out) == (0, 79, 5, 1, 30e6)
    pll = ecp5_pll(25e6, 75e6)       # ecppll -i 25 -o 75: CLKI 1, CLKFB 3, CLKOP 8
    assert (pll.clki_div, pll.clkfb_div, pll.clkop_div, pll.f_out) == (1, 3, 8, 75e6)
    with pytest.raises(ValueError, match="16..275 MHz"):
        ice40_pll(12e6, 5e6)


def test_board_params_defaults():
    p = board_params("icebreaker", 100, 300)
    target = get_board("icebreaker")
    assert (p.lanes, p.batch, p.kernel_bits) == (target.defaults.lanes, target.defaults.batch,
                                                 sharp_kernel_bits(0.02, 100, 300))
    assert p.popcount_width == 100 and p.chunks == 1   # a pattern per cycle in block 0
    big = board_params("ulx3s-85f", 256, 768)
    assert (big.lanes, big.batch) == (get_board("ulx3s-85f").defaults.lanes,
                                      get_board("ulx3s-85f").defaults.batch)


YOSYS_LOG = """
=== design hierarchy ===

   Number of cells:               8468
     SB_CARRY                     1268
     SB_DFF                        111
     SB_DFFE                       122
     SB_DFFESR                    3407
     SB_LUT4                      3524
     SB_MAC16                        8
     SB_RAM40_4K                    14
     SB_SPRAM256KA                   2
"""

YOSYS_LOG_ECP5 = """
=== design hierarchy ===

   Number of cells:               4110
     CCU2C                         310
     DP16KD                          9
     LUT4                         2130
     MULT18X18D                     16
     TRELLIS_DPR16X4                40
     TRELLIS_FF                   1605
"""

NEXTPNR_LOG = """
Info: Device utilisation:
Info: 	         ICESTORM_LC:    6668/   5280   126%
Info: 	        ICESTORM_RAM:      14/     30    46%
Info: 	        ICESTORM_DSP:       8/      8   100%
"""


def test_module_utilisation_attributes_each_cell_to_its_longest_instance_path():
    rtlil = ("module \\top\nend\nmodule \\top.core\nend\nmodule \\top.core.mac\nend\n"
             "module \\top.core.mac_x\nend\n")
    instances = design_instances(rtlil, "top")
    assert instances == ["core", "core.mac", "core.mac_x"]
    cells = {"core.mac.acc0_TRELLIS_FF_Q": "TRELLIS_FF",
             "core.mac.acc0_LUT4_Z": "LUT4",
             "core.mac_x.sum_CCU2C_S0": "CCU2C",       # not core.mac's: a longer name
             "core.i_load__payload.target_LUT4_C": "LUT4",   # a dotted signal name
             "core.mem_DP16KD": "DP16KD",
             "core.mac_x.prod_MULT18X18D_P": "MULT18X18D",
             "heartbeat_LUT4": "LUT4",
             "core.pll_EHXPLLL": "EHXPLLL"}            # no resource column: not counted
    netlist = {"modules": {"top": {"cells": {n: {"type": t} for n, t in cells.items()}}}}
    mods = module_utilisation(netlist, instances, "ecp5")
    assert mods["core.mac"] == {"luts": 1, "carries": 0, "ffs": 1, "bram": 0, "spram": 0,
                                "lutram": 0, "dsp": 0}
    assert mods["core.mac_x"]["carries"] == 1
    assert (mods["core"]["luts"], mods["core"]["bram"]) == (1, 1)
    assert mods["core.mac_x"]["dsp"] == 1
    assert mods[""]["luts"] == 1
    table = format_module_utilisation(mods, "ecp5")
    assert table[0].split() == ["module", "LUT4", "carries", "FFs", "BRAM", "DPR16X4", "DSP"]
    assert format_module_utilisation(mods, "ice40")[0].split()[-2:] == ["SPRAM", "DSP"]
    assert table[-1].split()[0] == "core.mac_x"         # largest LUT count first


def test_parsers():
    assert parse_yosys_stats(YOSYS_LOG, "ice40") == {"luts": 3524, "carries": 1268,
                                                     "ffs": 3640, "bram": 14, "spram": 2,
                                                     "lutram": 0, "dsp": 8}
    assert parse_yosys_stats(YOSYS_LOG_ECP5, "ecp5") == {"luts": 2130, "carries": 310,
                                                         "ffs": 1605, "bram": 9, "spram": 0,
                                                         "lutram": 40, "dsp": 16}
    assert parse_nextpnr_utilisation(NEXTPNR_LOG) == {"ICESTORM_LC": (6668, 5280),
                                                      "ICESTORM_RAM": (14, 30),
                                                      "ICESTORM_DSP": (8, 8)}


def test_synthesis_maps_multipliers_to_dsp_blocks_where_the_device_has_them():
    """``synth_ice40 -dsp`` on the UP5K (SB_MAC16), not on the HX8K (none); ``synth_ecp5``
    maps to MULT18X18D by default."""
    from khop.boards.build import abc_mapping_script, synth_options

    assert [synth_options(d) for d in ("up5k", "hx8k", "ecp5-25f", "ecp5-85f")] == \
        ["-dsp", "", "", ""]
    assert abc_mapping_script("top")["synth_opts"] == "-run begin:map_luts"
    assert abc_mapping_script("top", "-nodsp")["synth_opts"] == "-nodsp -run begin:map_luts"


def test_generated_build_script_maps_the_ice40_multipliers_to_dsp_blocks(tmp_path):
    params = board_params("icebreaker", 16, 32, batch=1)      # 8 threshold units of 12 x 12
    build_board("icebreaker", params, tmp_path / "b", run=False)
    script = (tmp_path / "b" / "khop_board.ys").read_text()
    assert re.search(r"synth_ice40 .*-dsp", script), script
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert (report["estimate"]["dsp"], report["estimate"]["dsp_available"]) == (8, 8)
    assert "8/8 DSP" in (tmp_path / "b" / "report.txt").read_text()


@pytest.fixture(scope="module")
def ridge_file(tmp_path_factory):
    import numpy as np
    rng = np.random.default_rng(0)
    patterns = np.where(rng.random((300, 100)) < 0.5, -1, 1).astype(np.int8)
    path = tmp_path_factory.mktemp("net") / "net.npz"
    save_network(path, Network(patterns=patterns, alpha=rng.normal(0, 2.5, (300, 100)),
                               gamma=0.02, training={}, loss_history=np.zeros(1)))
    return path


def test_cli_build_unknown_board_is_one_line_error(ridge_file, capsys):
    assert main(["build", str(ridge_file), "--board", "de10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'de10'" in err[0] and "icebreaker" in err[0]


def test_cli_build_generate_only_writes_the_scripts(ridge_file, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["build", str(ridge_file), "--board", "icebreaker", "-o", str(out),
                 "--generate-only"]) == 0
    assert (out / "khop_board.il").exists() and (out / "build_khop_board.sh").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["params"]["lanes"] == get_board("icebreaker").defaults.lanes
    assert report["estimate"]["short"] == []
    assert "icebreaker" in capsys.readouterr().out
    assert not failed_dir(out).exists() and not list(tmp_path.glob(".*.tmp"))


def test_cli_build_takes_the_hardware_options(ridge_file, tmp_path):
    out = tmp_path / "b"
    assert main(["build", str(ridge_file), "--board", "ulx3s-85f", "-o", str(out),
                 "--generate-only", "--lanes", "16", "--kernel-bits", "14", "--max-steps",
                 "12", "--batch", "3"]) == 0
    p = json.loads((out / "report.json").read_text())["params"]
    assert (p["lanes"], p["kernel_bits"], p["max_steps"], p["popcount_width"], p["batch"]) == \
        (16, 14, 12, 100, 3)


def test_cli_build_too_big_names_the_short_resource(tmp_path, capsys):
    import numpy as np
    rng = np.random.default_rng(0)
    path = tmp_path / "big.npz"
    save_network(path, Network(patterns=np.ones((3000, 1000), dtype=np.int8),
                               alpha=rng.normal(0, 1, (3000, 1000)), gamma=0.002,
                               training={}, loss_history=np.zeros(1)))
    assert main(["build", str(path), "--board", "icebreaker", "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "short)" in err and "SPRAM" in err


def test_cli_run_against_the_emulator(ridge_file, capsys):
    assert main(["run", str(ridge_file), "--port", "emulated", "--emulate-lanes", "16",
                 "--queries", "5"]) == 0
    out = capsys.readouterr().out
    assert "5 queries" in out and "0 differ from the integer model" in out


def test_cli_run_missing_port_is_one_line_error(ridge_file, capsys):
    assert main(["run", str(ridge_file), "--port", "/dev/nonexistent-khop"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/dev/nonexistent-khop" in err


@pytest.mark.synth
@pytest.mark.parametrize("board, params", [
    # The ridge network with the board's geometry (about 1.5 minutes), and on the ECP5 with
    # 32 lanes and 2 queries in flight (the default 100 x 2 takes about half an hour:
    # make bench-hardware builds it).
    ("icebreaker", board_params("icebreaker", 100, 300)),
    ("ulx3s-85f", board_params("ulx3s-85f", 100, 300, lanes=32, batch=2)),
])
def test_synthesis_places_routes_packs_and_meets_the_default_clock(board, params, tmp_path):
    r = build_board(board, params, tmp_path / board)
    assert r.ok and r.bitstream
    assert r.synthesis["spram"] == r.estimate["spram"]
    assert r.synthesis["dsp"] == r.estimate["dsp"] > 0      # the threshold units' multipliers
    assert (r.synthesis["spram"] > 0) == (board == "icebreaker")    # the weights, in SPRAM
    assert r.clock_mhz == get_board(board).clock_hz / 1e6
    assert r.fmax_mhz >= r.clock_mhz, r.format()
    assert (tmp_path / board / "report.txt").read_text().startswith(board)
    # The synthesis by module adds up to its totals; the sign update and the MAC array are
    # modules of their own.
    for kind, total in r.synthesis.items():
        assert sum(m[kind] for m in r.modules.values()) == total, kind
    assert r.modules["core.link.accel.fsm"]["luts"] > 0
    assert r.modules["core.link.accel.mac"]["ffs"] > 0
    assert "by module" in (tmp_path / board / "report.txt").read_text()


@pytest.mark.synth
def test_yosys_keeps_the_lanes_control_copies_apart(tmp_path):
    """The MAC array's clear flags and kernels have one copy per FANOUT_LANES lanes (the sign
    update has none: its threshold units select their lanes' sums from the beat); the build's
    Yosys script keeps them as separate flip-flops (without it Yosys merges them into one that
    drives every lane: checked too)."""
    import subprocess

    from khop.boards.build import KEEP_FANOUT_COPIES, TOP, synth_options, toolchain_env
    from khop.hw.fanout import FANOUT_COPY, fanout_groups

    params = board_params("ulx3s-85f", 32, 64, lanes=32, batch=1)
    assert params.blocks == 1       # so the kernels' copies are loaded straight from `k1`
    build_board("ulx3s-85f", params, tmp_path / "gen", run=False)
    groups = fanout_groups(params.lanes)
    yosys = toolchain_env()["YOSYS"]
    for keep in (True, False):
        script = (f"read_rtlil {TOP}.il; {KEEP_FANOUT_COPIES if keep else ''}; "
                  f"synth_ecp5 {synth_options('ecp5-85f')} -top {TOP} -json out.json")
        subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path / "gen", check=True,
                       capture_output=True)
        module = json.loads((tmp_path / "gen" / "out.json").read_text())["modules"][TOP]
        ffs = [cell["connections"] for cell in module["cells"].values()
               if cell["type"] == "TRELLIS_FF"]
        ff_outputs = {ff["Q"][0] for ff in ffs}
        assert not [name for name in module["netnames"]
                    if re.search(rf"fsm\.\w*{FANOUT_COPY}", name)]
        # The clear flags' copies by their own nets (Yosys names other nets after them too,
        # with suffixes; one query: a bit each). A copy counts by its flip-flop; copies Yosys
        # merged share it.
        own = re.compile(rf"mac\.clear_{FANOUT_COPY}\d+$")
        copies = {next(b for b in net["bits"] if b in ff_outputs)
                  for name, net in module["netnames"].items()
                  if own.search(name) and any(b in ff_outputs for b in net["bits"])}
        # The kernels' copies by their input, the register `k1` (their nets may be named after
        # the multiples they are part of, `multiple0_1_0`): one flip-flop per bit and copy.
        # (`k1` is an array of one query's kernel: Yosys may name it by its element.)
        k1 = {b for name, net in module["netnames"].items()
              if re.fullmatch(r"core\.link\.accel\.mac\.k1(\[0\])?", name) for b in net["bits"]}
        assert len(k1) == params.kernel_bits
        kernel_ffs = sum(ff["DI"][0] in k1 for ff in ffs)
        if keep:
            assert len(copies) == groups
            assert kernel_ffs == groups * params.kernel_bits
        else:
            assert len(copies) < groups
            assert kernel_ffs == params.kernel_bits


def test_a_failed_build_leaves_no_output_directory_and_keeps_its_logs(tmp_path, monkeypatch):
    from amaranth.build.run import BuildPlan

    def failing(self, root="build", **kwargs):
        (Path(root) / "khop_board.tim").write_text("ERROR: the router gave up\n")
        raise RuntimeError("the build script failed")

    monkeypatch.setattr(BuildPlan, "execute_local", failing)
    out = tmp_path / "b"
    with pytest.raises(BuildError, match=r"logs in .*b\.failed") as info:
        build_board("icebreaker", board_params("icebreaker", 16, 32), out, report=lambda s: None)
    assert "the router gave up" in str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    kept = failed_dir(out)
    assert (kept / "khop_board.tim").exists()
    assert json.loads((kept / "report.json").read_text())["ok"] is False


def test_an_ecp5_build_that_trips_yosys_abc9_assertion_is_mapped_again_with_abc(
        tmp_path, monkeypatch):
    """YoWASP Yosys 0.70 stops on an ABC9 assertion on some ECP5 netlists: the build runs
    once more with ABC instead of ABC9 for the LUT mapping (and only on that failure), and
    says so."""
    from amaranth.build.run import BuildPlan

    from khop.boards.build import ABC9_ASSERTION, ABC_LUT_MAPPING

    scripts = []

    def tripping(self, root="build", **kwargs):
        ys = next(text for name, text in self.files.items() if name.endswith(".ys"))
        scripts.append(ys)
        (Path(root) / "khop_board.rpt").write_text(f"ERROR: Assert failed in {ABC9_ASSERTION}.\n")
        raise RuntimeError("the build script failed")

    monkeypatch.setattr(BuildPlan, "execute_local", tripping)
    said = []
    with pytest.raises(BuildError, match="the build failed"):
        build_board("ulx3s-85f", board_params("ulx3s-85f", 16, 32), tmp_path / "b",
                    report=said.append)
    assert len(scripts) == 2
    assert ABC_LUT_MAPPING not in scripts[0] and "-run" not in scripts[0]
    # synth_ecp5 up to its LUT mapping, ABC, then synth_ecp5 from the cells on, then the netlist.
    second = scripts[1]
    order = [second.index(s) for s in ("synth_ecp5 -run begin:map_luts -top khop_board",
                                       ABC_LUT_MAPPING,
                                       "synth_ecp5 -top khop_board -run map_cells:",
                                       "write_json")]
    assert order == sorted(order)
    assert any("ABC9 assertion" in line for line in said)
    report = json.loads((failed_dir(tmp_path / "b") / "report.json").read_text())
    assert report["lut_mapping"] == ABC_LUT_MAPPING

    # Another failure is not retried, and an iCE40 build never is.
    scripts.clear()
    with pytest.raises(BuildError):
        build_board("icebreaker", board_params("icebreaker", 16, 32), tmp_path / "c",
                    report=lambda s: None)
    assert len(scripts) == 1


def test_a_placement_that_misses_the_clock_is_tried_again_with_other_seeds(tmp_path, monkeypatch):
    """Near a device's limits Fmax moves with the placement: a build that misses its clock
    places again with nextpnr --seed 2, 3, ... up to ``seeds``, stops at the first placement
    that meets it, and lists every placement in its report."""
    from amaranth.build.run import BuildPlan

    clock = get_board("icebreaker").clock_mhz
    fmax_by_seed = {seed: round(clock + delta, 2)
                    for seed, delta in {1: -0.9, 2: -0.3, 3: 1.8, 4: 2.0}.items()}
    f1, f2, f3 = fmax_by_seed[1], fmax_by_seed[2], fmax_by_seed[3]
    seeds_run = []

    def placing(self, root="build", **kwargs):
        script = next(text for name, text in self.files.items() if name.endswith(".sh"))
        seed = int(script.split("--seed ")[1].split()[0]) if "--seed " in script else 1
        seeds_run.append(seed)
        fmax = fmax_by_seed[seed]
        (Path(root) / "khop_board.tim").write_text(
            f"Info: Max frequency for clock 'clk': {fmax:.2f} MHz "
            f"({'PASS' if fmax >= clock else 'FAIL'} at {clock:.2f} MHz)\n")
        (Path(root) / "khop_board.bin").write_bytes(b"\0")

    monkeypatch.setattr(BuildPlan, "execute_local", placing)
    said = []
    params = board_params("icebreaker", 16, 32)
    report = build_board("icebreaker", params, tmp_path / "b", report=said.append)
    assert seeds_run == [1, 2, 3]
    assert report.fmax_mhz == f3 and report.ok
    assert report.placements == [(1, f1), (2, f2), (3, f3)]
    assert f"seed 1: {f1:.2f} MHz, seed 2: {f2:.2f} MHz, seed 3: {f3:.2f} MHz" in report.format()
    assert sum("placing again with nextpnr --seed" in line for line in said) == 2
    saved = json.loads((tmp_path / "b" / "report.json").read_text())
    assert saved["placements"] == [[1, f1], [2, f2], [3, f3]]

    # One seed: the first placement is kept, met or not.
    seeds_run.clear()
    report = build_board("icebreaker", params, tmp_path / "c", report=lambda s: None, seeds=1)
    assert seeds_run == [1] and report.fmax_mhz == f1
    assert f"MISSES the {clock:g} MHz clock" in report.format()
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        build_board("icebreaker", params, tmp_path / "d", seeds=0)
