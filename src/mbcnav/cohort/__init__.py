"""Cohort evaluation: the one-patient rules over whole populations (docs/cohort.md).

`mbcnav cohort evaluate | synth | report` (cli.py); engines in local.py (Polars) and spark.py.
"""

# Rows per batch on the local engine: about 1.6 GiB peak for 10M patients with two batches in
# flight (benchmarks/cohort.py); 250k-row batches peak at 1.0 GiB and are 5-10% slower.
DEFAULT_BATCH_ROWS = 500_000
# Batches evaluated at once by the local engine. Two keep two cores busy (numpy's share of a batch
# runs on one); more add memory (each batch in flight holds about 0.3 GiB at 500k rows).
EVALUATION_THREADS = 2
