"""``khop bench --hardware`` on a small network: real cosimulations (Verilator), the build
figures from a cached report (no synthesis in the default suite)."""

import json

import numpy as np
import pytest

from khop.boards.targets import get_board
from khop.cli import main
from khop.hw.params import configure
from khop.hwbench import build_directory, format_hardware_figures, run_hardware_bench
from khop.model.fixed import to_bits
from khop.model.kernel import random_patterns
from khop.model.metrics import noisy_queries
from khop.model.netfile import Network, save_network
from khop.model.retrieval import retrieve
from khop.sim.runner import sim_available

OK, WHY = sim_available("verilator")
pytestmark = pytest.mark.skipif(not OK, reason=WHY)


@pytest.fixture(scope="module")
def small_net():
    rng = np.random.default_rng(3)
    patterns = random_patterns(rng, 16, 8)
    return Network(patterns=patterns, alpha=rng.normal(0, 2.5, patterns.shape), gamma=0.06)


def test_figures_follow_the_cycle_model_and_the_cached_build(small_net, tmp_path):
    """Cycles per step measured = model, the cosimulated stream's cycles = the slots' timing
    model; the retrieval rate is the queries back to back at the board clock (with one slot,
    the clock over the query interval at the mean steps); the ratio is against NumPy on the
    same queries; a cached build report that meets the clock gives the clock, one that misses
    it gives no rate."""
    ice = get_board("icebreaker")
    params, _ = configure(small_net, defaults=ice.defaults)
    figures, numpy = run_hardware_bench(small_net, boards=["icebreaker"], queries=40,
                                        cosim_queries=6, build=False, out=tmp_path,
                                        report=lambda s: None)
    [f] = figures
    stream = 4 + min(params.p, 8)          # the back-to-back scenario of 6 queries
    assert f.cosim_mismatches == 0 and f.cosim_queries == 6 + stream == f.stream_queries + 6
    assert f.cycles_per_step_measured == f.cycles_per_step_model == params.cycles_per_step
    assert f.stream_cycles_measured == f.stream_cycles_model > 0
    if params.batch == 1:
        assert f.retrievals_per_s == pytest.approx(
            ice.clock_hz / params.query_interval(f.mean_steps), rel=1e-3)
    # The slots' capacity: batch queries per cycles_per_step x mean steps, never exceeded.
    capacity = params.batch * ice.clock_hz / (params.cycles_per_step * f.mean_steps)
    assert f.slot_use == pytest.approx(f.retrievals_per_s / capacity)
    assert 0.5 < f.slot_use <= 1
    assert f.ratio == pytest.approx(f.retrievals_per_s / numpy["retrievals_per_s"])
    assert "BLAS thread" in numpy["threads"] and f.build == "not built"
    text = format_hardware_figures(figures, numpy)
    assert "icebreaker" in text and f"{f.retrievals_per_s:,.0f}" in text
    assert f"{100 * f.slot_use:.1f} %" in text

    # Recall on the same queries: the integer model's (the hardware's) and the float model's,
    # the whole pattern and bit-wise, counted here from the final states.
    queries, targets = noisy_queries(small_net.patterns, 0.2, 40, np.random.default_rng(0))
    _, inet = configure(small_net, defaults=ice.defaults)
    final = inet.retrieve(to_bits(queries)).states
    stored = to_bits(small_net.patterns[targets])
    assert f.exact_recall == np.mean(np.all(final == stored, axis=1))
    assert f.recall_accuracy == np.mean(final == stored)
    floats = retrieve(queries, small_net.patterns, small_net.alpha, small_net.gamma).states
    assert numpy["exact_recall"] == np.mean(np.all(floats == small_net.patterns[targets], axis=1))
    assert numpy["recall_accuracy"] == np.mean(floats == small_net.patterns[targets])
    assert 0 < f.recall_accuracy and f"{100 * f.exact_recall:.1f} %" in text

    # A cached build report (what khop build writes) is read instead of building.
    for fmax, rate in ((ice.clock_mhz + 1, True), (ice.clock_mhz - 5, False)):
        cached = build_directory(tmp_path, ice, params)
        cached.mkdir(exist_ok=True)
        (cached / "report.json").write_text(json.dumps({"fmax_mhz": fmax}))
        [g], _ = run_hardware_bench(small_net, boards=["icebreaker"], queries=40,
                                    cosim_queries=6, build=True, out=tmp_path,
                                    report=lambda s: None)
        assert g.fmax_mhz == fmax and g.build == "ok (cached)"
        assert (g.retrievals_per_s is not None) == rate
        assert (g.clock_met_mhz == ice.clock_mhz) == rate


def test_cli_bench_hardware_json(small_net, tmp_path, capsys):
    path = tmp_path / "net.npz"
    save_network(path, small_net)
    assert main(["bench", "--hardware", "--network", str(path), "--boards", "icebreaker",
                 "--queries", "20", "--cosim-queries", "4", "--no-build", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [board] = doc["boards"]
    assert board["board"] == "icebreaker" and board["cosim_mismatches"] == 0
    assert doc["numpy"]["queries"] == 20
