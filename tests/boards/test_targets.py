"""The target table: one row per device, boards know their top and platform, and every consumer
(build, run, estimate, sweep, the help texts) reads its clock and default geometry from it."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from khop.boards import sweep as sweep_mod
from khop.boards.targets import (
    BOARDS,
    DEVICES,
    TARGETS,
    device_target,
    get_board,
    get_device,
    get_target,
)
from khop.boards.top import ICEBreakerTop, ULX3STop
from khop.cli import main
from khop.hw.params import HardwareDefaults
from khop.model.fixed import sharp_kernel_bits
from khop.model.netfile import Network, save_network


def test_every_device_has_one_target_and_boards_know_their_top():
    assert {t.device.name for t in TARGETS.values()} == set(DEVICES)
    assert set(BOARDS) == {"icebreaker", "ulx3s-85f"}
    assert get_board("icebreaker").board.top_class is ICEBreakerTop
    assert get_board("ulx3s-85f").board.top_class is ULX3STop
    assert device_target("up5k") is get_board("icebreaker")
    assert get_target("hx8k").board is None and isinstance(get_target("hx8k").defaults,
                                                          HardwareDefaults)
    for t in BOARDS.values():
        top = t.top(t.params(16, 32))
        top._MustUse__silence = True  # made to be inspected, not elaborated
        assert isinstance(top, t.board.top_class) and top.clock_hz == pytest.approx(t.clock_hz)


def test_unsupported_names_list_the_allowed_ones():
    with pytest.raises(ValueError, match="unsupported board 'de10'; choose one of "
                                         "icebreaker, ulx3s-85f"):
        get_board("de10")
    with pytest.raises(ValueError, match="unknown device 'xc7'; choose one of up5k, hx8k"):
        get_device("xc7")
    with pytest.raises(ValueError, match="a device without a board"):
        device_target("hx8k").top(device_target("hx8k").params(16, 32))


@pytest.fixture(scope="module")
def small_net(tmp_path_factory):
    rng = np.random.default_rng(1)
    patterns = np.where(rng.random((60, 40)) < 0.5, -1, 1).astype(np.int8)
    path = tmp_path_factory.mktemp("net") / "net.npz"
    save_network(path, Network(patterns=patterns, alpha=rng.normal(0, 2.5, (60, 40)),
                               gamma=0.05, training={}, loss_history=np.zeros(1)))
    return path


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_build_reads_clock_and_geometry_from_the_table(board, small_net, tmp_path):
    target = get_board(board)
    out = tmp_path / board
    assert main(["build", str(small_net), "--board", board, "-o", str(out),
                 "--generate-only"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["clock_mhz"] == pytest.approx(target.clock_mhz)
    assert report["target_mhz"] == target.clock_mhz
    assert report["device"] == target.device.part
    # The kernel width follows the network's gamma (0.05 here, not the training default).
    assert report["params"] == target.params(40, 60, gamma=0.05).as_dict()
    assert report["params"]["kernel_bits"] == sharp_kernel_bits(0.05, 40, 60) != \
        sharp_kernel_bits(0.02, 40, 60)


def test_sweep_grid_reads_the_default_geometry_from_the_table(tmp_path):
    configs, skipped = sweep_mod.config_grid(list(DEVICES), [8, 100], [2])
    assert not skipped
    for cfg in configs:
        target = device_target(cfg.device)
        assert cfg.lanes == min(cfg.n, target.defaults.lanes)
        assert cfg.params() == target.params(cfg.n, cfg.p)


def test_run_rejects_options_that_differ_from_the_board(small_net, capsys):
    assert main(["run", str(small_net), "--port", "emulated", "--emulate-lanes", "8",
                 "--queries", "3", "--lanes", "8", "--kernel-bits", "12"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kernel_bits=16" in err and "--kernel-bits 12" in err
    assert main(["run", str(small_net), "--port", "emulated", "--emulate-lanes", "8",
                 "--queries", "3", "--lanes", "8", "--max-steps", "30"]) == 0
    assert "0 differ from the integer model" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["build", "estimate", "sweep"])
def test_help_lists_the_table(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    names = BOARDS if command == "build" else DEVICES
    for name in names:
        assert name in out
    for t in (BOARDS.values() if command == "build" else TARGETS.values()):
        assert f"{t.clock_mhz:g} MHz, {t.defaults.lanes} lanes" in out


def test_sweep_takes_every_hardware_option_and_keeps_old_cache_keys():
    configs, skipped = sweep_mod.config_grid(["up5k"], [16], [2], [1], [4],
                                             kernel_bits=[10, 12], popcount_width=[8, 20])
    assert [(c.kernel_bits, c.popcount_width) for c in configs] == [(10, 8), (12, 8)]
    assert [c.params().kernel_bits for c in configs] == [10, 12]
    assert len(skipped) == 2 and "popcount_width must be in 1..16" in skipped[0]["reason"]
    plain, _ = sweep_mod.config_grid(["up5k"], [16], [2], [1], [4])
    assert set(plain[0].as_dict()) == {"device", "n", "load", "bits", "lanes", "pnr"}
    assert configs[0].as_dict()["kernel_bits"] == 10


def test_boards_readme_table_quotes_the_target_table():
    """boards/README.md's board table is a quotation of TARGETS: each board's row names its
    clock and default geometry and arithmetic (threshold units included) as the table has
    them."""
    readme = (Path(__file__).parents[2] / "boards" / "README.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w-]+)` \|.*$", readme, re.M)}
    assert set(rows) == set(BOARDS)
    for name, t in BOARDS.items():
        row = rows[name]
        assert t.device.part.replace("iCE40", "iCE40 ") in row or t.device.part in row, row
        assert f"{t.clock_mhz:g} MHz |" in row, row
        assert row.rstrip(" |").endswith(t.geometry), row
