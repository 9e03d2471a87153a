"""``bronze.his_<table>``: every version of every row of the HIS database, extracted over JDBC.

One bronze table per HIS table, with the source's columns (the types the HIS has) and the
lineage of the extraction. Keys are ``(institution_code, <primary key>, row_sha256)``: each
distinct version of a source row is kept once (insert-only MERGE), so re-extracting an
unchanged row writes nothing and a late correction lands as a new version beside the old
one. ``op`` is ``U`` for a row read from the source and ``D`` for a tombstone written by the
deletion reconcile (``lakehouse ingest --source his --reconcile``) for a key gone from it.
The current state of a row is its latest version (highest ``ingested_at``); see
docs/ingest-his.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import (
    DataType,
    DateType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    TimestampType,
)

from lakehouse.tables.bronze.lineage import BRONZE_CLUSTERING
from lakehouse.tables.spec import Phi, TableSpec, column

SOURCE_SYSTEM = "his"
S, TS, D, DBL, INT = StringType(), TimestampType(), DateType(), DoubleType(), IntegerType()
_UPDATED = column("updated_at", TS, "Source: when the row last changed (the extraction watermark).")


def his_lineage_columns(pk: str, pk_phi: Phi | None = None) -> tuple[StructField, ...]:
    """Key and lineage columns of a ``bronze.his_*`` table whose source key is ``pk``."""
    return (
        column(
            "institution_code",
            S,
            "Institution whose HIS the row comes from (his.institution_code).",
            nullable=False,
        ),
        column(pk, S, "Source: primary key of the row.", nullable=False, phi=pk_phi),
        column(
            "row_sha256",
            S,
            "SHA-256 (hex) of the canonical row content: every source column cast to a "
            "string (timestamps yyyy-MM-dd HH:mm:ss.SSSSSS), NUL for null, joined by U+001F; "
            "for a tombstone, of 'D' and the deleted version's hash. Identifies the version.",
            nullable=False,
        ),
        column(
            "op",
            S,
            "U: a version read from the source; D: tombstone, the key was gone from the "
            "source at a deletion reconcile.",
            nullable=False,
        ),
        column("source_system", S, "Source system: his.", nullable=False),
        column(
            "source_table", S, "Table of the HIS database the row was read from.", nullable=False
        ),
        column(
            "source_updated_at",
            TS,
            "The source's watermark value (updated_at) of this version; null on a tombstone.",
        ),
        column("ingest_run_id", S, "ops.job_runs run that extracted this version."),
        column("ingested_at", TimestampType(), "When this version was landed."),
        column("ingest_date", DateType(), "Date part of ingested_at (clustering column)."),
    )


@dataclass(frozen=True)
class HisTable:
    """One HIS table: its name in the source, its primary key and its bronze spec."""

    source_table: str
    pk: str
    spec: TableSpec

    @property
    def source_columns(self) -> tuple[StructField, ...]:
        """The source's columns (the bronze spec's columns after the lineage ones)."""
        lineage = {c.name for c in his_lineage_columns(self.pk)} - {self.pk}
        return tuple(c for c in self.spec.columns if c.name not in lineage)


def _his(
    table: str,
    pk: str,
    comment: str,
    *columns: StructField,
    person_key: str | None = None,
    pk_phi: Phi | None = None,
) -> TableSpec:
    return TableSpec(
        name=f"bronze.his_{table}",
        comment=f"HIS table {table}, every version of every row ({comment}). Keys: "
        f"institution_code, {pk}, row_sha256.",
        columns=(*his_lineage_columns(pk, pk_phi), *columns, _UPDATED),
        keys=("institution_code", pk, "row_sha256"),
        cluster_by=BRONZE_CLUSTERING,
        person_key=person_key,
    )


def _c(name: str, data_type: DataType, comment: str, phi: Phi | None = None) -> StructField:
    return column(name, data_type, f"Source: {comment}", phi=phi)


HIS_DEPARTMENTS = _his(
    "departments",
    "dept_code",
    "departments and wards",
    _c("dept_name", S, "department name (Chinese)."),
    _c("dept_name_en", S, "department name (English)."),
    _c("ward_name", S, "ward of the department."),
)
HIS_STAFF = _his(
    "staff",
    "staff_id",
    "doctors and nurses",
    _c("staff_name", S, "name of the staff member.", Phi.NAME),
    _c("dept_code", S, "department of the staff member."),
    _c("title", S, "professional title."),
)
HIS_PATIENTS = _his(
    "patients",
    "patient_id",
    "patient master index of the hospital, one row per local MRN",
    _c("name", S, "patient name.", Phi.NAME),
    _c("sex", S, "sex code (GB/T 2261.1: 1 male, 2 female).", Phi.QUASI),
    _c("birth_date", D, "date of birth.", Phi.DATE),
    _c("id_card", S, "resident identity card number (身份证号).", Phi.IDENTIFIER),
    _c("passport", S, "passport number (foreign patients).", Phi.IDENTIFIER),
    _c("phone", S, "phone number.", Phi.CONTACT),
    _c("address", S, "home address.", Phi.ADDRESS),
    _c("ethnicity", S, "ethnicity (GB 3304).", Phi.QUASI),
    _c("created_at", TS, "when the row was created."),
    person_key="patient_id",
    pk_phi=Phi.IDENTIFIER,
)
HIS_VISITS = _his(
    "visits",
    "visit_no",
    "outpatient, emergency and inpatient visits",
    _c("patient_id", S, "local MRN of the patient.", Phi.IDENTIFIER),
    _c("visit_type", S, "O outpatient, E emergency, I inpatient."),
    _c("dept_code", S, "department of the visit."),
    _c("doctor_id", S, "attending doctor (staff_id)."),
    _c("visit_time", TS, "when the visit started.", Phi.DATE),
    _c("admit_time", TS, "admission time (inpatients).", Phi.DATE),
    _c("discharge_time", TS, "discharge time (inpatients).", Phi.DATE),
    _c("bed_no", S, "bed number (inpatients)."),
    _c("created_at", TS, "when the row was created."),
    person_key="patient_id",
    pk_phi=Phi.IDENTIFIER,
)
HIS_TRANSFERS = _his(
    "transfers",
    "transfer_id",
    "ward transfers of inpatient visits",
    _c("visit_no", S, "visit transferred.", Phi.IDENTIFIER),
    _c("transfer_time", TS, "when the transfer happened.", Phi.DATE),
    _c("from_dept", S, "department left."),
    _c("to_dept", S, "department entered."),
    _c("bed_no", S, "bed number after the transfer."),
    pk_phi=Phi.IDENTIFIER,
)
HIS_DIAGNOSES = _his(
    "diagnoses",
    "diag_id",
    "diagnoses of visits, ICD-10",
    _c("visit_no", S, "visit diagnosed.", Phi.IDENTIFIER),
    _c("icd10", S, "ICD-10 code (国家临床版)."),
    _c("diag_name", S, "diagnosis name as written."),
    _c("diag_type", S, "主要 (principal) or 其他 (other)."),
    _c("diag_time", TS, "when the diagnosis was made.", Phi.DATE),
    _c("created_at", TS, "when the row was created."),
)
HIS_ORDERS = _his(
    "orders",
    "order_id",
    "orders: LAB, IMG, DRUG",
    _c("visit_no", S, "visit of the order.", Phi.IDENTIFIER),
    _c("order_type", S, "LAB, IMG or DRUG."),
    _c("item_code", S, "ordered item (drug code, modality)."),
    _c("item_name", S, "ordered item name."),
    _c("order_time", TS, "when the order was placed.", Phi.DATE),
    _c("doctor_id", S, "ordering doctor (staff_id)."),
    pk_phi=Phi.IDENTIFIER,
)
HIS_PRESCRIPTIONS = _his(
    "prescriptions",
    "rx_id",
    "drug prescriptions",
    _c("visit_no", S, "visit of the prescription.", Phi.IDENTIFIER),
    _c("order_id", S, "DRUG order of the prescription.", Phi.IDENTIFIER),
    _c("drug_code", S, "local drug code."),
    _c("drug_name", S, "drug name."),
    _c("dose", DBL, "dose per administration."),
    _c("dose_unit", S, "unit of the dose."),
    _c("route", S, "route of administration."),
    _c("frequency", S, "frequency code (qd, bid, ...)."),
    _c("days", INT, "days prescribed."),
    _c("created_at", TS, "when the row was created."),
)
HIS_CHARGES = _his(
    "charges",
    "charge_id",
    "billing items",
    _c("visit_no", S, "visit charged.", Phi.IDENTIFIER),
    _c("item_type", S, "REG, LAB or DRUG."),
    _c("item_name", S, "charged item."),
    _c("quantity", DBL, "quantity."),
    _c("unit_price", DBL, "unit price (CNY)."),
    _c("amount", DBL, "amount (CNY)."),
    _c("charge_time", TS, "when the charge was made.", Phi.DATE),
    pk_phi=Phi.IDENTIFIER,
)

#: Every HIS table by its source name.
HIS_TABLES: dict[str, HisTable] = {
    spec.table_name.removeprefix("his_"): HisTable(
        spec.table_name.removeprefix("his_"), spec.keys[1], spec
    )
    for spec in (
        HIS_DEPARTMENTS,
        HIS_STAFF,
        HIS_PATIENTS,
        HIS_VISITS,
        HIS_TRANSFERS,
        HIS_DIAGNOSES,
        HIS_ORDERS,
        HIS_PRESCRIPTIONS,
        HIS_CHARGES,
    )
}
