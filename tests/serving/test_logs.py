"""Log lines: the JSON each record becomes, its time, and the request line's cheaper path."""

from __future__ import annotations

import json
import logging
import math
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving.logs import _STANDARD, JsonFormatter, get_logger, iso_milliseconds, log_info

EXTRA = {
    "request_id": "0123456789abcdef0123456789abcdef",
    "client": "caf\u00e9 \u2603",  # non-ASCII: escaped, standard error may not be UTF-8
    "method": "POST",
    "route": "/v1/risk-scores",
    "status": 200,
    "latency_ms": 1.234,
    "nothing": None,
    "where": Path("/tmp/x"),  # not JSON: as its str()
}


def _reference_line(record: logging.LogRecord) -> str:
    """The line as the formatter wrote it before it was made cheaper."""
    entry: dict[str, object] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            entry[key] = value
    return json.dumps(entry, default=str)


def test_times_are_those_of_datetime_to_the_millisecond() -> None:
    rng = random.Random(3)
    base = 1_764_800_000.0
    times = [base + rng.uniform(-1e8, 1e8) for _ in range(20_000)]
    # Around rounding to the microsecond and to the next second.
    times += [base + k / 1e6 + d for k in range(0, 1_000_000, 9_973) for d in (0, 5e-7, 4.9e-7)]
    times += [base + 0.9999995, base + 0.99999949, math.nextafter(base + 1, 0), 0.0, -1.5]
    for created in times:
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert iso_milliseconds(created) == expected, created


def test_a_line_is_the_same_json_as_before_with_non_ascii_escaped() -> None:
    logger = logging.getLogger("desist.test.format")
    record = logger.makeRecord(
        logger.name, logging.INFO, "f.py", 1, "a %s", ("b",), None, None, EXTRA
    )
    line = JsonFormatter().format(record)
    assert line == _reference_line(record)
    assert line.isascii() and "\\u00e9" in line
    parsed = json.loads(line)
    assert parsed["client"] == EXTRA["client"] and parsed["where"] == "/tmp/x"
    assert parsed["message"] == "a b" and parsed["level"] == "info"


def test_log_info_makes_the_record_logger_info_makes(caplog: pytest.LogCaptureFixture) -> None:
    logger = get_logger("test.log_info")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("request", extra=EXTRA)
        log_info(logger, "request", EXTRA)
    plain, cheap = caplog.records
    skip = {"created", "msecs", "relativeCreated", "lineno"}
    assert {k: v for k, v in vars(cheap).items() if k not in skip} == {
        k: v for k, v in vars(plain).items() if k not in skip
    }
    assert cheap.funcName == "test_log_info_makes_the_record_logger_info_makes"
    assert cheap.pathname == __file__
    formatter = JsonFormatter()
    cheap.created = plain.created
    assert formatter.format(cheap) == formatter.format(plain)


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_log_info_respects_the_level() -> None:
    logger = get_logger("test.log_info.level")
    handler = _Kept()
    seen = handler.records
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        log_info(logger, "request", EXTRA)
        assert seen == []
        logger.setLevel(logging.INFO)
        log_info(logger, "request", EXTRA)
        assert [r.getMessage() for r in seen] == ["request"]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
