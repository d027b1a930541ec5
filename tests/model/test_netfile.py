"""The network file: round trip, every rejection, atomic writes (model/netfile.py)."""

import io
import json
import os
import zipfile

import netfile_files as files
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
    read_network,
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


# Hostile files (issue 13): each is refused with one NetworkFileError naming the file and the
# problem, before anything is allocated or parsed deeply; the files are built byte by byte
# (netfile_files.py).

def _refused(tmp_path, data, message):
    path = tmp_path / "hostile.npz"
    path.write_bytes(data)
    with pytest.raises(NetworkFileError, match=message) as info:
        load_network(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "\n" not in text and len(text) < 400, text
    return text


def _members(**changes):
    """The members of the small trained network, with ``changes`` ({name: bytes or None})."""
    members = dict(files.trained()[1])
    for key, value in changes.items():
        members.pop(f"{key}.npy")
        if value is not None:
            members[f"{key}.npy"] = value
    return members


def _with_meta(**changes):
    return files.npz(_members(meta=files.npy(np.array(files.meta_text(**changes)))))


NOT_NPY = {
    "member without .npy": ({**_members(patterns=None), "patterns": b"not an array"},
                            r"not a khop network file \(missing patterns\)"),
    "text in an .npy member": (_members(alpha=b"alpha, as text"),
                               r"unreadable network file \(alpha\.npy: not \.npy data\)"),
    "unexpected member": ({**_members(), "extra.npy": files.npy(np.zeros(2))},
                          (r"unexpected member 'extra\.npy'; a network file holds exactly "
                          r"patterns\.npy, alpha\.npy, loss_history\.npy, meta\.npy")),
    "duplicated member": ([*_members().items(), ("meta.npy", files.npy(np.array("{}")))],
                          r"member meta\.npy appears twice"),
}


@pytest.mark.parametrize("case", NOT_NPY)
def test_a_member_that_is_not_the_documented_npy_data_is_refused(tmp_path, case):
    members, message = NOT_NPY[case]
    _refused(tmp_path, files.npz(members), message)


@pytest.mark.parametrize("where", [("central", "local"), ("central",)])
def test_an_encrypted_member_is_refused(tmp_path, where):
    data = files.patch_zip(files.npz(_members()), 1, "flags", 1, where)
    _refused(tmp_path, data, r"member \w+\.npy is encrypted; network files are not")


@pytest.mark.parametrize("flag", [5, 6, 13])
def test_members_with_other_unsupported_zip_flags_are_refused(tmp_path, flag):
    data = files.patch_zip(files.npz(_members()), 0, "flags", 1 << flag)
    _refused(tmp_path, data, r"has zip flags 0x\w+, of which only 0x080e are allowed")


@pytest.mark.parametrize("method", [99, 1, 12, 14, 0xFFFF])
def test_an_unknown_compression_method_is_refused(tmp_path, method):
    data = files.patch_zip(files.npz(_members()), 2, "method", method)
    _refused(tmp_path, data, rf"uses compression method {method}; network files use "
                             rf"0 \(stored\), 8 \(deflated\)")


@pytest.mark.parametrize("compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_compression_zipfile_knows_but_the_format_does_not_allow_is_refused(tmp_path,
                                                                             compression):
    _refused(tmp_path, files.npz(_members(), compression),
             rf"uses compression method {compression}")


def test_a_deflated_file_loads(tmp_path):
    path = tmp_path / "net.npz"
    path.write_bytes(files.npz(_members(), zipfile.ZIP_DEFLATED))
    net, _ = files.trained()
    np.testing.assert_array_equal(load_network(path).alpha, net.alpha)


_NOT_ALLOWED = r"dtype .* is not allowed; network file arrays hold plain numbers or text\)"
STRUCTURED = {
    "structured patterns": ("patterns", files.npy(np.ones((5, 12), dtype=[("a", "i1")]))),
    "structured alpha": ("alpha", files.npy(np.ones((5, 12), dtype=[("a", "<f8")]))),
    "nested structured": ("alpha", files.raw_npy(files.header(
        descr="[('a', [('b', '<f8')])]"), bytes(480)), r".npy header nested more than 4 deep"),
    "subarray": ("patterns", files.raw_npy(files.header(descr="('|i1', (2,))", shape="(5, 6)"),
                                           b"\x01" * 60)),
    "object": ("meta", files.raw_npy(files.header(descr="'|O'", shape="()"), b"\x80\x04N.")),
    "datetime": ("alpha", files.raw_npy(files.header(descr="'<M8[ns]'"), bytes(480))),
    "bytes": ("meta", files.npy(np.array(b"{}"))),
    "void": ("alpha", files.raw_npy(files.header(descr="'|V8'"), bytes(480))),
}


@pytest.mark.parametrize("case", STRUCTURED)
def test_structured_object_and_other_dtypes_are_refused(tmp_path, case):
    member, data, *message = STRUCTURED[case]
    _refused(tmp_path, files.npz(_members(**{member: data})),
             rf"unreadable network file \({member}\.npy: " + (message or [_NOT_ALLOWED])[0])


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 50_000,
                                  files.meta_text(training={"x": [[[[[[[[[[[[[[[[[[[[
                                      [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]
                                  ]]]]]]]]]]]]]]]]]]]]})])
def test_deeply_nested_metadata_is_refused_without_recursing(tmp_path, text):
    _refused(tmp_path, files.npz(_members(meta=files.npy(np.array(text)))),
             r"metadata nests arrays and objects more than 32 deep")


def test_brackets_inside_json_strings_do_not_count_as_nesting(tmp_path):
    text = files.meta_text(training={"note": "[[[[" * 100 + '\\"' + "{" * 100})
    path = tmp_path / "net.npz"
    path.write_bytes(files.npz(_members(meta=files.npy(np.array(text)))))
    assert load_network(path).training["note"].startswith("[[[[")


HUGE = {
    "patterns 2^40 x 2^20": ("patterns", files.header(descr="'|i1'", shape="(1099511627776, "
                                                      "1048576)"), r"needs 1024\.0 PiB"),
    "alpha 10^11 x 12": ("alpha", files.header(shape="(100000000000, 12)"),
                         r"alpha has shape \(100000000000, 12\) but patterns have shape"),
    "loss history 10^12": ("loss_history", files.header(shape="(1000000000000,)"),
                           r"needs 7\.3 TiB, more than the 1\.0 GiB"),
    "meta 10^9 characters": ("meta", files.header(descr="'<U2000000'", shape="()"),
                             r"metadata of 2000000 characters, more than the 1048576"),
    "within the limit, not in the file": ("loss_history", files.header(shape="(1000000,)"),
                                          (r"the header declares 8000000 bytes of data \(shape "
                                          r"\(1000000,\) of float64\) but the member holds 0")),
}


@pytest.mark.parametrize("case", HUGE)
def test_a_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path, case):
    member, text, message = HUGE[case]
    _refused(tmp_path, files.npz(_members(**{member: files.raw_npy(text)})), message)


def test_a_zip_directory_declaring_a_huge_member_is_refused(tmp_path):
    data = files.patch_zip(files.npz(_members()), 1, "size", 0xFFFF_FFF0, ("central",))
    _refused(tmp_path, data, r"member alpha\.npy declares 4\.0 GiB, more than the 1\.0 GiB")


MALFORMED = {
    "unterminated string": (files.header(shape="(5, 12), '''"), "malformed .npy header"),
    "unhashable key": (files.header(shape="(5, 12), [1]: 2"), "malformed .npy header"),
    "unary chain": (files.header(shape="(5, " + "-" * 3000 + "12)"), "malformed .npy header"),
    "deep tuple": (files.header(shape="(" * 40 + ")" * 40), r"\.npy header nested more than 4"),
    "not a dict": ("[1, 2, 3]", "malformed .npy header"),
    "missing key": ("{'descr': '<f8', 'shape': (5, 12)}", "malformed .npy header"),
    "extra key": (files.header()[:-1] + "'x': 1}", "malformed .npy header"),
    "shape not a tuple": (files.header(shape="[5, 12]"), "malformed .npy header"),
    "boolean in shape": (files.header(shape="(True, 12)"), r"malformed \.npy header \(shape"),
    "negative shape": (files.header(shape="(-5, 12)"), r"malformed \.npy header \(shape"),
    "float shape": (files.header(shape="(5.0, 12)"), "malformed .npy header"),
    "fortran_order not a bool": (files.header(fortran="'yes'"), "malformed .npy header"),
    "descr not a dtype": (files.header(descr="'<f8x'"), "malformed .npy header"),
    "descr a list of ints": (files.header(descr="[1]"), "malformed .npy header"),
    "descr a dict": (files.header(descr="{'a': 1}"), "malformed .npy header"),
    "huge unicode": (files.header(descr="'<U99999999999'"), "malformed .npy header"),
    "not latin": ("{'descr': '\u00ff\u00fe'}", "malformed .npy header"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_npy_header_is_refused(tmp_path, case):
    text, message = MALFORMED[case]
    _refused(tmp_path, files.npz(_members(alpha=files.raw_npy(text, bytes(480)))),
             r"unreadable network file \(alpha\.npy: " + message)


@pytest.mark.parametrize("case", ["version 3.0", "version 0.0", "length beyond the member",
                                  "length above 4096", "truncated magic"])
def test_npy_versions_and_lengths_outside_the_format_are_refused(tmp_path, case):
    good = files.header()
    data, message = {
        "version 3.0": (files.raw_npy(good, bytes(480), version=(3, 0)),
                        r"\.npy format version 3\.0 is not supported \(1\.0 and 2\.0 are\)"),
        "version 0.0": (files.raw_npy(good, bytes(480), version=(0, 0)),
                        r"\.npy format version 0\.0 is not supported"),
        "length beyond the member": (files.raw_npy(good, length=4000), "truncated .npy header"),
        "length above 4096": (files.raw_npy(good, bytes(480), version=(2, 0), length=1 << 30),
                              r"\.npy header of 1073741824 bytes, more than the 4096 allowed"),
        "truncated magic": (b"\x93NUM", r"not \.npy data"),
    }[case]
    _refused(tmp_path, files.npz(_members(alpha=data)), r"alpha\.npy: " + message)


def test_version_2_headers_fortran_order_and_big_endian_arrays_load(tmp_path):
    net, members = files.trained()
    path = tmp_path / "net.npz"
    members["alpha.npy"] = files.npy(np.asfortranarray(net.alpha.astype(">f4")), (2, 0))
    members["loss_history.npy"] = files.npy(net.loss_history.astype(">f8"))
    path.write_bytes(files.npz(members))
    back = load_network(path)
    np.testing.assert_array_equal(back.alpha, net.alpha.astype(np.float32))
    assert back.alpha.dtype == np.float32 and back.alpha.dtype.isnative
    np.testing.assert_array_equal(back.loss_history, net.loss_history)
    back.alpha[0, 0] = 1.0      # writable, as np.load's arrays are


def test_invalid_characters_in_the_metadata_are_refused(tmp_path):
    data = files.raw_npy(files.header(descr="'<U1'", shape="()"), b"\xff\xff\xff\xff")
    _refused(tmp_path, files.npz(_members(meta=data)), r"meta holds invalid characters")


_GAMMA = r"gamma must be a positive finite number at most 1e\+300, not "
NOT_NUMBERS = {
    "true as version": (dict(version=True), r"version True is not supported"),
    "false as version": (dict(version=False), r"version False is not supported"),
    "2.0 as version": (dict(version=2.0), r"version 2\.0 is not supported"),
    "true as gamma": (dict(gamma=True), _GAMMA + r"True"),
    "false as gamma": (dict(gamma=False), _GAMMA + r"False"),
    "null gamma": (dict(gamma=None), _GAMMA + r"None"),
    "string gamma": (dict(gamma="0.03"), _GAMMA + r"'0\.03'"),
    "huge integer gamma": (dict(gamma=10 ** 400), r"gamma must be a positive finite number"),
    "gamma whose kernel overflows": (dict(gamma=1e308), r"at most 1e\+300, not 1e\+308"),
    "true as p": (dict(p=True), r"metadata p must be an integer, not True"),
    "float n": (dict(n=12.0), r"metadata n must be an integer, not 12\.0"),
    "list quantizer": (dict(quantizer=["bias"]), (r"quantizer must be one of paper, bias, "
                                                  r"neuron, not \['bias'\]")),
    "long quantizer": (dict(quantizer="x" * 100_000), r"not 'x+\.\.\.x'$"),
    "no gamma": (dict(gamma=...), r"metadata lacks gamma"),
    "no training": (dict(training=...), r"metadata lacks training"),
    "no n or p": (dict(n=..., p=...), r"metadata lacks n, p"),
}


@pytest.mark.parametrize("case", NOT_NUMBERS)
def test_metadata_types_are_strict_a_boolean_is_not_a_number(tmp_path, case):
    changes, message = NOT_NUMBERS[case]
    text = json.loads(files.meta_text(**{k: v for k, v in changes.items() if v is not ...}))
    for key in [k for k, v in changes.items() if v is ...]:
        del text[key]
    data = files.npz(_members(meta=files.npy(np.array(json.dumps(text)))))
    if case == "true as p":     # a one-pattern network: True == 1 == P
        net, members = files.trained()
        data = files.npz({**members, "patterns.npy": files.npy(net.patterns[:1]),
                          "alpha.npy": files.npy(net.alpha[:1]),
                          "meta.npy": files.npy(np.array(json.dumps(text)))})
    _refused(tmp_path, data, message)


@pytest.mark.parametrize("raw, message", [
    ('{"format": "khop-network", "version": 2, "gamma": NaN}', r"NaN is not a JSON number"),
    ('{"format": "khop-network", "version": 2, "gamma": Infinity}', r"Infinity is not a JSON"),
    ('{"format": "khop-network", "version": 2, "gamma": 1e400}', r"number '1e400' is out of "),
    ('{"format": "khop-network", "format": "khop-network"}', r"key 'format' appears twice"),
    ('{"format": "khop-network", "version": 2, "n": ' + "9" * 5000 + "}", r"Exceeds the limit"),
])
def test_metadata_is_standard_json(tmp_path, raw, message):
    _refused(tmp_path, files.npz(_members(meta=files.npy(np.array(raw)))),
             r"metadata is not valid JSON \(.*" + message)


BAD_LOSS = {
    "2-d": (np.zeros((2, 2)), r"loss_history must be a one-dimensional array, not shape \(2, 2\)"),
    "0-d": (np.float64(1.0), r"loss_history must be a one-dimensional array, not shape \(\)"),
    "NaN": (np.array([3.0, np.nan]), r"loss_history contains NaN or infinite losses"),
    "infinite": (np.array([np.inf]), r"loss_history contains NaN or infinite losses"),
    "strings": (np.array(["a", "b"]), (r"loss_history must be floating point \(float32 or "
                                      r"float64\), not <U1")),
    "integers": (np.arange(3), r"loss_history must be floating point"),
}


@pytest.mark.parametrize("case", BAD_LOSS)
def test_loss_history_must_be_a_finite_one_dimensional_float_array(tmp_path, case):
    array, message = BAD_LOSS[case]
    _refused(tmp_path, files.npz(_members(loss_history=files.npy(array))), message)


def test_an_empty_loss_history_loads_as_save_network_writes_it(tmp_path):
    net, _ = files.trained()
    net.loss_history = np.zeros(0)
    save_network(tmp_path / "net.npz", net)
    assert load_network(tmp_path / "net.npz").loss_history.shape == (0,)


def _recipe_record():
    return dict(files.trained()[0].training)


BAD_TRAINING = {
    "a list": ([1, 2], r"metadata training must be an object, not \[1, 2\]"),
    "negative seed": ({"seed": -1}, r"training seed must be a non-negative integer, not -1"),
    "boolean seed": ({"seed": True}, r"training seed must be a non-negative integer, not True"),
    "string final loss": ({**_recipe_record(), "final_loss": "low"},
                          r"training final_loss must be a finite number, not 'low'"),
    "boolean wall time": ({"wall_seconds": True}, (r"training wall_seconds must be a "
                                                   r"non-negative finite number, not True")),
    "unknown gradient": ({"gradient": "adam"}, (r"training gradient must be one of exact, "
                                               r"functional, not 'adam'")),
    "zero epochs": ({"epochs": 0}, r"training epochs must be a positive integer, not 0"),
    "string tol": ({"tol": "none"}, r"training tol must be null or a positive finite number"),
    "recipe without its results": ({k: v for k, v in _recipe_record().items()
                                    if k != "final_loss"},
                                   r"training holds a whole recipe but lacks final_loss"),
    "recipe without tol and results": ({k: v for k, v in _recipe_record().items()
                                        if k not in ("tol", "epochs_run")},
                                       r"training holds a whole recipe but lacks epochs_run"),
}


@pytest.mark.parametrize("case", BAD_TRAINING)
def test_training_record_entries_khop_reads_are_checked(tmp_path, case):
    training, message = BAD_TRAINING[case]
    _refused(tmp_path, _with_meta(training=training), message)


def test_other_training_entries_are_kept(tmp_path):
    path = tmp_path / "net.npz"
    path.write_bytes(_with_meta(training={"seed": 3, "note": ["any", {"json": None}]}))
    assert load_network(path).training == {"seed": 3, "note": ["any", {"json": None}]}


@pytest.mark.parametrize("change", [{"final_loss": "low"}, {"final_loss": ...},
                                    {"wall_seconds": "slow"}])
def test_the_demo_retrains_instead_of_crashing_on_a_bad_training_record(tmp_path, change):
    # The demo reuses a network file holding its recipe and prints the record's results.
    from khop.demo import DemoContext, Ridge, stage_train

    net, members = files.trained()
    training = {**net.training, **change}
    training = {k: v for k, v in training.items() if v is not ...}
    meta = json.loads(files.meta_text(gamma=net.gamma, quantizer=net.quantizer,
                                      training=training))
    members["meta.npy"] = files.npy(np.array(json.dumps(meta)))
    (tmp_path / "net.npz").write_bytes(files.npz(members))
    out = io.StringIO()
    ridge = Ridge(n=files.N, p=files.P, seed=0, config=files.CONFIG)
    stage_train(DemoContext(out=tmp_path, ridge=ridge, stream=out))
    assert "ignoring unreadable" in out.getvalue() and "trained in" in out.getvalue()
    assert load_network(tmp_path / "net.npz").training["final_loss"] == net.training[
        "final_loss"]


@pytest.mark.parametrize("training, loss_history, message", [
    ({"seed": -1}, np.zeros(2), r"training seed must be a non-negative integer"),
    ({}, np.zeros((2, 2)), r"loss_history must be a one-dimensional array"),
    ({}, np.array([np.nan]), r"finite losses"),
    ({"x": float("nan")}, np.zeros(2), r"Out of range float values are not JSON compliant"),
])
def test_save_network_refuses_what_load_network_would_refuse(tmp_path, training, loss_history,
                                                            message):
    net, _ = files.trained()
    net.training, net.loss_history = training, loss_history
    with pytest.raises(ValueError, match=message):
        save_network(tmp_path / "net.npz", net)
    assert os.listdir(tmp_path) == []


def test_read_network_reads_a_file_object_and_names_it(tmp_path):
    net, members = files.trained()
    data = files.npz(members)
    np.testing.assert_array_equal(read_network(io.BytesIO(data), "mem").alpha, net.alpha)
    with pytest.raises(NetworkFileError, match=r"^mem: truncated or corrupt network file"):
        read_network(io.BytesIO(data[:len(data) // 2]), "mem")


def test_a_corrupt_member_is_caught_by_its_checksum(tmp_path):
    data = bytearray(files.npz(_members()))
    central, local = files.central_entries(bytes(data))[1]
    data[local + 30 + len("alpha.npy") + 200] ^= 0x40      # a byte of alpha's data
    _refused(tmp_path, bytes(data), r"truncated or corrupt network file \(Bad CRC-32")
