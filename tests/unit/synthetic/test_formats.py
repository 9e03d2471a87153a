"""Every emitted format read back by an independent reader (clean hospital: no dirt)."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pydicom
import pytest
from fhir.resources.R4B import get_fhir_model_class
from lxml import etree
from sqlalchemy import create_engine, inspect, text

from lakehouse.synthetic import HospitalReport
from lakehouse.synthetic.cda import DOC_TYPES
from lakehouse.synthetic.identity import is_valid_id_card
from tests.unit.synthetic.readers import parse_hl7

V3 = "{urn:hl7-org:v3}"


def test_layout_contract(clean_hospital: HospitalReport) -> None:
    out = clean_hospital.out
    assert (out / "his" / "his.sqlite").is_file()
    assert (out / "manifest.json").is_file()
    sources = {p.name for p in (out / "landing").iterdir()}
    assert sources == {"lis", "emr", "notes", "pacs", "fhir", "csv"}
    assert {p.name for p in (out / "landing" / "lis").iterdir()} == {"H0001"}
    assert {p.name for p in (out / "landing" / "fhir").iterdir()} == {"A0001"}
    assert {p.name for p in (out / "landing" / "csv").iterdir()} == {"A0002"}
    for entity in (
        "persons",
        "source_ids",
        "labs",
        "defects",
        "note_annotations",
        "image_labels",
        "questions",
        "diagnoses",
        "medications",
        "encounters",
    ):
        assert (out / "truth" / f"{entity}.parquet").is_file()


def test_hl7_parses_with_python_hl7(clean_hospital: HospitalReport) -> None:
    paths = sorted((clean_hospital.out / "landing/lis/H0001").glob("*.hl7"))
    assert paths
    triggers, separators, mllp = set(), set(), False
    for path in paths:
        raw = path.read_bytes()
        mllp |= raw.startswith(b"\x0b")
        separators |= {sep for sep in (b"\r\n", b"\n") if sep in raw} or {b"\r"}
        for msg in parse_hl7(path):
            msh = msg.segment("MSH")
            assert str(msh[12]) == "2.5"
            triggers.add(str(msh[9][0][1]))
            pid = msg.segment("PID")
            assert str(pid[3][0][0][0])  # MRN present (first repetition)
            if str(msh[9][0][0]) == "ORU":
                for obx in msg.segments("OBX"):
                    float(str(obx[5]))
                    assert str(obx[11]) in ("F", "C")
    assert {"R01", "A01", "A03"} <= triggers
    assert mllp, "some drops are MLLP-framed"
    assert len(separators) >= 2, "segment separators vary between drops"


def test_hl7_has_repetitions_escapes_and_z_segment(clean_hospital: HospitalReport) -> None:
    lis = clean_hospital.out / "landing/lis/H0001"
    msg = parse_hl7(sorted(lis.glob("ORU_R01_*.hl7"))[0])[0]
    ids = msg.segment("PID")[3]
    assert len(ids) == 2 or not is_valid_id_card(str(ids[0][0][0]))  # MRN ~ 身份证号
    assert msg.segments("ZPI")
    raw = "".join(p.read_bytes().decode() for p in lis.glob("ORU_R01_*.hl7"))
    assert "\\T\\" in raw  # '&' escaped in NTE comments
    nte = [m for p in lis.glob("ORU_R01_*.hl7") for m in parse_hl7(p) if "NTE" in str(m)]
    assert nte
    assert nte[0].unescape(str(nte[0].segments("NTE")[0][3])).count("&") == 1


def test_cda_documents_follow_ws_t_500_header(clean_hospital: HospitalReport) -> None:
    paths = sorted((clean_hospital.out / "landing/emr/H0001").glob("*.xml"))
    seen = set()
    for path in paths:
        root = etree.fromstring(path.read_bytes())
        assert root.tag == f"{V3}ClinicalDocument"
        assert root.find(f"{V3}realmCode").get("code") == "CN"
        type_id = root.find(f"{V3}typeId")
        assert (type_id.get("root"), type_id.get("extension")) == (
            "2.16.840.1.113883.1.3",
            "POCD_MT000040",
        )
        code = root.find(f"{V3}code").get("code")
        seen.add(code)
        assert root.find(f"{V3}templateId").get("root") == DOC_TYPES[code][1]
        assert root.find(f"{V3}code").get("codeSystem") == "2.16.156.10011.2.4"
        assert root.findtext(f"{V3}title") == DOC_TYPES[code][0]
        assert root.find(f"{V3}id").get("extension")
        assert len(root.find(f"{V3}effectiveTime").get("value")) == 14
        assert root.find(f"{V3}confidentialityCode").get("code") == "N"
        patient = root.find(f"{V3}recordTarget/{V3}patientRole/{V3}patient")
        assert patient.findtext(f"{V3}name")
        assert root.find(f"{V3}author") is not None
        assert root.find(f"{V3}custodian") is not None
        sections = root.findall(f".//{V3}section")
        assert sections
        assert all(s.findtext(f"{V3}title") for s in sections)
        assert root.findall(f".//{V3}value[@codeSystem='2.16.156.10011.2.3.3.11']")
    assert seen == {"C0002", "C0032", "C0034", "C0053"}


def test_dicom_reads_with_pydicom_and_names_decode(clean_hospital: HospitalReport) -> None:
    paths = sorted((clean_hospital.out / "landing/pacs/H0001").glob("*.dcm"))
    assert paths
    charsets = set()
    for path in paths:
        ds = pydicom.dcmread(path)
        charsets.add(ds.SpecificCharacterSet)
        assert ds.pixel_array.shape == (64, 64)
        assert ds.Modality in ("CR", "CT")
        name = ds.PatientName
        if name.ideographic:
            assert all("\u4e00" <= ch <= "\u9fff" for ch in str(name.ideographic).replace("^", ""))
        assert "鹏城" in ds.InstitutionName
    assert charsets == {"GB18030", "ISO_IR 192"}


def test_fhir_resources_validate_with_fhir_resources(clean_hospital: HospitalReport) -> None:
    paths = sorted((clean_hospital.out / "landing/fhir/A0001").glob("*.ndjson"))
    kinds = set()
    for path in paths:
        for line in path.read_text("utf-8").splitlines():
            data = json.loads(line)
            kinds.add(data["resourceType"])
            get_fhir_model_class(data["resourceType"]).model_validate(data)
    assert kinds == {"Patient", "Encounter", "Condition", "Observation", "MedicationRequest"}


def test_his_database_opens_with_sqlalchemy(clean_hospital: HospitalReport) -> None:
    engine = create_engine(f"sqlite:///{clean_hospital.out / 'his' / 'his.sqlite'}")
    tables = set(inspect(engine).get_table_names())
    assert tables == {
        "departments",
        "staff",
        "patients",
        "visits",
        "transfers",
        "diagnoses",
        "orders",
        "prescriptions",
        "charges",
    }
    with engine.connect() as conn:
        for table in tables:
            cols = {c["name"] for c in inspect(engine).get_columns(table)}
            assert "updated_at" in cols
        kinds = {r[0] for r in conn.execute(text("select distinct visit_type from visits"))}
        assert kinds <= {"O", "E", "I"}
        assert "O" in kinds
        assert (
            conn.execute(text("select count(*) from patients")).scalar_one()
            == (clean_hospital.manifest["counts"]["his"]["patients"])
        )
    engine.dispose()


def test_csv_exports_decode_only_as_gb18030(clean_hospital: HospitalReport) -> None:
    paths = sorted((clean_hospital.out / "landing/csv/A0002").glob("*.csv"))
    assert {p.name.rsplit("_", 1)[0] for p in paths} == {
        "patients",
        "visits",
        "diagnoses",
        "labs",
        "medications",
    }
    for path in paths:
        raw = path.read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        rows = list(csv.reader(io.StringIO(raw.decode("gb18030"), newline="")))
        assert len(rows) >= 2
        assert all(len(r) == len(rows[0]) for r in rows)


def test_truth_tables_read_with_pyarrow(clean_hospital: HospitalReport) -> None:
    counts = clean_hospital.manifest["counts"]["truth"]
    for entity, n in counts.items():
        table = pq.read_table(clean_hospital.out / "truth" / f"{entity}.parquet")
        assert table.num_rows == n
