"""Kernel logistic regression (KLR) training of all N neurons at once (docs/model.md section 2).

Neuron i is a KLR classifier over the P stored patterns with targets ``y[mu, i] = (xi[mu, i]+1)/2``:

    L_i(a_i) = sum_mu [ log(1 + exp(H[mu, i])) - y[mu, i] H[mu, i] ] + (lambda/2) a_i^T K a_i,
    H = K A.

The total loss is the sum of L_i over all neurons. Full-batch gradient descent from ``A = 0``:

- ``"exact"``:      grad = K (sigmoid(H) - Y) + lambda K A = K E,   E = sigmoid(H) - Y + lambda A
- ``"functional"``: grad = E   (the leading K dropped; the functional-gradient form)

All neurons share K, so one epoch costs two (P x P) @ (P x N) products.
"""

from dataclasses import dataclass, field

import numpy as np

from .errors import ParameterError
from .kernel import MAX_GAMMA, gram_matrix
from .memory import require_memory

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "klr_loss", "klr_gradient",
           "train_klr", "training_bytes", "check_training_memory", "GRADIENTS"]

GRADIENTS = ("exact", "functional")
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of KLR training; defaults are the author's recipe."""

    gamma: float = 0.02
    eta: float = 0.1
    lam: float = 0.01
    epochs: int = 300
    gradient: str = "exact"
    dtype: str = "float64"
    tol: float | None = None  # stop when the relative loss decrease falls below tol

    def __post_init__(self):
        if not (0 < self.gamma <= MAX_GAMMA):
            raise ValueError(f"gamma must be a positive number at most {MAX_GAMMA:g}, not "
                             f"{self.gamma!r}")
        if not (self.eta > 0 and np.isfinite(self.eta)):
            raise ValueError(f"eta must be a positive number, not {self.eta!r}")
        if not (self.lam >= 0 and np.isfinite(self.lam)):
            raise ValueError(f"lambda must be a non-negative number, not {self.lam!r}")
        if not (isinstance(self.epochs, int) and not isinstance(self.epochs, bool)
                and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, not {self.epochs!r}")
        if self.gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {', '.join(GRADIENTS)}, "
                             f"not {self.gradient!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.tol is not None and not (self.tol > 0 and np.isfinite(self.tol)):
            raise ValueError(f"tol must be a positive number or None, not {self.tol!r}")


class TrainingDiverged(ParameterError):
    """Gradient descent diverged: the loss became NaN or infinite (the step size is too large).

    ``epoch`` is the epoch whose update made the loss non-finite, ``loss`` that loss, ``eta`` the
    step size; ``option`` is how the message names it (``"--eta"`` on the command line).
    """

    def __init__(self, epoch, loss, eta, option="eta"):
        self.epoch, self.loss, self.eta = epoch, loss, eta
        what = "NaN" if loss != loss else "infinite"
        super().__init__(f"training diverged at epoch {epoch} (the loss became {what}); lower "
                         f"the step size {option} ({eta:g})")
        self.option = option

    def __reduce__(self):  # raised in a worker process, re-raised in the parent
        return type(self), (self.epoch, self.loss, self.eta, self.option)


@dataclass
class TrainResult:
    alpha: np.ndarray                      # (P, N) dual weights
    loss_history: np.ndarray               # total loss before each epoch's update, then the last
    epochs_run: int
    stopped_early: bool
    config: TrainConfig = field(default_factory=TrainConfig)


def _softplus(x):
    return np.logaddexp(0, x)


def _sigmoid(x):
    # Stable for both signs; exp(-|x|) never overflows.
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def klr_loss(K, A, Y, lam, H=None):
    """Total KLR loss summed over all neurons. ``H = K @ A`` may be passed when known."""
    if H is None:
        H = K @ A
    data = np.sum(_softplus(H) - Y * H)
    reg = 0.5 * lam * np.sum(A * H)  # sum_i a_i^T K a_i
    return float(data + reg)


def klr_gradient(K, A, Y, lam, gradient="exact", H=None):
    """Gradient of the total loss with respect to A (exact) or its functional form."""
    if H is None:
        H = K @ A
    E = _sigmoid(H) - Y + lam * A
    return K @ E if gradient == "exact" else E


def training_bytes(n, p, dtype="float64"):
    """Estimated peak bytes of :func:`train_klr` on ``p`` patterns of ``n`` neurons.

    The larger of building the Gram matrix (:func:`~model.kernel.gram_matrix`: the patterns in
    float64 twice, then three P x P float64 arrays at once: dot products, distances, kernel) and
    the training loop (the P x P kernel matrix in ``dtype`` and about ten (P, N) arrays: A, H, Y,
    E, the step and their temporaries).
    """
    n, p, size = int(n), int(p), np.dtype(dtype).itemsize
    gram = 3 * p * p * 8 + 2 * p * n * 8
    loop = p * p * size + 10 * p * n * size
    return max(gram, loop)


def check_training_memory(n, p, dtype="float64"):
    """Raise a :class:`~model.errors.ParameterError` when training ``p`` patterns of ``n``
    neurons needs more memory than the machine has (:func:`training_bytes`)."""
    require_memory(training_bytes(n, p, dtype), f"N={n} P={p}",
                   "the P x P kernel matrix and its temporaries")


def train_klr(patterns, config=TrainConfig(), progress=None):
    """Train the dual weights of every neuron at once.

    Parameters
    ----------
    patterns : (P, N) array of +-1
    config : TrainConfig
    progress : callable or None
        Called as ``progress(epoch, loss)`` after each epoch (for a progress bar).

    Returns
    -------
    TrainResult

    Raises
    ------
    ParameterError
        The sizes need more memory than the machine has (before anything is allocated).
    TrainingDiverged
        The loss became NaN or infinite (checked once per epoch, on the loss computed anyway).
    """
    dtype = np.dtype(config.dtype)
    X = np.asarray(patterns)
    if X.ndim == 2:
        check_training_memory(X.shape[1], X.shape[0], dtype)
    K = gram_matrix(X, config.gamma, dtype)
    Y = ((X + 1) // 2).astype(dtype)
    A = np.zeros(X.shape, dtype=dtype)
    H = np.zeros(X.shape, dtype=dtype)  # K @ A, kept up to date
    with np.errstate(over="ignore"):  # an eta beyond float32 is inf: divergence at epoch 1
        eta = dtype.type(config.eta)
        lam = dtype.type(config.lam)

    losses = [klr_loss(K, A, Y, lam, H)]
    stopped_early = False
    epoch = 0
    # Overflow on the way to divergence is reported once, as TrainingDiverged.
    with np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(1, config.epochs + 1):
            E = _sigmoid(H) - Y + lam * A
            step = K @ E if config.gradient == "exact" else E
            A -= eta * step
            H = K @ A
            losses.append(klr_loss(K, A, Y, lam, H))
            if not np.isfinite(losses[-1]):
                raise TrainingDiverged(epoch, losses[-1], config.eta)
            if progress is not None:
                progress(epoch, losses[-1])
            if config.tol is not None:
                prev, cur = losses[-2], losses[-1]
                if abs(prev - cur) <= config.tol * max(1.0, abs(prev)):
                    stopped_early = True
                    break
    return TrainResult(alpha=A, loss_history=np.array(losses), epochs_run=epoch,
                       stopped_early=stopped_early, config=config)
