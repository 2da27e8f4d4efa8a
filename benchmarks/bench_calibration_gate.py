"""The calibration gate (pipeline/calibration_checks.py) on a model trained by a config.

Reads the registered version a ``desist train risk`` run made, scores the
config's own test split (the same rows: same split seed), and runs the gate
with its default thresholds overall and by every audited attribute; then the
same on the selected family's out-of-fold scores over the training rows
(re-fitted here the way the job cross-fits; note the Platt map was learnt
on those very scores, so their slope and intercept are 1 and 0 by
construction and only the shape is tested there).

Nothing is tuned: the thresholds come from the gate's false-alarm rate.

Run (after training into the same ``DESIST_HOME``)::

    PYTHONPATH=$PWD python -m benchmarks.bench_calibration_gate --config configs/compas.toml \
        --data ../shared/data/compas/compas-scores-two-years.csv --version 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.common import save
from models.calibration import ScoreCalibratedClassifier
from models.contract.fetch import fetch_model
from models.contract.tags import TAG_FAMILY
from models.risk import cross_fit
from pipeline.calibration_checks import CalibrationGateConfig, evaluate_calibration_gate
from pipeline.config import load_risk_config
from pipeline.datasets import load_job_data
from pipeline.jobs import split_frame
from pipeline.tracking import Tracker


def main() -> None:
    """Print and save the gate's record on the test split and out of fold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--version", default="latest")
    args = parser.parse_args()
    config = load_risk_config(args.config, data=args.data)
    tracker = Tracker.from_environment()
    data = load_job_data(config.dataset, [config.target], config.adapter)
    splits = split_frame(data.frame, config)
    uri = f"models:/{config.registered_model}/{args.version}"
    with tracker.activate():
        loaded = fetch_model(uri, ScoreCalibratedClassifier, tracking_uri=tracker.tracking_uri)
    family = loaded.tags.get(TAG_FAMILY, "")
    gate = CalibrationGateConfig()
    records = {}
    test = splits.test
    scored = {"test": (test, loaded.model.predict_proba(test)[:, 1])}
    settings = next((s for s in config.models if s.family == family), None)
    if config.cross_fitted and settings is not None:
        crossed = cross_fit(
            config.features,
            settings,
            splits.train,
            splits.train[config.target],
            method=config.calibration,
            folds=config.calibration_folds,
            seed=config.split.seed,
        )
        scored["out_of_fold"] = (splits.train, crossed.out_of_fold_probability)
    for name, (frame, probability) in scored.items():
        groups = {a: frame[a].astype(object).to_numpy() for a in config.audited_attributes}
        result = evaluate_calibration_gate(
            frame[config.target].to_numpy(dtype=int), probability, gate, groups
        )
        table = pd.DataFrame(result.as_rows())
        print(f"\n{loaded.label} ({family}), {name}: {len(frame):,} people")
        print(f"gate {'PASSES' if result.passed else 'FAILS'}; ", end="")
        print(f"each test at {result.per_test_alpha:.4g} (family-wise {result.false_alarm_rate})")
        with pd.option_context("display.width", 200, "display.max_colwidth", 70):
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        records[name] = {"passed": result.passed, "rows": result.as_rows()}
    save("calibration_gate", {"model": loaded.label, "family": family, **records})


if __name__ == "__main__":
    main()
