"""Judging a pathway-effect model on held-out people, without ground truth.

Doubly robust pseudo-outcomes give each programme's average effect and the
value of each recommendation policy (desist's top choice against the
rule-based baselines of :mod:`models.pathway_rules`); overlap diagnostics say
where the estimates can be trusted. Nothing here talks to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.schema import PROGRAMMES
from models.pathway_estimates import PathwayEstimates
from models.pathway_policy import rule_name
from models.pathway_rules import (
    NaivePathwayModel,
    most_common_need_policy,
    random_policy,
    rnr_policy,
)
from models.pathways import PathwayEffectModel
from pipeline.config import PathwayTrainConfig


def _mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(values.size)
    return mean, mean - half, mean + half


def build_pathway_model(config: PathwayTrainConfig) -> PathwayEffectModel:
    """Return the unfitted pathway-effect model a config describes."""
    # Every field of the model's config is one of its parameters, by the same name.
    return PathwayEffectModel(features=config.features, **config.model.model_dump())


def policy_values(
    pseudo: np.ndarray, choices: dict[str, np.ndarray]
) -> dict[str, tuple[float, float, float]]:
    """Estimate each policy's mean risk reduction (and 95% interval) from DR pseudo-outcomes."""
    rows = np.arange(pseudo.shape[0])
    return {name: _mean_interval(pseudo[rows, choice]) for name, choice in choices.items()}


def top_choice(estimates: PathwayEstimates) -> np.ndarray:
    """Return each person's eligible programme with the largest estimated reduction."""
    return np.argmax(np.where(estimates.eligible, estimates.effect, -np.inf), axis=1)


def overlap_table(
    test: pd.DataFrame, estimates: PathwayEstimates, attributes: tuple[str, ...]
) -> pd.DataFrame:
    """Share of eligible people outside overlap, per programme and group."""
    age_band = pd.cut(
        test["age"].to_numpy(dtype=np.float64),
        [15, 25, 35, 50, 120],
        labels=["16-25", "26-35", "36-50", "51+"],
    )
    groupings = {"age band": np.asarray(age_band.astype(str))}
    for name in attributes:
        groupings[name] = test[name].astype(object).fillna("not recorded").to_numpy()
    rows = []
    for attribute, labels in groupings.items():
        for label in pd.unique(labels):
            member = labels == label
            for j, programme in enumerate(PROGRAMMES):
                pool = member & estimates.eligible[:, j]
                if pool.sum() == 0:
                    continue
                rows.append(
                    {
                        "attribute": attribute,
                        "group": str(label),
                        "programme": programme,
                        "eligible": int(pool.sum()),
                        "outside_overlap_share": float(1 - estimates.in_overlap[pool, j].mean()),
                    }
                )
    return pd.DataFrame(rows)


@dataclass(frozen=True, eq=False)
class PathwayEvaluation:
    """A pathway model judged on the test split."""

    estimates: PathwayEstimates
    #: Doubly robust pseudo-outcomes, one column per programme.
    pseudo: np.ndarray
    #: Each policy's mean risk reduction with its 95% interval.
    values: dict[str, tuple[float, float, float]]
    #: Each programme's average effect (eligible and in overlap) with its 95% interval.
    effects: dict[str, tuple[float, float, float]]
    #: Share of test people with at least one recommendation.
    recommended_share: float
    metrics: dict[str, float]
    overlap: pd.DataFrame

    @property
    def policy_table(self) -> pd.DataFrame:
        """The policy values as rows ``policy, value, ci_low, ci_high``."""
        return pd.DataFrame(
            [
                {"policy": k, "value": v[0], "ci_low": v[1], "ci_high": v[2]}
                for k, v in self.values.items()
            ]
        )


def evaluate_pathways(
    model: PathwayEffectModel,
    train_part: pd.DataFrame,
    test: pd.DataFrame,
    config: PathwayTrainConfig,
) -> PathwayEvaluation:
    """Judge ``model`` on ``test`` against the rule-based policies.

    The naive learner among them is fitted on ``train_part``.
    """
    y_train = train_part[config.target].to_numpy(dtype=int)
    y_test = test[config.target].to_numpy(dtype=int)
    estimates = model.estimate(test)
    pseudo = model.pseudo_outcomes(test, y_test)
    naive = NaivePathwayModel().fit(train_part, y_train)
    choices = {
        "desist top-1": top_choice(estimates),
        "random": random_policy(test, seed=config.split_seed),
        "most common need": most_common_need_policy(test),
        "needs-score rule (RNR)": rnr_policy(test),
        "naive learner": naive.policy(test),
    }
    values = policy_values(pseudo, choices)
    effects = {}
    for j, programme in enumerate(PROGRAMMES):
        pool = estimates.eligible[:, j] & estimates.in_overlap[:, j]
        effects[programme] = _mean_interval(pseudo[pool, j])
    metrics = {
        f"policy_value_{name.split(' (')[0].replace(' ', '_').replace('-', '_')}": v[0]
        for name, v in values.items()
    }
    for programme, (mean, low, high) in effects.items():
        metrics |= {
            f"average_effect_{programme}": mean,
            f"average_effect_{programme}_ci_low": low,
            f"average_effect_{programme}_ci_high": high,
        }
    for j, programme in enumerate(PROGRAMMES):
        eligible = estimates.eligible[:, j]
        metrics[f"outside_overlap_share_{programme}"] = float(
            1 - estimates.in_overlap[eligible, j].mean()
        )
        metrics[f"recommended_share_{programme}"] = float(estimates.recommended[:, j].mean())
    recommended_share = float(estimates.recommended.any(axis=1).mean())
    metrics["recommended_any_share"] = recommended_share
    overlap = overlap_table(test, estimates, config.audited_attributes)
    return PathwayEvaluation(
        estimates, pseudo, values, effects, recommended_share, metrics, overlap
    )


def served_rule_tags(model: PathwayEffectModel) -> dict[str, str]:
    """Return the served rule a fitted model chose out of fold, as run tags.

    The learner, whether only confident personal picks are offered (the gate),
    how much a personal pick must beat the default programme by, and that
    default: what decides each recommendation besides the estimates.
    """
    default = model.default_programme_
    return {
        "pathway_learner": model.learner_,
        "pathway_gate": "on" if model.gate_ else "off",
        "pathway_switch_margin": f"{model.switch_margin_:g}",
        "pathway_default_programme": PROGRAMMES[default] if default >= 0 else "none",
    }


def selection_table(model: PathwayEffectModel) -> pd.DataFrame:
    """Return every candidate rule's out-of-fold DR policy value, the served one marked.

    The values are the training people's, from models that did not learn from
    them (``PathwayEffectModel.selection_``); the choice read no truth.
    """
    served = rule_name(model.gate_, model.switch_margin_)
    rows = []
    for name, value in model.selection_.items():
        # One learner's names carry no "learner:" prefix (PathwayEffectModel.selection_).
        learner, _, rule = name.rpartition(":")
        learner = learner or model.learner_
        served_here = learner == model.learner_ and rule == served
        rows.append(
            {"learner": learner, "rule": rule, "out_of_fold_value": value, "served": served_here}
        )
    return pd.DataFrame(rows, columns=["learner", "rule", "out_of_fold_value", "served"])
