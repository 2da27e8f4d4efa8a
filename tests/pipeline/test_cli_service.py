"""``desist serve``, ``keys``, ``audit export`` and ``outcomes import``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.cli_service import AUDIT_KINDS, KEY_SCOPES


@pytest.fixture
def service_home(home: Path) -> Iterator[Path]:
    """``home`` with the service's cached settings read afresh from it."""
    from serving.settings import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def _exported(kind: str, out: Path) -> pd.DataFrame:
    assert main(["audit", "export", "--kind", kind, "--out", str(out)]) == 0
    return pd.read_csv(out)


def test_keys_and_audit_commands(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from serving.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["keys", "create", "--client", "probation-cms", "--scope", "score"]) == 0
        key = capsys.readouterr().out.strip().splitlines()[-1]
        assert key.startswith("dsk_")
        key_id = key.split("_")[1]
        assert main(["keys", "revoke", "--key-id", key_id]) == 0
        assert "revoked 1 key" in capsys.readouterr().out
        out = tmp_path / "audit.csv"
        assert main(["audit", "export", "--since", "2026-01-01", "--out", str(out)]) == 0
        assert out.read_text().startswith("id,")
    finally:
        get_settings.cache_clear()


def test_serve_help_documents_every_option() -> None:
    from pipeline.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    serve = commands.choices["serve"]  # type: ignore[index]
    options = [a for a in serve._actions if a.dest != "help"]
    assert {a.dest for a in options} == {"host", "port", "workers"}
    assert all(a.help and "default" in a.help for a in options)
    assert "DESIST_" in (serve.description or "")


def test_the_choices_are_the_services() -> None:
    from serving.audit_export import AUDIT_TABLES
    from serving.keys import SCOPES

    assert KEY_SCOPES == SCOPES
    assert tuple(AUDIT_TABLES) == AUDIT_KINDS


def test_outcomes_import_records_every_row_of_a_valid_file(
    service_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "outcomes.parquet"
    pd.DataFrame(
        {
            "subject_ref": ["A-1", "A-2", "A-3"],
            "outcome_date": ["2026-03-04", None, "2026-01-31"],
            "follow_up_end": ["2026-06-30", "2026-06-30", "2026-02-01"],
        }
    ).to_parquet(file)
    assert main(["outcomes", "import", str(file)]) == 0
    assert "imported 3 outcome rows" in capsys.readouterr().out
    recorded = _exported("outcomes", tmp_path / "out.csv")
    assert recorded["subject_ref"].tolist() == ["A-1", "A-2", "A-3"]
    assert recorded["outcome_date"].isna().tolist() == [False, True, False]
    assert recorded["request_id"].nunique() == 1  # one import, one transaction


def test_outcomes_import_refuses_a_file_with_any_bad_row_and_records_nothing(
    service_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "outcomes.csv"
    rows = [("B-1", "", "2026-06-30"), ("B-2", "2026-13-01", "2026-06-30")]
    rows.append(("B-3", "2026-07-01", "2026-06-30"))  # a sanction after follow-up ended
    pd.DataFrame(rows, columns=["subject_ref", "outcome_date", "follow_up_end"]).to_csv(
        file, index=False
    )
    assert main(["outcomes", "import", str(file)]) == 2
    error = capsys.readouterr().err
    assert "outcome_date" in error and "row 2" in error and "not a date" in error
    assert "row 3" in error and "after the end of follow-up" in error
    assert _exported("outcomes", tmp_path / "out.csv").empty  # not even the good row
