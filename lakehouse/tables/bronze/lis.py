"""``bronze.lis_hl7v2_messages``: HL7 v2 messages of the laboratory information system."""

from __future__ import annotations

from pyspark.sql.types import StringType

from lakehouse.tables.bronze.lineage import BRONZE_CLUSTERING, RECORD_KEYS, lineage_columns
from lakehouse.tables.spec import Phi, TableSpec, column

LIS_HL7V2_MESSAGES = TableSpec(
    name="bronze.lis_hl7v2_messages",
    comment="One row per HL7 v2 message split from LIS files (batches, MLLP frames): the "
    "decoded message as delivered plus its MSH header fields.",
    columns=(
        *lineage_columns(),
        column(
            "raw_message",
            StringType(),
            "The decoded message text as delivered (segments and their separators).",
            phi=Phi.RAW,
        ),
        column("encoding", StringType(), "Character set the bytes were decoded with."),
        column("field_separator", StringType(), "MSH-1 field separator."),
        column("encoding_characters", StringType(), "MSH-2 encoding characters."),
        column("sending_application", StringType(), "MSH-3 sending application."),
        column("sending_facility", StringType(), "MSH-4 sending facility."),
        column("receiving_application", StringType(), "MSH-5 receiving application."),
        column("receiving_facility", StringType(), "MSH-6 receiving facility."),
        column("message_datetime", StringType(), "MSH-7 date/time of message, as sent."),
        column("message_type", StringType(), "MSH-9 message type, whole (e.g. ORU^R01^ORU_R01)."),
        column("message_code", StringType(), "MSH-9.1 message code (e.g. ORU)."),
        column("trigger_event", StringType(), "MSH-9.2 trigger event (e.g. R01)."),
        column("control_id", StringType(), "MSH-10 message control id."),
        column("processing_id", StringType(), "MSH-11 processing id (P, T, D)."),
        column("version_id", StringType(), "MSH-12 HL7 version (e.g. 2.5)."),
        column("character_set", StringType(), "MSH-18 declared character set, as sent."),
    ),
    keys=RECORD_KEYS,
    cluster_by=BRONZE_CLUSTERING,
)
