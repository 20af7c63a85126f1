"""``python -m searcher``: the ``searcher`` command."""

from .cli import console

if __name__ == "__main__":  # not when a spawned worker imports it as __mp_main__
    console()
