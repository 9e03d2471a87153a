"""``bronze.fhir_resources``: FHIR R4 resources from NDJSON files and bundles."""

from __future__ import annotations

from pyspark.sql.types import StringType

from lakehouse.tables.bronze.lineage import BRONZE_CLUSTERING, RECORD_KEYS, lineage_columns
from lakehouse.tables.spec import Phi, TableSpec, column

FHIR_RESOURCES = TableSpec(
    name="bronze.fhir_resources",
    comment="One row per FHIR resource: an NDJSON line or a Bundle entry, raw JSON kept.",
    columns=(
        *lineage_columns(),
        column("resource_type", StringType(), "FHIR resourceType (Patient, Observation...)."),
        column("resource_id", StringType(), "FHIR logical id of the resource."),
        column("bundle_id", StringType(), "id of the enclosing Bundle; null for NDJSON lines."),
        column("raw_json", StringType(), "The resource's JSON text.", phi=Phi.RAW),
    ),
    keys=RECORD_KEYS,
    cluster_by=BRONZE_CLUSTERING,
)
