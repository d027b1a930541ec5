"""Network file metadata from Hypothesis (issue 13): any JSON values in the documented entries
and the training record give a NetworkFileError or a usable network; well-typed values are
always accepted and read back as written.

Derandomized (the examples are the same on every run) and without an example database.
``pytest -s`` prints the counts.
"""

import functools
import json
from collections import Counter

import netfile_files as files
import numpy as np
import pytest

from khop.model.compress import QUANTIZERS
from khop.model.kernel import MAX_GAMMA
from khop.model.klr import DTYPES, GRADIENTS
from khop.model.netfile import TRAINING_ENTRIES, load_network

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

DELETE = "<delete>"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)
#: Well-typed values of every entry (the small network's N and P).
VALID_TOP = {
    "version": st.sampled_from([1, 2]),
    "gamma": st.floats(min_value=1e-9, max_value=MAX_GAMMA),
    "n": st.just(files.N),
    "p": st.just(files.P),
    "quantizer": st.sampled_from(QUANTIZERS),
    "extra": JSON,
}
_NONNEGATIVE = st.floats(min_value=0, max_value=1e300)
_POSITIVE = st.floats(min_value=1e-300, max_value=1e300)
VALID_TRAINING = {
    "seed": st.integers(0, 2 ** 64), "gamma": _POSITIVE, "eta": _POSITIVE, "lam": _NONNEGATIVE,
    "epochs": st.integers(1, 10 ** 6), "gradient": st.sampled_from(GRADIENTS),
    "dtype": st.sampled_from(DTYPES), "tol": st.none() | _POSITIVE,
    "epochs_run": st.integers(0, 10 ** 6), "stopped_early": st.booleans(),
    "final_loss": st.floats(-1e300, 1e300), "wall_seconds": _NONNEGATIVE, "other": JSON,
}
assert set(VALID_TRAINING) == {*TRAINING_ENTRIES, "other"}


@functools.cache
def _trained():
    return files.trained(seed=2)


def _file(top, training):
    """The small network with metadata entries ``top`` and training entries ``training``
    changed (``DELETE``: removed)."""
    net, members = _trained()
    members = dict(members)
    meta = json.loads(files.meta_text(gamma=net.gamma, quantizer=net.quantizer,
                                      training=dict(net.training)))
    for target, changes in ((meta, top), (meta["training"], training)):
        for key, value in changes.items():
            if value is DELETE:
                target.pop(key, None)
            else:
                target[key] = value
    members["meta.npy"] = files.npy(np.array(json.dumps(meta)))
    return meta, files.npz(members)


def _settings(examples):
    return hypothesis.settings(max_examples=examples, derandomize=True, database=None,
                               deadline=None, suppress_health_check=list(hypothesis.HealthCheck))


def _any_values(tmp_path, examples):
    counts = Counter()
    keys = st.sampled_from([*VALID_TOP, "format", "training"])
    any_or_valid = st.one_of(JSON, st.just(DELETE))

    @_settings(examples)
    @hypothesis.given(
        top=st.dictionaries(keys, any_or_valid, max_size=2),
        training=st.dictionaries(st.sampled_from(list(VALID_TRAINING)), any_or_valid,
                                 max_size=3))
    def run(top, training):
        counts[files.outcome(_file(top, training)[1], tmp_path)] += 1

    run()
    assert counts["refused"] > 0 and counts["accepted"] > 0
    return (f"network file metadata from Hypothesis: {sum(counts.values())} files tried, "
            f"{counts['refused']} refused, {counts['accepted']} accepted and usable")


def _valid_values(tmp_path, examples):
    tried = Counter()

    @_settings(examples)
    @hypothesis.given(
        top=st.fixed_dictionaries({}, optional=VALID_TOP),
        training=st.fixed_dictionaries({}, optional=VALID_TRAINING))
    def run(top, training):
        meta, data = _file(top, training)
        path = tmp_path / "valid.npz"
        path.write_bytes(data)
        net = load_network(path)
        assert net.gamma == meta["gamma"] and net.training == meta["training"]
        assert net.quantizer == ("paper" if meta["version"] == 1 else meta["quantizer"])
        files.check_usable(net, tmp_path)
        tried["accepted"] += 1

    run()
    return (f"well-typed network file metadata from Hypothesis: {tried['accepted']} files, "
            f"all accepted as written")


def test_any_json_in_the_metadata_is_refused_or_usable(tmp_path, record_property):
    record_property("fuzz", _any_values(tmp_path, 300))


def test_well_typed_metadata_is_accepted_as_written(tmp_path, record_property):
    record_property("fuzz", _valid_values(tmp_path, 100))


@pytest.mark.slow
def test_any_json_in_the_metadata_many_more(tmp_path, record_property):
    record_property("fuzz", _any_values(tmp_path, 3000))


@pytest.mark.slow
def test_well_typed_metadata_many_more(tmp_path, record_property):
    record_property("fuzz", _valid_values(tmp_path, 1000))
