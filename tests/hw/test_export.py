"""Verilog export and its JSON description (hw/export.py)."""

import json
import re

import pytest
from hw_helpers import params_for, tiny_network

from khop.hw.export import TOP_NAME, describe, export, generate_verilog
from khop.hw.layout import load_layout, result_layout
from khop.hw.params import AccelParams
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
                                  "threshold_frac_bits": 16, "max_steps": 5}
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
    assert mem["accumulator_flipflops"] == prm.accumulator_bits
    cyc = info["cycle_model"]
    assert cyc["cycles_per_step"] == prm.cycles_per_step
    assert cyc["bound_cycles_per_step"] == prm.bound_cycles_per_step == 9 * 5
    assert (cyc["blocks"], cyc["chunks"]) == (5, 4)
    assert cyc["loop_order"] == "pattern-outer"
    assert info["generation_seconds"] >= 0


@pytest.mark.parametrize(("n", "p", "lanes", "width"), [
    (23, 9, 5, 7), (100, 300, 16, None), (30, 10, 7, 4), (17, 1, 17, 1)])
def test_exported_formula_is_the_cycle_model(n, p, lanes, width):
    """The formula written into khop_top.json (and the README) evaluates to the cycle model."""
    prm = AccelParams(n=n, p=p, lanes=lanes, popcount_width=width)
    formula = describe(prm)["cycle_model"]["formula"].split("=", 1)[1]
    names = {"chunks": prm.chunks, "blocks": prm.blocks, "p": prm.p, "max": max,
             "threshold_bits": prm.threshold_bits}
    assert eval(formula, {"__builtins__": {}}, names) == prm.cycles_per_step


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
