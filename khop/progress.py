"""Progress bars on stderr; they hide themselves when stderr is not a terminal."""

import sys
from contextlib import contextmanager

from tqdm import tqdm

__all__ = ["training_progress"]


@contextmanager
def training_progress(epochs, desc="train"):
    """Yield a ``progress(epoch, loss)`` callback for :func:`khop.model.klr.train_klr`."""
    with tqdm(total=epochs, desc=desc, unit="epoch", file=sys.stderr, disable=None,
              leave=False, dynamic_ncols=True) as bar:
        def progress(epoch, loss):
            bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
            bar.update(epoch - bar.n)

        yield progress
