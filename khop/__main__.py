"""``python -m khop``: the same command line as the ``khop`` script."""

import sys

from .cli import main

sys.exit(main())
