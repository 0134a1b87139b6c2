"""Settings that must be in place before any module imports ``torch`` or ``dgl``: DGL's
PyTorch backend, and OpenMP threads that sleep while they wait.

By default an OpenMP worker thread of torch spins for a while after each parallel region.
On an idle machine that costs nothing; on a busy one (another job on the cores, the test
suite's two workers) the spinning threads take the cores from the threads doing the work,
and training ran 9 times slower with two threads than with one
(``bench/bench_threads.py``, docs/benchmarks.md). ``OMP_WAIT_POLICY=PASSIVE`` lets them sleep;
a value the user has set is kept. It takes effect only if ``zoo`` is imported before
``torch`` (the ``zoo`` command always is).
"""

import os

os.environ.setdefault("DGLBACKEND", "pytorch")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
