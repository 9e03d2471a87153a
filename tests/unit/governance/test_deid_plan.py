"""De-identification policy and view plans: every tag's transform, without Spark."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.deid.catalog import deid_catalog, find_plan, materialized_spec
from lakehouse.governance.deid.person_keys import derive
from lakehouse.governance.deid.policy import load_deid_policy
from lakehouse.governance.deid.views import plan_view, view_sql
from lakehouse.governance.policy import load_policy
from tests.unit.governance.deid_specs import COUNTS, ENCOUNTER, PATIENT

POLICY = load_deid_policy()
KEY = b"k" * 32


def test_every_tag_gets_its_transform() -> None:
    plan = plan_view(PATIENT, POLICY)
    shown = {c.name: c.transform for c in plan.columns}
    assert shown == {
        "patient_id": "token",
        "id_card": "token",
        "address": "regex",
        "postcode": "prefix",
        "birth_date": "year",
        "age": "age_band",
        "sex": "keep",
        "institution_code": "keep",
    }
    assert dict(plan.dropped) == {
        "name": "dropped by the policy",
        "phone": "dropped by the policy",
        "occupation": "dropped by the policy",  # a quasi-identifier no rule generalizes
        "note": "no de-identified counterpart column",
        "raw_payload": "dropped by the policy",
    }
    assert plan.quasi_identifiers == ["address", "postcode", "birth_date", "age", "sex"]
    assert plan.person_column == "patient_id"


def test_dates_shift_and_free_text_takes_its_counterpart() -> None:
    plan = plan_view(ENCOUNTER, POLICY)
    shown = {c.name: c.transform for c in plan.columns}
    assert shown["admit_date"] == shown["admit_time"] == shown["discharge_date"] == "shift"
    assert shown["summary"] == "deidentified"
    assert plan.column("summary").sql == "t.`summary_deid`"
    assert "summary_deid" not in shown  # shown once, under the original name
    assert shown["encounter_id"] == "token"


def test_without_a_person_key_dates_and_identifiers_are_dropped() -> None:
    plan = plan_view(COUNTS, POLICY)
    assert [c.name for c in plan.columns] == ["department_code", "n"]
    assert dict(plan.dropped) == {
        "visit_date": "no person key to shift by",
        "visit_no": "no person key to key its token",
    }
    assert "JOIN" not in view_sql(plan)


def test_view_sql_names_tables_and_columns_only() -> None:
    sql = view_sql(plan_view(PATIENT, POLICY))
    assert sql.startswith("CREATE OR REPLACE VIEW `deid`.`silver_deid_patient`")
    assert "LEFT JOIN `governance`.`person_keys` AS k" in sql
    assert KEY.hex() not in sql
    assert "k" * 32 not in sql


def test_views_are_in_the_guard_catalog_without_phi_tags() -> None:
    catalog = deid_catalog([PATIENT, ENCOUNTER, COUNTS], POLICY)
    assert set(catalog) == {
        "deid.silver_deid_patient",
        "deid.silver_deid_encounter",
        "deid.gold_deid_counts",
        "features.deid_silver_deid_patient",
        "features.deid_silver_deid_encounter",
    }
    assert all(not spec.phi_columns for spec in catalog.values())
    assert catalog["features.deid_silver_deid_patient"].keys == ("patient_id",)


def test_unknown_or_unmaterializable_tables_are_refused() -> None:
    with pytest.raises(LakehouseError) as exc:
        find_plan("silver.nope", [PATIENT], POLICY)
    assert exc.value.code is ErrorCode.DEID_UNKNOWN_TABLE
    with pytest.raises(LakehouseError) as exc:
        materialized_spec(plan_view(COUNTS, POLICY), POLICY)
    assert exc.value.code is ErrorCode.DEID_NOT_MATERIALIZABLE


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("{tag: name, transform: keep}", "not allowed for tag name"),
        ("{tag: identifier, transform: keep}", "not allowed for tag identifier"),
        ("{tag: free_text, transform: keep}", "not allowed for tag free_text"),
        ("{tag: raw, transform: token}", "not allowed for tag raw"),
        ("{tag: quasi, transform: prefix}", "needs length"),
    ],
)
def test_a_policy_that_would_expose_phi_is_refused(tmp_path: Path, rule: str, reason: str) -> None:
    path = tmp_path / "deid.yaml"
    path.write_text(f"version: 1\nrules:\n  - {rule}\n")
    with pytest.raises(LakehouseError) as exc:
        load_deid_policy(path)
    assert exc.value.code is ErrorCode.POLICY_INVALID
    assert reason in str(exc.value)


def test_analysts_read_only_deid_views_under_the_default_policy() -> None:
    policy = load_policy()
    assert policy.may_read("analyst", "deid.silver_patient")
    for table in ("silver.patient", "gold.omop_person", "governance.person_keys", "bronze.x"):
        assert not policy.may_read("analyst", table)
    for role in policy.roles:
        assert not policy.may_read(role, "governance.person_keys")


@given(st.text(min_size=1, max_size=30), st.integers(min_value=1, max_value=3650))
def test_a_shift_is_never_zero_and_never_beyond_the_setting(person: str, n: int) -> None:
    s = derive(KEY, person, n)
    assert 1 <= abs(s.shift_days) <= n
    assert s == derive(KEY, person, n)  # deterministic
    assert len(s.token) == 64
    assert len(s.id_ipad) == len(s.id_opad) == 64


def test_analysts_are_site_scoped_on_views_and_refused_where_rows_cannot_be() -> None:
    from pyspark.sql.types import StringType

    from lakehouse.governance.sessions import Principal
    from lakehouse.governance.sql_guard import ALL_SITES, SqlGuard
    from lakehouse.tables.spec import Phi, TableSpec, column

    links = TableSpec(
        name="silver.deid_links",
        comment="Person links without a site.",
        columns=(
            column("person_id", StringType(), "Person.", nullable=False, phi=Phi.IDENTIFIER),
            column("other_id", StringType(), "Linked person.", phi=Phi.IDENTIFIER),
        ),
        keys=("person_id",),
        person_key="person_id",
    )
    guard = SqlGuard(load_policy(), deid_catalog([PATIENT, links], POLICY))
    ana = Principal("ana", "analyst", institutions=("H1",))
    scoped = guard.rewrite(
        ana, "SELECT sex, count(*) AS n FROM deid.silver_deid_patient GROUP BY sex"
    )
    assert "`institution_code` IN ('H1')" in scoped.sql
    with pytest.raises(LakehouseError) as exc:
        guard.rewrite(ana, "SELECT * FROM deid.silver_deid_links")
    assert exc.value.code is ErrorCode.ACCESS_DENIED
    everywhere = Principal("ana", "analyst", institutions=(ALL_SITES,))
    assert guard.rewrite(everywhere, "SELECT * FROM deid.silver_deid_links").tables == (
        "deid.silver_deid_links",
    )


@given(st.text(min_size=1, max_size=20), st.text(max_size=40))
def test_identifier_tokens_are_rfc2104_hmac_under_the_person_key(person: str, value: str) -> None:
    import hashlib
    import hmac

    from lakehouse.governance.deid.person_keys import _mac, identifier_token

    person_key = _mac(KEY, "identifier", person)
    expected = hmac.new(person_key, value.encode(), hashlib.sha256).hexdigest()
    assert identifier_token(derive(KEY, person, 365), value) == expected
