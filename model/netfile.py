"""The network file: one ``.npz`` holding a trained kernel Hopfield network.

The file is a zip archive (:mod:`zipfile`) of exactly four members, each stored or deflated,
unencrypted, holding one array in NumPy's ``.npy`` format (:mod:`numpy.lib.format`, header
version 1.0 or 2.0, any byte order, C or Fortran order):

- ``patterns.npy``: (P, N) signed integers (``int8`` when khop writes it), every entry -1 or +1,
  P >= 1, N >= 2
- ``alpha.npy``: (P, N) ``float32`` or ``float64``, finite dual weights
- ``loss_history.npy``: (E+1,) ``float32`` or ``float64`` (``float64`` when khop writes it),
  finite: the training loss before the first and after each epoch; empty for a network that
  was not trained by khop (:class:`Network`'s default)
- ``meta.npy``: a 0-d unicode string of at most :data:`MAX_META_CHARS` characters holding a JSON
  object (standard JSON: no ``NaN`` or ``Infinity``, no repeated key, nesting at most
  :data:`MAX_JSON_DEPTH` deep) with at least

  - ``format``: ``"khop-network"``
  - ``version``: 2 (an integer; 1 is read too, see below)
  - ``gamma``: the kernel parameter, a positive number at most :data:`khop.model.kernel.MAX_GAMMA`
  - ``n``, ``p``: integers equal to N and P
  - ``quantizer``: the name, in :data:`khop.model.compress.QUANTIZERS`, of the quantizer the
    network is meant to be quantized with where none is asked for
  - ``training``: an object, the training record of :func:`khop.model.train.train_network`.
    Entries khop reads (:data:`TRAINING_ENTRIES`) must have their type when present: ``seed``,
    ``epochs``, ``epochs_run`` integers, ``gamma``, ``eta``, ``lam``, ``tol`` (or ``null``),
    ``final_loss``, ``wall_seconds`` finite numbers in their ranges, ``gradient`` and ``dtype``
    names of :mod:`khop.model.klr`, ``stopped_early`` a boolean. A record that holds the whole
    recipe (``seed`` and every :class:`~khop.model.klr.TrainConfig` field but ``tol``, which
    absent means ``null``) is one written by training and must also hold ``epochs_run``,
    ``stopped_early``, ``final_loss`` and ``wall_seconds``. Other entries are kept and not read.

  Other top-level entries are ignored. A boolean is never a number or an integer here.

Version 1 files (khop before per-neuron thresholds) have no ``quantizer`` and still load: they
mean ``"paper"``, the one quantizer of that version. Saving writes version 2.

Writing is atomic (:func:`khop.outputs.atomic_path`): a temporary file in the target directory
is renamed over the target, so a crash never leaves a half-written network.

Reading checks the structure before it allocates or parses: the zip directory (member names,
flags, compression, sizes), then each member's ``.npy`` header (dtype, shape, and that the shape
accounts for exactly the member's bytes, at most :data:`MAX_ARRAY_BYTES`) before its data, and
the metadata's length and nesting depth before its JSON. Every problem raises one
:class:`NetworkFileError` naming the file and the problem.
"""

import io
import json
import math
import re
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from tokenize import TokenError

import numpy as np

from khop.outputs import atomic_path

from .compress import DEFAULT_QUANTIZER, QUANTIZERS, check_quantizer
from .errors import NetworkFileError
from .kernel import MAX_GAMMA
from .klr import DTYPES, GRADIENTS, TrainConfig
from .memory import format_bytes

__all__ = ["StoredPatterns", "Network", "save_network", "load_network", "read_network",
           "FORMAT_NAME", "FORMAT_VERSION", "READ_VERSIONS", "MEMBERS", "MAX_ARRAY_BYTES",
           "MAX_META_CHARS", "MAX_JSON_DEPTH", "TRAINING_ENTRIES"]

FORMAT_NAME = "khop-network"
FORMAT_VERSION = 2
#: Versions :func:`load_network` reads, and the quantizer a file of each version means when its
#: metadata names none.
READ_VERSIONS = {1: "paper", 2: None}
#: The arrays of a network file, each the zip member ``<name>.npy``.
MEMBERS = ("patterns", "alpha", "loss_history", "meta")
#: The largest array a network file may hold (alpha of N = 1000, P = 3000 in float64 is 24 MB).
MAX_ARRAY_BYTES = 1 << 30
#: The longest metadata JSON text, in characters.
MAX_META_CHARS = 1 << 20
#: The deepest nesting of JSON arrays and objects in the metadata (the training record is 2).
MAX_JSON_DEPTH = 32

_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
# General-purpose flag bits a member may carry: 1-2 deflate options, 3 sizes in a data
# descriptor, 11 UTF-8 name. Bit 0 is encryption, 5 patched data, 6 strong encryption.
_ZIP_FLAGS_ALLOWED = 0b1000_0000_1110
_NPY_VERSIONS = {(1, 0): ("<H", np.lib.format.read_array_header_1_0),
                 (2, 0): ("<I", np.lib.format.read_array_header_2_0)}
# A header of plain numbers is under 200 characters; numpy's own limit is 10000.
_NPY_HEADER_CHARS = 4096
_NPY_HEADER_DEPTH = 4           # {'shape': (...)}: 2
# What numpy's header parser (ast.literal_eval, tokenize, numpy.dtype) raises on bad input.
_NPY_HEADER_ERRORS = (ValueError, TypeError, SyntaxError, TokenError, KeyError, IndexError,
                      OverflowError, RecursionError, MemoryError)
# What zipfile and zlib raise on a corrupt archive (UnicodeDecodeError is a ValueError).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, struct.error,
               ValueError, OverflowError)


class StoredPatterns:
    """Mixin of the network classes: ``n`` (neurons) and ``p`` (patterns) of the (P, N)
    ``patterns`` array."""

    @property
    def n(self):
        return int(self.patterns.shape[1])

    @property
    def p(self):
        return int(self.patterns.shape[0])


@dataclass
class Network(StoredPatterns):
    """A trained network: stored patterns, dual weights and the kernel parameter."""

    patterns: np.ndarray            # (P, N) int8 +-1
    alpha: np.ndarray               # (P, N) float
    gamma: float
    training: dict = field(default_factory=dict)
    loss_history: np.ndarray = field(default_factory=lambda: np.zeros(0))
    quantizer: str = DEFAULT_QUANTIZER   # the quantizer used where none is asked for

    def __post_init__(self):
        _validate(self.patterns, self.alpha, self.gamma, ValueError)
        check_quantizer(self.quantizer)


def _validate(patterns, alpha, gamma, error):
    if patterns.ndim != 2 or patterns.shape[0] < 1 or patterns.shape[1] < 2:
        raise error(f"patterns must be a (P, N) array with P >= 1 and N >= 2, "
                    f"not shape {patterns.shape}")
    if not np.all((patterns == 1) | (patterns == -1)):
        raise error("patterns must contain only -1 and +1")
    if alpha.shape != patterns.shape:
        raise error(f"alpha has shape {alpha.shape} but patterns have shape {patterns.shape}; "
                    f"they must agree")
    if not np.issubdtype(alpha.dtype, np.floating):
        raise error(f"alpha must be floating point, not {alpha.dtype}")
    if not np.all(np.isfinite(alpha)):
        raise error("alpha contains NaN or infinite weights")
    if _real(gamma) is None or not 0 < gamma <= MAX_GAMMA:
        raise error(f"gamma must be a positive finite number at most {MAX_GAMMA:g}, not "
                    f"{_show(gamma)}")


def save_network(path, net):
    """Write ``net`` to ``path`` atomically (:func:`khop.outputs.atomic_path`).

    Raises ``ValueError`` (``TypeError`` for a training record JSON cannot hold), writing
    nothing, for what :func:`load_network` would refuse: a training entry of the wrong type, a
    loss history that is not one-dimensional and finite, a value JSON has no number for.
    """
    _check_training(net.training, ValueError)
    loss_history = np.asarray(net.loss_history, dtype=np.float64)
    if loss_history.ndim != 1 or not np.all(np.isfinite(loss_history)):
        raise ValueError(f"loss_history must be a one-dimensional array of finite losses, not "
                         f"shape {loss_history.shape}")
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "gamma": float(net.gamma),
            "n": net.n, "p": net.p, "quantizer": net.quantizer, "training": net.training}
    text = json.dumps(meta, allow_nan=False)
    if len(text) > MAX_META_CHARS or _nesting_depth(text, "[{", "]}", '"') > MAX_JSON_DEPTH:
        raise ValueError(f"the training record is too large for a network file (at most "
                         f"{MAX_META_CHARS} characters of metadata, {MAX_JSON_DEPTH} deep)")
    # Through a file object: np.savez given a name would append ".npz" to it.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, patterns=net.patterns.astype(np.int8), alpha=net.alpha,
                 loss_history=loss_history, meta=np.array(text))


def load_network(path):
    """Read and validate a network file; any problem raises :class:`NetworkFileError`."""
    path = Path(path)
    if not path.exists():
        raise NetworkFileError(f"{path}: no such network file")
    if path.is_dir():
        raise NetworkFileError(f"{path}: is a directory, not a network file")
    try:
        with open(path, "rb") as f:
            return read_network(f, path)
    except OSError as e:
        raise NetworkFileError(f"{path}: unreadable network file "
                               f"({e.strerror or e})") from None


def read_network(file, name="network file"):
    """Read and validate a network from ``file``, a seekable binary file object.

    Parameters
    ----------
    file : binary file object
        The network file's bytes (an open file, :class:`io.BytesIO`), read from the start.
    name : str or Path
        What error messages call the file (its path).

    Returns
    -------
    Network

    Raises
    ------
    NetworkFileError
        For every malformed file, naming ``name`` and the problem. ``OSError`` from ``file``
        itself passes through.
    """
    magic = file.read(4)
    # An .npz is a zip archive; anything else np.load would read as .npy or a pickle.
    if not magic:
        raise NetworkFileError(f"{name}: truncated or corrupt network file (empty file)")
    if magic != b"PK\x03\x04":
        raise NetworkFileError(f"{name}: not a khop network file (not an .npz archive)")
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            members = _members(archive, name)
            patterns = _read_array(archive, members["patterns"], name, _check_patterns)
            alpha = _read_array(archive, members["alpha"], name, _check_alpha, patterns.shape)
            loss_history = _read_array(archive, members["loss_history"], name,
                                       _check_loss_history)
            meta_text = _read_array(archive, members["meta"], name, _check_meta)
    except NetworkFileError:
        raise
    except NotImplementedError as e:    # e.g. a directory entry needing a newer zip version
        raise NetworkFileError(f"{name}: unreadable network file (a zip feature network files "
                               f"do not use: {_show(str(e), 80)[1:-1]})") from None
    except _ZIP_ERRORS as e:
        raise NetworkFileError(f"{name}: truncated or corrupt network file "
                               f"({_show(str(e), 120)[1:-1]})") from None

    def fail(msg):
        return NetworkFileError(f"{name}: {msg}")

    meta = _parse_meta(meta_text, fail)
    version = meta["version"]
    quantizer = READ_VERSIONS[version] or meta["quantizer"]
    gamma = meta["gamma"]
    _validate(patterns, alpha, gamma, fail)
    if (meta["n"], meta["p"]) != (patterns.shape[1], patterns.shape[0]):
        raise fail(f"metadata says N={meta['n']}, P={meta['p']} but the arrays are "
                   f"P={patterns.shape[0]}, N={patterns.shape[1]}")
    if not np.all(np.isfinite(loss_history)):
        raise fail("loss_history contains NaN or infinite losses")
    return Network(patterns=patterns.astype(np.int8), alpha=alpha, gamma=float(gamma),
                   training=meta["training"], loss_history=loss_history.astype(np.float64),
                   quantizer=quantizer)


def _show(value, width=40):
    """``repr(value)``, shortened to about ``width`` characters for one line of message."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width - 5]}...{text[-2:]}"


def _real(value):
    """``value`` as a float when it is a finite JSON number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        x = float(value)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


# The archive

def _members(archive, name):
    """``{array name: ZipInfo}`` of the four members, after checking the zip directory."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    expected = [f"{k}.npy" for k in MEMBERS]
    missing = [k for k, member in zip(MEMBERS, expected, strict=True) if member not in names]
    if missing:
        raise NetworkFileError(f"{name}: not a khop network file (missing "
                               f"{', '.join(missing)})")
    holds = f"a network file holds exactly {', '.join(expected)}"
    for i, member in enumerate(names):
        if member not in expected:
            raise NetworkFileError(f"{name}: not a khop network file (unexpected member "
                                   f"{_show(member)}; {holds})")
        if member in names[:i]:
            raise NetworkFileError(f"{name}: not a khop network file (member {member} appears "
                                   f"twice; {holds})")
    limit = MAX_ARRAY_BYTES + _NPY_HEADER_CHARS + 16
    for info in infos:
        what = f"{name}: unreadable network file (member {info.filename}"
        if info.flag_bits & 1:
            raise NetworkFileError(f"{what} is encrypted; network files are not)")
        if info.flag_bits & ~_ZIP_FLAGS_ALLOWED:
            raise NetworkFileError(f"{what} has zip flags {info.flag_bits:#06x}, of which only "
                                   f"{_ZIP_FLAGS_ALLOWED:#06x} are allowed)")
        if info.compress_type not in _ZIP_METHODS:
            allowed = ", ".join(f"{m} ({v})" for m, v in _ZIP_METHODS.items())
            raise NetworkFileError(f"{what} uses compression method {info.compress_type}; "
                                   f"network files use {allowed})")
        if info.file_size > limit:
            raise NetworkFileError(f"{what} declares {format_bytes(info.file_size)}, more than "
                                   f"the {format_bytes(MAX_ARRAY_BYTES)} a network file array "
                                   f"may hold)")
    return dict(zip(MEMBERS, (archive.getinfo(m) for m in expected), strict=True))


def _read_array(archive, info, name, check, *context):
    """The array of member ``info``: its ``.npy`` header is read and ``check(shape, dtype,
    fail, *context)``-ed (which returns the array's dtype) before any data is read; the data
    must fill the member exactly. ``meta`` (a 0-d string) is returned as a ``str``."""
    def unreadable(msg):
        return NetworkFileError(f"{name}: unreadable network file ({info.filename}: {msg})")

    with archive.open(info) as fp:
        shape, fortran, dtype, header_bytes = _read_npy_header(fp, unreadable)
        check(shape, dtype, lambda msg: NetworkFileError(f"{name}: {msg}"), *context)
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES:
            raise unreadable(f"shape {shape} of {dtype} needs {format_bytes(nbytes)}, more than "
                             f"the {format_bytes(MAX_ARRAY_BYTES)} a network file array may hold")
        if header_bytes + nbytes != info.file_size:
            raise unreadable(f"the header declares {nbytes} bytes of data (shape {shape} of "
                             f"{dtype}) but the member holds {info.file_size - header_bytes}")
        data = fp.read(nbytes)
        if len(data) != nbytes or fp.read(1):
            raise unreadable(f"expected {nbytes} bytes of data, found {len(data)}")
    if dtype.kind == "U":
        return _meta_text(data, dtype, unreadable)
    array = np.frombuffer(data, dtype=dtype, count=count)
    # A copy in native byte order, writable (frombuffer's view of bytes is not).
    return array.reshape(shape, order="F" if fortran else "C").astype(dtype.newbyteorder("="))


def _read_npy_header(fp, unreadable):
    """``(shape, fortran_order, dtype, header bytes)`` of the ``.npy`` data in stream ``fp``,
    read with bounded reads and parsed by :mod:`numpy.lib.format`."""
    magic = fp.read(8)      # the magic string and the format version
    if len(magic) < 8 or magic[:6] != np.lib.format.MAGIC_PREFIX:
        raise unreadable("not .npy data")
    version = (magic[6], magic[7])
    if version not in _NPY_VERSIONS:
        raise unreadable(f".npy format version {version[0]}.{version[1]} is not supported "
                         f"(1.0 and 2.0 are)")
    length_format, read_header = _NPY_VERSIONS[version]
    length = fp.read(struct.calcsize(length_format))
    if len(length) < struct.calcsize(length_format):
        raise unreadable("truncated .npy header")
    (header_length,) = struct.unpack(length_format, length)
    if header_length > _NPY_HEADER_CHARS:
        raise unreadable(f".npy header of {header_length} bytes, more than the "
                         f"{_NPY_HEADER_CHARS} allowed")
    header = fp.read(header_length)
    if len(header) < header_length:
        raise unreadable("truncated .npy header")
    # Refuse what could make the parser recurse deeply before it sees the text.
    if _nesting_depth(header.decode("latin-1"), "([{", ")]}", "'\"") > _NPY_HEADER_DEPTH:
        raise unreadable(f".npy header nested more than {_NPY_HEADER_DEPTH} deep")
    raw = io.BytesIO(magic + length + header)
    np.lib.format.read_magic(raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # numpy's note on headers written by Python 2
            shape, fortran, dtype = read_header(raw, max_header_size=_NPY_HEADER_CHARS)
    except _NPY_HEADER_ERRORS as e:
        raise unreadable(f"malformed .npy header ({_show(str(e), 80)[1:-1]})") from None
    if not all(type(d) is int and d >= 0 for d in shape):
        raise unreadable(f"malformed .npy header (shape {_show(shape)})")
    if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in "biufcU":
        raise unreadable(f"dtype {_show(str(dtype))} is not allowed; network file arrays hold "
                         f"plain numbers or text")
    return shape, fortran, dtype, 8 + len(length) + header_length


def _nesting_depth(text, opening, closing, quotes, limit=None):
    """The deepest nesting of ``opening``/``closing`` brackets in ``text`` outside strings
    delimited by ``quotes`` (a backslash escapes the next character inside a string), without
    recursion; stops counting once it exceeds ``limit``."""
    specials = re.compile("[" + re.escape(opening + closing + quotes) + r"\\]")
    depth = deepest = 0
    quote = None
    skip = -1
    for m in specials.finditer(text):
        i, c = m.start(), m.group()
        if i == skip:
            continue
        if quote is not None:
            if c == "\\":
                skip = i + 1
            elif c == quote:
                quote = None
        elif c in quotes:
            quote = c
        elif c in opening:
            depth += 1
            deepest = max(deepest, depth)
            if limit is not None and deepest > limit:
                break
        elif c in closing:
            depth -= 1
    return deepest


# The arrays, from their headers (before their data is read)

def _check_patterns(shape, dtype, fail):
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 2:
        raise fail(f"patterns must be a (P, N) array with P >= 1 and N >= 2, not shape {shape}")
    if dtype.kind != "i":
        raise fail(f"patterns must be signed integers (-1 and +1), not {dtype}")


def _check_alpha(shape, dtype, fail, patterns_shape):
    if shape != patterns_shape:
        raise fail(f"alpha has shape {shape} but patterns have shape {patterns_shape}; they "
                   f"must agree")
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise fail(f"alpha must be floating point (float32 or float64), not {dtype}")


def _check_loss_history(shape, dtype, fail):
    if len(shape) != 1:
        raise fail(f"loss_history must be a one-dimensional array, not shape {shape}")
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise fail(f"loss_history must be floating point (float32 or float64), not {dtype}")


def _check_meta(shape, dtype, fail):
    if shape != () or dtype.kind != "U":
        raise fail(f"unreadable network file (meta must be a 0-d unicode string, not shape "
                   f"{shape} of {dtype})")
    if dtype.itemsize // 4 > MAX_META_CHARS:
        raise fail(f"metadata of {dtype.itemsize // 4} characters, more than the "
                   f"{MAX_META_CHARS} allowed")


def _meta_text(data, dtype, unreadable):
    """The string of a 0-d unicode array's ``data``: UTF-32 code units, each a character."""
    if dtype.itemsize == 0:
        return ""
    codes = np.frombuffer(data, dtype=dtype.byteorder.replace("|", "=") + "u4")
    if np.any((codes >= 0x110000) | ((codes >= 0xD800) & (codes < 0xE000))):
        raise unreadable("meta holds invalid characters")
    return str(np.frombuffer(data, dtype=dtype)[0])


# The metadata

_TOP_ENTRIES = ("format", "version", "gamma", "n", "p", "quantizer", "training")


def _nonnegative_integer(v):
    return _integer(v) and v >= 0


def _positive_real(v):
    return _real(v) is not None and v > 0


def _nonnegative_real(v):
    return _real(v) is not None and v >= 0


#: Entries of the training record that khop reads: ``{key: (what it must be, check)}``.
TRAINING_ENTRIES = {
    "seed": ("a non-negative integer", _nonnegative_integer),
    "gamma": ("a positive finite number", _positive_real),
    "eta": ("a positive finite number", _positive_real),
    "lam": ("a non-negative finite number", _nonnegative_real),
    "epochs": ("a positive integer", lambda v: _integer(v) and v >= 1),
    "gradient": (f"one of {', '.join(GRADIENTS)}", lambda v: isinstance(v, str)
                 and v in GRADIENTS),
    "dtype": (f"one of {', '.join(DTYPES)}", lambda v: isinstance(v, str) and v in DTYPES),
    "tol": ("null or a positive finite number", lambda v: v is None or _positive_real(v)),
    "epochs_run": ("a non-negative integer", _nonnegative_integer),
    "stopped_early": ("true or false", lambda v: isinstance(v, bool)),
    "final_loss": ("a finite number", lambda v: _real(v) is not None),
    "wall_seconds": ("a non-negative finite number", _nonnegative_real),
}
# The entries of a recipe (khop.model.train.recipe) a record must hold to match one: an absent
# entry whose value may be null (tol) matches null (khop.model.train.same_recipe).
_RECIPE = ("seed", *(f.name for f in fields(TrainConfig) if f.default is not None))
_RUN = ("epochs_run", "stopped_early", "final_loss", "wall_seconds")


def _no_constants(token):
    raise ValueError(f"{token} is not a JSON number")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {_show(text)} is out of range")
    return value


def _unique_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {_show(key)} appears twice")
        out[key] = value
    return out


def _parse_meta(text, fail):
    """The metadata object of ``text``, its every entry khop reads checked."""
    if _nesting_depth(text, "[{", "]}", '"', MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise fail(f"metadata nests arrays and objects more than {MAX_JSON_DEPTH} deep")
    try:
        meta = json.loads(text, parse_constant=_no_constants, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as e:
        raise fail(f"metadata is not valid JSON ({_show(str(e), 80)[1:-1]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise fail(f"not a khop network file (format {_show(found)})")
    version = meta.get("version")
    if not _integer(version) or version not in READ_VERSIONS:
        readable = " and ".join(map(str, READ_VERSIONS))
        raise fail(f"network format version {_show(version)} is not supported (this khop "
                   f"reads versions {readable})")
    missing = [k for k in _TOP_ENTRIES if k not in meta
               and not (k == "quantizer" and READ_VERSIONS[version])]
    if missing and missing != ["quantizer"]:
        raise fail(f"metadata lacks {', '.join(missing)}")
    if not READ_VERSIONS[version]:
        quantizer = meta.get("quantizer")
        if not (isinstance(quantizer, str) and quantizer in QUANTIZERS):
            raise fail(f"quantizer must be one of {', '.join(QUANTIZERS)}, not "
                       f"{_show(quantizer)}")
    for key in ("n", "p"):
        if not _integer(meta[key]):
            raise fail(f"metadata {key} must be an integer, not {_show(meta[key])}")
    _check_training(meta["training"], fail)
    return meta


def _check_training(training, fail):
    if not isinstance(training, dict):
        raise fail(f"metadata training must be an object, not {_show(training)}")
    for key, (what, ok) in TRAINING_ENTRIES.items():
        if key in training and not ok(training[key]):
            raise fail(f"training {key} must be {what}, not {_show(training[key])}")
    if all(k in training for k in _RECIPE):
        missing = [k for k in _RUN if k not in training]
        if missing:
            raise fail(f"training holds a whole recipe but lacks {', '.join(missing)} (a "
                       f"record written by training holds {', '.join(_RUN)})")
