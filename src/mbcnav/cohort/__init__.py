"""Cohort evaluation: the one-patient rules over whole populations (docs/cohort.md).

`mbcnav cohort evaluate | synth | report` (cli.py); engines in local.py (Polars) and spark.py.
"""
