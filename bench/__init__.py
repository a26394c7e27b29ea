"""Benchmarks that print their figures: `python -m bench` runs them all (see bench/__main__.py)."""

import os

# As `iopbot run` does (bot/cli/__init__.py), before NumPy is first imported: the semantic layer's
# small matrix products on one BLAS thread. Left to OpenBLAS (a thread per core, spinning between
# products) one short message cost ~120 ms of CPU instead of ~15, and the benchmarks measured that
# instead of the bot as it runs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
