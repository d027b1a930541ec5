"""The precision sweep's count of the kernel values a retrieval step adds."""

import numpy as np

from khop.model.fixed import FixedConfig, integer_network, to_bits
from khop.model.kernel import random_patterns
from khop.model.metrics import noisy_queries
from khop.model.precision import nonzero_kernels, precision_sweep


def test_nonzero_kernels_counts_each_step_of_each_query_like_a_loop():
    rng = np.random.default_rng(3)
    patterns = random_patterns(rng, 30, 40)
    alpha = rng.normal(0, 2, (40, 30))
    inet = integer_network(patterns, alpha, 0.05, FixedConfig(kernel_bits=4))
    queries, _ = noisy_queries(patterns, 0.2, 12, rng)
    bits = to_bits(queries)
    res = inet.retrieve(bits)
    expect = []
    for t in range(int(res.steps.max())):
        for q in range(len(bits)):
            if t < res.steps[q]:
                state = bits[q]
                for _ in range(t):
                    state = inet.step(state)[0]
                d = np.count_nonzero(state != inet.patterns, axis=1)
                expect.append(np.count_nonzero(inet.lut[d]))
    assert nonzero_kernels(inet, bits, res.steps).tolist() == expect
    assert len(expect) == res.steps.sum()


def test_a_sharp_kernel_adds_few_patterns_a_step():
    rng = np.random.default_rng(0)
    patterns = random_patterns(rng, 64, 60)
    rows = precision_sweep(patterns, rng.normal(0, 2, (60, 64)), 0.02, kernel_bits=[3, 16],
                           queries=20)
    # 3 bits reach 25 of 64 (few random patterns); 16 bits reach every one of the 60.
    assert rows[0].int_nonzero_kernels < 5 and rows[1].int_nonzero_kernels == 60
