"""OMOP CDM v5.4 as Delta tables: ``gold.<omop table>``, built from silver by ``jobs/gold.py``.

The field lists below are the CDM's (name, datatype, required, primary key, foreign key and
the domain a concept field must hold); the DataQualityDashboard checks in
``lakehouse/quality/`` derive from them when the published threshold files are not given.
Types: CDM ``integer`` ids and concept ids are ``bigint`` (concept ids of the terminology
service are 64-bit, ADR 0011), ``float`` is ``double``, ``varchar(n)`` is ``string`` (the
length is kept in :attr:`OmopField.cdm_type` and checked by the quality job).

Clinical tables carry five trailing ``etl_*`` columns (institution, silver table and key of
the record they came from, writing run and time) so every row leads back to its raw record
and row policies can filter by institution; OMOP tools select their columns by name and
ignore them. Ids are assigned once per natural key and kept (``ops.omop_ids``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from pyspark.sql.types import (
    DataType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    TimestampType,
)

from lakehouse.tables.spec import Phi, TableSpec, column

CDM_VERSION = "5.4"


@dataclass(frozen=True)
class OmopField:
    """One CDM field as the specification defines it."""

    table: str
    name: str
    cdm_type: str
    required: bool = False
    primary_key: bool = False
    fk_table: str | None = None
    fk_domain: str | None = None

    @property
    def spark_type(self) -> DataType:
        t = self.cdm_type
        if t == "integer":
            return IntegerType() if self.name in _SMALL_INTS else LongType()
        if t == "float":
            return DoubleType()
        if t == "date":
            return DateType()
        if t == "datetime":
            return TimestampType()
        return StringType()

    @property
    def max_length(self) -> int | None:
        """``n`` of ``varchar(n)``; None for ``varchar(max)`` and non-text types."""
        t = self.cdm_type
        if t.startswith("varchar(") and t[8:-1].isdigit():
            return int(t[8:-1])
        return None


def _f(
    name: str,
    cdm_type: str,
    *,
    req: bool = False,
    pk: bool = False,
    fk: str | None = None,
    domain: str | None = None,
) -> tuple[str, str, bool, bool, str | None, str | None]:
    return (name, cdm_type, req, pk, fk, domain)


_SMALL_INTS = frozenset(
    {"year_of_birth", "month_of_birth", "day_of_birth", "refills", "days_supply"}
)

# fmt: off
_FIELDS = {
    "person": (
        _f("person_id", "integer", req=True, pk=True),
        _f("gender_concept_id", "integer", req=True, fk="concept", domain="Gender"),
        _f("year_of_birth", "integer", req=True),
        _f("month_of_birth", "integer"),
        _f("day_of_birth", "integer"),
        _f("birth_datetime", "datetime"),
        _f("race_concept_id", "integer", req=True, fk="concept", domain="Race"),
        _f("ethnicity_concept_id", "integer", req=True, fk="concept", domain="Ethnicity"),
        _f("location_id", "integer", fk="location"),
        _f("provider_id", "integer", fk="provider"),
        _f("care_site_id", "integer", fk="care_site"),
        _f("person_source_value", "varchar(50)"),
        _f("gender_source_value", "varchar(50)"),
        _f("gender_source_concept_id", "integer", fk="concept"),
        _f("race_source_value", "varchar(50)"),
        _f("race_source_concept_id", "integer", fk="concept"),
        _f("ethnicity_source_value", "varchar(50)"),
        _f("ethnicity_source_concept_id", "integer", fk="concept"),
    ),
    "observation_period": (
        _f("observation_period_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("observation_period_start_date", "date", req=True),
        _f("observation_period_end_date", "date", req=True),
        _f("period_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),
    ),
    "visit_occurrence": (
        _f("visit_occurrence_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("visit_concept_id", "integer", req=True, fk="concept", domain="Visit"),
        _f("visit_start_date", "date", req=True),
        _f("visit_start_datetime", "datetime"),
        _f("visit_end_date", "date", req=True),
        _f("visit_end_datetime", "datetime"),
        _f("visit_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),
        _f("provider_id", "integer", fk="provider"),
        _f("care_site_id", "integer", fk="care_site"),
        _f("visit_source_value", "varchar(50)"),
        _f("visit_source_concept_id", "integer", fk="concept"),
        _f("admitted_from_concept_id", "integer", fk="concept", domain="Visit"),
        _f("admitted_from_source_value", "varchar(50)"),
        _f("discharged_to_concept_id", "integer", fk="concept", domain="Visit"),
        _f("discharged_to_source_value", "varchar(50)"),
        _f("preceding_visit_occurrence_id", "integer", fk="visit_occurrence"),
    ),
    "visit_detail": (
        _f("visit_detail_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("visit_detail_concept_id", "integer", req=True, fk="concept", domain="Visit"),
        _f("visit_detail_start_date", "date", req=True),
        _f("visit_detail_start_datetime", "datetime"),
        _f("visit_detail_end_date", "date", req=True),
        _f("visit_detail_end_datetime", "datetime"),
        _f("visit_detail_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),  # noqa: E501
        _f("provider_id", "integer", fk="provider"),
        _f("care_site_id", "integer", fk="care_site"),
        _f("visit_detail_source_value", "varchar(50)"),
        _f("visit_detail_source_concept_id", "integer", fk="concept"),
        _f("admitted_from_concept_id", "integer", fk="concept", domain="Visit"),
        _f("admitted_from_source_value", "varchar(50)"),
        _f("discharged_to_source_value", "varchar(50)"),
        _f("discharged_to_concept_id", "integer", fk="concept", domain="Visit"),
        _f("preceding_visit_detail_id", "integer", fk="visit_detail"),
        _f("parent_visit_detail_id", "integer", fk="visit_detail"),
        _f("visit_occurrence_id", "integer", req=True, fk="visit_occurrence"),
    ),
    "condition_occurrence": (
        _f("condition_occurrence_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("condition_concept_id", "integer", req=True, fk="concept", domain="Condition"),
        _f("condition_start_date", "date", req=True),
        _f("condition_start_datetime", "datetime"),
        _f("condition_end_date", "date"),
        _f("condition_end_datetime", "datetime"),
        _f("condition_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),
        _f("condition_status_concept_id", "integer", fk="concept", domain="Condition Status"),
        _f("stop_reason", "varchar(20)"),
        _f("provider_id", "integer", fk="provider"),
        _f("visit_occurrence_id", "integer", fk="visit_occurrence"),
        _f("visit_detail_id", "integer", fk="visit_detail"),
        _f("condition_source_value", "varchar(50)"),
        _f("condition_source_concept_id", "integer", fk="concept"),
        _f("condition_status_source_value", "varchar(50)"),
    ),
    "drug_exposure": (
        _f("drug_exposure_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("drug_concept_id", "integer", req=True, fk="concept", domain="Drug"),
        _f("drug_exposure_start_date", "date", req=True),
        _f("drug_exposure_start_datetime", "datetime"),
        _f("drug_exposure_end_date", "date", req=True),
        _f("drug_exposure_end_datetime", "datetime"),
        _f("verbatim_end_date", "date"),
        _f("drug_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),
        _f("stop_reason", "varchar(20)"),
        _f("refills", "integer"),
        _f("quantity", "float"),
        _f("days_supply", "integer"),
        _f("sig", "varchar(max)"),
        _f("route_concept_id", "integer", fk="concept", domain="Route"),
        _f("lot_number", "varchar(50)"),
        _f("provider_id", "integer", fk="provider"),
        _f("visit_occurrence_id", "integer", fk="visit_occurrence"),
        _f("visit_detail_id", "integer", fk="visit_detail"),
        _f("drug_source_value", "varchar(50)"),
        _f("drug_source_concept_id", "integer", fk="concept"),
        _f("route_source_value", "varchar(50)"),
        _f("dose_unit_source_value", "varchar(50)"),
    ),
    "procedure_occurrence": (
        _f("procedure_occurrence_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("procedure_concept_id", "integer", req=True, fk="concept", domain="Procedure"),
        _f("procedure_date", "date", req=True),
        _f("procedure_datetime", "datetime"),
        _f("procedure_end_date", "date"),
        _f("procedure_end_datetime", "datetime"),
        _f("procedure_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),
        _f("modifier_concept_id", "integer", fk="concept"),
        _f("quantity", "integer"),
        _f("provider_id", "integer", fk="provider"),
        _f("visit_occurrence_id", "integer", fk="visit_occurrence"),
        _f("visit_detail_id", "integer", fk="visit_detail"),
        _f("procedure_source_value", "varchar(50)"),
        _f("procedure_source_concept_id", "integer", fk="concept"),
        _f("modifier_source_value", "varchar(50)"),
    ),
    "measurement": (
        _f("measurement_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("measurement_concept_id", "integer", req=True, fk="concept", domain="Measurement"),
        _f("measurement_date", "date", req=True),
        _f("measurement_datetime", "datetime"),
        _f("measurement_time", "varchar(10)"),
        _f("measurement_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),
        _f("operator_concept_id", "integer", fk="concept"),
        _f("value_as_number", "float"),
        _f("value_as_concept_id", "integer", fk="concept"),
        _f("unit_concept_id", "integer", fk="concept", domain="Unit"),
        _f("range_low", "float"),
        _f("range_high", "float"),
        _f("provider_id", "integer", fk="provider"),
        _f("visit_occurrence_id", "integer", fk="visit_occurrence"),
        _f("visit_detail_id", "integer", fk="visit_detail"),
        _f("measurement_source_value", "varchar(50)"),
        _f("measurement_source_concept_id", "integer", fk="concept"),
        _f("unit_source_value", "varchar(50)"),
        _f("unit_source_concept_id", "integer", fk="concept"),
        _f("value_source_value", "varchar(50)"),
        _f("measurement_event_id", "integer"),
        _f("meas_event_field_concept_id", "integer", fk="concept"),
    ),
    "observation": (
        _f("observation_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("observation_concept_id", "integer", req=True, fk="concept"),
        _f("observation_date", "date", req=True),
        _f("observation_datetime", "datetime"),
        _f("observation_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),
        _f("value_as_number", "float"),
        _f("value_as_string", "varchar(60)"),
        _f("value_as_concept_id", "integer", fk="concept"),
        _f("qualifier_concept_id", "integer", fk="concept"),
        _f("unit_concept_id", "integer", fk="concept", domain="Unit"),
        _f("provider_id", "integer", fk="provider"),
        _f("visit_occurrence_id", "integer", fk="visit_occurrence"),
        _f("visit_detail_id", "integer", fk="visit_detail"),
        _f("observation_source_value", "varchar(50)"),
        _f("observation_source_concept_id", "integer", fk="concept"),
        _f("unit_source_value", "varchar(50)"),
        _f("qualifier_source_value", "varchar(50)"),
        _f("value_source_value", "varchar(50)"),
        _f("observation_event_id", "integer"),
        _f("obs_event_field_concept_id", "integer", fk="concept"),
    ),
    "death": (
        _f("person_id", "integer", req=True, fk="person"),
        _f("death_date", "date", req=True),
        _f("death_datetime", "datetime"),
        _f("death_type_concept_id", "integer", fk="concept", domain="Type Concept"),
        _f("cause_concept_id", "integer", fk="concept"),
        _f("cause_source_value", "varchar(50)"),
        _f("cause_source_concept_id", "integer", fk="concept"),
    ),
    "note": (
        _f("note_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("note_date", "date", req=True),
        _f("note_datetime", "datetime"),
        _f("note_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),
        _f("note_class_concept_id", "integer", req=True, fk="concept"),
        _f("note_title", "varchar(250)"),
        _f("note_text", "varchar(max)", req=True),
        _f("encoding_concept_id", "integer", req=True, fk="concept"),
        _f("language_concept_id", "integer", req=True, fk="concept"),
        _f("provider_id", "integer", fk="provider"),
        _f("visit_occurrence_id", "integer", fk="visit_occurrence"),
        _f("visit_detail_id", "integer", fk="visit_detail"),
        _f("note_source_value", "varchar(50)"),
        _f("note_event_id", "integer"),
        _f("note_event_field_concept_id", "integer", fk="concept"),
    ),
    "note_nlp": (
        _f("note_nlp_id", "integer", req=True, pk=True),
        _f("note_id", "integer", req=True),
        _f("section_concept_id", "integer", fk="concept"),
        _f("snippet", "varchar(250)"),
        _f("offset", "varchar(50)"),
        _f("lexical_variant", "varchar(250)", req=True),
        _f("note_nlp_concept_id", "integer", fk="concept"),
        _f("note_nlp_source_concept_id", "integer", fk="concept"),
        _f("nlp_system", "varchar(250)"),
        _f("nlp_date", "date", req=True),
        _f("nlp_datetime", "datetime"),
        _f("term_exists", "varchar(1)"),
        _f("term_temporal", "varchar(50)"),
        _f("term_modifiers", "varchar(2000)"),
    ),
    "specimen": (
        _f("specimen_id", "integer", req=True, pk=True),
        _f("person_id", "integer", req=True, fk="person"),
        _f("specimen_concept_id", "integer", req=True, fk="concept"),
        _f("specimen_type_concept_id", "integer", req=True, fk="concept", domain="Type Concept"),
        _f("specimen_date", "date", req=True),
        _f("specimen_datetime", "datetime"),
        _f("quantity", "float"),
        _f("unit_concept_id", "integer", fk="concept"),
        _f("anatomic_site_concept_id", "integer", fk="concept"),
        _f("disease_status_concept_id", "integer", fk="concept"),
        _f("specimen_source_id", "varchar(50)"),
        _f("specimen_source_value", "varchar(50)"),
        _f("unit_source_value", "varchar(50)"),
        _f("anatomic_site_source_value", "varchar(50)"),
        _f("disease_status_source_value", "varchar(50)"),
    ),
    "location": (
        _f("location_id", "integer", req=True, pk=True),
        _f("address_1", "varchar(50)"),
        _f("address_2", "varchar(50)"),
        _f("city", "varchar(50)"),
        _f("state", "varchar(2)"),
        _f("zip", "varchar(9)"),
        _f("county", "varchar(20)"),
        _f("location_source_value", "varchar(50)"),
        _f("country_concept_id", "integer", fk="concept"),
        _f("country_source_value", "varchar(80)"),
        _f("latitude", "float"),
        _f("longitude", "float"),
    ),
    "care_site": (
        _f("care_site_id", "integer", req=True, pk=True),
        _f("care_site_name", "varchar(255)"),
        _f("place_of_service_concept_id", "integer", fk="concept"),
        _f("location_id", "integer", fk="location"),
        _f("care_site_source_value", "varchar(50)"),
        _f("place_of_service_source_value", "varchar(50)"),
    ),
    "provider": (
        _f("provider_id", "integer", req=True, pk=True),
        _f("provider_name", "varchar(255)"),
        _f("npi", "varchar(20)"),
        _f("dea", "varchar(20)"),
        _f("specialty_concept_id", "integer", fk="concept"),
        _f("care_site_id", "integer", fk="care_site"),
        _f("year_of_birth", "integer"),
        _f("gender_concept_id", "integer", fk="concept", domain="Gender"),
        _f("provider_source_value", "varchar(50)"),
        _f("specialty_source_value", "varchar(50)"),
        _f("specialty_source_concept_id", "integer", fk="concept"),
        _f("gender_source_value", "varchar(50)"),
        _f("gender_source_concept_id", "integer", fk="concept"),
    ),
    "concept": (
        _f("concept_id", "integer", req=True, pk=True),
        _f("concept_name", "varchar(255)", req=True),
        _f("domain_id", "varchar(20)", req=True, fk="domain"),
        _f("vocabulary_id", "varchar(20)", req=True, fk="vocabulary"),
        _f("concept_class_id", "varchar(20)", req=True, fk="concept_class"),
        _f("standard_concept", "varchar(1)"),
        _f("concept_code", "varchar(50)", req=True),
        _f("valid_start_date", "date", req=True),
        _f("valid_end_date", "date", req=True),
        _f("invalid_reason", "varchar(1)"),
    ),
    "concept_relationship": (
        _f("concept_id_1", "integer", req=True, fk="concept"),
        _f("concept_id_2", "integer", req=True, fk="concept"),
        _f("relationship_id", "varchar(20)", req=True, fk="relationship"),
        _f("valid_start_date", "date", req=True),
        _f("valid_end_date", "date", req=True),
        _f("invalid_reason", "varchar(1)"),
    ),
    "concept_ancestor": (
        _f("ancestor_concept_id", "integer", req=True, fk="concept"),
        _f("descendant_concept_id", "integer", req=True, fk="concept"),
        _f("min_levels_of_separation", "integer", req=True),
        _f("max_levels_of_separation", "integer", req=True),
    ),
    "source_to_concept_map": (
        _f("source_code", "varchar(50)", req=True),
        _f("source_concept_id", "integer", req=True, fk="concept"),
        _f("source_vocabulary_id", "varchar(20)", req=True),
        _f("source_code_description", "varchar(255)"),
        _f("target_concept_id", "integer", req=True, fk="concept"),
        _f("target_vocabulary_id", "varchar(20)", req=True, fk="vocabulary"),
        _f("valid_start_date", "date", req=True),
        _f("valid_end_date", "date", req=True),
        _f("invalid_reason", "varchar(1)"),
    ),
    "vocabulary": (
        _f("vocabulary_id", "varchar(20)", req=True, pk=True),
        _f("vocabulary_name", "varchar(255)", req=True),
        _f("vocabulary_reference", "varchar(255)"),
        _f("vocabulary_version", "varchar(255)"),
        _f("vocabulary_concept_id", "integer", req=True, fk="concept"),
    ),
    "domain": (
        _f("domain_id", "varchar(20)", req=True, pk=True),
        _f("domain_name", "varchar(255)", req=True),
        _f("domain_concept_id", "integer", req=True, fk="concept"),
    ),
    "concept_class": (
        _f("concept_class_id", "varchar(20)", req=True, pk=True),
        _f("concept_class_name", "varchar(255)", req=True),
        _f("concept_class_concept_id", "integer", req=True, fk="concept"),
    ),
    "relationship": (
        _f("relationship_id", "varchar(20)", req=True, pk=True),
        _f("relationship_name", "varchar(255)", req=True),
        _f("is_hierarchical", "varchar(1)", req=True),
        _f("defines_ancestry", "varchar(1)", req=True),
        _f("reverse_relationship_id", "varchar(20)", req=True),
        _f("relationship_concept_id", "integer", req=True, fk="concept"),
    ),
    "concept_synonym": (
        _f("concept_id", "integer", req=True, fk="concept"),
        _f("concept_synonym_name", "varchar(1000)", req=True),
        _f("language_concept_id", "integer", req=True, fk="concept"),
    ),
    "cdm_source": (
        _f("cdm_source_name", "varchar(255)", req=True),
        _f("cdm_source_abbreviation", "varchar(25)", req=True),
        _f("cdm_holder", "varchar(255)", req=True),
        _f("source_description", "varchar(max)"),
        _f("source_documentation_reference", "varchar(255)"),
        _f("cdm_etl_reference", "varchar(255)"),
        _f("source_release_date", "date", req=True),
        _f("cdm_release_date", "date", req=True),
        _f("cdm_version", "varchar(10)"),
        _f("cdm_version_concept_id", "integer", req=True, fk="concept"),
        _f("vocabulary_version", "varchar(20)", req=True),
    ),
}
# fmt: on

#: Tables without a primary key in the CDM, and the columns that identify their rows here.
_NATURAL_KEYS = {
    "death": ("person_id",),
    "concept_relationship": ("concept_id_1", "concept_id_2", "relationship_id"),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "source_to_concept_map": (
        "source_code", "source_vocabulary_id", "target_concept_id", "valid_end_date",
    ),
    "concept_synonym": ("concept_id", "concept_synonym_name", "language_concept_id"),
    "cdm_source": ("cdm_source_abbreviation",),
}  # fmt: skip

#: Standardized vocabulary and metadata tables: no person, no etl_* columns.
VOCABULARY_TABLES = (
    "concept", "concept_relationship", "concept_ancestor", "source_to_concept_map",
    "vocabulary", "domain", "concept_class", "relationship", "concept_synonym",
)  # fmt: skip
METADATA_TABLES = ("cdm_source",)
CLINICAL_TABLES = tuple(t for t in _FIELDS if t not in VOCABULARY_TABLES + METADATA_TABLES)

#: PHI held by CDM fields (dates tied to a person are shifted in de-identified views).
_PHI = {
    "person_source_value": Phi.IDENTIFIER,
    "birth_datetime": Phi.DATE,
    "year_of_birth": Phi.QUASI,
    "month_of_birth": Phi.DATE,
    "day_of_birth": Phi.DATE,
    "address_1": Phi.ADDRESS,
    "address_2": Phi.ADDRESS,
    "zip": Phi.QUASI,
    "latitude": Phi.ADDRESS,
    "longitude": Phi.ADDRESS,
    "location_source_value": Phi.ADDRESS,
    "provider_name": Phi.NAME,
    "npi": Phi.IDENTIFIER,
    "dea": Phi.IDENTIFIER,
    "note_text": Phi.FREE_TEXT,
    "note_title": Phi.FREE_TEXT,
    "snippet": Phi.FREE_TEXT,
    "lexical_variant": Phi.FREE_TEXT,
    "value_source_value": Phi.FREE_TEXT,
    "value_as_string": Phi.FREE_TEXT,
    "specimen_source_id": Phi.IDENTIFIER,
    "visit_source_value": Phi.IDENTIFIER,
    "visit_detail_source_value": Phi.IDENTIFIER,
}


def _phi(f: OmopField) -> Phi | None:
    if f.name in _PHI:
        return _PHI[f.name]
    if f.table in CLINICAL_TABLES and f.cdm_type in ("date", "datetime"):
        return Phi.DATE
    return None


def _words(name: str) -> str:
    return name.replace("_", " ")


def describe(f: OmopField) -> str:
    """A column comment derived from the CDM's naming conventions."""
    n = f.name
    cdm = f"(OMOP CDM v{CDM_VERSION} {f.table}.{n})"
    if f.primary_key:
        return f"Primary key of gold.{f.table}; assigned once per source record and kept {cdm}."
    if n == "person_id":
        return f"The person (gold.person; one per master patient index person) {cdm}."
    if n.endswith("_source_concept_id"):
        return f"Concept of the source code itself, local concepts included {cdm}."
    if n.endswith("_type_concept_id"):
        return f"Provenance of the record (Type Concept domain) {cdm}."
    if n.endswith("_concept_id") and f.fk_domain:
        return f"Standard {f.fk_domain} concept (gold.concept); 0 when unmapped {cdm}."
    if n.endswith("_concept_id"):
        return f"Concept (gold.concept); 0 when none applies {cdm}."
    if n.endswith("_source_value"):
        return f"{_words(n[: -len('_source_value')]).capitalize()} as the source recorded it {cdm}."
    if f.fk_table:
        return f"Reference to gold.{f.fk_table} {cdm}."
    if n.endswith("_datetime"):
        return f"{_words(n[: -len('_datetime')]).capitalize()} date and time {cdm}."
    if n.endswith("_date"):
        return f"{_words(n[: -len('_date')]).capitalize()} date {cdm}."
    return f"{_words(n).capitalize()} {cdm}."


def _etl_columns() -> tuple[StructField, ...]:
    return (
        column(
            "etl_institution_code",
            StringType(),
            "Institution of the source record (row policies); null for persons, who span "
            "institutions.",
        ),
        column("etl_source_table", StringType(), "Silver table the row was built from."),
        column(
            "etl_source_key",
            StringType(),
            "Natural key of the source record in that table ('<institution>|<source "
            "system>|<record id>'; the master patient index person id for persons).",
            phi=Phi.IDENTIFIER,
        ),
        column("etl_run_id", StringType(), "ops.job_runs run that wrote this version."),
        column("etl_processed_at", TimestampType(), "When this version was written."),
    )


ETL_VOLATILE = ("etl_run_id", "etl_processed_at")

FIELDS: MappingProxyType[str, tuple[OmopField, ...]] = MappingProxyType(
    {
        table: tuple(
            OmopField(table, n, t, required=r, primary_key=pk, fk_table=fk, fk_domain=d)
            for n, t, r, pk, fk, d in rows
        )
        for table, rows in _FIELDS.items()
    }
)

_COMMENTS = {
    "person": "OMOP PERSON: one row per person of the master patient index (silver."
    "person_index), demographics from the newest patient record of any source.",
    "observation_period": "OMOP OBSERVATION_PERIOD: per person, first to last recorded "
    "clinical event (visits, conditions, drugs, procedures, measurements).",
    "visit_occurrence": "OMOP VISIT_OCCURRENCE: one row per encounter of silver.encounter "
    "(per institution and visit number, the HIS record preferred over other sources).",
    "visit_detail": "OMOP VISIT_DETAIL: ward/department stays within an inpatient visit "
    "(silver.encounter_transfer).",
    "condition_occurrence": "OMOP CONDITION_OCCURRENCE: diagnoses of silver.diagnosis.",
    "drug_exposure": "OMOP DRUG_EXPOSURE: medication orders of silver.medication_order.",
    "procedure_occurrence": "OMOP PROCEDURE_OCCURRENCE: procedures of silver.procedure.",
    "measurement": "OMOP MEASUREMENT: lab results (silver.lab_result) and vital signs "
    "(silver.vital_sign) in canonical units.",
    "observation": "OMOP OBSERVATION: clinical facts that are neither measurements nor "
    "conditions (codes whose standard domain is Observation).",
    "death": "OMOP DEATH: one row per deceased person.",
    "note": "OMOP NOTE: clinical notes of silver.note (full text: PHI; analysts read the "
    "de-identified view).",
    "note_nlp": "OMOP NOTE_NLP: entities found in notes by the clinical NLP job, with "
    "offsets, assertion (term_exists, term_temporal, term_modifiers) and concept.",
    "specimen": "OMOP SPECIMEN: specimens of lab orders.",
    "location": "OMOP LOCATION: addresses (generalized to county level) of persons and "
    "institutions.",
    "care_site": "OMOP CARE_SITE: institutions and their departments (silver.org, silver.dept).",
    "provider": "OMOP PROVIDER: clinicians (silver.provider).",
    "cdm_source": "OMOP CDM_SOURCE: this lakehouse as a CDM instance (version, build time).",
}


def _comment(table: str) -> str:
    if table in _COMMENTS:
        return _COMMENTS[table]
    return (
        f"OMOP {table.upper()} (standardized vocabularies), fed from the terminology "
        "service (vocab.*) plus the OMOP core concepts the CDM fields need."
    )


def _spec(table: str) -> TableSpec:
    fields = FIELDS[table]
    clinical = table in CLINICAL_TABLES
    pk = tuple(f.name for f in fields if f.primary_key) or _NATURAL_KEYS[table]
    # Only keys are NOT NULL in Delta: a missing required value must not fail the whole
    # MERGE; the isRequired check of the quality job finds and counts it instead.
    cols = [
        column(f.name, f.spark_type, describe(f), nullable=f.name not in pk, phi=_phi(f))
        for f in fields
    ]
    if clinical:
        cols.extend(_etl_columns())
    names = {f.name for f in fields}
    has_person = "person_id" in names
    if has_person:
        cluster: tuple[str, ...] = ("person_id",)
    elif table in ("concept", "note_nlp"):
        cluster = (pk[0],) if table == "concept" else ("note_id",)
    else:
        cluster = ()
    return TableSpec(
        name=f"gold.{table}",
        columns=tuple(cols),
        comment=_comment(table),
        keys=pk,
        cluster_by=cluster,
        person_key="person_id" if has_person else None,
        volatile=ETL_VOLATILE if clinical else (),
    )


SPECS: MappingProxyType[str, TableSpec] = MappingProxyType({t: _spec(t) for t in _FIELDS})


def spec(table: str) -> TableSpec:
    """The TableSpec of an OMOP table by its CDM name (``person``, ``measurement``...)."""
    return SPECS[table]


PERSON = SPECS["person"]
OBSERVATION_PERIOD = SPECS["observation_period"]
VISIT_OCCURRENCE = SPECS["visit_occurrence"]
VISIT_DETAIL = SPECS["visit_detail"]
CONDITION_OCCURRENCE = SPECS["condition_occurrence"]
DRUG_EXPOSURE = SPECS["drug_exposure"]
PROCEDURE_OCCURRENCE = SPECS["procedure_occurrence"]
MEASUREMENT = SPECS["measurement"]
OBSERVATION = SPECS["observation"]
DEATH = SPECS["death"]
NOTE = SPECS["note"]
NOTE_NLP = SPECS["note_nlp"]
SPECIMEN = SPECS["specimen"]
LOCATION = SPECS["location"]
CARE_SITE = SPECS["care_site"]
PROVIDER = SPECS["provider"]
CONCEPT = SPECS["concept"]
CONCEPT_RELATIONSHIP = SPECS["concept_relationship"]
CONCEPT_ANCESTOR = SPECS["concept_ancestor"]
SOURCE_TO_CONCEPT_MAP = SPECS["source_to_concept_map"]
VOCABULARY = SPECS["vocabulary"]
DOMAIN = SPECS["domain"]
CONCEPT_CLASS = SPECS["concept_class"]
RELATIONSHIP = SPECS["relationship"]
CONCEPT_SYNONYM = SPECS["concept_synonym"]
CDM_SOURCE = SPECS["cdm_source"]
