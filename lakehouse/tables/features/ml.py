"""Feature tables at index times, the MEDS event table, and the build log (docs/features.md).

Every table is a full snapshot of one build (``jobs/features.py``): rows are MERGEd on their
keys (unchanged rows are not rewritten) and rows the new build no longer produces are
deleted. ``features.builds`` maps each build to the Delta versions of the gold tables it read
and of the feature tables it wrote, so ``SELECT ... VERSION AS OF`` reproduces any build.
"""

from __future__ import annotations

from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    TimestampType,
)

from lakehouse.tables.spec import Phi, TableSpec, column

_BUILD = column(
    "build_id",
    StringType(),
    "features.builds row of the build that last changed this row (its gold versions).",
)
_PERSON = column("person_id", LongType(), "The person (gold.person.person_id).", nullable=False)
_INDEX_TIME = column(
    "index_time",
    TimestampType(),
    "Index (prediction) time: features use only events strictly before it.",
    nullable=False,
    phi=Phi.DATE,
)

PATIENT_INDEX = TableSpec(
    name="features.patient_index",
    columns=(
        column(
            "cohort",
            StringType(),
            "'patient' (person x index date) or 'encounter' (one per inpatient visit).",
            nullable=False,
        ),
        column(
            "index_id",
            LongType(),
            "Row id within the cohort: the visit_occurrence_id for 'encounter', a hash of "
            "person and index time for 'patient'.",
            nullable=False,
        ),
        _PERSON,
        _INDEX_TIME,
        column(
            "visit_occurrence_id",
            LongType(),
            "The index visit (encounter cohort); null for the patient cohort.",
        ),
        column(
            "index_rule",
            StringType(),
            "How the index time was chosen: settings_date, last_visit_start, discharge or "
            "admission.",
        ),
        _BUILD,
    ),
    comment="Index times of the feature cohorts (the rows feature tables are computed at).",
    keys=("cohort", "index_id"),
    cluster_by=("person_id",),
    person_key="person_id",
    volatile=("build_id",),
)


#: Windows of the wide tables' fixed columns (the long table follows settings).
WIDE_WINDOWS = (30, 180, 365)

#: The fixed history features, each computed per window: name prefix and meaning.
HISTORY_FEATURES = (
    ("visits_inpatient", "Inpatient visits (9201, 262) started"),
    ("visits_outpatient", "Outpatient visits (9202) started"),
    ("visits_emergency", "Emergency visits (9203) started"),
    ("visits_total", "Visits of any type started"),
    ("inpatient_days", "Inpatient days (stays clipped to the window and the index time)"),
    ("conditions", "Condition records"),
    ("conditions_distinct", "Distinct condition concepts"),
    ("drugs", "Drug exposure records"),
    ("drugs_distinct", "Distinct drug concepts"),
    ("measurements", "Measurement records"),
    ("procedures", "Procedure records"),
)


def history_columns(windows: tuple[int, ...] | list[int]) -> tuple[str, ...]:
    """Names of the fixed history features for ``windows`` (``<prefix>_<w>d``)."""
    return tuple(f"{prefix}_{w}d" for prefix, _ in HISTORY_FEATURES for w in windows)


_HISTORY = tuple(
    column(f"{prefix}_{w}d", DoubleType(), f"{what} in the {w} days before the index time.")
    for prefix, what in HISTORY_FEATURES
    for w in WIDE_WINDOWS
)
#: The fixed (wide) feature columns shared by patient and encounter features.
HISTORY_COLUMNS = history_columns(WIDE_WINDOWS)

_DEMOGRAPHICS = (
    column("age_years", DoubleType(), "Age in whole years at the index time.", phi=Phi.QUASI),
    column(
        "sex_male",
        DoubleType(),
        "1 for gender concept 8507 (male), 0 for 8532 (female), null otherwise.",
        phi=Phi.QUASI,
    ),
)

PATIENT_FEATURES = TableSpec(
    name="features.patient_features",
    columns=(
        column(
            "index_id", LongType(), "features.patient_index row (cohort 'patient').", nullable=False
        ),
        _PERSON,
        _INDEX_TIME,
        *_DEMOGRAPHICS,
        *_HISTORY,
        _BUILD,
    ),
    comment="Patient-level features, one row per person x index time: the fixed feature set "
    "(demographics, utilisation, domain counts over 30/180/365-day windows) as columns.",
    keys=("index_id",),
    cluster_by=("person_id",),
    person_key="person_id",
    volatile=("build_id",),
)

PATIENT_FEATURE_VALUES = TableSpec(
    name="features.patient_feature_values",
    columns=(
        column(
            "index_id", LongType(), "features.patient_index row (cohort 'patient').", nullable=False
        ),
        _PERSON,
        _INDEX_TIME,
        column(
            "feature",
            StringType(),
            "Feature name: a fixed column name (visits_inpatient_30d) or a per-concept "
            "feature <domain>:<concept_id>:<window>d[:<stat>] (docs/features.md).",
            nullable=False,
        ),
        column("value", DoubleType(), "Feature value (absent row: 0 for counts, unknown else)."),
        _BUILD,
    ),
    comment="Patient-level features in long form (one row per person x index time x feature): "
    "every fixed feature plus per-concept condition, drug, procedure counts and measurement "
    "aggregates (last, min, max, mean, count) over every window.",
    keys=("index_id", "feature"),
    cluster_by=("person_id",),
    person_key="person_id",
    volatile=("build_id",),
)

ENCOUNTER_FEATURES = TableSpec(
    name="features.encounter_features",
    columns=(
        column(
            "visit_occurrence_id",
            LongType(),
            "The index inpatient visit (gold.visit_occurrence).",
            nullable=False,
        ),
        _PERSON,
        _INDEX_TIME,
        column("admit_time", TimestampType(), "Start of the index visit.", phi=Phi.DATE),
        column("discharge_time", TimestampType(), "End of the index visit.", phi=Phi.DATE),
        column("visit_concept_id", LongType(), "Visit concept of the index visit."),
        column("care_site_id", LongType(), "Care site of the index visit."),
        column("admitted_from_concept_id", LongType(), "Where the person came from."),
        column(
            "length_of_stay_days",
            DoubleType(),
            "Stay length in days, up to the index time (0 at admission).",
        ),
        *_DEMOGRAPHICS,
        column(
            "days_since_last_discharge",
            DoubleType(),
            "Days from the end of the person's previous inpatient visit (ended before the "
            "index visit started) to the index visit's admission; null if none.",
        ),
        *_HISTORY,
        column(
            "stay_conditions",
            DoubleType(),
            "Condition records during the index visit before the index time.",
        ),
        column(
            "stay_drugs",
            DoubleType(),
            "Drug exposures during the index visit before the index time.",
        ),
        column(
            "stay_measurements",
            DoubleType(),
            "Measurements during the index visit before the index time.",
        ),
        column(
            "label_readmit",
            BooleanType(),
            "Label: another inpatient visit starts within settings.features.readmission_days "
            "after this discharge; null when censored (the data ends before the horizon "
            "without a readmission) or the person died during the stay.",
        ),
        column(
            "days_to_readmission",
            DoubleType(),
            "Label detail: days from discharge to the next inpatient admission (any horizon).",
        ),
        column(
            "label_horizon_days", IntegerType(), "Readmission horizon the label was computed for."
        ),
        _BUILD,
    ),
    comment="Encounter-level features, one row per inpatient visit at its index time "
    "(discharge by default): the visit's own attributes, history features strictly before "
    "the index time, and the 30-day readmission label computed from later visits.",
    keys=("visit_occurrence_id",),
    cluster_by=("person_id",),
    person_key="person_id",
    volatile=("build_id",),
)

MEDS_EVENTS = TableSpec(
    name="features.meds_events",
    columns=(
        column(
            "event_key",
            StringType(),
            "Source of the event: '<gold table>:<row id>[:<part>]' (birth, death, visit "
            "start and end are parts of their row).",
            nullable=False,
        ),
        column("subject_id", LongType(), "MEDS subject: the person_id.", nullable=False),
        column(
            "time",
            TimestampType(),
            "When the event happened (date-only events at 23:59:59 of their day); null for "
            "static events (gender).",
            phi=Phi.DATE,
        ),
        column("code", StringType(), "MEDS code '<vocabulary>//<concept code>' or MEDS_*."),
        column("numeric_value", FloatType(), "Numeric value (measurement value, drug quantity)."),
        column(
            "text_value",
            StringType(),
            "Coded categorical value as a code string (never free text from the record).",
        ),
        _BUILD,
    ),
    comment="The gold tables as MEDS events (subject_id, time, code, numeric_value, "
    "text_value); `lakehouse features export-meds` writes them in the MEDS folder layout.",
    keys=("event_key",),
    cluster_by=("subject_id",),
    person_key="subject_id",
    volatile=("build_id",),
)

FEATURE_BUILDS = TableSpec(
    name="features.builds",
    columns=(
        column("build_id", StringType(), "Build id (the job run id).", nullable=False),
        column("built_at", TimestampType(), "When the build finished."),
        column(
            "gold_versions",
            MapType(StringType(), LongType()),
            "Delta version of every gold table the build read (VERSION AS OF).",
        ),
        column(
            "output_versions",
            MapType(StringType(), LongType()),
            "Delta version of every feature table after the build's writes.",
        ),
        column(
            "output_rows",
            MapType(StringType(), LongType()),
            "Rows each feature table holds after the build.",
        ),
        column("params", StringType(), "The feature settings of the build, as JSON."),
    ),
    comment="One row per feature build: which gold versions it read and which feature table "
    "versions it produced (reproducibility by Delta version).",
    append_only=True,
)
