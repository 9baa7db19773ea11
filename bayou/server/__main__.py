"""``python -m bayou.server APP [options]``: the ``bayou`` command."""

from bayou.server.cli import main

# Guarded: worker processes are spawned with multiprocessing, which re-imports
# the main module as ``__mp_main__``.
if __name__ == "__main__":
    main()
