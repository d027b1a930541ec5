"""The network file: one ``.npz`` holding a trained kernel Hopfield network.

Arrays:

- ``patterns``: (P, N) int8, every entry -1 or +1
- ``alpha``: (P, N) float32 or float64, finite dual weights
- ``loss_history``: (E+1,) float64 training loss before the first and after each epoch
- ``meta``: 0-d unicode string holding a JSON object with at least ``format`` ("khop-network"),
  ``version`` (2), ``gamma``, ``n``, ``p``, ``quantizer`` (the name, in
  :data:`khop.model.compress.QUANTIZERS`, of the quantizer the network is meant to be quantized
  with where none is asked for) and a ``training`` object of hyper-parameters.

Version 1 files (khop before per-neuron thresholds) have no ``quantizer`` and still load: they
mean ``"paper"``, the one quantizer of that version. Saving writes version 2.

Writing is atomic (:func:`khop.outputs.atomic_path`): a temporary file in the target directory
is renamed over the target, so a crash never leaves a half-written network. Loading validates
everything and raises one :class:`NetworkFileError` naming the problem.
"""

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from khop.outputs import atomic_path

from .compress import DEFAULT_QUANTIZER, check_quantizer
from .errors import NetworkFileError

__all__ = ["StoredPatterns", "Network", "save_network", "load_network", "FORMAT_NAME",
           "FORMAT_VERSION", "READ_VERSIONS"]

FORMAT_NAME = "khop-network"
FORMAT_VERSION = 2
#: Versions :func:`load_network` reads, and the quantizer a file of each version means when its
#: metadata names none.
READ_VERSIONS = {1: "paper", 2: None}
_ARRAYS = ("patterns", "alpha", "loss_history", "meta")


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
    if not (isinstance(gamma, int | float) and np.isfinite(gamma) and gamma > 0):
        raise error(f"gamma must be a positive finite number, not {gamma!r}")


def save_network(path, net):
    """Write ``net`` to ``path`` atomically (:func:`khop.outputs.atomic_path`)."""
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "gamma": float(net.gamma),
            "n": net.n, "p": net.p, "quantizer": net.quantizer, "training": net.training}
    # Through a file object: np.savez given a name would append ".npz" to it.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, patterns=net.patterns.astype(np.int8), alpha=net.alpha,
                 loss_history=np.asarray(net.loss_history, dtype=np.float64),
                 meta=np.array(json.dumps(meta)))


def load_network(path):
    """Read and validate a network file; any problem raises :class:`NetworkFileError`."""
    path = Path(path)
    if not path.exists():
        raise NetworkFileError(f"{path}: no such network file")
    if path.is_dir():
        raise NetworkFileError(f"{path}: is a directory, not a network file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        # An .npz is a zip archive; anything else np.load would read as .npy or a pickle.
        if not magic:
            raise NetworkFileError(f"{path}: truncated or corrupt network file (empty file)")
        if magic != b"PK\x03\x04":
            raise NetworkFileError(f"{path}: not a khop network file (not an .npz archive)")
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _ARRAYS if k not in npz.files]
            if missing:
                raise NetworkFileError(f"{path}: not a khop network file "
                                       f"(missing {', '.join(missing)})")
            arrays = {k: npz[k] for k in _ARRAYS}
    except NetworkFileError:
        raise
    except (zipfile.BadZipFile, EOFError) as e:
        raise NetworkFileError(f"{path}: truncated or corrupt network file ({e})") from None
    except (ValueError, OSError, KeyError, zlib_error()) as e:
        raise NetworkFileError(f"{path}: unreadable network file ({e})") from None

    try:
        meta = json.loads(str(arrays["meta"]))
    except (json.JSONDecodeError, TypeError) as e:
        raise NetworkFileError(f"{path}: metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise NetworkFileError(f"{path}: not a khop network file (format {found!r})")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in READ_VERSIONS:
        readable = " and ".join(map(str, READ_VERSIONS))
        raise NetworkFileError(f"{path}: network format version {version!r} is not "
                               f"supported (this khop reads versions {readable})")
    quantizer = READ_VERSIONS[version] or meta.get("quantizer")
    try:
        check_quantizer(quantizer)
    except ValueError as e:
        raise NetworkFileError(f"{path}: {e}") from None
    patterns, alpha = arrays["patterns"], arrays["alpha"]
    gamma = meta.get("gamma")
    _validate(patterns, alpha, gamma, lambda msg: NetworkFileError(f"{path}: {msg}"))
    if (meta.get("n"), meta.get("p")) != (patterns.shape[1], patterns.shape[0]):
        raise NetworkFileError(f"{path}: metadata says N={meta.get('n')}, P={meta.get('p')} "
                               f"but the arrays are P={patterns.shape[0]}, N={patterns.shape[1]}")
    return Network(patterns=patterns.astype(np.int8), alpha=alpha, gamma=float(gamma),
                   training=meta.get("training", {}), loss_history=arrays["loss_history"],
                   quantizer=quantizer)


def zlib_error():
    import zlib
    return zlib.error
