"""What silver calls: the terminology service's public interface, in one place.

- :func:`map_codes` — codes to standard concepts on a date (statuses standard, mapped,
  invalid, unmapped; row count unchanged);
- :func:`normalize_units` and :func:`to_ucum` — values to each analyte's canonical UCUM
  unit (statuses canonical, converted, unknown_unit, no_value);
- :func:`sex_gb2261` — GB/T 2261.1 sex codes;
- :func:`vocabulary_for` / :func:`vocabulary_of` — FHIR system URIs, HL7 coding-system
  names and CDA OIDs to vocabulary ids (Python / Spark);
- :func:`record_unmapped`, :func:`accept`, :func:`reject` — the review queue.

All are Spark expressions or DataFrame transforms (no Python UDF); the Spark session is
passed in. The vocabulary tables must have been loaded (``python -m jobs.terminology``).
"""

from __future__ import annotations

from lakehouse.terminology.domains import sex_gb2261, sex_gb2261_name
from lakehouse.terminology.mapping import MAP_STATUSES, map_codes
from lakehouse.terminology.review import accept, open_items, record_unmapped, reject
from lakehouse.terminology.units import UNIT_STATUSES, normalize_units, to_ucum
from lakehouse.terminology.vocabularies import (
    ATC,
    GB2261,
    ICD9CM3,
    ICD10,
    ICD10CM,
    LOINC,
    UCUM,
    local_concept_id,
    local_vocabulary,
    vocabulary_for,
    vocabulary_of,
)

__all__ = [
    "ATC",
    "GB2261",
    "ICD9CM3",
    "ICD10",
    "ICD10CM",
    "LOINC",
    "MAP_STATUSES",
    "UCUM",
    "UNIT_STATUSES",
    "accept",
    "local_concept_id",
    "local_vocabulary",
    "map_codes",
    "normalize_units",
    "open_items",
    "record_unmapped",
    "reject",
    "sex_gb2261",
    "sex_gb2261_name",
    "to_ucum",
    "vocabulary_for",
    "vocabulary_of",
]
