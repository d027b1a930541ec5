"""Network files built byte by byte, for the reader's tests (tests/model/test_netfile*.py).

Independent of :func:`khop.model.netfile.save_network`: members are ``.npy`` bytes written by
:mod:`numpy.lib.format` or by hand, zipped by :mod:`zipfile`, and zip fields are patched in
place, so a test can build any file the reader may meet.
"""

import io
import json
import struct
import warnings
import zipfile

import numpy as np

from khop.model.errors import KhopError
from khop.model.klr import TrainConfig
from khop.model.netfile import FORMAT_NAME, FORMAT_VERSION, MEMBERS, Network
from khop.model.train import train_network

#: A small trained network's recipe: N=12, P=5, three epochs (about 10 ms).
N, P = 12, 5
CONFIG = TrainConfig(epochs=3)


def npy(array, version=None):
    """``array`` as ``.npy`` bytes."""
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asarray(array), version=version, allow_pickle=False)
    return out.getvalue()


def raw_npy(header, data=b"", version=(1, 0), length=None):
    """``.npy`` bytes with header text ``header`` (padded with spaces and a newline to 64
    bytes, as numpy writes it), format ``version`` and header ``length`` (default the true
    one)."""
    text = header.encode("latin-1")
    lfmt = "<H" if version[0] == 1 else "<I"
    pad = -(6 + 2 + struct.calcsize(lfmt) + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    length = len(text) if length is None else length
    return (np.lib.format.MAGIC_PREFIX + bytes(version) + struct.pack(lfmt, length) + text
            + data)


def header(descr="'<f8'", fortran="False", shape="(5, 12)"):
    """The text of an ``.npy`` header, each value spelled as given."""
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"


def npz(members, compression=zipfile.ZIP_STORED):
    """A zip archive of ``members``, ``{name: bytes}`` or a list of ``(name, bytes)`` (which
    may repeat a name)."""
    out = io.BytesIO()
    items = members.items() if isinstance(members, dict) else members
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # zipfile: "Duplicate name"
        with zipfile.ZipFile(out, "w", compression) as z:
            for name, data in items:
                z.writestr(name, data)
    return out.getvalue()


def meta_text(**changes):
    """The JSON metadata of a valid version-2 file of the small network, with ``changes``."""
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "gamma": CONFIG.gamma, "n": N,
            "p": P, "quantizer": "bias", "training": {}}
    meta.update(changes)
    return json.dumps(meta)


def trained(seed=0):
    """``(Network, {member name: .npy bytes})`` of the small network trained from ``seed``."""
    net = train_network(N, P, seed, CONFIG)
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "gamma": net.gamma, "n": net.n,
            "p": net.p, "quantizer": net.quantizer, "training": net.training}
    arrays = {"patterns": net.patterns, "alpha": net.alpha, "loss_history": net.loss_history,
              "meta": np.array(json.dumps(meta))}
    return net, {f"{k}.npy": npy(arrays[k]) for k in MEMBERS}


# Zip fields, patched in place: {name: (offset in the central entry, offset in the local
# header, struct format)}.
ZIP_FIELDS = {"flags": (8, 6, "<H"), "method": (10, 8, "<H"), "crc": (16, 14, "<I"),
              "compressed_size": (20, 18, "<I"), "size": (24, 22, "<I")}


def central_entries(data):
    """``[(central entry offset, local header offset)]`` of a zip archive written by zipfile
    (no archive comment)."""
    entries_count, _, cd_offset = struct.unpack("<HII", data[-12:-2])
    out, at = [], cd_offset
    for _ in range(entries_count):
        assert data[at:at + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[at + 28:at + 34])
        (local,) = struct.unpack("<I", data[at + 42:at + 46])
        out.append((at, local))
        at += 46 + name_len + extra_len + comment_len
    return out


def patch_zip(data, index, name, value, where=("central", "local")):
    """``data`` with zip field ``name`` of member ``index`` set to ``value`` in the central
    directory and/or the local header."""
    data = bytearray(data)
    central, local = central_entries(bytes(data))[index]
    c_off, l_off, fmt = ZIP_FIELDS[name]
    value &= (1 << (8 * struct.calcsize(fmt))) - 1
    if "central" in where:
        struct.pack_into(fmt, data, central + c_off, value)
    if "local" in where:
        struct.pack_into(fmt, data, local + l_off, value)
    return bytes(data)


def check_usable(net, tmp_path):
    """Run on an accepted network what khop does with a loaded one; a crash fails the test.

    The accelerator configuration (:func:`khop.hw.params.configure`, what ``khop verilog``,
    ``khop cosim`` and ``khop run`` start from; a :class:`KhopError` is a clear refusal of a
    hardware option, not a crash), ``khop eval``'s comparison of float and quantized weights,
    the demo's recipe check and, where the recipe matches, its train stage reusing the file and
    printing the training record; finally the network saves and loads back equal.
    """
    from khop.demo import DemoContext, Ridge, stage_train
    from khop.hw.params import configure
    from khop.model.evaluate import compare
    from khop.model.netfile import load_network, save_network
    from khop.model.train import same_recipe

    assert isinstance(net, Network)
    assert net.patterns.dtype == np.int8 and net.alpha.dtype in (np.float32, np.float64)
    assert net.loss_history.ndim == 1 and np.all(np.isfinite(net.loss_history))
    assert isinstance(net.gamma, float) and isinstance(net.training, dict)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)      # NaN or overflow: a broken network
        try:
            configure(net)
            configure(net, bits=1)
        except KhopError:
            pass
        compare(net, [None, 2, (2, net.quantizer)], 0.2, 4, 0, 8)
    # The demo's recipe check with the recipe the fuzzed files start from.
    seed = net.training.get("seed", 0)
    matches = same_recipe(net, net.n, net.p, seed, CONFIG)
    path = tmp_path / "net.npz"
    save_network(path, net)
    back = load_network(path)
    np.testing.assert_array_equal(back.alpha, net.alpha)
    assert back.training == net.training and back.quantizer == net.quantizer
    if matches:
        out = io.StringIO()
        ctx = DemoContext(out=tmp_path, ridge=Ridge(n=net.n, p=net.p, seed=seed, config=CONFIG),
                          stream=out)
        stage_train(ctx)
        assert "reusing" in out.getvalue(), out.getvalue()
    return matches


def outcome(data, tmp_path, name="fuzz.npz"):
    """``"refused"`` or ``"accepted"`` for network file bytes ``data``: a refusal must be one
    :class:`NetworkFileError` naming the file on one line, an accepted network must be usable
    (:func:`check_usable`). Anything else propagates and fails the calling test."""
    from khop.model.errors import NetworkFileError
    from khop.model.netfile import read_network

    try:
        net = read_network(io.BytesIO(data), name)
    except NetworkFileError as e:
        text = str(e)
        assert text.startswith(f"{name}: ") and "\n" not in text and len(text) < 500, text
        return "refused"
    check_usable(net, tmp_path)
    return "accepted"
