"""The paper's experiments at a small N (model/experiments.py): shapes, reproducibility, and the
qualitative results the science predicts (N = 30, P = 90, kernel widths scaled by 100 / N)."""

import json

import numpy as np
import pytest

from khop.model import experiments as ex

N, SEED = 30, 7


@pytest.fixture(scope="module")
def run():
    """``run(name)``: that experiment at N = 30, one trial, quick; computed once per module."""
    cache = {}

    def get(name, trials=1):
        if (name, trials) not in cache:
            cache[name, trials] = ex.run_experiment(name, trials, SEED, True, n=N)
        return cache[name, trials]

    return get


def test_every_experiment_is_plain_json_and_names_its_claims(run):
    claims = set()
    for name in ex.EXPERIMENTS:
        r = run(name)
        assert json.loads(json.dumps(r)) == r
        assert r["experiment"] == name and r["seed"] == SEED and r["quick"] is True
        claims.update(r["claims"])
    assert claims == {f"R{k}" for k in range(1, 11)}


def test_kernel_width_scales_with_n():
    assert ex.scaled_gamma(0.02, 100) == 0.02
    assert ex.scaled_gamma(0.02, 50) == pytest.approx(0.04)


def test_trials_use_consecutive_seeds_and_reproduce(run):
    two = run("quantization", trials=2)
    assert two["bit_accuracy"]["trials"][0] == run("quantization")["bit_accuracy"]["trials"][0]
    m = two["stability_margin"]["trials"]
    assert m[0] != m[1]
    mean, std = np.mean(m, axis=0), np.std(m, axis=0, ddof=1)
    np.testing.assert_allclose(two["stability_margin"]["mean"], mean)
    np.testing.assert_allclose(two["stability_margin"]["std"], std)
    again = ex.run_experiment("quantization", 2, SEED, True, n=N)
    assert again == two


def test_quantization_keeps_bits_down_to_three_and_float32_changes_nothing(run):
    r = run("quantization")
    acc = dict(zip(r["bits"], r["bit_accuracy"]["mean"], strict=True))
    assert r["bits"] == [32, 16, 8, 6, 4, 3, 2, 1]
    assert acc[32] == r["float64"]["bit_accuracy"]["mean"] == 1.0
    assert all(acc[k] == 1.0 for k in (16, 8, 6, 4, 3))
    assert acc[1] >= 0.95


def test_two_bit_margin_rises_above_the_float_margin(run):
    for name in ("quantization", "quantization_pn2"):
        r = run(name)
        m = dict(zip(r["bits"], r["stability_margin"]["mean"], strict=True))
        assert m[16] == pytest.approx(m[32], rel=1e-4)
        assert m[2] > 1.1 * m[32], name


def test_pruning_ten_percent_hurts_more_than_two_bit_quantization(run):
    r = run("pruning")
    acc = dict(zip(r["sparsity"], r["bit_accuracy"]["mean"], strict=True))
    assert acc[0.0] == 1.0
    assert acc[0.1] < r["two_bit_accuracy"]["mean"]
    assert acc[0.1] < 0.99
    assert acc[0.5] < acc[0.2] < acc[0.1]


def test_trained_weights_leave_the_valley_empty(run):
    r = run("weights")
    assert r["valley_fraction"]["mean"] < 0.01
    assert r["peak_negative"]["mean"] < -1 and r["peak_positive"]["mean"] > 1
    e = np.array(r["bin_edges"])
    centre = (e[:-1] + e[1:]) / 2
    density = np.array(r["density"]["mean"])
    assert np.sum(density * np.diff(e)) == pytest.approx(1.0)
    assert np.all(density[np.abs(centre) < 0.5] == 0)


def test_margin_degradation_grows_with_the_step_on_the_ridge(run):
    r = run("margin_scaling")
    on = r["ridge"]
    deg = on["degradation"]["mean"]
    assert r["bits"][0] == 16 and r["bits"][-1] == 2
    assert deg[-1] > 100 * deg[0]
    assert on["slope"]["mean"] > 0.3 and on["pooled_fit"]["points"] == len(r["bits"])
    # Off the ridge the 2-bit margin barely moves next to the ridge's.
    assert r["off_ridge"]["relative_degradation"]["mean"][-1] < \
        0.1 * on["relative_degradation"]["mean"][-1]


def test_noisy_recall_falls_with_noise_and_two_bit_tracks_float(run):
    r = run("noisy_recall")
    assert r["noise"][0] == 0.0
    f = np.array(r["float"]["recall_accuracy"]["mean"])
    q = np.array(r["2-bit"]["recall_accuracy"]["mean"])
    assert f[0] == 1.0 and f[-1] < f[0]
    assert np.all(np.abs(f - q) < 0.1)
    assert np.all(np.array(r["float"]["exact_recall"]["mean"]) <= f)


def test_gamma_sweep_degradation_vanishes_at_wide_gamma_and_peaks_at_narrow(run):
    r = run("gamma_sweep")
    g = r["gamma_at_n100"]
    deg = np.array(r["degradation"]["mean"])
    assert r["gamma"] == pytest.approx([ex.scaled_gamma(x, N) for x in g])
    assert np.all(deg[np.array(g) > 0.02] == 0)
    assert deg.max() > 0.05 and g[int(np.argmax(deg))] < 0.02
    # The stability number of the first gradient step grows as gamma shrinks.
    assert np.all(np.diff(r["stability_number"]["mean"]) < 0)


def test_influence_gini_is_a_fraction_above_its_noise_floor(run):
    r = run("influence")
    assert r["samples"] == 1000 and len(r["l1"]) == len(r["l1_lams"])
    for rec in (r["l2"], *r["l1"]):
        g = rec["gini"]["mean"]
        assert 0 < g < 1
        assert rec["noise_floor"]["mean"] < g
        assert rec["mean_self_influence"]["mean"] > rec["mean_cross_influence"]["mean"]
    m = np.array(r["example_trial0"]["l2"])
    assert m.shape == (N, N) and np.all((0 <= m) & (m <= 1))
    lorenz = r["lorenz"]["l2"]["mean"]
    assert lorenz[0] == 0 and lorenz[-1] == pytest.approx(1.0) and len(lorenz) == N


def test_storage_matches_the_paper_bit_exactly(run):
    r = run("storage")
    assert (r["n"], r["p"]) == (1000, 3000)
    assert r["float32_bytes"] == 12_000_000 and r["two_bit_bytes"] == 750_000
    assert r["packed_bytes"] == 750_000 and r["roundtrip_exact"]
    assert r["ratio_float32_to_two_bit"] == 16


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_codes_pack_and_unpack_exactly(bits):
    codes = np.random.default_rng(bits).integers(0, 2 ** bits, size=37).astype(np.uint8)
    packed = ex.pack_codes(codes, bits)
    assert packed.size == -(-37 * bits // 8)
    np.testing.assert_array_equal(ex.unpack_codes(packed, bits, 37), codes)


def test_two_bit_packing_order_is_little_endian_within_a_byte():
    assert ex.pack_codes([1, 2, 3, 0], 2).tolist() == [0b00111001]
    with pytest.raises(ValueError, match="does not fit"):
        ex.pack_codes([4], 2)


def test_quantizer_comparison_sets_bias_correction_next_to_the_papers_quantizer(run):
    r = run("quantizers")
    assert r["claims"] == [] and r["noise"] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert r["variants"][:4] == ["float", "2-bit", "2-bit bias", "2-bit neuron"]
    assert "1-bit neuron" not in r["variants"]          # the same as 1-bit bias
    assert set(r["scores"]) == set(r["variants"])
    for s in r["scores"].values():
        assert len(s["recall_accuracy"]["mean"]) == len(r["noise"])
        assert s["exact_recall"]["trials"][0][0] <= 1.0
    i = r["noise"].index(0.1)
    paper, bias = r["scores"]["2-bit"], r["scores"]["2-bit bias"]
    # The per-neuron offset removes the bias the paper's codes leave: recall at 10 % noise.
    assert bias["recall_accuracy"]["mean"][i] > paper["recall_accuracy"]["mean"][i]
    assert bias["exact_recall"]["mean"][i] > paper["exact_recall"]["mean"][i]
