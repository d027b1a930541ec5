"""Tables and plots of a synthesis sweep: each result next to the analytic estimate.

:func:`make_rows` joins every result of :func:`boards.sweep.run_sweep` with
:func:`boards.estimate.estimate` into a :class:`SweepRow` (relative errors of LUTs, carries and
flip-flops; whether the memory blocks are exact; the DSP blocks); :func:`write_outputs` writes
``results.json``, ``results.csv``, ``results.md`` and the PNG plots, each atomically.
"""

import csv
import io
from dataclasses import dataclass, fields
from pathlib import Path

from khop.outputs import to_json, write_files

from .estimate import (
    dsp_blocks,
    estimate,
    load_calibration,
    memory_counts,
    memory_maps,
    synth_luts,
)
from .sweep import SweepConfig
from .targets import get_device

__all__ = ["SweepRow", "make_rows", "summarize", "summary_lines", "write_outputs",
           "markdown_table", "COLUMNS", "PLOTS"]

PLOTS = ("resources_vs_n.png", "resources_vs_lanes.png", "estimate_vs_synth.png",
         "fmax_vs_lanes.png")


@dataclass
class SweepRow:
    """One row of a sweep: the configuration, the synthesis (and place-and-route) figures and
    the estimate beside them. The fields are :data:`COLUMNS`, in order: :meth:`as_dict` is a
    row of results.csv and of results.json's ``rows``, :meth:`markdown` a line of results.md.
    """

    device: str
    family: str
    n: int
    p: int
    load: int
    bits: int
    lanes: int
    batch: int | None = None
    popcount_width: int | None = None
    kernel_bits: int | None = None
    pnr: bool = False
    status: str = "ok"
    reason: str | None = None
    lut_mapping: str | None = None      # set when the LUTs were not mapped by the default flow
    cached: bool | None = None
    seconds: float | None = None
    luts: int | None = None
    est_luts: int | None = None
    err_luts_pct: float | None = None
    lut4_cells: int | None = None
    ffs: int | None = None
    est_ffs: int | None = None
    err_ffs_pct: float | None = None
    carries: int | None = None
    est_carries: int | None = None
    err_carries_pct: float | None = None
    bram: int | None = None
    est_bram: int | None = None
    spram: int | None = None
    est_spram: int | None = None
    lutram: int | None = None
    est_lutram: int | None = None
    dsp: int | None = None
    est_dsp: int | None = None
    blocks_exact: bool | None = None
    logic_pnr: int | None = None
    logic_available: int | None = None
    fmax_mhz: float | None = None
    clock_mhz: float | None = None
    cycles_per_step: int | None = None
    est_retrievals_per_s: int | None = None

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def markdown(self):
        """This row of :func:`markdown_table`."""
        blocks = (f"{_fmt(self.bram)}/{_fmt(self.est_bram)}" if self.bram is not None
                  else f"--/{_fmt(self.est_bram)}")
        if self.spram or self.est_spram:
            blocks += f" +{_fmt(self.spram)}/{_fmt(self.est_spram)} SPRAM"
        if self.lutram or self.est_lutram:
            blocks += f" +{_fmt(self.lutram)}/{_fmt(self.est_lutram)} DPR16X4"
        if self.dsp or self.est_dsp:
            blocks += f" +{_fmt(self.dsp)}/{_fmt(self.est_dsp)} DSP"
        status = self.status + (f": {self.reason}" if self.reason else "")
        return (f"| {self.device} | {self.n} | {self.p} | {self.bits} | {self.lanes} "
                f"| {_fmt(self.batch)} "
                f"| {_fmt(self.luts)} | {_fmt(self.est_luts)} | {_pct(self.err_luts_pct)} "
                f"| {_fmt(self.ffs)} | {_fmt(self.est_ffs)} | {_pct(self.err_ffs_pct)} "
                f"| {blocks} | {_fmt(self.blocks_exact)} | {_fmt(self.fmax_mhz, '.1f')} "
                f"| {status.replace('|', '/')} |")


#: Columns of results.csv, in order (the fields of :class:`SweepRow`).
COLUMNS = tuple(f.name for f in fields(SweepRow))


def _as_dicts(rows):
    return [r.as_dict() if isinstance(r, SweepRow) else r for r in rows]


def _err(est, got):
    if est is None or not got:
        return None
    return round(100.0 * (est - got) / got, 2)


def make_rows(results, calibration=None, steps=2.0):
    """One :class:`SweepRow` per result, with the estimate beside synthesis (its retrieval
    rate with ``steps`` mean steps per query)."""
    try:
        cal = load_calibration() if calibration is None else calibration
    except ValueError:
        cal = {"families": {}}
    rows = []
    for res in results:
        cfg = SweepConfig(**res["config"])
        dev = get_device(cfg.device)
        row = dict.fromkeys(COLUMNS)
        row.update(device=cfg.device, family=dev.family, n=cfg.n, p=cfg.p, load=cfg.load,
                   bits=cfg.bits, lanes=cfg.lanes, pnr=cfg.pnr, status=res["status"],
                   reason=res.get("reason"), lut_mapping=res.get("lut_mapping"),
                   cached=res.get("cached"),
                   seconds=res.get("seconds"))
        if res["status"] == "skipped":
            rows.append(SweepRow(**row))
            continue
        params = cfg.params()
        row.update(batch=params.batch, popcount_width=params.popcount_width,
                   kernel_bits=params.kernel_bits,
                   cycles_per_step=params.cycles_per_step)
        try:
            est = estimate(params, dev, calibration=cal, steps=steps).as_dict()
        except ValueError:    # no model of this family yet: the memory and DSP blocks only
            est = {**memory_counts(memory_maps(params, dev)), "dsp": dsp_blocks(params, dev)}
        for key in ("luts", "ffs", "carries", "bram", "spram", "lutram", "dsp"):
            row[f"est_{key}"] = est.get(key)
        row["est_retrievals_per_s"] = (round(est["retrievals_per_s"])
                                       if "retrievals_per_s" in est else None)
        synth = res.get("synth")
        if synth:
            for key in ("ffs", "carries", "bram", "spram", "lutram", "dsp"):
                row[key] = synth.get(key, 0)
            row["luts"] = synth_luts(synth, dev.family)
            row["lut4_cells"] = synth["luts"]
            for key in ("luts", "ffs", "carries"):
                row[f"err_{key}_pct"] = _err(row[f"est_{key}"], row[key])
            row["blocks_exact"] = all(row[k] == row[f"est_{k}"]
                                      for k in ("bram", "spram", "lutram"))
        pnr = res.get("pnr")
        if pnr:
            util = pnr.get("utilisation", {})
            cell = "ICESTORM_LC" if dev.family == "ice40" else "TRELLIS_COMB"
            if cell in util:
                row["logic_pnr"] = util[cell]["used"]
                row["logic_available"] = util[cell]["available"]
            row["fmax_mhz"] = pnr.get("fmax_mhz")
            row["clock_mhz"] = pnr.get("clock_mhz")
        rows.append(SweepRow(**row))
    return rows


def summarize(rows):
    """Largest relative errors per figure and family, and the exact memory-block count. The
    errors are of the rows of the default flow, the one the estimate models and is fitted on;
    rows whose LUTs another mapping made (the ABC9 workaround) are counted apart, with their
    largest LUT error."""
    rows = _as_dicts(rows)
    compared = [r for r in rows if r["luts"] is not None and r["est_luts"] is not None]
    synth = [r for r in compared if not r["lut_mapping"]]
    other = [abs(r["err_luts_pct"]) for r in compared
             if r["lut_mapping"] and r["err_luts_pct"] is not None]
    out = {"rows": len(rows), "synthesized": len([r for r in rows if r["luts"] is not None]),
           "blocks_exact": sum(1 for r in rows if r["blocks_exact"]),
           "blocks_compared": sum(1 for r in rows if r["blocks_exact"] is not None),
           "statuses": {}, "other_mapping": len(other),
           "other_mapping_max_err_luts_pct": max(other) if other else None}
    for r in rows:
        out["statuses"][r["status"]] = out["statuses"].get(r["status"], 0) + 1
    for key in ("luts", "ffs", "carries"):
        errs = [abs(r[f"err_{key}_pct"]) for r in synth if r[f"err_{key}_pct"] is not None]
        out[f"max_err_{key}_pct"] = max(errs) if errs else None
        for fam in sorted({r["family"] for r in synth}):
            fe = [abs(r[f"err_{key}_pct"]) for r in synth
                  if r["family"] == fam and r[f"err_{key}_pct"] is not None]
            out[f"max_err_{key}_pct_{fam}"] = max(fe) if fe else None
    return out


def _fmt(v, spec=""):
    if v is None:
        return "--"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return format(v, spec)


def markdown_table(rows):
    """The Markdown table of results.md: synthesis next to the estimate for every row."""
    head = ("| device | N | P | bits | lanes | batch | LUT synth | LUT est | err | FF synth "
            "| FF est | err | BRAM synth/est | exact | Fmax MHz | status |")
    lines = [head,
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    return "\n".join(lines + [r.markdown() for r in rows])


def _pct(v):
    return "--" if v is None else f"{v:+.1f} %"


def summary_lines(s):
    """The summary of a sweep as a few lines of text."""
    def m(key):
        v = s.get(key)
        return "--" if v is None else f"{v:.1f} %"

    fams = sorted({k.rsplit("_", 1)[1] for k in s if k.startswith("max_err_luts_pct_")})
    lines = [f"{s['rows']} configurations, {s['synthesized']} synthesized; statuses: "
             + ", ".join(f"{v} {k}" for k, v in sorted(s["statuses"].items())),
             f"largest estimate error: LUTs {m('max_err_luts_pct')}, flip-flops "
             f"{m('max_err_ffs_pct')}, carries {m('max_err_carries_pct')}"
             + "".join(f"; {f}: LUTs {m('max_err_luts_pct_' + f)}, FF {m('max_err_ffs_pct_' + f)}"
                       for f in fams)
             + (f" (default flow; not in these: {s['other_mapping']} mapped by ABC for the ABC9 "
                f"assertion, LUTs up to {m('other_mapping_max_err_luts_pct')})"
                if s.get("other_mapping") else ""),
             f"memory blocks exact in {s['blocks_exact']} of {s['blocks_compared']}"]
    return lines


def write_outputs(results, out, *, calibration=None, meta=None, plots=True, steps=2.0):
    """Write results.json/.csv/.md (and the plots) into ``out``; returns ``(rows, summary)``.
    ``steps``: mean steps per query of the retrieval rates."""
    out = Path(out)
    rows = make_rows(results, calibration, steps)
    summary = summarize(rows)
    dicts = _as_dicts(rows)
    doc = {"meta": meta or {}, "summary": summary, "rows": dicts,
           "results": [{k: v for k, v in r.items() if k != "cached"} for r in results]}
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(dicts)
    md = ["# khop sweep", ""]
    if meta and meta.get("command"):
        md += ["    " + meta["command"], ""]
    md += [line + "  " for line in summary_lines(summary)] + ["", markdown_table(rows), ""]
    write_files({out / "results.json": to_json(doc, indent=1) + "\n",
                 out / "results.csv": buf.getvalue(), out / "results.md": "\n".join(md)})
    if plots:
        from .sweep_plots import write_plots
        write_plots(dicts, out, steps=steps)
    return rows, summary

