"""``bronze.pacs_dicom_instances``: DICOM metadata of PACS files, pixel data by reference."""

from __future__ import annotations

from pyspark.sql.types import BooleanType, MapType, StringType

from lakehouse.tables.bronze.lineage import BRONZE_CLUSTERING, RECORD_KEYS, lineage_columns
from lakehouse.tables.spec import Phi, TableSpec, column

PACS_DICOM_INSTANCES = TableSpec(
    name="bronze.pacs_dicom_instances",
    comment="One row per DICOM file: key identifiers, every data element (decoded with its "
    "Specific Character Set) as text, and a reference to the pixel data left in the file.",
    columns=(
        *lineage_columns(),
        column("sop_instance_uid", StringType(), "(0008,0018) SOP Instance UID."),
        column("sop_class_uid", StringType(), "(0008,0016) SOP Class UID."),
        column("study_instance_uid", StringType(), "(0020,000D) Study Instance UID."),
        column("series_instance_uid", StringType(), "(0020,000E) Series Instance UID."),
        column("modality", StringType(), "(0008,0060) Modality."),
        column("specific_character_set", StringType(), "(0008,0005) as declared."),
        column("transfer_syntax_uid", StringType(), "(0002,0010) Transfer Syntax UID."),
        column("patient_name", StringType(), "(0010,0010) decoded.", phi=Phi.NAME),
        column("patient_id", StringType(), "(0010,0020) Patient ID.", phi=Phi.IDENTIFIER),
        column(
            "tags",
            MapType(StringType(), StringType()),
            "Every data element but pixel data: 'gggg,eeee Keyword' -> value as text.",
            phi=Phi.RAW,
        ),
        column("has_pixel_data", BooleanType(), "Whether the file carries (7FE0,0010)."),
        column(
            "pixel_data_ref",
            StringType(),
            "Where the pixel data stays: the landed file path (pixel data is not copied).",
        ),
    ),
    keys=RECORD_KEYS,
    cluster_by=BRONZE_CLUSTERING,
)
