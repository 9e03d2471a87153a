"""HL7 v2 -> silver (lakehouse.silver.hl7.transform_lis) on hand-written messages.

Bronze rows are made by the bronze parser itself from files in a temp landing folder (no
Delta). One batch of messages covers escapes, repetitions, Z-segments, 2.3 vs 2.5, other
delimiters, CR/LF/CRLF, corrections, cancellations, transfers, vital signs and rejects;
each silver table is collected once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.silver.base import SilverOutput
from lakehouse.silver.hl7 import transform_lis
from lakehouse.sources import hl7v2
from lakehouse.sources.encoding import charsets_enabled
from lakehouse.sources.files import list_landing, read_files
from lakehouse.sources.records import landed_rows

pytestmark = pytest.mark.spark


def bronze_rows(spark: Any, landing: Path, source: str) -> DataFrame:
    """Bronze-shaped rows of every file under ``landing/<source>`` (as jobs.ingest parses)."""
    from lakehouse.sources import cda

    parse, columns = {
        "lis": (hl7v2.parse_messages, hl7v2.MESSAGE_COLUMNS),
        "emr": (cda.parse_documents, cda.DOCUMENT_COLUMNS),
    }[source]
    folder = landing / source
    files = read_files(
        spark, list_landing(spark, str(folder)), source=source, root_uri="file:" + str(landing)
    )
    return landed_rows(parse(files.where(F.col("size_bytes") > 0)), columns)


def collect(out: SilverOutput) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows (and the rejects under 'rejects') as dicts."""
    got = {t: [r.asDict() for r in df.collect()] for t, df in out.rows.items()}
    got["rejects"] = [r.asDict() for r in out.rejects.collect()] if out.rejects else []
    return got


MSH = "MSH|^~\\&|LIS|H9999|LAKEHOUSE|H9999|{at}||{type}|{ctrl}|P|{ver}|||AL|NE|CHN|UNICODE UTF-8"
PID = (
    "PID|1||M001^^^H9999^MR~110105199706194083^^^CHN^NNCHN~P123^^^CHN^PPN||邓^华浩||19970619|M"
    "|||解放路68号\\T\\1栋^^北京市^北京市^100020^CHN^H^^朝阳区||13800138000^PRN^CP"
    "|||||||||汉族^汉族"
)
PV1 = (
    "PV1|1|I|NEU^12床^^H9999||||D01^王^医生|||NEU|||||||||ZY0001|||||||||||||||||||||||||"
    "20250101080000"
)

ORU_25 = [
    MSH.format(at="20250102100000", type="ORU^R01^ORU_R01", ctrl="C1", ver="2.5"),
    PID,
    PV1,
    "ORC|RE|O1|FO1",
    "OBR|1|O1|FO1|BIO^生化^99LIS|||20250102080000",
    "OBX|1|NM|GLU^葡萄糖^99LIS^2345-7^Glucose^LN||6.2|mmol/L|3.9-6.1|H|||F|||20250102081500",
    "NTE|1|L|空腹 \\T\\ 复查\\.br\\第二行 \\X41\\ \\E\\T\\E\\ 10\\S\\9",
    "NTE|2|L|再次确认",
    "OBX|2|SN|K^钾^99LIS^2823-3^Potassium^LN||^4.1|mmol/L|3.5-5.3||||F",
    "OBX|3|NM|WBC^白细胞^99LIS^6690-2^WBC^LN|1|6.5|10\\S\\9/L|4-10||||F",
    "OBX|4|NM|WBC^白细胞^99LIS^6690-2^WBC^LN|2|7.0|10\\S\\9/L|4-10||||F",
    "OBX|5|NM|^^99LIS||1.0|mg/dL",
    "OBX|6|NM|HR^心率^99LIS^8867-4^Heart rate^LN||72|/min||||||F",
    "ZPI|1|城镇职工基本医疗保险|YB001",
]
# The correction of GLU: a new message, same MSH-7 (the C must still win).
ORU_CORR = [
    MSH.format(at="20250102100000", type="ORU^R01^ORU_R01", ctrl="C2", ver="2.5"),
    PID,
    PV1,
    "ORC|RE|O1|FO1",
    "OBR|1|O1|FO1|BIO^生化^99LIS|||20250102080000",
    "OBX|1|NM|GLU^葡萄糖^99LIS^2345-7^Glucose^LN||5.9|mmol/L|3.9-6.1||||C|||20250102081500",
]
# v2.3: the id only in PID-2 (no PID-3), an English name.
ADT_23 = [
    "MSH|^~\\&|LIS|H9999|||200001011200||ADT^A01|C3|P|2.3",
    "EVN|A01|200001011200",
    "PID|1|X23|||ZHANG^WEI||19800101|F",
    "PV1|1|O|OPD^^^H9999||||||||||||||||MZ0001|||||||||||||||||||||||||200001011100",
]
# Another field separator and component character: '#' and '$'.
ORU_DELIMS = [
    "MSH#$~\\&#LIS#H9999###20250103100000##ORU$R01#C4#P#2.5",
    "PID#1##M002$$$H9999$MR##LI$SI##19700101#F",
    "OBR#1##FO9#CBC$血常规$99LIS",
    "OBX#1#NM#HGB$血红蛋白$99LIS$718-7$Hemoglobin$LN##130#g/L#115-150#N###F",
]
ACK = ["MSH|^~\\&|LIS|H9999|||20250101||ACK^A01|C5|P|2.5", "MSA|AA|C1"]
NO_ID = [
    MSH.format(at="20250101090000", type="ADT^A08^ADT_A01", ctrl="C6", ver="2.5"),
    "PID|1||||无名^氏",
]
BAD_TIME = [
    MSH.format(at="notatime", type="ADT^A08^ADT_A01", ctrl="C7", ver="2.5"),
    PID,
]
TRANSFER = [
    MSH.format(at="20250103120000", type="ADT^A02^ADT_A02", ctrl="C8", ver="2.5"),
    "EVN|A02|20250103120000||||20250103115500",
    PID,
    PV1.replace("NEU^12床^^H9999||||", "CAR^03床^^H9999|||NEU^12床^^H9999|"),
]
CANCEL = [
    MSH.format(at="20250104120000", type="ADT^A11^ADT_A09", ctrl="C9", ver="2.5"),
    "EVN|A11|20250104120000",
    PID,
    PV1,
]


def _write(root: Path, name: str, messages: list[list[str]], sep: str) -> None:
    path = root / "lis" / "H9999" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("".join(sep.join(m) + sep for m in messages)).encode("utf-8"))


@pytest.fixture(scope="module")
def silver(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hl7silver")
    _write(root, "a_cr.hl7", [ORU_25, ACK, NO_ID], "\r")
    _write(root, "b_lf.hl7", [ADT_23, ORU_DELIMS, BAD_TIME], "\n")
    _write(root, "c_crlf.hl7", [ORU_CORR, TRANSFER, CANCEL], "\r\n")
    with charsets_enabled(spark):
        bronze = bronze_rows(spark, root, "lis")
        got = collect(transform_lis(bronze))
        got["bronze"] = [r.asDict() for r in bronze.select("control_id").collect()]
    return got


def _one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


def test_every_message_lands_in_bronze(silver: dict[str, Any]) -> None:
    assert len(silver["bronze"]) == 9


def test_patient_from_pid_repetitions_names_address_and_z_segment(
    silver: dict[str, Any],
) -> None:
    p = _one(silver["silver.patient"], source_record_id="C1")
    assert p["patient_id"] == "M001"
    assert p["patient_key"] == "H9999|M001"
    assert p["identifiers"] == {
        "H9999^MR": "M001",
        "CHN^NNCHN": "110105199706194083",
        "CHN^PPN": "P123",
    }
    assert p["id_card_no"] == "110105199706194083"
    assert p["id_card_valid"] == "valid"
    assert p["passport_no"] == "P123"
    assert p["name"] == "邓华浩"
    assert p["sex_source"] == "M"
    assert str(p["birth_date"]) == "1997-06-19"
    assert p["birth_date_source"] == "19970619"
    assert p["phone"] == "13800138000"
    assert p["address"] == "北京市北京市朝阳区解放路68号&1栋"
    assert (p["address_province"], p["address_city"], p["address_county"]) == (
        "北京市",
        "北京市",
        "朝阳区",
    )
    assert p["postcode"] == "100020"
    assert p["ethnicity"] == "汉族"
    assert (p["insurance_type"], p["insurance_no"]) == ("城镇职工基本医疗保险", "YB001")
    # v2.3: no PID-3, the id in PID-2 (first PID segment wins); English name with a space.
    old = _one(silver["silver.patient"], source_record_id="C3")
    assert (old["patient_id"], old["name"], old["sex_source"]) == ("X23", "ZHANG WEI", "F")


def test_version_23_and_other_delimiters(silver: dict[str, Any]) -> None:
    enc = _one(silver["silver.encounter"], encounter_id="MZ0001")
    assert enc["encounter_class"] == "outpatient"
    assert enc["dept_code"] == "OPD"
    assert enc["start_at_source"] == "200001011100"
    p = _one(silver["silver.patient"], source_record_id="C4")
    assert p["patient_id"] == "M002"
    assert p["name"] == "LI SI"
    lab = _one(silver["silver.lab_result"], result_id="FO9|HGB")
    assert (lab["test_source_code"], lab["value_as_number"], lab["unit_source"]) == (
        "718-7",
        130.0,
        "g/L",
    )
    assert lab["panel_code"] == "CBC"
    assert lab["reported_at"] is not None


def test_lab_results_escapes_sub_ids_and_structured_numbers(silver: dict[str, Any]) -> None:
    labs = silver["silver.lab_result"]
    glu = [r for r in labs if r["result_id"] == "FO1|GLU"]
    assert len(glu) == 2
    final = _one(glu, result_status="F")
    corr = _one(glu, result_status="C")
    assert final["test_source_code"] == "2345-7"
    assert final["test_source_vocabulary"] == "LOINC"
    assert (final["test_local_code"], final["test_local_name"]) == ("GLU", "葡萄糖")
    assert final["test_source_name"] == "Glucose"
    assert final["panel_name"] == "生化"
    assert (final["value_as_number"], final["unit_source"]) == (6.2, "mmol/L")
    assert (final["reference_low"], final["reference_high"], final["abnormal_flag"]) == (
        3.9,
        6.1,
        "H",
    )
    assert final["collected_at_source"] == "20250102081500"
    assert final["comment"] == "空腹 & 复查\n第二行 A \\T\\ 10^9\n再次确认"
    assert final["encounter_id"] == "ZY0001"
    assert final["order_id"] == "FO1"
    # Same MSH-7: the correction still sorts after the final result it replaces.
    assert corr["source_updated_at"] > final["source_updated_at"]
    assert corr["value_as_number"] == 5.9
    k = _one(labs, result_id="FO1|K")
    assert k["value_type"] == "SN"
    assert k["value_as_number"] == 4.1
    assert k["value_source"] == "^4.1"
    wbc = {r["result_id"]: r for r in labs if r["test_local_code"] == "WBC"}
    assert set(wbc) == {"FO1|WBC|1", "FO1|WBC|2"}
    assert wbc["FO1|WBC|1"]["unit_source"] == "10^9/L"


def test_vital_sign_obx_goes_to_vital_sign(silver: dict[str, Any]) -> None:
    v = _one(silver["silver.vital_sign"], vital_id="FO1|HR")
    assert (v["source_code"], v["source_vocabulary"], v["value_as_number"]) == (
        "8867-4",
        "LOINC",
        72.0,
    )
    assert not [r for r in silver["silver.lab_result"] if r["test_local_code"] == "HR"]


def test_encounters_transfers_and_cancellations(silver: dict[str, Any]) -> None:
    encs = [r for r in silver["silver.encounter"] if r["encounter_id"] == "ZY0001"]
    admit = next(r for r in encs if r["is_deleted"] is False and r["dept_code"] == "NEU")
    assert admit["encounter_class"] == "inpatient"
    assert admit["bed_no"] == "12床"
    assert admit["attending_provider_id"] == "D01"
    assert admit["attending_provider_name"] == "王医生"
    assert admit["admit_at"] is not None
    assert admit["start_at_source"] == "20250101080000"
    cancelled = [r for r in encs if r["is_deleted"]]
    assert len(cancelled) == 1
    assert cancelled[0]["status"] == "cancelled"
    t = _one(silver["silver.encounter_transfer"])
    assert t["transfer_id"] == "ZY0001|20250103115500"
    assert (t["from_dept_code"], t["to_dept_code"], t["bed_no"]) == ("NEU", "CAR", "03床")


def test_rejects_carry_catalogued_codes(silver: dict[str, Any]) -> None:
    codes = sorted(r["error_code"] for r in silver["rejects"])
    assert codes == ["LH-SLV-001", "LH-SLV-002", "LH-SLV-003", "LH-SLV-004"]
    for r in silver["rejects"]:
        assert "110105199706194083" not in r["detail"]
        assert "邓" not in r["detail"]
    # A rejected message makes no rows; the OBX reject leaves its message's other rows.
    ctrl = {r["source_record_id"] for r in silver["silver.patient"]}
    assert "C6" not in ctrl
    assert "C7" not in ctrl
    assert "C1" in ctrl
