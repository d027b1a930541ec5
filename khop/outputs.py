"""Atomic outputs: a file, a set of files or a directory appears whole, or not at all.

Every file khop writes for a user (network files, Verilog, JSON/CSV reports, plots, bitstream
directories) goes through one of these, so a crash, a full disk or Ctrl-C never leaves a
half-written result where a tool would read it:

- :func:`atomic_write` writes text or bytes to a temporary file next to the target and renames it
  over the target.
- :func:`atomic_path` yields a temporary path next to the target for a writer that wants a file
  name (``numpy.savez``, ``Figure.savefig``), then renames it over the target.
- :func:`atomic_files` / :func:`write_files` do the same for several files that belong together
  (``khop_top.v`` and ``khop_top.json``): every file is written to its temporary first, then all
  are renamed; if a rename fails, the ones already renamed are rolled back (the files they
  replaced restored), so the set appears together or not at all.
- :func:`atomic_directory` yields an empty temporary directory next to the target; when the block
  ends without an exception the directory replaces the target as a whole.

Missing parent directories are created, and removed again when the output fails: a refused or
failed command leaves no empty directory behind. A failure to write is an :class:`OutputError`
that names the path the user gave and says what is wrong with it ("build/x is not a directory",
"permission denied", "no space left on device"), never a temporary file's name.

Temporary names start with ``.`` and end in ``.tmp`` so they are hidden and easy to clean.

JSON that khop prints or writes goes through :func:`to_json`: standard JSON only, a float that is
not finite becomes ``null`` (Python's ``json`` would write ``NaN`` or ``Infinity``, which JSON
parsers reject).
"""

import errno
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from khop.model.errors import KhopError

__all__ = ["OutputError", "atomic_write", "atomic_path", "atomic_files", "write_files",
           "atomic_directory", "output_directory", "to_json", "finite_json"]

#: What an ``errno`` means for an output path, in a user's words.
_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "file name too long",
    errno.EISDIR: "it is a directory",
    errno.EEXIST: "it exists and cannot be replaced",
    errno.ENOTEMPTY: "it exists and cannot be replaced",
    errno.EXDEV: "cannot be renamed across file systems",
    errno.EIO: "input/output error",
}


class OutputError(KhopError, OSError):
    """An output that cannot be written, said in the user's terms: ``cannot write PATH: why``.

    Also an ``OSError`` (with the ``errno`` of the cause), so code that handles file errors
    handles it.
    """

    def __init__(self, path, cause):
        self.path, self.cause = Path(path), cause
        super().__init__(f"cannot write {path}: {_reason(self.path, cause)}")
        self.errno = getattr(cause, "errno", None)

    def __reduce__(self):  # raised in a worker process, re-raised in the parent
        return type(self), (self.path, self.cause)


def _reason(path, cause):
    code = getattr(cause, "errno", None)
    if code in (errno.ENOTDIR, errno.ENOENT):
        for parent in (path, *path.parents) if code == errno.ENOTDIR else path.parents:
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    return f"{parent} is not a directory"
                break
        if code == errno.ENOENT:
            return "a directory on its way does not exist"
    if code == errno.EISDIR and path.is_dir():
        return f"{path} is a directory"
    if code in _REASONS:
        return _REASONS[code]
    if code is not None:
        return os.strerror(code).lower()
    return " ".join(str(cause).split()) or type(cause).__name__


def _make_parents(directory):
    """Create ``directory`` and its missing parents; returns those created, outermost first."""
    directory = Path(directory)
    missing = []
    for d in (directory, *directory.parents):
        if d.exists() or d.is_symlink():
            break
        missing.append(d)
    created = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
    except FileExistsError:  # a concurrent writer made it
        pass
    except OSError:
        _remove_dirs(created)
        raise
    return created


def _remove_dirs(created):
    """Remove the directories :func:`_make_parents` created, innermost first, where empty."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            break


def _own(error, *tmps):
    """Whether ``error`` (raised by a writer) is about one of the temporaries (or no file)."""
    name = getattr(error, "filename", None)
    return name is None or any(os.fspath(name) == os.fspath(t) for t in tmps)


@contextmanager
def atomic_files(paths, mode=0o644):
    """Yield ``{path: temporary Path}`` for ``paths``; rename them all on success, or none.

    Each temporary is in its target's directory and keeps its suffix (some writers choose the
    format from it). After the block, every temporary is renamed over its target; when a rename
    fails, the targets already renamed are restored (or removed, if they did not exist). On an
    exception the temporaries are removed and the targets are left as they were. Errors about
    the outputs (including a writer's on a temporary) are :class:`OutputError`.
    """
    paths = [Path(p) for p in paths]
    created, tmps = [], {}
    try:
        for path in paths:
            try:
                created += _make_parents(path.parent)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.",
                                           suffix=f".tmp{path.suffix}", dir=path.parent)
            except OSError as e:
                raise OutputError(path, e) from None
            os.close(fd)
            tmps[path] = Path(tmp)
        try:
            yield dict(tmps)
        except OutputError:
            raise
        except OSError as e:
            if not _own(e, *tmps.values()):
                raise
            target = next((p for p, t in tmps.items()
                           if os.fspath(t) == os.fspath(e.filename or "")), paths[0])
            raise OutputError(target, e) from None
        for path, tmp in tmps.items():
            try:
                os.chmod(tmp, mode)
            except OSError as e:
                raise OutputError(path, e) from None
        _rename_all(tmps)
        created = []
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        _remove_dirs(created)


def _rename_all(tmps):
    """Rename every temporary over its target; on a failure restore the targets renamed.

    A target that exists stays in place until its replacement is renamed over it (readers never
    miss it); with several files, a hard link (else a copy) of it is kept until all are renamed,
    to restore it.
    """
    done = []  # (target, backup or None)
    try:
        for path, tmp in tmps.items():
            backup = None
            try:
                if len(tmps) > 1 and path.exists() and not path.is_dir():
                    fd, backup = tempfile.mkstemp(prefix=f".{path.stem}.old.", suffix=".tmp",
                                                  dir=path.parent)
                    os.close(fd)
                    backup = Path(backup)
                    try:
                        backup.unlink()
                        os.link(path, backup)
                    except OSError:
                        shutil.copy2(path, backup)
                done.append((path, backup))
                os.replace(tmp, path)
            except OSError as e:
                if backup is not None and (path, backup) not in done:
                    backup.unlink(missing_ok=True)
                raise OutputError(path, e) from None
    except BaseException:
        for path, backup in reversed(done):
            try:
                if backup is not None:
                    os.replace(backup, path)
                else:
                    path.unlink(missing_ok=True)
            except OSError:
                pass
        raise
    for _, backup in done:
        if backup is not None:
            backup.unlink(missing_ok=True)


@contextmanager
def atomic_path(path, mode=0o644):
    """Yield a temporary ``Path`` in ``path``'s directory; rename it to ``path`` on success.

    :func:`atomic_files` for one file: the temporary keeps ``path``'s suffix, missing parent
    directories are created (and removed on failure); on an exception the temporary file is
    removed and the target is left as it was.
    """
    with atomic_files([path], mode) as tmps:
        yield tmps[Path(path)]


def _write(tmp, data):
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)


def atomic_write(path, data, mode=0o644):
    """Write ``data`` (``str`` as UTF-8, or ``bytes``) to ``path`` atomically; returns ``path``."""
    with atomic_path(path, mode) as tmp:
        _write(tmp, data)
    return Path(path)


def write_files(contents, mode=0o644):
    """Write ``{path: str or bytes}`` together (:func:`atomic_files`): all appear, or none.

    Returns the paths, in order.
    """
    with atomic_files(list(contents), mode) as tmps:
        for path, data in contents.items():
            _write(tmps[Path(path)], data)
    return [Path(p) for p in contents]


@contextmanager
def atomic_directory(path):
    """Yield an empty temporary directory that replaces the directory ``path`` as a whole.

    On success an existing ``path`` is first renamed aside, the new directory renamed into place,
    and the old one removed; on an exception the temporary directory (and any parent directory
    created for it) is removed and ``path`` is untouched. Errors of these steps are
    :class:`OutputError`; errors of the block itself pass unchanged.
    """
    path = Path(path)
    created = []
    try:
        created = _make_parents(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        _remove_dirs(created)
        raise OutputError(path, e) from None
    try:
        tmp.chmod(0o755)
        try:
            yield tmp
        except OSError as e:
            # A file of the new directory that cannot be written: named by its final path.
            inner = _inside(e.path if isinstance(e, OutputError) else e.filename, tmp)
            if inner is None:
                raise
            raise OutputError(path / inner, getattr(e, "cause", e)) from None
        _replace_directory(tmp, path)
        created = []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_dirs(created)


def _inside(name, directory):
    """``name`` relative to ``directory`` when it lies in it (``None`` otherwise)."""
    if name is None:
        return None
    try:
        inner = Path(os.fspath(name)).relative_to(directory)
    except (TypeError, ValueError):
        return None
    # A temporary file's name is not the user's: name the directory it is in.
    while inner.name.startswith(".") and ".tmp" in inner.name:
        inner = inner.parent
    return inner


def _replace_directory(tmp, path):
    """Rename the directory ``tmp`` to ``path``, an existing ``path`` removed only after."""
    old, replaced = None, False
    try:
        if path.exists() or path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp",
                                        dir=path.parent))
            os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
            replaced = True
        except OSError:
            if old is not None:
                os.replace(old / path.name, path)
            raise
    except OSError as e:
        raise OutputError(path, e) from None
    finally:
        # The previous directory goes once replaced; kept aside if it could not be put back.
        if old is not None and (replaced or not (old / path.name).exists()):
            shutil.rmtree(old, ignore_errors=True)


def finite_json(obj):
    """``obj`` with every float that is not finite (NaN, infinity) replaced by ``None``.

    Walks dicts, lists and tuples (tuples become lists, as JSON has them); NumPy scalars and
    arrays are converted with their ``tolist()``/``item()``.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # NumPy scalars and arrays
    if tolist is not None and not isinstance(obj, str | bytes):
        return finite_json(tolist())
    return obj


def to_json(obj, **kwargs):
    """``json.dumps(obj, **kwargs)`` as standard JSON: NaN and infinities become ``null``.

    ``allow_nan=False`` makes a non-finite float that slipped through an error, never an
    ``Infinity`` or ``NaN`` token that JSON parsers reject.
    """
    return json.dumps(finite_json(obj), allow_nan=False, **kwargs)


@contextmanager
def output_directory(path):
    """Create the directory ``path`` (and missing parents) for a command's outputs; yield it.

    For a command that writes several outputs over a long run: the directory is made up front,
    so an unwritable place fails before the work, as an :class:`OutputError`; when the block
    raises, the directories made here are removed again if they are still empty, so a refused
    or failed command leaves no empty directory behind.
    """
    path = Path(path)
    try:
        created = _make_parents(path)
    except OSError as e:
        raise OutputError(path, e) from None
    if not path.is_dir():
        raise OutputError(path, NotADirectoryError(errno.ENOTDIR, "not a directory"))
    try:
        yield path
    except BaseException:
        _remove_dirs(created)
        raise
