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
    """Ask the allocators of Polars (jemalloc) and Arrow (mimalloc) to keep freed pages for reuse,
    for a batch process.

    By default they hand them back to the system soon, and every batch then faults them in again
    (the kernel zeroes each page): for a 10M-patient run Polars' share cost about 7% of the CPU,
    and Arrow's (the Parquet decoder's buffers) about 100,000 more faults and 1.4 s of system
    time, for ~0.1 GiB more peak memory. Each allocator reads its setting when its library
    loads, so this only acts before the first `import polars` / `import pyarrow`; a setting
    already in the environment wins. Not for long-lived processes.
    """
    import os
    import sys

    if "polars" not in sys.modules:
        os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")
