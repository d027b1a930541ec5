"""Atomic outputs: a file or a directory appears whole, or not at all.

Every file khop writes for a user (network files, Verilog, JSON/CSV reports, plots, bitstream
directories) goes through one of these, so a crash, a full disk or Ctrl-C never leaves a
half-written result where a tool would read it:

- :func:`atomic_write` writes text or bytes to a temporary file next to the target and renames it
  over the target.
- :func:`atomic_path` yields a temporary path next to the target for a writer that wants a file
  name (``numpy.savez``, ``Figure.savefig``), then renames it over the target.
- :func:`atomic_directory` yields an empty temporary directory next to the target; when the block
  ends without an exception the directory replaces the target as a whole.

Temporary names start with ``.`` and end in ``.tmp`` so they are hidden and easy to clean.
"""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "atomic_path", "atomic_directory"]


@contextmanager
def atomic_path(path, mode=0o644):
    """Yield a temporary ``Path`` in ``path``'s directory; rename it to ``path`` on success.

    The temporary file keeps ``path``'s suffix (some writers choose the format from it). The
    parent directory is created if needed. On an exception the temporary file is removed and the
    target is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path, data, mode=0o644):
    """Write ``data`` (``str`` as UTF-8, or ``bytes``) to ``path`` atomically; returns ``path``."""
    with atomic_path(path, mode) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


@contextmanager
def atomic_directory(path):
    """Yield an empty temporary directory that replaces the directory ``path`` as a whole.

    On success an existing ``path`` is first renamed aside, the new directory renamed into place,
    and the old one removed; on an exception the temporary directory is removed and ``path`` is
    untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        tmp.chmod(0o755)
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp",
                                        dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
