"""``silver.patient``: patients as each source recorded them (demographics conformed)."""

from __future__ import annotations

from pyspark.sql.types import DateType, MapType, StringType

from lakehouse.tables.silver.common import (
    SILVER_CLUSTERING,
    SILVER_VOLATILE,
    lineage_columns,
    patient_columns,
    record_keys,
    source_columns,
)
from lakehouse.tables.spec import Phi, TableSpec, column

PATIENT = TableSpec(
    name="silver.patient",
    comment="One row per patient record of each source (HIS patients, HL7 PID, CDA "
    "recordTarget, FHIR Patient, member CSV): demographics conformed to the national value "
    "domains (sex GB/T 2261.1), originals kept. Not yet linked across sources: "
    "silver.person_index (EMPI) does that.",
    columns=(
        *source_columns(),
        *patient_columns(required=True),
        column(
            "source_record_id",
            StringType(),
            "Id of the record in its source (HIS patient_id, FHIR Patient id, HL7 control "
            "id of the message that carried it...).",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "identifiers",
            MapType(StringType(), StringType()),
            "Every identifier the source gave: system (OID/URI/assigning authority) -> value.",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "id_card_no",
            StringType(),
            "身份证件号码 (resident ID card number).",
            phi=Phi.IDENTIFIER,
            ws445="DE02.01.030.00",
        ),
        column(
            "id_card_valid",
            StringType(),
            "Whether id_card_no passes the GB 11643 check digit: valid, invalid or missing.",
        ),
        column(
            "passport_no",
            StringType(),
            "Passport number, for foreign patients.",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "name",
            StringType(),
            "Patient name (姓名) as recorded.",
            phi=Phi.NAME,
            ws445="DE02.01.039.00",
        ),
        column(
            "sex_code",
            StringType(),
            "Sex, GB/T 2261.1: 0 unknown, 1 male, 2 female, 9 unspecified.",
            phi=Phi.QUASI,
            ws445="DE02.01.040.00",
        ),
        column(
            "sex_source",
            StringType(),
            "Sex as the source wrote it (M, 女, female, 1...).",
            phi=Phi.QUASI,
        ),
        column("birth_date", DateType(), "Date of birth.", phi=Phi.DATE, ws445="DE02.01.005.01"),
        column(
            "birth_date_source", StringType(), "Date of birth as the source wrote it.", phi=Phi.DATE
        ),
        column(
            "phone",
            StringType(),
            "Telephone number (digits, country code removed).",
            phi=Phi.CONTACT,
            ws445="DE02.01.010.00",
        ),
        column("address", StringType(), "Full address text as recorded.", phi=Phi.ADDRESS),
        column(
            "address_province",
            StringType(),
            "Province (省/自治区/直辖市) of the address.",
            phi=Phi.QUASI,
            ws445="DE02.01.009.01",
        ),
        column(
            "address_city",
            StringType(),
            "City (市/地区/州) of the address.",
            phi=Phi.QUASI,
            ws445="DE02.01.009.02",
        ),
        column(
            "address_county",
            StringType(),
            "County or district (县/区) of the address.",
            phi=Phi.ADDRESS,
            ws445="DE02.01.009.03",
        ),
        column(
            "postcode",
            StringType(),
            "Postal code (邮政编码).",
            phi=Phi.QUASI,
            ws445="DE02.01.047.00",
        ),
        column(
            "ethnicity",
            StringType(),
            "Ethnic group (民族) as recorded, e.g. 汉族.",
            phi=Phi.QUASI,
            ws445="DE02.01.025.00",
        ),
        column(
            "insurance_type", StringType(), "Medical insurance type (医疗保险类别) as recorded."
        ),
        column("insurance_no", StringType(), "Medical insurance number.", phi=Phi.IDENTIFIER),
        *lineage_columns(),
    ),
    keys=record_keys("patient_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)
