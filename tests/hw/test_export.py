"""Verilog export and its JSON description (hw/export.py)."""

import json
import re

import pytest
from hw_helpers import accel_params, params_for, tiny_network

from khop.hw.export import SIMULATOR_FLAGS, TOP_NAME, describe, export, generate_verilog
from khop.hw.layout import LoadTarget, field_slices, load_layout, result_layout
from khop.hw.params import STEP_CYCLE_TERMS, AccelParams
from khop.sim.tools import verilator_lint


@pytest.fixture(scope="module")
def small():
    inet = tiny_network(23, 9, seed=1, weight_bits=2, max_steps=5, epochs=2)
    return inet, params_for(inet, lanes=5, popcount_width=7)


@pytest.fixture(scope="module")
def verilog_text(small):
    inet, prm = small
    return generate_verilog(prm, inet)


def port_widths(text):
    """``{name: (direction, width)}`` of the ports declared in the top module."""
    top = text[text.index(f"module {TOP_NAME}"):]
    top = top[:top.index("endmodule")]
    ports = {}
    for m in re.finditer(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s+)?"
                         r"([A-Za-z_][\w$]*)\s*;", top, re.M):
        direction, msb, name = m.groups()
        ports[name] = (direction, 1 if msb is None else int(msb) + 1)
    return ports


def expected_ports(prm):
    return {
        "clk": ("input", 1), "rst": ("input", 1),
        "i_query__valid": ("input", 1), "i_query__ready": ("output", 1),
        "i_query__payload": ("input", prm.n),
        "o_result__valid": ("output", 1), "o_result__ready": ("input", 1),
        "o_result__payload": ("output", result_layout(prm).size),
        "i_load__valid": ("input", 1), "i_load__ready": ("output", 1),
        "i_load__payload": ("input", load_layout(prm).size),
    }


def test_verilog_has_the_top_module_and_its_ports(small, verilog_text):
    _, prm = small
    assert f"module {TOP_NAME}(" in verilog_text
    assert port_widths(verilog_text) == expected_ports(prm)
    # 23 state bits + 8 step bits + converged; target + addr + data.
    assert result_layout(prm).size == 32
    assert load_layout(prm).size == 2 + prm.load_addr_bits + prm.load_data_bits


def test_verilog_passes_verilator_lint(verilog_text, tmp_path):
    path = tmp_path / f"{TOP_NAME}.v"
    path.write_text(verilog_text)
    ok, output = verilator_lint(path)
    assert ok, output


def test_export_writes_verilog_and_json(small, tmp_path):
    inet, prm = small
    v_path, j_path = export(prm, inet, tmp_path / "out", network_info={"seed": 1})
    assert (v_path.name, j_path.name) == (f"{TOP_NAME}.v", f"{TOP_NAME}.json")
    text = v_path.read_text()
    assert f"module {TOP_NAME}(" in text
    info = json.loads(j_path.read_text())

    assert info["top"] == TOP_NAME
    assert info["parameters"] == {"n": 23, "p": 9, "weight_bits": 2, "lanes": 5,
                                  "popcount_width": 7, "kernel_bits": 16,
                                  "threshold_frac_bits": 16, "max_steps": 5, "center": "median",
                                  "quantizer": prm.fixed.quantizer, "threshold_units": 4,
                                  "batch": 1}
    assert AccelParams.from_dict(info["parameters"]) == prm
    assert info["network"] == {"seed": 1}
    # Ports: the same names, directions and widths as the Verilog and the layouts.
    ports = {p["name"]: ("input" if p["direction"] == "in" else "output", p["width"])
             for p in info["ports"]}
    assert ports == expected_ports(prm) == port_widths(text)
    # Payload fields, from the LSB, as the layouts place them.
    for key, layout in (("o_result__payload", result_layout(prm)),
                        ("i_load__payload", load_layout(prm))):
        assert info["layouts"][key] == [{"name": name, "offset": f.offset, "width": f.width}
                                        for name, f in layout]
    assert [f["name"] for f in info["layouts"]["o_result__payload"]] == \
        ["state", "steps", "converged"]
    # Memories: 9 patterns x ceil(23/7) = 4 chunks of 7 bits; 9 x ceil(23/5) = 5 blocks of
    # 5 lanes x 2 bits; 24 lookup-table entries of 16 bits.
    mem = info["memories"]
    assert (mem["pattern"]["depth"], mem["pattern"]["width"], mem["pattern"]["bits"]) == \
        (36, 7, 252)
    assert (mem["weight"]["depth"], mem["weight"]["width"], mem["weight"]["bits"]) == \
        (45, 10, 450)
    assert (mem["lut"]["depth"], mem["lut"]["width"], mem["lut"]["bits"]) == (24, 16, 384)
    # 5 blocks of 5 thresholds of k + R + 2 = 20 bits, 4 threshold units: 2 groups of lanes
    # per block, 5 * 2 words of 4 * 20 bits.
    assert (mem["threshold"]["depth"], mem["threshold"]["width"], mem["threshold"]["bits"]) == \
        (10, 80, 800)
    assert mem["accumulator_flipflops"] == prm.accumulator_bits
    cyc = info["cycle_model"]
    assert cyc["cycles_per_step"] == prm.cycles_per_step
    assert cyc["bound_cycles_per_step"] == prm.bound_cycles_per_step == 9 * 5
    assert cyc["bound_cycles_per_query_step"] == prm.bound_cycles_per_query_step == 45
    assert (cyc["blocks"], cyc["chunks"], cyc["batch"]) == (5, 4, 1)
    assert "cycles_per_pattern" not in cyc
    assert cyc["loop_order"] == "block-outer"
    assert info["generation_seconds"] >= 0


@pytest.mark.parametrize(("n", "p", "lanes", "width", "batch"), [
    (23, 9, 5, 7, 1), (100, 300, 16, None, 1), (100, 300, 16, None, 8), (30, 10, 7, 4, 3),
    (17, 1, 17, 1, 32)])
def test_exported_formula_is_the_cycle_model(n, p, lanes, width, batch):
    """The formula written into khop_top.json (and the README) evaluates to the cycle model."""
    prm = accel_params(n=n, p=p, lanes=lanes, popcount_width=width, batch=batch)
    cyc = describe(prm)["cycle_model"]
    formula = cyc["formula"].split("=", 1)[1]
    names = {"chunks": prm.chunks, "blocks": prm.blocks, "p": prm.p, "batch": prm.batch,
             "threshold_groups": prm.threshold_groups}
    assert eval(formula, {"__builtins__": {}}, names) == prm.cycles_per_step
    assert cyc["cycles_per_step"] == prm.cycles_per_step
    assert cyc["batch"] == batch
    assert cyc["bound_cycles_per_step"] == p * prm.blocks
    assert cyc["bound_cycles_per_query_step"] == p * prm.blocks / batch
    assert describe(prm)["parameters"]["batch"] == batch
    assert AccelParams.from_dict(describe(prm)["parameters"]) == prm


def test_describe_matches_export_without_timing(small, tmp_path):
    _, prm = small
    info = describe(prm)
    assert info["cycle_model"]["cycles_per_step"] == prm.cycles_per_step
    assert info["network"] == {}
    json.dumps(info)                       # JSON-able as it is


def test_export_without_network(small, tmp_path):
    _, prm = small
    v_path, j_path = export(prm, None, tmp_path)
    assert f"module {TOP_NAME}(" in v_path.read_text()
    assert port_widths(v_path.read_text()) == expected_ports(prm)
    # No temporary files are left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{TOP_NAME}.json", f"{TOP_NAME}.v"]


def test_load_targets_are_the_enum(small):
    _, prm = small
    info = describe(prm)
    assert info["layouts"]["load_targets"] == {t.name: t.value for t in LoadTarget}
    words = info["payloads"]["load_words"]
    assert list(words) == [t.name for t in LoadTarget]
    assert [w["target"] for w in words.values()] == [t.value for t in LoadTarget]


def test_cycle_terms_are_the_cycle_model(small):
    _, prm = small
    cyc = describe(prm)["cycle_model"]
    assert cyc["terms"] == [{"what": w, "cycles": e} for w, e in STEP_CYCLE_TERMS]
    names = {**prm.cycle_names(), "__builtins__": {}}
    assert sum(eval(t["cycles"], names) for t in cyc["terms"]) == prm.cycles_per_step


@pytest.mark.parametrize(("n", "p", "lanes", "width", "bits"), [
    (23, 9, 5, 7, 2), (30, 10, 7, 4, 4), (17, 1, 17, 1, 1)])
def test_datasheet_ports_and_payloads(n, p, lanes, width, bits):
    prm = accel_params(n=n, p=p, lanes=lanes, popcount_width=width, weight_bits=bits,
                       kernel_bits=12, threshold_frac_bits=9, max_steps=11)
    info = describe(prm)
    assert all(set(port) == {"name", "direction", "width", "meaning"} and port["meaning"]
               for port in info["ports"])
    pay = info["payloads"]
    assert pay["i_query"] == [{"name": "state", "lsb": 0, "width": n, "range": [0, 2 ** n - 1],
                               "meaning": pay["i_query"][0]["meaning"]}]
    for key, layout in (("o_result", result_layout(prm)), ("i_load", load_layout(prm))):
        fields = pay[key]
        assert [(f["name"], f["lsb"], f["width"]) for f in fields] == [
            (name, lsb, width) for name, (lsb, width) in field_slices(layout).items()]
        assert all(f["meaning"] and f["range"] for f in fields)
    result = {f["name"]: f for f in pay["o_result"]}
    assert result["steps"]["range"] == [1, prm.max_steps]
    assert result["converged"]["range"] == [0, 1]
    assert {f["name"]: f for f in pay["i_load"]}["target"]["range"] == [0, len(LoadTarget) - 1]
    words = pay["load_words"]
    depth = {"PATTERN": prm.pattern_depth, "WEIGHT": prm.weight_depth, "LUT": prm.lut_depth,
             "THRESHOLD": prm.threshold_depth}
    data_bits = {"PATTERN": prm.pattern_width, "WEIGHT": prm.weight_width,
                 "LUT": prm.kernel_bits, "THRESHOLD": prm.threshold_width}
    for name, word in words.items():
        assert word["addr"] == [0, depth[name] - 1], name
        assert word["data_bits"] == data_bits[name], name
        assert word["data_bits"] <= prm.load_data_bits
        assert word["meaning"], name
    # LUT entries up to the kernel value 1 = 2^(kernel_bits - 1); r_fx within its clamp.
    assert words["LUT"]["data"] == [0, 2 ** (prm.kernel_bits - 1)]
    frac = prm.threshold_frac_bits
    assert words["THRESHOLD"]["values"] == [-(2 ** frac), 2 ** (prm.weight_bits + frac)]
    lo, hi = words["THRESHOLD"]["values"]
    assert -(2 ** (prm.threshold_bits - 1)) <= lo and hi < 2 ** (prm.threshold_bits - 1)
    assert "two's complement" in words["THRESHOLD"]["meaning"]
    assert "past n must be 0" in words["PATTERN"]["meaning"]


def test_datasheet_facts(small):
    _, prm = small
    info = describe(prm)
    arith = info["arithmetic"]
    for key in ("weights_k_ge_2", "weights_k_1", "kernel_lut", "threshold", "sign_rule",
                "dynamics"):
        assert arith[key], key
    assert "median" in arith["weights_k_1"] and "r = 1/2" in arith["weights_k_1"]
    assert "half to even" in arith["notation"]
    assert "[-2^R, 2^(k+R)]" in arith["threshold"]
    assert "unchanged on a tie" in arith["sign_rule"]
    lat = info["latency"]
    assert lat["cycles_per_step"] == prm.cycles_per_step
    assert lat["max_cycles_per_query"] == prm.cycles_per_query(prm.max_steps)
    assert "steps * cycles_per_step + 2" in lat["back_to_back"]
    assert set(info["reset"]) >= {"running_query", "waiting_result", "memories"}
    assert "dropped" in info["reset"]["running_query"]
    assert "dropped" in info["reset"]["waiting_result"]
    assert "kept" in info["reset"]["memories"]
    assert "lost" in info["reset"]["during_reset"] and "written" in info["reset"]["during_reset"]
    assert "load wins" in info["priority"]["load_vs_query"]
    assert "not accepted" in info["priority"]["loads_during_query"]


def test_simulator_flags_are_what_the_cosimulation_uses():
    info = describe(accel_params(n=20, p=3, lanes=4))
    assert info["simulators"]["verilator"]["flags"] == list(SIMULATOR_FLAGS["verilator"])
    assert info["simulators"]["icarus"]["flags"] == list(SIMULATOR_FLAGS["icarus"]) == ["-g2005"]
    # Until sim/ reads them from here, the two homes must agree.
    from khop.sim.runner import ICARUS_ARGS
    from khop.sim.tools import VERILATOR_STYLE_WAIVERS
    assert tuple(SIMULATOR_FLAGS["verilator"]) == tuple(VERILATOR_STYLE_WAIVERS)
    assert tuple(SIMULATOR_FLAGS["icarus"]) == tuple(ICARUS_ARGS)
