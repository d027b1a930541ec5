"""The paper's experiments (docs/model.md section 5, R1..R10), one function each, and one beyond
the paper: the quantizers with per-neuron thresholds (docs/model.md section 6).

Every experiment is ``f(trials, seed, quick, progress, *, n=100)`` and returns a JSON-ready dict of
plain numbers: the parameters it ran with, per-trial values, and their mean and sample standard
deviation over trials (``{"mean", "std", "trials"}``). Trial ``t`` uses seed ``seed + t`` for its
patterns (``default_rng(seed + t)``, as :func:`~model.train.train_network`) and child streams
``default_rng((seed + t, tag, ...))`` for anything else it draws, so every number is reproducible
from ``seed``. ``quick`` shrinks sample counts and grids, never N; ``n`` exists for tests.

The paper's kernel widths are for N = 100. At another N every width is scaled by ``100 / N``
(:func:`scaled_gamma`). That keeps ``gamma N`` fixed, and with it the kernel value at the typical
distance N/2 between random patterns, ``exp(-4 gamma N/2)``; at N = 100 nothing changes.
``progress``, when given, is called as ``progress(done, total)`` after each unit of work.

All networks are trained with the author's recipe (:class:`~model.klr.TrainConfig` defaults:
exact gradient, eta 0.1, lambda 0.01, 300 epochs, float64) at ``P = round(load * N)``. R1..R10
quantize with the paper's quantizer (``quantizer="paper"``), whatever the default.
"""

import numpy as np

from .compress import QUANTIZERS, prune_magnitude, quantize, quantize_uniform
from .evaluate import score_variants, variant_label, variant_spec
from .influence import cross_influence_gini, cross_influences, walsh_influence
from .kernel import gram_matrix
from .klr import TrainConfig
from .lasso import LassoConfig, train_lasso
from .metrics import bit_accuracy, noisy_queries, recall_stats, stability_margin
from .retrieval import DEFAULT_MAX_STEPS
from .stats import gini, loglog_fit, mean_std
from .train import train_network

__all__ = ["scaled_gamma", "RIDGE_GAMMA", "OFF_RIDGE_GAMMA", "BITS", "EXPERIMENTS",
           "quantization_sweep", "quantization_sweep_pn2", "pruning_sweep", "influence_gini",
           "margin_scaling", "noisy_recall", "weight_histogram", "gamma_sweep", "storage",
           "quantizer_comparison", "QUANTIZER_VARIANTS", "run_experiment", "pack_codes",
           "unpack_codes"]

RIDGE_GAMMA = 0.02
OFF_RIDGE_GAMMA = 0.1
LOAD = 3.0
BITS = (32, 16, 8, 6, 4, 3, 2, 1)   # 32: the float weights stored as float32
MAX_STEPS = DEFAULT_MAX_STEPS


def scaled_gamma(gamma, n):
    """A kernel width quoted for N = 100, carried over to ``n`` neurons: ``gamma * 100 / n``."""
    return gamma * 100.0 / n


def _summary(values):
    """``{"mean", "std", "trials"}`` of per-trial values (axis 0 = trials), as lists."""
    a = np.asarray(values, dtype=np.float64)
    mean, std = mean_std(a, axis=0)
    return {"mean": mean.tolist(), "std": std.tolist(), "trials": a.tolist()}


def _network(n, load, gamma, seed):
    return train_network(n, int(round(load * n)), seed, TrainConfig(gamma=gamma))


def _weights(alpha, bits):
    """The weights a ``bits``-bit store holds: float32 for 32, else the paper's quantizer."""
    if bits == 32:
        return alpha.astype(np.float32).astype(np.float64)
    return quantize(alpha, bits, quantizer="paper").values


def _tick(progress, done, total):
    if progress is not None:
        progress(done, total)


def _base(name, claims, trials, seed, quick, **params):
    return {"experiment": name, "claims": list(claims), "trials": int(trials), "seed": int(seed),
            "quick": bool(quick), **params}


# R1, R2, R9

def _quantization(name, claims, load, trials, seed, quick, progress, n):
    gamma = scaled_gamma(RIDGE_GAMMA, n)
    p = int(round(load * n))
    acc, margin, ref, inner = [], [], [], []
    for t in range(trials):
        net = _network(n, load, gamma, seed + t)
        variants = [_weights(net.alpha, b) for b in BITS]
        codes = quantize_uniform(net.alpha, 2).codes
        inner.append(float(np.mean((codes == 1) | (codes == 2))))
        acc.append([bit_accuracy(net.patterns, w, gamma) for w in variants])
        margin.append([stability_margin(net.patterns, w, gamma) for w in variants])
        ref.append([bit_accuracy(net.patterns, net.alpha, gamma),
                    stability_margin(net.patterns, net.alpha, gamma)])
        _tick(progress, t + 1, trials)
    ref = np.array(ref)
    return {**_base(name, claims, trials, seed, quick, n=n, p=p, load=load, gamma=gamma),
            "bits": list(BITS), "bit_accuracy": _summary(acc),
            "stability_margin": _summary(margin),
            "float64": {"bit_accuracy": _summary(ref[:, 0]),
                        "stability_margin": _summary(ref[:, 1])},
            "two_bit_inner_fraction": _summary(inner)}


def quantization_sweep(trials=10, seed=42, quick=False, progress=None, *, n=100):
    """R1, R2: bit accuracy and stability margin for k = 32 (float32), 16, 8, 6, 4, 3, 2, 1 bits.

    ``two_bit_inner_fraction`` is the fraction of weights the 2-bit quantizer maps to its two
    inner levels (codes 1 and 2).
    """
    return _quantization("quantization", ("R1", "R2"), LOAD, trials, seed, quick, progress, n)


def quantization_sweep_pn2(trials=10, seed=42, quick=False, progress=None, *, n=100):
    """R9: the quantization sweep repeated at P/N = 2."""
    return _quantization("quantization_pn2", ("R9",), 2.0, trials, seed, quick, progress, n)


# R3

def pruning_sweep(trials=10, seed=42, quick=False, progress=None, *, n=100):
    """R3: bit accuracy after magnitude pruning to sparsity 0..0.5, next to the 2-bit accuracy."""
    gamma = scaled_gamma(RIDGE_GAMMA, n)
    sparsities = [0.0, 0.1, 0.2, 0.3, 0.5] if quick else [round(0.05 * k, 2) for k in range(11)]
    acc, two_bit = [], []
    for t in range(trials):
        net = _network(n, LOAD, gamma, seed + t)
        acc.append([bit_accuracy(net.patterns, prune_magnitude(net.alpha, s), gamma)
                    for s in sparsities])
        two_bit.append(bit_accuracy(net.patterns, _weights(net.alpha, 2), gamma))
        _tick(progress, t + 1, trials)
    return {**_base("pruning", ("R3",), trials, seed, quick, n=n, p=int(round(LOAD * n)),
                    gamma=gamma),
            "sparsity": sparsities, "bit_accuracy": _summary(acc),
            "two_bit_accuracy": _summary(two_bit)}


# R4

def _lorenz(matrix):
    """Mean Lorenz curve of the rows' cross-influences: cumulative share, ascending, (N,)."""
    c = np.sort(cross_influences(matrix), axis=1)
    total = c.sum(axis=1, keepdims=True)
    share = np.cumsum(c, axis=1) / np.where(total > 0, total, 1.0)
    return np.concatenate([[0.0], share.mean(axis=0)])


def _noise_floor(matrix, samples, rng):
    """Mean Gini that sampling noise alone gives: each row's cross-influences all equal to the
    row mean, estimated from ``samples`` binomial draws."""
    c = cross_influences(matrix)
    p = np.broadcast_to(c.mean(axis=1, keepdims=True), c.shape)
    return float(np.mean(gini(rng.binomial(samples, p) / samples, axis=1)))


def _influence_record(patterns, alpha, gamma, samples, rng):
    inf = walsh_influence(patterns, alpha, gamma, samples, rng)
    g = cross_influence_gini(inf.matrix)
    cross = cross_influences(inf.matrix)
    return inf.matrix, {"gini": float(g.mean()), "gini_pooled": float(gini(cross.ravel())),
                        "noise_floor": _noise_floor(inf.matrix, samples, rng),
                        "mean_cross_influence": float(cross.mean()),
                        "mean_self_influence": float(np.diag(inf.matrix).mean())}


def influence_gini(trials=10, seed=42, quick=False, progress=None, *, n=100):
    """R4: Gini of Walsh cross-influences (i = j excluded), L2 (KLR) model vs L1 (lasso) models.

    The Gini is computed per output neuron over its N - 1 cross-influences, then averaged over
    neurons. The L1 models are trained by ISTA (:mod:`model.lasso`) at each L1 strength in
    ``l1_lams``; the first is the primary comparison (it keeps every stored bit). Influences come
    from ``samples`` uniform random states; ``noise_floor`` is the Gini that binomial sampling
    noise alone would give for equal influences.
    """
    gamma = scaled_gamma(RIDGE_GAMMA, n)
    samples = 1000 if quick else 4000
    lams = [0.1, 0.45] if quick else [0.1, 0.3, 0.45]
    p = int(round(LOAD * n))
    keys = ("gini", "gini_pooled", "noise_floor", "mean_cross_influence", "mean_self_influence")
    l2 = {k: [] for k in (*keys, "bit_accuracy", "data_loss", "zero_fraction")}
    l1 = [{k: [] for k in l2} for _ in lams]
    lorenz_l2, lorenz_l1, example = [], [], {}
    units = trials * (1 + len(lams))
    done = 0
    for t in range(trials):
        net = _network(n, LOAD, gamma, seed + t)
        matrix, rec = _influence_record(net.patterns, net.alpha, gamma, samples,
                                        np.random.default_rng((seed + t, 4, 0)))
        K = gram_matrix(net.patterns, gamma)
        H = K @ net.alpha
        Y = (net.patterns + 1) / 2
        rec.update(bit_accuracy=bit_accuracy(net.patterns, net.alpha, gamma),
                   data_loss=float(np.sum(np.logaddexp(0, H) - Y * H)),
                   zero_fraction=float(np.mean(net.alpha == 0)))
        for k, v in rec.items():
            l2[k].append(v)
        lorenz_l2.append(_lorenz(matrix))
        if t == 0:
            example["l2"] = matrix.tolist()
        done += 1
        _tick(progress, done, units)
        for j, lam in enumerate(lams):
            res = train_lasso(net.patterns, LassoConfig(gamma=gamma, lam=lam))
            m1, rec1 = _influence_record(net.patterns, res.alpha, gamma, samples,
                                         np.random.default_rng((seed + t, 4, 1 + j)))
            rec1.update(bit_accuracy=bit_accuracy(net.patterns, res.alpha, gamma),
                        data_loss=float(res.data_history[-1]),
                        zero_fraction=float(np.mean(res.alpha == 0)))
            for k, v in rec1.items():
                l1[j][k].append(v)
            if j == 0:
                lorenz_l1.append(_lorenz(m1))
                if t == 0:
                    example["l1"] = m1.tolist()
            done += 1
            _tick(progress, done, units)
    return {**_base("influence", ("R4",), trials, seed, quick, n=n, p=p, gamma=gamma,
                    samples=samples, l1_lams=lams, l1_epochs=LassoConfig().epochs),
            "l2": {k: _summary(v) for k, v in l2.items()},
            "l1": [{"lam": lam, **{k: _summary(v) for k, v in rec.items()}}
                   for lam, rec in zip(lams, l1, strict=True)],
            "lorenz": {"l2": _summary(lorenz_l2), "l1": _summary(lorenz_l1)},
            "example_trial0": example}


# R5

def _degradation(net, gamma, bits):
    """``(Delta^2, |margin_k - margin_float|)`` for each of ``bits``."""
    m_float = stability_margin(net.patterns, net.alpha, gamma)
    d2, deg = [], []
    for b in bits:
        q = quantize_uniform(net.alpha, b)
        d2.append(q.scale ** 2)
        deg.append(abs(stability_margin(net.patterns, q.values, gamma) - m_float))
    return m_float, d2, deg


def _fit_or_none(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = (x > 0) & (y > 0)
    return loglog_fit(x[keep], y[keep]).as_dict() if keep.sum() >= 3 else None


def margin_scaling(trials=10, seed=42, quick=False, progress=None, *, n=100):
    """R5: |margin_k - margin_float| against Delta^2 for k = 16..2, on (gamma 0.02) and off
    (gamma 0.1) the ridge, with a least-squares slope on log-log axes per trial and pooled."""
    bits = list(range(16, 1, -1))
    out = {}
    for g_i, (label, g100) in enumerate((("ridge", RIDGE_GAMMA), ("off_ridge", OFF_RIDGE_GAMMA))):
        gamma = scaled_gamma(g100, n)
        margin, d2, deg, fits = [], [], [], []
        for t in range(trials):
            net = _network(n, LOAD, gamma, seed + t)
            m, x, y = _degradation(net, gamma, bits)
            margin.append(m)
            d2.append(x)
            deg.append(y)
            fits.append(_fit_or_none(x, y))
            _tick(progress, g_i * trials + t + 1, 2 * trials)
        slopes = [f["slope"] for f in fits if f is not None]
        out[label] = {"gamma": gamma, "gamma_at_n100": g100, "margin_float": _summary(margin),
                      "delta2": _summary(d2),
                      "degradation": _summary(deg),
                      "relative_degradation": _summary(np.array(deg) / np.array(margin)[:, None]),
                      "fits": fits, "slope": _summary(slopes) if slopes else None,
                      "pooled_fit": _fit_or_none(np.ravel(d2), np.ravel(deg))}
    return {**_base("margin_scaling", ("R5",), trials, seed, quick, n=n,
                    p=int(round(LOAD * n))), "bits": bits, **out}


# R6

def noisy_recall(trials=10, seed=42, quick=False, progress=None, *, n=100):
    """R6: bit-wise and exact recall of float and 2-bit weights over noise levels 0..0.4
    (synchronous updates, at most 30 steps); both variants see the same queries."""
    gamma = scaled_gamma(RIDGE_GAMMA, n)
    noises = [0.0, 0.1, 0.2, 0.3, 0.4] if quick else [round(0.05 * k, 2) for k in range(9)]
    queries = 100 if quick else 300
    rec = {v: {"recall_accuracy": [], "exact_recall": []} for v in ("float", "2-bit")}
    for t in range(trials):
        net = _network(n, LOAD, gamma, seed + t)
        variants = {"float": net.alpha, "2-bit": _weights(net.alpha, 2)}
        rows = {v: {"recall_accuracy": [], "exact_recall": []} for v in variants}
        for k, noise in enumerate(noises):
            q, targets = noisy_queries(net.patterns, noise, queries,
                                       np.random.default_rng((seed + t, 6, k)))
            for v, w in variants.items():
                s = recall_stats(net.patterns, w, gamma, q, targets, MAX_STEPS)
                rows[v]["recall_accuracy"].append(s.recall_accuracy)
                rows[v]["exact_recall"].append(s.exact_recall)
        for v in rec:
            for m in rec[v]:
                rec[v][m].append(rows[v][m])
        _tick(progress, t + 1, trials)
    return {**_base("noisy_recall", ("R6",), trials, seed, quick, n=n, p=int(round(LOAD * n)),
                    gamma=gamma, queries=queries, max_steps=MAX_STEPS),
            "noise": noises,
            **{v: {m: _summary(vals) for m, vals in r.items()} for v, r in rec.items()}}


# R7

def weight_histogram(trials=10, seed=42, quick=False, progress=None, *, n=100):
    """R7: the histogram of the trained weights (density per bin), its peaks and the valley.

    The peaks are the centres of the fullest bin on each side of 0; ``valley_fraction`` is the
    fraction of weights with ``|alpha| < 1``.
    """
    gamma = scaled_gamma(RIDGE_GAMMA, n)
    edges = np.linspace(-6.0, 6.0, 121)
    centres = (edges[:-1] + edges[1:]) / 2
    dens, pos, neg, valley, lo, hi, med_pos, med_neg = [], [], [], [], [], [], [], []
    for t in range(trials):
        a = _network(n, LOAD, gamma, seed + t).alpha.ravel()
        d, _ = np.histogram(a, bins=edges, density=True)
        dens.append(d)
        pos.append(float(centres[centres > 0][np.argmax(d[centres > 0])]))
        neg.append(float(centres[centres < 0][np.argmax(d[centres < 0])]))
        valley.append(float(np.mean(np.abs(a) < 1.0)))
        lo.append(float(a.min()))
        hi.append(float(a.max()))
        med_pos.append(float(np.median(a[a > 0])))
        med_neg.append(float(np.median(a[a < 0])))
        _tick(progress, t + 1, trials)
    return {**_base("weights", ("R7",), trials, seed, quick, n=n, p=int(round(LOAD * n)),
                    gamma=gamma),
            "bin_edges": edges.tolist(), "density": _summary(dens),
            "peak_positive": _summary(pos), "peak_negative": _summary(neg),
            "median_positive": _summary(med_pos), "median_negative": _summary(med_neg),
            "valley_fraction": _summary(valley), "min": _summary(lo), "max": _summary(hi)}


# R8

def gamma_sweep(trials=10, seed=42, quick=False, progress=None, *, n=100):
    """R8: 2-bit degradation (float bit accuracy - 2-bit bit accuracy) against gamma at P/N = 3.

    Also records what explains the shape: the largest eigenvalue of the Gram matrix, the
    gradient-descent stability number ``eta lambda_max(K)^2 / 4`` of the exact gradient at
    ``A = 0`` (above 2 the first steps overshoot), the final loss and the weight range.
    """
    grid = ([0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1] if quick else
            [0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.04, 0.05, 0.07, 0.1])
    gammas = [scaled_gamma(g, n) for g in grid]
    eta = TrainConfig().eta
    keys = ("float_accuracy", "two_bit_accuracy", "degradation", "max_abs_weight", "final_loss",
            "lambda_max", "stability_number")
    rows = {k: [] for k in keys}
    for t in range(trials):
        row = {k: [] for k in keys}
        for g in gammas:
            net = _network(n, LOAD, g, seed + t)
            f = bit_accuracy(net.patterns, net.alpha, g)
            q = bit_accuracy(net.patterns, _weights(net.alpha, 2), g)
            lmax = float(np.linalg.eigvalsh(gram_matrix(net.patterns, g))[-1])
            for k, v in zip(keys, (f, q, f - q, float(np.abs(net.alpha).max()),
                                   float(net.loss_history[-1]), lmax, eta * lmax ** 2 / 4),
                            strict=True):
                row[k].append(v)
        for k in keys:
            rows[k].append(row[k])
        _tick(progress, t + 1, trials)
    return {**_base("gamma_sweep", ("R8",), trials, seed, quick, n=n, p=int(round(LOAD * n)),
                    eta=eta),
            "gamma": gammas, "gamma_at_n100": grid,
            **{k: _summary(v) for k, v in rows.items()}}


# R10

def pack_codes(codes, bits):
    """Pack ``bits``-bit codes (bits in 1, 2, 4, 8), little-endian within each byte: ``uint8``."""
    if bits not in (1, 2, 4, 8):
        raise ValueError(f"bits must be 1, 2, 4 or 8 to pack whole codes per byte, not {bits!r}")
    c = np.asarray(codes, dtype=np.uint8).ravel()
    if c.size and c.max() >= 2 ** bits:
        raise ValueError(f"a code does not fit in {bits} bits: {int(c.max())}")
    per = 8 // bits
    c = np.concatenate([c, np.zeros(-c.size % per, dtype=np.uint8)]).reshape(-1, per)
    shifts = (bits * np.arange(per)).astype(np.uint8)
    return np.bitwise_or.reduce(c << shifts, axis=1).astype(np.uint8)


def unpack_codes(packed, bits, count):
    """Inverse of :func:`pack_codes`: the first ``count`` codes, ``uint8``."""
    per = 8 // bits
    shifts = (bits * np.arange(per)).astype(np.uint8)
    mask = np.uint8(2 ** bits - 1)
    return ((np.asarray(packed, dtype=np.uint8)[:, None] >> shifts) & mask).ravel()[:count]


def storage(trials=1, seed=42, quick=False, progress=None, *, n=1000, load=LOAD):
    """R10: bytes of the dual weights for N = 1000, P = 3000 as float32 and as packed 2-bit codes.

    Sizes follow from the shapes; the 2-bit figure is checked bit-exactly by quantizing a
    (P, N) matrix (seeded normal weights), packing its codes four per byte and unpacking them.
    ``trials`` does not apply (the result is deterministic) and is recorded as 1.
    """
    p = int(round(load * n))
    alpha = np.random.default_rng((seed, 10)).normal(scale=2.0, size=(p, n))
    codes = quantize_uniform(alpha, 2).codes
    packed = pack_codes(codes, 2)
    exact = bool(np.array_equal(unpack_codes(packed, 2, codes.size), codes.ravel()))
    _tick(progress, 1, 1)
    f32 = p * n * 4
    two = -(-p * n * 2 // 8)
    return {**_base("storage", ("R10",), 1, seed, quick, n=n, p=p),
            "float32_bytes": f32, "float64_bytes": p * n * 8, "two_bit_bytes": two,
            "packed_bytes": int(packed.nbytes), "roundtrip_exact": exact,
            "ratio_float32_to_two_bit": f32 / two, "pattern_bytes": -(-p * n // 8)}


# Beyond the paper: per-neuron thresholds

#: The weights compared by :func:`quantizer_comparison`: float, then every quantizer at 2, 1 and
#: 3 bits (at 1 bit ``"neuron"`` is ``"bias"``, so it is left out).
QUANTIZER_VARIANTS = (None, *((b, q) for b in (2, 1, 3) for q in QUANTIZERS
                              if not (b == 1 and q == "neuron")))


def quantizer_comparison(trials=10, seed=42, quick=False, progress=None, *, n=100):
    """Beyond the paper (docs/model.md section 6): bit accuracy, bit-wise and exact recall of the
    float weights and of each quantizer of :data:`QUANTIZER_VARIANTS` over noise levels 0..0.4.

    Trial ``t`` scores one ridge network with :func:`~model.evaluate.score_variants`, its
    queries drawn from ``default_rng((seed + t, 11))`` (the same queries for every variant, and
    the queries of a lower noise level flip a subset of a higher one's bits).
    """
    gamma = scaled_gamma(RIDGE_GAMMA, n)
    noises = [0.0, 0.1, 0.2, 0.3, 0.4] if quick else [round(0.05 * k, 2) for k in range(9)]
    queries = 100 if quick else 300
    labels = [variant_label(*variant_spec(v)) for v in QUANTIZER_VARIANTS]
    keys = ("bit_accuracy", "recall_accuracy", "exact_recall")
    per = {label: {k: [] for k in keys} for label in labels}
    for t in range(trials):
        net = _network(n, LOAD, gamma, seed + t)
        scores = score_variants(net, QUANTIZER_VARIANTS, noises, queries, (seed + t, 11),
                                MAX_STEPS)
        for label in labels:
            for k in keys:
                per[label][k].append(scores[label][k])
        _tick(progress, t + 1, trials)
    return {**_base("quantizers", (), trials, seed, quick, n=n, p=int(round(LOAD * n)),
                    gamma=gamma, queries=queries, max_steps=MAX_STEPS),
            "noise": noises, "variants": labels,
            "scores": {label: {k: _summary(v) for k, v in r.items()} for label, r in per.items()}}


# Registry: name -> function, in the order the report lists them; `cost` orders the scheduling.

EXPERIMENTS = {
    "quantization": quantization_sweep,
    "pruning": pruning_sweep,
    "influence": influence_gini,
    "margin_scaling": margin_scaling,
    "noisy_recall": noisy_recall,
    "weights": weight_histogram,
    "gamma_sweep": gamma_sweep,
    "quantization_pn2": quantization_sweep_pn2,
    "storage": storage,
    "quantizers": quantizer_comparison,
}

COST = {"influence": 30, "gamma_sweep": 13, "margin_scaling": 2, "noisy_recall": 1.5,
        "quantization": 1, "pruning": 1, "weights": 1, "quantization_pn2": 0.7, "storage": 0.1,
        "quantizers": 1}


def run_experiment(name, trials, seed, quick, progress=None, n=None):
    """Run experiment ``name`` (a key of :data:`EXPERIMENTS`); ``n`` overrides N when given."""
    f = EXPERIMENTS[name]
    kwargs = {} if n is None or name == "storage" else {"n": n}
    return f(trials, seed, quick, progress, **kwargs)
