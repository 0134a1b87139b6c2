"""Settings that must be in place before any module imports ``torch`` or ``dgl``: DGL's
PyTorch backend, and OpenMP threads that stop spinning soon after they run out of work.

torch's CPU wheels use GNU OpenMP, whose idle worker threads spin 300,000 times before they
sleep. On an idle machine that costs nothing; on a busy one (another job on the cores, the
test suite's two workers) the spinning threads take the cores from the threads doing the
work: one training epoch beside another two-thread torch job took 56.1 s, against 16.7 s
with ``--threads 1``. Spinning 3,000 times (``GOMP_SPINCOUNT``) keeps the idle speed (13.0 s
against 13.5 s) and gives the busy one (18.2 s); ``OMP_WAIT_POLICY=PASSIVE`` (no spinning)
is as good busy and 4-8% slower idle (``bench/bench_threads.py``, docs/benchmarks.md). A wait
policy or spin count the user has set is kept. It takes effect only if ``zoo`` is imported
before ``torch`` (the ``zoo`` command always is).
"""

import os

SPIN_COUNT = "3000"

os.environ.setdefault("DGLBACKEND", "pytorch")
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
