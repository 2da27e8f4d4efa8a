"""The recommender: a few people through the flattened forest, answered as the general path does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmarks.support.registry import Store
from data.schema import ASSESSMENT_FIELDS, CROSS_FIELD_RULES
from serving.recommender import FOREST_ROWS, PersonRecommendation, Recommender
from serving.registry_loader import load_pathway_model
from serving.schemas import assessment_batch_model
from tests.support.serving import make_settings

_NULLABLE = [spec.name for spec in ASSESSMENT_FIELDS if spec.nullable]
_AGE_BOUND = {rule.lower for rule in CROSS_FIELD_RULES if rule.upper == "age"}
_FIGURES = (
    "estimated_reduction",
    "interval_low",
    "interval_high",
    "person_interval_low",
    "person_interval_high",
    "risk_with",
)


@pytest.fixture(scope="module")
def recommenders(pathway_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The served recommender, and a copy of it that always takes the general path."""
    settings = make_settings(pathway_store, tmp_path_factory.mktemp("recommender"))
    fast = load_pathway_model(settings).recommender
    general = Recommender(fast.model, flatten=False)
    assert not general.flattened
    return fast, general


def _random_people(items: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Return varied people: random fields left out, a third aged 16-25 (Prince's Trust)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, item in enumerate(items):
        person = {
            "subject_ref": f"random-{i}",
            **{k: v for k, v in item.items() if k != "subject_ref"},
        }
        for name in _NULLABLE:
            if rng.random() < 0.25:
                person.pop(name, None)
        if rng.random() < 1 / 3:
            person["age"] = int(rng.integers(16, 26))
            for name in _AGE_BOUND:
                if person.get(name) is not None:
                    person[name] = min(person[name], person["age"])
        out.append(person)
    return out


def _assert_same(got: list[PersonRecommendation], expected: list[PersonRecommendation]) -> None:
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        for key in ("subject_ref", "not_recommended", "offered_programme", "offered_basis"):
            assert mine[key] == theirs[key]  # type: ignore[literal-required]
        for key in ("risk_without", "risk_with_offered"):
            assert abs((mine[key] or 0.0) - (theirs[key] or 0.0)) <= 1e-12  # type: ignore[literal-required]
        assert [r["programme"] for r in mine["recommended"]] == [
            r["programme"] for r in theirs["recommended"]
        ]
        for a, b in zip(mine["recommended"], theirs["recommended"], strict=True):
            assert a["needs"] == b["needs"]
            for key in _FIGURES:
                assert abs(a[key] - b[key]) <= 1e-12  # type: ignore[literal-required]


def test_the_forest_answers_as_the_general_path_for_many_random_people(
    recommenders: Any, cohort_assessments: list[dict[str, Any]]
) -> None:
    fast, general = recommenders
    assert fast.flattened  # the served model's boosters were compiled
    people = _random_people(cohort_assessments, seed=7)
    body = assessment_batch_model(1000)
    parsed = body.model_validate({"assessments": people}).assessments
    recommended = 0
    for start in range(0, len(parsed), FOREST_ROWS):
        batch = parsed[start : start + FOREST_ROWS]
        got = fast.recommend(batch)
        _assert_same(got, general.recommend(batch))
        recommended += sum(bool(person["recommended"]) for person in got)
    # One person at a time, as most requests come.
    for item in parsed[:50]:
        _assert_same(fast.recommend([item]), general.recommend([item]))
    assert recommended > 0  # recommended programmes were compared, not only reasons
    reasons = {
        r["reason"] for p in general.recommend(parsed[:FOREST_ROWS]) for r in p["not_recommended"]
    }
    assert "not_eligible" in reasons  # so were the eligibility branches


def test_a_model_the_forest_cannot_read_is_still_served(
    recommenders: Any, cohort_assessments: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, _ = recommenders

    def refuse(model: object) -> None:
        raise TypeError("only numeric splits can be compiled")

    monkeypatch.setattr("serving.recommender.compile_forest", refuse)
    fallback = Recommender(fast.model)
    assert not fallback.flattened
    parsed = assessment_batch_model(1000).model_validate({"assessments": cohort_assessments[:5]})
    _assert_same(fallback.recommend(parsed.assessments), fast.recommend(parsed.assessments))


def test_warming_up_checks_the_forest_and_drops_it_when_it_disagrees(
    recommenders: Any, cohort_assessments: list[dict[str, Any]]
) -> None:
    fast, _ = recommenders
    people = assessment_batch_model(1000).model_validate(
        {"assessments": cohort_assessments[:FOREST_ROWS]}
    )
    sound = Recommender(fast.model)
    sound.warm_up(people.assessments)
    assert sound.flattened
    misread = Recommender(fast.model)
    assert misread._forest is not None
    misread._forest.value[:] += 0.1  # every leaf off: as if the compiler misread the trees
    misread.warm_up(people.assessments)
    assert not misread.flattened
    _assert_same(misread.recommend(people.assessments), fast.recommend(people.assessments))


def test_a_model_saved_before_the_served_policy_offers_only_confident_picks(
    recommenders: Any, cohort_assessments: list[dict[str, Any]]
) -> None:
    import copy

    fast, _ = recommenders
    old = copy.copy(fast.model)
    for name in ("default_programme_", "switch_margin_", "gate_"):
        delattr(old, name)  # as a model saved before issue 17 has none of them
    parsed = assessment_batch_model(1000).model_validate({"assessments": cohort_assessments})
    answers = Recommender(old, flatten=False).recommend(parsed.assessments)
    assert {a["offered_basis"] for a in answers} <= {"confident_personal_pick", None}
    for answer in answers:
        # The offer is then the top confident programme, or nothing: nothing when the
        # person's largest estimate is not itself confident (the gate decides whether
        # to personalise, not which programme).
        top = answer["recommended"][0]["programme"] if answer["recommended"] else None
        assert answer["offered_programme"] in (None, top)
    assert any(a["offered_programme"] for a in answers)
