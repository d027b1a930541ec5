"""The network file: round trip, every rejection, atomic writes (model/netfile.py)."""

import json
import os

import numpy as np
import pytest

from khop.model.compress import DEFAULT_QUANTIZER
from khop.model.errors import KhopError, NetworkFileError
from khop.model.kernel import random_patterns
from khop.model.netfile import (
    FORMAT_NAME,
    FORMAT_VERSION,
    READ_VERSIONS,
    Network,
    load_network,
    save_network,
)


def _network(dtype=np.float64, n=12, p=5, seed=0):
    rng = np.random.default_rng(seed)
    x = random_patterns(rng, n, p)
    return Network(patterns=x, alpha=rng.normal(size=(p, n)).astype(dtype), gamma=0.03,
                   training={"seed": seed, "eta": 0.1, "gradient": "exact", "epochs_run": 7,
                             "final_loss": 12.5, "tol": None},
                   loss_history=np.linspace(40.0, 12.5, 8))


def _meta(n=12, p=5, **changes):
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "gamma": 0.03, "n": n, "p": p,
            "quantizer": "bias", "training": {}}
    meta.update(changes)
    return meta


def _write(path, patterns=None, alpha=None, meta=None, raw_meta=None, **extra):
    """A network file written by hand with np.savez, independent of save_network."""
    rng = np.random.default_rng(1)
    patterns = random_patterns(rng, 12, 5) if patterns is None else patterns
    alpha = rng.normal(size=patterns.shape) if alpha is None else alpha
    meta = json.dumps(_meta() if meta is None else meta) if raw_meta is None else raw_meta
    np.savez(path, patterns=patterns, alpha=alpha, loss_history=np.zeros(3),
             meta=np.array(meta), **extra)
    return path


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_keeps_every_array_and_the_metadata(tmp_path, dtype):
    net = _network(dtype)
    path = tmp_path / "sub" / "net.npz"
    save_network(path, net)
    back = load_network(path)
    assert back.patterns.dtype == np.int8 and back.alpha.dtype == dtype
    np.testing.assert_array_equal(back.patterns, net.patterns)
    np.testing.assert_array_equal(back.alpha, net.alpha)
    np.testing.assert_array_equal(back.loss_history, net.loss_history)
    assert back.gamma == net.gamma and back.training == net.training
    assert (back.n, back.p) == (12, 5)
    assert os.listdir(path.parent) == ["net.npz"]   # no temporary file left behind


def test_saved_file_is_a_plain_npz_with_the_documented_meta(tmp_path):
    path = tmp_path / "net.npz"
    save_network(path, _network())
    with np.load(path) as npz:
        assert sorted(npz.files) == ["alpha", "loss_history", "meta", "patterns"]
        meta = json.loads(str(npz["meta"]))
    assert meta["format"] == "khop-network" and meta["version"] == 2 == FORMAT_VERSION
    assert meta["quantizer"] == DEFAULT_QUANTIZER
    assert (meta["n"], meta["p"], meta["gamma"]) == (12, 5, 0.03)


def test_hand_written_file_loads(tmp_path):
    # The reader accepts a file that only follows the documented format.
    net = load_network(_write(tmp_path / "hand.npz"))
    assert (net.n, net.p, net.gamma) == (12, 5, 0.03)


def test_saving_replaces_an_existing_file(tmp_path):
    path = tmp_path / "net.npz"
    save_network(path, _network(seed=0))
    save_network(path, _network(seed=1))
    np.testing.assert_array_equal(load_network(path).alpha, _network(seed=1).alpha)


def _truncated(tmp_path, keep):
    path = tmp_path / "net.npz"
    save_network(path, _network())
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def _garbage(tmp_path):
    path = tmp_path / "net.npz"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    return path


def _single_npy(tmp_path):
    path = tmp_path / "net.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    return path


def _foreign(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros((3, 3)), bias=np.zeros(3))
    return path


def _bad(tmp_path, **kw):
    return _write(tmp_path / "bad.npz", **kw)


_pm = random_patterns(np.random.default_rng(2), 12, 5)
_nan = np.zeros((5, 12))
_nan[2, 3] = np.nan
_zeros = _pm.copy()
_zeros[1, 1] = 0

REJECTIONS = {
    "missing": (lambda t: t / "nope.npz", r"nope\.npz: no such network file"),
    "directory": (lambda t: t, r"is a directory"),
    "truncated": (lambda t: _truncated(t, 0.6), r"truncated or corrupt"),
    "truncated head": (lambda t: _truncated(t, 0.05), r"truncated or corrupt"),
    "empty": (lambda t: _truncated(t, 0.0), r"truncated or corrupt network file \(empty"),
    "garbage": (_garbage, r"not a khop network file \(not an \.npz archive\)"),
    "single npy": (_single_npy, r"not a khop network file \(not an \.npz archive\)"),
    "foreign npz": (_foreign, r"not a khop network file \(missing patterns, alpha, "),
    "format name": (lambda t: _bad(t, meta=_meta(format="other-net")),
                    r"not a khop network file \(format 'other-net'\)"),
    "no format": (lambda t: _bad(t, meta={"version": 1}), r"not a khop network file \(format"),
    "meta not object": (lambda t: _bad(t, raw_meta="[1, 2]"), r"not a khop network file"),
    "version": (lambda t: _bad(t, meta=_meta(version=3)),
                r"version 3 is not supported \(this khop reads versions 1 and 2\)"),
    "string version": (lambda t: _bad(t, meta=_meta(version="2")),
                       r"version '2' is not supported"),
    "no quantizer": (lambda t: _bad(t, meta={k: v for k, v in _meta().items()
                                             if k != "quantizer"}),
                     r"quantizer must be one of paper, bias, neuron, not None"),
    "unknown quantizer": (lambda t: _bad(t, meta=_meta(quantizer="fancy")),
                          r"quantizer must be one of .*, not 'fancy'"),
    "shape": (lambda t: _bad(t, alpha=np.zeros((5, 11))),
              r"alpha has shape \(5, 11\) but patterns have shape \(5, 12\)"),
    "not bipolar": (lambda t: _bad(t, patterns=_zeros), r"patterns must contain only -1 and \+1"),
    "nan": (lambda t: _bad(t, alpha=_nan), r"alpha contains NaN or infinite weights"),
    "integer alpha": (lambda t: _bad(t, alpha=np.ones((5, 12), dtype=np.int32)),
                      r"alpha must be floating point"),
    "1-d patterns": (lambda t: _bad(t, patterns=np.ones(12), alpha=np.zeros(12)),
                     r"patterns must be a \(P, N\) array"),
    "bad gamma": (lambda t: _bad(t, meta=_meta(gamma=-1)), r"gamma must be a positive"),
    "n disagrees": (lambda t: _bad(t, meta=_meta(n=13)),
                    r"metadata says N=13, P=5 but the arrays are P=5, N=12"),
    "p disagrees": (lambda t: _bad(t, meta=_meta(p=4)), r"metadata says N=12, P=4"),
    "non-json meta": (lambda t: _bad(t, raw_meta="{format: khop"), r"metadata is not valid JSON"),
    "pickled meta": (lambda t: _pickled(t), r"unreadable network file"),
}


def _pickled(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, patterns=_pm, alpha=np.zeros((5, 12)), loss_history=np.zeros(2),
             meta=np.array([{"format": FORMAT_NAME}], dtype=object))
    return path


@pytest.mark.parametrize("case", REJECTIONS)
def test_bad_files_raise_one_network_file_error_naming_the_problem(tmp_path, case):
    make, message = REJECTIONS[case]
    path = make(tmp_path)
    with pytest.raises(NetworkFileError, match=message) as info:
        load_network(path)
    assert isinstance(info.value, KhopError)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_network_rejects_inconsistent_arrays():
    x = random_patterns(np.random.default_rng(0), 6, 3)
    with pytest.raises(ValueError, match="alpha has shape"):
        Network(patterns=x, alpha=np.zeros((3, 5)), gamma=0.1)
    with pytest.raises(ValueError, match="gamma must be a positive finite number"):
        Network(patterns=x, alpha=np.zeros((3, 6)), gamma=0.0)


def _failing_savez(*args, **kwargs):
    raise RuntimeError("disk full")


def test_failed_write_leaves_no_target_and_no_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", _failing_savez)
    path = tmp_path / "net.npz"
    with pytest.raises(RuntimeError, match="disk full"):
        save_network(path, _network())
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "net.npz"
    save_network(path, _network(seed=0))
    before = path.read_bytes()
    monkeypatch.setattr(np, "savez", _failing_savez)
    with pytest.raises(RuntimeError):
        save_network(path, _network(seed=1))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.npz"]


def test_unserializable_training_record_leaves_nothing(tmp_path):
    net = _network()
    net.training = {"bad": object()}
    with pytest.raises(TypeError):
        save_network(tmp_path / "net.npz", net)
    assert os.listdir(tmp_path) == []


def _write_version_1(path, net):
    """A network file exactly as khop wrote it before format version 2 (no quantizer)."""
    meta = {"format": FORMAT_NAME, "version": 1, "gamma": float(net.gamma), "n": net.n,
            "p": net.p, "training": net.training}
    with open(path, "wb") as f:
        np.savez(f, patterns=net.patterns.astype(np.int8), alpha=net.alpha,
                 loss_history=np.asarray(net.loss_history, dtype=np.float64),
                 meta=np.array(json.dumps(meta)))
    return path


def test_a_version_1_file_loads_and_means_the_papers_quantizer(tmp_path):
    net = _network()
    back = load_network(_write_version_1(tmp_path / "v1.npz", net))
    assert back.quantizer == "paper" == READ_VERSIONS[1]
    np.testing.assert_array_equal(back.alpha, net.alpha)
    assert back.training == net.training
    # Saved again, it is a version-2 file that still means paper.
    save_network(tmp_path / "v2.npz", back)
    with np.load(tmp_path / "v2.npz") as npz:
        meta = json.loads(str(npz["meta"]))
    assert (meta["version"], meta["quantizer"]) == (2, "paper")
    assert load_network(tmp_path / "v2.npz").quantizer == "paper"


def test_a_version_1_file_ignores_a_stray_quantizer_entry(tmp_path):
    path = _write(tmp_path / "v1.npz", meta=_meta(version=1, quantizer="neuron"))
    assert load_network(path).quantizer == "paper"


@pytest.mark.parametrize("quantizer", ["paper", "bias", "neuron"])
def test_round_trip_keeps_the_quantizer(tmp_path, quantizer):
    net = _network()
    net.quantizer = quantizer
    save_network(tmp_path / "net.npz", net)
    assert load_network(tmp_path / "net.npz").quantizer == quantizer
    assert load_network(_write(tmp_path / "hand.npz",
                               meta=_meta(quantizer=quantizer))).quantizer == quantizer


def test_network_rejects_an_unknown_quantizer():
    x = random_patterns(np.random.default_rng(0), 6, 3)
    assert Network(patterns=x, alpha=np.zeros((3, 6)), gamma=0.1).quantizer == DEFAULT_QUANTIZER
    with pytest.raises(ValueError, match="quantizer must be one of"):
        Network(patterns=x, alpha=np.zeros((3, 6)), gamma=0.1, quantizer="fancy")
