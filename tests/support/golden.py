"""Golden scores: a fixed small model, fixed assessments, and their outputs pinned to 1e-9.

A seeded synthetic cohort trains, with fixed small settings, one model of
every risk family (scorecard, boosting, their blend; calibrated on a split,
or cross-fitted, isotonic and Platt) and the pathway-effect model, through
the public building blocks the training jobs use. The assessments in
``tests/golden/assessments.json`` are then scored the ways desist scores
them, and each way must give what ``tests/golden/expected.json`` pins:

- served: :class:`serving.scorer.Scorer` and
  :class:`serving.recommender.Recommender` on request-validated assessments;
- batch: :class:`models.explain.FastExplainer` and
  :func:`models.explain.top_contributions` on schema-checked rows, as
  ``pipeline/batch_scoring.py`` does;
- reference: :func:`models.explain.explain` (``predict_proba``) and
  :func:`models.explain.top_reasons`, and :meth:`PathwayEffectModel.estimate`
  with :func:`models.pathways.recommendations`.

The tests only read the pinned file. It is rewritten by one explicit command
that records why::

    make golden WHY="scikit-learn 1.10 changes the boosting's bins"
    # = python -m tests.support.golden --regenerate --why "..."

and the rewrite is committed with a message that says why. Without
``--regenerate`` the command compares and prints the differences.

Every fit and score runs under ``threadpool_limits(1)``, so the figures do
not depend on the machine's thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from threadpoolctl import threadpool_limits

from data.schema import ASSESSMENT_FIELDS, DEFAULT_FEATURES, TARGET_FIELD, make_assessment_model
from data.synthetic import SynthConfig, generate_cohort
from data.validation import check_rows
from models.bands import BAND_NAMES, RiskBands
from models.calibration import CalibrationMethod, ScoreCalibratedClassifier
from models.explain import FastExplainer, explain, top_contributions, top_reasons
from models.pathways import PathwayEffectModel, Recommendation, recommendations
from models.risk import (
    AnySettings,
    AverageSettings,
    BoostingSettings,
    ScorecardSettings,
    build_risk_model,
    calibrate,
    cross_fit,
)
from serving.recommender import Recommender
from serving.scorer import Scorer

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
ASSESSMENTS_PATH = GOLDEN_DIR / "assessments.json"
EXPECTED_PATH = GOLDEN_DIR / "expected.json"
REGENERATE = 'make golden WHY="..."  (python -m tests.support.golden --regenerate --why "...")'

#: Largest accepted difference of a pinned number (probability, contribution, estimate).
TOLERANCE = 1e-9

# --- The fixed training set and settings (changing any of them means regenerating) ---
COHORT = SynthConfig(rows=6_000, seed=13)
#: The first rows train, the rest calibrate (the cohort's rows are independent draws).
TRAIN_ROWS = 4_500
RISK_FEATURES: tuple[str, ...] = (*DEFAULT_FEATURES, "sex")
BANDS = RiskBands()
TOP_REASONS = 3
_SMALL_TREES: dict[str, Any] = {"max_iter": 40, "max_leaf_nodes": 8, "min_samples_leaf": 50}
PATHWAY_SETTINGS: dict[str, Any] = {"n_groups": 5, "max_iter": 30, "random_state": 0}


@dataclass(frozen=True)
class RiskSpec:
    """One pinned risk model: a family's settings and how it is calibrated.

    ``folds`` is ``None`` for a map learned on the held-out calibration rows
    (:func:`models.risk.calibrate`), else the folds of :func:`models.risk.cross_fit`
    on every row.
    """

    name: str
    settings: AnySettings
    method: CalibrationMethod
    folds: int | None

    def describe(self) -> dict[str, Any]:
        """Return the spec as JSON values: what the pinned file says it was made with."""
        return {
            "settings": self.settings.model_dump(mode="json"),
            "calibration": self.method,
            "cross_fit_folds": self.folds,
        }


RISK_SPECS: tuple[RiskSpec, ...] = (
    RiskSpec("scorecard", ScorecardSettings(max_bins=8), "isotonic", None),
    # Unconstrained, as configs/synthetic.toml fits it; the blend's booster keeps the default.
    RiskSpec("boosting", BoostingSettings(**_SMALL_TREES, monotonic=False), "isotonic", None),
    RiskSpec(
        "average",
        AverageSettings(members=(ScorecardSettings(max_bins=8), BoostingSettings(**_SMALL_TREES))),
        "isotonic",
        3,
    ),
    RiskSpec("scorecard_platt", ScorecardSettings(max_bins=8, C=0.5), "sigmoid", 3),
)
#: The pinned risk models' names, in spec order (what tests parametrise over).
RISK_MODELS = [spec.name for spec in RISK_SPECS]


def describe_spec() -> dict[str, Any]:
    """Return everything the pinned outputs depend on, besides the code and the libraries."""
    return {
        "cohort": COHORT.model_dump(mode="json"),
        "train_rows": TRAIN_ROWS,
        "risk_features": list(RISK_FEATURES),
        "bands": list(BANDS.cutoffs),
        "top_reasons": TOP_REASONS,
        "risk_models": {spec.name: spec.describe() for spec in RISK_SPECS},
        "pathway_model": {"features": list(DEFAULT_FEATURES), **PATHWAY_SETTINGS},
    }


def environment() -> dict[str, str]:
    """Return the versions the figures were computed with (a library upgrade may move them)."""
    packages = ("numpy", "scipy", "pandas", "scikit-learn")
    return {"python": platform.python_version(), **{name: version(name) for name in packages}}


@contextmanager
def one_thread() -> Iterator[None]:
    """Limit BLAS and OpenMP to one thread, so results do not depend on the machine."""
    with threadpool_limits(limits=1):
        yield


# --- Fitting ---


@dataclass(frozen=True, eq=False)
class GoldenModels:
    """The fitted golden models: risk models by spec name, and the pathway model."""

    risk: dict[str, ScoreCalibratedClassifier]
    pathways: PathwayEffectModel


def _fit_risk(spec: RiskSpec, cohort: pd.DataFrame) -> ScoreCalibratedClassifier:
    outcome = cohort[TARGET_FIELD]
    if spec.folds is not None:
        crossed = cross_fit(
            RISK_FEATURES, spec.settings, cohort, outcome, method=spec.method, folds=spec.folds
        )
        return crossed.model
    train, calibration = cohort.iloc[:TRAIN_ROWS], cohort.iloc[TRAIN_ROWS:]
    fitted = build_risk_model(RISK_FEATURES, spec.settings).fit(
        train, train[TARGET_FIELD].to_numpy(dtype=int)
    )
    return calibrate(fitted, calibration, calibration[TARGET_FIELD], spec.method)


@cache
def fit_golden_models() -> GoldenModels:
    """Fit every golden model once per process (a few seconds, on one thread)."""
    with one_thread():
        cohort, _ = generate_cohort(COHORT)
        risk = {spec.name: _fit_risk(spec, cohort) for spec in RISK_SPECS}
        pathways = PathwayEffectModel(DEFAULT_FEATURES, **PATHWAY_SETTINGS).fit(
            cohort, cohort[TARGET_FIELD].to_numpy(dtype=int)
        )
    return GoldenModels(risk=risk, pathways=pathways)


# --- The assessments, as each path receives them ---


def load_assessments() -> list[dict[str, Any]]:
    """Return the golden assessments, as JSON request bodies, in file order."""
    cases = json.loads(ASSESSMENTS_PATH.read_text())["cases"]
    return [case["assessment"] for case in cases]


def validated_assessments() -> list[BaseModel]:
    """Return the assessments validated by the request schema, as the service receives them."""
    schema = make_assessment_model()
    return [schema.model_validate(item) for item in load_assessments()]


def checked_frame() -> pd.DataFrame:
    """Return the assessments as rows that passed the schema's row checks, as batch scoring does.

    Raises
    ------
    AssertionError
        If any assessment is rejected: the golden cases must all be valid.
    """
    names = [spec.name for spec in ASSESSMENT_FIELDS]
    frame = pd.DataFrame.from_records(load_assessments(), columns=names)
    checked = check_rows(frame, source=str(ASSESSMENTS_PATH))
    if checked.violations:
        raise AssertionError(f"golden assessments rejected: {checked.violations}")
    return checked.valid


# --- Outputs: {subject_ref: record}, in the pinned file's shape ---

Record = dict[str, Any]


def _reason(feature: str, contribution: float) -> Record:
    # The direction rule of models.explain.Reason.direction and serving.scorer.
    direction = "raises" if contribution > 0 else "lowers"
    return {"feature": feature, "direction": direction, "contribution": contribution}


def served_risk(model: ScoreCalibratedClassifier) -> dict[str, Record]:
    """Score through :class:`serving.scorer.Scorer`, as the service does."""
    with one_thread():
        scores = Scorer(model, BANDS, TOP_REASONS).score(validated_assessments())
    return {
        score["subject_ref"]: {
            "risk_probability": score["risk_probability"],
            "risk_band": score["risk_band"],
            "reasons": [
                {k: reason[k] for k in ("feature", "direction", "contribution")}
                for reason in score["reasons"]
            ],
        }
        for score in scores
    }


def batch_risk(model: ScoreCalibratedClassifier) -> dict[str, Record]:
    """Score as batch scoring does: encoded rows, one attribution walk, calibrated logit."""
    valid = checked_frame()
    with one_thread():
        explainer = FastExplainer(model, threads=1)
        X = explainer.encoder.transform(valid)
        logit, contributions = explainer.logit_and_contributions(X)
        probability = model.calibrate_scores(logit)
        band = BANDS.band_index(probability)
        # Assessed fields rank first, as in batch scoring and the service.
        limit = min(TOP_REASONS, len(explainer.features))
        order, picked = top_contributions(contributions, limit, ~np.isnan(X))
    return {
        ref: {
            "risk_probability": float(probability[i]),
            "risk_band": BAND_NAMES[int(band[i])],
            "reasons": [
                _reason(explainer.features[int(j)], float(c))
                for j, c in zip(order[i], picked[i], strict=True)
            ],
        }
        for i, ref in enumerate(valid["subject_ref"])
    }


def reference_risk(model: ScoreCalibratedClassifier) -> dict[str, Record]:
    """Score the slow, plain way: ``predict_proba`` and :func:`models.explain.top_reasons`."""
    valid = checked_frame()
    with one_thread():
        explanation = explain(model, valid)
        reasons = top_reasons(explanation, valid, limit=TOP_REASONS)
        bands = BANDS.band_names(explanation.probability)
    return {
        ref: {
            "risk_probability": float(explanation.probability[i]),
            "risk_band": str(bands[i]),
            "reasons": [_reason(r.feature, r.contribution) for r in reasons[i]],
        }
        for i, ref in enumerate(valid["subject_ref"])
    }


def _number(value: float) -> float | None:
    """Return a float for JSON, ``None`` for NaN (a group too small for an interval)."""
    return None if math.isnan(value) else float(value)


def pathway_estimates(model: PathwayEffectModel) -> dict[str, Record]:
    """Return each person's estimate for every programme (:meth:`PathwayEffectModel.estimate`)."""
    valid = checked_frame()
    with one_thread():
        estimates = model.estimate(valid)
    out: dict[str, Record] = {}
    for i, ref in enumerate(valid["subject_ref"]):
        out[ref] = {
            programme: {
                "effect": float(estimates.effect[i, j]),
                "interval_low": _number(estimates.interval_low[i, j]),
                "interval_high": _number(estimates.interval_high[i, j]),
                "propensity": float(estimates.propensity[i, j]),
                "in_overlap": bool(estimates.in_overlap[i, j]),
                "eligible": bool(estimates.eligible[i, j]),
                "recommended": bool(estimates.recommended[i, j]),
            }
            for j, programme in enumerate(estimates.programmes)
        }
    return out


#: What is pinned of a served recommended programme. The figures added since (the person's
#: risk with it and their interval, issue 17) are not pinned yet: that is a regeneration
#: (``make golden``), left to one run after the pathway model's own changes land.
PINNED_ITEM = ("programme", "estimated_reduction", "interval_low", "interval_high", "needs")


def served_recommendations(model: PathwayEffectModel) -> dict[str, Record]:
    """Recommend through :class:`serving.recommender.Recommender`, as the service does."""
    with one_thread():
        answers = Recommender(model).recommend(validated_assessments())
    return {
        answer["subject_ref"]: {
            "recommended": [
                {key: item[key] for key in PINNED_ITEM}  # type: ignore[literal-required]
                for item in answer["recommended"]
            ],
            "not_recommended": [dict(item) for item in answer["not_recommended"]],
        }
        for answer in answers
    }


def reference_recommendations(model: PathwayEffectModel) -> dict[str, Record]:
    """Return :func:`models.pathways.recommendations` shaped as served ``recommended`` lists."""
    valid = checked_frame()
    with one_thread():
        ranked = recommendations(model.estimate(valid), valid)
    return {
        ref: {"recommended": [_as_served(pick) for pick in ranked[i]]}
        for i, ref in enumerate(valid["subject_ref"])
    }


def _as_served(pick: Recommendation) -> dict[str, object]:
    """A recommendation in the API's shape, from its fields: the interval as two bounds."""
    shape = asdict(pick)
    low, high = shape.pop("interval")
    needs = list(shape.pop("needs"))
    return {**shape, "interval_low": low, "interval_high": high, "needs": needs}


# --- Comparison ---


@dataclass(frozen=True)
class Mismatch:
    """One pinned value that came out differently."""

    model: str
    assessment: str
    field: str
    pinned: object
    got: object

    def __str__(self) -> str:
        gap = ""
        if _is_number(self.pinned) and _is_number(self.got):
            gap = f" (off by {abs(float(self.got) - float(self.pinned)):.3g})"  # type: ignore[arg-type]
        return (
            f"{self.model} | {self.assessment} | {self.field}: "
            f"pinned {self.pinned!r}, got {self.got!r}{gap}"
        )


ABSENT = "<absent>"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _differences(pinned: object, got: object, field: str) -> Iterator[tuple[str, object, object]]:
    """Yield ``(field, pinned, got)`` for every leaf that differs (numbers: beyond TOLERANCE)."""
    if isinstance(pinned, dict) and isinstance(got, dict):
        for key in [*pinned, *(k for k in got if k not in pinned)]:
            inner = f"{field}.{key}" if field else str(key)
            yield from _differences(pinned.get(key, ABSENT), got.get(key, ABSENT), inner)
    elif isinstance(pinned, list) and isinstance(got, list):
        if len(pinned) != len(got):
            yield f"{field} (length)", len(pinned), len(got)
        for i, (a, b) in enumerate(zip(pinned, got, strict=False)):
            yield from _differences(a, b, f"{field}[{i}]")
    elif _is_number(pinned) and _is_number(got):
        if not abs(float(got) - float(pinned)) <= TOLERANCE:  # type: ignore[arg-type]
            yield field, pinned, got
    elif pinned != got:
        yield field, pinned, got


def compare(model: str, pinned: dict[str, Record], got: dict[str, Record]) -> list[Mismatch]:
    """Return every difference between pinned and computed records of one model, by assessment."""
    refs = [*pinned, *(ref for ref in got if ref not in pinned)]
    return [
        Mismatch(model, ref, field or "(the whole record)", a, b)
        for ref in refs
        for field, a, b in _differences(pinned.get(ref, ABSENT), got.get(ref, ABSENT), "")
    ]


def report(
    path: str, mismatches: Sequence[Mismatch], pinned_with: object, *, limit: int = 40
) -> str:
    """Return a readable account of ``mismatches``: model | assessment | field: pinned, got.

    ``pinned_with`` is the pinned file's ``environment``: when the libraries
    differ from it, the account says so (an upgrade may move the figures).
    """
    lines = [f"golden scores differ on the {path} path: {len(mismatches)} value(s)"]
    lines += [f"  {m}" for m in mismatches[:limit]]
    if len(mismatches) > limit:
        lines.append(f"  ... and {len(mismatches) - limit} more")
    if pinned_with != environment():
        lines.append(f"  pinned with {pinned_with}, running {environment()}")
    lines.append(f"If the change is intended: {REGENERATE}, and commit saying why.")
    return "\n".join(lines)


def assert_matches(
    path: str, section: str, got: dict[str, dict[str, Record]], expected: dict[str, Any]
) -> None:
    """Fail with :func:`report` unless each model in ``got`` gives its pinned records.

    ``got`` maps model names to their records by assessment, as the pinned
    ``section`` of ``expected`` does; an assessment (or a whole model) missing
    on either side is a mismatch. Which models are pinned at all is checked
    with the spec (:func:`describe_spec`).
    """
    pinned: dict[str, dict[str, Record]] = expected.get(section, {})
    mismatches = [m for name in got for m in compare(name, pinned.get(name, {}), got[name])]
    if mismatches:
        raise AssertionError(report(f"{path} ({section})", mismatches, expected.get("environment")))


def load_expected() -> dict[str, Any]:
    """Return the pinned file (empty when it does not exist yet)."""
    if not EXPECTED_PATH.exists():
        return {}
    expected: dict[str, Any] = json.loads(EXPECTED_PATH.read_text())
    return expected


# --- Every path, for the command line ---

#: (path name, pinned section, how to compute it from the fitted models)
Check = tuple[str, str, Callable[[GoldenModels], dict[str, dict[str, Record]]]]
CHECKS: tuple[Check, ...] = (
    ("batch", "risk", lambda m: {k: batch_risk(v) for k, v in m.risk.items()}),
    ("served", "risk", lambda m: {k: served_risk(v) for k, v in m.risk.items()}),
    ("reference", "risk", lambda m: {k: reference_risk(v) for k, v in m.risk.items()}),
    ("model", "pathway_estimates", lambda m: {"pathways": pathway_estimates(m.pathways)}),
    (
        "served",
        "pathway_recommendations",
        lambda m: {"pathways": served_recommendations(m.pathways)},
    ),
)


def check_all(expected: dict[str, Any]) -> list[str]:
    """Return one report per path that differs from ``expected`` (empty: all agree)."""
    if not expected:
        return [f"no pinned file at {EXPECTED_PATH}: create it with {REGENERATE}"]
    changed = list(_differences(expected.get("spec"), describe_spec(), "spec"))
    if changed:
        lines = [f"  {field}: pinned {a!r}, now {b!r}" for field, a, b in changed]
        return ["the golden models' settings changed since pinning:", *lines, REGENERATE]
    models = fit_golden_models()
    failures = []
    for path, section, compute in CHECKS:
        try:
            assert_matches(path, section, compute(models), expected)
        except AssertionError as failure:
            failures.append(str(failure))
    return failures


def regenerate(why: str) -> Path:
    """Rewrite the pinned file from today's code, recording ``why``.

    The batch path's risk scores, the model's pathway estimates and the
    served recommendations are written; the other paths must then agree
    with them, or nothing is written (paths that disagree are a bug, not a
    change to pin).

    Raises
    ------
    RuntimeError
        If the scoring paths disagree with one another.
    """
    models = fit_golden_models()
    previous = load_expected()
    document: dict[str, Any] = {
        "about": (
            "Pinned outputs of the golden-score tests (tests/support/golden.py). "
            f"Never edit by hand; regenerate with {REGENERATE} and commit saying why."
        ),
        "tolerance": TOLERANCE,
        "spec": describe_spec(),
        "environment": environment(),
        "history": [
            *previous.get("history", []),
            {"at": datetime.now(UTC).isoformat(timespec="seconds"), "why": why},
        ],
        "risk": {name: batch_risk(model) for name, model in models.risk.items()},
        "pathway_estimates": {"pathways": pathway_estimates(models.pathways)},
        "pathway_recommendations": {"pathways": served_recommendations(models.pathways)},
    }
    disagreements = check_all(document)
    if disagreements:
        raise RuntimeError("scoring paths disagree; nothing written:\n" + "\n".join(disagreements))
    EXPECTED_PATH.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    return EXPECTED_PATH


def main(argv: Sequence[str] | None = None) -> int:
    """Compare today's outputs with the pinned ones, or (``--regenerate --why``) rewrite them."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.golden",
        description="Check the golden scores, or rewrite them on purpose (make golden WHY=...).",
    )
    parser.add_argument("--regenerate", action="store_true", help="rewrite the pinned file")
    parser.add_argument("--why", default="", help="why the pinned outputs change (recorded)")
    args = parser.parse_args(argv)
    if args.regenerate and not args.why.strip():
        parser.error('--regenerate needs --why "why the pinned outputs change"')
    if args.why and not args.regenerate:
        parser.error("--why is only for --regenerate")
    if args.regenerate:
        written = regenerate(args.why.strip())
        print(f"rewrote {written}; commit it with a message that says why: {args.why.strip()}")
        return 0
    failures = check_all(load_expected())
    print("\n\n".join(failures) if failures else "golden scores match the pinned file")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
