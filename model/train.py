"""A trained network from a seed and a recipe: patterns, KLR training and the training record.

The record (``Network.training``, stored in the network file) holds everything needed to
reproduce the network -- seed, every :class:`~model.klr.TrainConfig` field -- and what the run
produced: epochs run, whether the tolerance stopped it early, the final loss and the wall time.
"""

import time
from dataclasses import asdict

import numpy as np

from .compress import DEFAULT_QUANTIZER
from .kernel import random_patterns
from .klr import TrainConfig, check_training_memory, train_klr
from .netfile import Network

__all__ = ["recipe", "train_network", "same_recipe", "RIDGE_N", "RIDGE_P", "RIDGE_CONFIG",
           "ridge_network"]

#: The ridge operating point of docs/model.md section 2 with the author's recipe: N = 100,
#: P = 300 (P/N = 3), gamma = 0.02, exact gradient, eta 0.1, lambda 0.01, 300 epochs, float64.
RIDGE_N = 100
RIDGE_P = 300
RIDGE_CONFIG = TrainConfig(gamma=0.02, eta=0.1, lam=0.01, epochs=300, gradient="exact",
                           dtype="float64")


def recipe(seed, config):
    """The hyper-parameters that determine a network, as a JSON-ready dict."""
    if not (isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return {"seed": int(seed), **asdict(config)}


def train_network(n, p, seed, config=None, progress=None, quantizer=DEFAULT_QUANTIZER):
    """Train a network on ``p`` random patterns of ``n`` neurons drawn from ``default_rng(seed)``.

    ``config`` defaults to ``TrainConfig()``; ``progress`` is passed to
    :func:`~model.klr.train_klr` (called as ``progress(epoch, loss)``); ``quantizer`` is recorded
    as the network's (:attr:`~model.netfile.Network.quantizer`).
    Returns a :class:`~model.netfile.Network` whose ``training`` dict is the :func:`recipe` plus
    ``epochs_run``, ``stopped_early``, ``final_loss`` and ``wall_seconds``. Sizes the machine
    cannot hold raise a :class:`~model.errors.ParameterError` before anything is allocated, a
    diverging run a :class:`~model.klr.TrainingDiverged`.
    """
    config = TrainConfig() if config is None else config
    rec = recipe(seed, config)
    check_training_memory(n, p, config.dtype)
    patterns = random_patterns(np.random.default_rng(seed), n, p)
    start = time.perf_counter()
    result = train_klr(patterns, config, progress)
    seconds = time.perf_counter() - start
    training = {**rec, "epochs_run": int(result.epochs_run),
                "stopped_early": bool(result.stopped_early),
                "final_loss": float(result.loss_history[-1]), "wall_seconds": seconds}
    return Network(patterns=patterns, alpha=result.alpha, gamma=float(config.gamma),
                   training=training, loss_history=result.loss_history, quantizer=quantizer)


def ridge_network(seed, progress=None):
    """The ridge network of seed ``seed``: :func:`train_network` with :data:`RIDGE_N`,
    :data:`RIDGE_P` and :data:`RIDGE_CONFIG`."""
    return train_network(RIDGE_N, RIDGE_P, seed, RIDGE_CONFIG, progress)


def same_recipe(net, n, p, seed, config):
    """Whether ``net`` is what :func:`train_network` ``(n, p, seed, config)`` would produce.

    Compares the stored recipe and regenerates the patterns from the seed, so a network trained
    on other patterns under the same recorded recipe is not mistaken for a match.
    """
    if (net.n, net.p) != (n, p) or net.gamma != config.gamma:
        return False
    if any(net.training.get(k) != v for k, v in recipe(seed, config).items()):
        return False
    if net.alpha.dtype != np.dtype(config.dtype):
        return False
    return bool(np.array_equal(net.patterns, random_patterns(np.random.default_rng(seed), n, p)))
