"""RMIA's pairwise scoring: time and peak memory as N (records) and Z (population) grow.

The score of each record is the fraction of population records z with r(z) <= r(x);
miaudit sorts r(z) once and binary-searches, O((N + Z) log Z) time and O(N + Z) memory.

    python benchmarks/rmia_scaling.py
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
from _results import table, write_section

from miaudit.attacks.rmia import rmia_scores


def main() -> None:
    rows = []
    for n in (10_000, 100_000, 1_000_000):
        rng = np.random.default_rng(0)
        p_t = rng.random(2 * n)
        p_m = rng.random(2 * n) * 0.9 + 0.05
        population = np.zeros(2 * n, dtype=bool)
        population[n:] = True  # N = Z = n
        tracemalloc.start()
        t = time.perf_counter()
        ratio = p_t / p_m
        rmia_scores(ratio[~population], ratio[population])
        elapsed = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append({"records scored N": f"{n:,}", "population Z": f"{n:,}",
                     "seconds": f"{elapsed:.3f}",
                     "peak extra memory (MB)": f"{peak / 1e6:.1f}",
                     "an N x Z matrix would need (GB)": f"{n * n * 8 / 1e9:,.1f}"})
    body = (table(rows, list(rows[0])) + "\n\nMemory grows linearly with N + Z (tracemalloc "
            "peak during scoring); time grows as (N + Z) log Z.")
    write_section("RMIA scoring scale", body)


if __name__ == "__main__":
    main()
