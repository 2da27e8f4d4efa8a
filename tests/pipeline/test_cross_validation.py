from __future__ import annotations

import pytest

from benchmarks.support.configs import small_config
from data.errors import ForbiddenFeatureError
from data.synthetic_world import SynthConfig
from models.risk import ScorecardSettings
from pipeline.config import DatasetConfig
from pipeline.cross_validation import study_features


def _config():  # type: ignore[no-untyped-def]
    return small_config(
        dataset=DatasetConfig(name="cv", synthetic=SynthConfig(rows=2_000, seed=5)),
        features=("age", "total_sanctions", "procriminal_attitudes"),
        audit_only=("ethnicity", "sex"),
        models=(ScorecardSettings(),),
    )


def test_nested_feature_sets_are_cross_validated_without_the_test_split() -> None:
    study = study_features(_config(), extra=("sex",), folds=3)
    # 2,000 people less the 20% test split.
    assert study.rows == 1_600
    assert study.steps["added"].tolist() == [
        "age",
        "total_sanctions",
        "procriminal_attitudes",
        "sex",
    ]
    auc = dict(zip(study.steps["added"], study.steps["roc_auc_mean"], strict=True))
    assert auc["total_sanctions"] > auc["age"] + 0.02
    (row,) = study.calibrated.itertuples()
    assert 0 < row.ece_noise_floor < 0.1 and 0 < row.ece_mean < 0.2


def test_a_never_feature_candidate_is_refused() -> None:
    with pytest.raises(ForbiddenFeatureError, match="ethnicity"):
        study_features(_config(), extra=("ethnicity",), folds=3)
