"""Cohort evaluation: the one-patient rules over whole populations (docs/cohort.md).

`mbcnav cohort evaluate | synth | report` (cli.py); engines in local.py (Polars) and spark.py.
"""

# Rows per batch on the local engine: about 1.6 GiB peak for 10M patients with two batches in
# flight (benchmarks/cohort.py); 250k-row batches peak at 1.0 GiB and are 5-10% slower.
DEFAULT_BATCH_ROWS = 500_000
# Batches evaluated at once by the local engine. Two keep two cores busy (numpy's share of a batch
# runs on one); more add memory (each batch in flight holds about 0.3 GiB at 500k rows).
EVALUATION_THREADS = 2


def keep_freed_memory() -> None:
    """Ask Polars' allocator (jemalloc) to keep freed pages for reuse, for a batch process.

    By default it hands them back to the system at once, and every batch then faults them in again
    (the kernel zeroes each page): about 7% of the CPU of a 10M-patient run, for ~0.1 GiB more peak
    memory. jemalloc reads the setting when Polars loads, so this only acts before the first
    `import polars`; a setting already in the environment wins. Not for long-lived processes.
    """
    import os
    import sys

    if "polars" not in sys.modules:
        os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
