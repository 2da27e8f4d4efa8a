"""Spark for desist's batch jobs: a loopback-only session, and CSV text typed as pandas types it.

Kept apart from :mod:`pipeline.spark_scoring` so that a job can share one
session (tests, benchmarks, a long-lived driver) and so that the typing rule
that makes Spark's CSV text equal to ``pandas.read_csv``'s chunks is stated once.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def make_spark_session(master: str = "local[2]", *, app: str = "desist-score") -> SparkSession:
    """Return a Spark session for desist's jobs: loopback only, no UI, this virtualenv's Python.

    Executors run the interpreter that runs the driver (``PYSPARK_PYTHON``),
    so they import the same desist and scikit-learn.
    """
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    # Spark otherwise binds its block manager to the first non-loopback interface.
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def typed_like_read_csv(frame: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """Type a batch of CSV text as ``pandas.read_csv`` types a chunk.

    pandas' missing-value markers become missing; a column whose every value
    is a number becomes numeric; the identifier stays text.
    """
    typed: dict[str, pd.Series] = {}
    for name in frame.columns:
        text = frame[name].astype(object)
        text = text.where(~text.isin(STR_NA_VALUES) & text.notna(), None)
        if name == id_column:
            typed[name] = text.astype("string")
            continue
        try:
            typed[name] = pd.to_numeric(text)
        except (ValueError, TypeError):
            typed[name] = text
    return pd.DataFrame(typed, index=frame.index)
