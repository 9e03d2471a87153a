"""The main hospital's HIS as a relational database (SQLAlchemy Core; SQLite by default).

Tables: departments, staff, patients, visits (outpatient, emergency, inpatient with
admission and discharge), transfers, diagnoses (ICD-10), orders, prescriptions and charges.
Every table has ``updated_at``; late corrections leave the corrected value in the row with
an ``updated_at`` after ``created_at``, and the first, wrong value in the truth's defects.

With ``corrections="later"`` (``HospitalConfig(his_corrections="later")``) the rows keep
their first, wrong values instead, and :func:`apply_late_corrections` delivers the
corrections afterwards (``updated_at`` = the time given), as a live HIS would: the way to
test incremental extraction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Engine, Table, and_, create_engine, event

from lakehouse.synthetic import catalog
from lakehouse.synthetic.dirt import DefectCode, Dirt
from lakehouse.synthetic.his_schema import (
    CHARGES,
    DEPARTMENTS,
    DIAGNOSES,
    METADATA,
    ORDERS,
    PATIENTS,
    PRESCRIPTIONS,
    STAFF,
    TRANSFERS,
    VISITS,
)
from lakehouse.synthetic.model import Patient, Site, Staff

_WRONG_ICD = {
    "E11.900": "E14.900",
    "I10.x00": "I15.900",
    "J18.900": "J15.900",
    "R91.x00": "R91.x01",
}


def his_engine(url: str) -> Engine:
    engine = create_engine(url)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _fast(dbapi_conn: Any, _record: Any) -> None:  # bulk load: no journal needed
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=OFF")
            cur.execute("PRAGMA synchronous=OFF")
            cur.close()

    return engine


class HisWriter:
    """Creates the HIS schema and inserts one chunk of patients at a time."""

    def __init__(
        self, url: str, site: Site, staff: dict[str, list[Staff]], *, corrections: str = "final"
    ) -> None:
        self.engine = his_engine(url)
        self.site = site
        self.corrections = corrections
        METADATA.drop_all(self.engine)
        METADATA.create_all(self.engine)
        stamp = datetime(2024, 1, 1)
        depts = [
            {
                "dept_code": k,
                "dept_name": d["zh"],
                "dept_name_en": d["en"],
                "ward_name": d["ward"],
                "updated_at": stamp,
            }
            for k, d in catalog.departments().items()
        ]
        people = [
            {
                "staff_id": s.staff_id,
                "staff_name": s.name,
                "dept_code": s.dept,
                "title": s.title,
                "updated_at": stamp,
            }
            for key, group in staff.items()
            if key.startswith(f"{site.code}:")
            for s in group
        ]
        with self.engine.begin() as conn:
            conn.execute(DEPARTMENTS.insert(), depts)
            conn.execute(STAFF.insert(), people)
        self.rows: dict[Table, list[dict[str, Any]]] = {}
        self.records = 0

    def _add(self, table: Table, **row: Any) -> None:
        self.rows.setdefault(table, []).append(row)
        self.records += 1

    def add_patient(self, p: Patient, dirt: Dirt, file: str) -> None:
        reg = p.registrations.get(self.site.code)
        if reg is None:
            return
        encs = p.at(self.site.code)
        first = min((e.start for e in encs), default=datetime(2024, 7, 1))
        id_card = reg.id_card
        if id_card and dirt.roll("missing_field"):
            id_card = None
            dirt.record(
                DefectCode.MISSING_FIELD,
                "his",
                self.site.code,
                file,
                reg.local_id,
                "patients.id_card",
            )
        self._add(
            PATIENTS,
            patient_id=reg.local_id,
            name=reg.name,
            sex=p.person.sex,
            birth_date=p.person.birth_date,
            id_card=id_card,
            passport=p.person.passport,
            phone=reg.phone,
            address=reg.address.text,
            ethnicity=p.person.ethnicity,
            created_at=first,
            updated_at=first,
        )
        for e in encs:
            inpatient = e.kind == "I"
            self._add(
                VISITS,
                visit_no=e.visit_no,
                patient_id=reg.local_id,
                visit_type=e.kind,
                dept_code=e.dept,
                doctor_id=e.doctor,
                visit_time=e.start,
                admit_time=e.start if inpatient else None,
                discharge_time=e.end if inpatient else None,
                bed_no=e.bed,
                created_at=e.start,
                updated_at=e.end if inpatient else e.start,
            )
            for i, t in enumerate(e.transfers):
                self._add(
                    TRANSFERS,
                    transfer_id=f"{e.visit_no}-T{i}",
                    visit_no=e.visit_no,
                    transfer_time=t.at,
                    from_dept=t.from_dept,
                    to_dept=t.to_dept,
                    bed_no=t.bed,
                    updated_at=t.at,
                )
            for d in e.diagnoses:
                updated, icd10 = e.start, d.icd10
                if d.icd10 in _WRONG_ICD and dirt.roll("late_correction"):
                    updated = e.start + timedelta(days=dirt.rng.randrange(1, 20), hours=3)
                    dirt.record(
                        DefectCode.LATE_CORRECTION,
                        "his",
                        self.site.code,
                        file,
                        d.dx_id,
                        f"diagnoses.icd10 first {_WRONG_ICD[d.icd10]}, "
                        f"corrected {updated:%Y-%m-%d %H:%M}",
                    )
                    if self.corrections == "later":  # the first value; corrected later
                        updated, icd10 = e.start, _WRONG_ICD[d.icd10]
                self._add(
                    DIAGNOSES,
                    diag_id=d.dx_id,
                    visit_no=e.visit_no,
                    icd10=icd10,
                    diag_name=d.name,
                    diag_type="主要" if d.primary else "其他",
                    diag_time=e.start,
                    created_at=e.start,
                    updated_at=updated,
                )
            self._add(
                CHARGES,
                charge_id=f"{e.visit_no}-C0",
                visit_no=e.visit_no,
                item_type="REG",
                item_name="挂号费",
                quantity=1.0,
                unit_price=20.0,
                amount=20.0,
                charge_time=e.start,
                updated_at=e.start,
            )
            if e.labs:
                oid = f"{e.visit_no}-OL"
                self._add(
                    ORDERS,
                    order_id=oid,
                    visit_no=e.visit_no,
                    order_type="LAB",
                    item_code="LAB",
                    item_name="检验申请",
                    order_time=e.start,
                    doctor_id=e.doctor,
                    updated_at=e.start,
                )
                n = float(len(e.labs))
                self._add(
                    CHARGES,
                    charge_id=f"{e.visit_no}-C1",
                    visit_no=e.visit_no,
                    item_type="LAB",
                    item_name="检验费",
                    quantity=n,
                    unit_price=35.0,
                    amount=35.0 * n,
                    charge_time=e.start,
                    updated_at=e.start,
                )
            if e.imaging:
                self._add(
                    ORDERS,
                    order_id=f"{e.visit_no}-OI",
                    visit_no=e.visit_no,
                    order_type="IMG",
                    item_code=e.imaging.modality,
                    item_name="胸部CT" if e.imaging.modality == "CT" else "胸部X线摄影",
                    order_time=e.start,
                    doctor_id=e.doctor,
                    updated_at=e.start,
                )
            for m in e.meds:
                drug = catalog.drugs()[m.drug]
                oid = f"{e.visit_no}-O{m.med_id[-2:]}"
                self._add(
                    ORDERS,
                    order_id=oid,
                    visit_no=e.visit_no,
                    order_type="DRUG",
                    item_code=m.drug,
                    item_name=drug["zh"],
                    order_time=m.start,
                    doctor_id=e.doctor,
                    updated_at=m.start,
                )
                self._add(
                    PRESCRIPTIONS,
                    rx_id=m.med_id,
                    visit_no=e.visit_no,
                    order_id=oid,
                    drug_code=m.drug,
                    drug_name=drug["zh"],
                    dose=m.dose,
                    dose_unit=m.unit,
                    route=m.route,
                    frequency=m.freq,
                    days=m.days,
                    created_at=m.start,
                    updated_at=m.start,
                )
                qty = float(m.days)
                self._add(
                    CHARGES,
                    charge_id=f"{m.med_id}-C",
                    visit_no=e.visit_no,
                    item_type="DRUG",
                    item_name=drug["zh"],
                    quantity=qty,
                    unit_price=drug["price"],
                    amount=round(qty * drug["price"], 2),
                    charge_time=m.start,
                    updated_at=m.start,
                )

    def flush(self) -> None:
        with self.engine.begin() as conn:
            for table in METADATA.sorted_tables:
                rows = self.rows.pop(table, None)
                if rows:
                    conn.execute(table.insert(), rows)

    def close(self) -> None:
        self.flush()
        self.engine.dispose()


def late_corrections(out: Path) -> dict[str, str]:
    """The HIS's late corrections of a synthetic hospital: diag_id -> corrected ICD-10."""
    defects = pq.read_table(out / "truth" / "defects.parquet")
    mask = pc.and_(
        pc.equal(defects["source"], "his"), pc.equal(defects["defect_code"], "LATE_CORRECTION")
    )
    ids = set(defects.filter(mask)["record_id"].to_pylist())
    truth = pq.read_table(out / "truth" / "diagnoses.parquet", columns=["dx_id", "icd10"])
    return {
        dx: icd
        for dx, icd in zip(truth["dx_id"].to_pylist(), truth["icd10"].to_pylist(), strict=True)
        if dx in ids
    }


def apply_late_corrections(
    out: Path,
    *,
    at: datetime,
    his_url: str | None = None,
    ids: Iterable[str] | None = None,
) -> int:
    """Deliver the late corrections of a hospital built with ``his_corrections="later"``.

    Sets each corrected diagnosis (all, or those in ``ids``) to its true ICD-10 code with
    ``updated_at = at`` (a wall time, as the HIS stores it), in the HIS at ``his_url``
    (default: ``OUT/his/his.sqlite``). Rows already corrected are left alone. Returns the
    number of rows changed.
    """
    fixes = late_corrections(out)
    if ids is not None:
        wanted = set(ids)
        fixes = {k: v for k, v in fixes.items() if k in wanted}
    engine = his_engine(his_url or f"sqlite:///{(out / 'his' / 'his.sqlite').resolve()}")
    changed = 0
    try:
        with engine.begin() as conn:
            for diag_id, icd10 in sorted(fixes.items()):
                result = conn.execute(
                    DIAGNOSES.update()
                    .where(and_(DIAGNOSES.c.diag_id == diag_id, DIAGNOSES.c.icd10 != icd10))
                    .values(icd10=icd10, updated_at=at)
                )
                changed += result.rowcount
    finally:
        engine.dispose()
    return changed
