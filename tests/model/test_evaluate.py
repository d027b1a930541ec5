"""Float versus quantized evaluation (model/evaluate.py)."""

import numpy as np
import pytest

from khop.model.compress import quantize
from khop.model.evaluate import (
    METRICS,
    compare,
    evaluate_weights,
    format_table,
    recall_sweep,
    score_variants,
    small_weight_fraction,
    variant_label,
    variant_spec,
    weight_variants,
)
from khop.model.kernel import random_patterns
from khop.model.metrics import noisy_queries
from khop.model.netfile import Network


def _net(seed=0):
    rng = np.random.default_rng(seed)
    x = random_patterns(rng, 30, 20)
    return Network(patterns=x, alpha=3 * x + rng.normal(scale=1.0, size=x.shape), gamma=0.1)


def test_compare_scores_every_variant_on_the_same_queries():
    net = _net()
    rows = compare(net, (None, 1, 2, 8), noise=0.2, count=25, seed=5, max_steps=20)
    assert list(rows) == ["float", "1-bit", "2-bit", "8-bit"]
    q, t = noisy_queries(net.patterns, 0.2, 25, np.random.default_rng(5))
    for label, bits in [("float", None), ("2-bit", 2)]:       # k alone: the paper's quantizer
        w = net.alpha if bits is None else quantize(net.alpha, bits, quantizer="paper").values
        assert rows[label] == evaluate_weights(net.patterns, w, net.gamma, q, t, 20)


def test_fine_quantization_reproduces_the_float_row():
    # 16 bits move no potential across 0 here, so with shared queries every metric but the
    # margin is identical, and the margin moves by at most Delta/2 times sum K.
    net = _net(1)
    rows = compare(net, (None, 16), noise=0.25, count=40, seed=2)
    f, q = rows["float"], rows["16-bit"]
    assert (f.bit_accuracy, f.recall_accuracy, f.exact_recall) == \
        (q.bit_accuracy, q.recall_accuracy, q.exact_recall)
    assert q.stability_margin == pytest.approx(f.stability_margin, abs=1e-3)


def test_evaluation_has_exactly_the_four_metrics():
    ev = compare(_net(), (None,), 0.1, 5, 0)["float"]
    assert tuple(ev.as_dict()) == METRICS == (
        "bit_accuracy", "stability_margin", "recall_accuracy", "exact_recall")
    assert all(isinstance(v, float) for v in ev.as_dict().values())


def test_variant_labels():
    assert [variant_label(b) for b in (None, 1, 16)] == ["float", "1-bit", "16-bit"]


def test_small_weight_fraction():
    assert small_weight_fraction(np.array([-2.0, -1.0, -0.5, 0.0, 0.99, 1.0, 3.0])) == 3 / 7
    assert small_weight_fraction(np.array([0.5, 1.5]), bound=2.0) == 1.0


def test_format_table_aligns_columns():
    rows = {"float": {"a": 1.0, "b": 0.123456}, "2-bit": {"a": 0.5, "b": 12.0}}
    text = format_table(rows, {"a": "first", "b": "second col"}, {"b": ".2f"})
    lines = text.splitlines()
    assert lines[0].split() == ["weights", "first", "second", "col"]
    assert lines[2].split() == ["float", "1.0000", "0.12"]
    assert lines[3].split() == ["2-bit", "0.5000", "12.00"]
    assert len({len(line) for line in lines}) == 1


def test_variants_name_their_quantizer():
    assert variant_label(2, "neuron") == "2-bit neuron" and variant_label(2, "paper") == "2-bit"
    assert [variant_spec(v) for v in (None, 3, (2, "bias"))] == \
        [(None, None), (3, "paper"), (2, "bias")]
    with pytest.raises(ValueError, match="quantizer must be one of"):
        variant_spec((2, "nope"))
    net = _net()
    w = weight_variants(net.alpha, [None, 2, (2, "neuron")])
    assert list(w) == ["float", "2-bit", "2-bit neuron"]
    np.testing.assert_array_equal(w["2-bit neuron"],
                                  quantize(net.alpha, 2, quantizer="neuron").values)


def test_per_neuron_variants_are_scored_on_the_same_queries():
    net = _net(2)
    rows = compare(net, (None, (2, "bias"), (2, "neuron")), noise=0.2, count=20, seed=1)
    q, t = noisy_queries(net.patterns, 0.2, 20, np.random.default_rng(1))
    w = quantize(net.alpha, 2, quantizer="neuron").values
    assert rows["2-bit neuron"] == evaluate_weights(net.patterns, w, net.gamma, q, t)


def test_score_variants_one_level_is_compare_and_levels_nest():
    net = _net(3)
    variants = (None, 2, (2, "neuron"))
    scores = score_variants(net, variants, [0.1, 0.2], 15, 4, 30)
    rows = compare(net, variants, 0.2, 15, 4, 30)
    for label, ev in rows.items():
        s = scores[label]
        assert (s["bit_accuracy"], s["stability_margin"]) == (ev.bit_accuracy,
                                                               ev.stability_margin)
        assert (s["recall_accuracy"][1], s["exact_recall"][1]) == (ev.recall_accuracy,
                                                                   ev.exact_recall)
    # A lower noise level flips a subset of the bits of a higher one.
    lo, _ = noisy_queries(net.patterns, 0.1, 15, np.random.default_rng(4))
    hi, _ = noisy_queries(net.patterns, 0.2, 15, np.random.default_rng(4))
    x = net.patterns[noisy_queries(net.patterns, 0.2, 15, np.random.default_rng(4))[1]]
    assert np.all((lo != x) <= (hi != x))


def test_recall_sweep_summarises_over_networks():
    nets = [("a", _net(4)), ("b", _net(5))]
    sweep = recall_sweep(nets, (None, (1, "bias")), [0.0, 0.3], 10, 7, 20)
    assert sweep.networks == ["a", "b"] and sweep.noises == [0.0, 0.3]
    one = score_variants(nets[1][1], (None, (1, "bias")), [0.0, 0.3], 10, (7, 1), 20)
    assert sweep.scores["1-bit bias"]["exact_recall"][1] == one["1-bit bias"]["exact_recall"]
    mean, low = sweep.summary("float", "recall_accuracy")
    assert mean.shape == (2,) and np.all(low <= mean)
    doc = sweep.as_dict()
    assert set(doc["rows"]) == {"float", "1-bit bias"}
    assert doc["rows"]["float"]["bit_accuracy"]["min"] == min(
        sweep.scores["float"]["bit_accuracy"])
    text = sweep.format().splitlines()
    assert "exact@30% mean (min)" in text[0] and text[2].startswith("float")
    # One network: no minimum, and the queries of compare.
    single = recall_sweep(nets[:1], (None,), [0.3], 10, 7, 20)
    assert "mean (min)" not in single.format()
    assert single.scores["float"]["exact_recall"][0][0] == \
        compare(nets[0][1], (None,), 0.3, 10, 7, 20)["float"].exact_recall
