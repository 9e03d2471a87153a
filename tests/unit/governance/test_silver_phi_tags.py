"""Every silver column that can carry a patient identifier or a date of care is PHI-tagged.

Source record ids are built by hospital systems from visit numbers and record numbers (the
synthetic LIS's filler order number is the visit number plus the panel, the HIS's order and
transfer ids start with it, note and DICOM file names carry it), and DICOM UIDs identify a
study. Untagged, the de-identified views would show them to analysts as they are. So in every
silver table of a person, each ``*_id``/``*_uid(s)``/``*_ref(s)`` column is tagged (the views
token or drop it) unless it is listed below with the reason it is no patient's identifier,
and each date or timestamp is tagged (shifted) unless it records the pipeline's own work.
"""

from __future__ import annotations

from pyspark.sql.types import DateType, TimestampNTZType, TimestampType

from lakehouse.tables.registry import all_specs

#: Id-like columns that identify no patient: codes of concepts, staff, the pipeline's runs.
NOT_PATIENT_IDS = {
    "concept_id": "a standard concept of the vocabulary",
    "source_concept_id": "a source concept of the vocabulary",
    "test_concept_id": "a standard concept of the vocabulary",
    "test_source_concept_id": "a source concept of the vocabulary",
    "drug_concept_id": "a standard concept of the vocabulary",
    "drug_source_concept_id": "a source concept of the vocabulary",
    "provider_id": "a member of staff",
    "prescriber_id": "a member of staff",
    "author_id": "a member of staff",
    "attending_provider_id": "a member of staff",
    "silver_run_id": "the pipeline run",
    "linked_run_id": "the pipeline run",
    "queued_run_id": "the pipeline run",
    "applied_run_id": "the pipeline run",
    "run_id": "the pipeline run",
    "note_nlp_id": "a surrogate the NLP job assigns",
    "pair_id": "a surrogate the EMPI review assigns",
    "event_id": "a surrogate the EMPI history assigns",
}
#: Timestamps of the pipeline's own work, not of anyone's care.
PIPELINE_TIMES = {"processed_at", "linked_at", "first_linked_at", "queued_at", "decided_at", "at"}
ID_SUFFIXES = ("_id", "_uid", "_uids", "_ref", "_refs")


def _person_tables() -> list[object]:
    return [s for s in all_specs() if s.name.startswith("silver.") and s.person_key]


def test_every_id_of_a_persons_record_is_tagged() -> None:
    untagged = [
        f"{spec.name}.{f.name}"
        for spec in _person_tables()
        for f in spec.schema.fields  # type: ignore[attr-defined]
        if f.name.endswith(ID_SUFFIXES)
        and "phi" not in f.metadata
        and f.name not in NOT_PATIENT_IDS
        and f.name != spec.person_key  # type: ignore[attr-defined]
    ]
    assert not untagged, f"tag these Phi.IDENTIFIER (or Phi.RAW) or list why not: {untagged}"


def test_every_date_of_a_persons_care_is_tagged() -> None:
    untagged = [
        f"{spec.name}.{f.name}"
        for spec in _person_tables()
        for f in spec.schema.fields  # type: ignore[attr-defined]
        if isinstance(f.dataType, DateType | TimestampType | TimestampNTZType)
        and "phi" not in f.metadata
        and f.name not in PIPELINE_TIMES
    ]
    assert not untagged, f"tag these Phi.DATE or list them as pipeline times: {untagged}"
