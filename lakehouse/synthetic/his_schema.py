"""The HIS database schema (SQLAlchemy Core): one ``Table`` per HIS table.

Every table has ``updated_at`` (the watermark of incremental extraction); patients, visits,
diagnoses and prescriptions also have ``created_at``, so a later correction shows as
``updated_at > created_at``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Date, DateTime, Float, Integer, MetaData, String, Table

METADATA = MetaData()


def _table(name: str, *cols: Column[Any]) -> Table:
    return Table(name, METADATA, *cols, Column("updated_at", DateTime, nullable=False))


DEPARTMENTS = _table(
    "departments",
    Column("dept_code", String(16), primary_key=True),
    Column("dept_name", String(64), nullable=False),
    Column("dept_name_en", String(64)),
    Column("ward_name", String(64)),
)
STAFF = _table(
    "staff",
    Column("staff_id", String(32), primary_key=True),
    Column("staff_name", String(32), nullable=False),
    Column("dept_code", String(16), nullable=False),
    Column("title", String(32)),
)
PATIENTS = _table(
    "patients",
    Column("patient_id", String(32), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("sex", String(1)),
    Column("birth_date", Date),
    Column("id_card", String(18)),
    Column("passport", String(16)),
    Column("phone", String(20)),
    Column("address", String(200)),
    Column("ethnicity", String(16)),
    Column("created_at", DateTime, nullable=False),
)
VISITS = _table(
    "visits",
    Column("visit_no", String(32), primary_key=True),
    Column("patient_id", String(32), nullable=False, index=True),
    Column("visit_type", String(1), nullable=False),
    Column("dept_code", String(16)),
    Column("doctor_id", String(32)),
    Column("visit_time", DateTime, nullable=False),
    Column("admit_time", DateTime),
    Column("discharge_time", DateTime),
    Column("bed_no", String(16)),
    Column("created_at", DateTime, nullable=False),
)
TRANSFERS = _table(
    "transfers",
    Column("transfer_id", String(40), primary_key=True),
    Column("visit_no", String(32), nullable=False, index=True),
    Column("transfer_time", DateTime, nullable=False),
    Column("from_dept", String(16)),
    Column("to_dept", String(16)),
    Column("bed_no", String(16)),
)
DIAGNOSES = _table(
    "diagnoses",
    Column("diag_id", String(40), primary_key=True),
    Column("visit_no", String(32), nullable=False, index=True),
    Column("icd10", String(16), nullable=False),
    Column("diag_name", String(64)),
    Column("diag_type", String(8)),
    Column("diag_time", DateTime),
    Column("created_at", DateTime, nullable=False),
)
ORDERS = _table(
    "orders",
    Column("order_id", String(40), primary_key=True),
    Column("visit_no", String(32), nullable=False, index=True),
    Column("order_type", String(8), nullable=False),
    Column("item_code", String(32)),
    Column("item_name", String(64)),
    Column("order_time", DateTime),
    Column("doctor_id", String(32)),
)
PRESCRIPTIONS = _table(
    "prescriptions",
    Column("rx_id", String(40), primary_key=True),
    Column("visit_no", String(32), nullable=False, index=True),
    Column("order_id", String(40)),
    Column("drug_code", String(16)),
    Column("drug_name", String(64)),
    Column("dose", Float),
    Column("dose_unit", String(8)),
    Column("route", String(16)),
    Column("frequency", String(8)),
    Column("days", Integer),
    Column("created_at", DateTime, nullable=False),
)
CHARGES = _table(
    "charges",
    Column("charge_id", String(40), primary_key=True),
    Column("visit_no", String(32), nullable=False, index=True),
    Column("item_type", String(8)),
    Column("item_name", String(64)),
    Column("quantity", Float),
    Column("unit_price", Float),
    Column("amount", Float),
    Column("charge_time", DateTime),
)
