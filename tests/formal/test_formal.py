"""The formal proofs (khop.formal): the quick subset proven, the broken designs refuted with a
counterexample trace, the results and the command line. The whole set is ``make formal``."""

import json
from pathlib import Path

import pytest

from khop.cli import main
from khop.formal import sby
from khop.formal.accelerator import AcceleratorHarness
from khop.formal.invariants import mine, phases
from khop.formal.suite import CONFIGS, FAULT_CONFIG, run_tasks, select, tasks
from khop.hw.sign_update import FAULTS

pytestmark = pytest.mark.skipif(bool(sby.missing_tools()), reason="formal tools not installed")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    chosen = select(tasks(), quick=True)
    return chosen, run_tasks(chosen, tmp_path_factory.mktemp("formal"), jobs=2)


def test_quick_subset_is_proven_and_the_broken_designs_are_refuted(quick_results):
    chosen, results = quick_results
    assert [r.property for r in results] == [t.prop for t in chosen]
    bad = [(r.property, r.configuration, r.status, r.log[-800:]) for r in results if not r.ok]
    assert not bad, bad
    proven = {r.property for r in results if r.mode == "prove" and r.status == "PASS"}
    assert proven == {"stream", "order", "load", "latency", "reset"}
    assert {r.property for r in results if r.mode == "cover"} == {"cover:result", "cover:load"}
    assert any(r.property == "bridge:replies" and r.status == "PASS" for r in results)


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_is_refuted_with_a_counterexample_trace(quick_results, fault):
    _, results = quick_results
    (res,) = [r for r in results if r.property == f"fault:{fault}"]
    assert res.status == "FAIL" and res.expected == "FAIL" and res.ok
    assert res.configuration == FAULT_CONFIG.name
    trace = Path(res.trace)
    assert trace.suffix == ".vcd" and trace.is_file()
    assert "$enddefinitions" in trace.read_text()


def test_every_fault_has_a_run_and_the_suite_covers_every_configuration():
    all_tasks = tasks()
    assert {t.fault for t in all_tasks if t.fault} == set(FAULTS)
    proven = {(t.prop, t.config.name) for t in all_tasks if t.mode == "prove"}
    for cfg in CONFIGS:
        for group in ("stream", "order", "load", "latency", "reset"):
            assert (group, cfg.name) in proven
    assert len(select(all_tasks, quick=True)) < len(all_tasks)


def test_mined_invariants_cover_every_phase_and_match_the_design():
    prm = CONFIGS[0].params()
    inv = mine(prm, queries=20)
    assert len(inv.table) == phases(prm)
    assert all(inv.table), "a phase without invariants"
    assert "fsm/fsm_state" in inv.names
    # The FSM's state is pinned in every phase of a running query.
    index = inv.names.index("fsm/fsm_state")
    assert all(index in row for row in inv.table)


def test_harness_rejects_unknown_properties():
    with pytest.raises(ValueError, match="unknown properties"):
        AcceleratorHarness(CONFIGS[0].params(), groups=("nonsense",))


def test_cli_writes_results_and_exits_zero_when_as_expected(tmp_path, capsys):
    out = tmp_path / "formal"
    assert main(["formal", "--property", "fault:drop_under_backpressure", "--out", str(out),
                 "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "fault:drop_under_backpressure" in printed and "1 of 1 as expected" in printed
    doc = json.loads((out / "results.json").read_text())
    (row,) = doc["results"]
    assert doc["ok"] and row["status"] == "FAIL" and row["ok"] and Path(row["trace"]).is_file()
    assert (out / "results.csv").read_text().startswith("property,configuration,mode,depth")


def test_cli_lists_runs(capsys):
    assert main(["formal", "--list", "--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(select(tasks(), quick=True))
    assert any("expect FAIL" in line for line in lines)


def test_cli_names_a_missing_tool_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sby, "tool_bin", lambda: tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["formal", "--quick", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "formal tools not found: yowasp-sby" in err[0]
    assert not (tmp_path / "out").exists()


def test_load_property_watches_every_memory_write_enable():
    from amaranth.hdl import Fragment

    from khop.formal.accelerator import _write_enables
    from khop.hw.accelerator import RetrievalAccelerator

    frag = Fragment.get(RetrievalAccelerator(CONFIGS[0].params()), "formal")
    # Pattern, weight, lookup-table and threshold memories.
    assert len(_write_enables(frag)) == 4
