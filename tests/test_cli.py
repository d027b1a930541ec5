"""The ``khop`` command line, in process through ``main`` and as ``python -m khop``."""

import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from khop import demo
from khop.bench import Figure
from khop.cli import build_parser, main
from khop.hw.params import HARDWARE_OPTIONS
from khop.model.compress import DEFAULT_QUANTIZER
from khop.model.evaluate import METRICS
from khop.model.fixed import kernel_reach
from khop.model.klr import TrainConfig
from khop.model.netfile import load_network, save_network
from khop.model.train import train_network
from khop.options import (
    ARITHMETIC_OPTIONS,
    HARDWARE_CHOICES,
    HARDWARE_HELP,
    HARDWARE_RANGES,
    LIST_SUFFIX,
    hardware_options,
)

SMALL = ["-N", "24", "-P", "30", "--epochs", "15", "--gamma", "0.05", "--seed", "3"]


def _khop(*args):
    return subprocess.run([sys.executable, "-m", "khop", *args], capture_output=True, text=True,
                          timeout=120)


def _assert_one_line_error(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("khop: error: ")
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0]


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "net.npz"
    assert main(["train", *SMALL, "-o", str(path)]) == 0
    return path


def test_train_writes_the_network_and_its_record(small_net):
    net = load_network(small_net)
    assert (net.n, net.p, net.gamma) == (24, 30, 0.05)
    t = net.training
    assert (t["seed"], t["epochs"], t["epochs_run"], t["eta"], t["lam"]) == (3, 15, 15, 0.1, 0.01)
    assert (t["gradient"], t["dtype"], t["tol"]) == ("exact", "float64", None)
    assert t["final_loss"] == net.loss_history[-1] and t["wall_seconds"] > 0
    expected = train_network(24, 30, 3, TrainConfig(gamma=0.05, epochs=15))
    np.testing.assert_array_equal(net.alpha, expected.alpha)


def test_train_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "deep" / "n.npz"
    assert main(["train", *SMALL, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out) in text
    assert "N=24 P=30" in text and "epochs 15 of 15" in text
    a = load_network(out).alpha
    assert f"[{a.min():.4f}, {a.max():.4f}]" in text
    assert re.search(r"final loss [0-9.]+, [0-9.]+ s", text)


def test_train_options_reach_the_recipe(tmp_path):
    out = tmp_path / "n.npz"
    assert main(["train", *SMALL, "--lambda", "0.05", "--eta", "0.2", "--gradient",
                 "functional", "--dtype", "float32", "--epochs", "300", "--tol", "0.01",
                 "-o", str(out)]) == 0
    net = load_network(out)
    t = net.training
    assert (t["lam"], t["eta"], t["gradient"], t["dtype"], t["tol"]) == \
        (0.05, 0.2, "functional", "float32", 0.01)
    assert net.alpha.dtype == np.float32
    assert t["stopped_early"] and t["epochs_run"] < 300


def test_eval_json_is_exactly_one_object_with_the_metrics(small_net, capsys):
    assert main(["eval", str(small_net), "--bits", "3", "--noise", "0.1", "--queries", "40",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # fails on anything but one JSON document
    assert isinstance(doc, dict)
    assert (doc["bits"], doc["noise"], doc["queries"]) == (3, 0.1, 40)
    for side in ("float", "quantized"):
        assert set(doc[side]) == set(METRICS)
        assert all(isinstance(v, float) for v in doc[side].values())
        assert 0 <= doc[side]["bit_accuracy"] <= 1 and 0 <= doc[side]["exact_recall"] <= 1


def test_eval_json_float_side_does_not_depend_on_bits(small_net, capsys):
    docs = []
    for bits in ("1", "4"):
        assert main(["eval", str(small_net), "--bits", bits, "--queries", "30", "--json"]) == 0
        docs.append(json.loads(capsys.readouterr().out))
    assert docs[0]["float"] == docs[1]["float"]
    assert docs[0]["quantized"] != docs[1]["quantized"]


def test_eval_prints_a_table(small_net, capsys):
    assert main(["eval", str(small_net), "--queries", "20", "--quantizer", "paper"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].split()[0] == "float" and lines[-1].split()[0] == "2-bit"
    assert "20 queries with 20% of the bits flipped" in "\n".join(lines)


def test_eval_sets_the_chosen_quantizer_beside_the_papers(small_net, capsys):
    assert main(["eval", str(small_net), "--queries", "20", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["quantizer"] == DEFAULT_QUANTIZER == load_network(small_net).quantizer
    assert list(doc["rows"]) == ["float", f"2-bit {DEFAULT_QUANTIZER}", "2-bit"]
    assert set(doc["paper"]) == set(doc["quantized"]) == set(METRICS)
    assert doc["paper"]["exact_recall"] == doc["rows"]["2-bit"]["exact_recall"]["mean"][0]
    assert main(["eval", str(small_net), "--queries", "20", "--quantizer", "bias"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "quantizer bias" in lines[0]
    assert [line.split()[:2] for line in lines[-3:]] == \
        [["float", lines[-3].split()[1]], ["2-bit", "bias"], ["2-bit", lines[-1].split()[1]]]


def test_eval_of_a_version_1_file_means_the_papers_quantizer(small_net, tmp_path, capsys):
    net = load_network(small_net)
    meta = {"format": "khop-network", "version": 1, "gamma": net.gamma, "n": net.n, "p": net.p,
            "training": net.training}
    path = tmp_path / "v1.npz"
    np.savez(path, patterns=net.patterns, alpha=net.alpha, loss_history=net.loss_history,
             meta=np.array(json.dumps(meta)))
    assert main(["eval", str(path), "--queries", "20", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["quantizer"] == "paper" and list(doc["rows"]) == ["float", "2-bit"]
    assert "paper" not in doc


def test_eval_over_ridge_seeds_bits_and_noise_levels(tmp_path, capsys):
    png = tmp_path / "plots" / "recall.png"
    assert main(["eval", "--seeds", "42:43", "--bits", "2,1", "--noise", "0.1,0.2",
                 "--queries", "30", "--plot", str(png), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["networks"] == ["ridge seed 42", "ridge seed 43"] and doc["seeds"] == [42, 43]
    assert (doc["n"], doc["p"], doc["bits"], doc["noise"]) == (100, 300, [2, 1], [0.1, 0.2])
    q = DEFAULT_QUANTIZER
    assert list(doc["rows"]) == ["float", f"2-bit {q}", "2-bit", f"1-bit {q}", "1-bit"]
    row = doc["rows"][f"2-bit {q}"]
    assert len(row["bit_accuracy"]["networks"]) == 2 and row["bit_accuracy"]["min"] == 1.0
    assert len(row["exact_recall"]["mean"]) == 2
    assert row["exact_recall"]["mean"][1] > doc["rows"]["2-bit"]["exact_recall"]["mean"][1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["recall.png"]
    assert main(["eval", "--seeds", "42", "--queries", "10"]) == 0
    text = capsys.readouterr().out
    assert "training seeds 42, quantizer" in text and "10 queries with 20%" in text


@pytest.mark.parametrize("argv", [["--seeds", "1"], []])
def test_eval_needs_a_network_or_seeds_not_both(small_net, argv, capsys):
    net = [str(small_net)] if argv else []
    assert main(["eval", *net, *argv]) == 2
    _assert_one_line_error(capsys.readouterr().err, "either a network file NET or --seeds")


def test_train_records_the_quantizer(tmp_path):
    path = tmp_path / "n.npz"
    assert main(["train", *SMALL, "--epochs", "2", "--quantizer", "bias", "-o", str(path)]) == 0
    assert load_network(path).quantizer == "bias"


def test_corrupt_network_file_gives_one_line_and_status_2(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(np.random.default_rng(0).bytes(3000))
    res = _khop("eval", str(bad))
    assert res.returncode == 2
    assert res.stdout == ""
    _assert_one_line_error(res.stderr, str(bad), "not a khop network file")


def test_truncated_network_file_gives_one_line_and_status_2(small_net, tmp_path):
    bad = tmp_path / "cut.npz"
    bad.write_bytes(small_net.read_bytes()[:1000])
    res = _khop("eval", str(bad), "--json")
    assert res.returncode == 2 and res.stdout == ""
    _assert_one_line_error(res.stderr, "truncated or corrupt")


@pytest.mark.parametrize(("argv", "fragments"), [
    (["eval", "missing.npz"], ["missing.npz: no such network file"]),
    (["eval", "x.npz", "--bits", "17"], ["argument --bits", "1..16", "17"]),
    (["eval", "x.npz", "--bits", "two"], ["argument --bits", "'two'"]),
    (["eval", "x.npz", "--noise", "1.5"], ["argument --noise", "[0, 1]"]),
    (["eval", "x.npz", "--max-steps", "300"], ["argument --max-steps", "1..255"]),
    (["precision", "x.npz", "--kernel-bits", "20:8"], ["argument --kernel-bits", "20:8"]),
    (["precision", "x.npz", "--kernel-bits", "8:30"], ["argument --kernel-bits", "2..24"]),
    (["verilog", "x.npz", "--max-steps", "0"], ["argument --max-steps", "1..255"]),
    (["train", "--eta", "-1"], ["eta must be a positive number", "-1.0"]),
    (["train", "--gamma", "0"], ["gamma must be a positive number"]),
    (["train", "--lambda", "-0.5"], ["lambda must be a non-negative number"]),
    (["train", "--tol", "0"], ["tol must be a positive number"]),
    (["train", "-N", "1"], ["argument -N/--neurons", ">= 2"]),
    (["train", "--gradient", "newton"], ["argument --gradient", "invalid choice"]),
    (["train", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["frobnicate"], ["argument COMMAND", "invalid choice"]),
    ([], ["required: COMMAND"]),
])
def test_bad_usage_gives_one_line_and_status_2(argv, fragments, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_one_line_error(captured.err, *fragments)
    assert not (tmp_path / "build").exists()  # nothing was trained or written


def test_unwritable_output_gives_one_line_and_status_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", *SMALL, "-o", str(blocker / "net.npz")]) == 2
    _assert_one_line_error(capsys.readouterr().err, "cannot write", str(blocker / "net.npz"))


# Every option's default as its help shows it. The hardware options are not here: they are one
# group with one help (HARDWARE_COMMANDS below), which says what an unset option becomes.
HELP_DEFAULTS = {
    "train": {"-N": "100", "-P": "300", "--gamma": "0.02", "--seed": "42", "--eta": "0.1",
              "--lam": "0.01", "--epochs": "300", "--gradient": "exact", "--dtype": "float64",
              "--tol": "None", "--output": "build/net.npz"},
    "eval": {"--bits": "2", "--noise": "0.2", "--queries": "300", "--seed": "0",
             "--max-steps": "30", "--json": "False", "--seeds": "None", "--plot": "None"},
    "demo": {"--out": "build/demo", "--quick": "False"},
    "bench": {"--quick": "False", "--json": "False", "--queries": "1000",
              "--cosim-queries": "50", "--out": "build/bench-hardware"},
    "verilog": {"--out": "build/rtl", "--lint": "False"},
    "precision": {"--noise": "0.2", "--queries": "300"},
    "paper": {"--out": "build/paper", "--trials": "None", "--quick": "False", "--jobs": "2",
              "--seed": "42"},
    "build": {"--clock-mhz": "None", "--out": "build/board", "--generate-only": "False"},
    "run": {"--baud": "115200", "--timeout": "2.0", "--queries": "100", "--noise": "0.2",
            "--seed": "0"},
    "estimate": {"-N": "100", "-P": "300", "--clock-mhz": "None", "--steps": "2.0",
                 "--json": "False"},
    "sweep": {"--neurons": "64,100,128,256", "--load": "2", "--jobs": "2", "--pnr": "False",
              "--executor": "process", "--scheduler": "None", "--timeout": "1800.0",
              "--out": "build/sweep"},
    "formal": {"--out": "build/formal", "--jobs": "2", "--quick": "False", "--json": "False",
               "--list": "False"},
}

# What an unset hardware option becomes, as the help says it: the defaults these subcommands
# had before the option group (a literal default, or the board's/device's choice).
HELP_UNSET = {
    "verilog": {"--bits": "unset: 2", "--lanes": "else 16", "--kernel-bits": "else 16",
                "--max-steps": "unset: 30"},
    "precision": {"--bits": "unset: 2"},
    "build": {"--bits": "unset: 2", "--lanes": "unset: the target's default",
              "--batch": "unset: the target's default", "--popcount-width": "unset: N",
              "--kernel-bits": "unset: the target's default", "--max-steps": "unset: 30"},
    "estimate": {"--bits": "unset: 2", "--lanes": "else 16", "--batch": "else 1",
                 "--popcount-width": "unset: N",
                 "--kernel-bits": "unset: the target's default", "--max-steps": "unset: 30"},
    "sweep": {"--bits": "unset: 2"},
}


@pytest.mark.parametrize("command", HELP_DEFAULTS)
def test_help_explains_every_option_with_its_default(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    blocks = _help_blocks(capsys.readouterr().out)
    for option, default in HELP_DEFAULTS[command].items():
        assert f"(default: {default})" in blocks[option], (option, blocks[option])
    for option, unset in HELP_UNSET.get(command, {}).items():
        assert unset in blocks[option] and "(default:" not in blocks[option], \
            (option, blocks[option])


# The subcommands that build or describe hardware, and the hardware options each offers:
# all of them, except precision, which models the arithmetic alone (the geometry, lanes and
# popcount width, changes no result of the integer model).
HARDWARE_COMMANDS = {
    "verilog": HARDWARE_OPTIONS, "cosim": HARDWARE_OPTIONS, "build": HARDWARE_OPTIONS,
    "run": HARDWARE_OPTIONS, "estimate": HARDWARE_OPTIONS, "sweep": HARDWARE_OPTIONS,
    "precision": ARITHMETIC_OPTIONS,
}
LIST_COMMANDS = {"sweep", "precision"}   # may take a comma list where one value would go


def _subparsers():
    # argparse has no public accessor for the subparsers or an action's attributes.
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _hardware_actions(sub):
    return {a.dest: a for a in sub._actions if a.dest in HARDWARE_OPTIONS}


@pytest.mark.parametrize("command", HARDWARE_COMMANDS)
def test_every_hardware_subcommand_takes_the_same_hardware_options(command):
    sub = _subparsers()[command]
    actions = _hardware_actions(sub)
    assert set(actions) == set(HARDWARE_COMMANDS[command]), command
    for name, action in actions.items():
        assert action.option_strings == ["--" + name.replace("_", "-")]
        assert action.default is None and sub.get_default(name) is None, (command, name)
        helps = {HARDWARE_HELP[name]}
        if command in LIST_COMMANDS:
            helps.add(HARDWARE_HELP[name] + LIST_SUFFIX)
        assert action.help in helps, (command, name, action.help)
        if name in HARDWARE_CHOICES:
            names = HARDWARE_CHOICES[name]
            assert action.choices == names or action.type(",".join(names)) == list(names)
            continue
        lo, hi = HARDWARE_RANGES[name]
        ok = [lo] + ([hi] if hi is not None else [lo + 1000])
        for value in ok:
            parsed = action.type(str(value))
            assert parsed in (value, [value]), (command, name, value)
        for value in [lo - 1] + ([hi + 1] if hi is not None else []):
            with pytest.raises(argparse.ArgumentTypeError):
                action.type(str(value))


@pytest.mark.parametrize("command", HARDWARE_COMMANDS)
def test_hardware_option_help_says_what_unset_means_not_default_none(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    blocks = _help_blocks(capsys.readouterr().out)
    for name in HARDWARE_COMMANDS[command]:
        block = blocks["--" + name.replace("_", "-")]
        assert "unset:" in block and "(default: None)" not in block, (command, name, block)


def test_cosim_takes_kernel_bits_and_max_steps():
    args = build_parser().parse_args(["cosim", "net.npz", "--kernel-bits", "12",
                                      "--max-steps", "10"])
    options = hardware_options(args)
    assert set(options) == set(HARDWARE_OPTIONS)
    assert {k: v for k, v in options.items() if v is not None} == \
        {"kernel_bits": 12, "max_steps": 10}


def test_precision_kernel_bits_take_ranges_and_lists():
    parse = build_parser().parse_args
    assert parse(["precision", "n.npz", "--kernel-bits", "8:11,16"]).kernel_bits == \
        [8, 9, 10, 11, 16]
    assert parse(["precision", "n.npz", "--kernel-bits", "12"]).kernel_bits == [12]
    assert parse(["precision", "n.npz"]).kernel_bits is None


def _help_blocks(text):
    """``{option string: its help text on one line}`` from argparse's "options:" section."""
    blocks = {}
    for block in re.split(r"\n(?=  -)", text.split("options:", 1)[1]):
        lines = block.strip().splitlines()
        header = re.split(r"\s{2,}", lines[0])[0] if lines else ""
        for option in re.findall(r"(?:^|, )(-{1,2}[\w-]+)", header):
            blocks[option] = " ".join(block.split())
    return blocks


def test_top_level_help_lists_every_subcommand():
    res = _khop("--help")
    assert res.returncode == 0
    for command in HELP_DEFAULTS:
        assert re.search(rf"^\s+{command}\s+\S", res.stdout, re.M), command


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    # --quick skips the cosimulation stage, which tests/sim covers.
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    return out


def test_demo_writes_the_ridge_network_and_the_metrics_table(demo_run):
    net = load_network(demo_run / "net.npz")
    assert (net.n, net.p, net.gamma, net.training["seed"]) == (100, 300, 0.02, 42)
    assert (net.training["gradient"], net.training["epochs_run"]) == ("exact", 300)
    doc = json.loads((demo_run / "metrics.json").read_text())
    assert (doc["noise"], doc["queries"], doc["seed"]) == (0.2, 300, 0)
    assert list(doc["rows"]) == ["float", "1-bit", "2-bit", "3-bit", "4-bit"]
    for row in doc["rows"].values():
        assert set(row) == {*METRICS, "small_weight_fraction"}
    assert doc["rows"]["float"]["bit_accuracy"] == 1.0
    assert doc["rows"]["float"]["small_weight_fraction"] < 0.01
    # The default quantizer beside the paper's (docs/model.md section 6).
    q = DEFAULT_QUANTIZER
    assert doc["quantizer"] == q and list(doc["quantizer_rows"]) == [f"1-bit {q}", f"2-bit {q}"]
    best = doc["quantizer_rows"][f"2-bit {q}"]
    assert best["bit_accuracy"] == 1.0 and best["exact_recall"] >= 0.95
    assert doc["rows"]["2-bit"]["exact_recall"] < 0.5


def test_demo_reuses_a_network_with_the_same_recipe(demo_run, capsys):
    before = (demo_run / "metrics.json").read_text()
    stamp = (demo_run / "net.npz").stat().st_mtime_ns
    assert main(["demo", "--out", str(demo_run), "--quick"]) == 0
    text = capsys.readouterr().out
    assert "reusing" in text
    assert "verilator --lint-only: clean" in text
    assert (demo_run / "rtl" / "khop_top.v").exists()
    assert (demo_run / "net.npz").stat().st_mtime_ns == stamp
    assert (demo_run / "metrics.json").read_text() == before
    for label in ("float", "1-bit", "2-bit", "3-bit", "4-bit"):
        assert re.search(rf"^{label}\s+[01]\.\d{{5}}\s", text, re.M), label


def test_demo_retrains_over_another_recipe_or_a_corrupt_file(tmp_path, capsys):
    save_network(tmp_path / "net.npz", train_network(20, 10, 1, TrainConfig(epochs=3)))
    ridge = demo.Ridge(config=TrainConfig(gamma=0.02, epochs=5))
    stages = [s for s in demo.STAGES if s.name == "train"]
    ctx = demo.run_demo(tmp_path, stages=stages, ridge=ridge)
    assert "holds another recipe; retraining" in capsys.readouterr().out
    assert ctx.net.training["epochs_run"] == 5 and ctx.net.n == 100
    (tmp_path / "net.npz").write_bytes(b"PK\x03\x04 broken")
    demo.run_demo(tmp_path, stages=stages, ridge=ridge)
    assert "ignoring unreadable" in capsys.readouterr().out
    assert load_network(tmp_path / "net.npz").training["epochs_run"] == 5


def test_demo_pipeline_runs_stages_in_order_and_quick_skips_slow_ones(tmp_path, capsys):
    seen = []

    def stage(name):
        return lambda ctx: seen.append((name, ctx.out))

    stages = [demo.Stage("a", "first", stage("a")), demo.Stage("b", "slow one", stage("b"), True),
              demo.Stage("c", "last", stage("c"))]
    demo.run_demo(tmp_path / "o", stages=stages)
    assert seen == [("a", tmp_path / "o"), ("b", tmp_path / "o"), ("c", tmp_path / "o")]
    assert "[2/3] b: slow one" in capsys.readouterr().out
    seen.clear()
    demo.run_demo(tmp_path / "o", quick=True, stages=stages)
    assert [s for s, _ in seen] == ["a", "c"]
    assert "[2/2] c: last" in capsys.readouterr().out


def test_bench_quick_json(capsys):
    assert main(["bench", "--quick", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    figs = doc["figures"]
    assert doc["quick"] is True and len(figs) == 3
    assert not any("N=1000" in f["name"] for f in figs)
    for f in figs:
        assert f["value"] > 0 and f["goal"] > 0 and isinstance(f["passed"], bool)


@pytest.mark.parametrize(("value", "better", "passed"), [
    (1.0, "lower", True), (2.0, "lower", False), (3.0, "lower", False),
    (1.0, "higher", False), (2.0, "higher", True), (3.0, "higher", True),
])
def test_figure_pass_rule(value, better, passed):
    assert Figure("x", value, "s", 2.0, better).passed is passed


def test_verilog_writes_lint_clean_verilog_and_its_description(small_net, tmp_path, capsys):
    out = tmp_path / "rtl"
    assert main(["verilog", str(small_net), "--bits", "3", "--lanes", "5",
                 "--popcount-width", "7", "--quantizer", "paper", "-o", str(out),
                 "--lint"]) == 0
    text = capsys.readouterr().out
    assert "verilator --lint-only: clean" in text
    verilog = (out / "khop_top.v").read_text()
    assert "module khop_top(" in verilog
    info = json.loads((out / "khop_top.json").read_text())
    assert info["parameters"] == {"n": 24, "p": 30, "weight_bits": 3, "lanes": 5,
                                  "popcount_width": 7, "kernel_bits": 16,
                                  "threshold_frac_bits": 16, "max_steps": 30,
                                  "center": "median", "quantizer": "paper",
                                  "threshold_units": 4, "batch": 1}
    # 24 neurons in blocks of 5 lanes: 5 passes over the 30 patterns, bound 30 * 5.
    assert info["cycle_model"]["bound_cycles_per_step"] == 150
    assert {p["name"] for p in info["ports"]} >= {"clk", "rst", "i_query__payload",
                                                   "o_result__payload", "i_load__payload"}


@pytest.mark.parametrize("argv, fragments", [
    (["--lanes", "25"], ["lanes must be in 1..24, not 25"]),
    (["--bits", "5"], ["--bits", "1..4"]),
    (["--popcount-width", "0"], ["--popcount-width"]),
])
def test_verilog_rejects_bad_hardware_parameters(small_net, tmp_path, argv, fragments, capsys):
    out = tmp_path / "rtl"
    assert main(["verilog", str(small_net), "-o", str(out), *argv]) == 2
    _assert_one_line_error(capsys.readouterr().err, *fragments)
    assert not out.exists()


def test_precision_json_has_a_row_per_kernel_width(small_net, capsys):
    assert main(["precision", str(small_net), "--kernel-bits", "8,16", "--queries", "20",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["kernel_bits"] for r in doc["rows"]] == [8, 16]
    assert all(0.0 <= r["int_bit_accuracy"] <= 1.0 for r in doc["rows"])


def test_precision_unset_kernel_bits_is_the_default_width(small_net, capsys):
    assert main(["precision", str(small_net), "--queries", "20", "--max-steps", "12",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["kernel_bits"] for r in doc["rows"]] == [16]
    assert (doc["bits"], doc["threshold_frac_bits"], doc["max_steps"]) == (2, 16, 12)


def test_precision_models_the_chosen_quantizer(small_net, capsys):
    docs = {}
    for q in ("paper", "neuron", None):
        assert main(["precision", str(small_net), "--queries", "20", "--json",
                     *(["--quantizer", q] if q else [])]) == 0
        docs[q] = json.loads(capsys.readouterr().out)
    assert docs["paper"]["quantizer"] == "paper" and docs[None] == {
        **docs[DEFAULT_QUANTIZER], "quantizer": load_network(small_net).quantizer}
    assert docs["paper"]["rows"] != docs["neuron"]["rows"]


def test_precision_table_over_a_range(small_net, capsys):
    assert main(["precision", str(small_net), "--kernel-bits", "3:5", "--queries",
                 "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "integer model vs float 2-bit model" in lines[0]
    assert [int(line.split()[0]) for line in lines[3:]] == [3, 4, 5]
    # Each width's reach, the last distance with a kernel value above 0 (N=24, gamma 0.05).
    assert lines[2].split()[:2] == ["kernel_bits", "reach"]
    assert [int(line.split()[1]) for line in lines[3:]] == [
        kernel_reach(0.05, 24, k) for k in (3, 4, 5)] == [10, 13, 17]


def test_precision_exact_recall_is_the_mean_over_the_seeds_query_sets(small_net, capsys):
    """Each seed's exact recall, recomputed here with the integer model on that seed's queries:
    the row is their mean, lowest and highest."""
    from khop.hw.params import configure
    from khop.model.fixed import to_bits
    from khop.model.metrics import noisy_queries

    assert main(["precision", str(small_net), "--kernel-bits", "9", "--queries", "30",
                 "--seed", "4", "--seeds", "3", "--quantizer", "neuron", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seeds"] == [4, 5, 6]
    (row,) = doc["rows"]
    net = load_network(small_net)
    _, inet = configure(net, kernel_bits=9, quantizer="neuron")
    exact, steps = [], []
    for seed in (4, 5, 6):
        qs, targets = noisy_queries(net.patterns, 0.2, 30, np.random.default_rng(seed))
        res = inet.retrieve(to_bits(qs))
        exact.append(np.mean(np.all(res.states == to_bits(net.patterns[targets]), axis=1)))
        steps.append(np.mean(res.steps))
    assert row["seeds"] == 3
    assert row["int_exact_recall"] == pytest.approx(np.mean(exact))
    assert (row["int_exact_recall_min"], row["int_exact_recall_max"]) == (min(exact), max(exact))
    assert row["int_mean_steps"] == pytest.approx(np.mean(steps))
    assert row["int_exact_recall"] <= row["int_recall_accuracy"]
