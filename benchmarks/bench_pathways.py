"""Pathway recommendations against the generator's ground truth (issue 17).

Learns from ``--rows`` people and judges on ``--test-rows`` fresh people of
the same world and seed, with the *true* policy value: the mean true
reduction in 12-month re-offending probability when each test person gets
the policy's one programme (alone; no programme: 0). Policies:

- ``desist_top1``: the served policy (:func:`models.pathway_policy.served_choice`:
  overlap, confidence gate and the truth-free default programme included);
  ``desist_unrestricted_top1`` is the largest estimate among open programmes,
  no gate, for reference;
- ``best_single_programme``: everyone gets the one programme with the
  largest true mean effect on the *training* rows;
- ``best_reachable_from_observed_features``: boosted models fitted on the
  true individual effects of an independent cohort of 100,000 people of the
  same world (another seed), then the largest predicted effect: the
  observed-feature oracle;
- ``latent_oracle``: everyone's truly best programme;
- baselines: naive learner, a plain S-learner (one booster on the assessment and
  the referrals, ungated), needs-score rule (RNR), random, most common
  need, and EconML's DRLearner (optional ``bench`` dependency) per programme.

Headline: each policy's share of the oracle's gain over the best single
programme, ``(policy - best single) / (oracle - best single)``. Also: how
many get a confident recommendation, allocation under places of
``--places`` of the test cohort per programme (``capacity.*``), per-person
and group interval coverage of the truth, the truth-free selection the
model made. A single recommendation's time is
``benchmarks/bench_pathway_latency.py``'s (the served path, the flattened forest).

Run (threads 1, ``nice`` on a shared machine)::

    OMP_NUM_THREADS=1 nice .venv/bin/python -m benchmarks.bench_pathways \\
        --rows 60000 --seed 1 [--world harder|today|no-effect] [--confounding 1.0] \\
        [--learner auto|dr|plugin]

Figures go to ``benchmarks/results/pathways-<world>-<rows>-seed<seed>.json``
(``-<learner>`` appended when ``--learner`` is given).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from benchmarks.common import save
from data.schema import PROGRAMMES
from data.synthetic import generate_cohort
from data.synthetic_world import HARDER_WORLD, TODAYS_WORLD, SynthConfig
from models import pathway_rules as rules
from models.allocation import (
    allocate,
    allocation_pairs,
    allocation_shares,
    highest_need_first,
)
from models.pathway_estimates import PathwayEstimates
from models.pathway_policy import person_figures, served_choice
from models.pathways import REFERRAL_COLUMNS, PathwayEffectModel
from pipeline.config import load_pathway_config
from pipeline.pathway_evaluation import build_pathway_model

CONFIG = Path(__file__).parents[1] / "configs" / "pathways.toml"
TEST_ROWS = 60_000
ORACLE_ROWS = 100_000
WORLDS: dict[str, dict[str, float]] = {
    "harder": HARDER_WORLD,
    "today": TODAYS_WORLD,
    "no-effect": {**HARDER_WORLD, "effect_scale": 0.0},
}


def _booster(regression: bool = False) -> Any:
    kind = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    return kind(
        learning_rate=0.2 if not regression else 0.1,
        max_iter=300,
        max_leaf_nodes=15,
        min_samples_leaf=100 if not regression else 200,
        early_stopping=True,
        random_state=0,
    )


def s_learner(regression: bool = False) -> Any:
    """Return the plain S-learner's booster: on the assessment and the referrals."""
    kind = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    return kind(
        learning_rate=0.1,
        max_iter=1000,
        max_leaf_nodes=15,
        min_samples_leaf=50,
        early_stopping=True,
        random_state=0,
    )


def effects_alone(model: Any, x_test: np.ndarray, proba: bool = True) -> np.ndarray:
    """Return an S-learner's reduction per test person from each programme alone.

    Its predicted risk with no referral minus its predicted risk with that one
    programme only (``x_test``: the encoded assessments, without referrals).
    """
    predictions = []
    for j in range(-1, len(PROGRAMMES)):
        referred = np.zeros((x_test.shape[0], len(PROGRAMMES)))
        if j >= 0:
            referred[:, j] = 1.0
        design = np.column_stack([x_test, referred])
        predictions.append(model.predict_proba(design)[:, 1] if proba else model.predict(design))
    return np.column_stack([predictions[0] - p for p in predictions[1:]])


def econml_effects(
    model: PathwayEffectModel, train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame
) -> np.ndarray | None:
    """Return EconML DRLearner reductions per programme (None if EconML is not installed)."""
    try:
        from econml.dr import DRLearner
    except ImportError:
        return None
    # EconML refuses missing values: "not assessed" becomes -1, below every
    # real value, which trees separate as desist's boosters do with NaN.
    x = np.nan_to_num(model.encoder_.transform(train), nan=-1.0)
    x_test = np.nan_to_num(model.encoder_.transform(test), nan=-1.0)
    referrals = train[list(REFERRAL_COLUMNS)].to_numpy(dtype=np.float64)
    allowed = rules.eligibility(train)
    out = np.zeros((len(test), len(PROGRAMMES)))
    for j in range(len(PROGRAMMES)):
        rows = allowed[:, j]
        learner = DRLearner(
            model_propensity=_booster(),
            model_regression=_booster(),
            model_final=_booster(regression=True),
            discrete_outcome=True,
            cv=2,
            random_state=0,
        )
        learner.fit(
            y[rows],
            referrals[rows, j],
            X=x[rows],
            W=np.delete(referrals[rows], j, axis=1),
        )
        out[:, j] = -np.ravel(learner.effect(x_test))
    return out


def observed_oracle(
    model: PathwayEffectModel, world: dict[str, float], seed: int, test: pd.DataFrame
) -> np.ndarray:
    """Return effects predicted by boosters fitted on an independent cohort's true effects."""
    cohort, truth = generate_cohort(
        SynthConfig.model_validate({"rows": ORACLE_ROWS, "seed": seed + 1000, **world})
    )
    x, x_test = model.encoder_.transform(cohort), model.encoder_.transform(test)
    return np.column_stack(
        [
            _booster(regression=True).fit(x, truth[f"effect_{p}"].to_numpy()).predict(x_test)
            for p in PROGRAMMES
        ]
    )


def _best_confident_else_default(
    estimates: PathwayEstimates, model: PathwayEffectModel
) -> np.ndarray:
    """Return the earlier branch's rule: the best *confident* programme, else the default."""
    rows = np.arange(estimates.effect.shape[0])
    best = np.argmax(np.where(estimates.recommended, estimates.effect, -np.inf), axis=1)
    default = model.default_programme_
    open_to = estimates.eligible & estimates.in_overlap
    fallback = (
        np.where(open_to[:, default], default, -1) if default >= 0 else np.full(rows.size, -1)
    )
    return np.where(estimates.recommended.any(axis=1), best, fallback)


def _largest_value_rule(estimates: PathwayEstimates, model: PathwayEffectModel) -> np.ndarray:
    """Return the served rule of the candidate with the largest out-of-fold value."""
    # With learner "auto" the values are named "learner:gate/margin": the served learner's.
    learner = getattr(model, "learner_", "dr")
    mine = {
        name.removeprefix(f"{learner}:"): value
        for name, value in model.selection_.items()
        if ":" not in name or name.startswith(f"{learner}:")
    }
    gate, margin = max(mine, key=mine.__getitem__).split("/")
    choice = served_choice(estimates, model.default_programme_, float(margin), gate == "gate")
    return choice.programme


def _cached(cache: Path | None, key: str, compute: Callable[[], np.ndarray | None]) -> Any:
    """Return ``compute()``, read from (or written to) ``cache/key.npy`` when a cache is given.

    The oracle's and EconML's effects do not depend on desist's settings: a
    re-run after a change to desist's learner need not refit them.
    """
    path = cache / f"{key}.npy" if cache is not None else None
    if path is not None and path.exists():
        return np.load(path)
    out = compute()
    if path is not None and out is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=60_000, help="people to learn from")
    parser.add_argument("--test-rows", type=int, default=TEST_ROWS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--world", choices=sorted(WORLDS), default="harder")
    parser.add_argument("--confounding", type=float, default=0.0)
    parser.add_argument("--places", type=float, default=0.10, help="places per programme")
    parser.add_argument("--no-econml", action="store_true")
    parser.add_argument(
        "--contrast",
        choices=("alone", "observed", "mix"),
        default="alone",
        help="the model's pseudo-outcome contrast (observed: before issue 17's change)",
    )
    parser.add_argument(
        "--bags",
        type=int,
        default=None,
        help="boosters averaged per final stage (the model's n_bags; default: the config's)",
    )
    parser.add_argument(
        "--learner",
        choices=("auto", "dr", "plugin"),
        default=None,
        help="the model's learner (default: the model's default)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder for the oracle's and EconML's effects (e.g. .desist/bench-cache)",
    )
    args = parser.parse_args()
    world = {**WORLDS[args.world], "confounding": args.confounding}
    config = load_pathway_config(CONFIG)
    n, t = args.rows, args.test_rows
    cohort, truth = generate_cohort(
        SynthConfig.model_validate({"rows": n + t, "seed": args.seed, **world})
    )
    train, test = cohort.iloc[:n], cohort.iloc[n:]
    y = train[config.target].to_numpy(dtype=int)
    true_all = truth[[f"effect_{p}" for p in PROGRAMMES]].to_numpy()
    true_train, true_test = true_all[:n], true_all[n:]
    rows = np.arange(t)
    allowed = rules.eligibility(test)

    def value(choice: np.ndarray) -> float:
        return float(np.where(choice >= 0, true_test[rows, np.maximum(choice, 0)], 0.0).mean())

    def top(effects: np.ndarray) -> np.ndarray:
        return np.argmax(np.where(allowed, effects, -np.inf), axis=1)

    load_before = os.getloadavg()
    started, started_cpu = time.perf_counter(), time.process_time()
    model = build_pathway_model(config).set_params(contrast=args.contrast)
    if args.bags is not None:
        model.set_params(n_bags=args.bags)
    if args.learner is not None:
        model.set_params(learner=args.learner)
    model.fit(train, y)
    fit_seconds, fit_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    estimates = model.estimate(test)
    served = served_choice(estimates, model.default_programme_, model.switch_margin_, model.gate_)
    load_after_fit = os.getloadavg()

    single = int(np.argmax(true_train.mean(axis=0)))
    confounded = f"-confounded{args.confounding}" if args.confounding else ""
    # The oracle and EconML do not depend on desist's contrast: one cache key.
    key = f"pathways-{args.world}{confounded}-{n}-seed{args.seed}"
    name = key if args.contrast == "alone" else f"{key}-{args.contrast}"
    name = name if args.bags is None else f"{name}-bags{args.bags}"
    name = name if args.learner is None else f"{name}-{args.learner}"
    oracle_effects = _cached(
        args.cache, f"{key}-oracle", lambda: observed_oracle(model, world, args.seed, test)
    )
    naive = rules.NaivePathwayModel().fit(train, y)
    # A plain S-learner (one booster on the assessment and the referrals) on the same rows:
    # bench_pathway_learnability found it ahead of desist's ungated estimates on other cohorts.
    x_train, x_test = model.encoder_.transform(train), model.encoder_.transform(test)
    referred = train[list(REFERRAL_COLUMNS)].to_numpy(dtype=float)
    plain = s_learner().fit(np.column_stack([x_train, referred]), y)
    values = {
        "desist_top1": value(served.programme),
        "best_single_programme": value(np.where(allowed[:, single], single, -1)),
        "best_reachable_from_observed_features": value(top(oracle_effects)),
        "latent_oracle": float(true_test.max(axis=1).mean()),
        "naive_learner": value(naive.policy(test)),
        "s_learner": value(top(effects_alone(plain, x_test))),
        "needs_score_rule_rnr": value(rules.rnr_policy(test)),
        "random": value(rules.random_policy(test, seed=1)),
        "most_common_need": value(rules.most_common_need_policy(test)),
        "desist_unrestricted_top1": value(top(estimates.effect)),
        "desist_best_confident_else_default": value(_best_confident_else_default(estimates, model)),
        "desist_gate_always_on": value(
            served_choice(estimates, model.default_programme_).programme
        ),
        # The earlier selection: the largest out-of-fold value, however small its gain.
        "desist_best_out_of_fold_candidate": value(_largest_value_rule(estimates, model)),
    }
    drl = (
        None
        if args.no_econml
        else _cached(args.cache, f"{key}-econml", lambda: econml_effects(model, train, y, test))
    )
    if drl is not None:
        values["econml_drlearner"] = value(top(drl))
    base, ceiling = values["best_single_programme"], values["best_reachable_from_observed_features"]
    room = ceiling - base
    shares = {k: round((v - base) / room, 3) for k, v in values.items() if room > 0}

    # Allocation under places.
    places = np.full(len(PROGRAMMES), round(args.places * t))
    programme_confident = np.array([model.programme_floor_[p] > 0 for p in PROGRAMMES])
    default = model.default_programme_
    open_positive = allocation_pairs(estimates, programme_confident, default, "positive")
    planned = allocate(
        estimates.effect,
        open_positive,
        places,
        priority=allocation_pairs(estimates, programme_confident, default, "group"),
    )
    strict = allocate(
        estimates.effect,
        allocation_pairs(estimates, programme_confident, default, "group"),
        places,
    )
    best_possible = allocate(true_test, allowed, places)
    by_need = highest_need_first(rules.need_scores(test), allowed, places)
    capacity_values = {
        "desist_allocation": value(planned.programme),
        "desist_allocation_served_group_rule": value(strict.programme),
        "capacity_constrained_oracle": value(best_possible.programme),
        "highest_need_first": value(by_need),
    }
    # In the no-effect world every total is zero: shares are then undefined.
    oracle_total = capacity_values["capacity_constrained_oracle"] or float("nan")
    attributes = {
        a: test[a].astype(object).fillna("not recorded").to_numpy() for a in ("ethnicity", "sex")
    }

    # Per-person figures on the recommended pairs.
    picked = estimates.recommended
    truth_picked = true_test[picked]
    person = person_figures(estimates, model.baseline_risk(model.encoder_.transform(test)))
    coverage = {
        "person_interval": float(
            ((person.low[picked] <= truth_picked) & (truth_picked <= person.high[picked])).mean()
        )
        if picked.any()
        else None,
        "group_interval": float(
            (
                (estimates.interval_low[picked] <= truth_picked)
                & (truth_picked <= estimates.interval_high[picked])
            ).mean()
        )
        if picked.any()
        else None,
    }
    zero_effect = true_test <= 0
    save(
        name,
        {
            "world": args.world,
            "world_settings": {**TODAYS_WORLD, **world},
            "rows_learned_from": n,
            "test_rows": t,
            "seed": args.seed,
            "fit_seconds": round(fit_seconds, 1),
            "fit_cpu_seconds": round(fit_cpu, 1),
            "policy_value": {k: round(v, 4) for k, v in values.items()},
            "share_of_oracle_gain_over_best_single": shares,
            "share_of_observed_feature_oracle": {
                k: round(v / ceiling, 3) for k, v in values.items() if ceiling > 0
            },
            "best_single_programme": PROGRAMMES[single],
            "served": {
                "confident_recommendation_share": round(float(served.confident.mean()), 3),
                "default_programme_share": round(
                    float((served.offered & ~served.confident).mean()), 3
                ),
                "nothing_offered_share": round(float((~served.offered).mean()), 3),
                "any_confident_programme_share": round(
                    float(estimates.recommended.any(axis=1).mean()), 3
                ),
                "confident_pairs_with_zero_true_effect": int((picked & zero_effect).sum()),
                "confident_people_with_a_zero_effect_programme": int(
                    (picked & zero_effect).any(axis=1).sum()
                ),
            },
            "selection_truth_free": {
                "default_programme": PROGRAMMES[default] if default >= 0 else None,
                "programme_value_dr": {p: round(v, 4) for p, v in model.programme_value_.items()},
                "programme_floor_dr": {p: round(v, 4) for p, v in model.programme_floor_.items()},
                "gate": model.gate_,
                "switch_margin": model.switch_margin_,
                "out_of_fold_dr_value": {k: round(v, 4) for k, v in model.selection_.items()},
                "contrast": model.contrast,
                "learner": model.learner,
                "learner_served": model.learner_,
                "n_bags": model.n_bags,
                "effect_trees": sum(m.n_iter_ for m in model.effect_models_.values()),
                "final_stage_scale": model.effect_scale_,
                "final_stage_dr_loss": {
                    p: {scale: round(v, 5) for scale, v in loss.items()}
                    for p, loss in model.final_stage_loss_.items()
                },
            },
            "load_average_1m_before_after_fit": [
                round(load_before[0], 2),
                round(load_after_fit[0], 2),
            ],
            "capacity": {
                "places_per_programme": int(places[0]),
                **{k: round(v, 4) for k, v in capacity_values.items()},
                "desist_share_of_oracle": round(
                    capacity_values["desist_allocation"] / oracle_total, 3
                ),
                "highest_need_first_share_of_oracle": round(
                    capacity_values["highest_need_first"] / oracle_total, 3
                ),
                "desist_group_rule_share_of_oracle": round(
                    capacity_values["desist_allocation_served_group_rule"] / oracle_total, 3
                ),
                "desist_filled": planned.filled.tolist(),
                "desist_group_rule_filled": strict.filled.tolist(),
                "shares_desist": {
                    a: allocation_shares(planned.programme, g) for a, g in attributes.items()
                },
                "shares_highest_need_first": {
                    a: allocation_shares(by_need, g) for a, g in attributes.items()
                },
            },
            "interval_coverage_of_truth_on_confident_pairs": coverage,
            "person_interval_contains_estimate": bool(
                ((person.low <= estimates.effect) & (estimates.effect <= person.high)).all()
            ),
            "mean_risk_without_and_with_the_served_programme": [
                round(float(person.risk_without[served.offered].mean()), 4),
                round(
                    float(
                        person.risk_with[served.offered, served.programme[served.offered]].mean()
                    ),
                    4,
                ),
            ]
            if served.offered.any()
            else None,
            "true_risk_without_and_with_the_served_programme": [
                round(float(truth["p_untreated"].to_numpy()[n:][served.offered].mean()), 4),
                round(
                    float(
                        truth["p_untreated"].to_numpy()[n:][served.offered].mean()
                        - true_test[served.offered, served.programme[served.offered]].mean()
                    ),
                    4,
                ),
            ]
            if served.offered.any()
            else None,
            "estimated_vs_true_mean_effect": {
                p: [
                    round(float(estimates.effect[estimates.eligible[:, j], j].mean()), 4),
                    round(float(true_test[estimates.eligible[:, j], j].mean()), 4),
                ]
                for j, p in enumerate(PROGRAMMES)
            },
        },
    )


if __name__ == "__main__":
    main()
