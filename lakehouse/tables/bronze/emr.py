"""``bronze.emr_cda_documents``: CDA R2 / WS/T 500 clinical documents of the EMR."""

from __future__ import annotations

from pyspark.sql.types import StringType

from lakehouse.tables.bronze.lineage import BRONZE_CLUSTERING, RECORD_KEYS, lineage_columns
from lakehouse.tables.spec import Phi, TableSpec, column

EMR_CDA_DOCUMENTS = TableSpec(
    name="bronze.emr_cda_documents",
    comment="One row per CDA document (parsed without DTDs or entities): header fields and "
    "the decoded XML.",
    columns=(
        *lineage_columns(),
        column("root_element", StringType(), "Local name of the root element (ClinicalDocument)."),
        column("document_id", StringType(), "id/@root and id/@extension, joined by '^'."),
        column("document_code", StringType(), "code/@code: the document type code."),
        column("code_system", StringType(), "code/@codeSystem of the document type code."),
        column("title", StringType(), "title text.", phi=Phi.FREE_TEXT),
        column("effective_time", StringType(), "effectiveTime/@value, as written."),
        column("encoding", StringType(), "Character set the bytes were decoded with."),
        column("raw_xml", StringType(), "The decoded XML document.", phi=Phi.RAW),
    ),
    keys=RECORD_KEYS,
    cluster_by=BRONZE_CLUSTERING,
)
