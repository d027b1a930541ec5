"""Acceptance: the paper's ridge network (docs/model.md section 5, R1, R6, R7), and the default
quantizer's per-neuron thresholds on it (docs/model.md section 6).

N = 100, P = 300, gamma = 0.02, exact gradient, 300 epochs, seed 42.
"""

import numpy as np
import pytest

from khop.model.compress import DEFAULT_QUANTIZER
from khop.model.evaluate import compare, small_weight_fraction, variant_label
from khop.model.fixed import FixedConfig, integer_network
from khop.model.klr import TrainConfig
from khop.model.train import train_network


@pytest.fixture(scope="module")
def ridge():
    return train_network(100, 300, 42, TrainConfig(gamma=0.02, eta=0.1, lam=0.01, epochs=300))


@pytest.fixture(scope="module")
def rows(ridge):
    return compare(ridge, (None, 2), noise=0.2, count=300, seed=0, max_steps=30)


def test_float_network_keeps_every_bit(rows):
    assert rows["float"].bit_accuracy == 1.0


def test_two_bit_network_keeps_nearly_every_bit(rows):
    assert rows["2-bit"].bit_accuracy >= 0.99


def test_weights_leave_the_valley_at_zero_empty(ridge):
    assert small_weight_fraction(ridge.alpha) < 0.01
    # Bimodal: as many clearly positive as clearly negative weights, none huge.
    assert np.mean(ridge.alpha > 1) == pytest.approx(0.5, abs=0.05)
    assert np.abs(ridge.alpha).max() < 6


def test_two_bit_recall_at_twenty_percent_noise(rows):
    assert rows["2-bit"].recall_accuracy >= 0.85
    assert rows["float"].recall_accuracy >= rows["2-bit"].recall_accuracy - 0.01


def test_integer_model_keeps_the_two_bit_accuracy(ridge, rows):
    inet = integer_network(ridge.patterns, ridge.alpha, ridge.gamma,
                           FixedConfig(weight_bits=2, quantizer="paper"))   # rows' "2-bit"
    # 16-bit kernel table: at most a few of the 30000 decisions differ from the float model.
    assert inet.bit_accuracy() == pytest.approx(rows["2-bit"].bit_accuracy, abs=2e-4)


def test_default_quantizer_recalls_the_stored_patterns(ridge):
    label = variant_label(2, DEFAULT_QUANTIZER)
    rows = compare(ridge, (None, 2, (2, DEFAULT_QUANTIZER)), noise=0.2, count=300, seed=0)
    best, paper, flt = rows[label], rows["2-bit"], rows["float"]
    assert best.bit_accuracy == 1.0
    assert best.recall_accuracy >= flt.recall_accuracy - 0.005
    assert best.exact_recall >= 0.95 > 0.5 > paper.exact_recall
    inet = integer_network(ridge.patterns, ridge.alpha, ridge.gamma, FixedConfig(weight_bits=2))
    assert inet.config.quantizer == DEFAULT_QUANTIZER and inet.bit_accuracy() == 1.0
