"""``desist synth``, ``train``, ``cv``, ``mission``, ``allocate``: make data, train, allocate."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli_arguments import add_choice, add_group, add_job_inputs, add_threads

if TYPE_CHECKING:
    from pipeline.cli_arguments import Commands
    from pipeline.train_risk import TrainResult


def _synth(args: argparse.Namespace) -> int:
    from data.synthetic import SynthConfig, write_cohort

    config = SynthConfig(
        rows=args.rows,
        seed=args.seed,
        referrals=args.referrals,
        effect_scale=args.effect_scale,
    )
    started = time.perf_counter()
    files = write_cohort(config, args.out)
    seconds = time.perf_counter() - started
    print(
        f"Synthetic cohort: {files.rows:,} people, seed {config.seed}, "
        f"{config.referrals} referrals, 12-month re-offending {files.reoffending_rate:.1%}\n"
        f"  cohort: {files.cohort_path}\n"
        f"  ground truth (never a feature): {files.truth_path}\n"
        f"  took {seconds:.1f} s"
    )
    return 0


def _comparison_lines(result: TrainResult) -> str:
    """Incumbent and baselines on the same test rows, the ECE noise floor, fairness figures."""
    lines = []
    for name, auc in result.comparisons.items():
        if name not in result.auc_gains:
            continue  # desist's own families, printed above
        gain, low, high = result.auc_gains[name]
        lines.append(
            f"  {name:<28} test AUC {auc:.4f}; desist gain {gain:+.4f} "
            f"(95% CI {low:+.4f} to {high:+.4f})"
        )
    if math.isfinite(result.ece_noise_floor):
        lines.append(
            f"  ECE of a perfectly calibrated score on these rows: ~{result.ece_noise_floor:.3f} "
            f"(reaches the observed ECE in {result.ece_noise_p:.0%} of draws); "
            f"debiased calibration error {result.test['ece_debiased']:.3f}"
        )
    # The last summary line is the impossibility note; the report says it in full.
    lines += [f"  fairness: {line}" for line in result.fairness_summary[:-1]]
    return "".join(f"{line}\n" for line in lines)


def _calibration_lines(result: TrainResult) -> str:
    gate = result.calibration_gate
    if gate is None:
        return ""
    failed = ", ".join(f"{c.scope} {c.check}" for c in gate.failures())
    verdict = "passes" if gate.passed else f"FAILS ({failed})"
    judged = sum(c.passed is not None for c in gate.checks)
    return f"  calibration gate on the test split {verdict}: {judged} checks judged\n"


def _train_risk(args: argparse.Namespace) -> int:
    from pipeline.config import load_risk_config
    from pipeline.jobs import to_stderr
    from pipeline.tracking import Tracker
    from pipeline.train_risk import train

    config = load_risk_config(args.config, data=args.data, threads=args.threads)
    tracker = Tracker.from_environment()
    result = train(config, tracker=tracker, progress=to_stderr)
    test = result.test
    print(
        f"\nRisk model trained in {result.seconds:.0f} s\n"
        f"  run:        {result.run_id} (experiment {config.experiment})\n"
        f"  registered: {result.registered_model} version {result.version} "
        f"({result.selected_family})\n"
        f"  test AUC    {test['roc_auc']:.3f} "
        f"(95% CI {test['roc_auc_ci_low']:.3f}-{test['roc_auc_ci_high']:.3f}), "
        f"ECE {test['ece']:.3f}, Brier {test['brier']:.3f}, "
        f"slope {test['calibration_slope']:.2f}\n"
        f"  largest group calibration gap {result.max_group_calibration_gap:.3f}\n"
        + _calibration_lines(result)
        + "".join(
            f"  {f.family:<10} test AUC {f.test['roc_auc']:.4f}, ECE {f.test['ece']:.4f}, "
            f"fit {f.fit_seconds:.1f} s\n"
            for f in result.families
        )
        + _comparison_lines(result)
        # The config names the registered model and its gates: without it the
        # command would look for the default model's version instead.
        + f"  promote:    desist promote risk --config {args.config} --version {result.version}\n"
        f"  browse:     {tracker.ui_command()}"
    )
    return 0


def _cv_risk(args: argparse.Namespace) -> int:
    from pipeline.config import load_risk_config
    from pipeline.cross_validation import study_features
    from pipeline.jobs import job_threads, to_stderr

    config = load_risk_config(args.config, data=args.data, threads=args.threads)
    with job_threads(config.threads, to_stderr):
        study = study_features(
            config, extra=tuple(args.extra), folds=args.folds, progress=to_stderr
        )
    print(
        f"\n{args.folds}-fold cross-validation on {study.rows:,} rows (test split set aside)\n"
        "  features added in config order; AUC mean (sd) over folds:"
    )
    for row in study.steps.itertuples():
        print(f"  {row.family:<10} + {row.added:<32} {row.roc_auc_mean:.4f} ({row.roc_auc_sd:.4f})")
    how = f", cross-fitted {config.calibration_folds}-fold" if config.cross_fitted else ""
    print(f"  with the config's features and {config.calibration} calibration{how}:")
    for row in study.calibrated.itertuples():
        print(
            f"  {row.family:<10} AUC {row.roc_auc_mean:.4f}, ECE {row.ece_mean:.4f} "
            f"(sd {row.ece_sd:.4f}; a perfectly calibrated score: ~{row.ece_noise_floor:.4f}; "
            f"debiased {row.ece_debiased_mean:.4f})"
        )
    return 0


def _train_pathways(args: argparse.Namespace) -> int:
    from pipeline.config import load_pathway_config
    from pipeline.jobs import to_stderr
    from pipeline.tracking import Tracker
    from pipeline.train_pathways import train

    config = load_pathway_config(args.config, data=args.data, threads=args.threads)
    tracker = Tracker.from_environment()
    result = train(config, tracker=tracker, progress=to_stderr)
    lines = [
        f"\nPathway model trained in {result.seconds:.0f} s",
        f"  run:        {result.run_id} (experiment {config.experiment})",
        f"  registered: {result.registered_model} version {result.version}",
        "  estimated mean reduction in 12-month re-offending on the test split (95% CI):",
    ]
    for name, (mean, low, high) in result.policy_values.items():
        lines.append(f"    {name:<24} {mean:+.3f} ({low:+.3f} to {high:+.3f})")
    lines.append(f"  people with at least one recommendation: {result.recommended_share:.0%}")
    # As the risk job: the config names the registered model and its gates.
    lines.append(
        f"  promote:    desist promote pathways --config {args.config} --version {result.version}"
    )
    lines.append(f"  browse:     {tracker.ui_command()}")
    print("\n".join(lines))
    return 0


def _mission(args: argparse.Namespace) -> int:
    from pipeline.jobs import to_stderr
    from pipeline.mission import run_mission_from_files

    print(run_mission_from_files(args.risk_config, args.pathway_config, args.threads, to_stderr))
    return 0


def _allocate(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from data.loaders import read_table
    from data.schema import PROGRAMMES
    from models.allocation import allocate_cohort, allocation_shares
    from models.contract.fetch import fetch_model
    from models.pathways import PathwayEffectModel
    from pipeline.tracking import Tracker

    tracker = Tracker.from_environment()
    with tracker.activate():
        loaded = fetch_model(args.model, PathwayEffectModel, tracking_uri=tracker.tracking_uri)
    cohort = read_table(args.file)
    # A share of the cohort per programme (0.1) or a number of places (25).
    each = round(args.places * len(cohort)) if args.places < 1 else int(args.places)
    result = allocate_cohort(loaded.model, cohort, np.full(len(PROGRAMMES), each))
    lines = [
        f"Allocated {int((result.programme >= 0).sum()):,} of {len(cohort):,} people "
        f"({each:,} places per programme) with {loaded.label}",
        f"  total estimated reduction in 12-month re-offending: {result.total:.1f} people",
    ]
    lines += [
        f"    {p:<22} {n:>6,} places filled" for p, n in zip(PROGRAMMES, result.filled, strict=True)
    ]
    for attribute in ("ethnicity", "sex"):
        if attribute in cohort.columns:
            groups = cohort[attribute].astype(object).fillna("not recorded").to_numpy()
            lines.append(f"  share of places by {attribute} (cohort share -> allocated share):")
            for label, share in allocation_shares(result.programme, groups).items():
                lines.append(
                    f"    {label:<22} {share['cohort_share']:.1%} -> {share['allocated_share']:.1%}"
                )
    if args.out is not None:
        names = np.array([*PROGRAMMES, ""], dtype=object)
        pd.DataFrame({"row": np.arange(len(cohort)), "programme": names[result.programme]}).to_csv(
            args.out, index=False
        )
        lines.append(f"  allocation: {args.out}")
    print("\n".join(lines))
    return 0


def add_training_commands(commands: Commands) -> None:
    """Add ``synth``, ``train risk|pathways``, ``mission``, ``cv risk`` and ``allocate``."""
    synth = commands.add_parser("synth", help="generate a synthetic IOM cohort")
    synth.add_argument("--rows", type=int, default=20_000, help="people (default 20,000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet")
    add_choice(
        synth,
        "--referrals",
        ("practice", "randomised"),
        "historic referrals as practice makes them (confounded) or randomised",
    )
    synth.add_argument(
        "--effect-scale",
        type=float,
        default=1.0,
        help="multiplies every programme's true effect; 0 means nothing works",
    )
    synth.set_defaults(handler=_synth)

    train_kinds = add_group(commands, "train", "train a model from a config", dest="kind")
    risk = train_kinds.add_parser("risk", help="re-offending risk model")
    add_job_inputs(risk, "TOML config, e.g. configs/synthetic.toml")
    risk.set_defaults(handler=_train_risk)
    pathways = train_kinds.add_parser("pathways", help="pathway-effect (recommendation) model")
    add_job_inputs(pathways, "TOML, e.g. configs/pathways.toml")
    pathways.set_defaults(handler=_train_pathways)

    mission = commands.add_parser(
        "mission",
        help="the whole mission: train and promote both models, serve, score, audit, report",
    )
    for kind, default in (("risk", "synthetic.toml"), ("pathway", "pathways.toml")):
        mission.add_argument(
            f"--{kind}-config", type=Path, default=Path("configs", default), help=f"{kind} TOML"
        )
    add_threads(mission)
    mission.set_defaults(handler=_mission)

    cv_kinds = add_group(
        commands, "cv", "cross-validate feature choices without the test split", dest="kind"
    )
    cv_risk = cv_kinds.add_parser("risk", help="nested feature sets of a risk config")
    add_job_inputs(cv_risk, "TOML risk config")
    cv_risk.add_argument("--folds", type=int, default=5, help="folds (default 5)")
    cv_risk.add_argument(
        "--extra", nargs="*", default=[], help="candidate features tried after the config's"
    )
    cv_risk.set_defaults(handler=_cv_risk)

    allocate = commands.add_parser(
        "allocate", help="allocate a cohort to programmes with limited places (pathway model)"
    )
    allocate.add_argument("file", type=Path, help="assessments, .csv or .parquet")
    allocate.add_argument(
        "--places",
        type=float,
        default=0.1,
        help="places per programme: a share of the cohort below 1, else a number (default 0.1)",
    )
    allocate.add_argument(
        "--model", default="models:/desist-pathways@champion", help="pathway model URI"
    )
    allocate.add_argument("--out", type=Path, default=None, help="write the allocation, .csv")
    allocate.set_defaults(handler=_allocate)
