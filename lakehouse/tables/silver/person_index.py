"""The master patient index (EMPI): persons, their history, the review queue, progress.

``silver.person_index`` maps every patient record of every source to one person;
``silver.person_history`` records every merge and split of persons; ``silver.person_review``
holds the uncertain pairs and the reviewers' decisions; ``ops.empi_progress`` the last
``silver.patient`` version each run linked (lakehouse/empi, jobs/empi.py, docs/empi.md).
"""

from __future__ import annotations

from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, TimestampType

from lakehouse.tables.silver.common import (
    SILVER_CLUSTERING,
    patient_columns,
    record_keys,
    source_columns,
)
from lakehouse.tables.spec import Phi, TableSpec, column

_PERSON_ID = "Person id assigned by the master patient index ('P' + 16 hex digits); stable " + (
    "across runs: it changes only when its person is merged into an older one."
)

PERSON_INDEX = TableSpec(
    name="silver.person_index",
    comment="Master patient index: every patient record of every source (silver.patient "
    "key) and the one person it belongs to, with the evidence that linked it. Gold and "
    "every person-level product read person_id from here (join on patient_key).",
    columns=(
        *source_columns(),
        *patient_columns(required=True),
        column("person_id", StringType(), _PERSON_ID, nullable=False, phi=Phi.IDENTIFIER),
        column(
            "match_probability",
            DoubleType(),
            "Probability (Splink model) of the strongest link that joined the record to its "
            "person; 1.0 for the record that founded the person or a same-MRN link.",
        ),
        column(
            "link_rule",
            StringType(),
            "What linked the record: founder (first record of a new person), same_mrn (same "
            "institution patient id as a member), model (scored pair at or above the match "
            "threshold), review (a reviewer decided 'same'), merge (its person was merged "
            "into this one), split (a reviewer's 'different' moved it out).",
        ),
        column("model_version", StringType(), "Linkage model version in force at the link."),
        column("linked_run_id", StringType(), "ops.job_runs run that last (re)assigned it."),
        column(
            "first_linked_at",
            TimestampType(),
            "When the record first entered the index (the age of a person is that of its "
            "oldest record: merges keep the older person's id).",
        ),
        column("linked_at", TimestampType(), "When the record was last (re)assigned."),
        column(
            "is_deleted",
            BooleanType(),
            "The source deleted the record: kept in the index (for downstream deletes) but "
            "no longer compared.",
            nullable=False,
        ),
    ),
    keys=record_keys("patient_id"),
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)

PERSON_HISTORY = TableSpec(
    name="silver.person_history",
    comment="Every change of a person: created, merged (another person's records moved in, "
    "its id retired) or split (records moved out to a new person). Downstream tables "
    "re-key rows of a retired person_id to the surviving one.",
    columns=(
        column(
            "event_id",
            StringType(),
            "sha256 of (run, event, person, other person): reruns write the same row once.",
            nullable=False,
        ),
        column("event", StringType(), "created, merged or split.", nullable=False),
        column(
            "person_id", StringType(), "The person that survives or is created.", phi=Phi.IDENTIFIER
        ),
        column(
            "other_person_id",
            StringType(),
            "merged: the retired person id; split: the person the records came from.",
            phi=Phi.IDENTIFIER,
        ),
        column("records_moved", LongType(), "How many index records changed person."),
        column("run_id", StringType(), "ops.job_runs run that made the change."),
        column(
            "reason",
            StringType(),
            "Why: new records, model link, review 'same', review 'different' (pair id).",
        ),
        column("at", TimestampType(), "When the change was made."),
    ),
    keys=("event_id",),
    person_key="person_id",
)

PERSON_REVIEW = TableSpec(
    name="silver.person_review",
    comment="Review queue of the master patient index: record pairs whose match probability "
    "fell in the uncertain band [review_threshold, match_threshold), and the reviewers' "
    "decisions. 'same' merges the two persons on the next run; 'different' is a "
    "must-not-link constraint every later run honours (and splits them if linked).",
    columns=(
        column(
            "pair_id",
            StringType(),
            "sha256 of the two record keys in sorted order (first 16 hex digits).",
            nullable=False,
        ),
        column(
            "record_key_l",
            StringType(),
            "First record: '<institution>|<source>|<patient_id>'.",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "record_key_r",
            StringType(),
            "Second record (sorts after the first).",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "person_id_l",
            StringType(),
            "Person of the first record when queued.",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "person_id_r",
            StringType(),
            "Person of the second record when queued.",
            phi=Phi.IDENTIFIER,
        ),
        column("match_probability", DoubleType(), "Model probability that they are one person."),
        column("match_weight", DoubleType(), "Model match weight (log2 Bayes factor with prior)."),
        column("model_version", StringType(), "Model version that scored the pair."),
        column("status", StringType(), "pending, same or different.", nullable=False),
        column("reviewer", StringType(), "Who decided (account name)."),
        column("decided_at", TimestampType(), "When the decision was made."),
        column("queued_run_id", StringType(), "Run that queued the pair."),
        column("queued_at", TimestampType(), "When the pair was queued."),
        column(
            "applied_run_id",
            StringType(),
            "Run that applied the decision to the index (null while not yet applied).",
        ),
    ),
    keys=("pair_id",),
)

EMPI_PROGRESS = TableSpec(
    name="ops.empi_progress",
    comment="Last silver.patient version the master patient index linked, the model and "
    "thresholds it linked with, per run (the next run reads the change feed after it).",
    columns=(
        column("source_table", StringType(), "The linked table (silver.patient).", nullable=False),
        column("last_version", LongType(), "Delta version of the table linked through."),
        column("run_id", StringType(), "ops.job_runs run that linked it."),
        column("model_version", StringType(), "Linkage model version used."),
        column("match_threshold", DoubleType(), "Match threshold used."),
        column("review_threshold", DoubleType(), "Review threshold used."),
        column("records", LongType(), "Records read (new or changed) by that run."),
        column("updated_at", TimestampType(), "When the run finished."),
    ),
    keys=("source_table",),
)

PERSON_FEATURES = TableSpec(
    name="silver.person_features",
    comment="Comparison features of every silver.patient record (lakehouse/empi/features.py), "
    "kept so an incremental EMPI run blocks and scores new records against the whole "
    "population without recomputing anyone's pinyin. Holds PHI: same policies as "
    "silver.patient.",
    columns=(
        *source_columns(),
        column(
            "patient_id",
            StringType(),
            "The source's patient id.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        column(
            "record_key",
            StringType(),
            "'<institution>|<source>|<patient_id>'.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        column(
            "patient_key",
            StringType(),
            "'<institution>|<patient_id>' (same-MRN links).",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "name_s",
            StringType(),
            "Name, traditional folded to simplified, Latin upper-cased.",
            phi=Phi.NAME,
        ),
        column(
            "name_py", StringType(), "Name in toneless pinyin letters (LIQIANGXIA).", phi=Phi.NAME
        ),
        column("surname_py", StringType(), "Family name in pinyin (blocking).", phi=Phi.QUASI),
        column(
            "id_card",
            StringType(),
            "Normalized 身份证号 (null when malformed).",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "id_ok",
            BooleanType(),
            "The 身份证号 passes the check character and agrees with birth date and sex.",
        ),
        column(
            "id14",
            StringType(),
            "Region and birth date part of the 身份证号 (blocking).",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "birth", StringType(), "Birth date yyyyMMdd (the ID card's when missing).", phi=Phi.DATE
        ),
        column("birth_year", StringType(), "Birth year (blocking).", phi=Phi.QUASI),
        column(
            "sex", StringType(), "GB/T 2261.1 sex 1/2 (the ID card's when missing).", phi=Phi.QUASI
        ),
        column("phone", StringType(), "Phone digits (last 11).", phi=Phi.CONTACT),
        column("addr", StringType(), "Address without spaces.", phi=Phi.ADDRESS),
        column("addr_area", StringType(), "Province + city + county.", phi=Phi.QUASI),
        column("is_deleted", BooleanType(), "The source deleted the record.", nullable=False),
        column(
            "source_updated_at",
            TimestampType(),
            "Source time of this version (shifted in views).",
            phi=Phi.DATE,
        ),
    ),
    keys=record_keys("patient_id"),
    sequence_by="source_updated_at",
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)
