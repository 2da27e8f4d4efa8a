"""Every ``desist.`` tag name, and the typed tags a registered model version carries.

This is the one module where a tag name is written. :class:`VersionTags`
describes the tags of a registered version (written at registration, plus
the promotion record the gates add later), with a round trip to and from
MLflow's ``dict[str, str]``. The other names are those of run tags (what a
job records on its MLflow runs), of batch-scoring output metadata, and the
``champion`` alias.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from models.contract.errors import VersionTagError

#: The alias of the version that is served (moved only by a gated promotion).
CHAMPION = "champion"

_PREFIX = "desist."

# --- tags of a registered version -------------------------------------------------------
TAG_RUN = _PREFIX + "run_id"
TAG_FAMILY_RUN = _PREFIX + "family_run_id"
TAG_FAMILY = _PREFIX + "family"
TAG_FEATURES = _PREFIX + "features"
TAG_AUDIT_ONLY = _PREFIX + "audit_only"
TAG_AUDITED = _PREFIX + "audited"
TAG_AUC = _PREFIX + "test_roc_auc"
TAG_ECE = _PREFIX + "test_ece"
TAG_GROUP_GAP = _PREFIX + "max_group_calibration_gap"
TAG_DIGEST = _PREFIX + "artifact_digest"
TAG_DATASET = _PREFIX + "dataset"
TAG_BANDS = _PREFIX + "bands"
TAG_TRAINED_AT = _PREFIX + "trained_at"
TAG_MODEL_CARD = _PREFIX + "model_card"
TAG_POLICY_VALUE = _PREFIX + "estimated_policy_value"
TAG_RNR_VALUE = _PREFIX + "estimated_rnr_value"
# Written by a promotion: the whole record, its decision, and one pass/fail tag per gate.
TAG_GATES = _PREFIX + "gates"
TAG_PROMOTION = _PREFIX + "promotion"
GATE_TAG_PREFIX = _PREFIX + "gate."
#: Written at registration: the calibration gate's record (``<prefix>passed`` and every figure).
CALIBRATION_TAG_PREFIX = _PREFIX + "calibration."
#: The calibration gate's decision among the tags under :data:`CALIBRATION_TAG_PREFIX`.
CALIBRATION_PASSED = "passed"

# --- tags of a job's MLflow runs ---------------------------------------------------------
#: A family's child run: which family it fitted (same name as the version tag).
RUN_FAMILY = TAG_FAMILY
RUN_SELECTED_FAMILY = _PREFIX + "selected_family"
RUN_REGISTERED_VERSION = _PREFIX + "registered_version"
RUN_LEAKAGE_WARNING = _PREFIX + "leakage_warning"
RUN_ERROR = _PREFIX + "error"
RUN_DATASET_SHA256 = _PREFIX + "dataset_sha256"
RUN_ROWS = _PREFIX + "rows"
#: The thread budget a job ran with, and why that many (``pipeline.jobs``).
RUN_THREADS = _PREFIX + "threads"
RUN_THREADS_REASON = _PREFIX + "threads_reason"

# --- monitoring runs, and what they leave on the version they watch -----------------------
MONITOR_MODEL = _PREFIX + "monitored_model"
MONITOR_VERSION = _PREFIX + "monitored_version"
MONITOR_ALERT = _PREFIX + "alert"
MONITOR_ALERTS = _PREFIX + "alerts"
MONITOR_STAGE = _PREFIX + "monitoring_stage"
#: On the registered version: its latest monitoring run, and whether it alerted.
TAG_LAST_MONITORING_RUN = _PREFIX + "last_monitoring_run"
TAG_LAST_MONITORING_ALERT = _PREFIX + "last_monitoring_alert"
#: On the registered version: where its training reference (for drift) is logged.
TAG_TRAINING_REFERENCE = _PREFIX + "training_reference"

#: On the registered family's run (the version's source run): the job's parent run and
#: where its fairness report and comparison are (``runs:/`` URIs).
RUN_PARENT = _PREFIX + "parent_run_id"
RUN_FAIRNESS_REPORT = _PREFIX + "fairness_report"
RUN_COMPARISON = _PREFIX + "comparison"

# --- metadata of a batch-scoring output file (Parquet) -----------------------------------
META_MODEL_URI = _PREFIX + "model_uri"
META_MODEL = _PREFIX + "model"
META_DIGEST = TAG_DIGEST
META_VERIFIED = _PREFIX + "verified"
META_BANDS = TAG_BANDS
META_EXPLANATION_METHOD = _PREFIX + "explanation_method"
META_SCORED_AT = _PREFIX + "scored_at"
#: Which engine scored the file (Spark writes ``spark <master>``).
META_ENGINE = _PREFIX + "engine"


def calibration_tag(name: str) -> str:
    """Return the tag of the calibration gate's record entry ``name`` (e.g. ``passed``)."""
    return CALIBRATION_TAG_PREFIX + name


def calibration_entries(tags: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Return the calibration gate's record among ``tags``, names without their prefix."""
    return tuple(
        (tag.removeprefix(CALIBRATION_TAG_PREFIX), text)
        for tag, text in tags.items()
        if tag.startswith(CALIBRATION_TAG_PREFIX)
    )


def gate_tag(gate: str) -> str:
    """Return the tag that records whether gate ``gate`` passed (``pass`` or ``fail``)."""
    return GATE_TAG_PREFIX + gate


@dataclass(frozen=True, slots=True)
class DatasetTag:
    """The training data a version was fitted on: its name, origin and content digest."""

    name: str
    source: str
    sha256: str


def _text(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError("not text")
    return value


#: Figures are recorded to 6 decimals; :class:`VersionTags` keeps them at that precision.
FIGURE_DECIMALS = 6


def _figure(value: float) -> str:
    return f"{value:.{FIGURE_DECIMALS}f}"


def _names(text: str) -> tuple[str, ...]:
    found = json.loads(text)
    if not isinstance(found, list) or not all(isinstance(n, str) for n in found):
        raise ValueError("not a JSON list of names")
    return tuple(found)


def _cutoffs(text: str) -> tuple[float, ...]:
    found = json.loads(text)
    if not isinstance(found, list) or not all(isinstance(c, int | float) for c in found):
        raise ValueError("not a JSON list of numbers")
    return tuple(float(c) for c in found)


def _dataset(text: str) -> DatasetTag:
    found = json.loads(text)
    if not isinstance(found, dict) or set(found) != {"name", "source", "sha256"}:
        raise ValueError("not a JSON object of name, source and sha256")
    return DatasetTag(name=found["name"], source=found["source"], sha256=found["sha256"])


def _dataset_text(value: DatasetTag) -> str:
    return json.dumps({"name": value.name, "source": value.source, "sha256": value.sha256})


@dataclass(frozen=True, slots=True)
class _Codec:
    """How one field is written as a tag value, and read back (raising ``ValueError``)."""

    tag: str
    write: Callable[[Any], str]
    read: Callable[[str], Any]


_TEXT = (_text, _text)
_FIGURE = (_figure, float)
_NAMES = (lambda names: json.dumps(list(names)), _names)

#: Field of :class:`VersionTags` -> its tag. The order is the order tags are written in.
_CODECS: dict[str, _Codec] = {
    "run_id": _Codec(TAG_RUN, *_TEXT),
    "family_run_id": _Codec(TAG_FAMILY_RUN, *_TEXT),
    "family": _Codec(TAG_FAMILY, *_TEXT),
    "features": _Codec(TAG_FEATURES, *_NAMES),
    "audit_only": _Codec(TAG_AUDIT_ONLY, *_NAMES),
    "audited": _Codec(TAG_AUDITED, *_NAMES),
    "test_roc_auc": _Codec(TAG_AUC, *_FIGURE),
    "test_ece": _Codec(TAG_ECE, *_FIGURE),
    "max_group_calibration_gap": _Codec(TAG_GROUP_GAP, *_FIGURE),
    "estimated_policy_value": _Codec(TAG_POLICY_VALUE, *_FIGURE),
    "estimated_rnr_value": _Codec(TAG_RNR_VALUE, *_FIGURE),
    "digest": _Codec(TAG_DIGEST, *_TEXT),
    "dataset": _Codec(TAG_DATASET, _dataset_text, _dataset),
    "bands": _Codec(TAG_BANDS, lambda cutoffs: json.dumps(list(cutoffs)), _cutoffs),
    "trained_at": _Codec(TAG_TRAINED_AT, *_TEXT),
    "model_card": _Codec(TAG_MODEL_CARD, *_TEXT),
    "gates_record": _Codec(TAG_GATES, *_TEXT),
    "promotion": _Codec(TAG_PROMOTION, *_TEXT),
    "training_reference": _Codec(TAG_TRAINING_REFERENCE, *_TEXT),
}
#: Tags every version carries; the others depend on the model's kind and on promotion.
_REQUIRED = ("run_id", "features", "audit_only", "digest", "trained_at")
_FIGURES = frozenset(name for name, codec in _CODECS.items() if codec.read is float)
_GATE_RESULTS = {"pass": True, "fail": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionTags:
    """The tags of a registered model version, typed.

    Every version carries ``run_id`` (the job's parent run), its
    ``features`` and ``audit_only`` fields, the ``digest`` of its files and
    when it was ``trained_at`` (ISO 8601 text). A risk version adds its
    family, audited attributes, test figures, dataset, bands and model card;
    a pathway version its estimated policy values. A promoted (or refused)
    version carries the promotion record (``gates_record``, JSON text), its
    ``promotion`` decision and one result per gate (``gate_results``). A risk
    version also carries the calibration gate's record (``calibration``:
    entry name under :data:`CALIBRATION_TAG_PREFIX` -> text, as
    :meth:`pipeline.calibration_checks.CalibrationGateResult.to_tags` gives it).

    Figures are kept to :data:`FIGURE_DECIMALS` decimals, the precision of
    their tags, so that ``from_mlflow_tags(tags.to_mlflow_tags()) == tags``.
    """

    run_id: str
    features: tuple[str, ...]
    audit_only: tuple[str, ...]
    digest: str
    trained_at: str
    family_run_id: str | None = None
    family: str | None = None
    audited: tuple[str, ...] | None = None
    test_roc_auc: float | None = None
    test_ece: float | None = None
    max_group_calibration_gap: float | None = None
    estimated_policy_value: float | None = None
    estimated_rnr_value: float | None = None
    dataset: DatasetTag | None = None
    bands: tuple[float, ...] | None = None
    model_card: str | None = None
    gates_record: str | None = None
    promotion: str | None = None
    gate_results: tuple[tuple[str, bool], ...] = ()
    calibration: tuple[tuple[str, str], ...] = ()
    #: Where the version's training reference (drift bins) is logged: a ``runs:/`` URI.
    training_reference: str | None = None

    def __post_init__(self) -> None:
        for name, value in ((f.name, getattr(self, f.name)) for f in fields(self)):
            if name in _FIGURES and value is not None:
                object.__setattr__(self, name, round(float(value), FIGURE_DECIMALS))
            elif isinstance(value, list):  # a list given for a tuple field: keep it immutable
                object.__setattr__(self, name, tuple(value))
        # One order, that of the tags read back, so that the round trip gives an equal value.
        object.__setattr__(self, "gate_results", tuple(sorted(self.gate_results)))
        object.__setattr__(self, "calibration", tuple(sorted(self.calibration)))

    @property
    def calibration_passed(self) -> bool | None:
        """Return the calibration gate's decision, or None when the version has no record."""
        found = dict(self.calibration).get(CALIBRATION_PASSED)
        return None if found is None else found == "true"

    def to_mlflow_tags(self) -> dict[str, str]:
        """Return the tags as MLflow stores them (absent fields are left out)."""
        tags = {
            codec.tag: codec.write(getattr(self, name))
            for name, codec in _CODECS.items()
            if getattr(self, name) is not None
        }
        for gate, passed in self.gate_results:
            tags[gate_tag(gate)] = "pass" if passed else "fail"
        for name, text in self.calibration:
            tags[calibration_tag(name)] = text
        return tags

    @classmethod
    def from_mlflow_tags(cls, tags: Mapping[str, str]) -> VersionTags:
        """Read a version's tags; tags that are not desist's own are ignored.

        Raises
        ------
        VersionTagError
            Naming the tag, if a required one is missing or any holds a bad value.
        """
        values: dict[str, Any] = {}
        for name, codec in _CODECS.items():
            if codec.tag not in tags:
                if name in _REQUIRED:
                    raise VersionTagError(codec.tag, "missing")
                continue
            try:
                values[name] = codec.read(tags[codec.tag])
            except (ValueError, TypeError) as err:
                raise VersionTagError(codec.tag, f"bad value {tags[codec.tag]!r:.80}") from err
        results = []
        for tag in sorted(t for t in tags if t.startswith(GATE_TAG_PREFIX)):
            if tags[tag] not in _GATE_RESULTS:
                raise VersionTagError(tag, f"bad value {tags[tag]!r:.80} (pass or fail)")
            results.append((tag.removeprefix(GATE_TAG_PREFIX), _GATE_RESULTS[tags[tag]]))
        calibration = calibration_entries(tags)
        passed = dict(calibration).get(CALIBRATION_PASSED)
        if passed is not None and passed not in ("true", "false"):
            raise VersionTagError(
                calibration_tag(CALIBRATION_PASSED), f"bad value {passed!r:.80} (true or false)"
            )
        return cls(**values, gate_results=tuple(results), calibration=calibration)
