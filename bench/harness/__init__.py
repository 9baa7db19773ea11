"""The benchmark orchestrator: stdlib only, so ``python3 bench/run.py`` needs no venv.

Servers and load clients run inside ``/work/main/.venv-bench`` (see :mod:`harness.env`);
this package only starts them, measures them from ``/proc`` and writes the reports.
"""
