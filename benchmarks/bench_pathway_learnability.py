"""How much of the personalisation gain can be learnt from outcomes at all (issue 17).

``bench_pathways`` judges desist's pathway model by its share of the
observed-feature oracle's gain over the best single programme. This asks what
share a plain learner reaches when it learns from the same kind of data, at
several cohort sizes, in two ways:

- ``observed_outcomes``: an S-learner (one booster on the assessment and the
  referrals, ``reoffended_12m`` as target; a programme's effect alone is its
  prediction with no referral minus its prediction with that one) fitted on
  the 0/1 outcomes a real cohort has;
- ``noise_free_target``: the same learner fitted on each person's *true*
  probability of re-offending given their referrals (``p_reoffend`` from the
  generator): what the learner could do with unlimited outcomes per person.

The gap between the two is what outcome noise costs at that size; the second
is near the ceiling of learning from outcomes with this model class. Both
policies are the largest estimate among eligible programmes (no gate), judged
by the true reductions of the same 60,000 test people as ``bench_pathways``
(same world, seed and oracle, so the shares compare). The training cohorts
are independent (seed + 2000), one per size, nested.

Run (threads 1, ``nice`` on a shared machine)::

    OMP_NUM_THREADS=1 nice .venv/bin/python -m benchmarks.bench_pathway_learnability \\
        --seed 1 [--world harder] [--sizes 7315 15000 60000 240000] [--heterogeneity 1.0] \\
        [--cache .desist/bench-cache]

Figures go to ``benchmarks/results/pathway-learnability-<world>-seed<seed>.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks.bench_pathways import (
    CONFIG,
    TEST_ROWS,
    WORLDS,
    _cached,
    effects_alone,
    observed_oracle,
    s_learner,
)
from benchmarks.common import save
from data.schema import PROGRAMMES
from data.synthetic import generate_cohort
from data.synthetic_world import SynthConfig
from models import pathway_rules as rules
from models.encoding import AssessmentEncoder
from models.pathways import REFERRAL_COLUMNS
from pipeline.config import load_pathway_config
from pipeline.pathway_evaluation import build_pathway_model

SIZES = (7_315, 15_000, 60_000, 240_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--world", choices=sorted(WORLDS), default="harder")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--heterogeneity", type=float, default=None, help="override effect_heterogeneity"
    )
    parser.add_argument("--cache", type=Path, default=None, help="the oracle's cache folder")
    args = parser.parse_args()
    world = dict(WORLDS[args.world])
    if args.heterogeneity is not None:
        world["effect_heterogeneity"] = args.heterogeneity
    config = load_pathway_config(CONFIG)
    features = build_pathway_model(config).features

    # The test people and the oracle of bench_pathways (its 60,000-row run of this seed).
    cohort, truth = generate_cohort(
        SynthConfig.model_validate({"rows": 60_000 + TEST_ROWS, "seed": args.seed, **world})
    )
    test = cohort.iloc[60_000:]
    true_test = truth[[f"effect_{p}" for p in PROGRAMMES]].to_numpy()[60_000:]
    encoder = AssessmentEncoder(features).fit(cohort.iloc[:60_000])
    x_test = encoder.transform(test)
    tag = "" if args.heterogeneity is None else f"-heterogeneity{args.heterogeneity:g}"
    fitted = SimpleNamespace(encoder_=encoder)  # all observed_oracle reads of a fitted model
    oracle = _cached(
        args.cache if not tag else None,  # bench_pathways' key is for the world's own setting
        f"pathways-{args.world}-60000-seed{args.seed}-oracle",
        lambda: observed_oracle(fitted, world, args.seed, test),  # type: ignore[arg-type]
    )
    allowed = rules.eligibility(test)
    rows = np.arange(len(test))

    def value(choice: np.ndarray) -> float:
        return float(np.where(choice >= 0, true_test[rows, np.maximum(choice, 0)], 0.0).mean())

    def top(effects: np.ndarray) -> np.ndarray:
        return np.argmax(np.where(allowed, effects, -np.inf), axis=1)

    learn, learn_truth = generate_cohort(
        SynthConfig.model_validate({"rows": max(args.sizes), "seed": args.seed + 2000, **world})
    )
    true_learn = learn_truth[[f"effect_{p}" for p in PROGRAMMES]].to_numpy()
    single = int(np.argmax(true_learn.mean(axis=0)))
    base = value(np.where(allowed[:, single], single, -1))
    ceiling = value(top(oracle))

    def share(effects: np.ndarray) -> float:
        return round((value(top(effects)) - base) / (ceiling - base), 3)

    sizes: dict[str, Any] = {}
    for n in sorted(args.sizes):
        part = learn.iloc[:n]
        design = np.column_stack(
            [encoder.transform(part), part[list(REFERRAL_COLUMNS)].to_numpy(dtype=float)]
        )
        started = time.perf_counter()
        outcomes = s_learner(regression=False).fit(design, part[config.target].to_numpy(int))
        noise_free = s_learner(regression=True).fit(
            design, learn_truth["p_reoffend"].to_numpy()[:n]
        )
        sizes[str(n)] = {
            "observed_outcomes": share(effects_alone(outcomes, x_test, proba=True)),
            "noise_free_target": share(effects_alone(noise_free, x_test, proba=False)),
            "fit_seconds": round(time.perf_counter() - started, 1),
        }
        print(n, sizes[str(n)], flush=True)
    truly_best = true_test.max(axis=1) > true_test[:, single] + 1e-12
    save(
        f"pathway-learnability-{args.world}{tag}-seed{args.seed}",
        {
            "world": args.world,
            "world_settings": world,
            "seed": args.seed,
            "test_rows": len(test),
            "what": "share of the observed-feature oracle's gain over the best single programme, "
            "ungated top-1 of a plain S-learner",
            "best_single_programme": PROGRAMMES[single],
            "policy_value": {"best_single_programme": round(base, 4), "oracle": round(ceiling, 4)},
            "people_truly_best_served_elsewhere": round(float(truly_best.mean()), 3),
            "share_by_size": sizes,
        },
    )


if __name__ == "__main__":
    main()
