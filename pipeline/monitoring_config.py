"""What ``desist monitor`` checks and when it alerts: frozen, strict, read from TOML.

Every alert needs two things at once: a test whose false alarm rate is known
(the run's ``false_alarm_rate`` shared over all its checks, Bonferroni), so
that sampling noise alone raises an alert in at most that share of runs on an
unchanged population; and a change at least as large as the check's floor,
so that on a very large population a real but negligible change is reported
without alerting. The floors are stated as effect sizes, independent of how
many people are monitored (see ``docs/monitoring.md`` for why each value).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.bands import RiskBands


def _floor(default: float, description: str) -> Any:
    """Return a check's floor: the smallest change that may alert, an effect size (never < 0)."""
    return Field(default=default, ge=0, description=description)


def _share(default: float, below: float, description: str) -> Any:
    """Return a rate's field: above 0 and below ``below``."""
    return Field(default=default, gt=0, lt=below, description=description)


def _count(default: int, description: str) -> Any:
    """Return a number of people's field (at least 1)."""
    return Field(default=default, ge=1, description=description)


class MonitoringConfig(BaseModel):
    """Settings of a monitoring run (``configs/monitoring.toml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment: str = Field(default="desist-monitoring", description="MLflow experiment")
    registered_model: str = Field(default="desist-risk", description="the model monitored")
    window_months: int = Field(
        default=12, ge=1, le=120, description="outcome window from the day of the score"
    )
    false_alarm_rate: float = _share(
        0.01, 0.5, "chance that a run on an unchanged population alerts on noise alone"
    )
    min_matured: int = _count(200, "fewer matured outcomes than this: drift checks only")
    min_group_size: int = _count(200, "smaller bands and groups are reported, not tested")
    bins: int = Field(default=10, ge=2, le=50, description="quantile bins of a numeric feature")
    psi_floor: float = _floor(
        0.01, "smallest PSI that alerts (about a 0.1 sd shift of a normal feature)"
    )
    missingness_floor: float = _floor(0.02, "smallest change in a feature's not-assessed share")
    calibration_floor: float = _floor(0.02, "smallest |mean predicted - observed rate| overall")
    band_calibration_floor: float = _floor(
        0.05, "smallest |mean predicted - observed| within a band"
    )
    group_calibration_floor: float = _floor(
        0.05, "smallest |mean predicted - observed| in an audited group (the gate's)"
    )
    decile_calibration_floor: float = _floor(
        0.03,
        (
            "smallest root-mean-square change of the score deciles' calibration gaps since "
            "the test split, noise removed (the gate's ECE limit)"
        ),
    )
    auc_drop_floor: float = _floor(0.02, "smallest fall of the AUC below the test split's")
    max_override_rate: float = _share(0.25, 1, "a band overridden more often than this alerts")
    override_gap_floor: float = _floor(
        0.05, "smallest gap in override rates between groups that alerts"
    )
    audited: tuple[str, ...] = Field(
        default=("ethnicity", "sex"), description="groups calibration and overrides are shown by"
    )
    bands: RiskBands = RiskBands()
    n_bootstrap: int = Field(default=200, ge=0, le=5000, description="resamples for intervals")
    seed: int = 0


def load_monitoring_config(path: Path) -> MonitoringConfig:
    """Read a monitoring config from TOML.

    Raises
    ------
    pipeline.config.ConfigError
        Naming the file and every offending field.
    """
    from pipeline.config import load_config

    return load_config(path, MonitoringConfig)
