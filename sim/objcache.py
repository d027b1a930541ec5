"""Verilator's ``OBJCACHE`` compiler wrapper: the run-time library from a cache.

The Verilator run-time library (``verilated.cpp``, ``verilated_vpi.cpp``, ...) is compiled into
every build directory, the same objects every time: a third to a half of a small design's
compile. ``verilated.mk`` runs every compile as ``$(OBJCACHE) $(CXX) ... -c -o X.o SOURCE``;
:func:`khop.sim.tools.verilator_environment` sets ``OBJCACHE`` to
``python -m khop.sim.objcache CACHE_DIR``. A compile of a file of the run-time library (a source
under ``$VERILATOR_ROOT/include``) is served from ``CACHE_DIR`` when the same command compiled it
before, else compiled and stored (:func:`store_object`: an entry appears whole or not at all);
every other compile (the design's model) runs unchanged.

This module is run once per compile: it imports nothing heavy.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from khop.outputs import atomic_directory

__all__ = ["object_key", "restore_object", "store_object", "main"]


def object_key(compile_args, source):
    """Cache key of one compile command (compiler, flags, output name) of ``source``: changes
    with any flag and with the source file itself (another wheel)."""
    st = Path(source).stat()
    text = json.dumps([list(compile_args), str(source), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def restore_object(cache_dir, key, obj):
    """Copy the cached object ``key`` (and its ``.d`` file) to ``obj``; False when not cached."""
    entry = Path(cache_dir) / key
    if not (entry / Path(obj).name).is_file():
        return False
    for f in entry.iterdir():
        shutil.copy(f, Path(obj).with_name(f.name))
    return True


def store_object(cache_dir, key, obj):
    """Store a freshly compiled ``obj`` (and its ``.d`` file) as entry ``key``; the entry appears
    whole or not at all, and one already there (another build's) is kept."""
    entry = Path(cache_dir) / key
    obj = Path(obj)
    if entry.is_dir() or not obj.is_file():
        return False
    files = [obj] + [f for f in [obj.with_suffix(".d")] if f.is_file()]
    try:
        with atomic_directory(entry) as tmp:
            for f in files:
                shutil.copy(f, Path(tmp) / f.name)
            if entry.is_dir():   # another build stored it meanwhile
                raise FileExistsError(entry)
    except OSError:
        return False
    return True


def _cacheable(args):
    """``(source, object)`` of a run-time library compile, else ``None``."""
    root = os.environ.get("VERILATOR_ROOT")
    if not root or "-c" not in args or "-o" not in args:
        return None
    sources = [a for a in args if a.endswith((".cpp", ".c"))]
    if len(sources) != 1:
        return None
    source = Path(sources[0]).resolve()
    if (Path(root) / "include").resolve() not in source.parents:
        return None
    return source, Path(args[args.index("-o") + 1])


def main(argv=None):
    """``objcache CACHE_DIR COMPILER ARGS...``; returns the compiler's exit status."""
    cache_dir, *command = sys.argv[1:] if argv is None else argv
    job = _cacheable(command)
    if job is None:
        return subprocess.call(command)
    source, obj = job
    key = object_key(command, source)
    if restore_object(cache_dir, key, obj):
        return 0
    status = subprocess.call(command)
    if status == 0:
        store_object(cache_dir, key, obj)
    return status


if __name__ == "__main__":
    sys.exit(main())
