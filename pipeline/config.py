"""Configs of the training jobs: frozen, strict, read from TOML.

A config names everything a run depends on (dataset, target, features,
audit-only attributes, model families, split, bands, promotion gates), and is
logged whole to MLflow as the run's parameters, so a reviewer can re-run it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from data.adapters import SourceAdapter
from data.errors import DesistError, LeakageError
from data.schema import (
    AUDIT_ONLY,
    DEFAULT_FEATURES,
    FIELDS_BY_NAME,
    TARGET_FIELD,
    Kind,
    Role,
    check_feature_names,
)
from data.synthetic_world import SynthConfig
from models.bands import RiskBands
from models.calibration import CalibrationMethod
from models.risk import BoostingSettings, ModelSettings, ScorecardSettings
from pipeline.calibration_checks import CalibrationGateConfig

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class ConfigError(DesistError):
    """A config file is unreadable or breaks a rule; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetConfig(_Strict):
    """Where the training data comes from: a file, or the synthetic generator."""

    name: str = Field(description="human name of the dataset, shown in runs and model cards")
    path: Path | None = Field(default=None, description="CSV or Parquet file in schema columns")
    synthetic: SynthConfig | None = Field(default=None, description="generate a cohort instead")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.path is None) == (self.synthetic is None):
            raise ValueError("give exactly one of dataset.path and dataset.synthetic")
        return self


class SplitConfig(_Strict):
    """Train / calibration / test split, stratified by outcome, reproducible by seed."""

    seed: int = 42
    calibration_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0, lt=0.5)


class GateConfig(_Strict):
    """What a candidate must show before it may become the champion.

    Calibration is gated by the calibration gate's record
    (:class:`pipeline.calibration_checks.CalibrationGateConfig`, the
    ``[calibration_gate]`` table), not by a fixed ECE ceiling: on ~1,150 people
    sampling noise alone gives a perfectly calibrated score an ECE near 0.03.
    """

    auc_tolerance: float = Field(
        default=0.01, ge=0, description="AUC may fall at most this far below the champion's"
    )
    min_group_size: int = Field(
        default=200,
        ge=1,
        description="smallest group in the recorded largest group calibration gap (not a gate)",
    )


class EvaluationConfig(_Strict):
    """How test metrics are estimated."""

    n_bootstrap: int = Field(default=200, ge=20, le=5000)
    bootstrap_seed: int = 0


def check_leakage(
    features: tuple[str, ...], audit_only: tuple[str, ...], adapter: SourceAdapter | None
) -> None:
    """Refuse a feature that is post-outcome, another tool's output, or audit-only.

    Raises
    ------
    LeakageError
        Naming the first such feature and why.
    """
    made_from_never = {} if adapter is None else _never_sources(adapter)
    for name in features:
        spec = FIELDS_BY_NAME.get(name)
        if name in made_from_never:
            raise LeakageError(
                name,
                f"made from {made_from_never[name]}, listed in the adapter's never_features "
                "(recorded after the outcome, derived from it, or another tool's output)",
            )
        if name in audit_only:
            raise LeakageError(name, "listed as audit-only: it is used to audit, never to score")
        if spec is not None and spec.role is Role.TARGET:
            raise LeakageError(name, "it is an outcome, recorded after the assessment")
        if spec is not None and spec.role is Role.COMPARISON:
            raise LeakageError(name, "it is another tool's score, kept only to compare against")


def _never_sources(adapter: SourceAdapter) -> dict[str, str]:
    never = set(adapter.never_features)
    return {
        name: ", ".join(sorted(never & set(rule.sources())))
        for name, rule in adapter.fields.items()
        if never & set(rule.sources())
    }


class _JobConfig(_Strict):
    """What every training job names: its data, outcome, features and audit-only fields."""

    dataset: DatasetConfig
    target: str = TARGET_FIELD
    features: tuple[str, ...] = DEFAULT_FEATURES
    audit_only: tuple[str, ...] = AUDIT_ONLY
    adapter: SourceAdapter | None = Field(
        default=None, description="how a source's own columns become schema columns"
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="threads every fit and prediction may use; default the idle cores "
        "(models.threads.choose_threads)",
    )

    @model_validator(mode="after")
    def _fields_are_allowed(self) -> Self:
        spec = FIELDS_BY_NAME.get(self.target)
        if spec is None or spec.role is not Role.TARGET:
            raise ValueError(f"target {self.target!r} is not an outcome field of the schema")
        check_leakage(self.features, self.audit_only, self.adapter)
        check_feature_names(self.features)
        overlap = sorted(set(self.features) & set(self.audit_only))
        if overlap:
            raise ValueError(f"audit-only attributes may not be features: {overlap}")
        return self

    @property
    def audited_attributes(self) -> tuple[str, ...]:
        """Protected characteristics the audit reports: always all, features or not."""
        protected = tuple(n for n, s in FIELDS_BY_NAME.items() if s.role is Role.PROTECTED)
        return tuple(dict.fromkeys((*self.audit_only, *protected)))


class IncumbentConfig(_Strict):
    """A score the source already holds (e.g. COMPAS's decile), compared on the same test rows."""

    name: str = Field(description="shown in tables and the model card, e.g. 'COMPAS decile'")
    field: str = Field(description="schema field of role comparison holding the score")
    cutoff: float = Field(description="scores at or above this are flagged (COMPAS: decile 5)")

    @model_validator(mode="after")
    def _is_comparison(self) -> Self:
        spec = FIELDS_BY_NAME.get(self.field)
        if spec is None or spec.role is not Role.COMPARISON:
            raise ValueError(f"incumbent.field {self.field!r} is not a comparison field")
        return self


class BaselineConfig(_Strict):
    """A plain logistic regression on a few features, fitted on the training split."""

    name: str
    features: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _numeric_features(self) -> Self:
        check_feature_names(self.features)
        for name in self.features:
            if FIELDS_BY_NAME[name].kind is Kind.CATEGORY:
                raise ValueError(f"baseline feature {name!r} must be numeric")
        return self


class FairnessConfig(_Strict):
    """The fairness audit: which group pair the headline error-rate ratio compares."""

    attribute: str = Field(default="race", description="audited attribute of the ratio")
    group: str = Field(default="african_american", description="numerator group")
    reference: str = Field(default="caucasian", description="denominator group")
    min_group_size: int = Field(
        default=50, ge=1, description="smaller groups are listed without intervals or ratios"
    )
    n_bootstrap: int = Field(default=200, ge=20, le=5000)


class RiskTrainConfig(_JobConfig):
    """Everything ``desist train risk`` needs."""

    experiment: str = "desist-risk"
    registered_model: str = "desist-risk"
    models: tuple[ModelSettings, ...] = (ScorecardSettings(), BoostingSettings())
    calibration: CalibrationMethod = Field(
        default="isotonic", description="monotone map from model score to probability"
    )
    calibration_folds: int = Field(
        default=0,
        ge=0,
        le=20,
        description=(
            "0: learn on the train split, calibrate on the calibration split; k >= 2: learn "
            "on both and calibrate on k-fold out-of-fold scores (cross-fitting, for small data)"
        ),
    )
    split: SplitConfig = SplitConfig()
    bands: RiskBands = RiskBands()
    gates: GateConfig = GateConfig()
    calibration_gate: CalibrationGateConfig = Field(
        default=CalibrationGateConfig.model_validate({}),
        description=(
            "tests of calibration with a known false-alarm rate, judged on the test split "
            "overall and in every audited group of min_group_size or more"
        ),
    )
    evaluation: EvaluationConfig = EvaluationConfig()
    incumbent: IncumbentConfig | None = None
    baselines: tuple[BaselineConfig, ...] = ()
    fairness: FairnessConfig = FairnessConfig()
    single_feature_auc_limit: float = Field(
        default=0.9, gt=0.5, le=1, description="warn when one feature alone has an AUC above this"
    )
    intended_use: str = Field(
        default="",
        description=(
            "the model card's statement of purpose, when not desist's own (offender "
            "management), e.g. for a benchmark on another jurisdiction's records"
        ),
    )

    @model_validator(mode="after")
    def _has_models(self) -> Self:
        if not self.models:
            raise ValueError("name at least one model family in [[models]]")
        if self.calibration_folds == 1:
            raise ValueError("calibration_folds must be 0 (a calibration split) or at least 2")
        return self

    @property
    def cross_fitted(self) -> bool:
        """Whether calibration is learned from out-of-fold scores instead of its own split."""
        return self.calibration_folds >= 2


class PathwayModelConfig(_Strict):
    """Settings of the doubly robust pathway-effect model.

    Each field is a parameter of :class:`models.pathways.PathwayEffectModel`,
    by the same name.
    """

    overlap: float = Field(
        default=0.02, gt=0, lt=0.5, description="propensity outside [overlap, 1-overlap]: not used"
    )
    min_effect: float = Field(
        default=0.005, ge=0, description="smallest absolute reduction worth recommending"
    )
    n_groups: int = Field(default=10, ge=2, le=50)
    max_iter: int = Field(default=300, ge=10)
    random_state: int = 0
    learner: Literal["auto", "dr", "plugin"] = Field(
        default="auto",
        description="the DR final stage, the plug-in (S-learner), or whichever wins out of fold",
    )


class PathwayGateConfig(_Strict):
    """What a pathway model must show before it may become the champion."""

    value_tolerance: float = Field(
        default=0.005,
        ge=0,
        description="estimated policy value may fall this far below the champion's",
    )
    min_gain_over_rnr: float = Field(
        default=0.0, description="estimated value must beat the needs-score rule by at least this"
    )


class PathwayTrainConfig(_JobConfig):
    """Everything ``desist train pathways`` needs."""

    experiment: str = "desist-pathways"
    registered_model: str = "desist-pathways"
    test_fraction: float = Field(default=0.3, gt=0, lt=0.9)
    split_seed: int = 42
    model: PathwayModelConfig = PathwayModelConfig()
    gates: PathwayGateConfig = PathwayGateConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _has_age(self) -> Self:
        if "age" not in self.features:
            raise ValueError("pathway learning needs age among the features (eligibility)")
        return self


def _describe(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()
    )


def load_risk_config(
    path: Path, *, data: Path | None = None, threads: int | None = None
) -> RiskTrainConfig:
    """Read a risk-training config from TOML (see :func:`load_config`)."""
    return load_config(path, RiskTrainConfig, data=data, threads=threads)


def load_pathway_config(
    path: Path, *, data: Path | None = None, threads: int | None = None
) -> PathwayTrainConfig:
    """Read a pathway-training config from TOML (see :func:`load_config`)."""
    return load_config(path, PathwayTrainConfig, data=data, threads=threads)


def load_config(
    path: Path, kind: type[ConfigT], *, data: Path | None = None, threads: int | None = None
) -> ConfigT:
    """Read a job config of type ``kind`` from TOML.

    Parameters
    ----------
    path
        The TOML file.
    data
        Replaces the config's dataset source with this file (``--data``).
    threads
        Replaces the config's thread budget (``--threads``).

    Raises
    ------
    ConfigError
        Naming the file and every offending field.
    """
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config ({err})") from err
    if data is not None:
        dataset = dict(raw.get("dataset", {}))
        dataset.pop("synthetic", None)
        dataset["path"] = str(data)
        dataset.setdefault("name", data.stem)
        raw["dataset"] = dataset
    elif isinstance(raw.get("dataset", {}).get("path"), str):
        # Relative dataset paths are relative to the config file, not the shell.
        raw["dataset"]["path"] = str((path.parent / raw["dataset"]["path"]).resolve())
    if threads is not None:
        raw["threads"] = threads
    try:
        return kind.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: {_describe(err)}") from err
    except DesistError as err:
        raise ConfigError(f"{path}: {err}") from err
