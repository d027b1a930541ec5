"""Training from a seed and its record (model/train.py)."""

import dataclasses

import numpy as np
import pytest

from khop.model.kernel import random_patterns
from khop.model.klr import TrainConfig, train_klr
from khop.model.netfile import load_network, save_network
from khop.model.train import recipe, same_recipe, train_network

CONFIG = TrainConfig(gamma=0.05, epochs=20)


def test_network_is_trained_on_the_seeded_patterns():
    net = train_network(30, 40, 7, CONFIG)
    x = random_patterns(np.random.default_rng(7), 30, 40)
    np.testing.assert_array_equal(net.patterns, x)
    np.testing.assert_array_equal(net.alpha, train_klr(x, CONFIG).alpha)
    assert net.gamma == 0.05 and len(net.loss_history) == 21


def test_training_record_holds_recipe_and_outcome():
    net = train_network(30, 40, 7, dataclasses.replace(CONFIG, tol=1e-2, epochs=300))
    t = net.training
    assert t["seed"] == 7 and t["eta"] == 0.1 and t["lam"] == 0.01 and t["gamma"] == 0.05
    assert t["epochs"] == 300 and t["gradient"] == "exact" and t["dtype"] == "float64"
    assert t["tol"] == 1e-2 and t["stopped_early"] is True
    assert t["epochs_run"] == len(net.loss_history) - 1 < 300
    assert t["final_loss"] == net.loss_history[-1]
    assert 0 < t["wall_seconds"] < 60


def test_record_survives_the_network_file(tmp_path):
    net = train_network(20, 10, 3, CONFIG)
    save_network(tmp_path / "n.npz", net)
    back = load_network(tmp_path / "n.npz")
    assert back.training == net.training
    assert same_recipe(back, 20, 10, 3, CONFIG)


@pytest.mark.parametrize("change", [
    {"seed": 4}, {"n": 21}, {"p": 11}, {"gamma": 0.06}, {"eta": 0.05}, {"lam": 0.0},
    {"epochs": 21}, {"gradient": "functional"}, {"dtype": "float32"}, {"tol": 1e-3},
])
def test_same_recipe_notices_every_difference(change):
    net = train_network(20, 10, 3, CONFIG)
    args = {"n": 20, "p": 10, "seed": 3}
    cfg = {k: v for k, v in change.items() if k not in args}
    args.update({k: v for k, v in change.items() if k in args})
    assert same_recipe(net, 20, 10, 3, CONFIG)
    assert not same_recipe(net, args["n"], args["p"], args["seed"],
                           dataclasses.replace(CONFIG, **cfg))


def test_same_recipe_notices_other_patterns():
    net = train_network(20, 10, 3, CONFIG)
    net.patterns[0, 0] *= -1
    assert not same_recipe(net, 20, 10, 3, CONFIG)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_recipe_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        recipe(seed, CONFIG)
