"""Limits, divergence, standard JSON and whole outputs (issue 13, "Command lines with a traceback"
and "Half-written outputs"): every case ends in one line ``khop: error: ...`` and exit status 2,
and a failed or refused command leaves nothing half-written and no empty directory."""

import errno
import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from khop.cli import main
from khop.model.errors import ParameterError
from khop.model.klr import TrainConfig, TrainingDiverged, train_klr, training_bytes
from khop.model.memory import format_bytes, physical_memory
from khop.model.train import train_network
from khop.outputs import (
    OutputError,
    atomic_directory,
    atomic_write,
    output_directory,
    to_json,
    write_files,
)

SMALL = ["-N", "16", "-P", "20", "--epochs", "5", "--seed", "1"]


def _one_line_error(capsys, *fragments):
    """The captured stderr is exactly one ``khop: error:`` line holding every fragment."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("khop: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _strict_json(text):
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity``."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "net.npz"
    assert main(["train", *SMALL, "-o", str(path)]) == 0
    return path


def _no_space_for(name, monkeypatch):
    """Make writing text to the file ``name`` (or a temporary standing for it,
    ``.<stem>.<random>.tmp<suffix>``) fail with ENOSPC."""
    real = Path.write_text
    stem, suffix = os.path.splitext(name)

    def write_text(self, *args, **kwargs):
        if self.name == name or (self.name.startswith(f".{stem}.") and
                                 self.name.endswith(suffix)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", write_text)


# Divergence

def test_divergent_training_stops_naming_the_step_size(tmp_path, capsys):
    out = tmp_path / "net.npz"
    assert main(["train", *SMALL[:4], "--eta", "1e6", "-o", str(out)]) == 2
    line = _one_line_error(capsys, "training diverged at epoch", "--eta", "1e+06")
    assert "alpha" not in line
    assert not out.exists()


def test_train_klr_raises_training_diverged_with_the_epoch():
    patterns = np.where(np.random.default_rng(0).random((10, 8)) < 0.5, -1, 1).astype(np.int8)
    with pytest.raises(TrainingDiverged, match=r"lower the step size eta \(1e\+300\)") as info:
        train_klr(patterns, TrainConfig(eta=1e300, epochs=50))
    assert 1 <= info.value.epoch <= 50
    assert isinstance(info.value, ParameterError)


# Sizes the machine cannot hold

def test_training_a_p_beyond_memory_is_refused_up_front(tmp_path, capsys):
    assert main(["train", "-P", "2000000", "-o", str(tmp_path / "net.npz")]) == 2
    line = _one_line_error(capsys, "N=100 P=2000000 needs about", "TiB", "this machine has")
    assert format_bytes(training_bytes(100, 2_000_000)) in line
    assert not (tmp_path / "net.npz").exists()


def test_train_network_refuses_before_allocating():
    with pytest.raises(ParameterError, match="P x P kernel matrix"):
        train_network(100, 2_000_000, 0)


def test_training_bytes_covers_the_kernel_matrix():
    assert training_bytes(100, 2_000_000) >= 2_000_000 ** 2 * 8
    assert training_bytes(1000, 3000, "float32") < physical_memory()   # khop bench's size
    assert format_bytes(32 * 2 ** 40) == "32.0 TiB"


@pytest.mark.parametrize("command", ["eval", "precision"])
def test_query_counts_beyond_memory_are_refused(net_file, command, capsys):
    assert main([command, str(net_file), "--queries", str(10 ** 13)]) == 2
    _one_line_error(capsys, f"{10 ** 13} queries of N=16 against P=20 needs about",
                    "this machine has")


# Numbers: finite only

@pytest.mark.parametrize("argv, option, fragment", [
    (["train", "--eta", "nan"], "--eta", "finite number"),
    (["train", "--gamma", "inf"], "--gamma", "finite number"),
    (["train", "--lambda", "nan"], "--lam", "finite number"),
    (["train", "--tol", "inf"], "--tol", "finite number"),
    (["estimate", "--device", "up5k", "--clock-mhz", "inf"], "--clock-mhz", "finite number"),
    (["estimate", "--device", "up5k", "--steps", "inf"], "--steps", "finite number"),
    (["estimate", "--device", "up5k", "--steps", "nan"], "--steps", "finite number"),
    (["build", "x.npz", "--board", "icebreaker", "--clock-mhz", "inf"], "--clock-mhz",
     "finite number"),
    (["run", "x.npz", "--port", "/dev/null", "--timeout", "-1"], "--timeout", "above 0"),
    (["run", "x.npz", "--port", "/dev/null", "--timeout", "0"], "--timeout", "above 0"),
    (["run", "x.npz", "--port", "/dev/null", "--timeout", "inf"], "--timeout", "finite number"),
    (["run", "x.npz", "--port", "/dev/null", "--timeout", "nan"], "--timeout", "finite number"),
    (["run", "x.npz", "--port", "/dev/null", "--noise", "nan"], "--noise", "finite number"),
    (["eval", "x.npz", "--noise", "0.1,nan"], "--noise", "finite number"),
    (["precision", "x.npz", "--noise", "inf"], "--noise", "finite number"),
    (["cosim", "x.npz", "--noise", "nan"], "--noise", "finite number"),
    (["sweep", "--device", "up5k", "--timeout", "inf"], "--timeout", "finite number"),
])
def test_numeric_options_refuse_nan_and_infinity(argv, option, fragment, capsys, tmp_path,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    _one_line_error(capsys, f"argument {option}", fragment)
    assert list(tmp_path.iterdir()) == []


def test_train_config_refuses_an_infinite_tolerance():
    with pytest.raises(ValueError, match="tol must be a positive number"):
        TrainConfig(tol=math.inf)


# Standard JSON

def test_estimate_json_has_no_infinity(capsys):
    """1e-320 steps per query made the retrieval rate infinite and the JSON hold ``Infinity``;
    now a mean below one step (and a clock beyond any device) is refused, and the JSON of the
    extreme accepted values is standard."""
    for args, what in ((["--steps", "1e-320"], "--steps"), (["--clock-mhz", "1e308"],
                                                            "--clock-mhz")):
        assert main(["estimate", "--device", "up5k", *args, "--json"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"argument {what}: must be a number in" in err
    status = main(["estimate", "--device", "up5k", "--steps", "1", "--clock-mhz", "1000",
                   "--json"])
    assert status in (0, 1)
    doc = _strict_json(capsys.readouterr().out)
    assert doc["retrievals_per_s"] > 0


def test_to_json_maps_non_finite_floats_to_null():
    text = to_json({"a": math.inf, "b": [math.nan, -math.inf, 1.5], "c": np.float64("nan"),
                    "d": np.array([1.0, np.inf]), "e": (np.int64(3), True, None, "x")})
    assert _strict_json(text) == {"a": None, "b": [None, None, 1.5], "c": None,
                                  "d": [1.0, None], "e": [3, True, None, "x"]}


# Outputs whole or not at all

def test_verilog_v_does_not_appear_without_its_json(net_file, tmp_path, capsys, monkeypatch):
    _no_space_for("khop_top.json", monkeypatch)
    out = tmp_path / "rtl"
    assert main(["verilog", str(net_file), "-o", str(out)]) == 2
    line = _one_line_error(capsys, f"cannot write {out / 'khop_top.json'}",
                           "no space left on device")
    assert ".tmp" not in line
    assert not out.exists()


def test_verilog_keeps_the_previous_pair_when_the_json_fails(net_file, tmp_path, capsys,
                                                             monkeypatch):
    out = tmp_path / "rtl"
    out.mkdir()
    (out / "khop_top.v").write_text("old v\n")
    (out / "khop_top.json").write_text("{}\n")
    _no_space_for("khop_top.json", monkeypatch)
    assert main(["verilog", str(net_file), "-o", str(out)]) == 2
    _one_line_error(capsys, "khop_top.json", "no space left on device")
    assert (out / "khop_top.v").read_text() == "old v\n"
    assert sorted(p.name for p in out.iterdir()) == ["khop_top.json", "khop_top.v"]


def test_write_files_rolls_back_when_a_later_rename_fails(tmp_path, monkeypatch):
    a, b = tmp_path / "a.v", tmp_path / "b.json"
    a.write_text("old a")
    real = os.replace

    def replace(src, dst):
        if Path(dst) == b:
            raise OSError(errno.EACCES, "Permission denied", str(src), str(dst))
        return real(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputError, match=f"cannot write {b}: permission denied"):
        write_files({a: "new a", b: "new b"})
    monkeypatch.setattr(os, "replace", real)
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.v"]


def test_a_failed_build_leaves_no_empty_directory(net_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _no_space_for("report.json", monkeypatch)
    assert main(["build", str(net_file), "--board", "icebreaker", "--generate-only"]) == 2
    line = _one_line_error(capsys, "cannot write build/board/report.json",
                           "no space left on device")
    assert ".tmp" not in line
    assert list(tmp_path.iterdir()) == []


def test_a_refused_build_leaves_no_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    big = tmp_path / "big.npz"
    assert main(["train", "-N", "200", "-P", "2000", "--epochs", "1", "-o", str(big)]) == 0
    capsys.readouterr()
    assert main(["build", str(big), "--board", "icebreaker", "-o", "out/board"]) == 2
    _one_line_error(capsys, "does not fit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npz"]


def test_a_failed_train_leaves_no_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *SMALL[:4], "--eta", "1e6", "-o", "a/b/net.npz"]) == 2
    capsys.readouterr()
    assert list(tmp_path.iterdir()) == []


# Messages about output paths

def test_an_output_under_a_file_says_which_is_not_a_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", *SMALL, "-o", str(blocker / "x" / "net.npz")]) == 2
    line = _one_line_error(capsys, f"cannot write {blocker / 'x' / 'net.npz'}: "
                                   f"{blocker} is not a directory")
    assert line.count("cannot write") == 1


def test_demo_under_a_file_says_which_is_not_a_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["demo", "--quick", "--out", str(blocker / "demo")]) == 2
    _one_line_error(capsys, f"{blocker} is not a directory")


def test_output_errors_name_the_target_never_a_temporary(tmp_path, monkeypatch):
    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))
    monkeypatch.setattr(Path, "write_bytes", no_space)
    target = tmp_path / "x" / "net.npz"
    with pytest.raises(OutputError) as info:
        atomic_write(target, b"data")
    assert str(info.value) == f"cannot write {target}: no space left on device"
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert list(tmp_path.iterdir()) == []     # neither the temporary nor the directory x


def test_an_output_over_a_directory_says_so(tmp_path):
    (tmp_path / "net.npz").mkdir()
    with pytest.raises(OutputError, match="net.npz is a directory"):
        atomic_write(tmp_path / "net.npz", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def test_directories_made_for_a_failed_output_are_removed(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "a" / "b" / "out"):
        raise RuntimeError("the build failed")
    with pytest.raises(RuntimeError), output_directory(tmp_path / "c" / "d"):
        raise RuntimeError("the run failed")
    assert list(tmp_path.iterdir()) == []
    with output_directory(tmp_path / "e") as d:
        (d / "f").write_text("kept")
    assert (tmp_path / "e" / "f").read_text() == "kept"


def test_the_new_errors_cross_process_boundaries():
    # khop paper and khop sweep run work in worker processes: their errors are pickled back.
    diverged = pickle.loads(pickle.dumps(TrainingDiverged(3, math.nan, 1e6, "--eta")))
    assert str(diverged) == ("training diverged at epoch 3 (the loss became NaN); lower the step "
                             "size --eta (1e+06)")
    output = pickle.loads(pickle.dumps(OutputError("a/b", OSError(errno.ENOSPC, "x"))))
    assert str(output) == "cannot write a/b: no space left on device"
    assert output.errno == errno.ENOSPC
