"""An alliance member delivering CSV exports in GB18030 with its own local code system.

Per chunk of patients: ``patients``, ``visits``, ``diagnoses``, ``labs`` and
``medications`` files (``<table>_<chunk>.csv``), Chinese headers, CRLF line ends, GB18030
bytes (they do not decode as UTF-8). Diagnoses, labs and drugs use the site's local codes
(ZD-*, JY*, YP*); ``truth/local_codes.parquet`` maps them to ICD-10, LOINC and ATC.
"""

from __future__ import annotations

import csv
import io

from lakehouse.synthetic import catalog
from lakehouse.synthetic.dirt import DefectCode, Dirt, Landing
from lakehouse.synthetic.model import Patient, Site
from lakehouse.synthetic.truth import TruthWriter

HEADERS = {
    "patients": [
        "患者编号",
        "姓名",
        "性别",
        "出生日期",
        "证件号码",
        "联系电话",
        "家庭住址",
        "民族",
    ],
    "visits": ["就诊流水号", "患者编号", "就诊类型", "科室", "就诊时间", "离院时间", "医生工号"],
    "diagnoses": ["诊断流水号", "就诊流水号", "诊断编码", "诊断名称", "主要诊断"],
    "labs": [
        "检验流水号",
        "就诊流水号",
        "项目编码",
        "项目名称",
        "结果",
        "单位",
        "参考范围",
        "异常标志",
        "采样时间",
    ],
    "medications": [
        "处方流水号",
        "就诊流水号",
        "药品编码",
        "药品名称",
        "单次剂量",
        "剂量单位",
        "给药途径",
        "频次",
        "天数",
    ],
}
_KIND = {"O": "门诊", "E": "急诊", "I": "住院"}
_SEX = {"M": "男", "F": "女"}
ENCODING = "gb18030"


def _dt(value: object) -> str:
    return value.strftime("%Y/%m/%d %H:%M") if hasattr(value, "strftime") else str(value)


def local_code_rows(site: Site) -> list[dict[str, str]]:
    """The site's local code system and its map to standard codes (for the truth)."""
    rows = []
    conds = [*catalog.conditions().values(), *catalog.outcomes().values()]
    for c in [*conds, catalog.clinical()["checkup"]]:
        rows.append(("ZD", c["csv_code"], c["zh"], "ICD-10", c["icd10"]))
    for key, lab in catalog.labs().items():
        rows.append(("JY", lab["csv_code"], lab["zh"], "LOINC", lab["loinc"]))
        del key
    for d in catalog.drugs().values():
        rows.append(("YP", d["csv_code"], d["zh"], "ATC", d["atc"]))
    return [
        {
            "institution_code": site.code,
            "code_system": f"{site.code}-{system}",
            "local_code": code,
            "local_name": name,
            "standard_system": std,
            "standard_code": std_code,
        }
        for system, code, name, std, std_code in rows
    ]


class CsvSite:
    """Collects one chunk's rows for one member site and writes the GB18030 files."""

    def __init__(self, site: Site, landing: Landing, truth: TruthWriter) -> None:
        self.site, self.landing, self.truth = site, landing, truth
        self.rows: dict[str, list[list[str]]] = {t: [] for t in HEADERS}

    def add_patient(self, p: Patient, chunk: int, dirt: Dirt) -> None:
        reg = p.registrations.get(self.site.code)
        if reg is None:
            return
        file = self.landing.path("csv", self.site.code, f"patients_{chunk:05d}.csv")
        sex = _SEX[p.person.sex]
        if dirt.roll("missing_field"):
            sex = ""
            dirt.record(DefectCode.MISSING_FIELD, "csv", self.site.code, file, reg.local_id, "性别")
        self.rows["patients"].append(
            [
                reg.local_id,
                reg.name,
                sex,
                p.person.birth_date.strftime("%Y/%m/%d"),
                reg.id_card or "",
                reg.phone,
                reg.address.text,
                p.person.ethnicity,
            ]
        )
        conds = {
            **catalog.conditions(),
            **catalog.outcomes(),
            "checkup": catalog.clinical()["checkup"],
        }
        lab_file = self.landing.path("csv", self.site.code, f"labs_{chunk:05d}.csv")
        for e in p.at(self.site.code):
            self.rows["visits"].append(
                [
                    e.visit_no,
                    reg.local_id,
                    _KIND[e.kind],
                    catalog.departments()[e.dept]["zh"],
                    _dt(e.start),
                    _dt(e.end),
                    e.doctor,
                ]
            )
            for d in e.diagnoses:
                c = conds[d.key]
                self.rows["diagnoses"].append(
                    [d.dx_id, e.visit_no, c["csv_code"], c["zh"], "是" if d.primary else "否"]
                )
            for lab in e.labs:
                spec = catalog.labs()[lab.code]
                value, unit, low, high = lab.value, spec["unit"], spec["low"], spec["high"]
                rid = f"JY{lab.lab_id}"
                if "alt_unit" in spec and dirt.roll("unit_variant"):
                    f = float(spec["alt_factor"])
                    value, unit, low, high = value * f, spec["alt_unit"], low * f, high * f
                    dirt.record(
                        DefectCode.UNIT_VARIANT,
                        "csv",
                        self.site.code,
                        lab_file,
                        rid,
                        f"{spec['unit']} -> {unit}",
                    )
                value = round(value, 3)
                if dirt.roll("out_of_range"):
                    value = round(value * 100, 3)
                    dirt.record(
                        DefectCode.OUT_OF_RANGE, "csv", self.site.code, lab_file, rid, "value x100"
                    )
                flag = {"H": "↑", "L": "↓", "N": ""}[lab.flag]
                self.rows["labs"].append(
                    [
                        rid,
                        e.visit_no,
                        spec["csv_code"],
                        spec["zh"],
                        f"{value:g}",
                        unit,
                        f"{low:g}-{high:g}",
                        flag,
                        _dt(lab.collected_at),
                    ]
                )
                self.truth.add_lab(
                    lab,
                    encounter_id=e.encounter_id,
                    person_id=p.person.person_id,
                    institution_code=self.site.code,
                    source_system="csv",
                    reported_value=value,
                    reported_unit=unit,
                    file=lab_file,
                    record_id=rid,
                )
            for m in e.meds:
                drug = catalog.drugs()[m.drug]
                self.rows["medications"].append(
                    [
                        m.med_id,
                        e.visit_no,
                        drug["csv_code"],
                        drug["zh"],
                        f"{m.dose:g}",
                        m.unit,
                        m.route,
                        m.freq,
                        str(m.days),
                    ]
                )

    def flush(self, chunk: int, dirt: Dirt) -> None:
        for table, rows in self.rows.items():
            if not rows:
                continue
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\r\n")
            writer.writerow(HEADERS[table])
            writer.writerows(rows)
            data = buf.getvalue().encode(ENCODING)
            self.landing.deliver(
                dirt, "csv", self.site.code, f"{table}_{chunk:05d}.csv", data, len(rows)
            )
            rows.clear()
