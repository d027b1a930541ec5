"""The process environment, changed for the length of a block.

Tools khop drives (cocotb's runner, Amaranth's toolchain lookup, worker processes' BLAS) read
``os.environ``; :func:`environment` sets variables for a block and restores what was there
before, also when the block raises.
"""

import os
from contextlib import contextmanager

__all__ = ["environment"]


@contextmanager
def environment(values):
    """``os.environ`` updated with ``values`` (``{name: str}``) inside the block, then restored
    (a variable that was unset is unset again)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
