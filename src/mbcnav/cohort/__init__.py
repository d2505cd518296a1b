"""Cohort evaluation: the one-patient rules over whole populations (docs/cohort.md).

`mbcnav cohort evaluate | synth | report` (cli.py); engines in local.py (Polars) and spark.py.
"""

# Rows per batch on the local engine. 250k ran 10M patients as fast as 500k (medians 7.39 and
# 7.40 s, six alternating runs each) at 0.95 GiB peak instead of 1.47; 125k was slower (7.9-8.6 s):
# per-batch costs start to show (ninth session).
DEFAULT_BATCH_ROWS = 250_000
# Batches evaluated at once by the local engine. Two keep two cores busy (numpy's share of a batch
# runs on one); more add memory (each batch in flight holds about 0.15 GiB at 250k rows).
EVALUATION_THREADS = 2

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # mallopt's parameters (glibc's malloc.h)


def keep_freed_memory() -> None:
    """Ask the process's allocators to keep freed pages for reuse, for a batch process.

    By default they hand large blocks back to the system soon, and every batch then faults them
    in again (the kernel zeroes each page). For a 10M-patient run: Polars' jemalloc cost about 7%
    of the CPU; Arrow's mimalloc (the Parquet decoder's buffers) about 100,000 more faults and
    1.4 s of system time; the C library's malloc (numpy's arrays) about 75,000 faults and 0.5-1 s
    of system time; together about 0.2 GiB more peak memory. jemalloc and mimalloc read their
    setting when their library loads, so those only act before the first `import polars` /
    `import pyarrow` (a setting already in the environment wins); glibc's (`mallopt`) acts from
    the call on. Not for long-lived processes.
    """
    import ctypes
    import os
    import sys

    if "polars" not in sys.modules:
        os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")
    try:
        mallopt = ctypes.CDLL(None).mallopt   # glibc; other C libraries have their own ways
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 256 << 20)   # blocks up to 256 MiB from the heap, not fresh mappings
    mallopt(M_TRIM_THRESHOLD, 1 << 30)     # and freed heap memory kept for the next batch
