"""The terminology service: versioned vocabularies in Delta, code mapping, units, value
domains and the review queue of unmapped codes. See :mod:`lakehouse.terminology.api` and
docs/terminology.md.
"""

from lakehouse.terminology.api import (
    ATC,
    GB2261,
    ICD9CM3,
    ICD10,
    ICD10CM,
    LOINC,
    MAP_STATUSES,
    UCUM,
    UNIT_STATUSES,
    accept,
    local_concept_id,
    local_vocabulary,
    map_codes,
    normalize_units,
    open_items,
    record_unmapped,
    reject,
    sex_gb2261,
    sex_gb2261_name,
    to_ucum,
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
