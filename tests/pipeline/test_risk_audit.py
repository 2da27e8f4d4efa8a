from __future__ import annotations

import pytest

from benchmarks.support.configs import small_config
from data.errors import LeakageError
from data.synthetic import SynthConfig, generate_cohort
from models.risk import ScorecardSettings
from pipeline.config import BaselineConfig, IncumbentConfig, RiskTrainConfig
from pipeline.jobs import Splits, split_frame
from pipeline.risk_audit import DESIST, Compared, audit, compare
from pipeline.risk_families import RecordedFamily, Selection, choose_family, fit_family

BASELINE = BaselineConfig(name="age and priors", features=("age", "total_sanctions"))


@pytest.fixture(scope="module")
def job() -> tuple[RiskTrainConfig, Splits, Selection, Compared]:
    config = small_config(models=(ScorecardSettings(),), baselines=(BASELINE,))
    frame, _ = generate_cohort(SynthConfig(rows=3_000, seed=4))
    splits = split_frame(frame, config)
    fit = fit_family(config, ScorecardSettings(), splits, lambda _: None)
    y_test = splits.test[config.target].to_numpy(dtype=int)
    selection = choose_family([RecordedFamily(fit, fit.result("run"), "uri")], y_test, seed=0)
    return config, splits, selection, compare(config, splits, selection)


def test_desist_and_its_baselines_are_compared_on_the_same_test_rows(
    job: tuple[RiskTrainConfig, Splits, Selection, Compared],
) -> None:
    _, splits, selection, compared = job
    assert [s.name for s in compared.scored] == [DESIST, "age and priors"]
    assert compared.scored[0].probability is selection.chosen.fit.test_probability
    assert [p.label for p in compared.scored[0].operating_points] == ["p >= 0.5"]
    assert compared.table["model"].tolist() == ["desist scorecard (selected)", "age and priors"]
    assert all(len(s.score) == len(splits.test) for s in compared.scored)
    gain, low, high = compared.gains["age and priors"]
    assert low <= gain <= high
    assert set(compared.evaluations) == {DESIST, "age and priors"}


def test_an_incumbent_without_a_score_on_every_test_row_is_refused(
    job: tuple[RiskTrainConfig, Splits, Selection, Compared],
) -> None:
    config, splits, selection, _ = job
    with_incumbent = config.model_copy(
        update={"incumbent": IncumbentConfig(name="Tool", field="incumbent_decile", cutoff=5)}
    )
    test = splits.test.assign(incumbent_decile=float("nan"))
    with pytest.raises(LeakageError, match="missing on test rows"):
        compare(with_incumbent, Splits(splits.train, splits.calibration, test), selection)


def test_the_audit_summarises_rates_and_gaps_and_ends_with_the_impossibility_note(
    job: tuple[RiskTrainConfig, Splits, Selection, Compared],
) -> None:
    config, splits, _, compared = job
    lines: list[str] = []
    audited = audit(config, splits, compared, lines.append)
    assert audited is not None
    assert "ethnicity" in audited.attributes
    # A progress line per attribute, with a count.
    assert len(lines) == len(audited.attributes)
    assert lines[0].startswith(f"  fairness 1/{len(audited.attributes)}: ")
    assert audited.headline and audited.headline[0] in audited.summary
    assert any(
        line.startswith("False positive rate ratio black / white") for line in audited.summary
    )
    assert audited.summary[-1].startswith("Impossibility:")
    assert set(audited.audit.by_group["model"]) == {DESIST, "age and priors"}


def test_nothing_is_audited_when_no_protected_attribute_is_recorded(
    job: tuple[RiskTrainConfig, Splits, Selection, Compared],
) -> None:
    config, splits, _, compared = job
    blank = splits.test.copy()
    for name in config.audited_attributes:
        blank[name] = None
    assert audit(config, Splits(splits.train, splits.calibration, blank), compared) is None
