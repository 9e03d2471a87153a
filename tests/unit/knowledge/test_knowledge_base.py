"""The knowledge base over a small tree: search, folder permissions, tree, incremental
indexing, bad documents and paths (pure Python, no Spark)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from pypdf import PdfWriter

from lakehouse.errors import LakehouseError
from lakehouse.governance.sessions import Principal
from lakehouse.knowledge import OPERATOR, KnowledgeBase

ZH = "# 糖化血红蛋白检测规范\n\n门诊患者每三个月复查糖化血红蛋白，结果以百分比报告。\n"
EN = "# Blood glucose monitoring\n\nNurses check capillary Glucoses before meals.\n"
ICU = "# Vasopressin\n\nVasopressin infusion in septic shock; glucose every hour.\n"

WARD_A = Principal("dr_a", "clinician", department="A")
ICU_DOC = Principal("dr_icu", "clinician", department="ICU")
ANALYST = Principal("ana", "analyst", department="A")


def text_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer holds ``text`` (Helvetica, ASCII)."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "knowledge"
    files = {
        "sops/_access.yaml": "roles: [clinician, nurse]\n",
        "sops/hba1c.md": ZH,
        "sops/glucose.md": EN,
        "sops/icu/_access.yaml": "departments: [ICU]\n",
        "sops/icu/vasopressin.md": ICU,
        "hr/salaries.md": "# Salaries\n\nglucose bonus table\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def _kb(root: Path, **kw: object) -> KnowledgeBase:
    return KnowledgeBase(root, root.parent / "index" / "kb.db", **kw)  # type: ignore[arg-type]


def test_chinese_term_inside_a_chinese_document(tree: Path) -> None:
    kb = _kb(tree)
    total, hits = kb.search(WARD_A, "糖化血红蛋白")
    assert total == 1
    hit = hits[0]
    assert hit.path == "sops/hba1c.md"
    assert hit.title == "糖化血红蛋白检测规范"
    assert "<mark>糖化血红蛋白</mark>" in hit.snippet.html
    text = kb.read(WARD_A, hit.path).text
    assert [text[s:e] for s, e in hit.snippet.spans] == ["糖化血红蛋白", "糖化血红蛋白"]
    assert hit.to_dict()["spans"] == [list(s) for s in hit.snippet.spans]


def test_english_term_case_and_plural(tree: Path) -> None:
    kb = _kb(tree)
    total, hits = kb.search(WARD_A, "GLUCOSE")
    assert total == 1  # the ICU and HR documents hold glucose too, but are not readable
    text = kb.read(WARD_A, hits[0].path).text
    assert hits[0].path == "sops/glucose.md"
    assert [text[s:e] for s, e in hits[0].snippet.spans] == ["glucose", "Glucoses"]


def test_folder_permissions_inherit_and_default_deny(tree: Path) -> None:
    kb = _kb(tree)
    assert kb.search(WARD_A, "vasopressin") == (0, [])
    total, hits = kb.search(ICU_DOC, "vasopressin")
    assert total == 1
    assert hits[0].path == "sops/icu/vasopressin.md"
    assert kb.search(ANALYST, "glucose") == (0, [])  # role not in sops/_access.yaml
    assert kb.search(ICU_DOC, "salaries") == (0, [])  # hr/ has no access file: nobody
    assert kb.search(OPERATOR, "salaries")[0] == 1  # the host operator sees all
    with pytest.raises(LakehouseError) as denied:
        kb.read(WARD_A, "sops/icu/vasopressin.md")
    assert denied.value.code.id == "LH-KNB-002"
    with pytest.raises(LakehouseError) as missing:
        kb.read(WARD_A, "sops/none.md")
    assert missing.value.code.id == "LH-KNB-002"


def _folders(node: dict) -> dict[str, list[str]]:  # type: ignore[type-arg]
    out = {node["path"]: [d["path"] for d in node["documents"]]}
    for child in node["folders"]:
        out.update(_folders(child))
    return out


def test_tree_shows_only_readable_folders(tree: Path) -> None:
    kb = _kb(tree)
    assert _folders(kb.tree(WARD_A)) == {"": [], "sops": ["sops/glucose.md", "sops/hba1c.md"]}
    icu = _folders(kb.tree(ICU_DOC))
    assert icu["sops/icu"] == ["sops/icu/vasopressin.md"]
    assert "hr" not in icu
    assert _folders(kb.tree(ANALYST)) == {"": []}


def test_project_section_is_readable_by_every_role(tmp_path: Path, tree: Path) -> None:
    home = tmp_path / "checkout"
    (home / "docs").mkdir(parents=True)
    (home / "docs" / "guide.md").write_text("# Guide\n\nThe lakehouse serves FHIR R4.\n")
    kb = _kb(tree, home=home)
    for who in (WARD_A, ANALYST, Principal("aud", "auditor")):
        total, hits = kb.search(who, "fhir")
        assert (total, hits[0].path, hits[0].section) == (1, "project/docs/guide.md", "project")
    rules = kb.search(ANALYST, "SLV-ENC-001")[1]  # the shipped data-quality rules
    assert rules[0].path == "project/quality-rules/silver/SLV-ENC-001"


def test_incremental_reindex_only_reanalyses_changed_files(tree: Path) -> None:
    kb = _kb(tree)
    first = kb.sync()
    assert (first.analysed, first.failures) == (4, [])
    (tree / "sops" / "glucose.md").write_text(EN + "\nInsulin sliding scale.\n")
    st = (tree / "sops" / "hba1c.md").stat()
    os.utime(tree / "sops" / "hba1c.md", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    (tree / "hr" / "salaries.md").unlink()
    again = _kb(tree)  # a restart: the index persists
    report = again.sync()
    assert (report.analysed, report.unchanged, report.removed) == (1, 2, 1)
    assert again.index.analysed == 1
    assert again.search(WARD_A, "insulin")[0] == 1


def test_bad_documents_get_their_codes_and_the_rest_is_indexed(tree: Path) -> None:
    sops = tree / "sops"
    (sops / "manual.pdf").write_bytes(text_pdf("Hand hygiene before every catheter insertion"))
    (sops / "corrupt.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf body")
    (sops / "locked.pdf").write_bytes(encrypted_pdf())
    (sops / "gbk.txt").write_bytes("胰岛素泵使用规范：护士每班检查胰岛素泵。".encode("gbk"))
    (sops / "binary.txt").write_bytes(bytes(range(128, 256)) * 4)
    (sops / "big.md").write_text("x" * 5000)
    (sops / "image.png").write_bytes(b"\x89PNG")
    (sops / "icu" / "_access.yaml").write_text("roles: [surgeon]\n")
    kb = _kb(tree, max_bytes=4000)
    report = kb.sync()
    codes = {f.path: f.code for f in report.failures}
    assert codes == {
        "sops/corrupt.pdf": "LH-KNB-006",
        "sops/locked.pdf": "LH-KNB-005",
        "sops/binary.txt": "LH-KNB-004",
        "sops/big.md": "LH-KNB-003",
        "sops/image.png": "LH-KNB-007",
        "sops/icu/_access.yaml": "LH-KNB-008",
    }
    assert all("x" * 20 not in f.message for f in report.failures)
    assert kb.search(WARD_A, "胰岛素泵")[1][0].path == "sops/gbk.txt"  # GBK read as GB18030
    assert kb.search(WARD_A, "catheter")[1][0].path == "sops/manual.pdf"
    assert kb.search(ICU_DOC, "vasopressin") == (0, [])  # a broken access file closes
    assert kb.search(WARD_A, "糖化血红蛋白")[0] == 1


@pytest.mark.parametrize(
    "folder", ["../outside", "sops/../../x", "/etc", "project/docs", "sops/.hidden", "a\\b", ""]
)
def test_add_refuses_bad_folders(tree: Path, tmp_path: Path, folder: str) -> None:
    src = tmp_path / "new.md"
    src.write_text("# New\n\nnew text\n")
    with pytest.raises(LakehouseError) as exc:
        _kb(tree).add(src, folder)
    assert exc.value.code.id == "LH-KNB-001"
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize("path", ["../knowledge/sops/hba1c.md", "/etc/passwd", "sops/_access.yaml"])
def test_read_refuses_bad_paths(tree: Path, path: str) -> None:
    with pytest.raises(LakehouseError) as exc:
        _kb(tree).read(OPERATOR, path)
    assert exc.value.code.id == "LH-KNB-001"


def test_add_copies_and_indexes_or_refuses_before_copying(tree: Path, tmp_path: Path) -> None:
    kb = _kb(tree, max_bytes=4000)
    src = tmp_path / "洗手规范.md"
    src.write_text("# 手卫生\n\n<script>alert('x')</script> 七步洗手法适用于所有病区。\n")
    path, report = kb.add(src, "sops/ward")
    assert path == "sops/ward/洗手规范.md"
    assert not report.failures
    hit = kb.search(WARD_A, "洗手")[1][0]  # sops/_access.yaml is inherited
    assert hit.path == path
    assert "&lt;script&gt;" in hit.snippet.html
    assert "<script" not in hit.snippet.html
    big = tmp_path / "big.md"
    big.write_text("y" * 5000)
    with pytest.raises(LakehouseError) as exc:
        kb.add(big, "sops/ward")
    assert exc.value.code.id == "LH-KNB-003"
    assert not (tree / "sops" / "ward" / "big.md").exists()


def test_queries_are_checked(tree: Path) -> None:
    kb = _kb(tree)
    for bad in ("", "   ", "x" * 501):
        with pytest.raises(LakehouseError) as exc:
            kb.search(WARD_A, bad)
        assert exc.value.code.id == "LH-KNB-009"
    assert kb.search(WARD_A, "the of") == (0, [])


def test_governed_folders(tree: Path) -> None:
    kb = _kb(tree)
    kb.sync()
    assert kb.access.governed("sops/icu/deeper")
    assert not kb.access.governed("hr")
