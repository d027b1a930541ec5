"""Float retrieval dynamics, batched over many queries at once (docs/model.md section 1).

Synchronous update of all neurons, ``s_i <- sign(h_i(s))``, with ``h = K(s, X) @ A``.

Tie rule (documented and shared with the hardware): when ``h_i == 0`` exactly, neuron i keeps its
previous value.

Step counting (shared with the hardware): ``steps`` is the number of synchronous updates computed,
1..max_steps. A query has ``converged`` when its last update left the state unchanged (a fixed
point); it then stops. A query still changing after ``max_steps`` updates stops with
``converged = False`` and ``steps = max_steps``.
"""

from dataclasses import dataclass

import numpy as np

from .kernel import kernel_matrix

__all__ = ["RecallResult", "sign_update", "potentials", "retrieve", "DEFAULT_MAX_STEPS",
           "MAX_STEPS_RANGE"]

DEFAULT_MAX_STEPS = 30
#: Allowed step limits, inclusive (also :attr:`khop.model.fixed.FixedConfig.RANGES`).
MAX_STEPS_RANGE = (1, 255)


@dataclass
class RecallResult:
    states: np.ndarray      # (Q, N) int8 +-1, final states
    steps: np.ndarray       # (Q,) int64, updates computed (1..max_steps)
    converged: np.ndarray   # (Q,) bool


def sign_update(h, previous):
    """``sign(h)`` with the tie rule: where ``h == 0`` keep ``previous``. Returns int8 +-1."""
    return np.where(h > 0, 1, np.where(h < 0, -1, previous)).astype(np.int8)


def potentials(states, patterns, weights, gamma):
    """Input potentials ``h`` (Q, N) of bipolar ``states`` (Q, N) for dual ``weights`` (P, N)."""
    K = kernel_matrix(states, patterns, gamma)
    return K @ np.asarray(weights, dtype=np.float64)


def run_dynamics(states, update, max_steps=DEFAULT_MAX_STEPS):
    """Run synchronous dynamics ``s <- update(s)`` batched over queries until fixed point.

    ``update`` maps a (q, N) array of +-1 states to the next states; it is only applied to the
    queries still running. Shared by the float and the integer model.
    """
    lo, hi = MAX_STEPS_RANGE
    if not (isinstance(max_steps, int | np.integer) and lo <= max_steps <= hi):
        raise ValueError(f"max_steps must be an integer in {lo}..{hi}, not {max_steps!r}")
    s = np.array(states, dtype=np.int8, copy=True)
    if s.ndim == 1:
        s = s[None, :]
    q = s.shape[0]
    steps = np.zeros(q, dtype=np.int64)
    converged = np.zeros(q, dtype=bool)
    active = np.arange(q)
    for _ in range(max_steps):
        if active.size == 0:
            break
        cur = s[active]
        new = update(cur)
        steps[active] += 1
        same = np.all(new == cur, axis=1)
        s[active] = new
        converged[active[same]] = True
        active = active[~same]
    return RecallResult(states=s, steps=steps, converged=converged)


def retrieve(states, patterns, weights, gamma, max_steps=DEFAULT_MAX_STEPS):
    """Retrieve from bipolar ``states`` (Q, N) with float ``weights`` (P, N)."""
    def update(cur):
        return sign_update(potentials(cur, patterns, weights, gamma), cur)
    return run_dynamics(states, update, max_steps)
