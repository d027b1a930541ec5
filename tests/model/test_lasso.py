"""L1-regularized KLR by ISTA (model/lasso.py)."""

import numpy as np
import pytest

from khop.model.kernel import gram_matrix, random_patterns
from khop.model.klr import TrainConfig, train_klr
from khop.model.lasso import LassoConfig, lasso_loss, lipschitz_step, soft_threshold, train_lasso


def _clustered(seed=0, n=30, p=60, prototypes=4, flip=0.03):
    """Noisy copies of a few prototypes: a memory with redundancy a sparse model can exploit."""
    rng = np.random.default_rng(seed)
    proto = random_patterns(rng, n, prototypes)
    x = proto[rng.integers(0, prototypes, p)]
    return np.where(rng.random((p, n)) < flip, -x, x).astype(np.int8)


def _data_loss(x, alpha, gamma):
    h = gram_matrix(x, gamma) @ alpha
    return float(np.sum(np.logaddexp(0, h) - (x + 1) / 2 * h))


def test_soft_threshold_shrinks_towards_zero():
    x = np.array([-3.0, -0.5, 0.0, 0.2, 1.5])
    np.testing.assert_allclose(soft_threshold(x, 1.0), [-2.0, 0.0, 0.0, 0.0, 0.5])


def test_loss_is_data_term_plus_l1_norm():
    x = random_patterns(np.random.default_rng(1), 8, 5)
    a = np.random.default_rng(2).normal(size=(5, 8))
    K = gram_matrix(x, 0.1)
    total, data = lasso_loss(K, a, (x + 1) / 2, 0.3)
    assert data == pytest.approx(_data_loss(x, a, 0.1), rel=1e-12)
    assert total == pytest.approx(data + 0.3 * np.abs(a).sum(), rel=1e-12)


def test_default_step_is_one_over_the_lipschitz_constant():
    x = random_patterns(np.random.default_rng(3), 20, 15)
    K = gram_matrix(x, 0.05)
    assert lipschitz_step(K) == pytest.approx(4 / np.linalg.norm(K, 2) ** 2, rel=1e-10)
    assert train_lasso(x, LassoConfig(gamma=0.05, epochs=1)).eta == lipschitz_step(K)


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.5])
def test_loss_decreases_at_every_step(lam):
    x = random_patterns(np.random.default_rng(4), 30, 90)
    res = train_lasso(x, LassoConfig(gamma=0.0667, lam=lam, epochs=200))
    assert res.loss_history.shape == (201,)
    assert res.loss_history[0] == pytest.approx(90 * 30 * np.log(2))
    assert np.all(np.diff(res.loss_history) <= 1e-9 * res.loss_history[0])
    assert res.loss_history[-1] < res.loss_history[0]


def test_zero_strength_matches_unregularized_gradient_descent():
    x = random_patterns(np.random.default_rng(5), 12, 20)
    res = train_lasso(x, LassoConfig(gamma=0.1, lam=0.0, eta=0.05, epochs=30))
    ref = train_klr(x, TrainConfig(gamma=0.1, lam=0.0, eta=0.05, epochs=30))
    np.testing.assert_allclose(res.alpha, ref.alpha, rtol=1e-10, atol=1e-12)


def test_lasso_is_sparser_than_l2_at_no_worse_data_fit():
    x = _clustered()
    gamma, epochs = 0.1, 1000
    l1 = train_lasso(x, LassoConfig(gamma=gamma, lam=0.3, epochs=epochs)).alpha
    l2 = train_klr(x, TrainConfig(gamma=gamma, lam=0.3, epochs=epochs)).alpha
    assert _data_loss(x, l1, gamma) <= _data_loss(x, l2, gamma)
    assert np.mean(l1 == 0) >= 0.4
    assert np.mean(np.abs(l2) < 1e-3 * np.abs(l2).max()) == 0.0


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="lambda"):
        LassoConfig(lam=-1.0)
    with pytest.raises(ValueError, match="eta"):
        LassoConfig(eta=0.0)
    with pytest.raises(ValueError, match="epochs"):
        LassoConfig(epochs=0)
