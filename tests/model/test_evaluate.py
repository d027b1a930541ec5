"""Float versus quantized evaluation (model/evaluate.py)."""

import numpy as np
import pytest

from khop.model.compress import quantize
from khop.model.evaluate import (
    METRICS,
    compare,
    evaluate_weights,
    format_table,
    small_weight_fraction,
    variant_label,
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
    for label, bits in [("float", None), ("2-bit", 2)]:
        w = net.alpha if bits is None else quantize(net.alpha, bits).values
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
