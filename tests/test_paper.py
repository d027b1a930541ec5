"""``khop paper`` (:mod:`khop.model.paper`): figures, results.json and REPORT.md from a tiny
configuration (N = 16)."""

import copy
import json
import re
import subprocess
import sys

import pytest

from khop.cli import main
from khop.model import paper
from khop.model.experiments import EXPERIMENTS, run_experiment

TINY = ["--quick", "--trials", "1", "--n", "16", "--seed", "3"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    assert main(["paper", *TINY, "--jobs", "1", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_every_figure_results_and_report(quick_run, capsys):
    for name in paper.FIGURES:
        data = (quick_run / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    assert sorted(p.name for p in quick_run.iterdir()) == sorted(
        [*paper.FIGURES, "results.json", "REPORT.md"])  # no temporary files left behind


def test_results_json_holds_every_experiment_and_verdict(quick_run):
    doc = json.loads((quick_run / "results.json").read_text())
    assert set(doc["experiments"]) == set(EXPERIMENTS)
    assert (doc["meta"]["trials"], doc["meta"]["seed"], doc["meta"]["n"]) == (1, 3, 16)
    assert [v["id"] for v in doc["verdicts"]] == [f"R{k}" for k in range(1, 11)]
    assert all(v["verdict"] in ("agree", "deviate") for v in doc["verdicts"])
    assert doc["experiments"]["quantization"]["n"] == 16


def test_report_has_a_table_row_per_result(quick_run):
    text = (quick_run / "REPORT.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| R\d+ \|", line)]
    assert [r.split("|")[1].strip() for r in rows] == [f"R{k}" for k in range(1, 11)]
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert len(cells) == 5, row
        assert cells[3] in ("**agree**", "**deviate**")
        assert cells[4].endswith(".")
    assert "1 (seeds 3..3)" in text
    for name in paper.FIGURES:
        assert f"({name})" in text


def test_verdicts_follow_the_numbers(quick_run):
    exps = json.loads((quick_run / "results.json").read_text())["experiments"]
    bad = copy.deepcopy(exps)
    q = bad["quantization"]
    q["bit_accuracy"]["mean"][q["bits"].index(2)] = 0.9
    st = bad["storage"]
    st["roundtrip_exact"] = False
    before = {v["id"]: v["verdict"] for v in paper.verdicts(exps)}
    after = {v["id"]: v for v in paper.verdicts(bad)}
    assert after["R1"]["verdict"] == "deviate" and "0.9000 at 2 bits" in after["R1"]["why"]
    assert after["R10"]["verdict"] == "deviate"
    assert before["R10"] == "agree"


def test_worker_processes_reproduce_the_in_process_results(tmp_path, capsys):
    names = ["quantization", "storage"]
    doc = paper.run_paper(tmp_path, trials=1, seed=5, quick=True, jobs=2, n=16, names=names)
    for name in names:
        assert doc["experiments"][name] == run_experiment(name, 1, 5, True, n=16)
    text = capsys.readouterr().out
    assert "2 jobs" in text and re.search(r"total wall time [0-9.]+ s", text)
    assert (tmp_path / "fig1_quantization.png").exists()
    assert not (tmp_path / "REPORT.md").exists()  # a partial run has no verdicts to report


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--jobs", "0"], "argument --jobs"),
    (["--trials", "0"], "argument --trials"),
])
def test_bad_options_give_one_line_and_status_2(argv, fragment, capsys, tmp_path):
    assert main(["paper", *argv, "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("khop: error:") and fragment in err[0]
    assert not (tmp_path / "p").exists()


def test_the_paper_package_needs_neither_hardware_nor_the_command_line():
    code = ("import sys, khop.model.paper; print(sorted(m for m in sys.modules if m.split('.')[0] "
            "== 'amaranth' or m.startswith(('khop.hw', 'khop.sim', 'khop.boards', 'khop.cli', "
            "'khop.options', 'khop.progress', 'khop.argtypes'))))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert res.stdout.strip() == "[]"


def test_report_has_the_beyond_the_paper_section(quick_run):
    text = (quick_run / "REPORT.md").read_text()
    head, beyond = text.split("## Beyond the paper: per-neuron thresholds", 1)
    assert "| R10 |" in head and "## Figures" in beyond
    rows = [line for line in beyond.splitlines() if line.startswith("| ")]
    doc = json.loads((quick_run / "results.json").read_text())
    r = doc["experiments"]["quantizers"]
    assert [row.split("|")[1].strip() for row in rows[1:]] == [
        v + (" (the paper's)" if v.endswith("-bit") else "") for v in r["variants"]]
    assert "exact recall @20% mean (min)" in rows[0]
    assert all(len(row.split("|")) == len(paper.beyond_rows(r)[0]) + 2 for row in rows)
    assert "fig9_quantizers.png" in paper.FIGURES and "(fig9_quantizers.png)" in text
