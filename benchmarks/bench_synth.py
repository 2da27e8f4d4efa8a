"""Time the synthetic cohort generator on 1,000,000 rows (target: at most 10 s).

Reference in the same run: writing a table of the same shape filled with
plain uniform random numbers to Parquet, the least any generator must do.

Run: ``.venv/bin/python benchmarks/bench_synth.py [--rows N]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import best_of, save
from data.synthetic import SynthConfig, generate_cohort, write_cohort

TARGET_SECONDS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = SynthConfig(rows=args.rows, seed=2026)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cohort.parquet"
        generate_only = best_of(args.repeats, lambda: generate_cohort(config))
        end_to_end = best_of(args.repeats, lambda: write_cohort(config, out))
        cohort, truth = generate_cohort(config)
        columns = cohort.shape[1] + truth.shape[1]

        def reference() -> None:
            rng = np.random.default_rng(0)
            frame = pd.DataFrame(
                rng.random((args.rows, columns)), columns=list(map(str, range(columns)))
            )
            frame.to_parquet(Path(tmp) / "reference.parquet")

        reference_seconds = best_of(args.repeats, reference)

    save(
        "synth",
        {
            "rows": args.rows,
            "columns_written": columns,
            "generate_seconds": round(generate_only, 3),
            "generate_and_write_parquet_seconds": round(end_to_end, 3),
            "reference_random_table_to_parquet_seconds": round(reference_seconds, 3),
            "ratio_to_reference": round(end_to_end / reference_seconds, 2),
            "target_seconds": TARGET_SECONDS,
            "meets_target": end_to_end <= TARGET_SECONDS,
        },
    )


if __name__ == "__main__":
    main()
