"""Cohort evaluation: the one-patient rules over whole populations (docs/cohort.md).

`mbcnav cohort evaluate | synth | report` (cli.py); engines in local.py (Polars) and spark.py.
"""

# Rows per batch on the local engine: about 1.1 GiB peak for 10M patients (benchmarks/cohort.py);
# 1M-row batches are ~7% faster but peak at 1.8 GiB, too close to the 2 GiB goal.
DEFAULT_BATCH_ROWS = 500_000
