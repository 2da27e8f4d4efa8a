"""The canonical offender assessment: the single source of truth for columns.

An assessment is recorded the way practice records it (OASys-style sections):
static factors from the criminal record, needs items scored
0 = no problems, 1 = some problems, 2 = significant problems for each of the
seven resettlement pathways, and protected characteristics that are kept for
the fairness audit only.

Everything here is declarative: a tuple of :class:`FieldSpec` and a tuple of
:class:`CrossFieldRule`. Validation (:mod:`data.validation`), the synthetic
generator, the model feature lists and the HTTP request models of the scoring
service are all derived from these declarations, so a change to a field is
made once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from data.errors import ForbiddenFeatureError, UnknownFieldError


class Kind(StrEnum):
    """How a field's values are typed."""

    INTEGER = "integer"
    NUMBER = "number"
    CATEGORY = "category"
    BINARY = "binary"
    NEED = "need"  # ordinal 0 / 1 / 2
    TEXT = "text"


class Role(StrEnum):
    """What a field may be used for."""

    ID = "id"
    STATIC = "static"
    NEED = "need"
    PROTECTED = "protected"
    TARGET = "target"
    REFERRAL = "referral"
    COMPARISON = "comparison"  # another tool's score, kept to compare against


class Pathway(StrEnum):
    """The seven resettlement pathways of Integrated Offender Management."""

    DRUGS_ALCOHOL = "drugs_alcohol"
    EDUCATION_EMPLOYMENT = "education_employment"
    ACCOMMODATION = "accommodation"
    THINKING_BEHAVIOUR = "thinking_behaviour"
    FINANCE_DEBT = "finance_debt"
    CHILDREN_FAMILIES = "children_families"
    HEALTH = "health"


#: Programmes a person can be referred to: the seven pathways plus the
#: Prince's Trust team programme (ages 16-25 only).
PRINCES_TRUST = "princes_trust"
PROGRAMMES: tuple[str, ...] = (*(p.value for p in Pathway), PRINCES_TRUST)
PRINCES_TRUST_AGE_RANGE: tuple[int, int] = (16, 25)

NEED_LEVELS: dict[int, str] = {0: "no problems", 1: "some problems", 2: "significant problems"}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One column of an assessment.

    Parameters
    ----------
    name
        Column name in data files and field name in HTTP requests.
    kind
        Value type.
    role
        What the field is for; decides whether it may be a model feature.
    description
        Plain-language meaning, shown in the API docs and the model card.
    minimum, maximum
        Inclusive range for numeric kinds.
    categories
        Allowed values for ``CATEGORY`` fields.
    nullable
        Whether the value may be missing; for needs items missing means
        "not assessed", never "no problems".
    pathway
        The pathway a needs item belongs to.
    feature_default
        Used as a model feature unless a config says otherwise.
    feature_allowed
        May a config use it as a feature at all. Ethnicity never; sex only
        when a config deliberately asks for it.
    risk_direction
        Established direction of the field's association with re-offending:
        +1 more means more risk (previous sanctions, needs), -1 more means less
        (age, time offence-free), 0 none imposed. Models constrain their
        effects to it so a score never falls when a known driver rises.
    """

    name: str
    kind: Kind
    role: Role
    description: str
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False
    pathway: Pathway | None = None
    feature_default: bool = False
    feature_allowed: bool = False
    risk_direction: int = 0

    @property
    def is_numeric(self) -> bool:
        """Whether values are numbers (integers, reals, binaries and need levels)."""
        return self.kind in (Kind.INTEGER, Kind.NUMBER, Kind.BINARY, Kind.NEED)

    @property
    def allowed_text(self) -> str:
        """The allowed values in words, for error messages and docs."""
        if self.kind is Kind.CATEGORY:
            return "one of " + ", ".join(self.categories)
        if self.kind is Kind.BINARY:
            return "0 or 1"
        if self.kind is Kind.NEED:
            return "0 (no problems), 1 (some problems) or 2 (significant problems)"
        if self.kind is Kind.TEXT:
            return "text"
        return f"{self.minimum:g} to {self.maximum:g}"

    def out_of_range_reason(self, value: float) -> str:
        """Say that ``value`` is outside this field's range, naming both.

        The one wording of batch rejects (:mod:`data.validation`) and of the
        scoring service's violations.
        """
        return f"out of range ({self.allowed_text}): {value:g}"

    def unknown_category_reason(self, value: object) -> str:
        """Say that ``value`` is not one of this field's categories, naming them (as above)."""
        shown = repr(value)
        if len(shown) > _SHOWN_VALUE_CHARS:  # a client's long text is not echoed whole
            shown = shown[: _SHOWN_VALUE_CHARS - 3] + "..."
        return f"unknown category {shown} (expected {self.allowed_text})"


#: At most this many characters of a refused value are quoted back in a reason.
_SHOWN_VALUE_CHARS = 60


def _need(name: str, pathway: Pathway, description: str) -> FieldSpec:
    return FieldSpec(
        name=name,
        kind=Kind.NEED,
        role=Role.NEED,
        description=description,
        minimum=0,
        maximum=2,
        nullable=True,
        pathway=pathway,
        feature_default=True,
        feature_allowed=True,
        risk_direction=1,
    )


OFFENCE_CATEGORIES: tuple[str, ...] = (
    "violence",
    "robbery",
    "burglary",
    "theft",
    "drugs",
    "fraud",
    "criminal_damage",
    "public_order",
    "motoring",
    "sexual",
    "other",
)

ETHNICITIES: tuple[str, ...] = ("asian", "black", "mixed", "white", "other")
#: Race as US sources record it (e.g. Broward County); audited, never a feature.
RACES: tuple[str, ...] = (
    "african_american",
    "asian",
    "caucasian",
    "hispanic",
    "native_american",
    "other",
)
SEXES: tuple[str, ...] = ("male", "female")
CHARGE_DEGREES: tuple[str, ...] = ("felony", "misdemeanour")

ID_FIELD = "subject_ref"

#: Free text the service accepts (``subject_ref``, client names): no C0 or C1 control
#: character, DEL, or Unicode line/paragraph separator. PostgreSQL cannot store NUL, and
#: NEL (U+0085), U+2028 and U+2029 end a line for many line-based readers, so a CSV export
#: of such a value would split its row (issue 16).
_FREE_TEXT_REFUSED = r"\x00-\x1f\x7f-\x9f" + "\u2028\u2029"
FREE_TEXT_PATTERN = "^[^" + _FREE_TEXT_REFUSED + "]+$"
#: One character :data:`FREE_TEXT_PATTERN` refuses (a search for it checks many texts at once).
FREE_TEXT_REFUSED_CHARACTER = "[" + _FREE_TEXT_REFUSED + "]"
#: The longest free text an assessment may carry (characters).
FREE_TEXT_MAX_CHARS = 128
TARGET_FIELD = "reoffended_12m"
TARGET_24M_FIELD = "reoffended_24m"
INCUMBENT_FIELD = "incumbent_decile"

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        ID_FIELD,
        Kind.TEXT,
        Role.ID,
        "The case system's own pseudonymous reference for the person; echoed, never a feature.",
    ),
    # --- static factors (criminal record) ---
    FieldSpec(
        "age",
        Kind.INTEGER,
        Role.STATIC,
        "Age in whole years at the assessment date.",
        minimum=16,
        maximum=100,
        feature_default=True,
        feature_allowed=True,
        risk_direction=-1,
    ),
    FieldSpec(
        "age_first_sanction",
        Kind.INTEGER,
        Role.STATIC,
        "Age in years at the first caution or conviction.",
        minimum=8,
        maximum=100,
        nullable=True,
        feature_default=True,
        feature_allowed=True,
        risk_direction=-1,
    ),
    FieldSpec(
        "total_sanctions",
        Kind.INTEGER,
        Role.STATIC,
        "Number of previous sanctions (cautions and convictions) before the current offence.",
        minimum=0,
        maximum=500,
        feature_default=True,
        feature_allowed=True,
        risk_direction=1,
    ),
    FieldSpec(
        "juvenile_sanctions",
        Kind.INTEGER,
        Role.STATIC,
        "Previous sanctions received before the age of 18; at most total_sanctions.",
        minimum=0,
        maximum=500,
        nullable=True,
        feature_default=True,
        feature_allowed=True,
        risk_direction=1,
    ),
    FieldSpec(
        "offence_category",
        Kind.CATEGORY,
        Role.STATIC,
        "Category of the current (index) offence.",
        categories=OFFENCE_CATEGORIES,
        feature_default=True,
        feature_allowed=True,
    ),
    FieldSpec(
        "custodial_history",
        Kind.BINARY,
        Role.STATIC,
        "1 if the person has served a custodial sentence before, else 0.",
        minimum=0,
        maximum=1,
        nullable=True,
        feature_default=True,
        feature_allowed=True,
        risk_direction=1,
    ),
    FieldSpec(
        "months_offence_free",
        Kind.NUMBER,
        Role.STATIC,
        "Months at liberty without a sanction, since the last sanction or release.",
        minimum=0,
        maximum=600,
        nullable=True,
        feature_default=True,
        feature_allowed=True,
        risk_direction=-1,
    ),
    # --- screening-time facts of the current case (sources with court records) ---
    # Not default features: the synthetic cohort lacks them; a source's config
    # asks for them. Each is known on the assessment date (docs/real-data.md).
    FieldSpec(
        "charge_degree",
        Kind.CATEGORY,
        Role.STATIC,
        "Degree of the current charge: felony or misdemeanour.",
        categories=CHARGE_DEGREES,
        nullable=True,
        feature_allowed=True,
    ),
    FieldSpec(
        "days_in_custody_at_assessment",
        Kind.NUMBER,
        Role.STATIC,
        "Days from entering custody on the current charge to the assessment date "
        "(0: jailed that day); missing when not jailed on this charge.",
        minimum=0,
        maximum=3650,
        nullable=True,
        feature_allowed=True,
    ),
    FieldSpec(
        "in_custody_at_assessment",
        Kind.BINARY,
        Role.STATIC,
        "1 if the person was held in custody on the current charge on the assessment date.",
        minimum=0,
        maximum=1,
        nullable=True,
        feature_allowed=True,
    ),
    FieldSpec(
        "days_offence_to_assessment",
        Kind.NUMBER,
        Role.STATIC,
        "Days from the current offence (or arrest) to the assessment date.",
        minimum=0,
        maximum=36500,
        nullable=True,
        feature_allowed=True,
    ),
    # --- needs items, two per pathway ---
    _need("drug_misuse", Pathway.DRUGS_ALCOHOL, "Current illegal drug misuse."),
    _need("alcohol_misuse", Pathway.DRUGS_ALCOHOL, "Current alcohol misuse."),
    _need("unemployed", Pathway.EDUCATION_EMPLOYMENT, "Not in employment, education or training."),
    _need(
        "literacy_numeracy",
        Pathway.EDUCATION_EMPLOYMENT,
        "Problems with reading, writing or numeracy.",
    ),
    _need(
        "no_settled_accommodation",
        Pathway.ACCOMMODATION,
        "No fixed abode or transient accommodation.",
    ),
    _need(
        "unsuitable_accommodation",
        Pathway.ACCOMMODATION,
        "Accommodation that is unsuitable or puts the person at risk of offending.",
    ),
    _need("procriminal_attitudes", Pathway.THINKING_BEHAVIOUR, "Pro-criminal attitudes."),
    _need("impulsivity", Pathway.THINKING_BEHAVIOUR, "Impulsivity or poor temper control."),
    _need("debt", Pathway.FINANCE_DEBT, "Problem debt."),
    _need("benefit_dependence", Pathway.FINANCE_DEBT, "Reliance on benefits as sole income."),
    _need(
        "family_relationships",
        Pathway.CHILDREN_FAMILIES,
        "Problems in relationships with close family.",
    ),
    _need(
        "parenting_responsibilities",
        Pathway.CHILDREN_FAMILIES,
        "Problems in caring for dependent children.",
    ),
    _need(
        "emotional_wellbeing",
        Pathway.HEALTH,
        "Emotional wellbeing issues linked to offending behaviour.",
    ),
    _need(
        "mental_health_treatment",
        Pathway.HEALTH,
        "Current or past psychiatric treatment.",
    ),
    # --- protected characteristics: for the fairness audit ---
    FieldSpec(
        "ethnicity",
        Kind.CATEGORY,
        Role.PROTECTED,
        "Self-declared ethnic group (ONS five groups). Audit only: never a model feature.",
        categories=ETHNICITIES,
        nullable=True,
        feature_allowed=False,
    ),
    FieldSpec(
        "race",
        Kind.CATEGORY,
        Role.PROTECTED,
        "Race as a US source records it. Audit only: never a model feature.",
        categories=RACES,
        nullable=True,
        feature_allowed=False,
    ),
    FieldSpec(
        "sex",
        Kind.CATEGORY,
        Role.PROTECTED,
        "Sex. Audit only unless a model config deliberately uses it as a feature.",
        categories=SEXES,
        nullable=True,
        feature_allowed=True,
    ),
    # --- outcome and historic referrals: training data only ---
    FieldSpec(
        TARGET_FIELD,
        Kind.BINARY,
        Role.TARGET,
        "1 if the person received a new sanction within 12 months of the assessment.",
        minimum=0,
        maximum=1,
    ),
    FieldSpec(
        TARGET_24M_FIELD,
        Kind.BINARY,
        Role.TARGET,
        "1 if the person was charged with a new offence within two years of the assessment.",
        minimum=0,
        maximum=1,
    ),
    FieldSpec(
        INCUMBENT_FIELD,
        Kind.INTEGER,
        Role.COMPARISON,
        "Decile (1-10) of the risk tool the source was already scored with, e.g. COMPAS; "
        "compared against, never a feature.",
        minimum=1,
        maximum=10,
        nullable=True,
    ),
    *(
        FieldSpec(
            f"referred_{programme}",
            Kind.BINARY,
            Role.REFERRAL,
            f"1 if the person was referred to the {programme.replace('_', ' ')} programme.",
            minimum=0,
            maximum=1,
        )
        for programme in PROGRAMMES
    ),
)

FIELDS_BY_NAME: dict[str, FieldSpec] = {spec.name: spec for spec in FIELDS}


@dataclass(frozen=True, slots=True)
class CrossFieldRule:
    """An ordering rule between two numeric fields: ``lower <= upper``.

    Skipped for a row where either value is missing.
    """

    lower: str
    upper: str
    reason: str


CROSS_FIELD_RULES: tuple[CrossFieldRule, ...] = (
    CrossFieldRule("age_first_sanction", "age", "age at first sanction is above age"),
    CrossFieldRule(
        "juvenile_sanctions", "total_sanctions", "juvenile sanctions exceed total sanctions"
    ),
)


def fields_with_role(*roles: Role) -> tuple[FieldSpec, ...]:
    """Return the fields that have one of ``roles``, in schema order."""
    return tuple(spec for spec in FIELDS if spec.role in roles)


#: The fields a case system sends to be scored (no outcome, no referrals).
ASSESSMENT_FIELDS: tuple[FieldSpec, ...] = fields_with_role(
    Role.ID, Role.STATIC, Role.NEED, Role.PROTECTED
)
NEED_FIELDS: tuple[FieldSpec, ...] = fields_with_role(Role.NEED)
REFERRAL_FIELDS: tuple[FieldSpec, ...] = fields_with_role(Role.REFERRAL)
DEFAULT_FEATURES: tuple[str, ...] = tuple(spec.name for spec in FIELDS if spec.feature_default)
AUDIT_ONLY: tuple[str, ...] = tuple(spec.name for spec in fields_with_role(Role.PROTECTED))
NEVER_FEATURES: tuple[str, ...] = tuple(spec.name for spec in FIELDS if not spec.feature_allowed)


def needs_of(pathway: Pathway) -> tuple[str, ...]:
    """Return the names of the needs items of ``pathway``."""
    return tuple(spec.name for spec in NEED_FIELDS if spec.pathway is pathway)


def check_feature_names(features: tuple[str, ...] | list[str]) -> None:
    """Refuse a feature list that names an unknown or forbidden field.

    Raises
    ------
    ForbiddenFeatureError
        If a feature is audit-only, an outcome, a referral or an identifier.
    UnknownFieldError
        If a feature is not in the schema.
    """
    for name in features:
        spec = FIELDS_BY_NAME.get(name)
        if spec is None:
            raise UnknownFieldError(name)
        if not spec.feature_allowed:
            raise ForbiddenFeatureError(name, spec.role.value)


#: A plausible assessment as a case system sends it: the example of the API docs.
#: A 27-year-old with a long record, a burglary, unsettled accommodation and drug
#: misuse; two needs items not assessed (omitted), protected characteristics sent
#: for the audit only.
EXAMPLE_ASSESSMENT: dict[str, Any] = {
    ID_FIELD: "case-2024-00417",
    "age": 27,
    "age_first_sanction": 15,
    "total_sanctions": 9,
    "juvenile_sanctions": 3,
    "offence_category": "burglary",
    "custodial_history": 1,
    "months_offence_free": 4.5,
    "drug_misuse": 2,
    "alcohol_misuse": 1,
    "unemployed": 2,
    "literacy_numeracy": 1,
    "no_settled_accommodation": 2,
    "unsuitable_accommodation": 1,
    "procriminal_attitudes": 1,
    "impulsivity": 2,
    "debt": 1,
    "benefit_dependence": 1,
    "family_relationships": 1,
    "parenting_responsibilities": 0,
    "ethnicity": "white",
    "sex": "male",
}


def _assessment_annotation(spec: FieldSpec) -> object:
    """Return the pydantic type of one assessment field, with its range and description."""
    text = f"{spec.description} Allowed: {spec.allowed_text}."
    if spec.nullable:
        text += " Omit or send null when not assessed."
    field: Any
    if spec.kind is Kind.CATEGORY:
        base: Any = Literal[spec.categories]
        field = Field(description=text)
    elif spec.kind is Kind.TEXT:
        base = str
        # No control characters or line separators (see FREE_TEXT_PATTERN).
        field = Field(
            description=text,
            strict=True,
            min_length=1,
            max_length=FREE_TEXT_MAX_CHARS,
            pattern=FREE_TEXT_PATTERN,
        )
    elif spec.kind is Kind.NUMBER:
        base = float
        # strict: a JSON string such as "12" is refused rather than coerced.
        field = Field(
            description=text, strict=True, ge=spec.minimum, le=spec.maximum, allow_inf_nan=False
        )
    else:
        base = int
        field = Field(description=text, strict=True, ge=spec.minimum, le=spec.maximum)
    if spec.nullable:
        return Annotated[base | None, field]
    return Annotated[base, field]


def _check_cross_field_rules(model: BaseModel) -> BaseModel:
    broken = []
    for rule in CROSS_FIELD_RULES:
        lower, upper = getattr(model, rule.lower), getattr(model, rule.upper)
        if lower is not None and upper is not None and lower > upper:
            broken.append((rule, lower, upper))
    if broken:
        rule = broken[0][0]
        raise PydanticCustomError(
            "cross_field",
            "{message}",
            {
                "message": "; ".join(
                    f"{r.lower} ({lo}) is above {r.upper} ({hi}): {r.reason}"
                    for r, lo, hi in broken
                ),
                "fields": ",".join(f for r, _, _ in broken for f in (r.lower, r.upper)),
                "field": rule.lower,
            },
        )
    return model


@cache
def make_assessment_model() -> type[BaseModel]:
    """Return the pydantic model of one assessment as a case system sends it.

    Built from :data:`ASSESSMENT_FIELDS` (identifier, static factors, needs
    items, protected characteristics; never outcome or referrals): numbers
    must be JSON numbers within the field's range (``NaN`` and infinities
    refused), categories one of the schema's values, nullable fields may be
    omitted or null ("not assessed"), unknown fields are refused, and the
    :data:`CROSS_FIELD_RULES` are checked with a message naming both fields.
    Built on first call and cached.

    Returns
    -------
    type[pydantic.BaseModel]
        The ``Assessment`` model class.
    """
    definitions: dict[str, Any] = {
        spec.name: (_assessment_annotation(spec), None if spec.nullable else ...)
        for spec in ASSESSMENT_FIELDS
    }
    validators: dict[str, Any] = {
        "cross_field_rules": model_validator(mode="after")(_check_cross_field_rules)
    }
    model: type[BaseModel] = create_model(
        "Assessment",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_ASSESSMENT]}),
        __doc__="One offender assessment to score; missing needs items mean 'not assessed'.",
        __validators__=validators,
        **definitions,
    )
    return model
