"""L1-regularized (lasso) kernel logistic regression of all N neurons at once (docs/model.md R4).

The comparison model of the Walsh-influence experiment. Neuron i minimizes

    L_i(a_i) = sum_mu [ log(1 + exp(H[mu, i])) - y[mu, i] H[mu, i] ] + lam * ||a_i||_1,  H = K A,

by proximal gradient descent (ISTA) from ``A = 0``: a gradient step on the data term,
``A <- A - eta K (sigmoid(H) - Y)``, then soft-thresholding, ``A <- sign(A) max(|A| - eta lam, 0)``.

With ``eta <= 1/L``, ``L = lambda_max(K)^2 / 4`` the Lipschitz constant of the data gradient, every
step decreases the loss; ``eta=None`` (the default) picks ``eta = 1/L``. As in :mod:`model.klr`,
all neurons share K: one epoch is two (P x P) @ (P x N) products.
"""

from dataclasses import dataclass

import numpy as np

from .kernel import gram_matrix
from .klr import _sigmoid, _softplus

__all__ = ["LassoConfig", "LassoResult", "lasso_loss", "soft_threshold", "lipschitz_step",
           "train_lasso"]


@dataclass(frozen=True)
class LassoConfig:
    """Hyper-parameters of L1-regularized KLR."""

    gamma: float = 0.02
    lam: float = 0.05           # L1 strength
    eta: float | None = None    # step size; None: 1/L
    epochs: int = 300

    def __post_init__(self):
        if not (self.gamma > 0 and np.isfinite(self.gamma)):
            raise ValueError(f"gamma must be a positive number, not {self.gamma!r}")
        if not (self.lam >= 0 and np.isfinite(self.lam)):
            raise ValueError(f"lambda must be a non-negative number, not {self.lam!r}")
        if self.eta is not None and not (self.eta > 0 and np.isfinite(self.eta)):
            raise ValueError(f"eta must be a positive number or None, not {self.eta!r}")
        if not (isinstance(self.epochs, int) and not isinstance(self.epochs, bool)
                and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, not {self.epochs!r}")


@dataclass
class LassoResult:
    alpha: np.ndarray           # (P, N) dual weights
    loss_history: np.ndarray    # total loss (data + L1) before each epoch, then the last
    data_history: np.ndarray    # the data term alone, same points
    eta: float                  # step size used
    config: LassoConfig


def lasso_loss(K, A, Y, lam, H=None):
    """``(total, data)``: the L1-regularized loss summed over neurons, and its data term."""
    if H is None:
        H = K @ A
    data = float(np.sum(_softplus(H) - Y * H))
    return data + lam * float(np.sum(np.abs(A))), data


def soft_threshold(x, t):
    """The proximal operator of ``t ||x||_1``: ``sign(x) max(|x| - t, 0)``."""
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def lipschitz_step(K):
    """``1/L`` with ``L = lambda_max(K)^2 / 4``: a step that makes ISTA decrease the loss."""
    lmax = float(np.linalg.eigvalsh(K)[-1])
    return 4.0 / lmax ** 2


def train_lasso(patterns, config=LassoConfig(), progress=None):
    """Train L1-regularized KLR weights of every neuron at once; returns :class:`LassoResult`.

    ``progress`` is called as ``progress(epoch, loss)`` after each epoch.
    """
    X = np.asarray(patterns)
    K = gram_matrix(X, config.gamma)
    Y = ((X + 1) // 2).astype(np.float64)
    eta = lipschitz_step(K) if config.eta is None else float(config.eta)
    A = np.zeros(X.shape, dtype=np.float64)
    H = np.zeros(X.shape, dtype=np.float64)
    total, data = lasso_loss(K, A, Y, config.lam, H)
    totals, datas = [total], [data]
    for epoch in range(1, config.epochs + 1):
        A = soft_threshold(A - eta * (K @ (_sigmoid(H) - Y)), eta * config.lam)
        H = K @ A
        total, data = lasso_loss(K, A, Y, config.lam, H)
        totals.append(total)
        datas.append(data)
        if progress is not None:
            progress(epoch, total)
    return LassoResult(alpha=A, loss_history=np.array(totals), data_history=np.array(datas),
                       eta=eta, config=config)
