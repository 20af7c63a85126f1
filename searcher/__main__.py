"""``python -m searcher``: the ``searcher`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # not when a spawned worker imports it as __mp_main__
    sys.exit(main())
