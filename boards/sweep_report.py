"""Tables and plots of a synthesis sweep: each result next to the analytic estimate.

:func:`make_rows` joins every result of :func:`boards.sweep.run_sweep` with
:func:`hw.resources.estimate` (relative errors of LUTs, carries and flip-flops; whether the
memory blocks are exact); :func:`write_outputs` writes ``results.json``, ``results.csv``,
``results.md`` and the PNG plots, each atomically.
"""

import csv
import io
import json
from pathlib import Path

from khop.hw.resources import estimate, get_device, load_calibration, memory_maps, synth_luts

from .sweep import SweepConfig, atomic_write

__all__ = ["make_rows", "summarize", "summary_lines", "write_outputs", "markdown_table",
           "COLUMNS", "PLOTS"]

#: Columns of results.csv, in order.
COLUMNS = ("device", "family", "n", "p", "load", "bits", "lanes", "popcount_width",
           "kernel_bits", "pnr", "status", "reason", "cached", "seconds",
           "luts", "est_luts", "err_luts_pct", "lut4_cells", "ffs", "est_ffs", "err_ffs_pct",
           "carries", "est_carries", "err_carries_pct",
           "bram", "est_bram", "spram", "est_spram", "lutram", "est_lutram", "blocks_exact",
           "logic_pnr", "logic_available", "fmax_mhz", "clock_mhz", "cycles_per_step",
           "est_retrievals_per_s")

PLOTS = ("resources_vs_n.png", "resources_vs_lanes.png", "estimate_vs_synth.png",
         "fmax_vs_lanes.png")


def _err(est, got):
    if est is None or not got:
        return None
    return round(100.0 * (est - got) / got, 2)


def make_rows(results, calibration=None):
    """One flat dict per result (keys :data:`COLUMNS`), with the estimate beside synthesis."""
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
                   reason=res.get("reason"), cached=res.get("cached"),
                   seconds=res.get("seconds"))
        if res["status"] == "skipped":
            rows.append(row)
            continue
        params = cfg.params()
        row.update(popcount_width=params.popcount_width, kernel_bits=params.kernel_bits,
                   cycles_per_step=params.cycles_per_step)
        try:
            est = estimate(params, dev, calibration=cal)
        except ValueError:    # no model of this family yet: the memory blocks only
            maps = memory_maps(params, dev)
            est = {k: sum(m.cells for m in maps.values() if m.kind == k)
                   for k in ("bram", "spram", "lutram")}
        for key in ("luts", "ffs", "carries", "bram", "spram", "lutram"):
            row[f"est_{key}"] = est.get(key)
        row["est_retrievals_per_s"] = (round(est["retrievals_per_s"])
                                       if "retrievals_per_s" in est else None)
        synth = res.get("synth")
        if synth:
            for key in ("ffs", "carries", "bram", "spram", "lutram"):
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
        rows.append(row)
    return rows


def summarize(rows):
    """Largest relative errors per figure and family, and the exact memory-block count."""
    synth = [r for r in rows if r["luts"] is not None and r["est_luts"] is not None]
    out = {"rows": len(rows), "synthesized": len([r for r in rows if r["luts"] is not None]),
           "blocks_exact": sum(1 for r in rows if r["blocks_exact"]),
           "blocks_compared": sum(1 for r in rows if r["blocks_exact"] is not None),
           "statuses": {}}
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
    head = ("| device | N | P | bits | lanes | LUT synth | LUT est | err | FF synth | FF est "
            "| err | BRAM synth/est | exact | Fmax MHz | status |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        blocks = (f"{_fmt(r['bram'])}/{_fmt(r['est_bram'])}" if r["bram"] is not None
                  else f"--/{_fmt(r['est_bram'])}")
        if r["spram"] or r["est_spram"]:
            blocks += f" +{_fmt(r['spram'])}/{_fmt(r['est_spram'])} SPRAM"
        if r["lutram"] or r["est_lutram"]:
            blocks += f" +{_fmt(r['lutram'])}/{_fmt(r['est_lutram'])} DPR16X4"
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        lines.append(
            f"| {r['device']} | {r['n']} | {r['p']} | {r['bits']} | {r['lanes']} "
            f"| {_fmt(r['luts'])} | {_fmt(r['est_luts'])} | {_pct(r['err_luts_pct'])} "
            f"| {_fmt(r['ffs'])} | {_fmt(r['est_ffs'])} | {_pct(r['err_ffs_pct'])} "
            f"| {blocks} | {_fmt(r['blocks_exact'])} | {_fmt(r['fmax_mhz'], '.1f')} "
            f"| {status.replace('|', '/')} |")
    return "\n".join(lines)


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
                       for f in fams),
             f"memory blocks exact in {s['blocks_exact']} of {s['blocks_compared']}"]
    return lines


def write_outputs(results, out, *, calibration=None, meta=None, plots=True):
    """Write results.json/.csv/.md (and the plots) into ``out``; returns ``(rows, summary)``."""
    out = Path(out)
    rows = make_rows(results, calibration)
    summary = summarize(rows)
    doc = {"meta": meta or {}, "summary": summary, "rows": rows,
           "results": [{k: v for k, v in r.items() if k != "cached"} for r in results]}
    atomic_write(out / "results.json", json.dumps(doc, indent=1) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(out / "results.csv", buf.getvalue())
    md = ["# khop sweep", ""]
    if meta and meta.get("command"):
        md += ["    " + meta["command"], ""]
    md += [line + "  " for line in summary_lines(summary)] + ["", markdown_table(rows), ""]
    atomic_write(out / "results.md", "\n".join(md))
    if plots:
        from .sweep_plots import write_plots
        write_plots(rows, out)
    return rows, summary

