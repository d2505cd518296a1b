"""Engine speed: knowledge-base load time and single-profile `recommend` latency.

Prints load time (cold, in a fresh process), then p50/p99/max latency over the bundled examples
and over 10,000 seeded random valid profiles. For scale it prints, from the same run, the
latency of validating the profile alone (the floor any recommend call pays) and of a JSON round
trip of the output. Goals (2-core machine): load <= 300 ms, p50 <= 1 ms, p99 <= 5 ms.

    .venv/bin/python benchmarks/recommend.py [--n 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SITES = ["bone", "liver", "lung", "pleura", "brain", "lymph_nodes", "skin", "soft_tissue", "chest_wall"]
DRUGS = ["letrozole", "anastrozole", "fulvestrant", "palbociclib", "ribociclib", "abemaciclib", "tamoxifen",
         "exemestane", "everolimus", "paclitaxel", "docetaxel", "capecitabine", "trastuzumab", "pertuzumab",
         "trastuzumab_deruxtecan", "ado_trastuzumab_emtansine", "tucatinib", "sacituzumab_govitecan",
         "eribulin", "doxorubicin", "cyclophosphamide", "carboplatin", "pembrolizumab", "olaparib"]


def random_profile(rng: random.Random) -> dict[str, Any]:
    sex = "male" if rng.random() < 0.02 else "female"
    ihc = rng.choice(["0", "ultralow", "1+", "2+", "3+", "unknown"])
    ish = rng.choice(["amplified", "not_amplified", "not_done"]) if ihc != "3+" else "not_done"
    profile: dict[str, Any] = {
        "sex": sex,
        "age": rng.randint(28, 90),
        "tumor": {
            "er": rng.choice(["positive", "positive", "positive", "low", "negative", "unknown"]),
            "pr": rng.choice(["positive", "negative", "unknown"]),
            "her2": {"ihc": ihc, "ish": ish},
            "pik3ca": rng.choice(["mutated", "wild_type", "unknown"]),
            "esr1": rng.choice(["mutated", "wild_type", "unknown"]),
            "germline_brca": rng.choice(["brca1", "brca2", "negative", "unknown", "unknown"]),
            "msi": rng.choice(["high", "stable", "unknown"]),
        },
        "disease": {
            "presentation": rng.choice(["de_novo", "recurrent"]),
            "sites": rng.sample(SITES, rng.randint(1, 3)),
            "visceral_crisis": rng.random() < 0.05,
        },
        "health": {"ecog": rng.randint(0, 3)},
        "history": {
            "early": [{"drugs": rng.sample(DRUGS, 2), "months_since_end": rng.choice([0, 6, 12, 13, 40])}]
            if rng.random() < 0.5 else [],
            "metastatic": [{"drugs": rng.sample(DRUGS, 2), "outcome": "progressed"} for _ in range(rng.randint(0, 3))],
        },
        "current_medications": rng.sample(["warfarin", "paroxetine", "sertraline", "metformin", "omeprazole"], 2),
    }
    if sex == "female":
        profile["menopausal_status"] = rng.choice(["pre", "peri", "post", "unknown"])
    if rng.random() < 0.3:
        profile["tumor"]["pdl1_cps"] = rng.choice([1, 5, 10, 20])
    return profile


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn: Any, items: list[Any]) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - start) * 1000)
    return out


def report(label: str, ms: list[float]) -> None:
    print(f"  {label:<44} n={len(ms):>6}  p50={percentile(ms, 0.5):7.3f} ms  p99={percentile(ms, 0.99):7.3f} ms"
          f"  max={max(ms):7.2f} ms  mean={statistics.fmean(ms):.3f} ms")


def cold_load_ms(cache_dir: str | None = None) -> tuple[float, float]:
    """Median (import, load) in fresh processes; with `cache_dir` set, each run starts with it empty."""
    import os
    import shutil
    import tempfile

    code = ("import time; t0=time.perf_counter(); import mbcnav.engine as e; t1=time.perf_counter(); "
            "from mbcnav.knowledge.loader import knowledge; knowledge(); t2=time.perf_counter(); "
            "print((t1-t0)*1000, (t2-t1)*1000)")
    runs = []
    for _ in range(5):
        env = dict(os.environ)
        if cache_dir is not None:
            empty = tempfile.mkdtemp(dir=cache_dir)
            env["MBCNAV_CACHE_DIR"] = empty
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        runs.append(out.stdout.split())
        if cache_dir is not None:
            shutil.rmtree(empty)
    return statistics.median(float(r[0]) for r in runs), statistics.median(float(r[1]) for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        _, uncached_ms = cold_load_ms(cache_dir=scratch)
    cold_load_ms()  # make sure the compiled cache exists
    import_ms, load_ms = cold_load_ms()
    print(f"knowledge base: import {import_ms:.0f} ms; load from the compiled cache {load_ms:.0f} ms; "
          f"load and compile from YAML (no cache) {uncached_ms:.0f} ms (medians of 5 fresh processes)")

    from mbcnav.engine import recommend
    from mbcnav.knowledge.loader import knowledge
    from mbcnav.profile import parse_profile

    kb = knowledge()
    print(f"  {len(kb.rules)} rules, {len(kb.conditions)} distinct conditions, {len(kb.drugs)} drugs, "
          f"version {kb.version}")
    examples = [json.loads(p.read_text()) for p in sorted((ROOT / "examples").glob("*.json"))]
    rng = random.Random(args.seed)
    generated = [random_profile(rng) for _ in range(args.n)]
    valid = []
    for profile in generated:
        try:
            parse_profile(profile)
            valid.append(profile)
        except ValueError:
            pass
    for profile in examples + valid[:200]:
        recommend(profile)  # warm caches
    print("latency per profile:")
    report("recommend, bundled examples (x50)", timed(recommend, examples * 50))
    report("recommend, generated profiles", timed(recommend, valid))
    report("baseline: validate profile only", timed(parse_profile, valid))
    outputs = [recommend(p) for p in valid[:2000]]
    report("baseline: JSON dump of the output", timed(json.dumps, outputs))
    print(f"({len(generated) - len(valid)} of {len(generated)} generated profiles were invalid and skipped)")


if __name__ == "__main__":
    main()
