"""The SQL guard: (role, SQL) -> rewritten or refused with a code; read-only always."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.policy import Policy, load_policy
from lakehouse.governance.sessions import Principal
from lakehouse.governance.sql_guard import SqlGuard
from tests.unit.governance.demo import CATALOG, demo_policy

DR_A = Principal("dr_a", "clinician", department="A", institutions=("H1",), care_team=("P9",))
ANALYST = Principal("ana", "analyst", institutions=("H1",))


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> SqlGuard:
    return SqlGuard(demo_policy(tmp_path_factory.mktemp("policy")), CATALOG)


REFUSED = [
    (DR_A, "DELETE FROM silver.demo_patients", ErrorCode.SQL_NOT_READ_ONLY),
    (
        DR_A,
        "INSERT INTO silver.demo_labs SELECT * FROM silver.demo_labs",
        ErrorCode.SQL_NOT_READ_ONLY,
    ),
    (DR_A, "SELECT 1; DROP TABLE silver.demo_labs", ErrorCode.SQL_NOT_READ_ONLY),
    (DR_A, "SELECT name INTO stolen FROM silver.demo_patients", ErrorCode.SQL_NOT_READ_ONLY),
    (DR_A, "UPDATE silver.demo_patients SET name = 'x'", ErrorCode.SQL_NOT_READ_ONLY),
    (DR_A, "SET spark.sql.ansi.enabled = false", ErrorCode.SQL_NOT_READ_ONLY),
    (DR_A, "SELECT reflect('java.lang.Runtime', 'getRuntime')", ErrorCode.SQL_NOT_READ_ONLY),
    (DR_A, "SELECT * FROM silver.demo_patients WHERE", ErrorCode.SQL_UNPARSEABLE),
    (DR_A, "SELECT * FROM parquet.`/warehouse/silver/demo_patients`", ErrorCode.ACCESS_DENIED),
    (DR_A, "SELECT * FROM demo_patients", ErrorCode.ACCESS_DENIED),  # unqualified
    (DR_A, "SELECT * FROM audit.events", ErrorCode.ACCESS_DENIED),
    (ANALYST, "SELECT name FROM silver.demo_patients", ErrorCode.ACCESS_DENIED),
    (
        ANALYST,
        "SELECT count(*) FROM silver.demo_patients WHERE id_card = '1'",
        ErrorCode.ACCESS_DENIED,
    ),
    (ANALYST, "SELECT upper(phone) AS p FROM silver.demo_patients", ErrorCode.ACCESS_DENIED),
    (
        ANALYST,
        "SELECT l.value FROM silver.demo_labs l JOIN silver.demo_patients p "
        "ON l.patient_id = p.patient_id",
        ErrorCode.ACCESS_DENIED,
    ),
    (
        ANALYST,
        "WITH x AS (SELECT address FROM silver.demo_patients) SELECT count(*) FROM x",
        ErrorCode.ACCESS_DENIED,
    ),
    (ANALYST, "SELECT sex FROM silver.demo_patients GROUP BY name, sex", ErrorCode.ACCESS_DENIED),
    (Principal("ds", "data_scientist"), "SELECT * FROM silver.demo_labs", ErrorCode.ACCESS_DENIED),
    (Principal("root", "admin"), "SELECT * FROM silver.demo_patients", ErrorCode.ACCESS_DENIED),
    (Principal("aud", "auditor"), "SELECT n FROM gold.demo_counts", ErrorCode.ACCESS_DENIED),
    (
        Principal("n", "nurse", department="A"),
        "SELECT phone FROM silver.demo_patients",
        ErrorCode.ACCESS_DENIED,
    ),
]


ALLOWED = [
    (
        ANALYST,
        "SELECT sex, count(*) AS n FROM silver.demo_patients GROUP BY sex",
        "SELECT `demo_patients`.`sex` AS `sex`, COUNT(*) AS `n` FROM (SELECT `sex`, "
        "`department_code`, `institution_code` FROM `silver`.`demo_patients` WHERE "
        "`institution_code` IN ('H1')) AS `demo_patients` GROUP BY `demo_patients`.`sex`",
    ),
    (
        DR_A,
        "SELECT name FROM silver.demo_patients WHERE sex = 'F'",
        "SELECT `demo_patients`.`name` AS `name` FROM (SELECT `patient_id`, `name`, `id_card`, "
        "`phone`, `address`, `birth_date`, `sex`, `department_code`, `institution_code` FROM "
        "`silver`.`demo_patients` WHERE `institution_code` IN ('H1') AND (`department_code` = "
        "'A' OR `patient_id` IN ('P9'))) AS `demo_patients` WHERE `demo_patients`.`sex` = 'F'",
    ),
]


@pytest.mark.parametrize(("who", "sql", "expected"), ALLOWED)
def test_allowed_and_rewritten(guard: SqlGuard, who: Principal, sql: str, expected: str) -> None:
    assert guard.rewrite(who, sql).sql == expected


@pytest.mark.parametrize(("who", "sql", "code"), REFUSED)
def test_refused(guard: SqlGuard, who: Principal, sql: str, code: ErrorCode) -> None:
    with pytest.raises(LakehouseError) as exc:
        guard.rewrite(who, sql)
    assert exc.value.code is code


def test_break_glass_needs_the_grant(guard: SqlGuard) -> None:
    nurse = Principal("n", "nurse", department="A", institutions=("H1",))
    with pytest.raises(LakehouseError) as exc:
        guard.rewrite(nurse, "SELECT sex FROM silver.demo_patients", break_glass=True)
    assert exc.value.code is ErrorCode.ACCESS_DENIED


def _filtered_tables(sql: str) -> list[str]:
    """Every real table reference in the rewritten SQL, each with its WHERE clause."""
    tree = sqlglot.parse_one(sql, read="spark")
    out = []
    for t in tree.find_all(exp.Table):
        select = t.find_ancestor(exp.Select)
        assert select is not None
        where = select.args.get("where")
        text = where.sql("spark").replace("`", "") if where else None
        out.append(f"{t.db}.{t.name}: {text}")
    return out


def test_clinician_filter_reaches_every_reference(guard: SqlGuard) -> None:
    q = guard.rewrite(
        DR_A,
        "WITH recent AS (SELECT patient_id, value FROM silver.demo_labs) "
        "SELECT p.name, r.value FROM silver.demo_patients p JOIN recent r "
        "ON p.patient_id = r.patient_id WHERE p.patient_id IN "
        "(SELECT patient_id FROM silver.demo_labs WHERE value > 5) "
        "UNION ALL SELECT name, 0.0 FROM silver.demo_patients",
    )
    refs = _filtered_tables(q.sql)
    patients = [r for r in refs if r.startswith("silver.demo_patients:")]
    labs = [r for r in refs if r.startswith("silver.demo_labs:")]
    assert len(labs) == 2
    for ref in labs:  # no department column: scoped through the patient directory
        assert "institution_code IN ('H1')" in ref
        assert "department_code = 'A'" in ref
        assert "patient_id IN ('P9')" in ref
    # two references of the query, plus the directory look-ups of the two labs filters
    assert len(patients) == 4
    assert all("department_code = 'A'" in r for r in patients)
    assert q.tables == ("silver.demo_labs", "silver.demo_patients")


def test_select_star_expands_to_visible_columns_only(guard: SqlGuard) -> None:
    q = guard.rewrite(ANALYST, "SELECT * FROM silver.demo_patients")
    tree = sqlglot.parse_one(q.sql, read="spark")
    assert tree.named_selects == ["sex", "department_code", "institution_code"]
    assert "`institution_code` IN ('H1')" in q.sql


def test_named_patients_are_extracted_for_the_audit(guard: SqlGuard) -> None:
    q = guard.rewrite(
        DR_A,
        "SELECT value FROM silver.demo_labs WHERE patient_id IN ('P1', 'P2') OR 'P3' = patient_id",
    )
    assert q.patients == ("P1", "P2", "P3")


def test_break_glass_lifts_the_department_scope_only(guard: SqlGuard) -> None:
    q = guard.rewrite(DR_A, "SELECT name FROM silver.demo_patients", break_glass=True)
    assert q.break_glass
    assert "WHERE `institution_code` IN ('H1'))" in q.sql
    assert "`department_code` = " not in q.sql
    assert "`institution_code` IN ('H1')" in q.sql


def test_default_policy_keeps_duties_separate(tmp_path: Path) -> None:
    policy = load_policy()
    assert not policy.may_read("admin", "audit.events")
    assert policy.may_read("auditor", "audit.events")
    assert not policy.may_write("auditor", "ops.job_runs")
    with pytest.raises(LakehouseError) as exc:
        policy.require_write(Principal("aud", "auditor"), "silver.patients")
    assert exc.value.code is ErrorCode.ACCESS_DENIED
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nroles:\n  admin:\n    read: ['*']\n")
    with pytest.raises(LakehouseError) as exc:
        load_policy(bad)
    assert exc.value.code is ErrorCode.POLICY_INVALID
    assert exc.value.params["reason"] == "admin may not read the audit log"


WORDS = [
    "SELECT", "INSERT", "INTO", "DELETE", "UPDATE", "DROP", "TABLE", "CREATE", "ALTER", "SET",
    "MERGE", "FROM", "WHERE", "silver.demo_patients", "silver.demo_labs", "name", "sex", "*",
    ";", "(", ")", "=", "'x'", "1", ",", "UNION", "ALL", "WITH", "AS", "t", "VALUES", "CACHE",
    "TRUNCATE", "USE", "GRANT", "OVERWRITE", "LOAD", "DATA", "reflect",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12) | st.text(max_size=80))
def test_only_single_read_queries_ever_pass(tokens: list[str] | str) -> None:
    sql = tokens if isinstance(tokens, str) else " ".join(tokens)
    guard = SqlGuard(load_policy(), CATALOG)
    try:
        q = guard.rewrite(DR_A, sql)
    except LakehouseError as exc:
        refused = exc.code.id
    else:
        refused = ""
    if refused:
        assert refused.startswith("LH-SEC-")
        return
    trees = sqlglot.parse(q.sql, read="spark")
    assert len(trees) == 1
    assert isinstance(trees[0], exp.Query)
    assert not any(isinstance(n, (exp.DML, exp.DDL, exp.Command)) for n in trees[0].walk())


PHI_COLUMNS = {
    c for spec in CATALOG.values() for c in spec.phi_columns if spec.name != "gold.demo_counts"
}
ALL_COLUMNS = sorted({c for spec in CATALOG.values() for c in spec.column_names})


@st.composite
def analyst_queries(draw: st.DrawFn) -> str:
    """SELECTs over the demo tables: joins, subqueries, CTEs, aggregates, stars."""
    safe = st.sampled_from([c for c in ALL_COLUMNS if c not in PHI_COLUMNS])
    anything = st.sampled_from([*ALL_COLUMNS, "*"])
    cols = draw(st.lists(st.one_of(safe, anything), min_size=1, max_size=3))
    where = draw(st.one_of(safe, anything.filter(lambda c: c != "*")))
    shape = draw(st.sampled_from(["plain", "join", "subquery", "cte", "agg", "in"]))
    sel = ", ".join(cols)
    if shape == "join":
        return (
            f"SELECT {sel.replace('*', 'p.*')} FROM silver.demo_patients p JOIN silver.demo_labs l "
            f"ON p.institution_code = l.institution_code WHERE l.{where} IS NOT NULL"
        )
    if shape == "subquery":
        return f"SELECT {sel} FROM (SELECT * FROM silver.demo_patients WHERE {where} > '') s"
    if shape == "cte":
        return f"WITH x AS (SELECT {sel} FROM silver.demo_labs) SELECT * FROM x"
    if shape == "agg":
        return f"SELECT {where}, count(*) FROM silver.demo_patients GROUP BY {where}"
    if shape == "in":
        return (
            f"SELECT {sel} FROM silver.demo_patients WHERE {where} IN "
            f"(SELECT {where} FROM silver.demo_labs)"
        )
    return f"SELECT {sel} FROM silver.demo_patients WHERE {where} = 'x'"


@settings(max_examples=300, deadline=None)
@given(analyst_queries())
def test_an_analyst_query_never_touches_a_phi_column(sql: str) -> None:
    guard = SqlGuard(load_policy_for_tests(), CATALOG)
    try:
        q = guard.rewrite(ANALYST, sql)
    except LakehouseError as exc:
        code = exc.code
    else:
        code = None
    if code is not None:
        assert code in {ErrorCode.ACCESS_DENIED, ErrorCode.SQL_UNPARSEABLE}
        return
    tree = sqlglot.parse_one(q.sql, read="spark")
    named = {c.name for c in tree.find_all(exp.Column)} | set(tree.named_selects)
    assert not (named & PHI_COLUMNS), q.sql


def load_policy_for_tests() -> Policy:
    import tempfile

    return demo_policy(Path(tempfile.mkdtemp()))


def test_scoping_fails_closed_and_all_sites_is_a_grant(tmp_path: Path) -> None:
    import dataclasses

    from pyspark.sql.types import StringType

    from lakehouse.tables.spec import Phi, column

    notes = dataclasses.replace(
        CATALOG["silver.demo_labs"],
        name="silver.demo_notes",
        columns=(
            column("note_id", StringType(), "Note id.", nullable=False),
            column("text", StringType(), "Note text.", phi=Phi.FREE_TEXT),
        ),
        keys=("note_id",),
    )
    guard = SqlGuard(demo_policy(tmp_path), {**CATALOG, notes.name: notes})
    with pytest.raises(LakehouseError) as exc:  # PHI rows that cannot be scoped: refused
        guard.rewrite(DR_A, "SELECT text FROM silver.demo_notes")
    assert exc.value.code is ErrorCode.ACCESS_DENIED
    everywhere = dataclasses.replace(ANALYST, institutions=("*",))
    assert (
        "institution_code` IN"
        not in guard.rewrite(everywhere, "SELECT sex FROM silver.demo_patients").sql
    )


def test_shipped_exporter_reads_its_institutions_identified_and_nothing_else() -> None:
    # ADR 0032: the interface account of a Bulk $export sees every department of its
    # institutions with identifiers, never the audit log, bronze or governance tables.
    policy = load_policy()
    guard = SqlGuard(policy, CATALOG)
    exporter = Principal("regional", "exporter", institutions=("H1",))
    q = guard.rewrite(exporter, "SELECT name, id_card FROM silver.demo_patients")
    assert "WHERE `institution_code` IN ('H1')" in q.sql
    assert "department_code" not in q.sql.split("WHERE", 1)[1]
    for table in ("audit.events", "bronze.hl7_messages", "governance.patient_directory"):
        assert not policy.may_read("exporter", table)
    assert not policy.may_write("exporter", "silver.patient")
    with pytest.raises(LakehouseError) as exc:
        guard.rewrite(exporter, "SELECT name FROM silver.demo_patients", break_glass=True)
    assert exc.value.code is ErrorCode.ACCESS_DENIED
    nowhere = Principal("nobody", "exporter")  # no institution granted: no rows
    assert "WHERE FALSE" in guard.rewrite(nowhere, "SELECT name FROM silver.demo_patients").sql
