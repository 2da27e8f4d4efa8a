"""Each issue-16 guarantee's test, run on the code before its fix: it must fail there.

A detached worktree of the commit before the fixes (``da16d35``: the parent of
the first fix, 7a73efa, and without the artifact contract of 7e66fe0) gets
this tree's versions of the guarantee tests and of the helpers they use
(``tests/support``, ``benchmarks/support``), with imports adapted to where the
old code kept the same things, and nothing else: the old code, conftests and
registry helper stay as they were. Each test is run there and here; a
guarantee is proven when its test passes here and fails there, and the reason
it fails there is recorded (an assertion about the behaviour, or a setting or
function the fix introduced and the old code lacks).

Run: ``.venv/bin/python -m benchmarks.bench_regressions [--old da16d35]``
(about 5 minutes; needs PostgreSQL on 127.0.0.1:5432 for items 2-3).
Results in ``benchmarks/results/regressions.json``; the worktree is removed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.common import save

REPO = Path(__file__).resolve().parents[1]

#: Issue 16 item -> the tests docs/reliability.md names for its guarantee.
GUARANTEES: dict[str, list[str]] = {
    "1 skops trusted types exact": [
        "tests/models/contract/test_artifact.py::test_mlmodel_asking_to_trust_eval_is_refused",
        "tests/models/contract/test_artifact.py::test_a_prefix_of_a_trusted_package_is_not_trusted",
        "tests/models/contract/test_artifact.py::"
        "test_a_skops_file_that_would_call_code_is_refused_before_anything_runs",
    ],
    "2 frozen database: 503 within 2 s": [
        "tests/serving/test_faults.py::test_a_frozen_postgresql_answers_503_within_2_s_and_recovers",
    ],
    "3 lost commit outcome: 503, marked in the export": [
        "tests/serving/test_faults.py::"
        "test_a_commit_whose_outcome_is_lost_is_answered_as_unknown_and_marked_in_the_export",
    ],
    "4 forwarded headers only from proxies": [
        "tests/serving/test_security.py::"
        "test_serve_trusts_forwarded_headers_only_from_configured_proxies",
        "tests/serving/test_live_edges.py::"
        "test_a_rotating_x_forwarded_for_does_not_escape_the_per_address_limit",
    ],
    "5 header and 422 bounds": [
        "tests/serving/test_live_edges.py::test_huge_headers_are_431",
        "tests/serving/test_live_edges.py::"
        "test_huge_422s_are_capped_and_healthz_stays_fast_beside_them",
        "tests/serving/test_scoring.py::"
        "test_many_problems_are_counted_and_only_the_first_described",
    ],
    "6 slow and vanishing clients": [
        "tests/serving/test_live_edges.py::test_slow_headers_are_cut_after_the_header_timeout",
        "tests/serving/test_live_edges.py::test_a_stalled_body_is_408",
        "tests/serving/test_live_edges.py::test_a_client_leaving_mid_upload_is_499_not_500",
    ],
    "8 export integrity": [
        "tests/serving/test_hostile.py::"
        "test_control_characters_and_line_separators_in_references_are_422",
        "tests/serving/test_hostile.py::"
        "test_client_names_with_control_characters_or_separators_are_refused",
        "tests/serving/test_hostile.py::"
        "test_an_export_has_one_line_per_row_for_any_accepted_reference",
    ],
    "9 exposure by configuration": [
        "tests/serving/test_security.py::test_docs_and_metrics_need_a_key_by_default",
        "tests/serving/test_security.py::"
        "test_docs_and_metrics_open_to_listed_addresses_or_when_configured",
        "tests/serving/test_security.py::test_docs_can_be_turned_off",
        "tests/serving/test_live_edges.py::test_no_server_header",
        "tests/serving/test_security.py::test_no_redirect_is_built_from_the_clients_host",
    ],
    "10 request deadline": [
        "tests/serving/test_worker.py::"
        "test_a_request_past_its_deadline_is_503_at_once_and_never_recorded",
    ],
}

#: Helpers the tests use, copied whole from this tree (the old conftests stay).
HELPERS = [
    "tests/support",
    "benchmarks/support/live.py",
    "benchmarks/support/assessments.py",
    "benchmarks/support/fuzzing.py",
]

#: (module, name) -> where the old code kept the same thing ("*": every name of the module).
MOVED = {
    ("models.contract.artifact", "directory_digest"): "models.digest",
    ("models.contract.artifact", "check_artifact_format"): "models.registered",
    ("models.contract.errors", "*"): "data.errors",
    ("models.contract.tags", "TAG_DIGEST"): "models.registered",
    ("models.contract.tags", "CHAMPION"): "pipeline.registry",
}

#: Written into the old tree: the venv's editable install of this project would
#: otherwise fill in any module the old tree lacks from the main checkout.
NO_EDITABLE_FALLBACK = """import sys

def ours(hook):
    return "__editable__" in getattr(hook, "__module__", "")

sys.meta_path[:] = [f for f in sys.meta_path if not ours(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not ours(h)]
sys.path_importer_cache.clear()
"""

PROJECT = ("benchmarks", "tests", "serving", "models", "data", "pipeline")

#: Run in the old tree: which (module, name) pairs it cannot import.
MISSING_SCRIPT = """
import importlib, json, sys
missing = []
for module, name in json.loads(sys.argv[1]):
    try:
        found = hasattr(importlib.import_module(module), name)
    except ImportError:
        found = False
    if not found:
        try:
            importlib.import_module(module + "." + name)
        except ImportError:
            missing.append([module, name])
print(json.dumps(missing))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", default="da16d35", help="the commit before the fixes")
    parser.add_argument("--worktree", type=Path, default=Path("/work/wt-old"))
    parser.add_argument(
        "--here-from", type=Path, help="a regressions.json whose results for this tree to reuse"
    )
    args = parser.parse_args()

    nodes = [node for tests in GUARANTEES.values() for node in tests]
    old = args.worktree
    if not old.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.old], check=True
        )
    try:
        stubs = _transplant(old, sorted({node.split("::")[0] for node in nodes}))
        # One run per file, and per test for the fault tests: a test the old code lets hang
        # (the frozen database of item 2) stops only itself, not the tests after it.
        there = {}
        for file in sorted({node.split("::")[0] for node in nodes}, key=lambda f: "faults" in f):
            mine = [node for node in nodes if node.startswith(file + "::")]
            for group in [[node] for node in mine] if "faults" in file else [mine]:
                there.update(_run(old, group, timeout=150 if "faults" in file else 300))
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False
        )
    if args.here_from is not None:
        saved = json.loads(args.here_from.read_text())["tests"]
        here = {_node(row["test"]): (row["here"], "") for row in saved}
    else:
        here = _run(REPO, nodes)
    table = []
    for guarantee, tests in GUARANTEES.items():
        for node in tests:
            table.append(
                {
                    "guarantee": guarantee,
                    "test": node.replace("tests/serving/", "").replace(
                        "tests/models/contract/", ""
                    ),
                    "here": here.get(node, ("not run", ""))[0],
                    "old": there.get(node, ("not run", ""))[0],
                    "why_old_fails": there.get(node, ("", ""))[1],
                }
            )
    for row in table:
        outcome = f"{row['here']:>7} here, {row['old']:>7} on {args.old}"
        print(f"{outcome}: {row['test']}  {row['why_old_fails']}")
    proven = [row for row in table if row["here"] == "passed" and row["old"] in ("failed", "error")]
    save(
        "regressions",
        {
            "old_commit": args.old,
            "new_commit": _head(REPO),
            "tests": table,
            "stubbed_imports": stubs,
            "proven": len(proven),
            "of": len(table),
        },
    )


def _transplant(old: Path, test_files: list[str]) -> list[str]:
    """Copy the tests and their helpers into the old tree, imports adapted; return the stubs.

    A name the old code has elsewhere is imported from there (:data:`MOVED`);
    a name it lacks (a later feature, or the fix's own error type) becomes a
    stub: an exception class for ``...Error`` names, else ``None``, so the
    module still loads and only the tests that use it fail.
    """
    (old / "sitecustomize.py").write_text(NO_EDITABLE_FALLBACK)
    copied: list[Path] = []
    for relative in [*HELPERS, *test_files]:
        source, target = REPO / relative, old / relative
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
            copied.extend(target.rglob("*.py"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            copied.append(target)
        init = target.parent / "__init__.py"
        if not init.exists():
            init.touch()
    stubs: list[str] = []
    for path in copied:
        stubs.extend(_adapt_imports(old, path))
    return stubs


def _adapt_imports(old: Path, path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    imports = [
        node
        for node in ast.parse("\n".join(lines)).body
        if isinstance(node, ast.ImportFrom)
        and node.module is not None
        and node.module.split(".")[0] in PROJECT
    ]
    wanted = [
        (_where(node.module or "", alias.name), alias.name)
        for node in imports
        for alias in node.names
    ]
    command = [sys.executable, "-c", MISSING_SCRIPT, json.dumps(wanted)]
    env = {**os.environ, "PYTHONPATH": str(old)}
    found = subprocess.run(command, cwd=old, env=env, capture_output=True, text=True, check=True)
    missing = {tuple(pair) for pair in json.loads(found.stdout)}
    stubs = []
    for node in reversed(imports):  # bottom up: line numbers above stay valid
        replacement = []
        for alias in node.names:
            module, local = _where(node.module or "", alias.name), alias.asname or alias.name
            if (module, alias.name) in missing:
                stubs.append(f"{path.relative_to(old)}: {node.module}.{alias.name}")
                stub = f"type({local!r}, (Exception,), {{}})" if local.endswith("Error") else "None"
                replacement.append(f"{local} = {stub}  # absent on the old commit")
            else:
                named = alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
                replacement.append(f"from {module} import {named}")
        lines[node.lineno - 1 : node.end_lineno] = replacement
    path.write_text("\n".join(lines) + "\n")
    return stubs


def _where(module: str, name: str) -> str:
    return MOVED.get((module, name)) or MOVED.get((module, "*")) or module


def _hung(stdout: str) -> str:
    """A summary line for the test that was running when the run timed out."""
    lines = [line for line in stdout.splitlines() if "::" in line]
    if not lines or PROGRESS.match(lines[-1]):
        return ""
    node = lines[-1].split(" ")[0].split("[")[0]
    return f"FAILED {node} - hung: no answer within the run's timeout"


#: pytest -v's line for a test done, and -rA's summary line (with the reason).
PROGRESS = re.compile(r"^(\S+?)(?:\[[^\]]*\])? (PASSED|FAILED|ERROR|SKIPPED)")
SUMMARY = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED) (\S+?)(?:\[[^\]]*\])?(?: - (.*))?$")


def _run(tree: Path, nodes: list[str], timeout: float = 600) -> dict[str, tuple[str, str]]:
    """Run ``nodes`` in ``tree``; return node -> (outcome, first line of why it failed)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    files = sorted({node.split("::")[0] for node in nodes})
    names = " or ".join(sorted({node.split("::")[1] for node in nodes}))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-v",
        "-p",
        "no:cacheprovider",
        "-rA",
        "--tb=line",
        "-k",
        names,
        *files,
    ]
    try:
        done = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=timeout
        )
        stdout = done.stdout
    except subprocess.TimeoutExpired as err:  # a test the old code lets hang
        stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        stdout += "\n" + _hung(stdout) + "\nTIMED OUT"
    outcomes: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        summary, progress = SUMMARY.match(line), PROGRESS.match(line)
        if summary is not None:
            status, node, why = summary.group(1), summary.group(2), summary.group(3) or ""
        elif progress is not None:
            node, status, why = progress.group(1), progress.group(2), ""
        else:
            continue
        status = status.lower()
        previous = outcomes.get(node)
        # A parametrised test counts as failed if any of its cases fails; a reason wins.
        if previous is None or previous[0] == "passed" or (status != "passed" and why):
            outcomes[node] = (status, why[:200])
    for node in nodes:
        if node not in outcomes:
            collection = [line for line in stdout.splitlines() if "Error" in line][:1]
            if "\nTIMED OUT" in stdout:
                outcomes[node] = ("not reached", "the run timed out before it")
            else:
                outcomes[node] = ("error", collection[0][:200] if collection else "not collected")
    return outcomes


def _node(test: str) -> str:
    """The node id of a test named as in the table (its directory left out)."""
    folder = "tests/models/contract/" if test.startswith("test_artifact") else "tests/serving/"
    return folder + test


def _head(tree: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


if __name__ == "__main__":
    main()
